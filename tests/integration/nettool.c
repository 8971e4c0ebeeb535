/* nettool.c - the integration tests' helper: one program, several roles,
   each run in a test host (network namespace) by the scripts next to it.

   Goal: prove the real transports (afxdp, udp) carry vsx datagrams
   between processes intact, interoperate with each other and with the
   kernel's own UDP/IP stack, leave the host's other traffic alone, and
   fail with clear errors.
   Method: every datagram carries a test header (type, sequence number,
   length, CRC-32C) and a byte pattern derived from (sender, kind, seq),
   so a receiver notices a foreign, corrupted, duplicated or missing
   datagram by itself; each role prints one result line and exits 0 on
   success, 1 on a failed check, 2 on a usage or set-up error.

   Roles:
     xfer    one member of a datagram exchange over a transport: hello
             handshake, then a counted stream of casts and of sends to
             each peer, then checks it got every peer's whole stream.
     blast   sends a counted stream without handshake (to a kernel socket
             or a capture), after waiting until the target's address is
             resolved.
     ksink   receives a counted stream on a plain kernel UDP socket and
             checks the kernel found no checksum error (/proc/net/snmp).
     open    creates a transport and reports the result or the error
             (--expect-error SUBSTR inverts the verdict); --hold keeps it.
     ping    ICMP echo over a raw socket (the machine has no ping).
     member  one endpoint (reliable stack): casts and sends a counted
             stream and checks every cast and send is delivered exactly
             once, in order, with the right bytes. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <linux/if_xdp.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <ev.h>

#include "vsx/endpoint.h"
#include "vsx/transport.h"
#include "vsx/wire.h"
#include "transport/afxdp_priv.h"

#define GROUP      "vsx-integration"
#define PEERS_MAX  16
#define DGRAM_MAX  9000
#define HDR_SZ     (sizeof(vsx_wire_hdr_t) + sizeof(tpay_t))

enum { T_HELLO = 1, T_DATA = 2, T_DONE = 3 };
enum { K_CAST = 0, K_SEND = 1 };

/* The test header after the wire header. */
typedef struct __attribute__((packed)) tpay {
  uint8_t  type;
  uint8_t  kind;
  uint16_t heard; /* peers the sender has heard from */
  uint32_t seq;
  uint32_t dlen;  /* pattern bytes that follow */
  uint32_t crc;   /* CRC-32C of those bytes */
} tpay_t;

typedef struct opts {
  const char *transport, *ifname, *mode, *copy, *expect_error, *dir, *group;
  uint64_t eid, to;
  uint64_t peers[PEERS_MAX];
  uint32_t peer_cnt;
  uint64_t add_eid[PEERS_MAX];
  struct sockaddr_in add_addr[PEERS_MAX];
  uint32_t add_cnt;
  uint32_t mcast_ip, local_ip, ping_ip; /* host order */
  uint16_t port;
  uint32_t casts, sends, count, size_min, size_max, buf_cnt;
  double rate, timeout, hold, max_loss;
  int busy_poll, split_every;
} opts_t;

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) { (void)sig; g_stop = 1; }

static uint64_t now_ns(void) { return vsx_now_ns(); }

static void die_usage(const char *msg) {
  fprintf(stderr, "vsx_nettool: %s\n"
          "usage: vsx_nettool xfer|blast|ksink|open|ping|member [options]\n"
          "  --transport afxdp|udp  --if IFNAME  --eid N  --peers N,N,..  --mcast A.B.C.D|0\n"
          "  --port P  --local-ip A.B.C.D  --casts N  --sends N  --count N  --size MIN[:MAX]\n"
          "  --rate PER_S  --timeout S  --hold S  --add-peer EID@A.B.C.D:PORT  --to EID\n"
          "  --mode auto|skb|drv  --copy auto|force|never  --busy-poll  --expect-error TEXT\n"
          "  --max-loss FRACTION  --dir DIR  --split-every N  --buf-cnt N  --ip A.B.C.D\n", msg);
  exit(2);
}

static uint32_t parse_ip(const char *s) {
  struct in_addr a;
  if (!strcmp(s, "0")) return 0;
  if (inet_pton(AF_INET, s, &a) != 1) die_usage("bad IPv4 address");
  return ntohl(a.s_addr);
}

static uint32_t parse_eids(const char *s, uint64_t *out, uint32_t cap) {
  uint32_t n = 0;
  char *dup = strdup(s), *save = NULL;
  for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    if (n == cap) die_usage("too many ids");
    out[n++] = strtoull(t, NULL, 0);
  }
  free(dup);
  return n;
}

