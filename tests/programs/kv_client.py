#!/usr/bin/env python3
"""kv_client.py - the test client of vsx-kv (demos/vsx_kv.c), for
tests/programs/kv.sh and kv_proto.sh.  Python 3 standard library only.

    kv_client.py proto ADDR --capacity N
        the line protocol against one fresh replica: every command and
        error answer, pipelining, partial lines, an overlong line, many
        clients at once, end of input, a full store.  Exit 0 when every
        answer is the one expected.
    kv_client.py limits ADDR
        against a replica started with --max-clients 2 --max-pending 1: the
        third connection gets ERR busy; long pipelines of two clients
        through one write slot are answered in order.
    kv_client.py load ADDR... --seconds S --out FILE [--writers N] [--rate OPS]
        N writers (default one per address) stream pipelined writes (puts
        of new keys, overwrites, dels, cas with the right and a wrong old
        value) and reads of their own writes, each writer to its own keys;
        a writer whose replica dies (or answers ERR unavailable) moves on
        to the next address.  Every answer is checked against what the
        writer knows of its keys; FILE gets, per key, the values it may
        hold now (one, if every write to it was answered; two, if the last
        one's fate is unknown).  Prints a summary line as JSON.
    kv_client.py verify ADDR... --model FILE [--wait S]
        waits (up to S seconds, default 10) until every replica answers the
        same DIGEST, then checks every key of the model on each replica
        and the key count.  Exit 0 when all of it holds.
    kv_client.py waitview ADDR... --count N [--timeout S] [--since T]
        waits until every replica's stats say view=N; prints the seconds
        since T (a Unix time; default: its own start).
    kv_client.py cmd ADDR LINE...
        sends the lines, prints the answers (for scripts and by hand).

ADDR is unix:PATH or tcp:HOST:PORT, as vsx-kv's --listen.
"""

import argparse
import json
import random
import socket
import sys
import threading
import time

KEY_MAX, VAL_MAX = 64, 256


class Lost(Exception):
    """The connection broke: answers not received are unknown."""


class Conn:
    def __init__(self, addr, timeout=5.0):
        self.addr = addr
        if addr.startswith("unix:"):
            self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target = addr[5:]
        elif addr.startswith("tcp:"):
            host, port = addr[4:].rsplit(":", 1)
            self.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            target = (host, int(port))
        else:
            raise SystemExit("kv_client: bad address %r: write unix:PATH or tcp:HOST:PORT" % addr)
        self.s.settimeout(timeout)
        try:
            self.s.connect(target)
        except OSError as e:
            self.s.close()
            raise Lost("connect %s: %s" % (addr, e))
        self.buf = b""

    def send(self, data):
        try:
            self.s.sendall(data if isinstance(data, bytes) else data.encode())
        except OSError as e:
            raise Lost("send: %s" % e)

    def line(self):
        while b"\n" not in self.buf:
            try:
                chunk = self.s.recv(65536)
            except OSError as e:
                raise Lost("recv: %s" % e)
            if not chunk:
                raise Lost("closed by the replica")
            self.buf += chunk
        ln, self.buf = self.buf.split(b"\n", 1)
        return ln.decode()

    def batch(self, lines, answers=None):
        """Sends the lines at once (pipelined); returns the answers.  On a
        broken connection, raises Lost with .got = the answers received."""
        got = []
        try:
            self.send("".join(l + "\n" for l in lines))
            for _ in lines:
                got.append(self.line())
        except Lost as e:
            e.got = got
            raise
        return got

    def closed(self):
        """True once the replica has closed the connection (reads EOF)."""
        try:
            return self.s.recv(1) == b""
        except OSError:
            return True

    def close(self):
        self.s.close()


# ---------------------------------------------------------------- proto

