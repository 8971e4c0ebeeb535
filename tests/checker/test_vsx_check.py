#!/usr/bin/env python3
"""Tests of vsx_check.py: synthetic trace directories, good runs that must
pass and, for every property, bad runs that must fail on that property (and
on no other one, where the fault can be isolated)."""

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import zlib
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True    # no __pycache__ in the source tree
import vsx_check  # noqa: E402

CHECKER = os.path.join(HERE, "vsx_check.py")


class Run:
    """Writes the traces of a synthetic run.  The helpers keep what a real
    member would write consistent (current view, seq counter, len/crc of the
    message); a bad trace is made by doing a wrong thing on purpose, e.g.
    delivering with another crc or in another view."""

    def __init__(self, group="g"):
        self.group = group
        self.t = 1_700_000_000_000_000_000
        self.files = defaultdict(list)   # file name -> lines (dicts or raw strings)
        self.file_of = {}
        self.name = {}
        self.cur = {}                    # eid -> (vid, ltime, members)
        self.seq = defaultdict(int)
        self.sent = {}                   # (eid, seq) -> send event

    # --- plumbing
    def ev(self, eid, ev, **kw):
        self.t += 1000
        o = {"ev": ev, "t": self.t, "me": eid}
        o.update(kw)
        self.files[self.file_of[eid]].append(o)
        return o

    def raw(self, eid, text):
        self.files[self.file_of[eid]].append(text)

    def write(self, d):
        for f, lines in self.files.items():
            with open(os.path.join(d, f), "w") as fh:
                for x in lines:
                    fh.write(x if isinstance(x, str) else json.dumps(x) + "\n")

    # --- member actions
    def start(self, eid, name, file=None, group=None):
        self.file_of[eid] = file or (name + ".jsonl")
        self.name[eid] = name
        self.ev(eid, "start", name=name, group=group or self.group, transport="sim")

    def vid(self, eid):
        return self.cur[eid][0]

    def install(self, members, who=None, ltime=None, vid=None, block=True, listed=None):
        """Every member of `who` (default: all of `members`) blocks in its
        current view, then installs the view (members, coordinator first)."""
        who = members if who is None else who
        if ltime is None:
            ltime = max([self.cur[e][1] for e in who if e in self.cur] + [0]) + 1
        vid = vid or "%d:%d" % (ltime, members[0])
        for e in who:
            if block and e in self.cur:
                self.ev(e, "block", vid=self.cur[e][0])
            self.ev(e, "view", vid=vid, ltime=ltime, members=list(listed or members))
            self.cur[e] = (vid, ltime, list(members))
        return vid

    def block(self, eid):
        self.ev(eid, "block", vid=self.cur[eid][0])

    def send(self, s, svc="fifo", to=None, payload=None):
        self.seq[s] += 1
        seq = self.seq[s]
        data = payload if payload is not None else ("%d/%d" % (s, seq)).encode()
        kw = dict(vid=self.cur[s][0], svc=svc, seq=seq, len=len(data),
                  crc="%08x" % zlib.crc32(data))
        if to is not None:
            kw["to"] = to
        self.sent[(s, seq)] = self.ev(s, "send", **kw)
        return seq

    def deliver(self, r, s, seq, **override):
        snd = self.sent.get((s, seq), {"svc": "fifo", "len": 1, "crc": "00000000"})
        kw = dict(vid=self.cur[r][0], **{"from": s}, svc=snd["svc"], seq=seq, len=snd["len"], crc=snd["crc"])
        kw.update(override)
        self.ev(r, "deliver", **kw)

    def cast(self, s, svc="fifo", to=None):
        """Send and deliver to every member of the sender's view (or `to`)."""
        seq = self.send(s, svc)
        for r in (self.cur[s][2] if to is None else to):
            self.deliver(r, s, seq)
        return seq

    def p2p(self, s, r):
        seq = self.send(s, "p2p", to=r)
        self.deliver(r, s, seq)
        return seq

    def exit(self, eid, reason):
        self.ev(eid, "exit", reason=reason)

    def traffic(self, members, n=1, svcs=("fifo", "total", "safe")):
        """Everybody casts with every service, and sends to its neighbour."""
        for _ in range(n):
            for s in members:
                for svc in svcs:
                    self.cast(s, svc)
            for i, s in enumerate(members):
                if len(members) > 1:
                    self.p2p(s, members[(i + 1) % len(members)])