static void parse_opts(int argc, char **argv, opts_t *o) {
  static const struct option lo[] = {
    { "transport", 1, 0, 't' }, { "if", 1, 0, 'i' }, { "eid", 1, 0, 'e' }, { "peers", 1, 0, 'P' },
    { "mcast", 1, 0, 'm' }, { "port", 1, 0, 'p' }, { "local-ip", 1, 0, 'l' }, { "casts", 1, 0, 'c' },
    { "sends", 1, 0, 's' }, { "count", 1, 0, 'n' }, { "size", 1, 0, 'z' }, { "rate", 1, 0, 'r' },
    { "timeout", 1, 0, 'T' }, { "hold", 1, 0, 'H' }, { "add-peer", 1, 0, 'a' }, { "to", 1, 0, 'o' },
    { "mode", 1, 0, 'M' }, { "copy", 1, 0, 'C' }, { "busy-poll", 0, 0, 'b' }, { "expect-error", 1, 0, 'x' },
    { "max-loss", 1, 0, 'L' }, { "dir", 1, 0, 'd' }, { "split-every", 1, 0, 'S' }, { "buf-cnt", 1, 0, 'B' },
    { "ip", 1, 0, 'I' }, { "group", 1, 0, 'g' }, { 0, 0, 0, 0 },
  };
  *o = (opts_t){ .transport = "udp", .port = 47000, .size_min = 64, .size_max = 64, .rate = 20000,
                 .timeout = 20, .buf_cnt = 8192, .group = GROUP, .split_every = 3 };
  int c;
  while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
    switch (c) {
    case 't': o->transport = optarg; break;
    case 'i': o->ifname = optarg; break;
    case 'e': o->eid = strtoull(optarg, NULL, 0); break;
    case 'P': o->peer_cnt = parse_eids(optarg, o->peers, PEERS_MAX); break;
    case 'm': o->mcast_ip = parse_ip(optarg); break;
    case 'p': o->port = (uint16_t)atoi(optarg); break;
    case 'l': o->local_ip = parse_ip(optarg); break;
    case 'c': o->casts = (uint32_t)atoi(optarg); break;
    case 's': o->sends = (uint32_t)atoi(optarg); break;
    case 'n': o->count = (uint32_t)atoi(optarg); break;
    case 'z': {
      char *colon = strchr(optarg, ':');
      o->size_min = (uint32_t)atoi(optarg);
      o->size_max = colon ? (uint32_t)atoi(colon + 1) : o->size_min;
      break;
    }
    case 'r': o->rate = atof(optarg); break;
    case 'T': o->timeout = atof(optarg); break;
    case 'H': o->hold = atof(optarg); break;
    case 'a': {
      char ip[64];
      unsigned long long eid;
      unsigned port;
      if (o->add_cnt == PEERS_MAX || sscanf(optarg, "%llu@%63[0-9.]:%u", &eid, ip, &port) != 3)
        die_usage("bad --add-peer (EID@A.B.C.D:PORT)");
      o->add_eid[o->add_cnt] = eid;
      o->add_addr[o->add_cnt] = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                                      .sin_addr.s_addr = htonl(parse_ip(ip)) };
      o->add_cnt++;
      break;
    }
    case 'o': o->to = strtoull(optarg, NULL, 0); break;
    case 'M': o->mode = optarg; break;
    case 'C': o->copy = optarg; break;
    case 'b': o->busy_poll = 1; break;
    case 'x': o->expect_error = optarg; break;
    case 'L': o->max_loss = atof(optarg); break;
    case 'd': o->dir = optarg; break;
    case 'S': o->split_every = atoi(optarg); break;
    case 'B': o->buf_cnt = (uint32_t)atoi(optarg); break;
    case 'I': o->ping_ip = parse_ip(optarg); break;
    case 'g': o->group = optarg; break;
    default: die_usage("unknown option");
    }
  }
  if (o->size_min < HDR_SZ) o->size_min = HDR_SZ;
  if (o->size_max < o->size_min) o->size_max = o->size_min;
  if (o->size_max > DGRAM_MAX) die_usage("--size too large");
}

/* ---- payload ------------------------------------------------------------- */

/* pattern fills n bytes from a PRNG seeded by (src, kind, seq). */
static void pattern(uint8_t *p, uint32_t n, uint64_t src, int kind, uint32_t seq) {
  vsx_rng_t r;
  vsx_rng_seed(&r, src * 0x9e3779b97f4a7c15ULL ^ ((uint64_t)kind << 40) ^ seq);
  for (uint32_t i = 0; i < n; i += 8) {
    uint64_t v = vsx_rng_next(&r);
    memcpy(p + i, &v, n - i < 8 ? n - i : 8);
  }
}

/* dgram_size is the datagram size of (src, kind, seq): spread over
   [size_min, size_max], odd and even. */
static uint32_t dgram_size(const opts_t *o, uint64_t src, int kind, uint32_t seq) {
  uint32_t span = o->size_max - o->size_min + 1;
  return o->size_min + (uint32_t)((src * 31 + (uint64_t)kind * 7 + (uint64_t)seq * 2654435761u) % span);
}

/* encode writes wire header + test header + pattern into p (total bytes). */
static void encode(uint8_t *p, uint32_t total, uint64_t src, uint64_t dst, int kind, int type, uint32_t seq,
                   uint16_t heard) {
  vsx_wire_hdr_t h = { .magic = VSX_WIRE_MAGIC, .version = VSX_WIRE_VERSION,
                       .kind = kind == K_SEND ? VSX_WIRE_SEND : VSX_WIRE_CAST, .total_len = total,
                       .group_id = vsx_hash64(GROUP), .instance = 1, .src_eid = src, .dst_eid = dst };
  vsx_wire_encode(p, &h);
  uint32_t dlen = total - (uint32_t)HDR_SZ;
  uint8_t *data = p + HDR_SZ;
  pattern(data, dlen, src, kind, seq);
  tpay_t t = { .type = (uint8_t)type, .kind = (uint8_t)kind, .heard = htons(heard), .seq = htonl(seq),
               .dlen = htonl(dlen), .crc = htonl(vsx_crc32c(0, data, dlen)) };
  memcpy(p + sizeof(vsx_wire_hdr_t), &t, sizeof t);
}

typedef struct decoded { vsx_wire_hdr_t h; tpay_t t; int kind; } decoded_t;

/* decode checks a received datagram completely; returns NULL when it is
   fine, else what is wrong. */
static const char *decode(const uint8_t *p, uint32_t len, uint64_t me, decoded_t *d) {
  static uint8_t want[DGRAM_MAX];
  if (len < HDR_SZ) return "shorter than the headers";
  vsx_wire_decode(&d->h, p);
  memcpy(&d->t, p + sizeof(vsx_wire_hdr_t), sizeof d->t);
  d->t.heard = ntohs(d->t.heard);
  d->t.seq = ntohl(d->t.seq);
  d->t.dlen = ntohl(d->t.dlen);
  d->t.crc = ntohl(d->t.crc);
  if (d->h.magic != VSX_WIRE_MAGIC || d->h.version != VSX_WIRE_VERSION) return "bad magic or version";
  if (d->h.group_id != vsx_hash64(GROUP)) return "wrong group";
  if (d->h.total_len != len) return "total_len differs from the datagram length";
  if (d->t.dlen != len - HDR_SZ) return "test length differs";
  d->kind = d->h.kind == VSX_WIRE_SEND ? K_SEND : K_CAST;
  if (d->t.kind != d->kind) return "kind mismatch";
  if (d->kind == K_SEND && d->h.dst_eid != me) return "send for another endpoint delivered here";
  if (d->kind == K_CAST && d->h.dst_eid) return "cast with a destination";
  const uint8_t *data = p + HDR_SZ;
  if (vsx_crc32c(0, data, d->t.dlen) != d->t.crc) return "CRC mismatch (corrupted bytes)";
  pattern(want, d->t.dlen, d->h.src_eid, d->kind, d->t.seq);
  if (memcmp(want, data, d->t.dlen)) return "pattern mismatch";
  return NULL;
}

/* ---- transport handle ---------------------------------------------------- */

