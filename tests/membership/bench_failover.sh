#!/usr/bin/env bash
# bench_failover.sh - how fast views change on the test hosts: vsx
# (membership stack, default parameters) over UDP and over AF_XDP, and
# Corosync 3 with its default configuration (knet, token 3 s), side by
# side, with the same faults.  A benchmark program, not a test.
#
#   bench_failover.sh [-n MEMBERS] [-r REPS] [-s "vsx-udp vsx-afxdp corosync"] [-b BUILD]
#
# Two times, each REPS times per system, median and p99 (p99 of a few
# samples is their maximum):
#   crash: kill -9 of one member (a different one each time, the
#          coordinator among them) -> the new view at EVERY survivor;
#          then the member is restarted (a new process) and rejoins.
#   heal:  one member's link goes down (a partition: both sides go on in
#          views of their own), then up -> the merged view at EVERY member.
# Times come from the members themselves: each appends every view it
# installs to a file with its CLOCK_REALTIME timestamp (vsx: mbr_node's
# <name>.views; Corosync: cpg_watch, a CPG client beside each daemon,
# one line per configuration change), and the fault's time is taken by
# this script just before it acts (one machine, one clock).
# Corosync runs as peers.sh runs it: one daemon per test host, each in the
# host's network namespace and a mount namespace of its own (private /run,
# /dev/shm, /var/lib/corosync), sched_rr off (2 cores).
# Needs root.  Output: one line per sample, then a table.
set -u
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../integration/netns.sh"
vsx_require_root
n=3 reps=10 systems="vsx-udp vsx-afxdp corosync" build=$here/../../build
while getopts "n:r:s:b:" o; do
  case $o in
    n) n=$OPTARG ;; r) reps=$OPTARG ;; s) systems=$OPTARG ;; b) build=$OPTARG ;;
    *) echo "usage: bench_failover.sh [-n MEMBERS] [-r REPS] [-s SYSTEMS] [-b BUILD]" >&2; exit 2 ;;
  esac
done
node=$build/tests/membership/vsx_mbr_node
watch=$build/tests/membership/vsx_cpg_watch
[ -x "$node" ] || { echo "no $node: build first (cmake --build $build)" >&2; exit 2; }
tmp=$(mktemp -d)
if [ ! -x "$watch" ] && [[ $systems == *corosync* ]]; then
  watch=$tmp/cpg_watch
  cc -O2 -o "$watch" "$here/cpg_watch.c" $(pkg-config --cflags --libs libcpg) ||
    { echo "cannot build cpg_watch (apt-get install libcpg-dev)" >&2; exit 2; }
fi
vsx_hosts_up "$n" || { echo "test hosts failed" >&2; exit 1; }
trap 'vsx_hosts_down; rm -rf "$tmp"' EXIT
results=$tmp/results

now_ns() { date +%s%N; }
# first_after FILE COUNT T: the first time in FILE after T when the view
# (last field: its member count) had COUNT members.
first_after() { awk -v c="$2" -v t="$3" '$1 > t && $NF == c { print $1; exit }' "$1" 2>/dev/null; }
# last_count FILE: the member count of the last view in FILE.
last_count() { tail -1 "$1" 2>/dev/null | awk '{ print $NF }'; }

# wait_counts COUNT T FILE...: until every FILE shows a view of COUNT
# members after T (60 s at most); prints the latest of those times - T,
# in ms.
wait_counts() {
  local c=$1 t=$2 f ts worst k
  shift 2
  for ((k = 0; k < 1200; k++)); do
    worst=0
    for f in "$@"; do
      ts=$(first_after "$f" "$c" "$t")
      [ -n "$ts" ] || { worst=; break; }
      [ "$ts" -gt "$worst" ] && worst=$ts
    done
    if [ -n "$worst" ]; then echo $(((worst - t) / 1000)) | awk '{ printf "%.1f", $1 / 1000 }'; return 0; fi
    sleep 0.05
  done
  echo timeout
  return 1
}

