/* vsx_sim_group.c - a whole group on the simulated network, in one
   process: members cast and send through the reliable stack over a lossy,
   duplicating, reordering network, then a table shows what each sent and
   delivered and what the protocol had to do to get it there.

   Every delivery is checked as it happens (origin, per-origin order,
   CRC-32C of the bytes); the program exits non-zero on any violation or
   if anything is missing at the end. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include "vsx/endpoint.h"
#include "vsx/sim.h"

#define MAX 16

typedef struct member {
  vsx_endpoint_t *ep;
  uint32_t rank;
  uint32_t casts_sent, sends_sent[MAX];
  uint32_t casts_got[MAX], sends_got[MAX];
  uint64_t bytes_got, errors;
} member_t;

static member_t members[MAX];
static uint32_t n = 5;

/* Payload: u32 origin, u32 seq, u32 crc of the rest, then the text. */
static void on_deliver(void *user, vsx_endpoint_t *ep, uint32_t from, vsx_svc_t svc, const vsx_iovl_t *msg) {
  member_t *m = user;
  (void)ep;
  uint8_t buf[2048];
  size_t len = vsx_iovl_gather(msg, 0, buf, sizeof buf);
  uint32_t h[3];
  if (len < sizeof h) { m->errors++; return; }
  memcpy(h, buf, sizeof h);
  uint32_t *next = svc == VSX_SVC_P2P ? &m->sends_got[from] : &m->casts_got[from];
  if (ntohl(h[0]) != from || ntohl(h[1]) != *next || ntohl(h[2]) != vsx_crc32c(0, buf + sizeof h, len - sizeof h)) {
    m->errors++;
    return;
  }
  (*next)++;
  m->bytes_got += len;
}

static int submit(member_t *m, int cast, uint32_t dst) {
  uint8_t buf[256];
  uint32_t seq = cast ? m->casts_sent : m->sends_sent[dst];
  int len = snprintf((char *)buf + 12, sizeof buf - 12, "%s %u from member %u", cast ? "cast" : "send", seq, m->rank);
  uint32_t h[3] = { htonl(m->rank), htonl(seq), htonl(vsx_crc32c(0, buf + 12, (size_t)len)) };
  memcpy(buf, h, sizeof h);
  int err = cast ? vsx_endpoint_cast(m->ep, VSX_SVC_FIFO, buf, 12 + (size_t)len) : vsx_endpoint_send(m->ep, dst, buf, 12 + (size_t)len);
  if (!err) { if (cast) m->casts_sent++; else m->sends_sent[dst]++; }
  return err;
}

static int all_delivered(void) {
  for (uint32_t r = 0; r < n; r++)
    for (uint32_t o = 0; o < n; o++)
      if (members[r].casts_got[o] != members[o].casts_sent || members[r].sends_got[o] != members[o].sends_sent[r]) return 0;
  return 1;
}

static void usage(FILE *out) {
  fprintf(out,
          "usage: vsx-sim-group [options]\n"
          "Runs a group on vsx's deterministic simulated network and prints what each member\n"
          "sent and delivered through the reliable stack (%s).\n\n"
          "  -n, --members N   members (2..%d, default 5)\n"
          "  -c, --casts N     casts per member (default 10000)\n"
          "  -s, --sends N     point-to-point sends from each member to each other (default 200)\n"
          "  -l, --loss P      datagram loss probability (default 0.2)\n"
          "  -d, --dup P       duplication probability (default 0.05)\n"
          "  -S, --seed N      seed of the network's random choices (default 1); a run replays exactly\n"
          "  -h, --help        this text\n",
          VSX_STACK_DEFAULT, MAX);
}