typedef struct xp {
  const vsx_transport_ops_t *ops;
  void *st;
  vsx_bufpool_t *pool;
  int is_afxdp;
  vsx_afxdp_opts_t ao;
  vsx_udp_opts_t uo;
} xp_t;

static int xp_open(xp_t *x, const opts_t *o) {
  memset(x, 0, sizeof *x);
  x->ops = vsx_transport_find(o->transport);
  if (!x->ops) die_usage("unknown transport");
  x->is_afxdp = !strcmp(o->transport, "afxdp");
  if (o->mode) x->ao.mode = !strcmp(o->mode, "skb") ? VSX_AFXDP_MODE_SKB : !strcmp(o->mode, "drv") ? VSX_AFXDP_MODE_DRV : 0;
  if (o->copy) x->ao.copy = !strcmp(o->copy, "force") ? VSX_AFXDP_COPY_FORCE : !strcmp(o->copy, "never") ? VSX_AFXDP_COPY_NEVER : 0;
  x->ao.busy_poll = o->busy_poll;
  /* Room for ~100 ms of a test's traffic when the receiver is not
     scheduled (loaded CI machines, sanitizer builds). */
  x->uo.sock_buf_sz = 16u << 20;
  vsx_transport_cfg_t cfg = {
    .group = GROUP, .group_id = vsx_hash64(GROUP), .eid = o->eid, .opt_ifname = o->ifname,
    .mcast_ip = o->mcast_ip, .opt_local_ip = o->local_ip, .port = o->port, .buf_cnt = o->buf_cnt,
    .buf_sz = o->size_max + 512 > 2048 ? 4096 : 2048, .headroom = 64, .reserve_cnt = 64,
    .ext_cnt = 16, .ext_cap = 16, .opt_backend = x->is_afxdp ? (void *)&x->ao : (void *)&x->uo,
  };
  int err = x->ops->create(&cfg, &x->st);
  if (err) return err;
  x->pool = x->ops->pool(x->st);
  for (uint32_t i = 0; i < o->add_cnt; i++) {
    err = x->ops->add_peer(x->st, o->add_eid[i], &o->add_addr[i]);
    if (err) { x->ops->destroy(x->st); return err; }
  }
  return VSX_OK;
}

static void xp_stats(xp_t *x, vsx_xport_stats_t *s) {
  if (x->is_afxdp) vsx_afxdp_stats_get(x->st, s);
  else vsx_udp_stats_get(x->st, s);
}

static void xp_print_stats(xp_t *x, FILE *out) {
  vsx_xport_stats_t s;
  xp_stats(x, &s);
  fprintf(out, "  stats: rx %llu tx %llu frames %llu inplace %llu copy %llu noroute %llu txdrop %llu again %llu "
          "kicks %llu malformed %llu self %llu misdirected %llu nobuf %llu | xdp rx_dropped %llu "
          "rx_ring_full %llu fill_empty %llu rx_invalid %llu tx_invalid %llu\n",
          (unsigned long long)s.rx_dgram, (unsigned long long)s.tx_dgram, (unsigned long long)s.tx_frame,
          (unsigned long long)s.tx_inplace, (unsigned long long)s.tx_copy, (unsigned long long)s.tx_noroute,
          (unsigned long long)s.tx_drop, (unsigned long long)s.tx_again, (unsigned long long)s.tx_kick,
          (unsigned long long)s.rx_malformed, (unsigned long long)s.rx_self, (unsigned long long)s.rx_misdirected,
          (unsigned long long)s.rx_nobuf, (unsigned long long)s.xdp_rx_dropped, (unsigned long long)s.xdp_rx_ring_full,
          (unsigned long long)s.xdp_fill_ring_empty, (unsigned long long)s.xdp_rx_invalid,
          (unsigned long long)s.xdp_tx_invalid);
}

/* build makes datagram dg: one buffer, or (split) a header buffer plus a
   data buffer, so both the in-place and the copying send paths run. */
static int build(xp_t *x, vsx_datagram_t *dg, uint64_t src, uint64_t dst, int kind, int type, uint32_t seq,
                 uint32_t total, uint16_t heard, int split) {
  static uint8_t tmp[DGRAM_MAX];
  vsx_iovec_t a, b;
  if (vsx_buf_alloc(x->pool, &a)) return VSX_ERR_AGAIN;
  vsx_iovl_init(&dg->iovl);
  dg->peer_eid = kind == K_SEND ? dst : 0;
  if (!split || total == HDR_SZ) {
    VSX_ASSERT(total <= a.len);
    encode(vsx_iovec_ptr(&a), total, src, dst, kind, type, seq, heard);
    a.len = total;
    return vsx_iovl_append_take(&dg->iovl, &a);
  }
  if (vsx_buf_alloc(x->pool, &b)) { vsx_iovec_unref(&a); return VSX_ERR_AGAIN; }
  encode(tmp, total, src, dst, kind, type, seq, heard);
  memcpy(vsx_iovec_ptr(&a), tmp, HDR_SZ);
  a.len = (uint32_t)HDR_SZ;
  memcpy(vsx_iovec_ptr(&b), tmp + HDR_SZ, total - HDR_SZ);
  b.len = total - (uint32_t)HDR_SZ;
  vsx_iovl_append_take(&dg->iovl, &a);
  vsx_iovl_append_take(&dg->iovl, &b);
  return VSX_OK;
}

/* The outgoing queue: datagrams built and not yet accepted. */
typedef struct txq { vsx_datagram_t dg[VSX_XPORT_BATCH]; uint32_t cnt; } txq_t;

/* txq_flush offers the queue to the transport; accepted datagrams are
   freed, the rest stay.  Returns the transport's result. */
static int txq_flush(xp_t *x, txq_t *q) {
  if (!q->cnt) return VSX_OK;
  uint32_t sent = 0;
  int err = x->ops->send_batch(x->st, q->dg, q->cnt, &sent);
  for (uint32_t i = 0; i < sent; i++) vsx_iovl_free(&q->dg[i].iovl);
  memmove(q->dg, q->dg + sent, (q->cnt - sent) * sizeof q->dg[0]);
  q->cnt -= sent;
  if (err && err != VSX_ERR_AGAIN) {
    fprintf(stderr, "send_batch: %s: %s\n", vsx_strerror(err), vsx_last_error());
    exit(1);
  }
  return err;
}

static void txq_free(txq_t *q) {
  for (uint32_t i = 0; i < q->cnt; i++) vsx_iovl_free(&q->dg[i].iovl);
  q->cnt = 0;
}