# settle COUNT FILE...: until every FILE's last view has COUNT members.
settle() {
  local c=$1 f ok k
  shift
  for ((k = 0; k < 1200; k++)); do
    ok=1
    for f in "$@"; do [ "$(last_count "$f")" = "$c" ] || { ok=0; break; }; done
    [ $ok = 1 ] && { sleep 0.3; return 0; }
    sleep 0.05
  done
  return 1
}

record() { echo "$1 $2 $3" >>"$results"; echo "$1 $2: $3 ms"; }

# ---- vsx ---------------------------------------------------------------------
declare -A vpid vfile
vsx_start() { # host generation transport
  local name=h$1g$2
  vsx_bg "$1" "$node" --transport "$3" --if eth0 --mcast 239.255.18.11 --port $port --eid $((10000 * $2 + $1)) \
    --name "$name" --dir "$tmp/$sys" --rate 100 >"$tmp/$sys/$name.out" 2>&1
  vpid[$1]=$!
  vfile[$1]=$tmp/$sys/$name.views
}

bench_vsx() { # transport
  local tr=$1 gen=0 i j k t0 t others
  port=$((47800 + RANDOM % 100))
  mkdir -p "$tmp/$sys"
  for ((i = 1; i <= n; i++)); do vsx_start "$i" 0 "$tr"; done
  settle "$n" "${vfile[@]}" || { echo "$sys: no view of $n" >&2; return 1; }
  for ((k = 0; k < reps; k++)); do
    i=$((k % n + 1))
    others=(); for ((j = 1; j <= n; j++)); do [ $j = $i ] || others+=("${vfile[$j]}"); done
    t0=$(now_ns)
    kill -9 "${vpid[$i]}"; wait "${vpid[$i]}" 2>/dev/null
    t=$(wait_counts $((n - 1)) "$t0" "${others[@]}") || { echo "$sys: crash $k: no new view" >&2; return 1; }
    record "$sys" crash "$t"
    gen=$((gen + 1))
    vsx_start "$i" "$gen" "$tr"
    settle "$n" "${vfile[@]}" || { echo "$sys: no rejoin" >&2; return 1; }
  done
  for ((k = 0; k < reps; k++)); do
    i=$((k % n + 1))
    others=(); for ((j = 1; j <= n; j++)); do [ $j = $i ] || others+=("${vfile[$j]}"); done
    vsx_on "$i" ip link set eth0 down
    settle $((n - 1)) "${others[@]}" && settle 1 "${vfile[$i]}" || { echo "$sys: no partition" >&2; return 1; }
    t0=$(now_ns)
    vsx_on "$i" ip link set eth0 up
    t=$(wait_counts "$n" "$t0" "${vfile[@]}") || { echo "$sys: heal $k: no merge" >&2; return 1; }
    record "$sys" heal "$t"
    settle "$n" "${vfile[@]}"
  done
  for ((i = 1; i <= n; i++)); do kill "${vpid[$i]}" 2>/dev/null; wait "${vpid[$i]}" 2>/dev/null; done
}

# ---- corosync ------------------------------------------------------------------
declare -A holder cpid wpid cfile
corosync_conf() {
  printf 'totem {\n  version: 2\n  cluster_name: vsxfail%d\n  transport: knet\n  crypto_cipher: none\n  crypto_hash: none\n}\nnodelist {\n' $$
  for ((i = 1; i <= n; i++)); do printf '  node {\n    ring0_addr: 198.18.0.%d\n    name: h%d\n    nodeid: %d\n  }\n' "$i" "$i" "$i"; done
  printf '}\nquorum {\n  provider: corosync_votequorum\n}\nlogging {\n  to_stderr: yes\n  to_logfile: no\n  to_syslog: no\n}\n'
  printf 'system {\n  sched_rr: no\n  move_to_root_cgroup: no\n}\n'
}

cs_holder() { # host: a private mount namespace inside host's network namespace
  local t
  nsenter --net="/run/netns/${VSX_NS_PREFIX}h$1" -- unshare --mount --propagation private -- sh -c '
    for d in /run /dev/shm /var/lib/corosync /var/log/corosync; do
      mkdir -p "$d" && mount -t tmpfs -o mode=0755 vsxfail "$d" || exit 1
    done
    chmod 1777 /dev/shm; mkdir -p /run/corosync; echo ready; exec sleep 100000' >"$tmp/cs/holder$1.log" 2>&1 &
  holder[$1]=$!
  VSX_BG_PIDS+=("$!")
  for ((t = 0; t < 50; t++)); do grep -q ready "$tmp/cs/holder$1.log" && return 0; sleep 0.1; done
  return 1
}

