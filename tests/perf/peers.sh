#!/usr/bin/env bash
# peers.sh - the peer side of the vsx-perf benchmark: Corosync CPG and
# JGroups, the systems users pick today, measured in three test hosts on
# this machine with the same scenarios vsx-perf runs for vsx.
#
#   peers.sh [--quick|--full] [--json FILE] [--doc FILE|--no-doc]
#            [--only cpg|jgroups] [--reps N] [--secs D] [--build DIR]
#            [--no-install] [--keep-logs DIR]
#
#   --quick       one run per system, 1.5 s measured per scenario (CI);
#                 writes no doc unless --doc is given
#   --full        (default) 3 rounds, 3 s measured per scenario, medians;
#                 writes docs/bench-peers.md unless --no-doc.  In each
#                 round every system runs once, in an order that rotates
#   --json FILE   also write the figures as JSON (for the vsx-perf driver)
#   --only SYS    run one system only
#   --build DIR   where CMake built tests/perf/cpg_bench (default ./build);
#                 without one the script compiles cpg_bench itself
#   --no-install  do not apt-get missing packages (skip what is missing)
#   --keep-logs D copy the daemons' and members' logs to D
#   env CPG_BENCH_ARGS, JG_BENCH_ARGS: extra options for every cpg_bench
#   or JgBench (experiments; see their --help)
#
# What runs (3 members, one per test host, scenario order as listed):
#   Corosync CPG (3.1.x, knet, CPG_TYPE_AGREED: total order):
#     64 B, 1 KiB, 8 KiB with one sender; 1 KiB with all three sending;
#     64 B latency at 1000 msgs/s from one sender: self-delivery (send ->
#     its own delivery) and one-way (send -> delivery at the others)
#   JGroups 2.12 udp.xml (FIFO) and udp.xml + SEQUENCER (total order):
#     the same, plus the latency with bundling off (the transport's
#     enable_bundling switched off for that scenario, DONT_BUNDLE set).
#     Member 1 connects first and is the coordinator (SEQUENCER's
#     sequencer); the one sender is member 2, so its total-order messages
#     take the real path (to the sequencer and back): the coordinator,
#     like any udp.xml member, delivers its own multicasts locally without
#     the network.  SEQUENCER's one-sender throughput is also measured
#     with the sequencer itself sending (its best case).
# Throughput is measured messages per second at the slowest member (the
# sender counts its own deliveries); MB is 10^6 bytes of message.
#
# Test hosts: network namespaces <prefix>h1..h3, each with eth0 =
# 198.18.10.i/24 on a veth into a bridge in namespace <prefix>br; the
# prefix carries this script's PID.  Each corosync daemon runs in its
# host's network namespace and in a mount namespace of its own with
# private tmpfs on /run, /dev/shm, /var/lib/corosync and /var/log/corosync
# (its IPC, pid file and ring id stay apart from the others'); its CPG
# client enters the same two namespaces.  Everything created is removed on
# exit, also on failure or a signal.
#
# Exit: 0 when every requested system ran and its checks passed, 1 when
# a run failed, 2 on a usage error, 77 when not root.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cmdline="tests/perf/peers.sh${*:+ $*}"

mode=full json="" doc=default only="" reps="" secs="" build="$root/build" install=1 keep=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) mode=quick; shift ;;
    --full) mode=full; shift ;;
    --json) json=$2; shift 2 ;;
    --doc) doc=$2; shift 2 ;;
    --no-doc) doc=none; shift ;;
    --only) only=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --secs) secs=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --no-install) install=0; shift ;;
    --keep-logs) keep=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "peers.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
done
case "$only" in ""|cpg|jgroups) ;; *) echo "peers.sh: --only cpg|jgroups" >&2; exit 2 ;; esac
if [ "$mode" = quick ]; then
  reps=${reps:-1} secs=${secs:-1.5}
  cpg_warm=0.3 jg_jit=4 jg_warm=2 jg_warm_next=1
  [ "$doc" = default ] && doc=none
else
  reps=${reps:-3} secs=${secs:-3}
  cpg_warm=0.5 jg_jit=8 jg_warm=2 jg_warm_next=2
  [ "$doc" = default ] && doc=$root/docs/bench-peers.md