static void wait_fd(xp_t *x, int ms) {
  struct pollfd p = { .fd = x->ops->poll_fd(x->st), .events = POLLIN };
  if (p.fd >= 0) poll(&p, 1, ms);
}

/* ---- xfer ---------------------------------------------------------------- */

typedef struct peer_rx {
  uint64_t eid;
  uint8_t *cast_seen, *send_seen;
  uint32_t casts, sends, dup, heard_reported;
  int heard, done;
} peer_rx_t;

typedef struct xfer {
  opts_t *o;
  xp_t x;
  peer_rx_t p[PEERS_MAX];
  uint32_t heard_cnt, bad, foreign;
  char first_bad[200];
} xfer_t;

static peer_rx_t *xfer_peer(xfer_t *s, uint64_t eid) {
  for (uint32_t i = 0; i < s->o->peer_cnt; i++)
    if (s->p[i].eid == eid) return &s->p[i];
  return NULL;
}

/* xfer_rx receives and checks everything waiting. */
static void xfer_rx(xfer_t *s) {
  vsx_datagram_t dgs[VSX_XPORT_BATCH];
  static uint8_t buf[DGRAM_MAX];
  for (int round = 0; round < 16; round++) {
    uint32_t n = 0;
    if (s->x.ops->recv_batch(s->x.st, dgs, VSX_XPORT_BATCH, &n)) return;
    for (uint32_t i = 0; i < n; i++) {
      uint32_t len = (uint32_t)vsx_iovl_gather(&dgs[i].iovl, 0, buf, sizeof buf);
      decoded_t d;
      const char *why = decode(buf, len, s->o->eid, &d);
      peer_rx_t *p = why ? NULL : xfer_peer(s, d.h.src_eid);
      if (!why && !p) why = "from an endpoint that is not a peer";
      if (!why && d.h.src_eid != dgs[i].peer_eid) why = "peer_eid differs from the wire header";
      vsx_iovl_free(&dgs[i].iovl);
      if (why) {
        if (!s->bad++) snprintf(s->first_bad, sizeof s->first_bad, "%s (len %u)", why, len);
        continue;
      }
      if (!p->heard) { p->heard = 1; s->heard_cnt++; }
      if (d.t.heard > p->heard_reported) p->heard_reported = d.t.heard;
      if (d.t.type == T_DONE) p->done = 1;
      if (d.t.type != T_DATA) continue;
      uint32_t lim = d.kind == K_CAST ? s->o->casts : s->o->sends;
      uint8_t *seen = d.kind == K_CAST ? p->cast_seen : p->send_seen;
      if (!d.t.seq || d.t.seq > lim) {
        if (!s->bad++) snprintf(s->first_bad, sizeof s->first_bad, "sequence %u out of range", d.t.seq);
        continue;
      }
      if (seen[d.t.seq]) { p->dup++; continue; }
      seen[d.t.seq] = 1;
      if (d.kind == K_CAST) p->casts++;
      else p->sends++;
    }
    if (n < VSX_XPORT_BATCH) return;
  }
}

static int xfer_all_in(xfer_t *s) {
  for (uint32_t i = 0; i < s->o->peer_cnt; i++)
    if (s->p[i].casts < s->o->casts || s->p[i].sends < s->o->sends) return 0;
  return 1;
}

static int xfer_ready(xfer_t *s) {
  if (s->heard_cnt < s->o->peer_cnt) return 0;
  for (uint32_t i = 0; i < s->o->peer_cnt; i++)
    if (s->p[i].heard_reported < s->o->peer_cnt) return 0;
  return 1;
}

static int cmd_xfer(opts_t *o) {
  xfer_t *s = calloc(1, sizeof *s);
  s->o = o;
  if (!o->eid || !o->peer_cnt) die_usage("xfer needs --eid and --peers");
  for (uint32_t i = 0; i < o->peer_cnt; i++) {
    s->p[i].eid = o->peers[i];
    s->p[i].cast_seen = calloc(o->casts + 1, 1);
    s->p[i].send_seen = calloc(o->sends + 1, 1);
  }
  int err = xp_open(&s->x, o);
  if (err) {
    printf("xfer %llu: cannot open %s: %s: %s\n", (unsigned long long)o->eid, o->transport, vsx_strerror(err),
           vsx_last_error());
    return 2; /* exits: the allocations go with the process */
  }
  txq_t q = { .cnt = 0 };
  uint64_t t_start = now_ns(), deadline = t_start + (uint64_t)(o->timeout * 1e9), next_ctl = 0, t_data = 0;
  uint32_t total = o->casts + o->sends * o->peer_cnt, produced = 0, round = 1, slot = 0;
  int phase = T_HELLO, split_n = 0;
  while (!g_stop && now_ns() < deadline) {
    xfer_rx(s);
    uint64_t now = now_ns();
    int busy = 0;
    if (q.cnt) { busy = 1; txq_flush(&s->x, &q); }
    if (phase == T_HELLO && xfer_ready(s)) { phase = T_DATA; t_data = now; }
    if (phase != T_DATA && now >= next_ctl && !q.cnt) {
      /* hello / done casts, 50 per second */
      if (!build(&s->x, &q.dg[q.cnt], o->eid, 0, K_CAST, phase, 0, (uint32_t)HDR_SZ, (uint16_t)s->heard_cnt, 0)) q.cnt++;
      txq_flush(&s->x, &q);
      next_ctl = now + 20000000ull;
    }
    if (phase == T_DATA) {
      uint64_t due = (uint64_t)((double)(now - t_data) * o->rate / 1e9) + 1;
      while (produced < total && produced < due && q.cnt < VSX_XPORT_BATCH) {
        /* order: round r is cast r, then send r to each peer */
        int kind = slot == 0 ? K_CAST : K_SEND;
        uint64_t dst = slot ? o->peers[slot - 1] : 0;
        if (round <= (kind == K_CAST ? o->casts : o->sends)) {
          uint32_t sz = dgram_size(o, o->eid, kind, round);
          int split = o->split_every && (split_n + 1) % o->split_every == 0;
          if (build(&s->x, &q.dg[q.cnt], o->eid, dst, kind, T_DATA, round, sz, (uint16_t)s->heard_cnt, split)) break;
          split_n++;
          q.cnt++;
          produced++;
          busy = 1;
        }
        if (++slot > o->peer_cnt) { slot = 0; round++; }
      }
      txq_flush(&s->x, &q);
      if (produced == total && !q.cnt) { phase = T_DONE; next_ctl = 0; }
    }
    if (phase == T_DONE && xfer_all_in(s)) break;
    if (!busy) wait_fd(&s->x, 1);
  }
  /* Stay a little so peers still finishing get our last control casts. */
  uint64_t linger = now_ns() + 200000000ull;
  while (!g_stop && now_ns() < linger) {
    xfer_rx(s);
    if (q.cnt) txq_flush(&s->x, &q);
    wait_fd(&s->x, 1);
  }
  txq_free(&q);

  uint64_t expect = (uint64_t)o->peer_cnt * (o->casts + o->sends), got = 0, dup = 0;
  for (uint32_t i = 0; i < o->peer_cnt; i++) { got += s->p[i].casts + s->p[i].sends; dup += s->p[i].dup; }
  double loss = expect ? 1.0 - (double)got / (double)expect : 0;
  int ok = phase == T_DONE && s->bad == 0 && dup == 0 && loss <= o->max_loss;
  printf("xfer %llu over %s: %s: received %llu/%llu datagrams (%u casts + %u sends from each of %u peers), "
         "loss %.4f%%, duplicates %llu, bad %u%s%s, %.2f s\n",
         (unsigned long long)o->eid, o->transport, ok ? "OK" : "FAIL", (unsigned long long)got,
         (unsigned long long)expect, o->casts, o->sends, o->peer_cnt, loss * 100, (unsigned long long)dup, s->bad,
         s->bad ? ": " : "", s->first_bad, (double)(now_ns() - t_start) / 1e9);
  if (phase != T_DONE) printf("  stopped in phase %s\n", phase == T_HELLO ? "hello (peers not all heard)" : "data");
  for (uint32_t i = 0; i < o->peer_cnt; i++)
    if (s->p[i].casts < o->casts || s->p[i].sends < o->sends)
      printf("  from %llu: casts %u/%u sends %u/%u\n", (unsigned long long)s->p[i].eid, s->p[i].casts, o->casts,
             s->p[i].sends, o->sends);
  xp_print_stats(&s->x, stdout);
  s->x.ops->destroy(s->x.st);
  for (uint32_t i = 0; i < o->peer_cnt; i++) { free(s->p[i].cast_seen); free(s->p[i].send_seen); }
  free(s);
  return ok ? 0 : 1;
}

