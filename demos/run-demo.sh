#!/usr/bin/env bash
# run-demo.sh - the main demo: build vsx on a fresh Debian 12 machine
# (installing the Debian packages that are missing) and run a group chat
# of three vsx-chat members, alice, bob and carol, each in a test host of
# its own (a network namespace on a bridge, 198.18.0.x), over AF_XDP.
#
# A script types their lines (through fifos, with short pauses), and you
# see every member's screen as it happens, prefixed with its name:
#   a conversation; carol crashes (kill -9) and the others show it;
#   carol comes back (a new process) and is shown as joined; more
#   conversation; bob leaves gracefully; then alice and carol leave.
# At the end it checks from the members' outputs that every member saw
# the same messages in the same order, with none missing while it was in
# the group, and runs the trace checker (tests/checker/vsx_check.py) on
# the members' JSONL traces.  About 20 seconds.  Exit status 0: verdict
# PASS; 1: FAIL; 77: cannot run here (not root).
#
# usage: sudo demos/run-demo.sh [--transport afxdp|udp] [--no-build] [--out DIR]
#   --transport   afxdp (default) or udp (kernel UDP multicast)
#   --no-build    skip the package check and build; use the programs in
#                 $VSX_BIN (default ./build/demos): what the tests do
#   --out DIR     keep the members' outputs and traces in DIR
# Needs root (network namespaces, AF_XDP).  Without root it shows how to
# run vsx-chat by hand over UDP on one host instead.
set -u
src=$(cd "$(dirname "$0")/.." && pwd)
transport=afxdp build=1 out=""

usage() {
  sed -n '/^# usage:/,/^# run vsx-chat/p' "$0" | sed 's/^# \{0,1\}//'
}
while [ $# -gt 0 ]; do
  case "$1" in
    --transport) transport=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
    --no-build) build=0; shift ;;
    --out) out=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run-demo.sh: unknown argument '$1': see --help" >&2; exit 2 ;;
  esac
done
case "$transport" in
  afxdp|udp) ;;
  *) echo "run-demo.sh: --transport '$transport': use afxdp or udp" >&2; exit 2 ;;
esac

by_hand() {
  cat <<EOF
Or run vsx-chat by hand, without root, in two terminals on this host (UDP on loopback):
  $src/build/demos/vsx-chat --name alice --port 7401 --peer 127.0.0.1:7402
  $src/build/demos/vsx-chat --name bob   --port 7402 --peer 127.0.0.1:7401
(build it first: cmake -S $src -B $src/build && cmake --build $src/build)
EOF
}
if [ "$(id -u)" != 0 ]; then
  echo "run-demo.sh: this demo needs root: it installs packages and creates test hosts (network"
  echo "namespaces) and AF_XDP sockets; run it with sudo."
  by_hand
  exit 77
fi

if [ $build = 1 ]; then
  bash "$src/cmake/bootstrap.sh" "$src/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo || {
    echo "run-demo.sh: the build failed (see above)" >&2; exit 1; }
  bin=$src/build/demos
else
  bin=${VSX_BIN:-$src/build/demos}
fi
chat=$bin/vsx-chat
[ -x "$chat" ] || { echo "run-demo.sh: $chat not found: build first (cmake --build build) or set VSX_BIN" >&2; exit 1; }
# The XDP program the afxdp transport loads: the one built beside the programs.
if [ -z "${VSX_BPF_OBJ:-}" ] && [ -f "$bin/../bpf/vsx_xdp.bpf.o" ]; then
  export VSX_BPF_OBJ=$bin/../bpf/vsx_xdp.bpf.o
fi
command -v python3 >/dev/null || { echo "run-demo.sh: python3 is missing (apt-get install python3)" >&2; exit 1; }

source "$src/tests/integration/netns.sh"
for t in ip nsenter mkfifo tail; do
  command -v "$t" >/dev/null || { echo "run-demo.sh: $t is missing (apt-get install iproute2 util-linux coreutils)" >&2; exit 1; }
done

