#!/usr/bin/env bash
# netns.sh - test hosts for the integration tests: N network namespaces,
# each with one veth (eth0, 198.18.0.i/24) plugged into a bridge that
# lives in a namespace of its own, so nothing is added to the caller's
# namespace.  Addresses come only from 198.18.0.0/15 (benchmarking range,
# RFC 2544).  Names carry the PID and a random number, so runs never
# collide; everything is removed on exit, also on failure or a signal.
#
# As a library (what the tests do):
#   source netns.sh
#   vsx_hosts_up N [MTU]      creates hosts 1..N; sets VSX_HOST_i (netns
#                             name), VSX_IP_i, VSX_BR_NS, VSX_NS_PREFIX and
#                             installs the cleanup trap.  With VSX_TOPO=pair
#                             and N = 2 the two hosts share one veth pair
#                             and there is no bridge (what the benchmark
#                             uses: no bridge hop on the sender's CPU).
#                             VSX_QUEUES=Q gives every veth Q receive and
#                             transmit queues (default 1, like a plain veth)
#   vsx_on i CMD...           runs CMD in host i ("br" = the bridge's
#                             namespace); nsenter --net keeps the caller's
#                             /sys, unlike `ip netns exec`, which remounts
#                             it and hides bpffs from libxdp
#   vsx_bg i CMD...           the same in the background; $! is recorded so
#                             cleanup stops it if it is still running
#   vsx_hosts_down            stops recorded processes, deletes everything
#   vsx_require_root          exits 77 (ctest: skipped) unless root
#   vsx_wait_for FILE REGEX [SECONDS]
#                             waits until FILE has a line matching REGEX
#                             (a background process says it is ready)
#   vsx_xdp_attached i        true when host i's eth0 has an XDP program
#
# As a command:
#   netns.sh [-n N] [-m MTU] -- CMD...
#   runs CMD with the hosts up (the variables above exported) and removes
#   them afterwards; CMD's exit status is the script's.
#
# bpffs: the hosts see the caller's mounts (nsenter --net changes only the
# network namespace), so they have bpffs exactly when the caller has it.
# The transport works both ways: on this kernel libxdp's dispatcher fails
# its compatibility check (freplace EPERM) with or without bpffs and falls
# back to a single legacy program.

VSX_NS_PREFIX=${VSX_NS_PREFIX:-vsxt$$r$RANDOM}
VSX_HOST_CNT=0
VSX_BG_PIDS=()

vsx_require_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "SKIP: needs root (network namespaces, XDP)"
    exit 77
  fi
  for t in ip nsenter; do
    command -v "$t" >/dev/null || { echo "SKIP: $t not installed"; exit 77; }
  done
}

vsx_wait_for() {
  local file=$1 re=$2 secs=${3:-10} i
  for ((i = 0; i < secs * 20; i++)); do
    grep -qE "$re" "$file" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "timed out after ${secs}s waiting for /$re/ in $file" >&2
  return 1
}

vsx_xdp_attached() {
  vsx_on "$1" ip -d link show dev eth0 | grep -q 'prog/xdp'
}

vsx_ns_of() {
  if [ "$1" = br ]; then echo "$VSX_BR_NS"; else eval "echo \$VSX_HOST_$1"; fi
}

vsx_on() {
  local ns
  ns=$(vsx_ns_of "$1") || return 1
  shift
  nsenter --net="/run/netns/$ns" -- "$@"
}

vsx_bg() {
  local ns
  ns=$(vsx_ns_of "$1") || return 1
  shift
  nsenter --net="/run/netns/$ns" -- "$@" &
  VSX_BG_PIDS+=("$!")
}

vsx_hosts_down() {
  local pid ns i
  # Our own background processes first, so nothing holds a socket or an
  # XDP program while its namespace goes.
  for pid in "${VSX_BG_PIDS[@]}"; do
    kill "$pid" 2>/dev/null
  done
  for pid in "${VSX_BG_PIDS[@]}"; do
    for i in 1 2 3 4 5 6 7 8 9 10; do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  VSX_BG_PIDS=()
  # Deleting a namespace destroys its veth ends and with them their peers.
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${VSX_NS_PREFIX}"); do
    ip netns delete "$ns" 2>/dev/null
  done
  VSX_HOST_CNT=0
}

