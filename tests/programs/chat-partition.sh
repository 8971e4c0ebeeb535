#!/usr/bin/env bash
# chat-partition.sh TRANSPORT - vsx-chat through a network partition and
# its heal, over afxdp or udp, in three test hosts (root; exit 77
# otherwise).  carol's link goes down and comes back up.  Checks:
#   - alice and bob show "carol failed"; carol shows "partition: you are
#     now alone"; after the heal all three show "merge: ... are together
#     again";
#   - a line typed on each side during the cut is seen on that side only;
#     a line typed after the merge is seen by all three;
#   - SIGTERM leaves gracefully (each shows "you left group 'chat'",
#     exit status 0), and the trace checker passes.
# Needs $VSX_BIN (ctest sets it) holding vsx-chat.
set -u
transport=${1:?usage: chat-partition.sh afxdp|udp}
src=${VSX_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
source "$src/tests/integration/netns.sh"
vsx_require_root
command -v python3 >/dev/null || { echo "SKIP: python3 missing (trace checker)"; exit 77; }
chat=${VSX_BIN:?VSX_BIN is not set (ctest sets it to the built programs)}/vsx-chat
rc=1
declare -A pid fd
vsx_hosts_up 3 || { echo "FAIL: test hosts"; exit 1; }
tmp=$(mktemp -d)
cleanup() {
  local k
  for k in "${!fd[@]}"; do eval "exec ${fd[$k]}>&-"; done
  vsx_hosts_down
  if [ $rc = 0 ]; then rm -rf "$tmp"; else echo "outputs and traces kept in $tmp"; fi
}
trap cleanup EXIT
fail() { echo "FAIL: chat partition over $transport: $*"; exit 1; }
port=$((47700 + RANDOM % 200))

# start HOST NAME: a member that reads the fifo $tmp/NAME.in and stays
# after its end (SIGTERM makes it leave).
start() {
  local f ns
  ns=$(vsx_ns_of "$1")
  mkfifo "$tmp/$2.in"
  exec {f}<>"$tmp/$2.in"
  (
    for k in "${!fd[@]}"; do eval "exec ${fd[$k]}>&-"; done
    exec {f}>&-
    exec nsenter --net="/run/netns/$ns" -- "$chat" --name "$2" --transport "$transport" --if eth0 \
      --mcast 239.255.18.44 --port $port --no-timestamps --stay --trace "$tmp/trace" <"$tmp/$2.in" >"$tmp/$2.out" 2>&1
  ) &
  pid[$2]=$!
  VSX_BG_PIDS+=("$!")
  fd[$2]=$f
}
# wait_line NAME REGEX: until NAME's output has a matching line (10 s).
wait_line() {
  local i
  for ((i = 0; i < 200; i++)); do
    grep -qE "$2" "$tmp/$1.out" 2>/dev/null && return 0
    sleep 0.05
  done
  fail "timed out waiting for /$2/ in $1's output: $(tail -3 "$tmp/$1.out")"
}
say() { echo "$2" >&"${fd[$1]}"; }
seen() { grep -qE "^[> ] \[$2\] $3\$" "$tmp/$1.out"; }

mkdir "$tmp/trace"
start 1 alice
wait_line alice "looking for group"
start 2 bob
wait_line bob "you are in group 'chat' with alice"
start 3 carol
wait_line carol "you are in group 'chat' with (alice and bob|bob and alice)"
wait_line alice '^\* carol joined$'
wait_line bob '^\* carol joined$'

vsx_on 3 ip link set eth0 down
wait_line alice '^\* carol failed$'
wait_line bob '^\* carol failed$'
wait_line carol '^\* partition: you are now alone$'
say alice "alice during the cut"
say carol "carol during the cut"
wait_line bob '\[alice\] alice during the cut'
wait_line carol '\[carol\] carol during the cut'

vsx_on 3 ip link set eth0 up
for m in alice bob carol; do
  wait_line $m '^\* merge: (alice|bob|carol), (alice|bob|carol) and (alice|bob|carol) are together again$'
done
say bob "bob after the merge"
for m in alice bob carol; do wait_line $m '\[bob\] bob after the merge'; done
seen carol alice "alice during the cut" && fail "carol saw a line of the other side of the cut"
seen alice carol "carol during the cut" && fail "alice saw a line of the other side of the cut"
seen bob carol "carol during the cut" && fail "bob saw a line of the other side of the cut"

for m in alice bob carol; do
  kill -TERM "${pid[$m]}"
  wait "${pid[$m]}" || fail "$m exited with an error after SIGTERM: $(tail -3 "$tmp/$m.out")"
  grep -q "^\* you left group 'chat'$" "$tmp/$m.out" || fail "$m did not leave gracefully on SIGTERM"
done
verdict=$(python3 "${VSX_CHECKER:-$src/tests/checker/vsx_check.py}" "$tmp/trace") || { echo "$verdict"; fail "the trace checker"; }
echo "$verdict" | tail -1
rc=0
echo "PASS: chat partition over $transport (failure, partition and merge shown; each side kept its lines)"
