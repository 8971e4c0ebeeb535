#!/usr/bin/env bash
# tshark.sh - Wireshark's dissectors, with IPv4 and UDP checksum checking
# on, decode frames sent by the afxdp transport as valid Ethernet/IPv4/UDP:
# every captured vsx frame must show a good IP header checksum, a good UDP
# checksum and no expert warning or error.  The capture runs on the bridge
# port facing the sender, so it sees exactly what the sender put on the
# wire (unicast and multicast, sizes 56..1472).
set -u
here=$(cd "$(dirname "$0")" && pwd)
source "$here/netns.sh"
vsx_require_root
command -v tshark >/dev/null || { echo "SKIP: tshark not installed"; exit 77; }
tool=${VSX_NETTOOL:?VSX_NETTOOL is not set (ctest sets it)}
vsx_hosts_up 2 || { echo "FAIL: test hosts"; exit 1; }
tmp=$(mktemp -d)
chmod 755 "$tmp"
trap 'vsx_hosts_down; rm -rf "$tmp"' EXIT
cap=$tmp/vsx.pcapng
n=300

vsx_bg br tshark -n -q -i p1 -f "udp port 47050" -w "$cap" >"$tmp/tshark.out" 2>&1
cap_pid=$!
vsx_wait_for "$tmp/tshark.out" 'Capturing on' 15 || { cat "$tmp/tshark.out"; exit 1; }
rc=0
vsx_on 1 "$tool" blast --transport afxdp --if eth0 --mcast 0 --port 47050 --eid 1 --to 2 \
  --add-peer 2@198.18.0.2:47050 --count $n --size 56:1472 --rate 5000 --timeout 15 >/dev/null || rc=1
vsx_on 1 "$tool" blast --transport afxdp --if eth0 --mcast 239.255.18.5 --port 47050 --eid 1 \
  --count $n --size 56:1472 --rate 5000 --timeout 15 >/dev/null || rc=1
sleep 0.5
kill -INT "$cap_pid"
wait "$cap_pid"

ts() { tshark -n -r "$cap" -o ip.check_checksum:TRUE -o udp.check_checksum:TRUE "$@" 2>/dev/null; }
# vsx frames: to the vsx port, from the sender's MAC.  (The sender's kernel
# socket also sends one empty datagram to port 9 to trigger ARP; the kernel
# leaves its checksum to offload, so it is not ours to judge.)
mac=$(vsx_on 1 ip -o link show dev eth0 | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')
vsx="udp.dstport == 47050 && eth.src == $mac"
total=$(ts -Y "$vsx" | wc -l)
good=$(ts -Y "$vsx"' && eth.type == 0x0800 && ip.version == 4 && ip.checksum.status == "Good" && udp.checksum.status == "Good"' | wc -l)
expert=$(ts -Y "$vsx"' && _ws.expert.severity >= "Warning"' | wc -l)
uni=$(ts -Y "$vsx && ip.dst == 198.18.0.2" | wc -l)
multi=$(ts -Y "$vsx && ip.dst == 239.255.18.5 && eth.dst == 01:00:5e:7f:12:05" | wc -l)
echo "captured $total vsx frames from the sender: $good with good IPv4 and UDP checksums, $expert with expert warnings or errors; $uni unicast to 198.18.0.2, $multi to 239.255.18.5 (MAC 01:00:5e:7f:12:05)"
ts -Y "$vsx" -V | sed -n "/^Internet Protocol/,/^Data/p" | grep -E "Internet Protocol|Header Checksum|User Datagram|Checksum|Length" | head -11
# The hello probes before the unicast stream are frames too.
[ "$total" -ge $((2 * n)) ] && [ "$good" = "$total" ] && [ "$expert" = 0 ] && [ "$uni" -ge "$n" ] && [ "$multi" = "$n" ] || rc=1
[ $rc = 0 ] && echo "PASS: tshark decodes afxdp frames as valid IPv4/UDP" || echo "FAIL: tshark check"
exit $rc