def proto(args):
    failures = []
    checks = [0]

    def expect(what, got, want):
        checks[0] += 1
        ok = (got == want) if not callable(want) else want(got)
        if not ok:
            failures.append(("%s: got %r, want %r" % (what, got, want if not callable(want) else "(predicate)"))[:300])

    c = Conn(args.addr)
    cases = [
        ("get a", "NOTFOUND"), ("put a 1", "OK"), ("get a", "VALUE 1"), ("put a 2", "OK"), ("get a", "VALUE 2"),
        ("cas a 2 3", "OK"), ("cas a 2 4", "FAIL 3"), ("get a", "VALUE 3"), ("cas nokey x y", "FAIL"),
        ("del a", "OK"), ("del a", "NOTFOUND"), ("get a", "NOTFOUND"), ("PUT b x", "OK"), ("get b", "VALUE x"),
        ("put  spaced\t  value  ", "OK"), ("get spaced", "VALUE value"), ("put crlf v\r", "OK"), ("get crlf", "VALUE v"),
        ("", None),  # an empty line gets no answer
        ("bogus", lambda a: a.startswith("ERR unknown command 'bogus'")),
        ("put a", "ERR usage: put KEY VALUE"), ("put a b c", "ERR usage: put KEY VALUE"),
        ("get", "ERR usage: get KEY"), ("del", "ERR usage: del KEY"), ("cas a b", "ERR usage: cas KEY OLD NEW"),
        ("stats now", "ERR usage: stats"),
        ("put " + "k" * (KEY_MAX + 1) + " v", "ERR key too long: %d bytes, at most %d" % (KEY_MAX + 1, KEY_MAX)),
        ("put k " + "v" * (VAL_MAX + 1), "ERR value too long: %d bytes, at most %d" % (VAL_MAX + 1, VAL_MAX)),
        ("put " + "k" * KEY_MAX + " " + "v" * VAL_MAX, "OK"),
        ("get " + "k" * KEY_MAX, "VALUE " + "v" * VAL_MAX),
        ("put ctl a\x01b", lambda a: a.startswith("ERR value holds a control byte")),
        ("stats", lambda a: a.startswith("STATS keys=4 ") and " view=1 " in a and " rank=0 " in a),
        ("digest", lambda a: a.startswith("DIGEST keys=4 applied=") and len(a.split("hash=")[1]) == 16),
    ]
    for line, want in cases:
        if want is None:
            c.send(line + "\n")
            continue
        expect(repr(line), c.batch([line])[0], want)

    # Pipelining: many writes in one send, answers in order, then reads.
    n = args.capacity // 2
    got = c.batch(["put p%d v%d" % (i, i) for i in range(n)] + ["get p%d" % i for i in range(n)])
    expect("pipelined puts", got[:n], ["OK"] * n)
    expect("pipelined gets", got[n:], ["VALUE v%d" % i for i in range(n)])
    # A read right behind a write of the same client sees it.
    expect("read behind write", c.batch(["put rw 1", "get rw", "cas rw 1 2", "get rw", "del rw", "get rw"]),
           ["OK", "VALUE 1", "OK", "VALUE 2", "OK", "NOTFOUND"])

    # Partial lines: a command cut into pieces arrives whole.
    for piece in ("pu", "t part", "ial 1", "\nge", "t partial\n"):
        c.send(piece)
        time.sleep(0.05)
    expect("partial lines", [c.line(), c.line()], ["OK", "VALUE 1"])

    # An overlong line is refused; the connection stays usable.
    c.send("put long " + "x" * 3000 + "\n")
    expect("overlong line", c.line(), "ERR line too long: a command line is at most 1023 bytes")
    expect("after overlong line", c.batch(["get partial"]), ["VALUE 1"])

    # Many clients at once, interleaved.
    many = [Conn(args.addr) for _ in range(20)]
    for i, m in enumerate(many):
        m.send("put c%d %d\n" % (i, i))
    for i, m in enumerate(many):
        expect("client %d put" % i, m.line(), "OK")
    for i, m in enumerate(many):
        expect("client %d get" % i, m.batch(["get c%d" % (19 - i)])[0], "VALUE %d" % (19 - i))
        m.close()

    # End of input: the last command is answered, then the replica closes.
    e = Conn(args.addr)
    e.send("put eof 1\nget eof")  # the last line has no newline
    e.s.shutdown(socket.SHUT_WR)
    expect("end of input", [e.line(), e.line()], ["OK", "VALUE 1"])
    expect("closed after end of input", e.closed(), True)
    e.close()

    # quit answers BYE and closes.
    q = Conn(args.addr)
    expect("quit", q.batch(["quit"]), ["BYE"])
    expect("closed after quit", q.closed(), True)
    q.close()

    # A full store: new keys are refused at every replica alike.
    keys = int(c.batch(["digest"])[0].split()[1].split("=")[1])
    fill = ["put f%d x" % i for i in range(args.capacity - keys)]
    expect("fill to capacity", c.batch(fill), ["OK"] * len(fill))
    expect("full", c.batch(["put over x"])[0], lambda a: a.startswith("ERR full: the store holds --capacity %d keys" % args.capacity))
    expect("overwrite when full", c.batch(["put f0 y", "get f0", "get over"]), ["OK", "VALUE y", "NOTFOUND"])
    expect("delete then insert when full", c.batch(["del f0", "put over x"]), ["OK", "OK"])
    c.close()

    if failures:
        for f in failures:
            print("FAIL:", f)
        return 1
    print("protocol: %d checks passed" % checks[0])
    return 0


