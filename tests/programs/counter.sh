#!/usr/bin/env bash
# counter.sh - the replicated counter (demos/vsx_counter.c) in a short run,
# without root: four vsx-counter processes on 127.0.0.1, each on its own
# free UDP port, finding each other through --peer (a chain: each is given
# only the previous member's address).
#   1. a, b, c add 10, 20 and 30 once the view holds all three: each must
#      print counter 60 as its last value, and no more than 60.
#   2. d joins late with --expect 60 and adds nothing: it must get 60 by
#      state transfer ("state transfer: counter 60") and exit 0.
#   3. a, b, c leave when their --stay ends: each exits 0.
# Usage: VSX_BIN=<build>/demos bash tests/programs/counter.sh
# Every process is killed on exit, also on failure (trap).
set -u
BIN=${VSX_BIN:-$(dirname "$0")/../../build/demos}/vsx-counter
[ -x "$BIN" ] || { echo "counter.sh: $BIN not found: build first, or set VSX_BIN to the demos build folder" >&2; exit 2; }
DIR=$(mktemp -d /tmp/vsx-counter.$$.XXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$DIR"
}
trap cleanup EXIT
fail() { echo "counter.sh: FAIL: $*" >&2; for f in "$DIR"/*.log; do echo "--- $f"; tail -n 8 "$f"; done >&2; exit 1; }

# free_ports N: N UDP ports free on 127.0.0.1 right now.
free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}
read -r PA PB PC PD <<<"$(free_ports 4)"

"$BIN" --name a --port "$PA" --add 10 --wait 3 --stay 20 >"$DIR/a.log" 2>&1 & PIDS+=($!); PID_A=$!
"$BIN" --name b --port "$PB" --peer "127.0.0.1:$PA" --add 20 --wait 3 --stay 20 >"$DIR/b.log" 2>&1 & PIDS+=($!); PID_B=$!
"$BIN" --name c --port "$PC" --peer "127.0.0.1:$PB" --add 30 --wait 3 --stay 20 >"$DIR/c.log" 2>&1 & PIDS+=($!); PID_C=$!

last_counter() { grep -o 'counter [0-9]*' "$DIR/$1.log" | tail -n 1 | cut -d' ' -f2; }
echo "counter.sh: a, b, c on ports $PA $PB $PC add 10 + 20 + 30"
for i in $(seq 1 150); do
  [ "$(last_counter a)" = 60 ] && [ "$(last_counter b)" = 60 ] && [ "$(last_counter c)" = 60 ] && break
  sleep 0.1
done
for m in a b c; do
  [ "$(last_counter $m)" = 60 ] || fail "$m ends at counter '$(last_counter $m)', not 60 (15 s)"
  grep -q 'counter 61' "$DIR/$m.log" && fail "$m counted past 60: an increment applied twice"
done
echo "counter.sh: a, b, c agree on 60"

"$BIN" --name d --port "$PD" --peer "127.0.0.1:$PC" --expect 60 --stay 15 >"$DIR/d.log" 2>&1
rc=$?
[ $rc = 0 ] || fail "d exited $rc: it did not see counter 60 within 15 s"
grep -q '^state transfer: counter 60$' "$DIR/d.log" || fail "d did not get counter 60 by state transfer"
grep -q '^view .*4 members.*counter 60$' "$DIR/d.log" || fail "d never installed the view of 4 with counter 60"
echo "counter.sh: d joined late and got 60 by state transfer"

for m in A B C; do
  pid_var=PID_$m
  wait "${!pid_var}"; rc=$?
  [ $rc = 0 ] || fail "member $m exited $rc"
done
PIDS=()
for m in a b c; do
  grep -q '^left the group (leave)$' "$DIR/$m.log" || fail "$m did not leave gracefully"
  [ "$(last_counter $m)" = 60 ] || fail "$m ends at $(last_counter $m)"
done
echo "counter.sh: PASS"