/* ---- blast --------------------------------------------------------------- */

static int cmd_blast(opts_t *o) {
  xp_t x;
  if (!o->eid || !o->count) die_usage("blast needs --eid and --count");
  int err = xp_open(&x, o);
  if (err) {
    printf("blast: cannot open %s: %s: %s\n", o->transport, vsx_strerror(err), vsx_last_error());
    return 2;
  }
  int kind = o->to ? K_SEND : K_CAST;
  txq_t q = { .cnt = 0 };
  uint64_t deadline = now_ns() + (uint64_t)(o->timeout * 1e9);
  /* Until the target's MAC is known a send is dropped as "no route":
     probe with hello datagrams (which receivers ignore) until one goes. */
  if (kind == K_SEND) {
    for (;;) {
      vsx_xport_stats_t a, b;
      xp_stats(&x, &a);
      if (!build(&x, &q.dg[0], o->eid, o->to, K_SEND, T_HELLO, 0, (uint32_t)HDR_SZ, 0, 0)) q.cnt = 1;
      txq_flush(&x, &q);
      xp_stats(&x, &b);
      if (b.tx_noroute == a.tx_noroute && !q.cnt) break;
      if (now_ns() > deadline) { printf("blast: peer %llu never resolved\n", (unsigned long long)o->to); return 1; }
      vsx_datagram_t dgs[VSX_XPORT_BATCH];
      uint32_t n = 0;
      x.ops->recv_batch(x.st, dgs, VSX_XPORT_BATCH, &n);
      for (uint32_t i = 0; i < n; i++) vsx_iovl_free(&dgs[i].iovl);
      usleep(10000);
    }
  }
  uint64_t t0 = now_ns();
  uint32_t seq = 0;
  int split_n = 0;
  while (seq < o->count && now_ns() < deadline) {
    uint64_t due = (uint64_t)((double)(now_ns() - t0) * o->rate / 1e9) + 1;
    while (seq < o->count && seq < due && q.cnt < VSX_XPORT_BATCH) {
      seq++;
      uint32_t sz = dgram_size(o, o->eid, kind, seq);
      int split = o->split_every && ++split_n % o->split_every == 0;
      if (build(&x, &q.dg[q.cnt], o->eid, o->to, kind, T_DATA, seq, sz, 0, split)) { seq--; break; }
      q.cnt++;
    }
    txq_flush(&x, &q);
    vsx_datagram_t dgs[VSX_XPORT_BATCH];
    uint32_t n = 0;
    x.ops->recv_batch(x.st, dgs, VSX_XPORT_BATCH, &n);
    for (uint32_t i = 0; i < n; i++) vsx_iovl_free(&dgs[i].iovl);
    if (seq < due) continue;
    usleep(200);
  }
  while (q.cnt && now_ns() < deadline) { txq_flush(&x, &q); usleep(100); }
  /* Let the completion ring return every frame before tearing down. */
  for (int i = 0; i < 20; i++) {
    vsx_datagram_t dgs[VSX_XPORT_BATCH];
    uint32_t n = 0;
    x.ops->recv_batch(x.st, dgs, VSX_XPORT_BATCH, &n);
    for (uint32_t k = 0; k < n; k++) vsx_iovl_free(&dgs[k].iovl);
    usleep(5000);
  }
  vsx_xport_stats_t st;
  xp_stats(&x, &st);
  printf("blast %llu over %s: sent %u datagrams (%s), frames %llu, noroute %llu\n", (unsigned long long)o->eid,
         o->transport, seq, kind == K_SEND ? "sends" : "casts", (unsigned long long)st.tx_frame,
         (unsigned long long)st.tx_noroute);
  xp_print_stats(&x, stdout);
  txq_free(&q);
  x.ops->destroy(x.st);
  return seq == o->count ? 0 : 1;
}

/* ---- ksink --------------------------------------------------------------- */