# ---------------------------------------------------------------- load

class Writer(threading.Thread):
    """One client: its own keys, pipelined batches, reconnects on loss."""

    def __init__(self, wid, addrs, deadline, seed, rate):
        super().__init__(daemon=True)
        self.wid, self.addrs, self.deadline, self.rate = wid, addrs, deadline, rate
        self.rng = random.Random(seed)
        self.at = wid % len(addrs)
        self.model = {}      # key -> set of values it may hold (None: absent)
        self.frozen = set()  # keys whose last write's fate is unknown
        self.via = {}        # key -> connection number of its last answered write
        self.conn_no = 0
        self.errors = []
        self.stats = dict(ok=0, unknown=0, unavailable=0, full=0, reconnects=0, reads=0, cas_fail=0, notfound=0)
        self.next_key = 0

    def certain(self):
        return [k for k in self.model if k not in self.frozen]

    def plan(self, n):
        """n operations on distinct keys: (line, key, kind, args)."""
        ops, used = [], set()
        certain = self.certain()

        def pick(ok):
            for _ in range(8):  # a few random tries: the key list is long
                k = self.rng.choice(certain) if certain else None
                if k is not None and k not in used and ok(k):
                    return k
            return None

        for _ in range(n):
            r = self.rng.random()
            present = pick(lambda k: None not in self.model[k])
            val = "v%x" % self.rng.getrandbits(40)
            if r < 0.55 or present is None:
                k = "w%d-%d" % (self.wid, self.next_key)
                self.next_key += 1
                ops.append(("put %s %s" % (k, val), k, "put", val))
            elif r < 0.67:
                k = present
                ops.append(("put %s %s" % (k, val), k, "put", val))
            elif r < 0.77:
                k = present
                ops.append(("del %s" % k, k, "del", None))
            elif r < 0.87:
                k = present
                (cur,) = self.model[k]
                old = cur if self.rng.random() < 0.6 else cur + "x"
                ops.append(("cas %s %s %s" % (k, old, val), k, "cas", (old, val)))
            else:
                k = pick(lambda k: self.via.get(k) == self.conn_no)
                if k is None:
                    continue
                ops.append(("get %s" % k, k, "get", None))
            used.add(k)
        return ops

    def after(self, key, kind, arg):
        """The value key holds after the write, if it applies."""
        if kind == "put":
            return arg
        if kind == "del":
            return None
        (cur,) = self.model[key]
        return arg[1] if cur == arg[0] else cur

    def answer(self, op, ans):
        line, k, kind, arg = op
        before = self.model.get(k, {None})
        if kind == "get":
            if ans.startswith("ERR unavailable"):  # the replica is not in the group now
                self.stats["unavailable"] += 1
                return
            self.stats["reads"] += 1
            (cur,) = before
            want = "NOTFOUND" if cur is None else "VALUE " + cur
            if ans != want:
                self.errors.append("%r answered %r, want %r" % (line, ans, want))
            return
        if ans is not None and ans.startswith("ERR unavailable"):
            self.stats["unavailable"] += 1
            return
        if ans is not None and ans.startswith("ERR full") and kind == "put" and before == {None}:
            self.stats["full"] += 1  # decided at delivery: not applied anywhere
            return
        if ans is None or ans.startswith("ERR retry"):
            self.stats["unknown"] += 1
            self.model[k] = set(before) | {self.after(k, kind, arg)}
            self.frozen.add(k)
            return
        (cur,) = before
        if kind == "put":
            want = ["OK"]
        elif kind == "del":
            want = ["OK"] if cur is not None else ["NOTFOUND"]
        else:
            want = ["OK"] if cur == arg[0] else ["FAIL " + cur if cur is not None else "FAIL"]
        if ans not in want:
            self.errors.append("%r answered %r, want %s (the key held %r)" % (line, ans, " or ".join(want), cur))
            self.model[k] = set(before) | {self.after(k, kind, arg)}
            self.frozen.add(k)
            return
        self.stats["ok"] += 1
        if ans.startswith("FAIL"):
            self.stats["cas_fail"] += 1
        if ans == "NOTFOUND":
            self.stats["notfound"] += 1
        self.model[k] = {self.after(k, kind, arg)}
        self.via[k] = self.conn_no

    def connect(self):
        for _ in range(200):
            addr = self.addrs[self.at % len(self.addrs)]
            try:
                return Conn(addr)
            except Lost:
                self.at += 1
                time.sleep(0.05)
        raise SystemExit("kv_client: writer %d: no replica accepts connections" % self.wid)

    def run(self):
        conn = self.connect()
        t0, sent = time.time(), 0
        while time.time() < self.deadline:
            if self.rate and sent > (time.time() - t0) * self.rate:
                time.sleep(0.005)
                continue
            ops = self.plan(self.rng.randint(1, 24))
            sent += len(ops)
            if not ops:
                continue
            try:
                answers = conn.batch([op[0] for op in ops])
            except Lost as e:
                answers = e.got + [None] * (len(ops) - len(e.got))
                conn.close()
                self.stats["reconnects"] += 1
                self.conn_no += 1
                self.at += 1
                conn = self.connect()
            for op, ans in zip(ops, answers):
                if ans is None and op[2] == "get":
                    continue
                self.answer(op, ans)
            if any(a is not None and a.startswith("ERR unavailable") for a in answers):
                conn.close()  # this replica is not (yet) in the group: try the next
                self.conn_no += 1
                self.at += 1
                time.sleep(0.02)
                conn = self.connect()
        conn.close()


