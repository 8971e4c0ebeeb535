/* bench_transport.c - packets/s and Gbit/s of one sender to one receiver
   over the vsx transports (afxdp, udp) and over a bare libxdp loop that
   stands for the physical limit of AF_XDP on this machine.

   Goal: show what the transports cost over the raw rings, and how afxdp
   compares with kernel UDP, for small (64 B) and large (1400 B) datagrams.
   Method: two processes in two test hosts (tests/integration/
   bench_transport.sh sets them up and pins them to separate CPUs).
   The sender pushes unicast datagrams as fast as back-pressure allows
   for --secs + 1.5 s; the receiver spins on its ring or socket and counts
   what arrives in a window of --secs seconds that starts 0.5 s after the
   first datagram.  Sizes are UDP payload bytes (the vsx datagram, wire
   header included), the same for all three.

     bench_transport rx --kind afxdp|udp|bare --if IF --port P --size N --secs S
     bench_transport tx --kind afxdp|udp|bare --if IF --port P --size N --secs S
                        --dst-ip A.B.C.D [--dst-mac xx:xx:..]   (bare needs the MAC)

   The vsx sender does what an endpoint does per datagram: allocate a pool
   buffer, write the wire header and a sequence number, hand batches of 64
   to send_batch, free its reference.  The vsx receiver does recv_batch
   and frees each datagram.  The bare loop sends prebuilt frames from a
   UMEM and receives into a fill ring it refills with the same frames: no
   pool, no header building, no checksum work, no peer table: the floor.

   Output: one line "RESULT kind=.. role=.. size=.. pps=.. gbps=.. ..." for
   the driver script to collect. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_xdp.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/libxdp.h>
#include <xdp/xsk.h>

#include "vsx/transport.h"
#include "vsx/wire.h"
#include "transport/afxdp_priv.h"

#ifndef XDP_MAX_TX_SKB_BUDGET
#define XDP_MAX_TX_SKB_BUDGET 9
#endif

#define BATCH      64u
#define RX_EID     2u
#define TX_EID     1u
#define WARMUP_NS  500000000ull

typedef struct bopts {
  const char *role, *kind, *ifname, *mode;
  uint32_t dst_ip;        /* network order */
  uint8_t  dst_mac[6];
  int      have_mac;
  uint16_t port;
  uint32_t size;
  double   secs;
} bopts_t;

static void usage(void) {
  fprintf(stderr, "usage: bench_transport rx|tx --kind afxdp|udp|bare --if IF --port P --size N --secs S "
                  "[--dst-ip A.B.C.D] [--dst-mac MAC] [--mode skb|drv]\n");
  exit(2);
}

static void parse(int argc, char **argv, bopts_t *o) {
  static const struct option lo[] = {
    { "kind", 1, 0, 'k' }, { "if", 1, 0, 'i' }, { "port", 1, 0, 'p' }, { "size", 1, 0, 's' },
    { "secs", 1, 0, 't' }, { "dst-ip", 1, 0, 'd' }, { "dst-mac", 1, 0, 'm' }, { "mode", 1, 0, 'M' }, { 0, 0, 0, 0 },
  };
  *o = (bopts_t){ .kind = "afxdp", .ifname = "eth0", .port = 47090, .size = 64, .secs = 3 };
  if (argc < 2) usage();
  o->role = argv[1];
  int c;
  optind = 2;
  while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
    switch (c) {
    case 'k': o->kind = optarg; break;
    case 'i': o->ifname = optarg; break;
    case 'p': o->port = (uint16_t)atoi(optarg); break;
    case 's': o->size = (uint32_t)atoi(optarg); break;
    case 't': o->secs = atof(optarg); break;
    case 'd': {
      struct in_addr a;
      if (inet_pton(AF_INET, optarg, &a) != 1) usage();
      o->dst_ip = a.s_addr;
      break;
    }
    case 'm': {
      unsigned m[6];
      if (sscanf(optarg, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6) usage();
      for (int i = 0; i < 6; i++) o->dst_mac[i] = (uint8_t)m[i];
      o->have_mac = 1;
      break;
    }
    case 'M': o->mode = optarg; break;
    default: usage();
    }
  }
  if (o->size < sizeof(vsx_wire_hdr_t) + 8 || o->size > 1472) {
    fprintf(stderr, "--size must be %zu..1472\n", sizeof(vsx_wire_hdr_t) + 8);
    exit(2);
  }
}

