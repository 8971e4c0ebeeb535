/* cpg_bench.c - one member of a Corosync CPG benchmark group (the peer
 * that vsx-perf compares vsx with).
 *
 * Each of M members runs one cpg_bench (normally one per test host, each
 * beside its own corosync daemon).  They join a CPG group, wait until the
 * group has M members, then run a list of scenarios in order:
 *
 *   t:SIZE:one   one member (--sender, default 1) casts SIZE-byte messages
 *                with CPG_TYPE_AGREED as fast as CPG's flow control allows
 *                (CS_ERR_TRY_AGAIN: dispatch, wait for the daemon, retry)
 *   t:SIZE:all   every member does so at once
 *   t:SIZE:mN    member N is the one sender (instead of --sender)
 *   l:SIZE       the one sender casts at --rate messages/s; every member
 *                times send -> its delivery of each (same machine, one
 *                CLOCK_MONOTONIC): at the sender that is the self-delivery
 *                latency, at the others the one-way latency (l:SIZE:mN:
 *                member N sends)
 *
 * A sender first sends --warmup seconds of traffic (not measured), then
 * measured traffic for --secs seconds or --count messages, whichever ends
 * first, then one END marker.  Every member counts the measured messages
 * it delivers and times them from the first to the last; once it has the
 * END marker of every sender it casts DONE, and the next scenario starts
 * when a member has delivered the DONE of all M members (a barrier, so no
 * sender leaves while others may still need its traffic).  Every message
 * names its scenario, so traffic of the next scenario that arrives before
 * the barrier is counted where it belongs.
 *
 * Per scenario each member prints one line on stdout:
 *   RESULT sys=cpg id=I scen=K mode=tput|lat size=S senders=N src=J
 *          recv=R secs=T rate=MSGS_PER_S mbps=MB_PER_S sent=X retries=Y
 *          hash=H fifo_err=E lat_n=L lat_p50_us=P lat_p99_us=Q
 * (src: the one sender's id, 0 when all send)
 * rate is measured messages delivered per second at this member (MB is
 * 10^6 bytes of message, header included); hash is an FNV-1a hash of the
 * (sender, seqno) delivery order, equal at all members when the order is
 * total; fifo_err counts per-sender sequence gaps (must be 0).  The
 * driver (peers.sh) takes the slowest member.  Diagnostics go to stderr.
 *
 * Exit: 0 on success, 1 on a CPG error or when --timeout expires, 2 on a
 * usage error.
 *
 * Build: cc -O2 cpg_bench.c $(pkg-config --cflags --libs libcpg)
 */
#include <corosync/cpg.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BENCH_MAGIC 0x76737862u /* "vsxb" */
#define MEMBERS_MAX 16
#define SCEN_MAX 32
#define SIZE_MAX_B (1u << 20)
#define LAT_SAMPLES_MAX 1000000u

enum { KIND_DATA = 1, KIND_DONE = 2 };
enum { PHASE_WARM = 0, PHASE_MEAS = 1, PHASE_END = 2 };
enum { MODE_TPUT = 0, MODE_LAT = 1 };

/* Wire header at the start of every message (same machine, host order). */
struct bench_hdr {
  uint32_t magic;
  uint8_t kind;
  uint8_t scen;
  uint8_t phase;
  uint8_t pad;
  uint32_t sender; /* member id, 1..M */
  uint32_t pad2;
  uint64_t seq;     /* per sender and scenario, from 0, all phases */
  uint64_t send_ns; /* CLOCK_MONOTONIC at the sender */
};
_Static_assert(sizeof(struct bench_hdr) == 32, "header is 32 bytes");

struct scen {
  int mode;       /* MODE_TPUT or MODE_LAT */
  uint32_t size;  /* message size, header included */
  int src;        /* the one sender's id; 0: every member sends */
  /* Receive side. */
  uint64_t meas_cnt;
  uint64_t t_first_ns, t_last_ns;
  uint64_t next_seq[MEMBERS_MAX + 1];
  uint64_t fifo_err;
  uint64_t hash;
  int end_seen[MEMBERS_MAX + 1];
  int end_cnt;
  int done_seen[MEMBERS_MAX + 1];
  int done_cnt;
  /* Send side. */
  uint64_t sent;
  uint64_t retries;
  uint32_t *lat_ns; /* latency mode: the sender's measured messages */
  uint32_t lat_cnt;
};

static struct {
  int id, members, sender;
  const char *group;
  double secs, warmup, rate, timeout;
  uint64_t retry_us; /* wait for the fd before retrying a held-back cast */
  uint64_t count;
  uint32_t lat_max;
  struct scen sc[SCEN_MAX];
  int scen_cnt;
  cpg_handle_t h;
  int fd;
  size_t view_cnt;
  uint64_t deadline_ns;
  uint8_t *buf;
} g;

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "cpg_bench[%d]: ", g.id);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  exit(1);
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t fnv1a(uint64_t h, uint64_t v) {
  for (int i = 0; i < 8; i++) {
    h ^= (v >> (8 * i)) & 0xffu;
    h *= 0x100000001b3ull;
  }
  return h;
}