def load(args):
    deadline = time.time() + args.seconds
    n = args.writers or len(args.addr)
    ws = [Writer(i, args.addr, deadline, args.seed * 1000 + i, args.rate) for i in range(n)]
    for w in ws:
        w.start()
    last = time.time()
    while any(w.is_alive() for w in ws):
        for w in ws:
            w.join(0.2)
        if time.time() - last >= 2:  # progress for long runs
            last = time.time()
            print("  load: %d answered writes, %d reconnects" % (sum(w.stats["ok"] for w in ws),
                                                                  sum(w.stats["reconnects"] for w in ws)), flush=True)
    model, errors, total = {}, [], {}
    for w in ws:
        for k, vals in w.model.items():
            model[k] = sorted(vals, key=lambda v: (v is not None, v or ""))
        errors += ["writer %d: %s" % (w.wid, e) for e in w.errors]
        for s, v in w.stats.items():
            total[s] = total.get(s, 0) + v
    with open(args.out, "w") as f:
        json.dump(model, f)
    total["keys"] = len(model)
    total["uncertain_keys"] = sum(1 for v in model.values() if len(v) > 1)
    print(json.dumps(total))
    for e in errors[:20]:
        print("FAIL:", e)
    return 1 if errors else 0


# ---------------------------------------------------------------- verify

def verify(args):
    with open(args.model) as f:
        model = json.load(f)
    end = time.time() + args.wait
    while True:
        digests = []
        for a in args.addr:
            try:
                c = Conn(a)
                digests.append(c.batch(["digest"])[0])
                c.close()
            except Lost as e:
                digests.append("unreachable: %s" % e)
        if len(set(digests)) == 1 and digests[0].startswith("DIGEST"):
            break
        if time.time() > end:
            print("FAIL: the replicas do not agree after %ss:" % args.wait)
            for a, d in zip(args.addr, digests):
                print("  %s: %s" % (a, d))
            return 1
        time.sleep(0.2)
    errors = []
    keys = sorted(model)
    for a in args.addr:
        c = Conn(a, timeout=20)
        answers = []
        for i in range(0, len(keys), 500):  # pipelined, in slices the output buffer holds
            answers += c.batch(["get " + k for k in keys[i:i + 500]])
        c.close()
        for k, ans in zip(keys, answers):
            cur = None if ans == "NOTFOUND" else ans[6:] if ans.startswith("VALUE ") else "?" + ans
            if cur not in model[k]:
                errors.append("%s: key %s holds %r; the answered writes allow only %r" % (a, k, cur, model[k]))
    present_min = sum(1 for v in model.values() if None not in v)
    present_max = sum(1 for v in model.values() if v != [None])
    nkeys = int(digests[0].split()[1].split("=")[1])
    if not present_min <= nkeys <= present_max:
        errors.append("the store holds %d keys; the writes allow %d to %d" % (nkeys, present_min, present_max))
    for e in errors[:20]:
        print("FAIL:", e)
    if errors:
        return 1
    print("verify: %d replicas agree (%s); all %d keys hold what the answered writes say" % (len(args.addr), digests[0], len(keys)))
    return 0


