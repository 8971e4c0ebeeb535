#!/usr/bin/env bash
# kv_proto.sh - vsx-kv's line protocol and options, with one replica (a
# group of one is a valid group: every write is still a safe cast through
# the whole stack).  No root, no network: UDP unicast on 127.0.0.1 without
# peers, clients over a Unix socket and TCP on 127.0.0.1.
#   1. bad command lines: each exits 2 with a message that says what to do
#   2. kv_client.py proto: every command and error answer, pipelining,
#      partial lines, an overlong line, 20 clients at once, end of input,
#      quit, a full store (--capacity 64)
#   3. the same store over TCP; the digest is the same over both listeners;
#      a second replica with --max-clients 2 --max-pending 1 refuses a third
#      client with ERR busy and answers long pipelines in order
#   4. SIGTERM: exit 0, the Unix socket file removed, and the trace checker
#      (VSX_CHECKER, if set) passes the replica's trace
# Needs VSX_BIN (the built programs; ctest sets it) and python3.
set -u
here=$(cd "$(dirname "$0")" && pwd)
kv=${VSX_BIN:?VSX_BIN is not set: ctest sets it to the demos folder of the build}/vsx-kv
client=$here/kv_client.py
command -v python3 >/dev/null || { echo "SKIP: python3 missing (the test client)"; exit 77; }
tmp=$(mktemp -d)
pid=""
rc=1
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; if [ $rc = 0 ]; then rm -rf "$tmp"; else echo "logs kept in $tmp"; fi' EXIT
fail() { echo "FAIL: vsx-kv protocol: $*"; exit 1; }

# 1. Bad command lines.
bad() { # bad WANTED-TEXT ARGS...: exit 2, stderr has the text
  local want=$1 out code
  shift
  out=$("$kv" "$@" 2>&1 >/dev/null)
  code=$?
  [ $code = 2 ] || fail "'vsx-kv $*' exited $code, want 2"
  echo "$out" | grep -qF -- "$want" || fail "'vsx-kv $*' said '$out', want it to mention '$want'"
}
bad "no --listen" --port 7400
bad "write tcp:HOST:PORT or unix:PATH" --listen foo:bar
bad "IPv4 multicast address" --listen unix:$tmp/x.sock --mcast 10.0.0.1
bad "exclude each other" --listen unix:$tmp/x.sock --mcast 239.1.1.1 --peer 127.0.0.1:7400
bad "give udp or afxdp" --listen unix:$tmp/x.sock --transport tcp
bad "needs --if" --listen unix:$tmp/x.sock --transport afxdp --mcast 239.1.1.1
bad "bad --quorum" --listen unix:$tmp/x.sock --quorum 0
bad "unknown option" --listen unix:$tmp/x.sock --frobnicate
bad "unexpected argument" --listen unix:$tmp/x.sock extra
"$kv" --help | grep -q "^usage: vsx-kv" || fail "--help prints no usage"
echo "options: bad command lines refused with exit 2 and a message"

# 2. The protocol over a Unix socket.
port=$((30000 + RANDOM % 20000))
tcp=$((port + 1))
"$kv" --listen "unix:$tmp/kv.sock" --listen "tcp:127.0.0.1:$tcp" --port $port --name solo --capacity 64 \
  --trace "$tmp" >"$tmp/kv.log" 2>&1 &
pid=$!
for ((i = 0; i < 100; i++)); do
  python3 "$client" cmd "unix:$tmp/kv.sock" stats 2>/dev/null | grep -q " view=1 " && break
  kill -0 $pid 2>/dev/null || fail "vsx-kv exited at start: $(cat "$tmp/kv.log")"
  sleep 0.05
done
python3 "$client" proto "unix:$tmp/kv.sock" --capacity 64 || fail "the protocol over the Unix socket"

# 3. TCP: the same replica, the same content.
# (The store is full now: the proto step filled it; f1 is one of its keys.)
out=$(python3 "$client" cmd "tcp:127.0.0.1:$tcp" "put f1 tcpval" "get f1" "cas f1 tcpval z" "put new x") ||
  fail "no answer over TCP"
[ "$out" = "$(printf 'OK\nVALUE tcpval\nOK\nERR full: the store holds --capacity 64 keys; delete keys or restart the group with a larger --capacity')" ] ||
  fail "over TCP: got '$out'"
d1=$(python3 "$client" cmd "tcp:127.0.0.1:$tcp" digest)
d2=$(python3 "$client" cmd "unix:$tmp/kv.sock" digest)
[ "$d1" = "$d2" ] && [[ "$d1" == DIGEST\ keys=64\ * ]] || fail "digests differ or are wrong: '$d1' / '$d2'"
echo "tcp: answers and digest agree with the Unix socket ($d1)"

# 3b. Limits: a second replica (its own group) with room for 2 clients and
# 1 write in flight.
"$kv" --listen "unix:$tmp/small.sock" --port $((port + 2)) --group kv-limits --name small --max-clients 2 \
  --max-pending 1 >"$tmp/small.log" 2>&1 &
small=$!
for ((i = 0; i < 100; i++)); do
  python3 "$client" cmd "unix:$tmp/small.sock" stats 2>/dev/null | grep -q " view=1 " && break
  sleep 0.05
done
python3 "$client" limits "unix:$tmp/small.sock" || { kill $small; fail "--max-clients / --max-pending"; }
kill -TERM $small
wait $small || fail "the second replica exited with an error: $(cat "$tmp/small.log")"

# 4. Stop.
kill -TERM $pid
wait $pid
code=$?
pid=""
[ $code = 0 ] || fail "vsx-kv exited $code after SIGTERM: $(cat "$tmp/kv.log")"
[ ! -e "$tmp/kv.sock" ] || fail "the Unix socket file is still there after exit"
grep -q '"ev":"exit"' "$tmp"/solo-*.jsonl || fail "the trace has no exit event"
if [ -n "${VSX_CHECKER:-}" ]; then
  verdict=$(python3 "$VSX_CHECKER" "$tmp") || { echo "$verdict"; fail "the trace checker"; }
  echo "$verdict" | tail -1
fi
rc=0
echo "PASS: vsx-kv protocol"