/* cpu_ns returns this process's CPU time (user + system). */
static uint64_t cpu_ns(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000ull +
         (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ull;
}

/* result prints the RESULT line.  cpu is the share of one CPU this
   process got while measuring: a spinning sender or receiver that got
   much less than all of it was disturbed by another workload, and the
   driver script repeats the run. */
static void result(const bopts_t *o, uint64_t cnt, uint64_t ns, double cpu, const char *extra) {
  double pps = ns ? (double)cnt * 1e9 / (double)ns : 0;
  printf("RESULT kind=%s role=%s size=%u pps=%.0f gbps=%.3f count=%llu secs=%.3f cpu=%.2f %s\n", o->kind, o->role,
         o->size, pps, pps * o->size * 8 / 1e9, (unsigned long long)cnt, (double)ns / 1e9, cpu, extra ? extra : "");
}

/* ---- vsx transports ---------------------------------------------------- */

static int vsx_open(const bopts_t *o, const vsx_transport_ops_t **ops, void **st, uint64_t eid) {
  static vsx_afxdp_opts_t ao;
  static vsx_udp_opts_t uo;
  *ops = vsx_transport_find(o->kind);
  if (!*ops) usage();
  if (o->mode) ao.mode = !strcmp(o->mode, "skb") ? VSX_AFXDP_MODE_SKB : VSX_AFXDP_MODE_DRV;
  vsx_transport_cfg_t cfg = {
    .group = "bench", .group_id = vsx_hash64("bench"), .eid = eid, .opt_ifname = o->ifname, .port = o->port,
    .buf_cnt = 16384, .buf_sz = 2048, .headroom = 64, .reserve_cnt = 64,
    .opt_backend = !strcmp(o->kind, "afxdp") ? (void *)&ao : (void *)&uo,
  };
  int err = (*ops)->create(&cfg, st);
  if (err) fprintf(stderr, "bench: %s: %s\n", vsx_strerror(err), vsx_last_error());
  return err;
}

static int vsx_rx(const bopts_t *o) {
  const vsx_transport_ops_t *ops;
  void *st;
  if (vsx_open(o, &ops, &st, RX_EID)) return 2;
  vsx_datagram_t dgs[BATCH];
  uint64_t first = 0, t0 = 0, t1 = 0, cnt = 0, idle_since = vsx_now_ns(), cpu0 = 0;
  uint64_t window = (uint64_t)(o->secs * 1e9);
  for (;;) {
    uint32_t n = 0;
    ops->recv_batch(st, dgs, BATCH, &n);
    uint64_t now = n || !(cnt & 1023) ? vsx_now_ns() : 0;
    for (uint32_t i = 0; i < n; i++) vsx_iovl_free(&dgs[i].iovl);
    if (n) {
      idle_since = now;
      if (!first) { first = now; t0 = first + WARMUP_NS; t1 = t0 + window; }
      if (now >= t0 && !cpu0) cpu0 = cpu_ns();
      if (now >= t0 && now < t1) cnt += n;
      if (now >= t1) break;
    } else {
      if (!now) now = vsx_now_ns();
      if (now - idle_since > (first ? 2000000000ull : 30000000000ull)) break; /* sender gone */
    }
  }
  uint64_t end = t1 && vsx_now_ns() >= t1 ? t1 : vsx_now_ns();
  double cpu = cpu0 && end > t0 ? (double)(cpu_ns() - cpu0) / (double)(end - t0) : 0;
  vsx_xport_stats_t s;
  char extra[160] = "";
  if (!strcmp(o->kind, "afxdp")) {
    vsx_afxdp_stats_get(st, &s);
    snprintf(extra, sizeof extra, "rx_ring_full=%llu fill_empty=%llu", (unsigned long long)s.xdp_rx_ring_full,
             (unsigned long long)s.xdp_fill_ring_empty);
  }
  result(o, cnt, t0 && end > t0 ? end - t0 : 0, cpu, extra);
  ops->destroy(st);
  return 0;
}

static void vsx_stats(const bopts_t *o, void *st, vsx_xport_stats_t *s) {
  if (!strcmp(o->kind, "afxdp")) vsx_afxdp_stats_get(st, s);
  else vsx_udp_stats_get(st, s);
}

/* vsx_fill tops dgs up to BATCH datagrams of o->size bytes; the header and
   a sequence number are written, the rest is left as it is. */
static uint32_t vsx_fill(const bopts_t *o, vsx_bufpool_t *pool, vsx_datagram_t *dgs, uint32_t have,
                         const uint8_t *hdr, uint64_t *seq) {
  while (have < BATCH) {
    vsx_iovec_t v;
    if (vsx_buf_alloc(pool, &v)) break;
    uint8_t *p = vsx_iovec_ptr(&v);
    memcpy(p, hdr, sizeof(vsx_wire_hdr_t));
    ++*seq;
    memcpy(p + sizeof(vsx_wire_hdr_t), seq, 8);
    v.len = o->size;
    vsx_iovl_init(&dgs[have].iovl);
    vsx_iovl_append_take(&dgs[have].iovl, &v);
    dgs[have].peer_eid = RX_EID;
    have++;
  }
  return have;
}

static int vsx_tx(const bopts_t *o) {
  const vsx_transport_ops_t *ops;
  void *st;
  if (!o->dst_ip) usage();
  if (vsx_open(o, &ops, &st, TX_EID)) return 2;
  vsx_bufpool_t *pool = ops->pool(st);
  struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(o->port), .sin_addr.s_addr = o->dst_ip };
  if (ops->add_peer(st, RX_EID, &to)) { fprintf(stderr, "bench: add_peer: %s\n", vsx_last_error()); return 2; }
  vsx_wire_hdr_t h = { .magic = VSX_WIRE_MAGIC, .version = VSX_WIRE_VERSION, .kind = VSX_WIRE_SEND,
                       .total_len = o->size, .group_id = vsx_hash64("bench"), .instance = 1, .src_eid = TX_EID,
                       .dst_eid = RX_EID };
  uint8_t hdr[sizeof h];
  vsx_wire_encode(hdr, &h);
  vsx_datagram_t dgs[BATCH], in[BATCH];
  uint32_t have = 0, n, got;
  uint64_t seq = 0, sent = 0;
  vsx_xport_stats_t s0, s1;

  /* The receiver's MAC comes from the kernel's ARP cache, which add_peer
     asked the kernel to fill: until then a send counts as no route.
     Probe one datagram at a time until one goes. */
  for (int tries = 0; tries < 300; tries++) {
    vsx_stats(o, st, &s0);
    have = vsx_fill(o, pool, dgs, have, hdr, &seq);
    ops->send_batch(st, dgs, 1, &n);
    if (n) { vsx_iovl_free(&dgs[0].iovl); memmove(dgs, dgs + 1, --have * sizeof dgs[0]); }
    vsx_stats(o, st, &s1);
    if (n && s1.tx_noroute == s0.tx_noroute) break;
    usleep(10000);
  }

  uint64_t start = vsx_now_ns(), end = start + (uint64_t)((o->secs + 1.5) * 1e9), cpu0 = cpu_ns();
  while (vsx_now_ns() < end) {
    have = vsx_fill(o, pool, dgs, have, hdr, &seq);
    n = 0;
    ops->send_batch(st, dgs, have, &n);
    for (uint32_t i = 0; i < n; i++) vsx_iovl_free(&dgs[i].iovl);
    memmove(dgs, dgs + n, (have - n) * sizeof dgs[0]);
    have -= n;
    sent += n;
    if (!n) {
      /* Back-pressure: recv_batch also takes back completed frames. */
      got = 0;
      ops->recv_batch(st, in, BATCH, &got);
      for (uint32_t i = 0; i < got; i++) vsx_iovl_free(&in[i].iovl);
    }
  }
  uint64_t ns = vsx_now_ns() - start;
  double cpu = (double)(cpu_ns() - cpu0) / (double)ns;
  for (uint32_t i = 0; i < have; i++) vsx_iovl_free(&dgs[i].iovl);
  vsx_stats(o, st, &s1);
  char extra[200];
  snprintf(extra, sizeof extra, "again=%llu kicks=%llu inplace=%llu copy=%llu noroute=%llu", (unsigned long long)s1.tx_again,
           (unsigned long long)s1.tx_kick, (unsigned long long)s1.tx_inplace, (unsigned long long)s1.tx_copy,
           (unsigned long long)s1.tx_noroute);
  result(o, sent, ns, cpu, extra);
  for (int i = 0; i < 20; i++) { /* let the last completions return */
    got = 0;
    ops->recv_batch(st, in, BATCH, &got);
    for (uint32_t k = 0; k < got; k++) vsx_iovl_free(&in[k].iovl);
    usleep(5000);
  }
  ops->destroy(st);
  return 0;
}

