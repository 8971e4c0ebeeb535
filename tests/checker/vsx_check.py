#!/usr/bin/env python3
"""vsx_check: verify the member traces of one vsx run against the group's
guarantees (the spec's properties 1-13; 14, flow control, is not visible in
a trace).

    python3 vsx_check.py DIR [--json] [--quiet] [options]

DIR holds one JSONL trace per member process (every *.jsonl in it is read).
Exit code: 0 every checked property holds, 1 some property is violated,
2 the input cannot be read (no such directory, no trace file, a line that is
not JSON other than a file's last one, an event without a required field).

How each property is decided from the trace is written in README.md next to
this file; the comments here say why the code does what it does.
Python 3 standard library only.
"""

import argparse
import glob
import json
import os
import re
import sys
from array import array
from collections import defaultdict

# ---------------------------------------------------------------------------
# Vocabulary

FIFO, TOTAL, SAFE, P2P = 1, 2, 3, 4
SVC_CODE = {"fifo": FIFO, "total": TOTAL, "safe": SAFE, "p2p": P2P}
SVC_NAME = {v: k for k, v in SVC_CODE.items()}

# A message is named by (sender, seq).  Both go into one int so the hot
# containers hold ints, not tuples: a third of the memory, faster hashing.
SEQ_BITS = 40
SEQ_MASK = (1 << SEQ_BITS) - 1

# What a delivery says about the message, svc, len and crc, packed in one
# int (one array instead of three): len < 2^29, svc 3 bits, crc 32 bits.
LEN_MAX = (1 << 29) - 1


def _sig(svc, ln, crc):
    return ln << 35 | svc << 32 | crc


def _unsig(sig):
    return (sig >> 32) & 7, sig >> 35, sig & 0xFFFFFFFF


PROPERTIES = [
    ("T", "trace consistency", "events"),
    ("1", "self inclusion", "view installs"),
    ("2", "monotonic views", "view changes"),
    ("3", "view agreement", "views shared by 2+ members"),
    ("4", "integrity", "deliveries"),
    ("5", "sending view delivery", "deliveries"),
    ("6", "virtual synchrony", "member transitions"),
    ("7", "fifo", "deliveries"),
    ("8", "total order", "total/safe deliveries"),
    ("9", "safe delivery", "member-view obligations"),
    ("10", "no sending while blocked", "blocks"),
    ("11", "self delivery", "own casts"),
    ("12", "convergence", "live members"),
    ("13", "delivery", "cast-receiver pairs"),
]
PROP_IDS = [p[0] for p in PROPERTIES]

# exit reasons.  The spec fixes no vocabulary, so the checker defines one
# (README.md "Members: crashed, left, alive"); both sets can be overridden.
DEFAULT_CRASH_REASONS = ("crash", "crashed", "killed", "abort", "aborted", "fatal", "error", "panic")
DEFAULT_END_REASONS = ("stop", "stopped", "end", "done", "shutdown")

CRASHED, LEFT, STOPPED, RUNNING, UNTRACED = "crashed", "left", "stopped", "running", "untraced"
ALIVE_AT_END = (STOPPED, RUNNING)


class InputError(Exception):
    """The input cannot be read as a trace: exit code 2."""


# ---------------------------------------------------------------------------
# The model built from the traces

class View:
    __slots__ = ("vkey", "vid", "ltime", "members", "mset", "line", "t")

    def __init__(self, vkey, vid, ltime, members, line, t):
        self.vkey = vkey          # interned (group, vid): equal ids compare as ints
        self.vid = vid
        self.ltime = ltime
        self.members = members    # tuple of member indexes, coordinator first
        self.mset = frozenset(members)
        self.line = line
        self.t = t


class Member:
    """One endpoint: everything its trace says, plus placeholders for ids
    that only appear in views or as senders (traced=False)."""

    __slots__ = (
        "idx", "eid", "name", "group", "transport", "file", "files", "traced",
        "started", "start_line", "exit_reason", "exit_line", "exit_t", "status", "truncated", "fpos",
        "views", "seen", "blocked", "blocks",
        "sends", "last_seq",
        "d_key", "d_vpos", "d_sig", "d_line", "dups",
        "dall", "dsets", "tord", "vkey_pos", "flagged",
    )

    def __init__(self, idx, eid):
        self.idx = idx
        self.eid = eid
        self.name = None
        self.group = None
        self.transport = None
        self.file = None          # the file holding this member's events
        self.files = set()
        self.traced = False       # some event of this member was read
        self.started = False
        self.start_line = None
        self.exit_reason = None
        self.exit_line = None
        self.exit_t = None
        self.status = UNTRACED
        self.fpos = -1            # position of its final view, for members alive at the end
        self.truncated = False    # its file ends in a partial line
        self.views = []           # installed views in order; vpos indexes this
        self.seen = set()         # members of every view installed so far
        self.blocked = False      # between a block and the next view
        self.blocks = 0
        self.sends = {}           # seq -> (vpos, svc, _sig(svc, len, crc), to_idx or -1, line)
        self.last_seq = 0
        # Deliveries in trace order, as parallel arrays (compact for ~1M).
        self.d_key = array("q")
        self.d_vpos = array("i")
        self.d_sig = array("Q")   # see _sig
        self.d_line = array("l")
        self.dups = set()         # indexes of repeated deliveries
        self.dall = set()         # every message key delivered
        self.dsets = []           # per vpos: set of cast keys delivered there
        self.tord = []            # per vpos: total/safe cast keys in delivery order
        self.vkey_pos = {}        # vkey -> last vpos with that view
        self.flagged = set()      # once-per-member trace remarks already made


class Run:
    def __init__(self):
        self.members = []         # by index
        self.by_eid = {}
        self.view_keys = {}       # (group, vid) -> vkey
        self.view_names = []      # vkey -> vid
        self.files = []
        self.events = 0
        self.truncated_files = []
        self.unknown_events = defaultdict(int)
        self.end_t = None         # t of the first stop; None: the run ended with members running

    def member(self, raw):
        """Index of the member with endpoint id raw (an int or a string in
        the trace; both spell the same id)."""
        if type(raw) is str:
            eid = raw
        elif type(raw) is int:
            eid = str(raw)
        else:
            raise TypeError("endpoint id must be an integer or a string, not %r" % (raw,))
        m = self.by_eid.get(eid)
        if m is None:
            m = Member(len(self.members), eid)
            self.members.append(m)
            self.by_eid[eid] = m
        return m

    def view_key(self, group, vid):
        k = (group, vid)
        v = self.view_keys.get(k)
        if v is None:
            v = self.view_keys[k] = len(self.view_names)
            self.view_names.append(vid)
        return v

    def traced(self):
        return [m for m in self.members if m.traced]


# ---------------------------------------------------------------------------
# Findings