/* on_deliver: counts a delivered message under the scenario it names. */
static void on_deliver(cpg_handle_t h, const struct cpg_name *grp, uint32_t nodeid, uint32_t pid,
                       void *msg, size_t len) {
  (void)h, (void)grp, (void)nodeid, (void)pid;
  uint64_t t = now_ns();
  struct bench_hdr hd;
  if (len < sizeof hd)
    return;
  memcpy(&hd, msg, sizeof hd);
  if (hd.magic != BENCH_MAGIC || hd.scen >= g.scen_cnt || hd.sender < 1 || hd.sender > (uint32_t)g.members)
    return;
  struct scen *s = &g.sc[hd.scen];
  if (hd.kind == KIND_DONE) {
    if (!s->done_seen[hd.sender]) {
      s->done_seen[hd.sender] = 1;
      s->done_cnt++;
    }
    return;
  }
  if (hd.kind != KIND_DATA)
    return;
  if (len != s->size)
    die("scenario %u: message of %zu bytes, expected %u", hd.scen, len, s->size);
  if (hd.seq != s->next_seq[hd.sender])
    s->fifo_err++;
  s->next_seq[hd.sender] = hd.seq + 1;
  s->hash = fnv1a(fnv1a(s->hash, hd.sender), hd.seq);
  if (hd.phase == PHASE_MEAS) {
    if (s->meas_cnt == 0)
      s->t_first_ns = t;
    s->t_last_ns = t;
    s->meas_cnt++;
    if (s->mode == MODE_LAT && s->lat_cnt < g.lat_max)
      s->lat_ns[s->lat_cnt++] = (uint32_t)(t - hd.send_ns > UINT32_MAX ? UINT32_MAX : t - hd.send_ns);
  } else if (hd.phase == PHASE_END && !s->end_seen[hd.sender]) {
    s->end_seen[hd.sender] = 1;
    s->end_cnt++;
  }
}

static void on_confchg(cpg_handle_t h, const struct cpg_name *grp, const struct cpg_address *members,
                       size_t member_cnt, const struct cpg_address *left, size_t left_cnt,
                       const struct cpg_address *joined, size_t joined_cnt) {
  (void)h, (void)grp, (void)members, (void)joined, (void)joined_cnt;
  if (left_cnt > 0 && g.view_cnt >= (size_t)g.members)
    fprintf(stderr, "cpg_bench[%d]: member %u left (reason %u)\n", g.id, left[0].nodeid, left[0].reason);
  g.view_cnt = member_cnt;
}

static void check_deadline(const char *what) {
  if (now_ns() > g.deadline_ns)
    die("timed out (%.0f s) %s", g.timeout, what);
}

/* pump: waits up to wait_us for the CPG fd, then dispatches what is there. */
static void pump(uint64_t wait_us) {
  struct pollfd p = {.fd = g.fd, .events = POLLIN};
  struct timespec ts = {.tv_sec = (time_t)(wait_us / 1000000u), .tv_nsec = (long)(wait_us % 1000000u) * 1000};
  int n = ppoll(&p, 1, &ts, NULL);
  if (n < 0 && errno != EINTR)
    die("ppoll: %s", strerror(errno));
  if (n > 0) {
    cs_error_t rc = cpg_dispatch(g.h, CS_DISPATCH_ALL);
    if (rc != CS_OK && rc != CS_ERR_TRY_AGAIN)
      die("cpg_dispatch: error %d", rc);
  }
}

/* cast: casts one message of len bytes from g.buf; returns when CPG has
 * accepted it, dispatching while flow control holds it back. */
static void cast(struct scen *s, size_t len) {
  struct iovec iov = {.iov_base = g.buf, .iov_len = len};
  for (;;) {
    cs_error_t rc = cpg_mcast_joined(g.h, CPG_TYPE_AGREED, &iov, 1);
    if (rc == CS_OK)
      return;
    if (rc != CS_ERR_TRY_AGAIN)
      die("cpg_mcast_joined: error %d", rc);
    s->retries++;
    check_deadline("sending");
    pump(g.retry_us);
  }
}

static void put_hdr(int kind, int scen, int phase, uint64_t seq) {
  struct bench_hdr hd = {.magic = BENCH_MAGIC, .kind = (uint8_t)kind, .scen = (uint8_t)scen,
                         .phase = (uint8_t)phase, .sender = (uint32_t)g.id, .seq = seq,
                         .send_ns = now_ns()};
  memcpy(g.buf, &hd, sizeof hd);
}

