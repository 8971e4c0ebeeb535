/* JgBench.java - one member of a JGroups benchmark group (the peer that
 * vsx-perf compares vsx with), written against the public JChannel API of
 * JGroups 2.12 (Debian's libjgroups-java); the jar ships no benchmark.
 *
 * Same method and output as cpg_bench.c, so the driver (peers.sh) treats
 * both alike.  Each of M members (one JVM per test host) connects a
 * JChannel with the given stack, waits for a view of M members, then runs
 * a list of scenarios in order:
 *
 *   t:SIZE:one[:nb]   one member (--sender, default 1) casts SIZE-byte
 *                     messages as fast as the stack's flow control (MFC)
 *                     lets JChannel.send return
 *   t:SIZE:all[:nb]   every member does so at once
 *   t:SIZE:mN[:nb]    member N is the one sender (instead of --sender)
 *   l:SIZE[:one][:nb] the one sender casts at --rate messages/s; every
 *                     member times send -> its delivery of each (System.
 *                     nanoTime is CLOCK_MONOTONIC, one clock on one
 *                     machine): the sender's self-delivery latency, the
 *                     others' one-way latency
 *   :nb               bundling off: every member turns its transport's
 *                     bundling off for the scenario, and the data
 *                     messages carry Message.DONT_BUNDLE
 *
 * A sender first sends --warmup seconds of traffic (warms the JIT; not
 * measured; --warmup-next sets a shorter one for the scenarios after the
 * first; --jit-warmup runs a round of all-member traffic before the first
 * scenario, since one JIT warm-up of 2 s is not enough for HotSpot to
 * reach its steady state here), then measured traffic for --secs seconds or --count messages,
 * then one END marker.  Every member counts the measured messages it
 * delivers and times them from the first to the last; with every sender's
 * END delivered it casts DONE, and the next scenario starts when it has
 * the DONE of all M members (a barrier: no sender goes away while others
 * may still need a retransmission from it).  Messages name their scenario.
 *
 * Output per scenario, one line on stdout (field meanings in cpg_bench.c):
 *   RESULT sys=jgroups id=I scen=K mode=tput|lat size=S senders=N src=J recv=R
 *          secs=T rate=R mbps=B sent=X retries=0 hash=H fifo_err=E
 *          lat_n=L lat_p50_us=P lat_p99_us=Q coord=C
 * coord is the id of the view's coordinator (SEQUENCER's sequencer).  With
 * loopback="true" (udp.xml) a member delivers its own multicasts locally,
 * without the network; so does SEQUENCER's coordinator, which orders its
 * own messages itself: the self-delivery latency of a total-order sender
 * means something only when the sender is not the coordinator.
 *
 * Run: java -Djava.net.preferIPv4Stack=true -Djgroups.bind_addr=IP \
 *        -cp /usr/share/java/jgroups.jar:DIR JgBench --id I --members M \
 *        --stack udp.xml|FILE --scen LIST [--secs D] [--warmup W] ...
 * Exit: 0 on success, 1 on an error or timeout, 2 on a usage error.
 */
import java.io.File;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;

import org.jgroups.Address;
import org.jgroups.JChannel;
import org.jgroups.Message;
import org.jgroups.ReceiverAdapter;
import org.jgroups.View;
import org.jgroups.protocols.TP;

public final class JgBench extends ReceiverAdapter {
    static final int MAGIC = 0x76737862; /* "vsxb" */
    static final int HDR = 32;
    static final int KIND_DATA = 1, KIND_DONE = 2;
    static final int PHASE_WARM = 0, PHASE_MEAS = 1, PHASE_END = 2;
    static final long FNV_OFFSET = 0xcbf29ce484222325L, FNV_PRIME = 0x100000001b3L;

    static final class Scen {
        boolean lat, noBundle;
        int size, src; /* src: the one sender's id; 0: every member sends */
        long measCnt, tFirst, tLast, fifoErr, hash = FNV_OFFSET, sent;
        long[] nextSeq;
        boolean[] endSeen, doneSeen;
        int endCnt, doneCnt, latCnt;
        int[] latNs;
    }