A, B, C, D, E = 101, 102, 103, 104, 105


def team(run, *eids):
    for e in eids:
        run.start(e, {A: "alice", B: "bob", C: "carol", D: "dave", E: "erin"}[e])


class Base(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="vsx_check_test.")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def check(self, run, **opts):
        for f in os.listdir(self.dir):
            os.remove(os.path.join(self.dir, f))
        run.write(self.dir)
        return vsx_check.check(self.dir, vsx_check.options(**opts))

    def texts(self, rep, prop):
        return [rep.render(d) for d in rep.details[prop]]

    def assertVerdict(self, run, failing, mention=(), **opts):
        """The run fails exactly the properties `failing`; the first
        violation of each names every string of `mention`."""
        rep = self.check(run, **opts)
        out = io.StringIO()
        vsx_check.print_table(rep, out)
        self.assertEqual(set(rep.failed()), set(failing), out.getvalue())
        for p in failing:
            first = self.texts(rep, p)[0]
            for word in mention:
                self.assertIn(word, first, out.getvalue())
        return rep


# ---------------------------------------------------------------------------
# Good runs

class GoodRuns(Base):
    def test_joins_and_stops(self):
        r = Run()
        team(r, A, B, C)
        r.install([A], who=[A])
        r.traffic([A])
        r.install([A, B])
        r.traffic([A, B], 2)
        r.install([A, B, C])
        r.traffic([A, B, C], 3)
        for e in (A, B, C):
            r.exit(e, "stop")
        rep = self.assertVerdict(r, [])
        for p in vsx_check.PROP_IDS:
            if p not in ("10",):
                self.assertGreater(rep.checked[p], 0, "property %s checked nothing" % p)

    def test_blocks_and_leave(self):
        r = Run()
        team(r, A, B, C)
        r.install([A, B, C])
        r.traffic([A, B, C])
        r.block(C)                   # carol leaves: everybody blocks ...
        r.install([A, B])            # ... and the others go on without her
        r.exit(C, "leave")
        r.traffic([A, B])
        rep = self.assertVerdict(r, [])  # A and B still running at the end
        self.assertEqual(rep.checked["10"], 3)

    def test_crash_with_truncated_line(self):
        r = Run()
        team(r, A, B, C, D)
        r.install([A, B, C, D])
        r.traffic([A, B, C, D])
        # dave delivers a safe cast, then is killed mid-write; its last
        # casts reached nobody.
        r.cast(A, "safe")
        r.send(D, "total")
        r.raw(D, '{"ev":"deliver","t":1,"me":104,"vid":"1:1')
        r.install([A, B, C])
        r.traffic([A, B, C])
        rep = self.assertVerdict(r, [])
        self.assertIn("truncated", rep.notes)
        self.assertEqual(rep.run.by_eid[str(D)].status, "crashed")

    def test_crash_declared(self):
        r = Run()
        team(r, A, B, C)
        r.install([A, B, C])
        r.traffic([A, B, C])
        r.install([A, B])
        r.traffic([A, B])
        self.assertVerdict(r, ["12"])                 # carol looks alive
        self.assertVerdict(r, [], crashed=["carol"])
        self.assertVerdict(r, [], crashed=[str(C)])
        r.exit(A, "stop")
        r.exit(B, "stop")
        self.assertVerdict(r, [], no_exit_is_crash=True)

    def test_partition_and_merge(self):
        r = Run()
        team(r, A, B, C, D)
        r.install([A, B, C, D])
        r.traffic([A, B, C, D])
        # Strong total order done right: carol's total cast was ordered by
        # the sequencer (alice) on the other side; carol and dave never
        # learn its position and do not deliver it.
        m = r.send(C, "total")
        r.deliver(A, C, m)
        r.deliver(B, C, m)
        r.install([A, B], ltime=2)
        r.install([C, D], ltime=2)
        r.traffic([A, B], 2)
        r.traffic([C, D], 2)
        r.install([A, B, C, D], ltime=3)
        r.traffic([A, B, C, D], 2)
        for e in (A, B, C, D):
            r.exit(e, "stop")
        self.assertVerdict(r, [])

    def test_ends_partitioned(self):
        r = Run()
        team(r, A, B, C)
        r.install([A, B, C])
        r.traffic([A, B, C])
        r.install([A, B], ltime=2)
        r.install([C], ltime=2)
        r.traffic([A, B])
        r.traffic([C])
        self.assertVerdict(r, ["12"], mention=["different views"])
        self.assertVerdict(r, [], partitioned=True)

    def test_staggered_stop(self):
        # The harness stops alice first; bob and carol see her go and
        # install a view without her (and cast in it) before they are
        # stopped too.  The final state is the one at alice's stop.
        r = Run()
        team(r, A, B, C)
        r.install([A, B, C])
        r.traffic([A, B, C])
        r.exit(A, "stop")
        r.install([B, C], ltime=2)
        r.traffic([B, C])
        r.exit(B, "stop")
        r.install([C], ltime=3)
        r.exit(C, "stop")
        rep = self.assertVerdict(r, [])
        self.assertIn("after-end", rep.notes)

    def test_staggered_stop_does_not_hide_divergence(self):
        r = Run()
        team(r, A, B, C)
        r.install([A, B, C])
        r.traffic([A, B, C])
        r.install([A, B], ltime=2)
        r.install([C], ltime=2)
        r.exit(A, "stop")
        r.exit(B, "stop")
        r.install([C, A, B], who=[C], ltime=3)   # after the end: does not count
        r.exit(C, "stop")
        self.assertVerdict(r, ["12"], mention=["different views"])

    def test_excluded_and_rejoin_in_one_file(self):
        r = Run()
        team(r, A, B)
        r.install([A, B])
        r.traffic([A, B])
        # bob is paused, excluded, and its process rejoins as a new member
        # (new id) writing to the same file.
        r.install([A], who=[A])
        r.exit(B, "excluded")
        r.start(E, "bob2", file="bob.jsonl")
        r.install([E], who=[E])
        r.install([A, E], ltime=3)
        r.traffic([A, E])
        self.assertVerdict(r, [])

    def test_view_change_loses_unordered_total(self):
        # A view change with a member lost owes no self delivery: alice's
        # total cast was never ordered (the sequencer crashed).
        r = Run()
        team(r, A, B, C)
        r.install([C, A, B])
        r.traffic([C, A, B])
        r.send(A, "total")
        r.raw(C, '{"ev":')
        r.install([A, B])
        r.traffic([A, B])
        self.assertVerdict(r, [])

    def test_untraced_sender_and_unknown_event(self):
        r = Run()
        team(r, A, B)
        r.install([A, B, 999], who=[A, B])
        r.deliver(A, 999, 1, svc="fifo")
        r.deliver(B, 999, 1, svc="fifo")
        r.ev(A, "stats", drops=0)
        rep = self.assertVerdict(r, [], partitioned=True)
        self.assertIn("untraced-sender", rep.notes)
        self.assertIn("unknown-event", rep.notes)

    def test_lost_tail_of_open_trace(self):
        # bob's trace has no exit: its last sends may not be flushed, so a
        # delivery beyond its recorded sends is a note, not a violation.
        r = Run()
        team(r, A, B)
        r.install([A, B])
        r.traffic([A, B])
        r.deliver(A, B, 50, svc="fifo")
        rep = self.assertVerdict(r, [])
        self.assertIn("lost-tail", rep.notes)

    def test_fifo_per_service_by_default(self):
        r = Run()
        team(r, A, B)
        r.install([A, B])
        m1 = r.send(A, "fifo")
        m2 = r.send(A, "total")
        for x in (A, B):
            r.deliver(x, A, m2)
            r.deliver(x, A, m1)
        self.assertVerdict(r, [])
        self.assertVerdict(r, ["7"], fifo_across_services=True, mention=["alice[101]#1", "alice[101]#2"])

    def test_large_run(self):
        r = Run()
        team(r, A, B, C, D, E)
        r.install([A, B, C, D, E])
        r.traffic([A, B, C, D, E], 150)
        r.install([A, B, C, D], ltime=5)
        r.traffic([A, B, C, D], 150)
        r.exit(E, "leave")
        rep = self.assertVerdict(r, [])
        self.assertGreater(rep.run.events, 20000)


