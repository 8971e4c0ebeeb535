#!/usr/bin/env bash
# ping.sh - the XDP program leaves the host's other traffic alone: while
# both test hosts run the afxdp transport (and exchange a stream), ARP and
# ICMP still work in both directions.  The neighbour caches are flushed
# first, so the echo requests need fresh ARP resolution through the XDP
# hook too.
set -u
here=$(cd "$(dirname "$0")" && pwd)
source "$here/netns.sh"
vsx_require_root
tool=${VSX_NETTOOL:?VSX_NETTOOL is not set (ctest sets it)}
vsx_hosts_up 2 || { echo "FAIL: test hosts"; exit 1; }
rc=0
pids=()
for i in 1 2; do
  vsx_bg "$i" "$tool" xfer --transport afxdp --if eth0 --eid "$i" --peers $((3 - i)) --mcast 239.255.18.6 \
    --port 47070 --casts 6000 --sends 3000 --size 56:1472 --rate 5000 --timeout 30
  pids+=("$!")
done
for i in 1 2; do
  for t in $(seq 100); do vsx_xdp_attached "$i" && break; sleep 0.05; done
  vsx_xdp_attached "$i" || { echo "FAIL: no XDP program on host $i"; rc=1; }
done
vsx_on 1 ip neigh flush dev eth0
vsx_on 2 ip neigh flush dev eth0
vsx_on 1 "$tool" ping --ip 198.18.0.2 --count 5 || rc=1
vsx_on 2 "$tool" ping --ip 198.18.0.1 --count 5 || rc=1
for i in 1 2; do
  vsx_xdp_attached "$i" || { echo "FAIL: the XDP program of host $i left before the pings ended"; rc=1; }
done
vsx_on 1 ip neigh show dev eth0 | grep -q 198.18.0.2 && echo "ARP resolved 198.18.0.2 from host 1"
for p in "${pids[@]}"; do wait "$p" || rc=1; done
[ $rc = 0 ] && echo "PASS: ARP and ICMP pass while afxdp runs" || echo "FAIL: ping while afxdp runs"
exit $rc