cs_start() { # host generation
  nsenter -t "${holder[$1]}" --mount --net -- corosync -f -c "$tmp/cs/corosync.conf" >>"$tmp/cs/corosync$1.log" 2>&1 &
  cpid[$1]=$!
  VSX_BG_PIDS+=("$!")
  cfile[$1]=$tmp/cs/h$1g$2.views
  nsenter -t "${holder[$1]}" --mount --net -- "$watch" vsxbench "${cfile[$1]}" >>"$tmp/cs/watch$1.log" 2>&1 &
  wpid[$1]=$!
  VSX_BG_PIDS+=("$!")
}

bench_corosync() {
  local gen=0 i j k t0 t others
  mkdir -p "$tmp/cs"
  corosync_conf >"$tmp/cs/corosync.conf"
  for ((i = 1; i <= n; i++)); do cs_holder "$i" || { echo "corosync: mount namespace failed" >&2; return 1; }; done
  for ((i = 1; i <= n; i++)); do cs_start "$i" 0; done
  settle "$n" "${cfile[@]}" || { echo "corosync: no membership of $n" >&2; return 1; }
  for ((k = 0; k < reps; k++)); do
    i=$((k % n + 1))
    others=(); for ((j = 1; j <= n; j++)); do [ $j = $i ] || others+=("${cfile[$j]}"); done
    t0=$(now_ns)
    kill -9 "${cpid[$i]}"; wait "${cpid[$i]}" 2>/dev/null
    t=$(wait_counts $((n - 1)) "$t0" "${others[@]}") || { echo "corosync: crash $k: no new membership" >&2; return 1; }
    record corosync crash "$t"
    kill "${wpid[$i]}" 2>/dev/null; wait "${wpid[$i]}" 2>/dev/null
    gen=$((gen + 1))
    cs_start "$i" "$gen"
    settle "$n" "${cfile[@]}" || { echo "corosync: no rejoin" >&2; return 1; }
  done
  for ((k = 0; k < reps; k++)); do
    i=$((k % n + 1))
    others=(); for ((j = 1; j <= n; j++)); do [ $j = $i ] || others+=("${cfile[$j]}"); done
    vsx_on "$i" ip link set eth0 down
    settle $((n - 1)) "${others[@]}" && settle 1 "${cfile[$i]}" || { echo "corosync: no partition" >&2; return 1; }
    t0=$(now_ns)
    vsx_on "$i" ip link set eth0 up
    t=$(wait_counts "$n" "$t0" "${cfile[@]}") || { echo "corosync: heal $k: no merge" >&2; return 1; }
    record corosync heal "$t"
    settle "$n" "${cfile[@]}"
  done
  for ((i = 1; i <= n; i++)); do kill "${wpid[$i]}" "${cpid[$i]}" "${holder[$i]}" 2>/dev/null; done
}

echo "bench_failover: $n members, $reps samples per time; $(corosync -v 2>/dev/null | head -1)"
for sys in $systems; do
  case $sys in
    vsx-udp) bench_vsx udp ;;
    vsx-afxdp) bench_vsx afxdp ;;
    corosync) bench_corosync ;;
    *) echo "unknown system $sys" >&2 ;;
  esac
done
echo
echo "| system | crash -> new view at every survivor, median / p99 (ms) | heal -> merged view at every member, median / p99 (ms) |"
echo "|---|---:|---:|"
for sys in $systems; do
  row="| $sys"
  for what in crash heal; do
    row="$row | $(awk -v s="$sys" -v w="$what" '$1 == s && $2 == w { print $3 }' "$results" 2>/dev/null | sort -n |
      awk '{ v[NR] = $1 } END { if (!NR) { print "-"; exit }
             m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
             p = v[int(0.99 * NR + 0.999999)]; printf "%.0f / %.0f (%d samples)", m, p, NR }')"
  done
  echo "$row |"
done
