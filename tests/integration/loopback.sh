#!/usr/bin/env bash
# loopback.sh - the udp transport without multicast and without network
# namespaces: three members on 127.0.0.1, one port each, peers given with
# add_peer; casts fan out to every peer.  Needs no privilege: as root it
# runs inside a private test host (no port can collide), otherwise on the
# caller's loopback with ports picked at random.
# As root it also runs three members on ONE host sharing one multicast
# port (SO_REUSEPORT): sends between them must go through the group and
# be filtered by destination, since the kernel would hand a unicast
# datagram to any one of the sockets sharing the port.
set -u
here=$(cd "$(dirname "$0")" && pwd)
source "$here/netns.sh"
tool=${VSX_NETTOOL:?VSX_NETTOOL is not set (ctest sets it)}

run() { if [ -n "${host:-}" ]; then vsx_bg "$host" "$@"; else "$@" & fi; }

host=""
base=$((20000 + RANDOM % 30000))
if [ "$(id -u)" = 0 ]; then
  vsx_hosts_up 1 || { echo "FAIL: test host"; exit 1; }
  host=1
  base=47020
fi
rc=0
pids=()
for i in 1 2 3; do
  args=()
  for j in 1 2 3; do
    [ "$j" = "$i" ] && continue
    args+=(--add-peer "$j@127.0.0.1:$((base + j))")
  done
  peers=$(for j in 1 2 3; do [ "$j" != "$i" ] && printf '%s,' "$j"; done)
  run "$tool" xfer --transport udp --local-ip 127.0.0.1 --mcast 0 --port $((base + i)) --eid "$i" \
    --peers "${peers%,}" "${args[@]}" --casts 2000 --sends 1000 --size 56:1472 --rate 10000 --timeout 30
  pids+=("$!")
done
for p in "${pids[@]}"; do wait "$p" || rc=1; done
[ $rc = 0 ] && echo "PASS: udp unicast fan-out on loopback" || echo "FAIL: udp unicast fan-out on loopback"

if [ -n "$host" ]; then
  pids=()
  for i in 1 2 3; do
    peers=$(for j in 1 2 3; do [ "$j" != "$i" ] && printf '%s,' "$j"; done)
    vsx_bg 1 "$tool" xfer --transport udp --if eth0 --mcast 239.255.18.3 --port 47030 --eid "$i" \
      --peers "${peers%,}" --casts 1500 --sends 500 --size 56:1472 --rate 5000 --timeout 30
    pids+=("$!")
  done
  r2=0
  for p in "${pids[@]}"; do wait "$p" || r2=1; done
  [ $r2 = 0 ] && echo "PASS: udp multicast, three members sharing one port" ||
    echo "FAIL: udp multicast, three members sharing one port"
  [ $r2 = 0 ] || rc=1
fi
exit $rc