    int id, members = 3, sender = 1;
    String stack = "udp.xml", cluster = "vsx_peer_bench";
    double secs = 3, warmup = 2, warmupNext = -1, rate = 1000, timeout = 300, jitWarmup = 0;
    int hidden; /* leading scenarios that only warm the JIT up */
    long count = Long.MAX_VALUE;
    Scen[] sc;
    JChannel ch;
    int viewSize;
    int coordId;
    long deadline;

    static long fnv(long h, long v) {
        for (int i = 0; i < 8; i++) {
            h ^= (v >>> (8 * i)) & 0xff;
            h *= FNV_PRIME;
        }
        return h;
    }

    /* receive: counts a delivered message under the scenario it names. */
    @Override
    public void receive(Message msg) {
        long t = System.nanoTime();
        int len = msg.getLength();
        if (len < HDR)
            return;
        ByteBuffer b = ByteBuffer.wrap(msg.getRawBuffer(), msg.getOffset(), len).order(ByteOrder.LITTLE_ENDIAN);
        if (b.getInt() != MAGIC)
            return;
        int kind = b.get(), scen = b.get(), phase = b.get();
        b.get();
        int sender = b.getInt();
        b.getInt();
        long seq = b.getLong(), sendNs = b.getLong();
        if (scen < 0 || scen >= sc.length || sender < 1 || sender > members)
            return;
        Scen s = sc[scen];
        synchronized (this) {
            if (kind == KIND_DONE) {
                if (!s.doneSeen[sender]) {
                    s.doneSeen[sender] = true;
                    s.doneCnt++;
                    notifyAll();
                }
                return;
            }
            if (kind != KIND_DATA)
                return;
            if (len != s.size)
                fail("scenario " + scen + ": message of " + len + " bytes, expected " + s.size);
            if (seq != s.nextSeq[sender])
                s.fifoErr++;
            s.nextSeq[sender] = seq + 1;
            s.hash = fnv(fnv(s.hash, sender), seq);
            if (phase == PHASE_MEAS) {
                if (s.measCnt == 0)
                    s.tFirst = t;
                s.tLast = t;
                s.measCnt++;
                if (s.lat && s.latCnt < s.latNs.length)
                    s.latNs[s.latCnt++] = (int) Math.min(t - sendNs, Integer.MAX_VALUE);
            } else if (phase == PHASE_END && !s.endSeen[sender]) {
                s.endSeen[sender] = true;
                s.endCnt++;
                notifyAll();
            }
        }
    }

    @Override
    public void viewAccepted(View v) {
        synchronized (this) {
            viewSize = v.size();
            coordId = idOf(v.getMembers().get(0));
            notifyAll();
        }
    }

    /* The logical name given at connect is "m<id>". */
    static int idOf(Address a) {
        String n = a.toString();
        try {
            return n.startsWith("m") ? Integer.parseInt(n.substring(1)) : 0;
        } catch (NumberFormatException e) {
            return 0;
        }
    }

    void fail(String why) {
        System.err.println("JgBench[" + id + "]: " + why);
        System.err.flush();
        Runtime.getRuntime().halt(1);
    }

    void checkDeadline(String what) {
        if (System.nanoTime() > deadline)
            fail("timed out (" + (long) timeout + " s) " + what);
    }

    byte[] message(int size, int kind, int scen, int phase, long seq) {
        byte[] buf = new byte[size];
        ByteBuffer b = ByteBuffer.wrap(buf).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(MAGIC).put((byte) kind).put((byte) scen).put((byte) phase).put((byte) 0);
        b.putInt(id).putInt(0).putLong(seq).putLong(System.nanoTime());
        return buf;
    }

    void cast(byte[] buf, boolean noBundle) throws Exception {
        Message m = new Message(null, null, buf);
        if (noBundle)
            m.setFlag(Message.DONT_BUNDLE);
        ch.send(m);
    }

    /* sendPhase: casts data of one phase; returns the next seqno. */
    long sendPhase(int k, int phase, double d, long max, long seq) throws Exception {
        Scen s = sc[k];
        long t0 = System.nanoTime(), end = t0 + (long) (d * 1e9), n = 0;
        long gap = s.lat ? (long) (1e9 / rate) : 0, next = t0;
        while (n < max && System.nanoTime() < end) {
            if (gap > 0) {
                long t;
                while ((t = System.nanoTime()) < next)
                    java.util.concurrent.locks.LockSupport.parkNanos(next - t);
                next += gap;
            }
            cast(message(s.size, KIND_DATA, k, phase, seq), s.noBundle);
            seq++;
            n++;
            s.sent++;
            if ((n & 1023) == 0)
                checkDeadline("sending");
        }
        return seq;
    }