class Report:
    """Violations per property (all counted, the first `cap` kept with
    their details) and notes (things worth knowing that are not violations).

    Texts are format strings rendered at the end, because a violation found
    while parsing may name a member whose start event is in a file not read
    yet: {m[i]} is the i-th member, {k[i]} the i-th message, {v} the view;
    further keywords are plain values."""

    def __init__(self, run, cap):
        self.run = run
        self.cap = cap
        self.count = {p: 0 for p in PROP_IDS}
        self.checked = {p: 0 for p in PROP_IDS}
        self.details = {p: [] for p in PROP_IDS}
        self.notes = {}           # kind -> [count, [examples]]
        self.skipped = set()
        self.extra = {}           # property -> remark shown in the table
        self.path = None

    def fail(self, prop, text, members=(), msgs=(), view=None, where=None, **kw):
        self.count[prop] += 1
        if len(self.details[prop]) < self.cap:
            self.details[prop].append((text, tuple(members), tuple(msgs), view, where, kw))

    def note(self, kind, text=None, members=(), msgs=(), view=None, **kw):
        n = self.notes.get(kind)
        if n is None:
            n = self.notes[kind] = [0, []]
        n[0] += 1
        if text is not None and len(n[1]) < 5:
            n[1].append((text, tuple(members), tuple(msgs), view, None, kw))

    # rendering
    def mname(self, idx):
        m = self.run.members[idx]
        return "%s[%s]" % (m.name, m.eid) if m.name is not None else "[%s]" % m.eid

    def kname(self, key):
        return "%s#%d" % (self.mname(key >> SEQ_BITS), key & SEQ_MASK)

    def render(self, d):
        text, members, msgs, view, where, kw = d
        s = text.format(m=[self.mname(i) for i in members], k=[self.kname(k) for k in msgs],
                        v=view, **kw)
        if where:
            s += "  (%s:%d)" % where
        return s

    def as_json(self, d, prop=None):
        text, members, msgs, view, where, kw = d
        out = {"message": self.render(d),
               "members": [{"eid": self.run.members[i].eid, "name": self.run.members[i].name}
                           for i in members],
               "view": view,
               "messages": [{"from": self.run.members[k >> SEQ_BITS].eid, "seq": k & SEQ_MASK}
                            for k in msgs]}
        if prop is not None:
            out["property"] = prop
        if where:
            out["file"], out["line"] = where
        return out

    def failed(self):
        return [p for p in PROP_IDS if self.count[p] and p not in self.skipped]


# ---------------------------------------------------------------------------
# Reading the traces (and the checks that need only one member's order:
# trace consistency, parts of integrity, no sending while blocked)

def _crc(x):
    if type(x) is str:
        v = int(x, 16)
    elif type(x) is int:
        v = x
    else:
        raise TypeError("crc must be a hex string")
    if not 0 <= v < 1 << 32:
        raise ValueError("crc %r is not a 32-bit value" % (x,))
    return v


def _t(x):
    if type(x) not in (int, float):
        raise TypeError("t must be a number of nanoseconds, not %r" % (x,))
    return x


def _posint(x, what, lo):
    if type(x) is not int or x < lo:
        raise ValueError("%s must be an integer >= %d, not %r" % (what, lo, x))
    return x


def load(path, rep):
    run = rep.run
    if not os.path.isdir(path):
        raise InputError("%s: not a directory" % path)
    files = sorted(glob.glob(os.path.join(glob.escape(path), "*.jsonl")))
    if not files:
        raise InputError("%s: no *.jsonl trace files" % path)
    for f in files:
        _load_file(run, rep, f)
    return run


def _parse_line(raw, scan):
    """The JSON value of one line, or None if it is not JSON.  The C scanner
    behind json.loads, called directly on a str, is about twice as fast as
    json.loads on bytes; anything unusual takes the ordinary path."""
    try:
        s = raw.decode()
        o, end = scan(s, 0)
        if end == len(s) or s[end:].isspace():
            return o
    except (ValueError, StopIteration):   # ValueError covers bad UTF-8
        pass
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _load_file(run, rep, path):
    fname = os.path.basename(path)
    run.files.append(fname)
    scan = json.JSONDecoder().scan_once
    fail = rep.fail
    member = run.member
    ids = {}                      # raw endpoint id as written -> member index
    bad = None                    # (lineno, why) of an unreadable line
    last_raw = object()
    m = None
    odd = False                   # m has no start yet or has exited
    # The current member's containers and view, bound to locals for the hot
    # path; _bind is called again whenever m or its view changes.
    seen = dall = dsets_cur = tord_cur = cur_vid = None
    vpos = -1
    add_key = add_vpos = add_sig = add_line = None
    file_members = []
    try:
        fh = open(path, "rb")
    except OSError as e:
        raise InputError("%s: %s" % (path, e.strerror))
    with fh:
        lineno = 0
        for raw in fh:
            lineno += 1
            if bad is not None:
                # Only the last line may be broken (a member killed mid-write).
                if raw.strip():
                    raise InputError("%s:%d: not a JSON object (%s)" % (fname, bad[0], bad[1]))
                continue
            o = _parse_line(raw, scan)
            if o is None:
                if raw.strip():
                    bad = (lineno, "invalid JSON" if raw.endswith(b"\n") else "no end of line")
                continue
            if type(o) is not dict:
                raise InputError("%s:%d: not a JSON object" % (fname, lineno))
            run.events += 1
            try:
                ev = o["ev"]
                me = o["me"]
                o["t"]
                if me != last_raw or type(me) is not type(last_raw):
                    m = member(me)
                    last_raw = me
                    if not m.traced:
                        m.traced = True
                        m.file = fname
                        file_members.append(m)
                    if fname not in m.files:
                        m.files.add(fname)
                        if len(m.files) > 1:
                            # Endpoint ids are never reused: two processes
                            # cannot both be this member.
                            fail("T", "endpoint id of {m[0]} appears in two trace files: {a} and {b}",
                                 [m.idx], where=(fname, lineno), a=m.file, b=fname)
                    odd = not m.started or m.exit_line is not None
                    (seen, dall, dsets_cur, tord_cur, cur_vid, vpos,
                     add_key, add_vpos, add_sig, add_line) = _bind(m)
                if odd:
                    _odd_event(rep, m, ev, fname, lineno)
                if ev == "deliver":
                    # The hot path (most events): inline, on locals.
                    frm = o["from"]
                    sidx = ids.get(frm)
                    if sidx is None:
                        sidx = ids[frm] = member(frm).idx
                    seq = o["seq"]
                    if type(seq) is not int or not 0 < seq <= SEQ_MASK:
                        raise ValueError("seq must be an integer from 1 to 2^40-1, not %r" % (seq,))
                    ln = o["len"]
                    if type(ln) is not int or not 0 <= ln <= LEN_MAX:
                        raise ValueError("len must be an integer from 0 to 2^29-1, not %r" % (ln,))
                    crc = o["crc"]
                    crc = int(crc, 16) if type(crc) is str else _crc(crc)
                    if not 0 <= crc <= 0xFFFFFFFF:
                        raise ValueError("crc %r is not a 32-bit value" % (o["crc"],))
                    svc = SVC_CODE.get(o["svc"])
                    if svc is None:
                        raise ValueError("unknown svc %r" % (o["svc"],))
                    key = sidx << SEQ_BITS | seq
                    if o["vid"] != cur_vid or sidx not in seen:
                        _odd_delivery(rep, m, o["vid"], sidx, key, fname, lineno)
                    if key in dall:
                        rep.fail("4", "{m[0]} delivered {k[0]} twice", [m.idx], [key],
                                 view=cur_vid, where=(fname, lineno))
                        m.dups.add(len(m.d_key))
                    else:
                        dall.add(key)
                        if svc != P2P and vpos >= 0:
                            dsets_cur.add(key)
                            if svc != FIFO:
                                tord_cur.append(key)
                    add_key(key)
                    add_vpos(vpos)
                    add_sig(ln << 35 | svc << 32 | crc)
                    add_line(lineno)
                elif ev == "send":
                    _send(run, rep, m, o, fname, lineno)
                elif ev == "view":
                    _view(run, rep, m, o, fname, lineno)
                    (seen, dall, dsets_cur, tord_cur, cur_vid, vpos,
                     add_key, add_vpos, add_sig, add_line) = _bind(m)
                elif ev == "block":
                    vid = o["vid"]
                    if not m.views:
                        fail("T", "{m[0]} blocked with no view installed", [m.idx], where=(fname, lineno))
                    elif m.views[-1].vid != vid:
                        fail("T", "{m[0]} blocked in view {v} but its current view is {cur}", [m.idx],
                             view=vid, where=(fname, lineno), cur=m.views[-1].vid)
                    m.blocked = True
                    m.blocks += 1
                elif ev == "start":
                    if m.started:
                        fail("T", "{m[0]} has a second start event", [m.idx], where=(fname, lineno))
                    else:
                        m.started = True
                        m.start_line = lineno
                        m.name = o["name"]
                        m.group = o["group"]
                        m.transport = o["transport"]
                    odd = m.exit_line is not None
                elif ev == "exit":
                    reason = o["reason"]
                    if m.exit_line is None:
                        m.exit_reason = str(reason)
                        m.exit_line = lineno
                        m.exit_t = _t(o["t"])
                    odd = True
                else:
                    run.unknown_events[str(ev)] += 1
            except KeyError as e:
                raise InputError("%s:%d: %s event lacks the required field %s"
                                 % (fname, lineno, o.get("ev", "an"), e))
            except (TypeError, ValueError) as e:
                raise InputError("%s:%d: %s" % (fname, lineno, e))
    if bad is not None:
        run.truncated_files.append(fname)
        # The partial line belongs to whoever wrote last; members of this
        # file that never wrote an exit are the ones that may have died.
        for fm in file_members:
            if fm.exit_line is None:
                fm.truncated = True
        rep.note("truncated", "{f}:{n}: last line is incomplete ({why}); ignored",
                 f=fname, n=bad[0], why=bad[1])