fi
lat_rate=1000
members=3
cpg_sender=1 jg_sender=2
cpg_scen="t:64:one,t:1024:one,t:8192:one,t:1024:all,l:64"
jg_scen="t:64:one,t:1024:one,t:8192:one,t:1024:all,l:64,l:64:nb"
# SEQUENCER also with the sequencer itself as the one sender (its best case).
jg_seq_scen="t:64:one,t:1024:one,t:8192:one,t:64:m1,t:1024:m1,t:8192:m1,t:1024:all,l:64,l:64:nb"

if [ "$(id -u)" != 0 ]; then
  echo "SKIP: peers.sh needs root (network and mount namespaces)"
  exit 77
fi
for t in ip nsenter unshare awk; do
  command -v "$t" >/dev/null || { echo "peers.sh: $t is needed" >&2; exit 2; }
done

prefix="vsxpeer$$r$RANDOM"
tmp=$(mktemp -d /tmp/vsx-peers.XXXXXX)
pids=()      # background processes we started and have not reaped yet
failed=0

log() { echo "peers.sh: $*" >&2; }

# ---------------------------------------------------------------- cleanup
stop_pid() {
  local pid=$1 i
  kill "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    case "$(ps -o stat= -p "$pid" 2>/dev/null)" in Z*) break ;; esac
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
}
# untrack PID: forgets a reaped process (its pid may be reused).
untrack() {
  local p rest=()
  for p in "${pids[@]}"; do [ "$p" = "$1" ] || rest+=("$p"); done
  pids=("${rest[@]}")
}
cleanup() {
  local pid ns
  trap '' INT TERM HUP
  # Clients before daemons before the holders of their namespaces.
  for ((pid = ${#pids[@]} - 1; pid >= 0; pid--)); do stop_pid "${pids[pid]}"; done
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${prefix}"); do
    ip netns delete "$ns" 2>/dev/null
  done
  if [ -n "$keep" ]; then mkdir -p "$keep" && cp -r "$tmp"/. "$keep"/ 2>/dev/null; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# --------------------------------------------------------------- packages
pkg_ok() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }
javac_ok() { command -v javac >/dev/null && javac -version 2>&1 | grep -qE '^javac (1[7-9]|[2-9][0-9])'; }
want=()
if [ "$only" != jgroups ]; then
  pkg_ok corosync || want+=(corosync)
  pkg_ok libcpg-dev || want+=(libcpg-dev)
fi
if [ "$only" != cpg ]; then
  pkg_ok libjgroups-java || want+=(libjgroups-java)
  javac_ok || want+=(openjdk-17-jdk-headless)
fi
if [ ${#want[@]} -gt 0 ] && [ $install = 1 ]; then
  log "installing ${want[*]}"
  # policy-rc.d-style guard: never start the system's corosync service.
  if ! RUNLEVEL=1 apt-get install -y -q --no-install-recommends "${want[@]}" >"$tmp/apt.log" 2>&1; then
    apt-get update -q >>"$tmp/apt.log" 2>&1
    RUNLEVEL=1 apt-get install -y -q --no-install-recommends "${want[@]}" >>"$tmp/apt.log" 2>&1 ||
      { log "apt-get install failed:"; tail -5 "$tmp/apt.log" >&2; }
  fi
fi
do_cpg=0 do_jg=0
if [ "$only" != jgroups ]; then
  if pkg_ok corosync && pkg_ok libcpg-dev; then do_cpg=1; else log "corosync/libcpg-dev missing: CPG skipped"; failed=1; fi
fi
if [ "$only" != cpg ]; then
  if pkg_ok libjgroups-java && javac_ok; then do_jg=1; else log "libjgroups-java or javac 17 missing: JGroups skipped"; failed=1; fi
fi

# ---------------------------------------------------------------- programs
if [ $do_cpg = 1 ]; then
  cpg_bench=$build/tests/perf/cpg_bench
  if [ ! -x "$cpg_bench" ] || [ "$cpg_bench" -ot "$here/cpg_bench.c" ]; then
    cpg_bench=$tmp/cpg_bench
    # shellcheck disable=SC2046
    if ! cc -O2 -Wall -Wextra -D_GNU_SOURCE -o "$cpg_bench" "$here/cpg_bench.c" \
         $(pkg-config --cflags --libs libcpg 2>/dev/null || echo -lcpg) 2>"$tmp/cc.log"; then
      log "cpg_bench failed to build:"; cat "$tmp/cc.log" >&2; do_cpg=0; failed=1
    fi
  fi
fi
if [ $do_jg = 1 ]; then
  jgjar=/usr/share/java/jgroups.jar
  mkdir -p "$tmp/classes"
  if ! javac -nowarn -cp "$jgjar" -d "$tmp/classes" "$here/JgBench.java" 2>"$tmp/javac.log"; then
    log "JgBench failed to compile:"; cat "$tmp/javac.log" >&2; do_jg=0; failed=1
  fi
  # The SEQUENCER stack must be the jar's udp.xml plus SEQUENCER, no more.
  protos() { grep -o '<[A-Za-z][A-Za-z0-9_.]*' | grep -v '^<config$' | tr '\n' ' '; }
  jar_list=$(unzip -p "$jgjar" udp.xml 2>/dev/null | protos)
  seq_list=$(protos <"$here/jg-sequencer.xml" | sed 's/<SEQUENCER //')
  if [ -z "$jar_list" ] || [ "$jar_list" != "$seq_list" ]; then
    log "jg-sequencer.xml is not the jar's udp.xml plus SEQUENCER:"
    log "  jar udp.xml:    $jar_list"; log "  jg-sequencer:   $seq_list"; do_jg=0; failed=1
  fi
fi
[ $do_cpg = 1 ] || [ $do_jg = 1 ] || { log "nothing to run"; exit 1; }

# -------------------------------------------------------------- test hosts
on() { local i=$1; shift; nsenter --net="/run/netns/${prefix}h$i" -- "$@"; }
onbr() { nsenter --net="/run/netns/${prefix}br" -- "$@"; }
hosts_up() {
  local i ns
  ip netns add "${prefix}br" || return 1
  onbr ip link set lo up
  onbr ip link add br0 type bridge || return 1
  # Flood multicast to every port: no IGMP snooping state to wait for.
  onbr ip link set br0 type bridge mcast_snooping 0 || return 1
  # No iptables on bridged frames (as in tests/integration/netns.sh, so
  # vsx and the peers pay the same per-frame cost).
  onbr sysctl -qw net.bridge.bridge-nf-call-iptables=0 net.bridge.bridge-nf-call-ip6tables=0 \
    net.bridge.bridge-nf-call-arptables=0 2>/dev/null || true
  onbr ip link set br0 up || return 1
  for ((i = 1; i <= members; i++)); do
    ns=${prefix}h$i
    ip netns add "$ns" || return 1
    ip link add name eth0 netns "$ns" type veth peer name "p$i" netns "${prefix}br" || return 1
    onbr ip link set "p$i" master br0 up || return 1
    on "$i" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    on "$i" ip link set lo up || return 1
    on "$i" ip addr add "198.18.10.$i/24" dev eth0 || return 1
    on "$i" ip link set eth0 up || return 1
    on "$i" ip route add 224.0.0.0/4 dev eth0 || return 1
  done
  for ((i = 0; i < 50; i++)); do
    onbr ip -br link show master br0 | grep -qv ' UP ' || break
    sleep 0.1
  done
  if command -v ping >/dev/null; then
    for ((i = 2; i <= members; i++)); do
      on 1 ping -c1 -W2 "198.18.10.$i" >/dev/null || { log "host $i unreachable"; return 1; }
    done
  fi
}

# busy: percent of CPU time busy over 0.5 s (all CPUs), for the record.
busy() {
  local a b
  read -r _ a1 a2 a3 a4 a5 a6 a7 _ </proc/stat
  sleep 0.5
  read -r _ b1 b2 b3 b4 b5 b6 b7 _ </proc/stat
  a=$(((b1 + b2 + b3 + b5 + b6 + b7) - (a1 + a2 + a3 + a5 + a6 + a7)))
  b=$((a + b4 - a4))
  echo $((b ? 100 * a / b : 0))
}

# wait_all SECS PID...: waits for the processes; kills them after SECS.
# Returns the number of processes that failed or timed out.
wait_all() {
  local secs=$1 t bad=0 pid alive
  shift
  for ((t = 0; t < secs * 5; t++)); do
    alive=0
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.2
  done
  for pid in "$@"; do
    if kill -0 "$pid" 2>/dev/null; then
      log "process $pid still running after ${secs}s: stopped"
      stop_pid "$pid"; bad=$((bad + 1))
    elif ! wait "$pid"; then
      bad=$((bad + 1))
    fi
    untrack "$pid"
  done
  return $bad
}

# record SYS STACK REP FILE: appends a member's RESULT lines to $tmp/raw.
record() {
  sed -n "s/^RESULT /sys=$1 stack=$2 rep=$3 /p" "$4" >>"$tmp/raw"
}

nscen() { echo "$1" | tr ',' '\n' | wc -l; }
jesc() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g'; }
busy_log=()

# ---------------------------------------------------------------- corosync
corosync_conf() {
  local i
  cat <<EOF
# Generated by tests/perf/peers.sh for one benchmark run.
totem {
  version: 2
  cluster_name: ${prefix}
  transport: knet
  crypto_cipher: none
  crypto_hash: none
}
nodelist {
EOF
  for ((i = 1; i <= members; i++)); do
    printf '  node {\n    ring0_addr: 198.18.10.%d\n    name: h%d\n    nodeid: %d\n  }\n' "$i" "$i" "$i"
  done
  cat <<EOF
}
quorum {
  provider: corosync_votequorum
}
logging {
  to_stderr: yes
  to_logfile: no
  to_syslog: no
  timestamp: on
}
system {
  # Real-time scheduling starves everything else on 2 cores.
  sched_rr: no
  move_to_root_cgroup: no
}
EOF
}

corosync_up() {
  local i h c t joined
  corosync_conf >"$tmp/corosync.conf"
  for ((i = 1; i <= members; i++)); do
    # The holder keeps the host's private mount namespace alive; corosync
    # and its CPG client join it (and the network namespace) by its pid.
    # (nsenter directly, not through a shell function: $! must be the
    # process itself, not a subshell around it.)
    nsenter --net="/run/netns/${prefix}h$i" -- unshare --mount --propagation private -- sh -c '
      for d in /run /dev/shm /var/lib/corosync /var/log/corosync; do
        mkdir -p "$d" && mount -t tmpfs -o mode=0755 "vsxpeer" "$d" || exit 1
      done
      chmod 1777 /dev/shm
      mkdir -p /run/corosync
      echo ready
      exec sleep 100000' >"$tmp/holder$i.log" 2>&1 &
    h=$!
    pids+=("$h")
    for ((t = 0; t < 50; t++)); do
      grep -q ready "$tmp/holder$i.log" && break
      kill -0 "$h" 2>/dev/null || break
      sleep 0.1
    done
    grep -q ready "$tmp/holder$i.log" || { log "mount namespace $i failed:"; cat "$tmp/holder$i.log" >&2; return 1; }
    # Paranoia: the holder must be in host i's network namespace and in a
    # mount namespace of its own, or corosync would touch the real /run.
    if [ "$(stat -L -c %i "/proc/$h/ns/net")" != "$(stat -L -c %i "/run/netns/${prefix}h$i")" ] ||
       [ "$(stat -L -c %i "/proc/$h/ns/mnt")" = "$(stat -L -c %i /proc/$$/ns/mnt)" ]; then
      log "host $i: holder $h is not in the namespaces expected"; return 1
    fi
    eval "holder_$i=$h"
    nsenter -t "$h" --mount --net -- corosync -f -c "$tmp/corosync.conf" >"$tmp/corosync$i.log" 2>&1 &
    c=$!
    pids+=("$c")
    eval "corosync_$i=$c"
  done
  # Wait until every daemon sees all members joined.
  for ((t = 0; t < 300; t++)); do
    joined=0
    for ((i = 1; i <= members; i++)); do
      h=$(eval "echo \$holder_$i")
      c=$(eval "echo \$corosync_$i")
      kill -0 "$c" 2>/dev/null || { log "corosync $i exited:"; tail -20 "$tmp/corosync$i.log" >&2; return 1; }
      n=$(nsenter -t "$h" --mount --net -- corosync-cmapctl runtime.members 2>/dev/null | grep -c 'status (str) = joined')
      [ "$n" = "$members" ] && joined=$((joined + 1))
    done
    [ $joined = "$members" ] && return 0
    sleep 0.2
  done
  log "corosync ring did not form in 60 s"
  for ((i = 1; i <= members; i++)); do tail -5 "$tmp/corosync$i.log" >&2; done
  return 1
}

corosync_down() {
  local i c h
  for ((i = 1; i <= members; i++)); do
    c=$(eval "echo \${corosync_$i:-}")
    h=$(eval "echo \${holder_$i:-}")
    [ -n "$c" ] && { stop_pid "$c"; untrack "$c"; }
  done
  for ((i = 1; i <= members; i++)); do
    h=$(eval "echo \${holder_$i:-}")
    [ -n "$h" ] && { stop_pid "$h"; untrack "$h"; }
  done
}

# run_cpg REP: one run of every CPG scenario (one session of 3 clients).
run_cpg() {
  local rep=$1 i h p ps=() n limit
  n=$(nscen "$cpg_scen")
  limit=$(awk -v n="$n" -v s="$secs" -v w="$cpg_warm" 'BEGIN { printf "%d", n * (s + w + 15) + 60 }')
  busy_log+=("cpg run $rep: $(busy)%")
  for ((i = 1; i <= members; i++)); do
    h=$(eval "echo \$holder_$i")
    # shellcheck disable=SC2086
    nsenter -t "$h" --mount --net -- "$cpg_bench" --id "$i" --members "$members" --group "vsxb_r$rep" \
      --sender "$cpg_sender" --scen "$cpg_scen" --secs "$secs" --warmup "$cpg_warm" --rate "$lat_rate" \
      --timeout "$limit" ${CPG_BENCH_ARGS:-} >"$tmp/cpg.r$rep.m$i.out" 2>"$tmp/cpg.r$rep.m$i.err" &
    p=$!
    pids+=("$p"); ps+=("$p")
  done
  if ! wait_all $((limit + 10)) "${ps[@]}"; then
    log "CPG run $rep failed:"; tail -3 "$tmp"/cpg.r$rep.m*.err >&2; failed=1
  fi
  for ((i = 1; i <= members; i++)); do record cpg agreed "$rep" "$tmp/cpg.r$rep.m$i.out"; done
  log "CPG run $rep/$reps done"
}

# ----------------------------------------------------------------- JGroups
# run_jg NAME STACK SCENARIOS REP: one run of every scenario (3 JVMs).
run_jg() {
  local name=$1 stack=$2 scen=$3 rep=$4 i p ps=() n limit t
  n=$(nscen "$scen")
  limit=$(awk -v n="$n" -v s="$secs" -v w="$jg_warm" 'BEGIN { printf "%d", n * (s + w + 15) + 90 }')
  busy_log+=("jgroups $name run $rep: $(busy)%")
  for ((i = 1; i <= members; i++)); do
    # shellcheck disable=SC2086
    nsenter --net="/run/netns/${prefix}h$i" -- java -Xms256m -Xmx1g -Djava.net.preferIPv4Stack=true \
      -Djgroups.bind_addr="198.18.10.$i" -cp "$jgjar:$tmp/classes" JgBench --id "$i" --members "$members" \
      --sender "$jg_sender" --stack "$stack" --cluster "vsxb_${name}_r$rep" --scen "$scen" --secs "$secs" \
      --jit-warmup "$jg_jit" --warmup "$jg_warm" --warmup-next "$jg_warm_next" --rate "$lat_rate" --timeout "$limit" ${JG_BENCH_ARGS:-} \
      >"$tmp/jg-$name.r$rep.m$i.out" 2>"$tmp/jg-$name.r$rep.m$i.err" &
    p=$!
    pids+=("$p"); ps+=("$p")
    if [ "$i" = 1 ]; then
      # Member 1 connects first: it becomes the coordinator (SEQUENCER's
      # sequencer); the one sender is another member (jg_sender).
      for ((t = 0; t < 300; t++)); do
        grep -q '^JOINED' "$tmp/jg-$name.r$rep.m1.out" 2>/dev/null && break
        kill -0 "$p" 2>/dev/null || break
        sleep 0.1
      done
    fi
  done
  if ! wait_all $((limit + 10)) "${ps[@]}"; then
    log "JGroups $name run $rep failed:"; tail -3 "$tmp"/jg-$name.r$rep.m*.err >&2; failed=1
  fi
  for ((i = 1; i <= members; i++)); do record jgroups "$name" "$rep" "$tmp/jg-$name.r$rep.m$i.out"; done
  log "JGroups $name run $rep/$reps done"
}

# ------------------------------------------------------------------- runs
start=$(date +%s)
date_run=$(date -u '+%Y-%m-%d %H:%M UTC')
: >"$tmp/raw"
hosts_up || { log "test hosts failed"; exit 1; }
log "test hosts ${prefix}h1..h$members up (198.18.10.1-$members, bridge in ${prefix}br)"
# The systems take turns within each round, in an order that rotates from
# round to round, so each system's runs meet the same background load and
# the ratios between systems compare runs made back to back.  The corosync
# daemons stay up throughout (idle, they only pass the token around).
kinds=()
if [ $do_cpg = 1 ]; then
  if corosync_up; then
    log "corosync ring formed ($(($(date +%s) - start)) s)"
    kinds+=(cpg)
  else
    failed=1
  fi
fi
[ $do_jg = 1 ] && kinds+=(jg-udp jg-seq)
for ((rep = 1; rep <= reps; rep++)); do
  for ((k = 0; k < ${#kinds[@]}; k++)); do
    case "${kinds[(k + rep - 1) % ${#kinds[@]}]}" in
      cpg) run_cpg "$rep" ;;
      jg-udp) run_jg udp udp.xml "$jg_scen" "$rep" ;;
      jg-seq) run_jg seq "$here/jg-sequencer.xml" "$jg_seq_scen" "$rep" ;;
    esac
  done
done
corosync_down
elapsed=$(($(date +%s) - start))

# ---------------------------------------------------------------- results
# One row per (system, stack, scenario): the slowest member's rate in each
# run, then the median over runs [min..max]; latency is member 1's.
awk -v want="$members" -v reps="$reps" -v mdfile="$tmp/table.md" -v jsfile="$tmp/rows.json" \
    -v chkfile="$tmp/check" '
function grp(v,   n) { n = sprintf("%.0f", v); while (n ~ /[0-9][0-9][0-9][0-9]/) sub(/[0-9][0-9][0-9]([,]|$)/, ",&", n); return n }
function sortn(a, n,   i, j, t) { for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t } }
function med(a, n) { sortn(a, n); return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
function num(v) { return v == "" ? "null" : sprintf("%.1f", v) }
{
  delete f
  for (i = 1; i <= NF; i++) { k = $i; sub(/=.*/, "", k); v = $i; sub(/^[^=]*=/, "", v); f[k] = v }
  G = f["sys"] "|" f["stack"] "|" f["scen"]; R = G "|" f["rep"]
  if (!(G in seen)) { seen[G] = 1; ord[++ng] = G; sys[G] = f["sys"]; stk[G] = f["stack"]; md[G] = f["mode"]
                      sz[G] = f["size"] + 0; snd[G] = f["senders"] + 0; src[G] = f["src"] + 0
                      nb[G] = f["nobundle"] + 0; co[G] = f["coord"] + 0 }
  if (!(R in nm)) { nr[G]++; rk[G, nr[G]] = R; o50[R] = 0; o99[R] = 0 }
  nm[R]++
  if (!(R in rmin) || f["rate"] + 0 < rmin[R]) { rmin[R] = f["rate"] + 0; bmin[R] = f["mbps"] + 0 }
  fe[R] += f["fifo_err"]
  if (!(R in h1)) h1[R] = f["hash"]; else if (h1[R] != f["hash"]) hd[R] = 1
  if (f["id"] == f["src"]) { p50[R] = f["lat_p50_us"] + 0; p99[R] = f["lat_p99_us"] + 0 }
  else if (f["mode"] == "lat") {
    if (f["lat_p50_us"] + 0 > o50[R]) o50[R] = f["lat_p50_us"] + 0
    if (f["lat_p99_us"] + 0 > o99[R]) o99[R] = f["lat_p99_us"] + 0
  }
}
END {
  bad = 0; nj = 0
  for (gi = 1; gi <= ng; gi++) {
    G = ord[gi]; n = nr[G]; chk = "ok"
    total = (stk[G] != "udp")
    for (r = 1; r <= n; r++) {
      R = rk[G, r]; a[r] = rmin[R]; b[r] = bmin[R]; c[r] = p50[R]; d[r] = p99[R]; e[r] = o50[R]; x[r] = o99[R]
      runs[r] = rmin[R]
      if (nm[R] != want) chk = "missing member"
      else if (fe[R] > 0) chk = "FIFO gaps"
      else if (hd[R] && (total || snd[G] == 1)) chk = "ORDER DIFFERS"
    }
    if (n < reps && chk == "ok") chk = "missing run"
    if (chk != "ok") bad++
    mr = med(a, n); lo = a[1]; hi = a[n]; mb = med(b, n)
    l50 = med(c, n); l99 = med(d, n); ol50 = med(e, n); ol99 = med(x, n)
    if (sys[G] == "cpg") { sname = "Corosync CPG"; st = "knet, AGREED"; o = "total"; js = "corosync-cpg"; jst = "knet-agreed" }
    else if (stk[G] == "udp") { sname = "JGroups"; st = "udp.xml"; o = "fifo"; js = "jgroups"; jst = "udp.xml" }
    else { sname = "JGroups"; st = "udp.xml+SEQUENCER"; o = "total"; js = "jgroups"; jst = "udp.xml+SEQUENCER" }
    if (md[G] == "lat" && sys[G] != "cpg") st = st (nb[G] ? ", bundling off" : ", bundled")
    sd = (snd[G] == 1 ? "1 of " want : want " of " want)
    if (sys[G] == "jgroups" && total && snd[G] == 1 && src[G] == co[G]) sd = sd ", the sequencer"
    szs = (sz[G] >= 1024 ? sz[G] / 1024 " KiB" : sz[G] " B")
    if (md[G] == "tput") {
      rs = grp(mr) (n > 1 ? " [" grp(lo) ".." grp(hi) "]" : ""); ms = sprintf("%.1f", mb); ls = "-"; os = "-"
    } else {
      rs = "latency run, " grp(mr) "/s"; ms = "-"
      ls = sprintf("%.0f / %.0f us", l50, l99); os = sprintf("%.0f / %.0f us", ol50, ol99)
    }
    printf "| %s | %s (%s) | %s | %s | %s | %s | %s | %s | %s |\n", sname, st, o, szs, sd, rs, ms, ls, os, chk > mdfile
    rl = ""
    for (r = 1; r <= n; r++) rl = rl (r > 1 ? ", " : "") sprintf("%.0f", runs[r])
    printf "%s    {\"system\": \"%s\", \"stack\": \"%s\", \"order\": \"%s\", \"mode\": \"%s\", \"size\": %d, \"senders\": %d, \"members\": %d, \"sender_id\": %d, \"coordinator_id\": %s, \"bundling\": %s, \"runs\": %d, \"msgs_per_s\": %.0f, \"msgs_per_s_min\": %.0f, \"msgs_per_s_max\": %.0f, \"mb_per_s\": %.2f, \"msgs_per_s_runs\": [%s], \"self_p50_us\": %s, \"self_p99_us\": %s, \"others_p50_us\": %s, \"others_p99_us\": %s, \"check\": \"%s\"}", \
      (nj++ ? ",\n" : ""), js, jst, o, md[G], sz[G], snd[G], want, src[G], (sys[G] == "cpg" ? "null" : co[G]), \
      (sys[G] == "cpg" ? "null" : (nb[G] ? "false" : "true")), n, mr, lo, hi, mb, rl, \
      (md[G] == "lat" ? num(l50) : "null"), (md[G] == "lat" ? num(l99) : "null"), \
      (md[G] == "lat" ? num(ol50) : "null"), (md[G] == "lat" ? num(ol99) : "null"), chk > jsfile
  }
  print bad > chkfile
}' "$tmp/raw"
[ -s "$tmp/check" ] && [ "$(cat "$tmp/check")" != 0 ] && failed=1
[ -s "$tmp/raw" ] || failed=1

header="| system | stack (ordering) | size | senders | msgs/s at slowest member | MB/s | self-delivery p50 / p99 | one-way to others p50 / p99 | check |
|---|---|---|---|---:|---:|---|---|---|"
table="$header
$(cat "$tmp/table.md" 2>/dev/null)"
echo
echo "$table"
echo
echo "($mode mode: $reps run(s) per row, ${secs} s measured per scenario; $elapsed s in all)"

versions="corosync $(dpkg-query -W -f='${Version}' corosync 2>/dev/null), libjgroups-java $(dpkg-query -W -f='${Version}' libjgroups-java 2>/dev/null), $(java -version 2>&1 | head -1 | tr -d '"\\')"
if [ -n "$json" ]; then
  {
    echo "{"
    echo "  \"generator\": \"tests/perf/peers.sh\","
    echo "  \"command\": \"$(jesc "$cmdline")\","
    echo "  \"date\": \"$date_run\","
    echo "  \"mode\": \"$mode\", \"runs\": $reps, \"measured_s\": $secs, \"latency_rate_per_s\": $lat_rate,"
    echo "  \"versions\": \"$(jesc "$versions")\","
    echo "  \"kernel\": \"$(uname -r)\", \"cpus\": $(nproc),"
    echo "  \"throughput\": \"measured messages/s at the slowest of the members (median over runs of each run's slowest)\","
    echo "  \"rows\": ["
    cat "$tmp/rows.json" 2>/dev/null
    echo
    echo "  ]"
    echo "}"
  } >"$json"
  log "wrote $json"
fi

if [ "$doc" != none ]; then
  mkdir -p "$(dirname "$doc")"
  {
    cat <<EOF
# Peer benchmark: Corosync CPG and JGroups on this machine

Generated by \`$cmdline\` on $date_run, $elapsed s. Method and caveats: tests/perf/README.md.

- Machine: $(nproc) vCPU, kernel $(uname -r), $(. /etc/os-release && echo "$PRETTY_NAME").
- Versions: $versions.
- Three members, one per test host (network namespace on a veth into one Linux bridge, 198.18.10.1-3).
  Corosync: three daemons, knet, no crypto, \`sched_rr: no\`, each in its own network and mount
  namespace (private /run and /dev/shm); one CPG client per daemon, CPG_TYPE_AGREED.
  JGroups: three JVMs, IP multicast on the bridge, the jar's udp.xml (FIFO) and
  tests/perf/jg-sequencer.xml (udp.xml + SEQUENCER, total order); member 1 connects first, so it is
  the coordinator (the sequencer); the one sender is member 2, whose total-order messages go to the
  sequencer and back. (A udp.xml member, and SEQUENCER's coordinator, deliver their own multicasts
  locally: the JGroups FIFO self-delivery latency does not cross the network; read the one-way column.)
- $mode mode: $reps run(s) per row, ${secs} s measured per scenario after a warm-up (CPG ${cpg_warm} s;
  JGroups: each JVM session starts with ${jg_jit} s of unmeasured traffic from all members, then
  ${jg_warm} s before the first scenario and ${jg_warm_next} s before each later one). The systems take
  turns in each round, in rotating order.
  msgs/s is the slowest member's count of measured messages over its first-to-last delivery
  time (the sender counts its own deliveries); the median over runs, [min..max]. MB = 10^6 bytes of
  message. Latency: the one sender casts 64-byte messages at ${lat_rate}/s; self-delivery is send -> its
  own delivery, one-way is send -> delivery at the other members (the worse of the two; one clock).
- check: every member got every message in per-sender order; in total order (and with one
  sender) every member delivered the same sequence (hash of sender and seqno).
- CPU busy (all cores) just before each run: $(IFS=';'; echo "${busy_log[*]}" | sed 's/;/; /g').
  Other work was running on the same 2 cores: absolute figures are noisy (often ±30-40% run to
  run, sometimes 2x; [min..max] shows it); compare ratios measured back to back.

$table
EOF
  } >"$doc"
  log "wrote $doc"
fi
[ $failed = 0 ] || log "some runs failed (see above)"
exit $failed