# ---------------------------------------------------------------------------
# Bad runs: one per property at least

def three():
    r = Run()
    team(r, A, B, C)
    r.install([A, B, C])
    r.traffic([A, B, C])
    return r


class BadRuns(Base):
    # T
    def test_T_send_names_other_view(self):
        r = three()
        r.ev(A, "send", vid="9:9", svc="fifo", seq=99, len=1, crc="0")
        for x in (A, B, C):
            r.deliver(x, A, 99)
        self.assertVerdict(r, ["T"], mention=["alice[101]", "9:9"])

    def test_T_seq_reused(self):
        r = three()
        r.ev(A, "send", vid=r.vid(A), svc="fifo", seq=1, len=1, crc="0")
        self.assertVerdict(r, ["T"], mention=["reused seq 1"])

    def test_T_deliver_before_view_and_event_after_exit(self):
        r = Run()
        team(r, A, B)
        r.ev(A, "deliver", vid="0:0", **{"from": B}, svc="fifo", seq=1, len=1, crc="0")
        r.install([A, B], who=[B])
        r.install([A, B], who=[A])
        r.exit(B, "stop")
        r.ev(B, "block", vid=r.vid(B))
        rep = self.check(r, partitioned=True)
        texts = self.texts(rep, "T")
        self.assertTrue(any("alice[101] delivered bob[102]#1 with no view" in t for t in texts), texts)
        self.assertTrue(any("bob[102] has a block event after its exit" in t for t in texts), texts)

    # 1
    def test_1_view_without_self(self):
        r = three()
        r.install([B, C], ltime=2)
        r.install([B, C], who=[A], ltime=2)   # alice installs a view without herself
        r.exit(A, "leave")
        self.assertVerdict(r, ["1"], mention=["alice[101]", "2:102"])

    # 2
    def test_2_view_ids_go_back(self):
        r = Run()
        team(r, A)
        r.install([A], ltime=1)
        r.install([A], ltime=3)
        r.install([A], ltime=2)
        self.assertVerdict(r, ["2"], mention=["alice[101]", "2:101", "3:101"])

    def test_2_same_ltime_twice(self):
        r = Run()
        team(r, A, B)
        r.install([A, B], ltime=4)
        r.install([B, A], ltime=4)
        self.assertVerdict(r, ["2"])

    # 3
    def test_3_same_id_other_list(self):
        r = Run()
        team(r, A, B, C)
        r.install([A, B, C], who=[A, B])
        r.install([A, B, C], who=[C], listed=[A, C, B])
        r.traffic([A])
        self.assertVerdict(r, ["3"], mention=["1:101", "carol[103]", "alice[101]"])

    def test_3_same_id_other_ltime(self):
        r = Run()
        team(r, A, B)
        r.install([A, B], who=[A], ltime=1, vid="v")
        r.install([A, B], who=[B], ltime=2, vid="v")
        self.assertVerdict(r, ["3"], mention=["ltime 1", "ltime 2"])

    # 4
    def test_4_wrong_crc(self):
        r = three()
        m = r.send(A, "fifo")
        r.deliver(A, A, m)
        r.deliver(B, A, m)
        r.deliver(C, A, m, crc="deadbeef")
        self.assertVerdict(r, ["4"], mention=["carol[103]", "alice[101]#", "crc deadbeef"])

    def test_4_wrong_len_and_service(self):
        r = three()
        m = r.send(A, "fifo")
        r.deliver(A, A, m)
        r.deliver(B, A, m)
        r.deliver(C, A, m, len=7777)
        self.assertVerdict(r, ["4"], mention=["len 7777"])
        r = three()
        m = r.send(A, "safe")
        r.deliver(A, A, m)
        r.deliver(B, A, m)
        r.deliver(C, A, m, svc="fifo")
        self.assertVerdict(r, ["4"], mention=["service fifo, sent safe"])

    def test_4_duplicate(self):
        r = three()
        m = r.cast(B, "total")
        r.deliver(C, B, m)
        self.assertVerdict(r, ["4"], mention=["carol[103]", "twice", "bob[102]#%d" % m])

    def test_4_never_sent(self):
        r = three()
        for x in (A, B, C):
            r.deliver(x, A, 40)
        for x in (A, B, C):
            r.exit(x, "stop")       # alice's trace is complete: #40 was never sent
        self.assertVerdict(r, ["4"], mention=["never sent", "alice[101]#40"])

    def test_4_sender_never_in_view(self):
        r = three()
        r.deliver(B, 777, 1)
        self.assertVerdict(r, ["4"], mention=["bob[102]", "never in a view"])

    def test_4_p2p_to_someone_else(self):
        r = three()
        m = r.send(A, "p2p", to=B)
        r.deliver(B, A, m)
        r.deliver(C, A, m)
        self.assertVerdict(r, ["4"], mention=["carol[103]", "point-to-point", "bob[102]"])

    def test_4_other_group(self):
        r = Run()
        r.start(A, "alice")
        r.start(B, "bob", group="other")
        r.install([A], who=[A])
        r.install([B], who=[B])
        m = r.cast(A, "fifo")
        r.deliver(B, A, m)          # bob's group has a view of its own
        self.assertVerdict(r, ["4", "5"], mention=["alice[101]"], partitioned=True)
        rep = self.check(r, partitioned=True)
        self.assertTrue(any("of group g" in t for t in self.texts(rep, "4")), self.texts(rep, "4"))

    # 5
    def test_5_delivered_in_later_view(self):
        r = three()
        m = r.send(A, "fifo")
        r.deliver(A, A, m)
        r.deliver(C, A, m)
        r.install([A, C], ltime=2)
        r.install([B], ltime=2)
        r.deliver(B, A, m)          # bob got it after his view changed
        self.assertVerdict(r, ["5"], mention=["bob[102]", "sent in view 1:101"], partitioned=True)

    def test_5_lost_tail_from_a_view_the_sender_had_left(self):
        # bob's trace has no exit, so #9 may be in its lost tail; but that
        # tail comes after bob installed 2:102, so it was not sent in 1:101.
        r = Run()
        team(r, A, B)
        r.install([A, B])
        r.deliver(A, B, 9)
        r.install([A], ltime=2)
        r.install([B], ltime=2)
        self.assertVerdict(r, ["5"], mention=["alice[101]", "bob[102]#9", "already left"], partitioned=True)

    # 6
    def test_6_different_sets(self):
        r = three()
        m = r.send(C, "fifo")
        r.deliver(A, C, m)
        r.raw(C, "{")               # carol is killed
        r.install([A, B], ltime=2)  # bob never got carol's message
        self.assertVerdict(r, ["6"], mention=["bob[102]", "carol[103]#%d" % m, "alice[101]"])

    # 7
    def test_7_gap(self):
        r = three()
        m1 = r.send(A, "fifo")
        m2 = r.send(A, "fifo")
        for x in (A, C):
            r.deliver(x, A, m1)
            r.deliver(x, A, m2)
        r.deliver(B, A, m2)         # bob skips m1 ...
        r.raw(B, '{"ev":"deli')     # ... and is killed
        r.install([A, C], ltime=2)
        self.assertVerdict(r, ["7"], mention=["bob[102]", "alice[101]#%d" % m2, "never 1 message",
                                              "alice[101]#%d" % m1])

    def test_7_out_of_order(self):
        r = three()
        m1 = r.send(A, "fifo")
        m2 = r.send(A, "fifo")
        for x in (A, B, C):
            r.deliver(x, A, m1 if x != B else m2)
            r.deliver(x, A, m2 if x != B else m1)
        rep = self.assertVerdict(r, ["7"], mention=["bob[102]", "not in send order"])
        self.assertEqual(rep.count["7"], 1)         # one reversal, not also a gap

    def test_7_p2p_out_of_order(self):
        r = three()
        s1 = r.send(A, "p2p", to=B)
        s2 = r.send(A, "p2p", to=B)
        r.deliver(B, A, s2)
        r.deliver(B, A, s1)
        self.assertVerdict(r, ["7"], mention=["bob[102]", "alice[101]#%d" % s1])

    def test_7_p2p_gap(self):
        r = three()
        r.send(A, "p2p", to=B)
        s2 = r.send(A, "p2p", to=B)
        r.deliver(B, A, s2)
        self.assertVerdict(r, ["7"], mention=["never 1 message", "(p2p)"])

    # 8
    def test_8_opposite_orders(self):
        r = three()
        m1 = r.send(A, "total")
        m2 = r.send(B, "total")
        for x in (A, B):
            r.deliver(x, A, m1)
            r.deliver(x, B, m2)
        r.deliver(C, B, m2)
        r.deliver(C, A, m1)
        self.assertVerdict(r, ["8"], mention=["carol[103]", "alice[101]#%d" % m1, "bob[102]#%d" % m2])

    def test_8_total_and_safe_share_the_order(self):
        r = three()
        m1 = r.send(A, "safe")
        m2 = r.send(B, "total")
        for x in (A, B):
            r.deliver(x, A, m1)
            r.deliver(x, B, m2)
        r.deliver(C, B, m2)
        r.deliver(C, A, m1)
        self.assertVerdict(r, ["8"])

    def test_8_strong_form_cycle(self):
        # No two members disagree, but no one order fits all three: each
        # of them made up a position it never learned.
        r = three()
        m = {x: r.send(x, "total") for x in (A, B, C)}
        for x, (p, q) in ((A, (A, B)), (B, (B, C)), (C, (C, A))):
            r.deliver(x, p, m[p])
            r.deliver(x, q, m[q])
        for x in (A, B, C):
            r.install([x], who=[x], ltime=2)
        self.assertVerdict(r, ["8"], mention=["strong form"], partitioned=True)

    def test_8_cycle_with_messages_after_it(self):
        # As above, then everybody delivers one more cast: the cycle has a
        # node downstream, which the cycle search must walk around.
        r = three()
        m = {x: r.send(x, "total") for x in (A, B, C)}
        z = r.send(A, "safe")
        for x, (p, q) in ((A, (A, B)), (B, (B, C)), (C, (C, A))):
            r.deliver(x, p, m[p])
            r.deliver(x, q, m[q])
            r.deliver(x, A, z)
        for x in (A, B, C):
            r.install([x], who=[x], ltime=2)
        self.assertVerdict(r, ["8"], mention=["strong form"], partitioned=True)

    def test_8_ensemble_leftovers(self):
        # The sequencer (alice) ordered dave's cast before carol's; carol
        # and dave, cut off, deliver both "in a deterministic order".
        r = Run()
        team(r, A, B, C, D)
        r.install([A, B, C, D])
        r.traffic([A, B, C, D])
        mc = r.send(C, "total")
        md = r.send(D, "total")
        for x in (A, B):
            r.deliver(x, D, md)
            r.deliver(x, C, mc)
        for x in (C, D):
            r.deliver(x, C, mc)
            r.deliver(x, D, md)
        r.install([A, B], ltime=2)
        r.install([C, D], ltime=2)
        self.assertVerdict(r, ["8"], partitioned=True)

    # 9
    def test_9_safe_not_delivered_by_survivor(self):
        r = three()
        m = r.send(A, "safe")
        r.deliver(A, A, m)
        r.deliver(B, A, m)
        r.install([A, B], ltime=2)
        r.install([C], ltime=2)     # carol had it (stability) but never delivered it
        self.assertVerdict(r, ["9"], mention=["carol[103]", "alice[101]#%d" % m], partitioned=True)

    def test_9_delivered_by_a_member_that_crashed(self):
        # Whoever delivered a safe cast, every survivor owes it.
        r = three()
        m = r.send(A, "safe")
        r.deliver(C, A, m)
        r.raw(C, "{")
        r.install([A, B], ltime=2)
        self.assertVerdict(r, ["9"], mention=["carol[103]", "alice[101]#%d" % m])

    # 10
    def test_10_send_while_blocked(self):
        r = three()
        r.block(B)
        m = r.send(B, "fifo")
        for x in (A, B, C):
            r.deliver(x, B, m)
        r.install([A, B, C], ltime=2, block=False)
        self.assertVerdict(r, ["10"], mention=["bob[102]#%d" % m, "1:101"])

    def test_10_p2p_while_blocked(self):
        r = three()
        r.block(A)
        r.p2p(A, C)
        self.assertVerdict(r, ["10"], mention=["p2p"])

    # 11
    def test_11_own_cast_not_delivered(self):
        r = three()
        m = r.send(A, "total")
        r.deliver(B, A, m)
        r.deliver(C, A, m)
        self.assertVerdict(r, ["11"], mention=["alice[101]", "alice[101]#%d" % m, "final view"])

    def test_11_lossless_view_change(self):
        r = three()
        m = r.send(A, "fifo")       # nobody delivers it, yet nobody was lost
        r.install([A, B, C, D], who=[A, B, C], ltime=2)
        r.start(D, "dave")
        r.install([A, B, C, D], who=[D], ltime=2)
        self.assertVerdict(r, ["11"], mention=["no member lost", "alice[101]#%d" % m])

    def test_11_not_owed_after_leaving(self):
        r = three()
        r.send(C, "total")          # carol's last cast, then she leaves
        r.install([A, B], ltime=2)
        r.exit(C, "leave")
        self.assertVerdict(r, [])
        m = r.send(A, "fifo")       # stopped members are alive at the end: owed
        r.deliver(B, A, m)
        r.exit(A, "stop")
        r.exit(B, "stop")
        self.assertVerdict(r, ["11"], mention=["alice[101] (stopped)"])

    # 12
    def test_12_crashed_member_still_in_final_view(self):
        r = three()
        r.raw(C, "{")               # carol killed, nobody excluded her
        self.assertVerdict(r, ["12"], mention=["carol[103]", "crashed"])

    def test_12_live_member_outside_final_view(self):
        r = three()
        r.install([A, B], ltime=2, who=[A, B])
        self.assertVerdict(r, ["12"])
        self.assertVerdict(r, ["12"], partitioned=True)   # carol's final view still holds alice and bob

    def test_12_live_member_without_view(self):
        r = three()
        r.start(D, "dave")
        self.assertVerdict(r, ["12"], mention=["dave[104]", "installed no view"])

    def test_12_partitioned_not_closed(self):
        r = three()
        r.install([A, B], who=[A], ltime=2)
        r.install([B], who=[B], ltime=2)
        r.install([C], who=[C], ltime=2)
        self.assertVerdict(r, ["12"], partitioned=True, mention=["alice[101]", "bob[102]", "2:102"])

    # 13
    def test_13_final_cast_not_delivered(self):
        r = three()
        m = r.send(B, "fifo")
        r.deliver(A, B, m)
        r.deliver(B, B, m)
        self.assertVerdict(r, ["13"], mention=["carol[103]", "bob[102]#%d" % m])