int main(int argc, char **argv) {
  uint32_t casts = 10000, sends = 200;
  vsx_sim_opts_t so = { .seed = 1, .loss = 0.2, .dup = 0.05, .delay_min_ns = 20000, .delay_max_ns = 400000, .queue_cap = 8192 };
  static const struct option longopts[] = { { "members", 1, 0, 'n' }, { "casts", 1, 0, 'c' }, { "sends", 1, 0, 's' },
                                            { "loss", 1, 0, 'l' }, { "dup", 1, 0, 'd' }, { "seed", 1, 0, 'S' },
                                            { "help", 0, 0, 'h' }, { 0, 0, 0, 0 } };
  int c;
  while ((c = getopt_long(argc, argv, "n:c:s:l:d:S:h", longopts, NULL)) != -1) {
    switch (c) {
    case 'n': n = (uint32_t)atoi(optarg); break;
    case 'c': casts = (uint32_t)atoi(optarg); break;
    case 's': sends = (uint32_t)atoi(optarg); break;
    case 'l': so.loss = atof(optarg); break;
    case 'd': so.dup = atof(optarg); break;
    case 'S': so.seed = strtoull(optarg, NULL, 0); break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (n < 2 || n > MAX) { fprintf(stderr, "vsx-sim-group: --members must be 2..%d\n", MAX); return 2; }
  vsx_sim_t *sim;
  if (vsx_sim_create(&so, &sim)) { fprintf(stderr, "vsx-sim-group: %s\n", vsx_last_error()); return 2; }
  vsx_view_t view = { .ltime = 1, .member_cnt = n };
  for (uint32_t r = 0; r < n; r++) view.members[r] = 0x100 + r;
  view.coord_eid = view.members[0];
  for (uint32_t r = 0; r < n; r++) {
    members[r].rank = r;
    vsx_endpoint_opts_t o = { .group = "demo", .transport = &vsx_transport_sim, .opt_backend = sim, .eid = view.members[r],
                              .view = &view, .opt_clock = vsx_sim_clock, .opt_clock_ctx = sim,
                              .cbs = { .deliver = on_deliver }, .user = &members[r] };
    if (vsx_endpoint_create(&o, &members[r].ep)) { fprintf(stderr, "vsx-sim-group: %s\n", vsx_last_error()); return 1; }
  }
  printf("%u members, %u casts each and %u sends to each other member; network loss %.0f%%, duplication %.0f%%, "
         "delay 20-400 us (reorders); seed %llu\n", n, casts, sends, so.loss * 100, so.dup * 100, (unsigned long long)so.seed);
  uint64_t start = vsx_sim_now(sim), last_report = start;
  for (;;) {
    int pending = 0;
    for (uint32_t r = 0; r < n; r++) {
      member_t *m = &members[r];
      for (int k = 0; k < 8 && m->casts_sent < casts; k++)
        if (submit(m, 1, 0)) break;
      for (uint32_t d = 0; d < n; d++)
        if (d != r && m->sends_sent[d] < sends) submit(m, 0, d);
      pending |= m->casts_sent < casts;
      for (uint32_t d = 0; d < n; d++) pending |= d != r && m->sends_sent[d] < sends;
    }
    if (!pending && all_delivered()) break;
    uint64_t next = vsx_sim_next_arrival(sim);
    for (uint32_t r = 0; r < n; r++) {
      uint64_t a = vsx_endpoint_next_alarm(members[r].ep);
      if (a && a < next) next = a;
    }
    vsx_sim_set_now(sim, next);
    for (uint32_t r = 0; r < n; r++) vsx_endpoint_poll(members[r].ep);
    if (vsx_sim_now(sim) - last_report >= 1000000000ull) {
      last_report = vsx_sim_now(sim);
      uint64_t got = 0;
      for (uint32_t r = 0; r < n; r++)
        for (uint32_t o = 0; o < n; o++) got += members[r].casts_got[o];
      printf("  t=%4.1fs  casts delivered %llu of %llu\n", (double)(last_report - start) / 1e9, (unsigned long long)got,
             (unsigned long long)casts * n * n);
      fflush(stdout);
    }
    if (vsx_sim_now(sim) - start > 3600ull * 1000000000ull) break;
  }
  printf("\n%-6s %8s %8s %10s %10s %8s %8s %8s %10s %6s\n", "member", "casts", "sends", "cast dlv", "send dlv", "naks",
         "retrans", "p2p rtx", "bytes", "errors");
  uint64_t errors = 0;
  for (uint32_t r = 0; r < n; r++) {
    member_t *m = &members[r];
    vsx_stack_t *st = vsx_endpoint_stack(m->ep);
    uint32_t sent_p2p = 0, got_c = 0, got_s = 0;
    for (uint32_t o = 0; o < n; o++) { sent_p2p += m->sends_sent[o]; got_c += m->casts_got[o]; got_s += m->sends_got[o]; }
    printf("%-6u %8u %8u %10u %10u %8llu %8llu %8llu %10llu %6llu\n", r, m->casts_sent, sent_p2p, got_c, got_s,
           (unsigned long long)vsx_stack_stat(st, "mnak", "naks_sent"), (unsigned long long)vsx_stack_stat(st, "mnak", "retransmitted"),
           (unsigned long long)vsx_stack_stat(st, "pt2pt", "retransmitted"), (unsigned long long)m->bytes_got,
           (unsigned long long)m->errors);
    errors += m->errors;
  }
  vsx_sim_stats_t ss;
  vsx_sim_get_stats(sim, &ss);
  int ok = !errors && all_delivered();
  printf("\nnetwork: %llu datagrams sent, %llu lost, %llu duplicated; %.1f s of simulated time\n", (unsigned long long)ss.sent,
         (unsigned long long)ss.lost, (unsigned long long)ss.duplicated, (double)(vsx_sim_now(sim) - start) / 1e9);
  printf("%s\n", ok ? "every member delivered every message exactly once, in order, with the right bytes"
                    : "FAILED: messages missing or guarantees violated");
  for (uint32_t r = 0; r < n; r++) vsx_endpoint_destroy(members[r].ep);
  vsx_sim_destroy(sim);
  return ok ? 0 : 1;
}
