/* mbr_node.c - one member process with dynamic membership over a real
   transport, for tests/membership/real.sh (and by hand).

   It starts alone (opts.view = NULL, the VSX_STACK_VSYNC stack), finds
   the group, casts a checked message every 1/rate seconds whenever it may
   send, checks every delivery (its payload names the sender and carries
   a CRC-32C of its body) and writes the spec's JSONL trace to --dir.  On
   every view it rewrites <dir>/<name>.view with one line:
     <ltime> <coordinator eid> <member count> <my eid>
   so a script can wait for views, and appends to <dir>/<name>.views
     <CLOCK_REALTIME ns> <ltime> <coordinator eid> <member count>
   so a benchmark can time them (bench_failover.sh).  SIGTERM or SIGINT: destroy the
   endpoint (trace exit "stop") and exit 0 (1 if a delivery was wrong).
   --svc picks the casts' service: fifo (default), total, safe, or mixed
   (fifo, total and safe in turn, so the checker sees properties 7, 8
   and 9 in one run).  SIGUSR1 stops casting safe ones (mixed becomes
   fifo and total): safe delivery is promised under crashes, not to a
   member cut off alive (docs/total-order.md), so a script sends it
   before it pauses processes or cuts links.  SIGUSR2 stops casting (a
   script quiesces the group before it stops the members, so every cast
   has been delivered everywhere when they exit).

   usage: mbr_node --transport udp|afxdp --if IF --mcast A.B.C.D --port P
                   --eid E --name N --dir DIR [--rate HZ] [--params P]
                   [--svc fifo|total|safe|mixed] */
#include <arpa/inet.h>
#include <endian.h>
#include <ev.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vsx/endpoint.h"
#include "vsx/trace.h"
#include "transport/afxdp_priv.h"

typedef struct node {
  vsx_endpoint_t *ep;
  struct ev_loop *loop;
  ev_timer tick;
  ev_signal sigterm, sigint, sigusr1, sigusr2;
  int svc;            /* VSX_SVC_*, or 0: mixed                        */
  int no_safe;        /* SIGUSR1: safe casts become total              */
  const char *dir, *name;
  uint64_t eid, seq, delivered, errors;
  int blocked;
} node_t;

typedef struct payload { uint64_t sender, seq; uint32_t body_len, body_crc; } __attribute__((packed)) payload_t;

static void write_view(node_t *n, const vsx_view_t *v) {
  char path[600], tmp[620];
  snprintf(path, sizeof path, "%s/%s.view", n->dir, n->name);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f) return;
  fprintf(f, "%llu %llu %u %llu\n", (unsigned long long)v->ltime, (unsigned long long)v->coord_eid, v->member_cnt,
          (unsigned long long)n->eid);
  fclose(f);
  rename(tmp, path); /* readers see a whole line */
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  snprintf(path, sizeof path, "%s/%s.views", n->dir, n->name);
  if ((f = fopen(path, "a"))) {
    fprintf(f, "%llu %llu %llu %u\n", (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec,
            (unsigned long long)v->ltime, (unsigned long long)v->coord_eid, v->member_cnt);
    fclose(f);
  }
}

static void on_view(void *user, vsx_endpoint_t *ep, const vsx_view_t *v, uint32_t rank) {
  node_t *n = user;
  (void)ep;
  (void)rank;
  n->blocked = 0;
  write_view(n, v);
}

static void on_block(void *user, vsx_endpoint_t *ep) {
  (void)ep;
  ((node_t *)user)->blocked = 1;
}

static void on_deliver(void *user, vsx_endpoint_t *ep, uint32_t from, vsx_svc_t svc, const vsx_iovl_t *msg) {
  node_t *n = user;
  uint8_t buf[2048];
  size_t len = vsx_iovl_len(msg);
  payload_t h;
  if (len < sizeof h || len > sizeof buf) { n->errors++; return; }
  vsx_iovl_gather(msg, 0, buf, len);
  memcpy(&h, buf, sizeof h);
  const vsx_view_t *v = vsx_endpoint_view(ep);
  uint64_t sender = be64toh(h.sender);
  vsx_trace_deliver(vsx_endpoint_trace(ep), sender, svc, be64toh(h.seq), len, vsx_crc32c(0, buf, len));
  if (from >= v->member_cnt || v->members[from] != sender || ntohl(h.body_len) != len - sizeof h ||
      vsx_crc32c(0, buf + sizeof h, len - sizeof h) != ntohl(h.body_crc)) {
    if (!n->errors++) fprintf(stderr, "%s: bad delivery from rank %u\n", n->name, from);
    return;
  }
  n->delivered++;
}

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  node_t *n = w->data;
  (void)loop;
  (void)revents;
  if (vsx_endpoint_can_send(n->ep) != VSX_OK) return;
  uint8_t buf[sizeof(payload_t) + 128];
  uint32_t body = 16 + (uint32_t)(n->seq % 97);
  for (uint32_t i = 0; i < body; i++) buf[sizeof(payload_t) + i] = (uint8_t)(n->seq * 31 + i);
  payload_t h = { htobe64(n->eid), htobe64(n->seq + 1), htonl(body), htonl(vsx_crc32c(0, buf + sizeof h, body)) };
  memcpy(buf, &h, sizeof h);
  size_t len = sizeof h + body;
  vsx_svc_t svc = n->svc ? (vsx_svc_t)n->svc : (vsx_svc_t)(VSX_SVC_FIFO + n->seq % 3);
  if (svc == VSX_SVC_SAFE && n->no_safe) svc = VSX_SVC_TOTAL;
  if (vsx_endpoint_cast(n->ep, svc, buf, len) != VSX_OK) return; /* AGAIN: flow control */
  n->seq++;
  vsx_trace_send(vsx_endpoint_trace(n->ep), svc, n->seq, len, vsx_crc32c(0, buf, len), 0);
}