def _bind(m):
    vpos = len(m.views) - 1
    if vpos < 0:
        dset = tord = vid = None
    else:
        dset, tord, vid = m.dsets[vpos], m.tord[vpos], m.views[vpos].vid
    return (m.seen, m.dall, dset, tord, vid, vpos,
            m.d_key.append, m.d_vpos.append, m.d_sig.append, m.d_line.append)


def _odd_event(rep, m, ev, fname, lineno):
    """An event of a member that has not started or has already exited:
    said once per member."""
    if m.exit_line is not None and ev != "exit" and "after-exit" not in m.flagged:
        m.flagged.add("after-exit")
        rep.fail("T", "{m[0]} has a {ev} event after its exit", [m.idx], where=(fname, lineno), ev=ev)
    if not m.started and ev != "start" and "no-start" not in m.flagged:
        m.flagged.add("no-start")
        rep.fail("T", "{m[0]} has a {ev} event before its start event", [m.idx],
                 where=(fname, lineno), ev=ev)


def _view(run, rep, m, o, fname, lineno):
    vid = o["vid"]
    ltime = o["ltime"]
    raw = o["members"]
    if type(vid) is not str:
        raise TypeError("vid must be a string")
    if type(ltime) is not int:
        raise TypeError("ltime must be an integer")
    if type(raw) is not list or not raw:
        raise TypeError("members must be a non-empty list")
    members = tuple(run.member(x).idx for x in raw)
    if len(set(members)) != len(members):
        rep.fail("T", "view {v} installed by {m[0]} lists a member twice", [m.idx], view=vid,
                 where=(fname, lineno))
    v = View(run.view_key(m.group, vid), vid, ltime, members, lineno, _t(o["t"]))
    m.vkey_pos[v.vkey] = len(m.views)
    m.views.append(v)
    m.seen.update(members)
    m.dsets.append(set())
    m.tord.append([])
    m.blocked = False


def _send(run, rep, m, o, fname, lineno):
    vid = o["vid"]
    svc = SVC_CODE.get(o["svc"])
    if svc is None:
        raise ValueError("unknown svc %r" % (o["svc"],))
    seq = _posint(o["seq"], "seq", 1)
    if seq > SEQ_MASK:
        raise ValueError("seq %d is too large" % seq)
    ln = _posint(o["len"], "len", 0)
    if ln > LEN_MAX:
        raise ValueError("len %d is too large" % ln)
    crc = _crc(o["crc"])
    to = -1
    if svc == P2P:
        to = run.member(o["to"]).idx
    vpos = len(m.views) - 1
    if vpos < 0:
        rep.fail("T", "{m[0]} sent #{seq} with no view installed", [m.idx], where=(fname, lineno), seq=seq)
    else:
        cur = m.views[vpos]
        if cur.vid != vid:
            rep.fail("T", "{m[0]} sent #{seq} naming view {v} but its current view is {cur}", [m.idx],
                     view=vid, where=(fname, lineno), seq=seq, cur=cur.vid)
        if to >= 0 and to not in cur.mset:
            rep.fail("T", "{m[0]} sent #{seq} point-to-point to {m[1]}, not a member of its view {v}",
                     [m.idx, to], view=cur.vid, where=(fname, lineno), seq=seq)
    if m.blocked:
        rep.fail("10", "{m[0]} sent {k[0]} ({svc}) after its block callback in view {v}, "
                 "before installing the next view", [m.idx], [m.idx << SEQ_BITS | seq],
                 view=vid, where=(fname, lineno), svc=SVC_NAME[svc])
    if seq in m.sends:
        # The message name (sender, seq) must be unique, or nothing about
        # it can be checked: keep the first.
        rep.fail("T", "{m[0]} reused seq {seq} (first sent at line {first})", [m.idx],
                 where=(fname, lineno), seq=seq, first=m.sends[seq][4])
        return
    if seq <= m.last_seq:
        rep.fail("T", "{m[0]} sent seq {seq} after seq {last}: its counter must grow", [m.idx],
                 where=(fname, lineno), seq=seq, last=m.last_seq)
    else:
        m.last_seq = seq
    m.sends[seq] = (vpos, svc, _sig(svc, ln, crc), to, lineno, _t(o["t"]))