/* udp_csum_errors reads Udp InCsumErrors of this network namespace. */
static long long udp_csum_errors(void) {
  FILE *f = fopen("/proc/net/snmp", "r");
  char head[512], vals[512];
  long long v = -1;
  if (!f) return -1;
  while (fgets(head, sizeof head, f) && fgets(vals, sizeof vals, f)) {
    if (strncmp(head, "Udp:", 4)) continue;
    char *hs = NULL, *vs = NULL;
    char *h = strtok_r(head, " \n", &hs), *val = strtok_r(vals, " \n", &vs);
    while (h && val) {
      if (!strcmp(h, "InCsumErrors")) v = atoll(val);
      h = strtok_r(NULL, " \n", &hs);
      val = strtok_r(NULL, " \n", &vs);
    }
    break;
  }
  fclose(f);
  return v;
}

static int cmd_ksink(opts_t *o) {
  if (!o->count) die_usage("ksink needs --count");
  int fd = socket(AF_INET, SOCK_DGRAM, 0), one = 1, big = 8 << 20;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(o->port), .sin_addr.s_addr = htonl(INADDR_ANY) };
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa)) { perror("ksink: bind"); return 2; }
  if (o->mcast_ip) {
    struct ip_mreqn mr = { .imr_multiaddr.s_addr = htonl(o->mcast_ip) };
    if (o->ifname) mr.imr_ifindex = (int)if_nametoindex(o->ifname);
    if (setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof mr)) { perror("ksink: IP_ADD_MEMBERSHIP"); return 2; }
  }
  long long csum0 = udp_csum_errors();
  uint8_t *seen = calloc(o->count + 1, 1);
  static uint8_t buf[65536];
  uint32_t got = 0, bad = 0, hello = 0;
  char first_bad[160] = "";
  printf("ready\n");
  fflush(stdout);
  uint64_t deadline = now_ns() + (uint64_t)(o->timeout * 1e9);
  while (got < o->count && now_ns() < deadline && !g_stop) {
    struct pollfd p = { .fd = fd, .events = POLLIN };
    if (poll(&p, 1, 50) <= 0) continue;
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0) continue;
    decoded_t d;
    const char *why = decode(buf, (uint32_t)n, o->eid, &d);
    if (!why && d.t.type == T_HELLO) { hello++; continue; }
    if (!why && (d.t.type != T_DATA || !d.t.seq || d.t.seq > o->count)) why = "unexpected type or sequence";
    if (why) {
      if (!bad++) snprintf(first_bad, sizeof first_bad, "%s (len %zd)", why, n);
      continue;
    }
    if (!seen[d.t.seq]) { seen[d.t.seq] = 1; got++; }
  }
  long long csum1 = udp_csum_errors();
  int ok = got == o->count && !bad && csum1 == csum0 && csum0 >= 0;
  printf("ksink port %u: %s: received %u/%u datagrams intact through the kernel's UDP socket, bad %u%s%s, "
         "kernel UDP InCsumErrors %lld -> %lld\n", o->port, ok ? "OK" : "FAIL", got, o->count, bad,
         bad ? ": " : "", first_bad, csum0, csum1);
  close(fd);
  free(seen);
  return ok ? 0 : 1;
}

/* ---- open ---------------------------------------------------------------- */

static int cmd_open(opts_t *o) {
  xp_t x;
  if (!o->eid) o->eid = 1;
  int err = xp_open(&x, o);
  if (err) {
    const char *msg = vsx_last_error();
    printf("open %s on %s: error %d (%s): %s\n", o->transport, o->ifname ? o->ifname : "-", err, vsx_strerror(err), msg);
    if (o->expect_error) return strstr(msg, o->expect_error) ? 0 : 1;
    return 3;
  }
  printf("open %s on %s: ok, max datagram %u\n", o->transport, o->ifname ? o->ifname : "-",
         x.is_afxdp ? vsx_afxdp_max_dgram(x.st) : vsx_udp_max_dgram(x.st));
  fflush(stdout);
  uint64_t until = now_ns() + (uint64_t)(o->hold * 1e9);
  while (!g_stop && now_ns() < until) {
    vsx_datagram_t dgs[VSX_XPORT_BATCH];
    uint32_t n = 0;
    x.ops->recv_batch(x.st, dgs, VSX_XPORT_BATCH, &n);
    for (uint32_t i = 0; i < n; i++) vsx_iovl_free(&dgs[i].iovl);
    wait_fd(&x, 10);
  }
  x.ops->destroy(x.st);
  if (o->expect_error) { printf("  expected an error containing '%s'\n", o->expect_error); return 1; }
  return 0;
}

/* ---- ping ---------------------------------------------------------------- */

static uint16_t icmp_csum(const void *p, size_t n) {
  const uint8_t *b = p;
  uint32_t s = 0;
  for (size_t i = 0; i + 1 < n; i += 2) s += (uint32_t)(b[i] << 8 | b[i + 1]);
  if (n & 1) s += (uint32_t)b[n - 1] << 8;
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return htons((uint16_t)~s);
}

static int cmd_ping(opts_t *o) {
  if (!o->ping_ip) die_usage("ping needs --ip");
  uint32_t count = o->count ? o->count : 3, replies = 0;
  int fd = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
  if (fd < 0) { perror("ping: raw socket"); return 2; }
  struct sockaddr_in to = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(o->ping_ip) };
  uint16_t id = (uint16_t)getpid();
  for (uint32_t seq = 1; seq <= count; seq++) {
    uint8_t pkt[64] = { 0 };
    struct icmphdr *ic = (struct icmphdr *)pkt;
    ic->type = ICMP_ECHO;
    ic->un.echo.id = htons(id);
    ic->un.echo.sequence = htons((uint16_t)seq);
    ic->checksum = icmp_csum(pkt, sizeof pkt);
    if (sendto(fd, pkt, sizeof pkt, 0, (struct sockaddr *)&to, sizeof to) < 0) { perror("ping: sendto"); continue; }
    uint64_t deadline = now_ns() + 1000000000ull;
    while (now_ns() < deadline) {
      struct pollfd p = { .fd = fd, .events = POLLIN };
      if (poll(&p, 1, 50) <= 0) continue;
      uint8_t in[1500];
      struct sockaddr_in from;
      socklen_t fl = sizeof from;
      ssize_t n = recvfrom(fd, in, sizeof in, 0, (struct sockaddr *)&from, &fl);
      if (n < (ssize_t)sizeof(struct iphdr)) continue;
      size_t ihl = (size_t)(in[0] & 15) * 4;
      if ((size_t)n < ihl + sizeof(struct icmphdr) || from.sin_addr.s_addr != to.sin_addr.s_addr) continue;
      struct icmphdr *r = (struct icmphdr *)(in + ihl);
      if (r->type == ICMP_ECHOREPLY && ntohs(r->un.echo.id) == id && ntohs(r->un.echo.sequence) == seq) {
        replies++;
        break;
      }
    }
  }
  close(fd);
  char ip[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &to.sin_addr, ip, sizeof ip);
  printf("ping %s: %s: %u/%u echo replies\n", ip, replies == count ? "OK" : "FAIL", replies, count);
  return replies == count ? 0 : 1;
}