# ---------------------------------------------------------------------------
# The command line: exit codes, --json, --quiet, caps, unreadable input

class CommandLine(Base):
    def cli(self, *args):
        p = subprocess.run([sys.executable, CHECKER, self.dir] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
        return p.returncode, p.stdout, p.stderr

    def put(self, name, text):
        with open(os.path.join(self.dir, name), "w") as f:
            f.write(text)

    def test_pass_and_table(self):
        r = three()
        r.write(self.dir)
        rc, out, _ = self.cli()
        self.assertEqual(rc, 0, out)
        self.assertIn("VERDICT: PASS", out)
        self.assertIn("virtual synchrony", out)
        rc, out, _ = self.cli("--quiet")
        self.assertEqual((rc, out.count("\n")), (0, 1))

    def test_fail_json(self):
        r = three()
        m = r.send(A, "fifo")
        r.deliver(A, A, m)
        r.deliver(B, A, m, crc="1")
        r.deliver(C, A, m)
        r.write(self.dir)
        rc, out, _ = self.cli("--json")
        self.assertEqual(rc, 1)
        v = json.loads(out)
        self.assertFalse(v["ok"])
        p4 = [p for p in v["properties"] if p["id"] == "4"][0]
        self.assertEqual((p4["verdict"], p4["violations"]), ("FAIL", 1))
        d = p4["details"][0]
        self.assertEqual(d["messages"], [{"from": str(A), "seq": m}])
        self.assertEqual(d["members"][0]["name"], "bob")
        self.assertEqual(d["view"], "1:101")
        self.assertTrue(all(p["verdict"] == "PASS" for p in v["properties"] if p["id"] != "4"))

    def test_json_members(self):
        r = three()
        r.exit(B, "excluded")
        r.exit(C, "crash: SIGSEGV")
        r.write(self.dir)
        rc, out, _ = self.cli("--json", "--partitioned")
        v = json.loads(out)
        status = {m["name"]: m["status"] for m in v["members"]}
        self.assertEqual(status, {"alice": "running", "bob": "left", "carol": "crashed"})
        self.assertEqual(rc, 1)     # alice's final view still holds bob and carol

    def test_skip(self):
        r = three()
        r.install([A, B], ltime=2, who=[A, B])
        r.write(self.dir)
        self.assertEqual(self.cli()[0], 1)
        rc, out, _ = self.cli("--skip", "12")
        self.assertEqual(rc, 0, out)
        self.assertIn("SKIP", out)

    def test_cap(self):
        r = three()
        m = r.cast(A, "fifo")
        for _ in range(30):
            r.deliver(B, A, m)
        r.write(self.dir)
        rc, out, _ = self.cli("--max-violations", "5")
        self.assertEqual(rc, 1)
        self.assertEqual(out.count("[4 integrity]"), 6, out)   # 5 listed, one "... and 25 more"
        self.assertIn("and 25 more", out)

    def test_truncated_last_line_is_a_note(self):
        r = three()
        r.raw(A, '{"ev":"deliver","t":17,"me"')
        r.write(self.dir)
        rc, out, _ = self.cli("--partitioned")
        self.assertEqual(rc, 1)    # alice now counts as crashed, still in the final view
        self.assertIn("partial line", out)
        rc, out, _ = self.cli("--skip", "12")
        self.assertEqual(rc, 0, out)

    def test_broken_line_in_the_middle(self):
        r = three()
        r.raw(A, "garbage\n")
        r.exit(A, "stop")
        r.write(self.dir)
        rc, out, err = self.cli()
        self.assertEqual(rc, 2)
        self.assertIn("alice.jsonl", err)

    def test_missing_field(self):
        r = three()
        r.ev(A, "send", vid=r.vid(A), svc="fifo", seq=50, len=1)
        r.write(self.dir)
        rc, _, err = self.cli()
        self.assertEqual(rc, 2)
        self.assertIn("'crc'", err)

    def test_bad_value(self):
        self.put("x.jsonl", '{"ev":"send","t":1,"me":1,"vid":"1:1","svc":"carrier-pigeon","seq":1,"len":1,"crc":"0"}\n')
        self.assertEqual(self.cli()[0], 2)

    def test_no_traces(self):
        self.assertEqual(self.cli()[0], 2)
        rc, out, _ = self.cli("--json")
        self.assertEqual(rc, 2)
        self.assertIn("error", json.loads(out))
        p = subprocess.run([sys.executable, CHECKER, os.path.join(self.dir, "nope")],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertEqual(p.returncode, 2)

    def test_string_and_int_ids_are_one_member(self):
        r = three()
        r.write(self.dir)
        # bob's file spells ids as strings
        path = os.path.join(self.dir, "bob.jsonl")
        lines = [json.loads(x) for x in open(path)]
        with open(path, "w") as f:
            for o in lines:
                o["me"] = str(o["me"])
                if "members" in o:
                    o["members"] = [str(x) for x in o["members"]]
                if "from" in o:
                    o["from"] = str(o["from"])
                if "to" in o:
                    o["to"] = str(o["to"])
                f.write(json.dumps(o) + "\n")
        rc, out, _ = self.cli()
        self.assertEqual(rc, 0, out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