def _odd_delivery(rep, m, vid, sidx, key, fname, lineno):
    """A delivery with no view, naming another view than the current one, or
    from a process never in a view of the receiver."""
    if not m.views:
        rep.fail("T", "{m[0]} delivered {k[0]} with no view installed", [m.idx], [key],
                 where=(fname, lineno))
        return
    cur = m.views[-1]
    if cur.vid != vid:
        rep.fail("T", "{m[0]} delivered {k[0]} naming view {v} but its current view is {cur}",
                 [m.idx], [key], view=vid, where=(fname, lineno), cur=cur.vid)
    if sidx not in m.seen:
        rep.fail("4", "{m[0]} delivered {k[0]} in view {v} from {m[1]}, which was never in a view it "
                 "installed", [m.idx, sidx], [key], view=cur.vid, where=(fname, lineno))


# ---------------------------------------------------------------------------
# Who crashed, who left, who was alive at the end

def classify(run, rep, opts):
    crash_reasons = set(opts.crash_reasons)
    end_reasons = set(opts.end_reasons)
    declared = set(opts.crashed)
    matched = set()
    for m in run.members:
        if not m.traced:
            m.status = UNTRACED
            continue
        if m.eid in declared or (m.name is not None and m.name in declared):
            matched.update({m.eid, m.name})
        if m.exit_reason is not None:
            # The first word decides: "crash: SIGSEGV" is a crash.
            word = re.split(r"[^a-z0-9_]+", m.exit_reason.lower().strip() + " ")[0]
            if word in crash_reasons:
                m.status = CRASHED
            elif word in end_reasons:
                m.status = STOPPED
            else:
                m.status = LEFT
        elif m.eid in declared or (m.name is not None and m.name in declared):
            m.status = CRASHED
        elif m.truncated:
            m.status = CRASHED
            rep.note("truncated-crash", "{m[0]}: no exit and a partial last line: taken as crashed",
                     [m.idx])
        elif opts.no_exit_is_crash:
            m.status = CRASHED
        else:
            m.status = RUNNING
    for d in sorted(declared - matched):
        rep.note("crashed-unknown", "--crashed names {d}, which no trace has", d=d)
    # The run ends when the harness stops the first member that is still in
    # the group.  What the others do after that (install a view without
    # it, say) is the group reacting to the stop, not the final state.
    stops = [m.exit_t for m in run.members if m.status == STOPPED]
    run.end_t = min(stops) if stops else None
    cut = 0
    for m in run.members:
        if m.status in ALIVE_AT_END:
            m.fpos = len(m.views) - 1
            if run.end_t is not None:
                while m.fpos >= 0 and m.views[m.fpos].t > run.end_t:
                    m.fpos -= 1
                    cut += 1
    if cut:
        rep.note("after-end", "{n} view install(s) after the end of the run (first stop, t={t}) are not the "
                 "final state", n=cut, t=run.end_t)


# ---------------------------------------------------------------------------
# Properties 1-3: views

def check_views(run, rep):
    agreed = {}               # vkey -> (member idx, View) of the first installer
    installers = defaultdict(int)
    for m in run.traced():
        prev = None
        for v in m.views:
            rep.checked["1"] += 1
            if m.idx not in v.mset:
                rep.fail("1", "{m[0]} installed view {v} without itself: {lst}", [m.idx],
                         view=v.vid, where=(m.file, v.line), lst=_mlist(rep, v.members))
            if prev is not None:
                rep.checked["2"] += 1
                if v.ltime <= prev.ltime:
                    # Logical time grows by at least one on every view change,
                    # so a member's view ids strictly increase.
                    rep.fail("2", "{m[0]} installed view {v} (ltime {lt}) after view {pv} (ltime {plt})",
                             [m.idx], view=v.vid, where=(m.file, v.line), lt=v.ltime,
                             pv=prev.vid, plt=prev.ltime)
            prev = v
            installers[v.vkey] += 1
            first = agreed.get(v.vkey)
            if first is None:
                agreed[v.vkey] = (m.idx, v)
            elif first[1].members != v.members or first[1].ltime != v.ltime:
                o = first[1]
                rep.fail("3", "view {v}: {m[0]} installed {a} (ltime {la}) but {m[1]} installed {b} "
                         "(ltime {lb})", [first[0], m.idx], view=v.vid, where=(m.file, v.line),
                         a=_mlist(rep, o.members), la=o.ltime, b=_mlist(rep, v.members), lb=v.ltime)
    # What agreement is checked on: views that two or more members installed.
    rep.checked["3"] = sum(1 for n in installers.values() if n > 1)


def _mlist(rep, members):
    return "[" + ", ".join(rep.mname(i) for i in members) + "]"


# ---------------------------------------------------------------------------
# Properties 4, 5, 7: every delivery against its send

def _send_streams(run, across):
    """(sender, view, class, receiver-or--1) -> (seqs in send order, seq -> position).
    The class is the service (FIFO order is checked per service unless
    --fifo-across-services) or P2P; point-to-point streams are per receiver."""
    streams = {}
    for s in run.members:
        views = s.views
        for seq, (vpos, svc, _sig, to, _line, _time) in s.sends.items():
            if vpos < 0:
                continue
            cls = P2P if svc == P2P else (0 if across else svc)
            k = (s.idx, views[vpos].vkey, cls, to)
            lst = streams.get(k)
            if lst is None:
                lst = streams[k] = []
            lst.append(seq)
    return {k: (lst, {q: i for i, q in enumerate(lst)}) for k, lst in streams.items()}


_NO_STREAM = ((), {})


def _vid(view):
    return view.vid if view is not None else "(none)"


def _bytes_differ(rep, r, s, key, rv, sig, ssig, where, sline):
    svc, ln, crc = _unsig(sig)
    ssvc, sln, scrc = _unsig(ssig)
    bad = []
    if ssvc != svc:
        bad.append("service %s, sent %s" % (SVC_NAME[svc], SVC_NAME[ssvc]))
    if sln != ln:
        bad.append("len %d, sent %d" % (ln, sln))
    if scrc != crc:
        bad.append("crc %08x, sent %08x" % (crc, scrc))
    rep.fail("4", "{m[0]} delivered {k[0]} with {what} (sent at {sf}:{sl})", [r.idx], [key],
             view=_vid(rv), where=where, what="; ".join(bad), sf=s.file, sl=sline)


