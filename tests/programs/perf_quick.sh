#!/usr/bin/env bash
# perf_quick.sh - `vsx-perf group --quick` as root: three test hosts, vsx
# over udp and afxdp, fifo and total, 1024 B, one sender and all senders.
# Members write traces (--trace), which the trace checker must pass.
# Asserts that the run succeeded, that its table has a row for every
# transport, service and sender count with a nonzero msgs/s and MB/s, and
# that no namespace of the run is left behind.  Skips (77) without root.
# env: VSX_BIN (the built programs, with vsx-perf beside vsx-probe), VSX_SRC,
#      VSX_BPF_OBJ (set by ctest).
set -u
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (network namespaces, AF_XDP)"; exit 77; }
bin=${VSX_BIN:?VSX_BIN is not set (ctest sets it)}
perf=$bin/vsx-perf
[ -x "$perf" ] || { echo "FAIL: no $perf: build first"; exit 1; }
prefix=vsxpq$$r$RANDOM
out=$(mktemp)
trap 'rm -f "$out"; for ns in $(ip netns list | awk "{print \$1}" | grep "^$prefix"); do ip netns delete "$ns"; done' EXIT
fail() { echo "FAIL: vsx-perf group --quick: $*"; cat "$out"; exit 1; }

VSX_NS_PREFIX=$prefix timeout 170 "$perf" group --quick --secs 1 --trace >"$out" 2>&1
st=$?
[ $st = 77 ] && { cat "$out"; exit 77; }
[ $st = 0 ] || fail "exit status $st"
left=$(ip netns list | awk '{print $1}' | grep "^$prefix")
[ -z "$left" ] || fail "namespaces left behind: $left"
for tr in afxdp udp; do
  for svc in fifo total; do
    for sd in "1 of 3" "3 of 3"; do
      row=$(awk -v h="### 1024 B, $svc" '$0 == h { on = 1; next } /^###/ { on = 0 } on' "$out" |
            grep -F "| vsx $tr | $sd")
      [ -n "$row" ] || fail "no row for vsx $tr, $svc, $sd senders"
      rate=$(echo "$row" | awk -F'|' '{ gsub(/[ ,]/, "", $4); print $4 }')
      mb=$(echo "$row" | awk -F'|' '{ gsub(/[ ,]/, "", $5); print $5 }')
      awk -v r="$rate" -v m="$mb" 'BEGIN { exit !(r + 0 > 0 && m + 0 > 0) }' ||
        fail "vsx $tr $svc ($sd senders): rate '$rate' msgs/s, '$mb' MB/s"
      echo "vsx $tr $svc, $sd senders: $rate msgs/s, $mb MB/s at the slowest member"
    done
  done
done
echo "PASS: vsx-perf group --quick (8 rows with nonzero rates, no namespace left)"