static void no_safe_cb(struct ev_loop *loop, ev_signal *w, int revents) {
  (void)loop;
  (void)revents;
  ((node_t *)w->data)->no_safe = 1;
}

static void quiet_cb(struct ev_loop *loop, ev_signal *w, int revents) {
  (void)revents;
  ev_timer_stop(loop, &((node_t *)w->data)->tick);
}

static void stop_cb(struct ev_loop *loop, ev_signal *w, int revents) {
  (void)w;
  (void)revents;
  ev_break(loop, EVBREAK_ALL);
}

static void usage(const char *why) {
  fprintf(stderr, "mbr_node: %s\nusage: mbr_node --transport udp|afxdp --if IF --mcast A.B.C.D --port P --eid E "
          "--name N --dir DIR [--rate HZ] [--params P] [--svc fifo|total|safe|mixed]\n", why);
  exit(2);
}

int main(int argc, char **argv) {
  static const struct option lo[] = {
    { "transport", 1, 0, 't' }, { "if", 1, 0, 'i' }, { "mcast", 1, 0, 'm' }, { "port", 1, 0, 'p' },
    { "eid", 1, 0, 'e' }, { "name", 1, 0, 'n' }, { "dir", 1, 0, 'd' }, { "rate", 1, 0, 'r' },
    { "params", 1, 0, 'P' }, { "svc", 1, 0, 's' }, { 0, 0, 0, 0 } };
  const char *transport = NULL, *ifname = NULL, *params = NULL;
  struct in_addr mcast = { 0 };
  uint16_t port = 0;
  double rate = 200;
  node_t n = { .name = "node", .svc = VSX_SVC_FIFO };
  int c;
  while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
    switch (c) {
    case 't': transport = optarg; break;
    case 'i': ifname = optarg; break;
    case 'm': if (!inet_aton(optarg, &mcast)) usage("bad --mcast"); break;
    case 'p': port = (uint16_t)atoi(optarg); break;
    case 'e': n.eid = strtoull(optarg, NULL, 0); break;
    case 'n': n.name = optarg; break;
    case 'd': n.dir = optarg; break;
    case 'r': rate = atof(optarg); break;
    case 'P': params = optarg; break;
    case 's':
      n.svc = !strcmp(optarg, "fifo") ? VSX_SVC_FIFO : !strcmp(optarg, "total") ? VSX_SVC_TOTAL
            : !strcmp(optarg, "safe") ? VSX_SVC_SAFE : !strcmp(optarg, "mixed") ? 0 : -1;
      if (n.svc < 0) usage("--svc is fifo, total, safe or mixed");
      break;
    default: usage("unknown option");
    }
  }
  if (!transport || !n.dir || !port || !n.eid || rate <= 0) usage("--transport, --port, --eid and --dir are required");
  vsx_afxdp_opts_t ao;
  memset(&ao, 0, sizeof ao);
  vsx_endpoint_opts_t eo = {
    .group = "vsx-mbr-real", .opt_name = n.name, .opt_params = params, .transport = vsx_transport_find(transport),
    .opt_ifname = ifname, .mcast_ip = ntohl(mcast.s_addr), .port = port, .eid = n.eid,
    .opt_backend = !strcmp(transport, "afxdp") ? &ao : NULL, .opt_trace_dir = n.dir,
    .cbs = { .deliver = on_deliver, .view = on_view, .block = on_block }, .user = &n,
  };
  if (!eo.transport) usage("unknown --transport");
  int err = vsx_endpoint_create(&eo, &n.ep);
  if (err) {
    fprintf(stderr, "%s: cannot create the endpoint: %s: %s\n", n.name, vsx_strerror(err), vsx_last_error());
    return 2;
  }
  n.loop = ev_loop_new(EVFLAG_AUTO);
  if ((err = vsx_endpoint_attach(n.ep, n.loop))) {
    fprintf(stderr, "%s: attach: %s\n", n.name, vsx_last_error());
    return 2;
  }
  ev_timer_init(&n.tick, tick_cb, 1.0 / rate, 1.0 / rate);
  n.tick.data = &n;
  ev_timer_start(n.loop, &n.tick);
  ev_signal_init(&n.sigterm, stop_cb, SIGTERM);
  ev_signal_init(&n.sigint, stop_cb, SIGINT);
  ev_signal_start(n.loop, &n.sigterm);
  ev_signal_start(n.loop, &n.sigint);
  ev_signal_init(&n.sigusr1, no_safe_cb, SIGUSR1);
  n.sigusr1.data = &n;
  ev_signal_start(n.loop, &n.sigusr1);
  ev_signal_init(&n.sigusr2, quiet_cb, SIGUSR2);
  n.sigusr2.data = &n;
  ev_signal_start(n.loop, &n.sigusr2);
  ev_run(n.loop, 0);
  vsx_endpoint_stats_t st;
  vsx_endpoint_get_stats(n.ep, &st);
  printf("%s: %llu casts sent, %llu delivered, %llu views, %llu errors\n", n.name, (unsigned long long)n.seq,
         (unsigned long long)n.delivered, (unsigned long long)st.views, (unsigned long long)n.errors);
  vsx_endpoint_detach(n.ep);
  vsx_endpoint_destroy(n.ep);
  ev_loop_destroy(n.loop);
  return n.errors ? 1 : 0;
}