class _Stream:
    """One receiver's deliveries of one FIFO stream."""
    __slots__ = ("seqs", "pos", "sidx", "cls", "vid", "last", "got", "hi", "beyond")

    def __init__(self, seqs, pos, sidx, cls, vid):
        self.seqs = seqs          # the sender's seqs of this stream, in send order
        self.pos = pos
        self.sidx = sidx
        self.cls = cls
        self.vid = vid
        self.last = 0             # highest seq delivered so far
        self.got = array("l", [0]) * len(seqs)   # line of the delivery per position, 0: none
        self.hi = 0               # positions below this must all be delivered
        self.beyond = None        # (seq, line) of a delivery past the recorded sends


def _cls(cls):
    return "" if cls == 0 else " (%s)" % SVC_NAME[cls]


def _fifo_gaps(rep, r, st):
    got = st.got
    missing = [j for j in range(st.hi) if not got[j]]
    if not missing:
        return
    # Name the first message delivered past the first hole.
    after = next((j for j in range(missing[0] + 1, st.hi) if got[j]), None)
    if after is not None:
        seq2, line2 = st.seqs[after], got[after]
    else:
        seq2, line2 = st.beyond
    base = st.sidx << SEQ_BITS
    miss = [st.seqs[j] for j in missing]
    rep.fail("7", "{m[0]} delivered {k[0]} in view {v} but never {n} message(s) its sender sent before it "
             "in that view{cls}: {ks}", [r.idx, st.sidx], [base | seq2] + [base | q for q in miss[:5]],
             view=st.vid, where=(r.file, line2), n=len(miss), cls=_cls(st.cls),
             ks=", ".join(rep.kname(base | q) for q in miss[:5]) + (" ..." if len(miss) > 5 else ""))


def check_deliveries(run, rep, opts):
    members = run.members
    across = opts.fifo_across_services
    streams = _send_streams(run, across)
    fail = rep.fail
    c4 = c5 = c7 = 0
    for r in run.traced():
        rviews = r.views
        rgroup = r.group
        keys, vposa, siga, linea = r.d_key, r.d_vpos, r.d_sig, r.d_line
        dups = r.dups
        fifo = {}             # (vpos, sender, class, receiver or -1) -> _Stream
        c4 += len(keys)
        for i in range(len(keys)):
            if i in dups:
                continue      # reported once, as a duplicate
            key = keys[i]
            sidx = key >> SEQ_BITS
            seq = key & SEQ_MASK
            vpos = vposa[i]
            sig = siga[i]
            s = members[sidx]
            rv = rviews[vpos] if vpos >= 0 else None
            snd = s.sends.get(seq)
            # 4: does the claimed sender's trace hold this very message?
            if s.group != rgroup and s.group is not None and rgroup is not None:
                fail("4", "{m[0]} (group {g1}) delivered {k[0]} from {m[1]} of group {g2}",
                     [r.idx, sidx], [key], view=_vid(rv), where=(r.file, linea[i]), g1=rgroup, g2=s.group)
            if snd is None:
                if not s.traced:
                    rep.note("untraced-sender", "{m[0]} delivered {k[0]}: the sender has no trace",
                             [r.idx], [key], view=_vid(rv))
                    in_view = rv is not None
                elif s.exit_line is None and seq > s.last_seq:
                    # A trace without exit may have lost its unflushed tail
                    # (up to a second); the send can be there.
                    rep.note("lost-tail", "{m[0]} delivered {k[0]}, beyond the end of the sender's trace",
                             [r.idx], [key], view=_vid(rv))
                    in_view = rv is not None and bool(s.views) and s.views[-1].vkey == rv.vkey
                    # That send came after everything the sender's trace
                    # shows, so not in a view the sender had already left.
                    if rv is not None and not in_view and rv.vkey in s.vkey_pos:
                        c5 += 1
                        fail("5", "{m[0]} delivered {k[0]} in view {v}, but the sender had already left "
                             "that view before sending it", [r.idx, sidx], [key], view=rv.vid,
                             where=(r.file, linea[i]))
                else:
                    fail("4", "{m[0]} delivered {k[0]}, which {m[1]} never sent", [r.idx, sidx], [key],
                         view=_vid(rv), where=(r.file, linea[i]))
                    continue
                svc = (sig >> 32) & 7
                to = r.idx if svc == P2P else -1
            else:
                svpos, svc, ssig, to, sline, _st = snd
                if ssig != sig:
                    _bytes_differ(rep, r, s, key, rv, sig, ssig, (r.file, linea[i]), sline)
                if to >= 0 and to != r.idx:
                    fail("4", "{m[0]} delivered {k[0]}, a point-to-point message sent to {m[1]}",
                         [r.idx, to], [key], view=_vid(rv), where=(r.file, linea[i]))
                    continue
                # 5: delivered in the view it was sent in.
                c5 += 1
                if svpos < 0:
                    continue      # sent with no view: trace consistency said so
                sv = s.views[svpos]
                in_view = rv is not None and sv.vkey == rv.vkey
                if not in_view:
                    fail("5", "{m[0]} delivered {k[0]} in view {v}, but it was sent in view {sv}",
                         [r.idx, sidx], [key], view=_vid(rv), where=(r.file, linea[i]), sv=sv.vid)
            if not in_view:
                continue      # FIFO is per view; a wrong view is property 5
            # 7: per stream (sender, view, class[, receiver]) the deliveries
            # come in send order (checked here) and leave no hole below the
            # highest one (checked once the stream is complete, below, so a
            # late message is one reversal, not also a gap).
            c7 += 1
            cls = P2P if svc == P2P else (0 if across else svc)
            sk = (vpos, sidx, cls, to)
            st = fifo.get(sk)
            if st is None:
                seqs, pos = streams.get((sidx, rv.vkey, cls, to), _NO_STREAM)
                st = fifo[sk] = _Stream(seqs, pos, sidx, cls, rv.vid)
            if seq <= st.last:
                fail("7", "{m[0]} delivered {k[0]} after {k[1]} in view {v}: not in send order{cls}",
                     [r.idx], [key, sidx << SEQ_BITS | st.last], view=rv.vid, where=(r.file, linea[i]),
                     cls=_cls(cls))
            else:
                st.last = seq
            p = st.pos.get(seq)
            if p is None:
                # Beyond the sender's recorded sends (lost tail): every
                # recorded send of the view comes before it.
                if not st.beyond:
                    st.beyond = (seq, linea[i])
                if len(st.seqs) > st.hi:
                    st.hi = len(st.seqs)
            else:
                st.got[p] = linea[i]
                if p + 1 > st.hi:
                    st.hi = p + 1
        for st in fifo.values():
            _fifo_gaps(rep, r, st)
    rep.checked["4"] = c4
    rep.checked["5"] = c5
    rep.checked["7"] = c7