    synchronized void await(java.util.function.BooleanSupplier cond, String what) throws InterruptedException {
        while (!cond.getAsBoolean()) {
            checkDeadline(what);
            wait(100);
        }
    }

    void runScenario(int k) throws Exception {
        Scen s = sc[k];
        /* :nb turns the transport's bundling off for this scenario (the
         * DONT_BUNDLE flag alone does not reach the messages SEQUENCER
         * forwards and re-multicasts); TP.send reads the switch per
         * message, and the bundler made at start stays for later. */
        TP tp = ch.getProtocolStack().getTransport();
        boolean bundling = tp.isEnableBundling();
        if (s.noBundle)
            tp.setEnableBundling(false);
        try {
            runScenarioSends(k, s);
        } finally {
            tp.setEnableBundling(bundling);
        }
    }

    void runScenarioSends(int k, Scen s) throws Exception {
        if (s.src == 0 || id == s.src) {
            long seq = 0;
            double w = k < hidden ? jitWarmup / 2 : k == hidden || warmupNext < 0 ? warmup : warmupNext;
            if (w > 0)
                seq = sendPhase(k, PHASE_WARM, w, Long.MAX_VALUE, seq);
            if (k >= hidden)
                seq = sendPhase(k, PHASE_MEAS, secs, count, seq);
            cast(message(s.size, KIND_DATA, k, PHASE_END, seq), s.noBundle);
        }
        int senders = s.src == 0 ? members : 1;
        await(() -> s.endCnt >= senders, "waiting for the senders' last messages");
        cast(message(HDR, KIND_DONE, k, 0, 0), false);
        await(() -> s.doneCnt >= members, "waiting for the others to finish");
    }

    synchronized void report(int k) {
        Scen s = sc[k];
        double d = (s.tLast - s.tFirst) / 1e9;
        double r = d > 0 ? s.measCnt / d : 0;
        double p50 = 0, p99 = 0;
        if (s.latCnt > 0) {
            int[] v = Arrays.copyOf(s.latNs, s.latCnt);
            Arrays.sort(v);
            p50 = v[(v.length - 1) / 2] / 1e3;
            p99 = v[(int) ((v.length - 1) * 0.99)] / 1e3;
        }
        System.out.printf("RESULT sys=jgroups id=%d scen=%d mode=%s size=%d senders=%d src=%d recv=%d secs=%.3f rate=%.0f "
                + "mbps=%.2f sent=%d retries=0 hash=%016x fifo_err=%d lat_n=%d lat_p50_us=%.1f lat_p99_us=%.1f "
                + "coord=%d nobundle=%d%n",
                id, k - hidden, s.lat ? "lat" : "tput", s.size, s.src == 0 ? members : 1, s.src, s.measCnt, d, r, r * s.size / 1e6,
                s.sent, s.hash, s.fifoErr, s.latCnt, p50, p99, coordId, s.noBundle ? 1 : 0);
        System.out.flush();
    }

    /* parseScen: the scenario list; with --jit-warmup S, two hidden
     * scenarios come first (all members send 64 B, then 1 KiB, S/2 s each,
     * nothing measured or reported), so every member's send and receive
     * paths are compiled before the first measured scenario. */
    void parseScen(String spec) {
        if (jitWarmup > 0)
            spec = "t:64:all,t:1024:all," + spec;
        hidden = jitWarmup > 0 ? 2 : 0;
        String[] toks = spec.split(",");
        sc = new Scen[toks.length];
        if (toks.length > 100)
            usage(2);
        for (int i = 0; i < toks.length; i++) {
            String[] f = toks[i].split(":");
            Scen s = new Scen();
            if (f.length < 2 || !(f[0].equals("t") || f[0].equals("l")))
                usage(2);
            s.lat = f[0].equals("l");
            s.size = Integer.parseInt(f[1]);
            if (s.size < HDR || s.size > (1 << 20))
                usage(2);
            s.src = sender;
            for (int j = 2; j < f.length; j++) {
                if (f[j].equals("all") && !s.lat)
                    s.src = 0;
                else if (f[j].matches("m[0-9]+") && Integer.parseInt(f[j].substring(1)) >= 1
                        && Integer.parseInt(f[j].substring(1)) <= members)
                    s.src = Integer.parseInt(f[j].substring(1));
                else if (f[j].equals("nb"))
                    s.noBundle = true;
                else if (!f[j].equals("one"))
                    usage(2);
            }
            s.nextSeq = new long[members + 1];
            s.endSeen = new boolean[members + 1];
            s.doneSeen = new boolean[members + 1];
            s.latNs = new int[s.lat ? (int) Math.min(rate * secs * 1.2 + 16, 1000000) : 0];
            sc[i] = s;
        }
    }

