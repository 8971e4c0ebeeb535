#!/usr/bin/env bash
# probe_local.sh - vsx-probe without root: three members on 127.0.0.1 over
# udp in unicast mode, each given the others' addresses with --peer, cast
# N messages each in fifo order, then in total order, then send N
# point-to-point messages each (round-robin to the other two).  Asserts
# that every member delivered exactly what the three sent to it (3N casts;
# 2 x N/2 sends), that every probe reported no error, and that the trace
# checker (tests/checker/vsx_check.py, $VSX_CHECKER) passes the traces of
# each run.
#   probe_local.sh [N]      (default 400)
# env: VSX_BIN (the built programs, set by ctest), VSX_CHECKER.
set -u
n=${1:-400}
probe=${VSX_BIN:?VSX_BIN is not set (ctest sets it)}/vsx-probe
checker=${VSX_CHECKER:?VSX_CHECKER is not set (ctest sets it)}
[ -x "$probe" ] || { echo "FAIL: no $probe: build first"; exit 1; }
command -v python3 >/dev/null || { echo "SKIP: python3 missing (trace checker)"; exit 77; }
tmp=$(mktemp -d)
pids=()
rc=1
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  if [ $rc = 0 ]; then rm -rf "$tmp"; else echo "traces and output kept in $tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() { echo "FAIL: vsx-probe on 127.0.0.1: $*"; exit 1; }

# field JSONFILE KEY: a number or word from the probe's JSON line.
field() { sed -n "s/.*\"$2\":\"\{0,1\}\([^,\"}]*\).*/\1/p" "$1" | tail -1; }

# run NAME EXPECT ARGS...: three probes with ARGS; each must deliver EXPECT.
run() {
  local name=$1 expect=$2 i base peers=() got ok errs
  shift 2
  base=$((20000 + RANDOM % 40000))
  for i in 1 2 3; do peers+=(--peer "127.0.0.1:$((base + i))"); done
  mkdir -p "$tmp/$name"
  pids=()
  for i in 1 2 3; do
    "$probe" --port $((base + i)) "${peers[@]}" --group "probe-test-$$" --name "m$i" --wait-members 3 \
      --until-delivered "$expect" --timeout 40 --leave-timeout 500 --trace "$tmp/$name" --json "$@" \
      >"$tmp/$name/m$i.json" 2>"$tmp/$name/m$i.err" &
    pids+=($!)
  done
  for i in 1 2 3; do
    wait "${pids[$((i - 1))]}" || fail "$name: member m$i exited with status $?: $(cat "$tmp/$name/m$i.err")"
  done
  pids=()
  for i in 1 2 3; do
    got=$(field "$tmp/$name/m$i.json" delivered)
    ok=$(field "$tmp/$name/m$i.json" ok)
    errs=$(field "$tmp/$name/m$i.json" errors)
    [ "$got" = "$expect" ] || fail "$name: m$i delivered ${got:-nothing}, expected $expect"
    [ "$ok" = true ] && [ "$errs" = 0 ] || fail "$name: m$i reported errors: $(cat "$tmp/$name/m$i.err")"
  done
  verdict=$(python3 "$checker" "$tmp/$name") || { echo "$verdict"; fail "$name: the trace checker"; }
  printf '%-6s every member delivered %s; %s\n' "$name" "$expect" "$(echo "$verdict" | tail -1)"
  sed -n 's/^m1: /  m1: /p' "$tmp/$name/m1.err"
}

run fifo $((3 * n)) --count "$n" --size 200 --svc fifo
run total $((3 * n)) --count "$n" --size 1000 --svc total
run p2p "$n" --count "$n" --size 100 --p2p
rc=0
echo "PASS: vsx-probe on 127.0.0.1 (fifo, total, p2p)"