def limits(args):
    """A replica started with --max-clients 2 --max-pending 1: a third
    connection is refused with ERR busy; one write in flight at a time
    still answers a long pipeline in order."""
    failures = []
    a, b = Conn(args.addr), Conn(args.addr)
    c = Conn(args.addr)
    busy = c.line()
    if not busy.startswith("ERR busy: too many clients"):
        failures.append("third client: got %r, want ERR busy" % busy)
    if not c.closed():
        failures.append("third client: not closed after ERR busy")
    c.close()
    n = 200
    got = a.batch(["put q%d %d" % (i, i) for i in range(n)] + ["get q%d" % (n - 1)])
    if got != ["OK"] * n + ["VALUE %d" % (n - 1)]:
        failures.append("pipeline through --max-pending 1: got %r" % (got[:5] + ["..."] + got[-3:]))
    # Two clients pipelining at once share the one request.
    a.send("".join("put x%d a\n" % i for i in range(50)))
    b.send("".join("put y%d b\n" % i for i in range(50)))
    ga = [a.line() for _ in range(50)]
    gb = [b.line() for _ in range(50)]
    if ga != ["OK"] * 50 or gb != ["OK"] * 50:
        failures.append("two clients through --max-pending 1: %r / %r" % (ga[:3], gb[:3]))
    a.close()
    b.close()
    for f in failures:
        print("FAIL:", f)
    if not failures:
        print("limits: --max-clients and --max-pending hold, answers in order")
    return 1 if failures else 0


def stat_field(line, name):
    for part in line.split():
        if part.startswith(name + "="):
            return part[len(name) + 1:]
    return None


def waitview(args):
    """Polls stats until every replica is in a view of --count members."""
    t0 = args.since or time.time()
    while True:
        states = []
        for a in args.addr:
            try:
                c = Conn(a, timeout=2)
                states.append(c.batch(["stats"])[0])
                c.close()
            except Lost as e:
                states.append("unreachable: %s" % e)
        if all(stat_field(s, "view") == str(args.count) for s in states):
            print("%.2f" % (time.time() - t0))
            return 0
        if time.time() - t0 > args.timeout:
            print("timeout")
            for a, s in zip(args.addr, states):
                print("  %s: %s" % (a, s), file=sys.stderr)
            return 1
        time.sleep(0.05)


def cmd(args):
    c = Conn(args.addr)
    for a in c.batch(args.line):
        print(a)
    c.close()
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("proto")
    p.add_argument("addr")
    p.add_argument("--capacity", type=int, required=True)
    p = sub.add_parser("load")
    p.add_argument("addr", nargs="+")
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--writers", type=int, default=0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--rate", type=float, default=0, help="operations a second per writer (0: as fast as answered)")
    p.add_argument("--out", required=True)
    p = sub.add_parser("verify")
    p.add_argument("addr", nargs="+")
    p.add_argument("--model", required=True)
    p.add_argument("--wait", type=float, default=10)
    p = sub.add_parser("limits")
    p.add_argument("addr")
    p = sub.add_parser("waitview")
    p.add_argument("addr", nargs="+")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--timeout", type=float, default=15)
    p.add_argument("--since", type=float, default=0, help="count the seconds from this Unix time (default: now)")
    p = sub.add_parser("cmd")
    p.add_argument("addr")
    p.add_argument("line", nargs="+")
    args = ap.parse_args()
    try:
        return {"proto": proto, "load": load, "verify": verify, "limits": limits, "waitview": waitview,
                "cmd": cmd}[args.what](args)
    except Lost as e:
        print("kv_client: %s: is the replica running, and is the address its --listen?" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
