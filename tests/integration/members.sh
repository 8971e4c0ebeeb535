#!/usr/bin/env bash
# members.sh - three real member processes (endpoint = transport + the
# default reliable stack + libev), one per test host, over afxdp, over
# udp, and mixed (hosts 1 and 3 afxdp, host 2 udp).  Each member casts a
# counted stream (fifo) and sends one to every other member; each checks
# that every cast (its own included) and every send is delivered exactly
# once, in order, with the right bytes (per-origin sequence numbers,
# CRC-32C and a byte pattern).  Members start sending only when all three
# exist and leave only when all three have everything (file barriers), so
# a member's exit never strands a peer's retransmission request.
set -u
here=$(cd "$(dirname "$0")" && pwd)
source "$here/netns.sh"
vsx_require_root
tool=${VSX_NETTOOL:?VSX_NETTOOL is not set (ctest sets it)}
vsx_hosts_up 3 || { echo "FAIL: test hosts"; exit 1; }
tmp=$(mktemp -d)
trap 'vsx_hosts_down; rm -rf "$tmp"' EXIT
rc=0
port=47080
for mode in afxdp udp mixed; do
  case "$mode" in
    afxdp) tr=(afxdp afxdp afxdp) ;;
    udp) tr=(udp udp udp) ;;
    mixed) tr=(afxdp udp afxdp) ;;
  esac
  mkdir -p "$tmp/$mode"
  pids=()
  for i in 1 2 3; do
    vsx_bg "$i" "$tool" member --transport "${tr[$((i - 1))]}" --if eth0 --eid $((100 + i)) --peers 101,102,103 \
      --mcast 239.255.18.7 --port $port --casts 3000 --sends 1000 --size 16:3000 --rate 5000 --dir "$tmp/$mode" \
      --timeout 30
    pids+=("$!")
  done
  r=0
  for p in "${pids[@]}"; do wait "$p" || r=1; done
  if [ $r = 0 ]; then
    echo "PASS: members over $mode"
  else
    echo "FAIL: members over $mode"
    rc=1
    # Kernel-side receive drops tell transport overload from stack trouble.
    for i in 1 2 3; do
      echo "  host $i kernel UDP: $(vsx_on "$i" awk '/^Udp:/ { if (!h) { split($0, k); h = 1 } else {
        for (j = 2; j <= NF; j++) if (k[j] ~ /InErrors|RcvbufErrors|InCsumErrors/) printf "%s %s ", k[j], $j } }' /proc/net/snmp)"
    done
  fi
  port=$((port + 1))
done
exit $rc
