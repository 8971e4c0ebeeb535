#!/usr/bin/env bash
# kernel_rx.sh - frames built by the afxdp transport are accepted by the
# kernel's own UDP/IP stack: a plain UDP socket in a second test host
# receives a counted stream (unicast to its address, then casts to a
# multicast group it joined), every datagram intact, while the kernel's
# UDP InCsumErrors counter stays unchanged.  Sizes 56..1472 bytes, odd and
# even, a third built as two-piece lists (copied) and the rest in place.
# The unicast stream also exercises add_peer and ARP resolution: the
# sender knows the receiver only by IP address.
set -u
here=$(cd "$(dirname "$0")" && pwd)
source "$here/netns.sh"
vsx_require_root
tool=${VSX_NETTOOL:?VSX_NETTOOL is not set (ctest sets it)}
vsx_hosts_up 2 || { echo "FAIL: test hosts"; exit 1; }
tmp=$(mktemp -d)
trap 'vsx_hosts_down; rm -rf "$tmp"' EXIT
rc=0

# unicast
vsx_bg 2 "$tool" ksink --eid 2 --port 47040 --count 3000 --timeout 20 >"$tmp/sink1" 2>&1
sink=$!
vsx_wait_for "$tmp/sink1" '^ready' || rc=1
vsx_on 1 "$tool" blast --transport afxdp --if eth0 --mcast 0 --port 47040 --eid 1 --to 2 \
  --add-peer 2@198.18.0.2:47040 --count 3000 --size 56:1472 --rate 20000 --timeout 15 || rc=1
wait "$sink" || rc=1
grep -v '^ready' "$tmp/sink1"

# multicast
vsx_bg 2 "$tool" ksink --eid 2 --port 47041 --mcast 239.255.18.4 --if eth0 --count 3000 --timeout 20 >"$tmp/sink2" 2>&1
sink=$!
vsx_wait_for "$tmp/sink2" '^ready' || rc=1
vsx_on 1 "$tool" blast --transport afxdp --if eth0 --mcast 239.255.18.4 --port 47041 --eid 1 \
  --count 3000 --size 56:1472 --rate 20000 --timeout 15 || rc=1
wait "$sink" || rc=1
grep -v '^ready' "$tmp/sink2"

[ $rc = 0 ] && echo "PASS: the kernel accepts afxdp frames" || echo "FAIL: the kernel accepts afxdp frames"
exit $rc