/* ---- member (endpoint) --------------------------------------------------- */

/* The application header of a member's message. */
typedef struct __attribute__((packed)) mhdr {
  uint32_t origin;  /* sender's rank */
  uint32_t kind;    /* K_CAST / K_SEND */
  uint32_t seq;     /* from 1, per (origin, kind, destination) */
  uint32_t crc;     /* CRC-32C of the bytes after this header */
} mhdr_t;

typedef struct member {
  opts_t *o;
  vsx_endpoint_t *ep;
  struct ev_loop *loop;
  uint32_t rank, n;
  uint32_t cast_next, send_next[PEERS_MAX];       /* next seq to send        */
  uint32_t cast_got[PEERS_MAX], send_got[PEERS_MAX]; /* delivered, per origin */
  uint64_t errors;
  char first_error[200];
  int started, finished;
  uint64_t t_start, t_data;
  ev_timer tick;
} member_t;

static void member_error(member_t *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void member_error(member_t *m, const char *fmt, ...) {
  if (!m->errors++) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->first_error, sizeof m->first_error, fmt, ap);
    va_end(ap);
  }
}

static void member_deliver(void *user, vsx_endpoint_t *ep, uint32_t from, vsx_svc_t svc, const vsx_iovl_t *msg) {
  member_t *m = user;
  static uint8_t buf[1 << 16], want[1 << 16];
  (void)ep;
  size_t len = vsx_iovl_gather(msg, 0, buf, sizeof buf);
  mhdr_t h;
  if (len < sizeof h || len != vsx_iovl_len(msg)) { member_error(m, "message of %zu bytes from %u", len, from); return; }
  memcpy(&h, buf, sizeof h);
  int kind = svc == VSX_SVC_P2P ? K_SEND : K_CAST;
  if (h.origin != from || h.kind != (uint32_t)kind || from >= m->n) {
    member_error(m, "header says origin %u kind %u, delivered from %u svc %d", h.origin, h.kind, from, svc);
    return;
  }
  uint32_t *got = kind == K_CAST ? &m->cast_got[from] : &m->send_got[from];
  if (h.seq != *got + 1) {
    member_error(m, "%s from %u: seq %u delivered after %u (gap, reorder or duplicate)",
                 kind == K_CAST ? "cast" : "send", from, h.seq, *got);
    return;
  }
  size_t dlen = len - sizeof h;
  pattern(want, (uint32_t)dlen, from, kind, h.seq);
  if (vsx_crc32c(0, buf + sizeof h, dlen) != h.crc || memcmp(want, buf + sizeof h, dlen)) {
    member_error(m, "%s %u from %u: bytes differ", kind == K_CAST ? "cast" : "send", h.seq, from);
    return;
  }
  (*got)++;
}

static int member_all_delivered(member_t *m) {
  for (uint32_t r = 0; r < m->n; r++) {
    if (m->cast_got[r] < m->o->casts) return 0;
    if (r != m->rank && m->send_got[r] < m->o->sends) return 0;
  }
  return 1;
}

static int dir_count(const char *dir, const char *prefix, uint32_t n) {
  char path[512];
  uint32_t c = 0;
  for (uint32_t r = 0; r < n; r++) {
    snprintf(path, sizeof path, "%s/%s.%u", dir, prefix, r);
    c += access(path, F_OK) == 0;
  }
  return c == n;
}

static void dir_mark(const char *dir, const char *prefix, uint32_t rank) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s.%u", dir, prefix, rank);
  FILE *f = fopen(path, "w");
  if (f) fclose(f);
}

/* member_submit sends one message; returns the endpoint's result. */
static int member_submit(member_t *m, int kind, uint32_t dst, uint32_t seq) {
  uint8_t buf[4096];
  uint32_t total = dgram_size(m->o, m->rank, kind, seq);
  if (total > sizeof buf) total = sizeof buf;
  if (total < sizeof(mhdr_t)) total = sizeof(mhdr_t);
  uint32_t dlen = total - (uint32_t)sizeof(mhdr_t);
  pattern(buf + sizeof(mhdr_t), dlen, m->rank, kind, seq);
  mhdr_t h = { .origin = m->rank, .kind = (uint32_t)kind, .seq = seq, .crc = vsx_crc32c(0, buf + sizeof(mhdr_t), dlen) };
  memcpy(buf, &h, sizeof h);
  return kind == K_CAST ? vsx_endpoint_cast(m->ep, VSX_SVC_FIFO, buf, total) : vsx_endpoint_send(m->ep, dst, buf, total);
}

/* member_tick paces the stream and watches the barriers (every ms). */
static void member_tick(struct ev_loop *loop, ev_timer *w, int revents) {
  member_t *m = w->data;
  (void)revents;
  uint64_t now = now_ns();
  if (g_stop || now - m->t_start > (uint64_t)(m->o->timeout * 1e9)) { ev_break(loop, EVBREAK_ALL); return; }
  if (!m->started) {
    if (!dir_count(m->o->dir, "ready", m->n)) return;
    m->started = 1;
    m->t_data = now;
  }
  uint64_t due = (uint64_t)((double)(now - m->t_data) * m->o->rate / 1e9) + 1;
  uint64_t sent = m->cast_next;
  for (uint32_t r = 0; r < m->n; r++) sent += m->send_next[r];
  while (sent < due) {
    int progressed = 0;
    if (m->cast_next < m->o->casts) {
      if (member_submit(m, K_CAST, 0, m->cast_next + 1)) break;
      m->cast_next++;
      sent++;
      progressed = 1;
    }
    for (uint32_t r = 0; r < m->n; r++) {
      if (r == m->rank || m->send_next[r] >= m->o->sends) continue;
      if (member_submit(m, K_SEND, r, m->send_next[r] + 1)) goto out;
      m->send_next[r]++;
      sent++;
      progressed = 1;
    }
    if (!progressed) break;
  }
out:
  if (!m->finished && member_all_delivered(m)) {
    m->finished = 1;
    dir_mark(m->o->dir, "done", m->rank);
  }
  /* Everyone must have everything before anyone leaves: a member that
     left could not answer retransmission requests. */
  if (m->finished && dir_count(m->o->dir, "done", m->n)) ev_break(loop, EVBREAK_ALL);
}