# ---------------------------------------------------------------------------
# Property 6: same set delivered by members taking the same transition

def check_vs(run, rep):
    trans = defaultdict(list)     # (vkey V, vkey V') -> [(member, vpos of V)]
    for m in run.traced():
        vs = m.views
        for i in range(len(vs) - 1):
            trans[(vs[i].vkey, vs[i + 1].vkey)].append((m, i))
    n = 0
    for (vk, nk), lst in trans.items():
        n += len(lst)
        if len(lst) < 2:
            continue
        sets = [m.dsets[i] for m, i in lst]
        if all(s == sets[0] for s in sets[1:]):
            continue
        union = set().union(*sets)
        owner = {}
        for m, i in lst:
            for k in m.dsets[i]:
                owner.setdefault(k, m.idx)
        for (m, i), s in zip(lst, sets):
            miss = sorted(union - s)
            if miss:
                v, nv = m.views[i], m.views[i + 1]
                rep.fail("6", "{m[0]} went from view {v} to {nv} without delivering in {v} {n} message(s) "
                         "that {m[1]} delivered there before the same transition: {ks}",
                         [m.idx, owner[miss[0]]], miss[:10], view=v.vid, where=(m.file, nv.line),
                         nv=nv.vid, n=len(miss), ks=", ".join(rep.kname(k) for k in miss[:10])
                         + (" ..." if len(miss) > 10 else ""))
    rep.checked["6"] = n


# ---------------------------------------------------------------------------
# Property 8: total order, strong form

def check_total(run, rep):
    by_view = defaultdict(list)   # vkey -> [(member, [keys in delivery order])]
    n = 0
    for m in run.traced():
        for i, keys in enumerate(m.tord):
            if keys:
                by_view[m.views[i].vkey].append((m, keys))
                n += len(keys)
    rep.checked["8"] = n
    for vkey, seqs in by_view.items():
        if len(seqs) < 2:
            continue
        cycle = _order_cycle(seqs)
        if cycle is None:
            continue
        vid = run.view_names[vkey]
        # Two members in opposite order is the plain reading of property 8.
        found = False
        for a in range(len(seqs)):
            ma, ka = seqs[a]
            pos = {k: j for j, k in enumerate(ka)}
            for b in range(a + 1, len(seqs)):
                mb, kb = seqs[b]
                last, lastk = -1, None
                for k in kb:
                    p = pos.get(k)
                    if p is None:
                        continue
                    if p < last:
                        rep.fail("8", "view {v}: {m[0]} delivered {k[0]} before {k[1]}, {m[1]} delivered "
                                 "{k[1]} before {k[0]}", [ma.idx, mb.idx], [k, lastk], view=vid)
                        found = True
                        break
                    last, lastk = p, k
        if not found:
            # No two members disagree, yet no single order fits all of them:
            # somebody placed a cast whose agreed position it never learned.
            steps = ", ".join("%s put %s before %s" % (rep.mname(who), rep.kname(x), rep.kname(y))
                              for x, y, who in cycle[:8])
            rep.fail("8", "view {v}: no single order of its total/safe casts agrees with every member "
                     "(strong form): {steps}", sorted({w for _, _, w in cycle}), [x for x, _, _ in cycle],
                     view=vid, steps=steps + (" ..." if len(cycle) > 8 else ""))


def _order_cycle(seqs):
    """None if one order of all messages agrees with every member's delivery
    order (the union of the orders is acyclic), else one cycle as a list of
    (message, next message, member that ordered them)."""
    succ = defaultdict(dict)      # message -> {next message: member}
    indeg = defaultdict(int)
    for m, keys in seqs:
        for a, b in zip(keys, keys[1:]):
            d = succ[a]
            if b not in d:
                d[b] = m.idx
                indeg[b] += 1
        if keys:
            indeg.setdefault(keys[0], 0)
    ready = [k for k, d in indeg.items() if d == 0]
    left = len(indeg)
    while ready:
        k = ready.pop()
        left -= 1
        for b in succ.get(k, ()):
            indeg[b] -= 1
            if indeg[b] == 0:
                ready.append(b)
    if left == 0:
        return None
    # Every node left has a predecessor among the nodes left (that is why
    # its in-degree is not 0), but maybe no successor there (it can lie
    # downstream of a cycle): walk backwards until a node repeats.
    rest = {k for k, d in indeg.items() if d > 0}
    pred = {}
    for a in rest:
        for b in succ.get(a, ()):
            if b in rest:
                pred.setdefault(b, a)
    k = next(iter(rest))
    back, at = [], {}
    while k not in at:
        at[k] = len(back)
        back.append(k)
        k = pred[k]
    loop = back[at[k]:][::-1]     # forward order: loop[i] -> loop[i+1] -> ... -> loop[0]
    return [(x, loop[(i + 1) % len(loop)], succ[x][loop[(i + 1) % len(loop)]]) for i, x in enumerate(loop)]


# ---------------------------------------------------------------------------
# Property 9: safe delivery

def check_safe(run, rep):
    safe = defaultdict(dict)      # vkey -> {safe key: first member that delivered it there}
    for m in run.traced():
        for j in range(len(m.d_key)):
            if (m.d_sig[j] >> 32) & 7 == SAFE and j not in m.dups and m.d_vpos[j] >= 0:
                safe[m.views[m.d_vpos[j]].vkey].setdefault(m.d_key[j], m.idx)
    n = 0
    for m in run.traced():
        # A member that installs a next view survived the view; one that
        # crashed or left inside it has no duty (and no next view).
        for i in range(len(m.views) - 1):
            v = m.views[i]
            need = safe.get(v.vkey)
            if not need:
                continue
            n += 1
            got = m.dsets[i]
            miss = [k for k in need if k not in got]
            if miss:
                rep.fail("9", "{m[0]} installed view {nv} without delivering in {v} the safe cast(s) {ks} "
                         "that {m[1]} delivered in {v}", [m.idx, need[miss[0]]], miss[:10], view=v.vid,
                         where=(m.file, m.views[i + 1].line), nv=m.views[i + 1].vid,
                         ks=", ".join(rep.kname(k) for k in miss[:10]) + (" ..." if len(miss) > 10 else ""))
    rep.checked["9"] = n


# ---------------------------------------------------------------------------
# Liveness 11-13

