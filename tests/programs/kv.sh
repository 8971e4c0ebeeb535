#!/usr/bin/env bash
# kv.sh MODE - vsx-kv under crashes: three replicas, clients streaming
# writes, two replicas killed with kill -9 and restarted, then every
# replica must hold the same content and every answered write must be in
# it.  MODE:
#   udp    (default) one replica per test host (network namespaces on a
#          bridge, tests/integration/netns.sh), UDP multicast; root
#   afxdp  the same over AF_XDP; root and AF_XDP support
#   local  three replicas on 127.0.0.1, UDP unicast (--peer); no root
# Steps:
#   1. start r1, r2, r3 (--quorum 2) and wait until all three are in one view
#   2. kv_client.py load: three writers, one on each replica, pipelined
#      puts of new keys, overwrites, dels and cas for LOAD_S seconds
#   3. meanwhile kill -9 r2 (its writer reconnects to another replica),
#      restart it as a new process: it must get the store by state
#      transfer; then the same with r1 (the first started: usually the
#      coordinator)
#   4. the load must have reconnected at least twice and seen no answer
#      that contradicts the writes it had answered
#   5. kv_client.py verify: all replicas give the same digest and every
#      key holds what the answered writes say (OK = present, also when the
#      replica that said OK was killed right after)
#   6. SIGTERM all, and the trace checker (vsx_check.py) on every
#      replica's trace, the killed ones included
# LOAD_S sets the load's seconds (12), KEEP=1 keeps the logs and traces,
# KV_ARGS adds options to every replica (e.g. KV_ARGS="--fail-ms 1000").
# Needs VSX_BIN and VSX_CHECKER (ctest sets them), python3.
set -u
here=$(cd "$(dirname "$0")" && pwd)
kv=${VSX_BIN:?VSX_BIN is not set: ctest sets it to the demos folder of the build}/vsx-kv
checker=${VSX_CHECKER:?VSX_CHECKER is not set: ctest sets it to tests/checker/vsx_check.py}
client=$here/kv_client.py
mode=${1:-udp}
load_s=${LOAD_S:-12}
command -v python3 >/dev/null || { echo "SKIP: python3 missing (the test client and the trace checker)"; exit 77; }
case "$mode" in
  udp|afxdp)
    source "$here/../integration/netns.sh"
    vsx_require_root
    # (netns.sh's bridge floods multicast: with IGMP snooping a host's
    # entry was lost now and then under this load, cutting its replica off.)
    vsx_hosts_up 3 || { echo "FAIL: test hosts"; exit 1; } ;;
  local) ;;
  *) echo "usage: kv.sh [udp|afxdp|local]" >&2; exit 2 ;;
esac
tmp=$(mktemp -d)
mkdir "$tmp/trace"
rc=1
declare -A pid gen
cleanup() {
  for i in "${!pid[@]}"; do kill -9 "${pid[$i]}" 2>/dev/null; done
  wait 2>/dev/null
  [ "$mode" = local ] || vsx_hosts_down
  if [ $rc = 0 ] && [ -z "${KEEP:-}" ]; then rm -rf "$tmp"; else echo "logs and traces kept in $tmp"; fi
}
trap cleanup EXIT
port=$((30000 + RANDOM % 20000))
fail() { echo "FAIL: vsx-kv $mode: $*"; exit 1; }

# start i: a new replica process on host i (a new member id each time).
start() {
  local i=$1
  gen[$i]=$((${gen[$i]:-0} + 1))
  local args=(--listen "unix:$tmp/r$i.sock" --name "r$i-${gen[$i]}" --quorum 2 --trace "$tmp/trace" ${KV_ARGS:-})
  if [ "$mode" = local ]; then
    "$kv" "${args[@]}" --port $((port + i)) --peer 127.0.0.1:$((port + 1)) --peer 127.0.0.1:$((port + 2)) \
      --peer 127.0.0.1:$((port + 3)) >"$tmp/r$i-${gen[$i]}.log" 2>&1 &
  else
    vsx_bg "$i" "$kv" "${args[@]}" --transport "$mode" --if eth0 --mcast 239.255.18.33 --port $port \
      >"$tmp/r$i-${gen[$i]}.log" 2>&1
  fi
  pid[$i]=$!
}