    static void usage(int code) {
        (code == 0 ? System.out : System.err).println(
                "usage: JgBench --id I --members M --scen LIST [options]\n"
                + "  --id I          this member's id, 1..M\n"
                + "  --sender J      the sender in one-sender and latency scenarios (default 1)\n"
                + "  --members M     group size to wait for (default 3)\n"
                + "  --scen LIST     comma-separated: t:SIZE:one|all|mN[:nb], l:SIZE[:mN][:nb] (nb: bundling off)\n"
                + "  --stack CONFIG  JGroups stack: a resource in the jar (udp.xml) or a file\n"
                + "  --cluster NAME  cluster name (default vsx_peer_bench)\n"
                + "  --secs D        measured seconds per sender (default 3)\n"
                + "  --count N       at most N measured messages per sender\n"
                + "  --warmup W      unmeasured seconds before each scenario (default 2)\n"
                + "  --warmup-next W2  the same for the scenarios after the first (default W)\n"
                + "  --jit-warmup S  first, all members send for S s (64 B, then 1 KiB), unmeasured\n"
                + "  --rate R        latency mode: messages per second (default 1000)\n"
                + "  --timeout T     give up after T seconds in all (default 300)");
        System.exit(code);
    }

    public static void main(String[] args) throws Exception {
        JgBench b = new JgBench();
        String spec = null;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.equals("--help"))
                usage(0);
            if (i + 1 >= args.length)
                usage(2);
            String v = args[++i];
            switch (a) {
            case "--id": b.id = Integer.parseInt(v); break;
            case "--members": b.members = Integer.parseInt(v); break;
            case "--sender": b.sender = Integer.parseInt(v); break;
            case "--scen": spec = v; break;
            case "--stack": b.stack = v; break;
            case "--cluster": b.cluster = v; break;
            case "--secs": b.secs = Double.parseDouble(v); break;
            case "--count": b.count = Long.parseLong(v); break;
            case "--warmup": b.warmup = Double.parseDouble(v); break;
            case "--warmup-next": b.warmupNext = Double.parseDouble(v); break;
            case "--jit-warmup": b.jitWarmup = Double.parseDouble(v); break;
            case "--rate": b.rate = Double.parseDouble(v); break;
            case "--timeout": b.timeout = Double.parseDouble(v); break;
            default: usage(2);
            }
        }
        if (b.members < 1 || b.members > 16 || b.id < 1 || b.id > b.members || b.sender < 1
                || b.sender > b.members || spec == null || b.secs <= 0
                || b.rate <= 0)
            usage(2);
        b.parseScen(spec);
        b.run();
    }

    void run() throws Exception {
        deadline = System.nanoTime() + (long) (timeout * 1e9);
        File f = new File(stack);
        ch = f.exists() ? new JChannel(f) : new JChannel(stack);
        ch.setName("m" + id);
        ch.setReceiver(this);
        ch.connect(cluster);
        System.out.println("JOINED id=" + id + " view=" + ch.getView());
        System.out.flush();
        await(() -> viewSize >= members, "waiting for all members to join");
        System.err.println("JgBench[" + id + "]: " + viewSize + " members, coordinator m" + coordId + ", starting");
        for (int k = 0; k < sc.length; k++) {
            runScenario(k);
            if (k >= hidden)
                report(k);
        }
        ch.close();
        System.exit(0);
    }
}