def check_self_delivery(run, rep):
    n = 0
    end_t = run.end_t
    for m in run.traced():
        if m.status == CRASHED:
            continue
        last = len(m.views) - 1
        for seq, (vpos, svc, _sig, _to, line, t) in m.sends.items():
            if svc == P2P or vpos < 0:
                continue
            # Liveness is owed once faults stop.  The trace shows two such
            # places: the final view of a member alive at the end (casts
            # sent before the end), and a view whose every member went on
            # into the member's next view (nobody was lost, so the flush
            # had every message).
            if vpos == m.fpos and (end_t is None or t <= end_t):
                why = "its final view"
            elif vpos < last and m.views[vpos].mset <= m.views[vpos + 1].mset:
                why = "a view it left with no member lost"
            else:
                continue
            n += 1
            key = m.idx << SEQ_BITS | seq
            if key not in m.dall:
                rep.fail("11", "{m[0]} ({st}) never delivered its own {svc} cast {k[0]}, sent in {why} {v}",
                         [m.idx], [key], view=m.views[vpos].vid, where=(m.file, line), st=m.status,
                         svc=SVC_NAME[svc], why=why)
    rep.checked["11"] = n


def _final_groups(run):
    """Live members by final view: {vkey: [members]} plus the live members
    without any view (by the end of the run)."""
    by_final = defaultdict(list)
    viewless = []
    for m in run.traced():
        if m.status in ALIVE_AT_END:
            if m.fpos >= 0:
                by_final[m.views[m.fpos].vkey].append(m)
            else:
                viewless.append(m)
    return by_final, viewless


def _final(m):
    return m.views[m.fpos]


def check_convergence(run, rep, opts):
    live = [m for m in run.traced() if m.status in ALIVE_AT_END]
    rep.checked["12"] = len(live)
    by_final, viewless = _final_groups(run)
    for m in viewless:
        rep.fail("12", "{m[0]} is alive at the end ({st}) but had installed no view by then", [m.idx],
                 st=m.status)
    if opts.partitioned:
        rep.extra["12"] = "--partitioned: closure only"
        # Reachability is unknown: only ask that each final view is a closed
        # component -- every member of it alive and ending in it too.
        for vkey, ms in by_final.items():
            v = _final(ms[0])
            who = ", ".join(rep.mname(y.idx) for y in ms)
            for x in v.members:
                xm = run.members[x]
                if xm.status == UNTRACED:
                    rep.note("final-untraced", "final view {v} holds {m[0]}, which has no trace", [x], view=v.vid)
                elif xm.status not in ALIVE_AT_END:
                    rep.fail("12", "final view {v} of {who} holds {m[0]}, which {st}", [x],
                             view=v.vid, who=who, st=_status_words(xm))
                elif xm.fpos < 0 or _final(xm).vkey != vkey:
                    rep.fail("12", "final view {v} of {who} holds {m[0]}, whose final view is {xv}",
                             [x], view=v.vid, who=who, xv=_final(xm).vid if xm.fpos >= 0 else "none")
        return
    groups = defaultdict(list)
    for vkey, ms in by_final.items():
        groups[ms[0].group].append((vkey, ms))
    for group, finals in groups.items():
        # By default every member alive at the end could reach every other
        # (the run ended healed): one view, exactly the live ones.
        live_g = {m.idx for m in live if m.group == group}
        if len(finals) > 1:
            finals.sort(key=lambda f: -len(f[1]))
            desc = "; ".join("%s held by %s" % (_final(ms[0]).vid, ", ".join(rep.mname(y.idx) for y in ms))
                             for _, ms in finals)
            rep.fail("12", "live members of group {g} end in {n} different views: {d}",
                     [y.idx for _, ms in finals for y in ms][:20], g=group, n=len(finals), d=desc)
            continue
        vkey, ms = finals[0]
        v = _final(ms[0])
        for x in v.members:
            xm = run.members[x]
            if xm.status == UNTRACED:
                rep.note("final-untraced", "final view {v} holds {m[0]}, which has no trace", [x], view=v.vid)
            elif x not in live_g:
                rep.fail("12", "the final view {v} holds {m[0]}, which {st}", [x], view=v.vid,
                         st=_status_words(xm))
        for x in sorted(live_g - v.mset):
            if run.members[x].fpos >= 0:   # viewless ones are reported above
                rep.fail("12", "{m[0]} is alive at the end but not in the final view {v}", [x], view=v.vid)


def _status_words(m):
    if m.status == CRASHED:
        return "crashed" + (" (exit: %s)" % m.exit_reason if m.exit_reason else "")
    if m.status == LEFT:
        return "left (exit: %s)" % m.exit_reason
    return m.status


def check_final_delivery(run, rep):
    by_final, _ = _final_groups(run)
    end_t = run.end_t
    n = 0
    for vkey, ms in by_final.items():
        # The receivers owed are the live members ending in that view;
        # members of it that crashed or moved on owe nothing.  Casts sent
        # after the end of the run are not owed.
        for s in ms:
            for seq, (vpos, svc, _sig, _to, line, t) in s.sends.items():
                if vpos != s.fpos or svc == P2P or (end_t is not None and t > end_t):
                    continue
                key = s.idx << SEQ_BITS | seq
                for r in ms:
                    if r is s:
                        continue      # the sender's own copy is property 11
                    n += 1
                    if key not in r.dsets[r.fpos]:
                        rep.fail("13", "{m[0]} never delivered {k[0]} ({svc}), cast in the final view {v} "
                                 "they share", [r.idx, s.idx], [key], view=_final(s).vid,
                                 where=(s.file, line), svc=SVC_NAME[svc])
    rep.checked["13"] = n


# ---------------------------------------------------------------------------
# Driver

def check(path, opts):
    """Read DIR and check it; returns the Report.  Raises InputError."""
    run = Run()
    rep = Report(run, opts.max_violations)
    load(path, rep)
    rep.checked["T"] = run.events
    rep.checked["10"] = sum(m.blocks for m in run.members)
    classify(run, rep, opts)
    check_views(run, rep)
    check_deliveries(run, rep, opts)
    check_vs(run, rep)
    check_total(run, rep)
    check_safe(run, rep)
    check_self_delivery(run, rep)
    check_convergence(run, rep, opts)
    check_final_delivery(run, rep)
    for kind, n in sorted(run.unknown_events.items()):
        rep.note("unknown-event", "%d event(s) of unknown type %r ignored" % (n, kind))
    rep.skipped = set(opts.skip)
    rep.path = path
    return rep


def verdict_json(rep):
    run = rep.run
    props = []
    for pid, name, unit in PROPERTIES:
        props.append({
            "id": pid, "name": name,
            "verdict": "SKIP" if pid in rep.skipped else ("FAIL" if rep.count[pid] else "PASS"),
            "checked": rep.checked[pid], "unit": unit,
            "violations": rep.count[pid],
            "remark": rep.extra.get(pid),
            "details": [rep.as_json(d, pid) for d in rep.details[pid]],
        })
    return {
        "dir": rep.path,
        "ok": not rep.failed(),
        "events": run.events,
        "files": run.files,
        "truncated_files": run.truncated_files,
        "end_t": run.end_t,
        "members": [{"eid": m.eid, "name": m.name, "group": m.group, "transport": m.transport,
                     "file": m.file, "status": m.status, "exit": m.exit_reason,
                     "views": len(m.views), "sends": len(m.sends), "deliveries": len(m.d_key)}
                    for m in run.members],
        "properties": props,
        "not_checked": {"14": "flow control is not visible in a trace"},
        "notes": [{"kind": k, "count": n, "examples": [rep.render(d) for d in ex]}
                  for k, (n, ex) in sorted(rep.notes.items())],
    }