/* send_phase: casts data of one phase; returns the next seqno.  Latency
 * mode paces the casts at g.rate and dispatches in between. */
static uint64_t send_phase(int k, int phase, double secs, uint64_t max_cnt, uint64_t seq) {
  struct scen *s = &g.sc[k];
  uint64_t t0 = now_ns(), end = t0 + (uint64_t)(secs * 1e9), n = 0;
  uint64_t gap = s->mode == MODE_LAT ? (uint64_t)(1e9 / g.rate) : 0, next = t0;
  while (n < max_cnt && now_ns() < end) {
    if (gap) {
      uint64_t t;
      while ((t = now_ns()) < next)
        pump((next - t) / 1000u);
      next += gap;
    }
    put_hdr(KIND_DATA, k, phase, seq);
    cast(s, s->size);
    seq++, n++, s->sent++;
    if ((n & 15) == 0)
      pump(0);
  }
  return seq;
}

static void run_scenario(int k) {
  struct scen *s = &g.sc[k];
  if (s->src == 0 || g.id == s->src) {
    uint64_t seq = 0;
    if (g.warmup > 0)
      seq = send_phase(k, PHASE_WARM, g.warmup, UINT64_MAX, seq);
    seq = send_phase(k, PHASE_MEAS, g.secs, g.count, seq);
    put_hdr(KIND_DATA, k, PHASE_END, seq);
    cast(s, s->size);
  }
  int senders = s->src ? 1 : g.members;
  while (s->end_cnt < senders) {
    check_deadline("waiting for the senders' last messages");
    pump(100000);
  }
  put_hdr(KIND_DONE, k, 0, 0);
  cast(s, sizeof(struct bench_hdr));
  while (s->done_cnt < g.members) {
    check_deadline("waiting for the others to finish");
    pump(100000);
  }
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static void report(int k) {
  struct scen *s = &g.sc[k];
  double secs = (double)(s->t_last_ns - s->t_first_ns) / 1e9;
  double rate = secs > 0 ? (double)s->meas_cnt / secs : 0;
  double p50 = 0, p99 = 0;
  if (s->lat_cnt > 0) {
    qsort(s->lat_ns, s->lat_cnt, sizeof s->lat_ns[0], cmp_u32);
    p50 = s->lat_ns[(s->lat_cnt - 1) / 2] / 1e3;
    p99 = s->lat_ns[(uint32_t)((s->lat_cnt - 1) * 0.99)] / 1e3;
  }
  printf("RESULT sys=cpg id=%d scen=%d mode=%s size=%u senders=%d src=%d recv=%" PRIu64 " secs=%.3f rate=%.0f "
         "mbps=%.2f sent=%" PRIu64 " retries=%" PRIu64 " hash=%016" PRIx64 " fifo_err=%" PRIu64
         " lat_n=%u lat_p50_us=%.1f lat_p99_us=%.1f\n",
         g.id, k, s->mode == MODE_LAT ? "lat" : "tput", s->size, s->src ? 1 : g.members, s->src,
         s->meas_cnt, secs,
         rate, rate * s->size / 1e6, s->sent, s->retries, s->hash, s->fifo_err, s->lat_cnt, p50, p99);
  fflush(stdout);
}

/* parse_scen: "t:SIZE:one|all|mN" or "l:SIZE[:one|mN]"; 0 or -1.
 * Assumes g.members and g.sender are set. */
static int parse_scen(char *spec) {
  for (char *tok = strtok(spec, ","); tok; tok = strtok(NULL, ",")) {
    if (g.scen_cnt == SCEN_MAX)
      return -1;
    struct scen *s = &g.sc[g.scen_cnt];
    char who[8] = "one";
    char m;
    unsigned size;
    int n = sscanf(tok, "%c:%u:%7s", &m, &size, who);
    if (n < 2 || (m != 't' && m != 'l') || size < sizeof(struct bench_hdr) || size > SIZE_MAX_B)
      return -1;
    int src = g.sender;
    if (!strcmp(who, "all") && m == 't')
      src = 0;
    else if (who[0] == 'm' && sscanf(who + 1, "%d", &src) == 1 && src >= 1 && src <= g.members)
      ;
    else if (strcmp(who, "one"))
      return -1;
    s->mode = m == 'l' ? MODE_LAT : MODE_TPUT;
    s->size = size;
    s->src = src;
    s->hash = 0xcbf29ce484222325ull;
    g.scen_cnt++;
  }
  return g.scen_cnt > 0 ? 0 : -1;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: cpg_bench --id I --members M --scen LIST [options]\n"
          "  --id I          this member's id, 1..M\n"
          "  --sender J      the sender in one-sender and latency scenarios (default 1)\n"
          "  --members M     group size to wait for (default 3)\n"
          "  --scen LIST     comma-separated scenarios: t:SIZE:one|all|mN, l:SIZE[:mN]\n"
          "  --group NAME    CPG group name (default vsx_peer_bench)\n"
          "  --secs D        measured seconds per sender (default 3)\n"
          "  --count N       at most N measured messages per sender (default unlimited)\n"
          "  --warmup W      unmeasured seconds before (default 0.5)\n"
          "  --rate R        latency mode: messages per second (default 1000)\n"
          "  --timeout T     give up after T seconds in all (default 300)\n"
          "  --retry-wait-us U  on CS_ERR_TRY_AGAIN wait up to U us for the CPG fd,\n"
          "                  dispatch, retry (default 1000)\n");
}

