#!/usr/bin/env bash
# errors.sh - every way the real transports can fail to start gives an
# error that names the problem and what to do, and nothing is left
# behind.  Each case runs `vsx_nettool open` and checks the message:
#   missing interface, loopback, non-Ethernet (tun), interface down, no
#   IPv4 address, MTU too small, native XDP unsupported (bridge device)
#   while generic mode works there, a foreign XDP program (left alone),
#   port in use (afxdp and udp), interface held by a live vsx process,
#   a stale vsx program of a killed process (replaced), not root, UMEM
#   over the locked-memory limit, a missing XDP object file.
set -u
here=$(cd "$(dirname "$0")" && pwd)
source "$here/netns.sh"
vsx_require_root
tool=${VSX_NETTOOL:?VSX_NETTOOL is not set (ctest sets it)}
foreign=${VSX_FOREIGN_XDP:?VSX_FOREIGN_XDP is not set (ctest sets it)}
vsx_hosts_up 1 || { echo "FAIL: test host"; exit 1; }
tmp=$(mktemp -d)
trap 'vsx_hosts_down; rm -rf "$tmp"' EXIT
fails=0

# expect NAME TEXT CMD...: CMD (run in host 1) must fail with TEXT in its message.
expect() {
  local name=$1 text=$2
  shift 2
  if out=$(vsx_on 1 "$@" --expect-error "$text" 2>&1); then
    echo "ok   $name: ${out#*: error }"
  else
    echo "FAIL $name: wanted an error containing '$text', got: $out"
    fails=$((fails + 1))
  fi
}
# works NAME CMD...: CMD must succeed.
works() {
  local name=$1
  shift
  if out=$(vsx_on 1 "$@" 2>&1); then
    echo "ok   $name: $(echo "$out" | head -1)"
  else
    echo "FAIL $name: $out"
    fails=$((fails + 1))
  fi
}
afx=("$tool" open --transport afxdp)

expect "missing interface" "no interface 'nosuch0'" "${afx[@]}" --if nosuch0 --port 47060
expect "missing interface (udp)" "no interface 'nosuch0'" "$tool" open --transport udp --if nosuch0 --port 47060
expect "loopback" "loopback device" "${afx[@]}" --if lo --port 47060

vsx_on 1 ip tuntap add dev tun0 mode tun
vsx_on 1 ip addr add 198.18.1.1/24 dev tun0
vsx_on 1 ip link set tun0 up
expect "not Ethernet (tun)" "not an Ethernet device" "${afx[@]}" --if tun0 --port 47060

vsx_on 1 ip link add v0 type veth peer name v1
expect "interface down" "is down" "${afx[@]}" --if v0 --port 47060
vsx_on 1 ip link set v1 up
vsx_on 1 ip link set v0 up
expect "no IPv4 address" "has no IPv4 address" "${afx[@]}" --if v0 --port 47060
vsx_on 1 ip addr add 198.18.2.1/24 dev v0
vsx_on 1 ip link set v0 mtu 500
expect "MTU too small" "too small" "${afx[@]}" --if v0 --port 47060
vsx_on 1 ip link set v0 mtu 1500

vsx_on 1 ip link add brx type bridge
vsx_on 1 ip addr add 198.18.3.1/24 dev brx
vsx_on 1 ip link set brx up
expect "no native XDP (bridge, mode drv)" "XDP is not supported" "${afx[@]}" --if brx --port 47060 --mode drv
works "generic XDP on the same bridge (mode auto falls back)" "${afx[@]}" --if brx --port 47060

vsx_on 1 ip link set dev eth0 xdpgeneric obj "$foreign" sec xdp
expect "foreign XDP program" "foreign XDP program 'foreign_pass'" "${afx[@]}" --if eth0 --port 47060
if vsx_on 1 ip -d link show dev eth0 | grep -q 'name foreign_pass'; then
  echo "ok   the foreign program is still attached"
else
  echo "FAIL the foreign program was removed"
  fails=$((fails + 1))
fi
vsx_on 1 ip link set dev eth0 xdpgeneric off

vsx_bg 1 "$tool" ksink --port 47061 --count 1 --timeout 30 >"$tmp/ksink" 2>&1
vsx_wait_for "$tmp/ksink" '^ready'
expect "port in use (afxdp)" "already in use" "${afx[@]}" --if eth0 --port 47061
expect "port in use (udp, unicast)" "already in use" "$tool" open --transport udp --if eth0 --mcast 0 --port 47061

vsx_bg 1 "${afx[@]}" --if eth0 --port 47062 --hold 30 >"$tmp/holder" 2>&1
holder=$!
vsx_wait_for "$tmp/holder" 'ok' 10
expect "interface held by a live vsx process" "in use by the vsx afxdp transport of live process" \
  "${afx[@]}" --if eth0 --port 47063
kill -9 "$holder"
wait "$holder" 2>/dev/null
if vsx_xdp_attached 1; then echo "ok   a killed process leaves its program attached (stale)"; fi
out=$(VSX_LOG=1 vsx_on 1 "${afx[@]}" --if eth0 --port 47062 2>&1)
if echo "$out" | grep -q "replaced the stale vsx XDP program" && echo "$out" | grep -q "^open afxdp on eth0: ok"; then
  echo "ok   stale program replaced: $(echo "$out" | grep replaced)"
else
  echo "FAIL stale program not replaced: $out"
  fails=$((fails + 1))
fi
if vsx_xdp_attached 1; then
  echo "FAIL an XDP program is still attached after a clean exit"
  fails=$((fails + 1))
else
  echo "ok   clean exit detaches the program"
fi

if command -v setpriv >/dev/null; then
  expect "not root" "missing capabilities" setpriv --reuid=65534 --regid=65534 --clear-groups \
    "${afx[@]}" --if eth0 --port 47064
  expect "UMEM over the locked-memory limit" "locked-memory limit" bash -c \
    'ulimit -l 64 && exec setpriv --bounding-set=-ipc_lock "$@"' _ "${afx[@]}" --if eth0 --port 47064 --buf-cnt 8192
fi
expect "missing XDP object" "cannot open the XDP program" env VSX_BPF_OBJ=/nonexistent/vsx_xdp.bpf.o \
  "${afx[@]}" --if eth0 --port 47064

if vsx_xdp_attached 1; then
  echo "FAIL an XDP program is left on eth0"
  fails=$((fails + 1))
fi
[ $fails = 0 ] && echo "PASS: clear errors" || echo "FAIL: $fails error case(s)"
[ $fails = 0 ]