static int cmd_member(opts_t *o) {
  if (!o->eid || !o->peer_cnt || !o->dir) die_usage("member needs --eid, --peers (the whole view, in order) and --dir");
  member_t *m = calloc(1, sizeof *m);
  m->o = o;
  vsx_view_t view = { .ltime = 1, .coord_eid = o->peers[0], .member_cnt = o->peer_cnt };
  for (uint32_t i = 0; i < o->peer_cnt; i++) {
    view.members[i] = o->peers[i];
    if (o->peers[i] == o->eid) m->rank = i;
  }
  m->n = o->peer_cnt;
  vsx_afxdp_opts_t ao = { 0 };
  vsx_endpoint_opts_t eo = {
    .group = o->group, .opt_name = "member", .transport = vsx_transport_find(o->transport), .opt_ifname = o->ifname,
    .mcast_ip = o->mcast_ip, .port = o->port, .eid = o->eid, .view = &view,
    .opt_backend = !strcmp(o->transport, "afxdp") ? &ao : NULL,
    .cbs = { .deliver = member_deliver }, .user = m,
  };
  if (o->mode) ao.mode = !strcmp(o->mode, "skb") ? VSX_AFXDP_MODE_SKB : !strcmp(o->mode, "drv") ? VSX_AFXDP_MODE_DRV : 0;
  if (!eo.transport) die_usage("unknown transport");
  int err = vsx_endpoint_create(&eo, &m->ep);
  if (err) {
    printf("member %llu: cannot create the endpoint over %s: %s: %s\n", (unsigned long long)o->eid, o->transport,
           vsx_strerror(err), vsx_last_error());
    return 2;
  }
  m->loop = ev_loop_new(EVFLAG_AUTO);
  if ((err = vsx_endpoint_attach(m->ep, m->loop))) {
    printf("member: attach: %s\n", vsx_last_error());
    return 2;
  }
  m->t_start = now_ns();
  ev_timer_init(&m->tick, member_tick, 0.001, 0.001);
  m->tick.data = m;
  ev_timer_start(m->loop, &m->tick);
  dir_mark(o->dir, "ready", m->rank);
  ev_run(m->loop, 0);
  ev_timer_stop(m->loop, &m->tick);
  double secs = (double)(now_ns() - m->t_data) / 1e9;
  int ok = m->finished && !m->errors;
  uint64_t got = 0, want = (uint64_t)m->n * o->casts + (uint64_t)(m->n - 1) * o->sends;
  for (uint32_t r = 0; r < m->n; r++) got += m->cast_got[r] + m->send_got[r];
  vsx_endpoint_stats_t es;
  vsx_endpoint_get_stats(m->ep, &es);
  printf("member %llu (rank %u) over %s: %s: delivered %llu/%llu messages (%u casts from each of %u members incl. "
         "itself, %u sends from each other) exactly once and in order%s%s, %.2f s; datagrams rx %llu tx %llu\n",
         (unsigned long long)o->eid, m->rank, o->transport, ok ? "OK" : "FAIL", (unsigned long long)got,
         (unsigned long long)want, o->casts, m->n, o->sends, m->errors ? "; first error: " : "", m->first_error, secs,
         (unsigned long long)es.rx_datagrams, (unsigned long long)es.tx_datagrams);
  if (!m->finished) {
    for (uint32_t r = 0; r < m->n; r++)
      printf("  from rank %u: casts %u/%u sends %u/%u\n", r, m->cast_got[r], o->casts, m->send_got[r],
             r == m->rank ? 0 : o->sends);
    vsx_bufpool_t *pool = vsx_endpoint_pool(m->ep);
    printf("  endpoint: rx_no_event %llu tx_dropped %llu refused_again %llu; pool %u of %u free, %llu "
           "allocations refused; stack counters:\n",
           (unsigned long long)es.rx_no_event, (unsigned long long)es.tx_dropped,
           (unsigned long long)es.refused_again, vsx_bufpool_free_cnt(pool), vsx_bufpool_buf_cnt(pool),
           (unsigned long long)vsx_bufpool_exhausted_cnt(pool));
    vsx_stack_print_stats(vsx_endpoint_stack(m->ep), stdout);
    if (!strcmp(o->transport, "afxdp")) {
      struct xdp_statistics xs;
      socklen_t xl = sizeof xs;
      memset(&xs, 0, sizeof xs);
      getsockopt(vsx_endpoint_fd(m->ep), SOL_XDP, XDP_STATISTICS, &xs, &xl);
      printf("  xdp: rx_dropped %llu rx_ring_full %llu fill_empty %llu rx_invalid %llu tx_invalid %llu\n",
             (unsigned long long)xs.rx_dropped, (unsigned long long)xs.rx_ring_full,
             (unsigned long long)xs.rx_fill_ring_empty_descs, (unsigned long long)xs.rx_invalid_descs,
             (unsigned long long)xs.tx_invalid_descs);
    }
  }
  vsx_endpoint_detach(m->ep);
  vsx_endpoint_destroy(m->ep);
  ev_loop_destroy(m->loop);
  free(m);
  return ok ? 0 : 1;
}

int main(int argc, char **argv) {
  if (argc < 2) die_usage("no command");
  const char *cmd = argv[1];
  opts_t o;
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  setvbuf(stdout, NULL, _IOLBF, 0);
  parse_opts(argc - 1, argv + 1, &o);
  if (!strcmp(cmd, "xfer")) return cmd_xfer(&o);
  if (!strcmp(cmd, "blast")) return cmd_blast(&o);
  if (!strcmp(cmd, "ksink")) return cmd_ksink(&o);
  if (!strcmp(cmd, "open")) return cmd_open(&o);
  if (!strcmp(cmd, "ping")) return cmd_ping(&o);
  if (!strcmp(cmd, "member")) return cmd_member(&o);
  die_usage("unknown command");
  return 2;
}