if [ -n "$out" ]; then
  mkdir -p "$out" || exit 1
  tmp=$(cd "$out" && pwd)
  rm -f "$tmp"/*.out "$tmp"/*.in "$tmp"/typed "$tmp"/trace/*.jsonl
else
  tmp=$(mktemp -d)
fi
mkdir -p "$tmp/trace"
declare -A pid fd
watchers=()
cleanup() {
  local k
  for k in "${!fd[@]}"; do eval "exec ${fd[$k]}>&-" 2>/dev/null; done
  vsx_hosts_down
  for k in "${watchers[@]}"; do kill "$k" 2>/dev/null; wait "$k" 2>/dev/null; done
  [ -z "$out" ] && rm -rf "$tmp"
}
vsx_hosts_up 3 || { echo "run-demo.sh: could not create the test hosts" >&2; exit 1; }
trap cleanup EXIT
port=$((47500 + $$ % 400))

step() { sleep 0.3; printf '\n== %s ==\n' "$*"; }

# close_inputs (in a child): close the writing ends of the members'
# fifos, which every child inherits; else a member would never see the
# end of its input.
close_inputs() {
  local k
  for k in "${!fd[@]}"; do eval "exec ${fd[$k]}>&-"; done
}

# start KEY HOST NAME: a vsx-chat member reading its lines from the fifo
# $tmp/KEY.in (this script holds the writing end) and writing $tmp/KEY.out,
# shown live with its name in front.
start() {
  local key=$1 host=$2 name=$3 f ns
  ns=$(vsx_ns_of "$host")
  mkfifo "$tmp/$key.in"
  : >"$tmp/$key.out"
  # Opened read-write, the fifo does not wait for its reader.
  exec {f}<>"$tmp/$key.in"
  fd[$key]=$f
  (
    close_inputs
    exec nsenter --net="/run/netns/$ns" -- "$chat" --name "$name" --transport "$transport" --if eth0 \
      --mcast 239.255.18.42 --port $port --trace "$tmp/trace" <"$tmp/$key.in" >"$tmp/$key.out" 2>&1
  ) &
  pid[$key]=$!
  VSX_BG_PIDS+=("$!") # stopped by vsx_hosts_down
  (
    close_inputs
    tail -s 0.1 -n +1 -F --pid="${pid[$key]}" "$tmp/$key.out" 2>/dev/null | sed -u "s/^/$(printf '%-7s' "$key") | /"
  ) &
  watchers+=("$!")
}

# type KEY LINE: the member KEY types LINE; a pause lets the group deliver it.
type_line() {
  echo "$2" >&"${fd[$1]}"
  echo "$1: $2" >>"$tmp/typed"
  sleep 0.4
}

# close KEY: end of input for KEY: it says goodbye and leaves the group.
close_input() {
  eval "exec ${fd[$1]}>&-"
  unset "fd[$1]"
}

# wait_line KEY REGEX [COUNT]: until KEY's output has COUNT lines matching.
wait_line() {
  local key=$1 re=$2 cnt=${3:-1} i
  for ((i = 0; i < 200; i++)); do
    [ "$(grep -cE "$re" "$tmp/$key.out")" -ge "$cnt" ] && return 0
    sleep 0.05
  done
  echo "run-demo.sh: timed out waiting for /$re/ in $key's output" >&2
  return 1
}

# wait_exit KEY: the member's process ends (it left the group) within 5 s.
wait_exit() {
  local i
  for ((i = 0; i < 100; i++)); do
    kill -0 "${pid[$1]}" 2>/dev/null || { wait "${pid[$1]}"; return $?; }
    sleep 0.05
  done
  echo "run-demo.sh: $1 did not exit after leaving" >&2
  return 1
}

fail() { echo; echo "VERDICT: FAIL: $*"; [ -n "$out" ] || echo "(run with --out DIR to keep the outputs)"; exit 1; }

echo "vsx-chat demo over $transport: alice, bob and carol in test hosts ${VSX_NS_PREFIX}h1..h3 (198.18.0.1-3)"
step "alice, bob and carol start"
start alice 1 alice
wait_line alice "looking for group" || fail "alice did not start"
start bob 2 bob
wait_line bob "you are in group" || fail "bob did not find alice"
start carol 3 carol
wait_line carol "you are in group 'chat' with (alice and bob|bob and alice)" || fail "carol did not find the group"
wait_line alice "carol joined" && wait_line bob "carol joined" || fail "carol's join not shown"

step "a conversation"
type_line alice "hi everyone, alice here"
type_line bob "hello alice"
type_line carol "hey, carol too"
type_line alice "let's see what happens when somebody crashes"

wait_line carol "let's see what happens when somebody crashes" || fail "carol did not get the conversation"
step "carol crashes (kill -9)"
kill -9 "${pid[carol]}"; wait "${pid[carol]}" 2>/dev/null
wait_line alice "carol failed" && wait_line bob "carol failed" || fail "carol's crash not shown at alice and bob"
close_input carol

step "alice and bob go on"
type_line bob "carol is gone"
type_line alice "she will be back"

step "carol comes back (a new process)"
start carol2 3 carol
wait_line carol2 "you are in group 'chat' with (alice and bob|bob and alice)" || fail "carol did not rejoin"
wait_line alice "carol joined" 2 && wait_line bob "carol joined" 2 || fail "carol's rejoin not shown"
type_line carol2 "I'm back"
type_line alice "welcome back carol"
type_line bob "I have to go, bye"

step "bob leaves"
close_input bob
wait_line alice "bob left" && wait_line carol2 "bob left" || fail "bob's leave not shown"
wait_exit bob || fail "bob exited with an error"
type_line carol2 "just the two of us"
type_line alice "bye carol"

step "alice and carol leave"
close_input alice
wait_line carol2 "alice left" || fail "alice's leave not shown at carol"
wait_exit alice || fail "alice exited with an error"
close_input carol2
wait_exit carol2 || fail "carol exited with an error"
sleep 0.3 # the last lines on the screen

step "verdict"
python3 - "$tmp" <<'EOF' || fail "the members' outputs disagree (above)"
# Every member's chat lines, compared: one order for all, and each
# member saw every message from the first it saw to the last (a contiguous
# stretch of the group's order: nothing missing while it was there).
import re, sys
tmp = sys.argv[1]
members = ["alice", "bob", "carol", "carol2"]
line_re = re.compile(r"^(?:[0-9:.]+ )?[> ] \[([^\]]+)\] (.*)$")
seen = {}
for m in members:
    seen[m] = [f"[{g.group(1)}] {g.group(2)}" for g in map(line_re.match, open(f"{tmp}/{m}.out")) if g]
ok = True
for m, msgs in seen.items():
    if len(set(msgs)) != len(msgs):
        print(f"{m} saw a message twice"); ok = False
# One order for everybody: the "comes right after" pairs of all members
# must not contradict each other (a topological sort finds every message).
after, pre = {}, {}
for msgs in seen.values():
    for a, b in zip(msgs, msgs[1:]):
        after.setdefault(a, set()).add(b)
    for x in msgs:
        pre.setdefault(x, 0)
for a in after:
    for b in after[a]:
        pre[b] += 1
order, ready = [], [x for x, n in pre.items() if n == 0]
while ready:
    x = ready.pop()
    order.append(x)
    for y in after.get(x, ()):
        pre[y] -= 1
        if pre[y] == 0:
            ready.append(y)
if len(order) != len(pre):
    print("members saw messages in different orders"); ok = False
else:
    pos = {x: i for i, x in enumerate(order)}
    for m, msgs in seen.items():
        if msgs and [pos[x] for x in msgs] != list(range(pos[msgs[0]], pos[msgs[0]] + len(msgs))):
            print(f"{m} missed messages while it was in the group"); ok = False
typed = [l.rstrip("\n").split(": ", 1) for l in open(f"{tmp}/typed")]
for who, text in typed:
    name = "carol" if who.startswith("carol") else who
    if f"[{name}] {text}" not in seen[who]:
        print(f"{who} typed {text!r} but never saw it delivered"); ok = False
print(f"{'member':8} {'messages':>8}  first .. last")
for m, msgs in seen.items():
    label = m if m != "carol2" else "carol*"
    print(f"{label:8} {len(msgs):>8}  {msgs[0] if msgs else '-'} .. {msgs[-1] if msgs else '-'}")
print("(carol* is the carol that came back)")
print(f"{len(order)} messages in one total order; every member saw all of them while it was in the group: "
      + ("yes" if ok else "NO"))
sys.exit(0 if ok else 1)
EOF
checker=$src/tests/checker/vsx_check.py
verdict=$(python3 "$checker" --no-exit-is-crash "$tmp/trace") || { echo "$verdict"; fail "the trace checker"; }
echo "trace checker: $(echo "$verdict" | tail -1)"
echo
echo "VERDICT: PASS (alice, bob, carol and the returning carol agree on every message and its order)"
[ -n "$out" ] && echo "outputs and traces are in $tmp"
exit 0
