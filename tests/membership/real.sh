#!/usr/bin/env bash
# real.sh TRANSPORT - dynamic membership over a real transport (udp or
# afxdp): five member processes (tests/membership/mbr_node.c), one per
# test host, start alone and must end in one view; then
#   kill -9 of a member, kill -9 of the coordinator (the sequencer),
#   SIGSTOP of a member (it is excluded) and SIGCONT (it rejoins),
#   a link taken down (a partition: both sides go on) and brought back up
#   (the heal: one view again),
# each followed by the view the survivors must converge to (within 10 s;
# with the default parameters a crash takes about 0.6 s).  At the end
# every member stops (SIGTERM: trace exit "stop") and the trace checker
# (tests/checker/vsx_check.py) must pass the traces of all five.
# Members cast fifo, total and safe casts in turn (properties 7, 8, 9);
# before the pause and the cut they stop casting safe ones (SIGUSR1):
# safe delivery is promised under crashes, not to a member cut off alive.
# Uses the test hosts of tests/integration/netns.sh.  Prints what it
# measured: the time from each fault to the new view at every survivor.
set -u
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../integration/netns.sh"
vsx_require_root
node=${VSX_MBR_NODE:?VSX_MBR_NODE is not set (ctest sets it)}
transport=${1:-udp}
checker=$here/../checker/vsx_check.py
command -v python3 >/dev/null || { echo "SKIP: python3 missing (trace checker)"; exit 77; }
n=5
rc=1
vsx_hosts_up $n || { echo "FAIL: test hosts"; exit 1; }
tmp=$(mktemp -d)
trap 'vsx_hosts_down; if [ $rc = 0 ]; then rm -rf "$tmp"; else echo "traces and logs kept in $tmp"; fi' EXIT
port=$((47300 + RANDOM % 500))
declare -A pid alive

start() {
  vsx_bg "$1" "$node" --transport "$transport" --if eth0 --mcast 239.255.18.9 --port $port --eid $((1000 + $1)) \
    --name "n$1" --dir "$tmp" --svc mixed >"$tmp/n$1.out" 2>&1
  pid[$1]=$!
  alive[$1]=1
}

# view_of i: "ltime coord count" of host i's member, or nothing yet.
view_of() { [ -f "$tmp/n$1.view" ] && cut -d' ' -f1-3 "$tmp/n$1.view"; }

# wait_view COUNT HOST...: every listed member's current view is the same
# one, of COUNT members; prints the seconds it took.
wait_view() {
  local want=$1 t0 i v first
  shift
  t0=$(date +%s.%N)
  for ((k = 0; k < 200; k++)); do
    first=""
    for i in "$@"; do
      v=$(view_of "$i")
      [ -n "$v" ] || { first=bad; break; }
      [ -z "$first" ] && first=$v
      [ "$v" = "$first" ] || { first=bad; break; }
    done
    if [ "$first" != bad ] && [ "$(echo "$first" | cut -d' ' -f3)" = "$want" ]; then
      echo "$(date +%s.%N) $t0" | awk '{ printf "%.2f", $1 - $2 }'
      return 0
    fi
    sleep 0.05
  done
  echo "timeout"
  for i in "$@"; do echo "  n$i: $(view_of "$i")" >&2; done
  return 1
}

live() { for i in "${!alive[@]}"; do [ "${alive[$i]}" = 1 ] && echo "$i"; done | sort -n; }
coord_host() { echo $(($(cut -d' ' -f2 "$tmp/n$1.view") - 1000)); }

fail() { echo "FAIL: membership over $transport: $*"; exit 1; }

for i in $(seq 1 $n); do start "$i"; done
t=$(wait_view $n $(live)) || fail "the $n members never formed one view"
echo "start: one view of $n after ${t}s (from the last start)"

first=$(live | head -1)
c=$(coord_host "$first")
victim=$(live | grep -vx "$c" | tail -1)
kill -9 "${pid[$victim]}"; wait "${pid[$victim]}" 2>/dev/null; alive[$victim]=0
t=$(wait_view 4 $(live)) || fail "no view of 4 after kill -9 of member n$victim"
echo "kill -9 member n$victim: new view at every survivor after ${t}s"

first=$(live | head -1)
c=$(coord_host "$first")
kill -9 "${pid[$c]}"; wait "${pid[$c]}" 2>/dev/null; alive[$c]=0
t=$(wait_view 3 $(live)) || fail "no view of 3 after kill -9 of the coordinator n$c"
echo "kill -9 coordinator n$c: new view at every survivor after ${t}s"

for i in $(live); do kill -USR1 "${pid[$i]}"; done
sleep 0.5 # the last safe casts settle
first=$(live | head -1)
c=$(coord_host "$first")
s=$(live | grep -vx "$c" | tail -1)
kill -STOP "${pid[$s]}"
t=$(wait_view 2 $(live | grep -vx "$s")) || fail "n$s stopped but not excluded"
echo "SIGSTOP n$s: excluded after ${t}s"
kill -CONT "${pid[$s]}"
t=$(wait_view 3 $(live)) || fail "n$s resumed but did not rejoin"
echo "SIGCONT n$s: one view of 3 again after ${t}s"

first=$(live | head -1)
p=$(live | tail -1)
vsx_on "$p" ip link set eth0 down
t=$(wait_view 2 $(live | grep -vx "$p")) || fail "link of n$p down but its side not excluded"
echo "link of n$p down: the others in a view of 2 after ${t}s"
vsx_on "$p" ip link set eth0 up
t=$(wait_view 3 $(live)) || fail "link of n$p up but no merge"
echo "link of n$p up: merged into one view of 3 after ${t}s"

sleep 1 # traffic in the final view, for the checker's delivery property
for i in $(live); do kill -USR2 "${pid[$i]}"; done
sleep 1 # quiet: the last casts reach everyone (a total cast takes a round trip to the sequencer)
for i in $(live); do kill -TERM "${pid[$i]}"; done
for i in $(live); do wait "${pid[$i]}" || fail "n$i exited with an error: $(cat "$tmp/n$i.out")"; done
verdict=$(python3 "$checker" --no-exit-is-crash "$tmp") || { echo "$verdict"; fail "the trace checker"; }
echo "$verdict" | tail -1
rc=0
echo "PASS: membership over $transport"
