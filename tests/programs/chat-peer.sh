#!/usr/bin/env bash
# chat-peer.sh - vsx-chat without root: two members on 127.0.0.1 that find
# each other with --peer (UDP unicast).  Checks:
#   - both show each other in the group and both show every message in the
#     same order (their outputs' chat lines are identical);
#   - flow control loses nothing: 20000 lines written to alice at once
#     (faster than the group takes them: casts are refused with
#     VSX_ERR_AGAIN and retried, her queue fills, she stops reading, the
#     fifo fills) all arrive at bob, in order;
#   - a 2500-byte line arrives whole, cut into messages in order;
#   - a member with piped input (echo line | vsx-chat) finds the group
#     before casting its line, then leaves: the others see both;
#   - end of input leaves gracefully: bob shows "alice left", both exit 0;
#   - bad options give an error that says what to do (exit 2);
#   - the trace checker passes on both traces.
# Needs $VSX_BIN (ctest sets it) holding vsx-chat.
set -u
bin=${VSX_BIN:?VSX_BIN is not set (ctest sets it to the built programs)}
chat=$bin/vsx-chat
src=${VSX_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
command -v python3 >/dev/null || { echo "SKIP: python3 missing (trace checker)"; exit 77; }
tmp=$(mktemp -d)
rc=1
declare -A pid fd
cleanup() {
  local k
  for k in "${!fd[@]}"; do eval "exec ${fd[$k]}>&-"; done
  for k in "${!pid[@]}"; do kill "${pid[$k]}" 2>/dev/null; wait "${pid[$k]}" 2>/dev/null; done
  if [ $rc = 0 ] && [ -z "${KEEP:-}" ]; then rm -rf "$tmp"; else echo "outputs and traces kept in $tmp"; fi
}
trap cleanup EXIT
fail() { echo "FAIL: chat with --peer: $*"; exit 1; }

# Bad options: refused with a sentence that says what to do.
expect_error() {
  local want=$1
  shift
  "$chat" "$@" </dev/null >"$tmp/err.out" 2>&1
  local st=$?
  [ $st = 2 ] || fail "'vsx-chat $*' exited with $st, not 2"
  grep -q "$want" "$tmp/err.out" || fail "'vsx-chat $*' said: $(cat "$tmp/err.out")"
}
expect_error "use 1-32 letters" --name "bad name"
expect_error "needs --if IFNAME" --name x --transport afxdp
expect_error "use --mcast with afxdp" --name x --transport afxdp --if lo --peer 127.0.0.1:1
expect_error "give IPv4:PORT" --name x --port $((30000 + RANDOM % 20000)) --peer nowhere
expect_error "use afxdp or udp\|use udp or afxdp" --name x --transport tcp
"$chat" --help | grep -q "^usage: vsx-chat" || fail "--help prints no usage"

port=$((20000 + RANDOM % 20000))
# start KEY PORT PEER_PORT: a member reading the fifo $tmp/KEY.in.
start() {
  local key=$1 f
  mkfifo "$tmp/$key.in"
  exec {f}<>"$tmp/$key.in" # read-write: does not wait for the reader
  (
    for k in "${!fd[@]}"; do eval "exec ${fd[$k]}>&-"; done
    exec {f}>&-
    exec "$chat" --name "$key" --port "$2" --peer "127.0.0.1:$3" --no-timestamps --stats --trace "$tmp/trace" \
      <"$tmp/$key.in" >"$tmp/$key.out" 2>&1
  ) &
  pid[$key]=$!
  fd[$key]=$f
}
# wait_line KEY REGEX [COUNT [SECONDS]]
wait_line() {
  local i
  for ((i = 0; i < ${4:-10} * 20; i++)); do
    [ "$(grep -cE "$2" "$tmp/$1.out" 2>/dev/null)" -ge "${3:-1}" ] && return 0
    sleep 0.05
  done
  fail "timed out waiting for /$2/ in $1's output: $(tail -3 "$tmp/$1.out")"
}
say() { echo "$2" >&"${fd[$1]}"; sleep 0.1; }

mkdir "$tmp/trace"
start alice $port $((port + 1))
start bob $((port + 1)) $port
wait_line alice "you are in group 'chat' with bob"
wait_line bob "you are in group 'chat' with alice"
say alice "hello bob"
say bob "hello alice"
say alice "/who"
wait_line alice "^\* 2 in group 'chat' \(view [0-9]+\): (alice and bob|bob and alice)$"
# A member whose whole input is one piped line: the line waits until the
# group is found (else it would reach nobody), then it leaves.
echo "piped hello" | "$chat" --name carol --port $((port + 2)) --peer "127.0.0.1:$port" --no-timestamps \
  --trace "$tmp/trace" >"$tmp/carol.out" 2>&1 || fail "carol (piped input) exited with an error: $(tail -3 "$tmp/carol.out")"
wait_line bob '^\* carol joined$'
wait_line bob '^  \[carol\] piped hello$'
wait_line bob '^\* carol left$'
grep -q "^> \[carol\] piped hello$" "$tmp/carol.out" || fail "carol did not see her own piped line"
long=$(head -c 2500 /dev/zero | tr '\0' 'x')
say bob "$long"
bulk=20000
seq -f 'bulk %05g' 1 $bulk >"$tmp/alice.in" &
pid[feeder]=$!
wait_line bob "\[alice\] bulk $bulk\$" 1 60
wait "${pid[feeder]}"
unset "pid[feeder]"
say bob "got them all"
wait_line alice "\[bob\] got them all"
eval "exec ${fd[alice]}>&-"; unset "fd[alice]"
wait_line bob '^\* alice left$'
wait "${pid[alice]}" || fail "alice exited with an error: $(tail -3 "$tmp/alice.out")"
unset "pid[alice]"
eval "exec ${fd[bob]}>&-"; unset "fd[bob]"
wait "${pid[bob]}" || fail "bob exited with an error: $(tail -3 "$tmp/bob.out")"
unset "pid[bob]"

msgs() { sed -nE 's/^[> ] (\[[^]]+\] .*)$/\1/p' "$tmp/$1.out"; }
msgs alice >"$tmp/alice.msgs"
msgs bob >"$tmp/bob.msgs"
cmp -s "$tmp/alice.msgs" "$tmp/bob.msgs" || fail "alice and bob saw different messages or orders"
n=$(wc -l <"$tmp/bob.msgs")
[ "$n" = $((bulk + 7)) ] || fail "$n messages, not $((bulk + 7)) (2 + carol's + 3 pieces of the long line + $bulk + 1)"
grep -E '^\[alice\] bulk ' "$tmp/bob.msgs" | cut -c14- | cmp -s - <(seq -f '%05g' 1 $bulk) ||
  fail "the $bulk bulk lines did not arrive all and in order"
refused=$(sed -nE 's/^vsx-chat: alice: .*refused again ([0-9]+),.*/\1/p' "$tmp/alice.out")
[ -n "$refused" ] || fail "alice printed no --stats line"
joined=$(grep -E '^\[bob\] x+$' "$tmp/bob.msgs" | sed 's/^\[bob\] //' | tr -d '\n')
[ "$joined" = "$long" ] || fail "the 2500-byte line did not arrive whole (${#joined} bytes)"
grep -qE "^> \[alice\] hello bob$" "$tmp/alice.out" || fail "alice's own line is not marked as hers"
verdict=$(python3 "${VSX_CHECKER:-$src/tests/checker/vsx_check.py}" "$tmp/trace") || { echo "$verdict"; fail "the trace checker"; }
echo "$verdict" | tail -1
rc=0
echo "PASS: chat with --peer on 127.0.0.1 ($n messages at both members, same order; flow control refused $refused casts, all retried)"