int main(int argc, char **argv) {
  static const struct option opts[] = {
      {"id", 1, 0, 'i'},     {"members", 1, 0, 'm'}, {"scen", 1, 0, 's'},    {"group", 1, 0, 'g'},
      {"secs", 1, 0, 'd'},   {"count", 1, 0, 'n'},   {"warmup", 1, 0, 'w'},  {"rate", 1, 0, 'r'},
      {"timeout", 1, 0, 'T'}, {"sender", 1, 0, 'S'}, {"retry-wait-us", 1, 0, 'W'}, {"help", 0, 0, 'h'},   {0, 0, 0, 0}};
  g.members = 3, g.sender = 1, g.group = "vsx_peer_bench", g.secs = 3, g.warmup = 0.5, g.rate = 1000, g.timeout = 300;
  g.count = UINT64_MAX, g.retry_us = 1000;
  char *spec = NULL;
  int c;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case 'i': g.id = atoi(optarg); break;
    case 'm': g.members = atoi(optarg); break;
    case 's': spec = optarg; break;
    case 'g': g.group = optarg; break;
    case 'd': g.secs = atof(optarg); break;
    case 'n': g.count = strtoull(optarg, NULL, 10); break;
    case 'w': g.warmup = atof(optarg); break;
    case 'r': g.rate = atof(optarg); break;
    case 'T': g.timeout = atof(optarg); break;
    case 'S': g.sender = atoi(optarg); break;
    case 'W': g.retry_us = strtoull(optarg, NULL, 10); break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (g.members < 1 || g.members > MEMBERS_MAX || g.id < 1 || g.id > g.members || g.sender < 1 ||
      g.sender > g.members || !spec || parse_scen(spec) ||
      g.secs <= 0 || g.rate <= 0 || strlen(g.group) >= CPG_MAX_NAME_LENGTH) {
    usage(stderr);
    return 2;
  }
  g.lat_max = (uint32_t)(g.rate * g.secs * 1.2 + 16);
  if (g.lat_max > LAT_SAMPLES_MAX)
    g.lat_max = LAT_SAMPLES_MAX;
  for (int k = 0; k < g.scen_cnt; k++) {
    if (g.sc[k].mode == MODE_LAT && !(g.sc[k].lat_ns = malloc(g.lat_max * sizeof(uint32_t))))
      die("out of memory");
  }
  if (!(g.buf = calloc(1, SIZE_MAX_B)))
    die("out of memory");
  g.deadline_ns = now_ns() + (uint64_t)(g.timeout * 1e9);

  /* The daemon may still be starting: retry the connection. */
  cpg_callbacks_t cb = {.cpg_deliver_fn = on_deliver, .cpg_confchg_fn = on_confchg};
  cs_error_t rc;
  while ((rc = cpg_initialize(&g.h, &cb)) != CS_OK) {
    check_deadline("connecting to corosync");
    usleep(100000);
  }
  if ((rc = cpg_fd_get(g.h, &g.fd)) != CS_OK)
    die("cpg_fd_get: error %d", rc);
  struct cpg_name name;
  name.length = (uint32_t)strlen(g.group);
  memcpy(name.value, g.group, name.length);
  while ((rc = cpg_join(g.h, &name)) == CS_ERR_TRY_AGAIN) {
    check_deadline("joining");
    usleep(10000);
  }
  if (rc != CS_OK)
    die("cpg_join: error %d", rc);
  while (g.view_cnt < (size_t)g.members) {
    check_deadline("waiting for all members to join");
    pump(100000);
  }
  fprintf(stderr, "cpg_bench[%d]: %zu members, starting\n", g.id, g.view_cnt);
  for (int k = 0; k < g.scen_cnt; k++) {
    run_scenario(k);
    report(k);
  }
  /* Deliberately no wait after the last barrier: every member has every
   * message it counts, and the DONE casts are all delivered. */
  cpg_leave(g.h, &name);
  cpg_finalize(g.h);
  return 0;
}
