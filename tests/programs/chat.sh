#!/usr/bin/env bash
# chat.sh TRANSPORT - the README's demo (demos/run-demo.sh) as a test,
# over afxdp or udp: three vsx-chat members in test hosts talk, carol is
# killed (kill -9) and comes back as a new process, bob leaves, then the
# others.  run-demo.sh gives its own verdict; this script then checks the
# members' outputs itself:
#   - alice and bob (in the group from start to end of the chat) saw the
#     same messages in the same order; the first carol saw exactly the
#     first messages, up to her crash, and the returning carol exactly the
#     last ones, from her return;
#   - the crash is shown as a failure at alice and bob, never as a leave;
#   - carol is shown as joined twice at alice and bob, and the returning
#     carol as in the group with alice and bob;
#   - bob's and alice's leaves are shown as leaves;
# and runs the trace checker on the four traces.  Root only (exit 77).
# Needs $VSX_BIN (ctest sets it) holding vsx-chat.
set -u
transport=${1:?usage: chat.sh afxdp|udp}
src=${VSX_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (test hosts, AF_XDP)"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: python3 missing (trace checker)"; exit 77; }
: "${VSX_BIN:?VSX_BIN is not set (ctest sets it to the built programs)}"
tmp=$(mktemp -d)
rc=1
trap 'if [ $rc = 0 ]; then rm -rf "$tmp"; else echo "outputs and traces kept in $tmp"; fi' EXIT
fail() { echo "FAIL: chat over $transport: $*"; exit 1; }

bash "$src/demos/run-demo.sh" --no-build --transport "$transport" --out "$tmp"
st=$?
[ $st = 77 ] && { rc=0; exit 77; }
[ $st = 0 ] || fail "run-demo.sh exited with $st"

# msgs KEY: the chat lines of a member's output, without time and marker.
msgs() { sed -nE 's/^([0-9:.]+ )?[> ] (\[[^]]+\] .*)$/\2/p' "$tmp/$1.out"; }
count() { grep -cE "$2" "$tmp/$1.out"; }

msgs alice >"$tmp/alice.msgs"; msgs bob >"$tmp/bob.msgs"
msgs carol >"$tmp/carol.msgs"; msgs carol2 >"$tmp/carol2.msgs"
n_a=$(wc -l <"$tmp/alice.msgs") n_b=$(wc -l <"$tmp/bob.msgs")
n_c=$(wc -l <"$tmp/carol.msgs") n_c2=$(wc -l <"$tmp/carol2.msgs")
[ "$n_a" = 11 ] || fail "alice saw $n_a messages, not the 11 typed"
head -n "$n_b" "$tmp/alice.msgs" | cmp -s - "$tmp/bob.msgs" || fail "bob's messages are not alice's first $n_b"
[ "$n_b" = 9 ] || fail "bob saw $n_b messages before leaving, not 9"
head -n 4 "$tmp/alice.msgs" | cmp -s - "$tmp/carol.msgs" || fail "the first carol did not see exactly the first 4 messages"
tail -n 5 "$tmp/alice.msgs" | cmp -s - "$tmp/carol2.msgs" || fail "the returning carol did not see exactly the last 5 messages"
for m in alice bob; do
  [ "$(count $m '\* carol failed$')" = 1 ] || fail "$m does not show carol's crash as a failure"
  [ "$(count $m '\* carol (left|joined)$')" = 2 ] || fail "$m does not show carol joined twice (and never left)"
  [ "$(count $m '\* carol joined$')" = 2 ] || fail "$m shows carol left: the crash is not a leave"
done
grep -qE "\* you are in group 'chat' with (alice and bob|bob and alice)$" "$tmp/carol2.out" ||
  fail "the returning carol is not shown in the group with alice and bob"
for m in alice carol2; do
  [ "$(count $m '\* bob left$')" = 1 ] || fail "$m does not show bob's leave"
done
[ "$(count carol2 '\* alice left$')" = 1 ] || fail "carol does not show alice's leave"
for m in alice bob carol2; do
  [ "$(count $m "\* you left group 'chat'$")" = 1 ] || fail "$m did not leave gracefully"
done
[ "$(ls "$tmp"/trace/*.jsonl | wc -l)" = 4 ] || fail "expected 4 traces in $tmp/trace"
verdict=$(python3 "${VSX_CHECKER:-$src/tests/checker/vsx_check.py}" --no-exit-is-crash "$tmp/trace") ||
  { echo "$verdict"; fail "the trace checker"; }
echo "$verdict" | tail -1
rc=0
echo "PASS: chat over $transport (alice $n_a, bob $n_b, carol $n_c, returning carol $n_c2 messages)"