/* ---- bare libxdp loop -------------------------------------------------- */

#define BARE_FRAMES 8192u
#define BARE_FSZ    2048u
#define BARE_RING   4096u

typedef struct bare {
  void *area;
  struct xsk_umem *umem;
  struct xsk_socket *xsk;
  struct xsk_ring_prod fq, tx;
  struct xsk_ring_cons cq, rx;
  struct xdp_program *prog;
  int ifindex;
  enum xdp_attach_mode mode;
} bare_t;

static int quiet_xdp(enum libxdp_print_level l, const char *f, va_list ap) { (void)l; (void)f; (void)ap; return 0; }
static int quiet_bpf(enum libbpf_print_level l, const char *f, va_list ap) { (void)l; (void)f; (void)ap; return 0; }

static int bare_open(const bopts_t *o, bare_t *b, int rx) {
  memset(b, 0, sizeof *b);
  /* The dispatcher's fallback warnings are expected here (see afxdp.md). */
  libxdp_set_print(quiet_xdp);
  libbpf_set_print(quiet_bpf);
  b->ifindex = (int)if_nametoindex(o->ifname);
  b->area = mmap(NULL, (size_t)BARE_FRAMES * BARE_FSZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (b->area == MAP_FAILED) { perror("mmap"); return 2; }
  struct xsk_umem_config uc = { .fill_size = BARE_RING, .comp_size = BARE_RING, .frame_size = BARE_FSZ };
  int err = xsk_umem__create(&b->umem, b->area, (size_t)BARE_FRAMES * BARE_FSZ, &b->fq, &b->cq, &uc);
  if (err) { fprintf(stderr, "bare: umem: %s\n", strerror(-err)); return 2; }
  if (rx) {
    /* The transport's own XDP program, so both see the same steering. */
    const char *path = getenv("VSX_BPF_OBJ");
    b->prog = xdp_program__open_file(path ? path : "vsx_xdp.bpf.o", "xdp", NULL);
    if (libxdp_get_error(b->prog)) { fprintf(stderr, "bare: cannot open the XDP program (set VSX_BPF_OBJ)\n"); return 2; }
    b->mode = o->mode && !strcmp(o->mode, "skb") ? XDP_MODE_SKB : XDP_MODE_NATIVE;
    err = xdp_program__attach(b->prog, b->ifindex, b->mode, 0);
    if (err && !o->mode) err = xdp_program__attach(b->prog, b->ifindex, b->mode = XDP_MODE_SKB, 0);
    if (err) { fprintf(stderr, "bare: attach: %s\n", strerror(-err)); return 2; }
    struct bpf_object *obj = xdp_program__bpf_obj(b->prog);
    int cfg_fd = bpf_map__fd(bpf_object__find_map_by_name(obj, VSX_XDP_CFG_MAP));
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", o->ifname);
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    ioctl(s, SIOCGIFADDR, &ifr);
    close(s);
    struct vsx_xdp_cfg c = { .owner_pid = (uint32_t)getpid(), .port = htons(o->port),
                             .local_ip = ((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr.s_addr };
    __u32 key = 0;
    bpf_map_update_elem(cfg_fd, &key, &c, BPF_ANY);
  }
  struct xsk_socket_config sc = { .rx_size = BARE_RING, .tx_size = BARE_RING,
                                  .libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
                                  .bind_flags = XDP_COPY | XDP_USE_NEED_WAKEUP };
  err = xsk_socket__create(&b->xsk, o->ifname, 0, b->umem, rx ? &b->rx : NULL, rx ? NULL : &b->tx, &sc);
  if (err) { fprintf(stderr, "bare: socket: %s\n", strerror(-err)); return 2; }
  if (rx) {
    struct bpf_object *obj = xdp_program__bpf_obj(b->prog);
    xsk_socket__update_xskmap(b->xsk, bpf_map__fd(bpf_object__find_map_by_name(obj, VSX_XDP_XSKS_MAP)));
    uint32_t idx = 0;
    if (xsk_ring_prod__reserve(&b->fq, BARE_RING, &idx) != BARE_RING) { fprintf(stderr, "bare: fill ring\n"); return 2; }
    for (uint32_t i = 0; i < BARE_RING; i++) *xsk_ring_prod__fill_addr(&b->fq, idx + i) = (uint64_t)i * BARE_FSZ;
    xsk_ring_prod__submit(&b->fq, BARE_RING);
  } else {
    int budget = BATCH;
    setsockopt(xsk_socket__fd(b->xsk), SOL_XDP, XDP_MAX_TX_SKB_BUDGET, &budget, sizeof budget);
  }
  return 0;
}

static void bare_close(bare_t *b) {
  if (b->xsk) xsk_socket__delete(b->xsk);
  if (b->umem) xsk_umem__delete(b->umem);
  if (b->prog) { xdp_program__detach(b->prog, b->ifindex, b->mode, 0); xdp_program__close(b->prog); }
  munmap(b->area, (size_t)BARE_FRAMES * BARE_FSZ);
}

static int bare_rx(const bopts_t *o) {
  bare_t b;
  if (bare_open(o, &b, 1)) return 2;
  uint64_t first = 0, t0 = 0, t1 = 0, cnt = 0, idle_since = vsx_now_ns(), window = (uint64_t)(o->secs * 1e9), cpu0 = 0;
  for (uint64_t spins = 0;; spins++) {
    uint32_t idx, n = xsk_ring_cons__peek(&b.rx, BATCH, &idx), fidx;
    uint64_t now = n || !(spins & 1023) ? vsx_now_ns() : 0;
    if (n) {
      /* Straight back to the fill ring: the floor of receive work. */
      uint32_t got = xsk_ring_prod__reserve(&b.fq, n, &fidx);
      for (uint32_t i = 0; i < got; i++)
        *xsk_ring_prod__fill_addr(&b.fq, fidx + i) = xsk_ring_cons__rx_desc(&b.rx, idx + i)->addr & ~(uint64_t)(BARE_FSZ - 1);
      xsk_ring_prod__submit(&b.fq, got);
      xsk_ring_cons__release(&b.rx, n);
      idle_since = now;
      if (!first) { first = now; t0 = first + WARMUP_NS; t1 = t0 + window; }
      if (now >= t0 && !cpu0) cpu0 = cpu_ns();
      if (now >= t0 && now < t1) cnt += n;
      if (now >= t1) break;
    } else if (now && now - idle_since > (first ? 2000000000ull : 30000000000ull)) {
      break;
    }
  }
  uint64_t end = vsx_now_ns() >= t1 ? t1 : vsx_now_ns();
  double cpu = cpu0 && end > t0 ? (double)(cpu_ns() - cpu0) / (double)(end - t0) : 0;
  struct xdp_statistics xs;
  socklen_t len = sizeof xs;
  memset(&xs, 0, sizeof xs);
  getsockopt(xsk_socket__fd(b.xsk), SOL_XDP, XDP_STATISTICS, &xs, &len);
  char extra[120];
  snprintf(extra, sizeof extra, "rx_ring_full=%llu fill_empty=%llu", (unsigned long long)xs.rx_ring_full,
           (unsigned long long)xs.rx_fill_ring_empty_descs);
  result(o, cnt, t0 && end > t0 ? end - t0 : 0, cpu, extra);
  bare_close(&b);
  return 0;
}

static uint16_t fold(uint64_t s) {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return (uint16_t)s;
}

static int bare_tx(const bopts_t *o) {
  bare_t b;
  if (!o->dst_ip || !o->have_mac) { fprintf(stderr, "bare tx needs --dst-ip and --dst-mac\n"); return 2; }
  if (bare_open(o, &b, 0)) return 2;
  /* Prebuild every frame once: Ethernet, IPv4, UDP with checksums. */
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", o->ifname);
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  ioctl(s, SIOCGIFHWADDR, &ifr);
  uint8_t src_mac[6];
  memcpy(src_mac, ifr.ifr_hwaddr.sa_data, 6);
  ioctl(s, SIOCGIFADDR, &ifr);
  close(s);
  uint32_t src_ip = ((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr.s_addr;
  uint32_t flen = 42 + o->size;
  for (uint32_t f = 0; f < BARE_FRAMES; f++) {
    uint8_t *p = (uint8_t *)b.area + (size_t)f * BARE_FSZ;
    memcpy(p, o->dst_mac, 6);
    memcpy(p + 6, src_mac, 6);
    p[12] = 0x08; p[13] = 0x00;
    uint8_t *ip = p + 14, *udp = p + 34;
    memset(ip, 0, 20);
    ip[0] = 0x45;
    uint16_t tot = htons((uint16_t)(28 + o->size)), ulen = htons((uint16_t)(8 + o->size)), port = htons(o->port);
    memcpy(ip + 2, &tot, 2);
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = IPPROTO_UDP;
    memcpy(ip + 12, &src_ip, 4);
    memcpy(ip + 16, &o->dst_ip, 4);
    uint64_t sum = 0;
    for (int i = 0; i < 20; i += 2) sum += (uint32_t)(ip[i] << 8 | ip[i + 1]);
    uint16_t c = htons((uint16_t)~fold(sum));
    memcpy(ip + 10, &c, 2);
    memcpy(udp, &port, 2);
    memcpy(udp + 2, &port, 2);
    memcpy(udp + 4, &ulen, 2);
    memset(udp + 6, 0, 2);
    vsx_wire_hdr_t h = { .magic = VSX_WIRE_MAGIC, .version = VSX_WIRE_VERSION, .kind = VSX_WIRE_SEND,
                         .total_len = o->size, .src_eid = TX_EID, .dst_eid = RX_EID };
    vsx_wire_encode(udp + 8, &h);
    memset(udp + 8 + sizeof h, 0xab, o->size - sizeof h);
    sum = 0;
    for (int i = 12; i < 20; i += 2) sum += (uint32_t)(ip[i] << 8 | ip[i + 1]);
    sum += IPPROTO_UDP + 8 + o->size;
    for (uint32_t i = 0; i < 8 + o->size; i += 2)
      sum += (uint32_t)(udp[i] << 8 | (i + 1 < 8 + o->size ? udp[i + 1] : 0));
    c = htons((uint16_t)~fold(sum));
    if (!c) c = 0xffff;
    memcpy(udp + 6, &c, 2);
  }
  uint64_t start = vsx_now_ns(), end = start + (uint64_t)((o->secs + 1.5) * 1e9), sent = 0, next = 0, cpu0 = cpu_ns();
  uint32_t inflight = 0;
  int fd = xsk_socket__fd(b.xsk);
  while (vsx_now_ns() < end) {
    uint32_t idx, n = inflight + BATCH <= BARE_RING ? xsk_ring_prod__reserve(&b.tx, BATCH, &idx) : 0;
    for (uint32_t i = 0; i < n; i++) {
      struct xdp_desc *d = xsk_ring_prod__tx_desc(&b.tx, idx + i);
      d->addr = (next++ % BARE_FRAMES) * BARE_FSZ;
      d->len = flen;
      d->options = 0;
    }
    if (n) { xsk_ring_prod__submit(&b.tx, n); inflight += n; sent += n; }
    sendto(fd, NULL, 0, MSG_DONTWAIT, NULL, 0);
    uint32_t cidx, c = xsk_ring_cons__peek(&b.cq, BARE_RING, &cidx);
    if (c) { xsk_ring_cons__release(&b.cq, c); inflight -= c; }
  }
  uint64_t ns = vsx_now_ns() - start;
  result(o, sent, ns, (double)(cpu_ns() - cpu0) / (double)ns, "");
  usleep(100000);
  bare_close(&b);
  return 0;
}

int main(int argc, char **argv) {
  bopts_t o;
  parse(argc, argv, &o);
  setvbuf(stdout, NULL, _IOLBF, 0);
  int bare = !strcmp(o.kind, "bare");
  if (!strcmp(o.role, "rx")) return bare ? bare_rx(&o) : vsx_rx(&o);
  if (!strcmp(o.role, "tx")) return bare ? bare_tx(&o) : vsx_tx(&o);
  usage();
  return 2;
}