vsx_hosts_up() {
  local n=${1:-3} mtu=${2:-1500} i ns
  local qs=(numrxqueues "${VSX_QUEUES:-1}" numtxqueues "${VSX_QUEUES:-1}")
  if [ "$n" -lt 1 ] || [ "$n" -gt 200 ]; then
    echo "netns.sh: host count must be 1..200" >&2
    return 1
  fi
  trap 'vsx_hosts_down' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
  VSX_BR_NS=${VSX_NS_PREFIX}br
  local pair=0
  [ "${VSX_TOPO:-bridge}" = pair ] && [ "$n" = 2 ] && pair=1
  if [ $pair = 0 ]; then
    ip netns add "$VSX_BR_NS" || return 1
    vsx_on br ip link set lo up
    vsx_on br sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    vsx_on br ip link add br0 type bridge || return 1
    # Multicast floods every port, as on a hub: with IGMP snooping (what a
    # switch does) the bridge was seen to forget a joined host under load
    # and cut it off for tens of seconds, which no test is about.
    # VSX_SNOOPING=1 turns snooping (and the bridge's querier) on.
    if [ "${VSX_SNOOPING:-0}" = 1 ]; then
      vsx_on br ip link set br0 type bridge mcast_snooping 1 mcast_querier 1 2>/dev/null
    else
      vsx_on br ip link set br0 type bridge mcast_snooping 0 2>/dev/null
    fi
    # Frames crossing the bridge skip the host's iptables (br_netfilter
    # may be loaded, and new namespaces default to calling it): a switch
    # does not run a firewall, and it cost every frame of the benchmarks.
    vsx_on br sysctl -qw net.bridge.bridge-nf-call-iptables=0 net.bridge.bridge-nf-call-ip6tables=0 \
      net.bridge.bridge-nf-call-arptables=0 2>/dev/null || true
    vsx_on br ip link set br0 mtu "$mtu" up || return 1
  fi
  for ((i = 1; i <= n; i++)); do
    ns=${VSX_NS_PREFIX}h$i
    ip netns add "$ns" || return 1
    eval "VSX_HOST_$i=$ns"
    eval "VSX_IP_$i=198.18.0.$i"
    export "VSX_HOST_$i" "VSX_IP_$i"
    if [ $pair = 0 ]; then
      ip link add name eth0 netns "$ns" mtu "$mtu" "${qs[@]}" type veth \
        peer name "p$i" netns "$VSX_BR_NS" mtu "$mtu" "${qs[@]}" || return 1
      vsx_on br ip link set "p$i" master br0 up || return 1
    elif [ "$i" = 2 ]; then
      ip link add name eth0 netns "${VSX_NS_PREFIX}h1" mtu "$mtu" "${qs[@]}" type veth \
        peer name eth0 netns "$ns" mtu "$mtu" "${qs[@]}" || return 1
    fi
    vsx_on "$i" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    vsx_on "$i" ip link set lo up
    VSX_HOST_CNT=$i
  done
  for ((i = 1; i <= n; i++)); do
    vsx_on "$i" ip addr add "198.18.0.$i/24" dev eth0 || return 1
    vsx_on "$i" ip link set eth0 up || return 1
  done
  export VSX_NS_PREFIX VSX_BR_NS VSX_HOST_CNT
  # Wait for the links to come up (veth carrier, bridge forwarding state).
  for ((i = 0; i < 50 && pair == 0; i++)); do
    if ! vsx_on br ip -br link show master br0 | grep -qv ' UP '; then break; fi
    sleep 0.05
  done
  return 0
}

# Command mode: netns.sh [-n N] [-m MTU] -- CMD...
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  n=3 mtu=1500
  while [ $# -gt 0 ]; do
    case "$1" in
      -n) n=$2; shift 2 ;;
      -m) mtu=$2; shift 2 ;;
      --) shift; break ;;
      *) echo "usage: netns.sh [-n N] [-m MTU] -- CMD..." >&2; exit 2 ;;
    esac
  done
  [ $# -gt 0 ] || { echo "usage: netns.sh [-n N] [-m MTU] -- CMD..." >&2; exit 2; }
  vsx_require_root
  vsx_hosts_up "$n" "$mtu" || { echo "netns.sh: set-up failed" >&2; exit 1; }
  "$@"
  exit $?
fi