stat_of() { python3 "$client" cmd "unix:$tmp/r$1.sock" stats 2>/dev/null; }
field() { sed -n "s/.* $1=\([0-9]*\).*/\1/p"; }

# wait_group [SINCE]: all three replicas answer stats in a view of 3
# (within 20 s); prints the seconds since SINCE (a Unix time; default now).
wait_group() {
  local i
  for i in 1 2 3; do kill -0 "${pid[$i]}" 2>/dev/null || fail "r$i exited: $(cat "$tmp/r$i-${gen[$i]}.log")"; done
  python3 "$client" waitview "unix:$tmp/r1.sock" "unix:$tmp/r2.sock" "unix:$tmp/r3.sock" --count 3 --timeout 20 \
    --since "${1:-$(date +%s.%N)}"
}

# kill_restart i: kill -9 replica i, start a new one, wait for the view of
# 3, and check the new one got the store by state transfer.
kill_restart() {
  local i=$1 t keys bytes
  kill -9 "${pid[$i]}"
  wait "${pid[$i]}" 2>/dev/null
  echo "kill -9 r$i (pid ${pid[$i]}; its writer must reconnect)"
  sleep 0.5
  local t0
  t0=$(date +%s.%N)
  start "$i"
  t=$(wait_group "$t0") || fail "no view of 3 after restarting r$i"
  local st
  st=$(stat_of "$i")
  bytes=$(echo "$st" | field state_in)
  keys=$(echo "$st" | field keys)
  [ "${bytes:-0}" -gt 0 ] || fail "the restarted r$i got no state (state_in=${bytes:-none})"
  echo "restarted r$i: in the group after ${t}s, got the store by state transfer ($bytes bytes, $keys keys)"
}

t0=$(date +%s.%N)
for i in 1 2 3; do start "$i"; done
sleep 0.3
if [ "$mode" = afxdp ] && ! kill -0 "${pid[1]}" 2>/dev/null && grep -qi "xdp" "$tmp/r1-1.log"; then
  echo "SKIP: vsx-kv cannot run over AF_XDP here: $(cat "$tmp/r1-1.log")"
  rc=0
  exit 77
fi
t=$(wait_group "$t0") || fail "the three replicas never formed one view"
echo "start: r1, r2, r3 in one view after ${t}s"

python3 "$client" load "unix:$tmp/r1.sock" "unix:$tmp/r2.sock" "unix:$tmp/r3.sock" --seconds "$load_s" --rate 250 \
  --seed $port --out "$tmp/model.json" >"$tmp/load.out" 2>&1 &
load=$!
sleep 2
kill_restart 2
sleep 1.5
kill_restart 1
wait $load
load_rc=$?
cat "$tmp/load.out"
[ $load_rc = 0 ] || fail "the load saw answers that contradict the answered writes"
summary=$(tail -1 "$tmp/load.out" | grep '^{') || summary=$(grep '^{' "$tmp/load.out" | tail -1)
reconnects=$(echo "$summary" | python3 -c 'import json,sys; print(json.load(sys.stdin)["reconnects"])')
ok=$(echo "$summary" | python3 -c 'import json,sys; print(json.load(sys.stdin)["ok"])')
[ "$reconnects" -ge 2 ] || fail "the writers reconnected $reconnects times; the kills should have forced at least 2"
[ "$ok" -ge 1000 ] || fail "only $ok writes answered in ${load_s}s"

t=$(wait_group) || fail "the replicas are not in one view of 3 after the load"
python3 "$client" verify "unix:$tmp/r1.sock" "unix:$tmp/r2.sock" "unix:$tmp/r3.sock" --model "$tmp/model.json" ||
  fail "the replicas disagree or lost answered writes"
for i in 1 2 3; do echo "r$i: $(stat_of $i)"; done

for i in 1 2 3; do kill -TERM "${pid[$i]}"; done
for i in 1 2 3; do
  wait "${pid[$i]}" || fail "r$i exited with an error: $(cat "$tmp/r$i-${gen[$i]}.log")"
  unset "pid[$i]"
done
verdict=$(python3 "$checker" --no-exit-is-crash "$tmp/trace") || { echo "$verdict"; fail "the trace checker"; }
echo "$verdict" | tail -1
rc=0
echo "PASS: vsx-kv $mode: $ok answered writes, 2 replicas killed and restarted, replicas identical"
