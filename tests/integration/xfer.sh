#!/usr/bin/env bash
# xfer.sh MODE - three member processes in three test hosts exchange a
# counted stream of datagrams: each casts 3000 to the group and sends 1000
# to each other member, sizes 56..1472 bytes, a third of them as two-piece
# lists (the copying send path), the rest single buffers (in place).
#   MODE afxdp: all three over AF_XDP; udp: all over kernel UDP;
#   mixed: hosts 1 and 3 over AF_XDP, host 2 over UDP, one group;
#   multiqueue: mixed, on veths with 4 receive queues, so each afxdp
#   member runs 4 sockets on one UMEM (one fill ring each) behind an epoll
#   descriptor, and the flows of different senders land on different
#   queues.
# Passes when every member received every datagram of every peer intact
# (CRC and pattern), none twice.  The transports are unreliable, but on
# these veths at 10k datagrams/s per sender nothing is lost in practice
# (also with both CPUs busy and in the sanitizer build), so any loss fails
# the test.
set -u
here=$(cd "$(dirname "$0")" && pwd)
source "$here/netns.sh"
vsx_require_root
tool=${VSX_NETTOOL:?VSX_NETTOOL is not set (ctest sets it)}
mode=${1:?usage: xfer.sh afxdp|udp|mixed|multiqueue}
case "$mode" in
  afxdp) tr=(afxdp afxdp afxdp) ;;
  udp) tr=(udp udp udp) ;;
  mixed) tr=(afxdp udp afxdp) ;;
  multiqueue) tr=(afxdp udp afxdp); export VSX_QUEUES=4 ;;
  *) echo "unknown mode $mode"; exit 2 ;;
esac
vsx_hosts_up 3 || { echo "FAIL: test hosts"; exit 1; }
tmp=$(mktemp -d)
trap 'vsx_hosts_down; rm -rf "$tmp"' EXIT

# Each queue keeps its own share of the UMEM on its fill ring
# (buf_cnt / (2 * queues)); give four queues the share one queue has.
bufs=8192
[ "$mode" = multiqueue ] && bufs=32768
pids=()
for i in 1 2 3; do
  peers=$(for j in 1 2 3; do [ "$j" != "$i" ] && printf '%s,' "$j"; done)
  VSX_LOG=1 vsx_bg "$i" "$tool" xfer --transport "${tr[$((i - 1))]}" --if eth0 --eid "$i" --peers "${peers%,}" \
    --mcast 239.255.18.1 --port 47001 --casts 3000 --sends 1000 --size 56:1472 --rate 10000 --timeout 30 --buf-cnt $bufs \
    >"$tmp/out$i" 2>&1
  pids+=("$!")
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
cat "$tmp"/out*
if [ "$mode" = multiqueue ]; then
  # Frames must have come in (and been delivered, see above) on queues
  # other than 0.  Which queue a flow takes is a hash, so one host may see
  # all its few flows on one queue; across both hosts' eight flows that
  # happens with probability 4^-8.
  for i in 1 3; do
    echo "host $i: frames arrived on $(grep -o ' q[0-9]*=[1-9][0-9]*' "$tmp/out$i" | wc -l) of 4 queues"
  done
  grep -qE ' q[1-9][0-9]*=[1-9]' "$tmp/out1" "$tmp/out3" || { echo "no frame arrived on a queue other than 0"; rc=1; }
fi
[ $rc = 0 ] && echo "PASS: xfer $mode" || echo "FAIL: xfer $mode"
exit $rc