NOTE_TITLES = {
    "truncated": "files ending in a partial line (ignored)",
    "truncated-crash": "members taken as crashed: no exit and a partial last line",
    "untraced-sender": "deliveries from senders without a trace (only order checked)",
    "lost-tail": "deliveries beyond the end of an open-ended sender trace (unverifiable)",
    "final-untraced": "final views holding members without a trace",
    "after-end": "views installed after the end of the run (ignored for 11-13)",
    "crashed-unknown": "--crashed names not found",
    "unknown-event": "unknown event types",
}


def print_table(rep, out):
    run = rep.run
    traced = run.traced()
    w = out.write
    w("vsx_check %s: %d member(s) in %d file(s), %d events\n"
      % (rep.path, len(traced), len(run.files), run.events))
    for m in sorted(traced, key=lambda m: (m.name or "", m.eid)):
        line = ("  %-24s %-16s group %-8s %-8s views %-4d sends %-7d deliveries %-8d %s"
                % (rep.mname(m.idx), m.file, m.group, m.status, len(m.views), len(m.sends), len(m.d_key),
                   ("exit: " + m.exit_reason) if m.exit_reason is not None else ""))
        w(line.rstrip() + "\n")
    w("\n  %-3s %-25s %-7s %10s  %s\n" % ("#", "property", "verdict", "violations", "checked"))
    for pid, name, unit in PROPERTIES:
        verdict = "SKIP" if pid in rep.skipped else ("FAIL" if rep.count[pid] else "PASS")
        w("  %-3s %-25s %-7s %10d  %d %s%s\n" % (pid, name, verdict, rep.count[pid], rep.checked[pid], unit,
                                                 ("  (%s)" % rep.extra[pid]) if pid in rep.extra else ""))
    w("  %-3s %-25s %-7s %10s  %s\n" % ("14", "flow control", "n/a", "-", "not visible in a trace"))
    shown = [p for p in PROP_IDS if rep.count[p]]
    if shown:
        w("\nViolations:\n")
        for pid in shown:
            name = PROPERTIES[PROP_IDS.index(pid)][1]
            skip = " (skipped)" if pid in rep.skipped else ""
            for d in rep.details[pid]:
                w("  [%s %s]%s %s\n" % (pid, name, skip, rep.render(d)))
            more = rep.count[pid] - len(rep.details[pid])
            if more > 0:
                w("  [%s %s] ... and %d more\n" % (pid, name, more))
    if rep.notes:
        w("\nNotes:\n")
        for kind, (n, ex) in sorted(rep.notes.items()):
            w("  %s: %d\n" % (NOTE_TITLES.get(kind, kind), n))
            for d in ex:
                w("    %s\n" % rep.render(d))
    print_verdict(rep, out)


def print_verdict(rep, out):
    failed = rep.failed()
    if not failed:
        out.write("VERDICT: PASS (%d events, %d members)\n" % (rep.run.events, len(rep.run.traced())))
    else:
        out.write("VERDICT: FAIL: %s\n" % ", ".join(
            "%s %s (%d)" % (p, PROPERTIES[PROP_IDS.index(p)][1], rep.count[p]) for p in failed))


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="vsx_check.py",
        description="Check the JSONL member traces of a vsx run against the group guarantees "
                    "(properties 1-13). Exit 0 all hold, 1 a violation, 2 unreadable input.")
    ap.add_argument("dir", help="directory holding one *.jsonl trace per member process")
    ap.add_argument("--json", action="store_true", help="print a machine-readable verdict")
    ap.add_argument("--quiet", action="store_true", help="print only the verdict line")
    ap.add_argument("--partitioned", action="store_true",
                    help="the run may end partitioned: convergence (12) checks only that every final "
                         "view holds live members that all end in it, not that all live members merged")
    ap.add_argument("--crashed", action="append", default=[], metavar="IDS",
                    help="comma-separated endpoint ids or names of members known to have crashed "
                         "(killed) although their trace has no exit event; may repeat")
    ap.add_argument("--no-exit-is-crash", action="store_true",
                    help="a member whose trace has no exit event crashed (for harnesses that stop every "
                         "survivor with an exit event)")
    ap.add_argument("--fifo-across-services", action="store_true",
                    help="check FIFO (7) over all of a sender's fifo/total/safe casts of a view together "
                         "instead of per service")
    ap.add_argument("--skip", action="append", default=[], metavar="PROPS",
                    help="comma-separated properties to report but not fail on (e.g. 12,13)")
    ap.add_argument("--max-violations", type=int, default=20, metavar="N",
                    help="violations listed per property (all are counted; default 20)")
    ap.add_argument("--crash-reasons", default=",".join(DEFAULT_CRASH_REASONS), metavar="WORDS",
                    help="exit reasons (first word) that mean a crash (default: %(default)s)")
    ap.add_argument("--end-reasons", default=",".join(DEFAULT_END_REASONS), metavar="WORDS",
                    help="exit reasons (first word) that mean: stopped at the end of the run while in the "
                         "group (default: %(default)s); any other reason means the member left")
    opts = ap.parse_args(argv)
    split = lambda xs: [y.strip() for x in xs for y in x.split(",") if y.strip()]
    opts.crashed = split(opts.crashed)
    opts.skip = split(opts.skip)
    for p in opts.skip:
        if p not in PROP_IDS:
            ap.error("--skip: unknown property %r (known: %s)" % (p, ", ".join(PROP_IDS)))
    opts.crash_reasons = [x.lower() for x in split([opts.crash_reasons])]
    opts.end_reasons = [x.lower() for x in split([opts.end_reasons])]
    return opts


def options(**kw):
    """Options as parse_args gives them, for callers that import this module."""
    o = parse_args(["."])
    for k, v in kw.items():
        setattr(o, k, v)
    return o


def main(argv=None):
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        rep = check(opts.dir, opts)
    except InputError as e:
        if opts.json:
            json.dump({"dir": opts.dir, "ok": False, "error": str(e)}, sys.stdout)
            sys.stdout.write("\n")
        else:
            sys.stderr.write("vsx_check: unreadable input: %s\n" % e)
        return 2
    if opts.json:
        json.dump(verdict_json(rep), sys.stdout, indent=1)
        sys.stdout.write("\n")
    elif opts.quiet:
        print_verdict(rep, sys.stdout)
    else:
        print_table(rep, sys.stdout)
    return 1 if rep.failed() else 0


if __name__ == "__main__":
    sys.exit(main())
