/* test_total.c - total order and safe delivery (the seqbb layer).

   Goal: within one view, every member delivers the total and safe casts in
   one and the same order, each sender's in its order, exactly once, with
   the right bytes; fifo casts pass without waiting for total ones; a safe
   cast is delivered only once every member holds it and its position; a
   member never delivers a total cast whose position it never learned;
   senders are blocked, never dropped, when their window is full; the
   sequencer batches its order; bad input is dropped and counted.
   Method: (1) whole groups on the simulated network with loss,
   duplication and reordering, checked delivery by delivery by the
   recorder in tests/util/total_check.c (which also runs a probe layer
   under seqbb to know, independently of seqbb, what each member holds);
   seeds from the loop index or VSX_SEED, printed by every failure.
   (2) One seqbb stack between a fake application and a fake reliable
   layer, fed crafted headers, for the wire format and bad input.
   Sequencer crash is out of scope here: it ends the view, and what
   happens then is membership's (see docs/total-order.md). */
#include <check.h>
#include "check_main.h"
#include <arpa/inet.h>
#include <endian.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"
#include "total_check.h"

#define SEC 1000000000ull

static vsx_sim_opts_t lossy(uint64_t seed) {
  return (vsx_sim_opts_t){ .seed = seed, .loss = 0.20, .dup = 0.05, .delay_min_ns = 20000, .delay_max_ns = 400000,
                           .queue_cap = 8192 };
}

/* check_run: the recorder saw no violation, everything cast was delivered
   everywhere in one sequence, no safe cast went early, the probes and
   seqbb saw nothing malformed. */
static void check_run(tc_group_t *g) {
  char first[256];
  unsigned long long seed = (unsigned long long)g->seed;
  uint64_t errs = tc_errors(g, first, sizeof first);
  ck_assert_msg(errs == 0, "seed %llu: %llu violations, first: %s", seed, (unsigned long long)errs, first);
  ck_assert_msg(g->safe_early == 0, "seed %llu: %llu safe casts delivered before every member had them", seed,
                (unsigned long long)g->safe_early);
  ck_assert_msg(tc_probe_violations(g) == 0, "seed %llu: casts reached seqbb out of order", seed);
  uint64_t ord = 0;
  for (uint32_t r = 0; r < g->n; r++) ord += g->m[r].sent_ord;
  ck_assert_msg(g->ref_len == ord, "seed %llu: %llu total/safe casts sent, %llu in the agreed sequence", seed,
                (unsigned long long)ord, (unsigned long long)g->ref_len);
  for (uint32_t r = 0; r < g->n; r++) {
    ck_assert_msg(g->m[r].got_total + g->m[r].got_safe == ord, "seed %llu: member %u delivered %llu of %llu", seed, r,
                  (unsigned long long)(g->m[r].got_total + g->m[r].got_safe), (unsigned long long)ord);
    ck_assert_msg(tc_seqbb_stat(g, r, "malformed") == 0, "seed %llu: member %u's seqbb dropped malformed input", seed, r);
  }
}

/* check_pools_full: once everything is stable, every buffer and event
   record is back in its pool (seqbb keeps nothing it delivered). */
static void check_pools_full(tc_group_t *g) {
  tc_run_for(g, 2 * SEC);
  for (uint32_t r = 0; r < g->n; r++) {
    vsx_bufpool_t *pool = vsx_endpoint_pool(g->m[r].ep);
    vsx_evpool_t *evp = vsx_endpoint_evpool(g->m[r].ep);
    if (vsx_bufpool_free_cnt(pool) != vsx_bufpool_buf_cnt(pool)) vsx_stack_dump(vsx_endpoint_stack(g->m[r].ep), stderr);
    ck_assert_msg(vsx_bufpool_free_cnt(pool) == vsx_bufpool_buf_cnt(pool), "seed %llu: member %u holds %u buffers at rest",
                  (unsigned long long)g->seed, r, vsx_bufpool_buf_cnt(pool) - vsx_bufpool_free_cnt(pool));
    ck_assert_msg(vsx_evpool_free_cnt(evp) == vsx_evpool_cnt(evp), "seed %llu: member %u holds %u events at rest",
                  (unsigned long long)g->seed, r, vsx_evpool_cnt(evp) - vsx_evpool_free_cnt(evp));
  }
}

/* The scenario: 5 members, 20% loss with duplication and
   reordering, every member casting a mix of fifo, total and safe. */
START_TEST(test_total_agreement_5_lossy) {
  tc_group_t g;
  tc_opts_t o = { .n = 5, .sim = lossy(tgroup_seed_from_env(42)) };
  ck_assert_int_eq(tc_create(&g, &o), VSX_OK);
  unsigned long long seed = (unsigned long long)g.seed;
  int done = tc_traffic(&g, 2000, 30, 30, 300 * SEC);
  check_run(&g);
  ck_assert_msg(done, "seed %llu: not everything delivered within 300 s of virtual time", seed);
  ck_assert_uint_gt(g.safe_checked, 2000);
  /* The stability check is not vacuous: total casts, which need not wait,
     were sometimes delivered while another member still lacked them. */
  ck_assert_msg(g.total_early > 0, "seed %llu: no total cast ever went before every member had it", seed);
  /* One ORDER covers many casts when many are pending. */
  uint64_t ordered = tc_seqbb_stat(&g, 0, "ordered"), orders = tc_seqbb_stat(&g, 0, "orders_sent");
  ck_assert_uint_eq(ordered, g.ref_len);
  ck_assert_msg(ordered >= 4 * orders, "seed %llu: %llu ORDER messages for %llu casts", seed, (unsigned long long)orders,
                (unsigned long long)ordered);
  for (uint32_t r = 1; r < 5; r++) ck_assert_uint_eq(tc_seqbb_stat(&g, r, "orders_sent"), 0); /* only the sequencer orders */
  check_pools_full(&g);
  tc_destroy(&g);
}
END_TEST

/* Seed sweep: many seeds, sizes from 1 byte to 3 fragments; every fourth
   run up to 7 fragments (lists long enough to need extension arrays). */
START_TEST(test_total_seed_sweep) {
  tc_group_t g;
  tc_opts_t o = { .n = 5, .sim = lossy(5000 + (uint64_t)_i), .len_min = 1, .len_max = _i % 4 == 3 ? 9000 : 3000 };
  ck_assert_int_eq(tc_create(&g, &o), VSX_OK);
  int done = tc_traffic(&g, 200, 30, 30, 300 * SEC);
  check_run(&g);
  ck_assert_msg(done, "seed %llu: not everything delivered", (unsigned long long)g.seed);
  check_pools_full(&g);
  tc_destroy(&g);
}
END_TEST

/* Message sizes, table-driven: huge messages (hundreds of fragments) are
   ordered whole; 4-buffer messages would fill the receivers' pools were
   it not for the buffer window; 5-8 piece messages would exhaust the
   pool's iovec extension arrays were it not for the extension window. */
static const struct { uint32_t n, len_min, len_max, casts, buf_cnt; double loss; } sizes[] = {
  { 3, 200000, 260000, 6, 8192, 0.05 },
  { 5, 4000, 5000, 300, 0, 0.20 },
  { 3, 5200, 9000, 200, 0, 0.20 },
};

START_TEST(test_total_message_sizes) {
  tc_group_t g;
  tc_opts_t o = { .n = sizes[_i].n, .sim = lossy(tgroup_seed_from_env(11 + (uint64_t)_i)), .len_min = sizes[_i].len_min,
                  .len_max = sizes[_i].len_max, .buf_cnt = sizes[_i].buf_cnt };
  o.sim.loss = sizes[_i].loss;
  ck_assert_int_eq(tc_create(&g, &o), VSX_OK);
  int done = tc_traffic(&g, sizes[_i].casts, 0, 40, 60 * SEC);
  check_run(&g);
  ck_assert_msg(done, "seed %llu: messages of %u..%u bytes not all delivered", (unsigned long long)g.seed,
                sizes[_i].len_min, sizes[_i].len_max);
  check_pools_full(&g);
  tc_destroy(&g);
}
END_TEST

/* A fifo cast never waits for a total one, and a member that holds a
   total cast but never learned its position does not deliver it: member
   2 cannot hear the sequencer (links 0<->2 cut) but hears member 1. */
START_TEST(test_total_fifo_passes_unordered_total_waits) {
  tc_group_t g;
  tc_opts_t o = { .n = 3, .sim = lossy(tgroup_seed_from_env(3)) };
  o.sim.loss = 0;
  ck_assert_int_eq(tc_create(&g, &o), VSX_OK);
  unsigned long long seed = (unsigned long long)g.seed;
  ck_assert_int_eq(vsx_sim_link(g.sim, g.view.members[0], g.view.members[2], 0), VSX_OK);
  ck_assert_int_eq(vsx_sim_link(g.sim, g.view.members[2], g.view.members[0], 0), VSX_OK);
  ck_assert_int_eq(tc_cast(&g, 1, VSX_SVC_TOTAL), VSX_OK);
  ck_assert_int_eq(tc_cast(&g, 1, VSX_SVC_FIFO), VSX_OK);
  tc_run_for(&g, SEC / 2);
  ck_assert_msg(g.m[1].got_ord[1] == 1, "seed %llu: member 1 did not deliver its total cast", seed);
  ck_assert_uint_eq(g.m[2].got_fifo[1], 1);           /* the fifo cast went past ...          */
  ck_assert_uint_eq(g.m[2].got_ord[1], 0);            /* ... the total cast sent before it    */
  ck_assert_uint_eq(g.m[2].probe->rx_ord[1], 1);      /* which member 2 holds,                */
  ck_assert_uint_eq(tc_seqbb_stat(&g, 2, "pos_learned"), 0); /* but has no position for   */
  vsx_sim_heal(g.sim);
  tc_run_for(&g, 2 * SEC); /* mnak recovers the ORDER; then it goes */
  ck_assert_uint_eq(g.m[2].got_ord[1], 1);
  check_run(&g);
  tc_destroy(&g);
}
END_TEST

/* A safe cast waits for every member: with member 3 cut off, the others
   deliver total casts (they reach the sequencer) but no safe one; after
   the heal everything arrives, everywhere, in one order. */
START_TEST(test_total_safe_waits_for_every_member) {
  tc_group_t g;
  tc_opts_t o = { .n = 4, .sim = lossy(tgroup_seed_from_env(13)) };
  ck_assert_int_eq(tc_create(&g, &o), VSX_OK);
  unsigned long long seed = (unsigned long long)g.seed;
  ck_assert_int_eq(vsx_sim_side(g.sim, g.view.members[3], 1), VSX_OK);
  for (uint32_t r = 0; r < 3; r++)
    for (int i = 0; i < 6; i++) ck_assert_int_eq(tc_cast(&g, r, i % 2 ? VSX_SVC_SAFE : VSX_SVC_TOTAL), VSX_OK);
  tc_run_for(&g, SEC);
  for (uint32_t r = 0; r < 3; r++) {
    ck_assert_msg(g.m[r].got_safe == 0, "seed %llu: member %u delivered a safe cast member 3 never got", seed, r);
    ck_assert_msg(g.m[r].got_total >= 1, "seed %llu: member %u delivered no total cast", seed, r);
  }
  ck_assert_uint_eq(g.m[3].got_total + g.m[3].got_safe, 0);
  vsx_sim_heal(g.sim);
  ck_assert_msg(tc_traffic(&g, 6, 0, 50, 60 * SEC), "seed %llu: not delivered after the heal", seed);
  uint64_t safe = 0;
  for (uint32_t r = 0; r < 4; r++) safe += g.m[r].sent_safe;
  ck_assert_uint_ge(safe, 9);
  for (uint32_t r = 0; r < 4; r++) ck_assert_uint_eq(g.m[r].got_safe, safe);
  check_run(&g);
  check_pools_full(&g);
  tc_destroy(&g);
}
END_TEST

/* Flow control: a sender whose casts are not delivered everywhere is
   blocked after `window` casts, is told so, loses nothing, and is
   released once the missing member is back. */
START_TEST(test_total_window_blocks_and_releases) {
  tc_group_t g;
  tc_opts_t o = { .n = 3, .params = "seqbb.window=8", .sim = lossy(tgroup_seed_from_env(17)) };
  ck_assert_int_eq(tc_create(&g, &o), VSX_OK);
  unsigned long long seed = (unsigned long long)g.seed;
  ck_assert_int_eq(vsx_sim_side(g.sim, g.view.members[2], 1), VSX_OK);
  int refused = 0;
  for (int i = 0; i < 100 && !refused; i++) {
    refused = tc_cast(&g, 1, i % 3 ? VSX_SVC_TOTAL : VSX_SVC_SAFE) == VSX_ERR_AGAIN;
    tc_run_for(&g, SEC / 1000);
  }
  ck_assert_msg(refused, "seed %llu: a sender with an unreachable member was never blocked", seed);
  ck_assert_uint_eq(g.m[1].sent_ord, 8);
  ck_assert(g.m[1].blocked);
  ck_assert_uint_gt(tc_seqbb_stat(&g, 1, "casts"), 0);
  vsx_sim_heal(g.sim);
  tc_run_for(&g, SEC);
  ck_assert_msg(!g.m[1].blocked, "seed %llu: still blocked after the heal", seed);
  ck_assert_uint_ge(g.m[1].flow_unblocks, 1);
  ck_assert_msg(tc_traffic(&g, 200, 20, 40, 60 * SEC), "seed %llu: not delivered", seed);
  check_run(&g);
  check_pools_full(&g);
  tc_destroy(&g);
}
END_TEST

/* One member alone: its own total and safe casts come straight back. */
START_TEST(test_total_single_member) {
  tc_group_t g;
  tc_opts_t o = { .n = 1, .sim = lossy(1) };
  ck_assert_int_eq(tc_create(&g, &o), VSX_OK);
  ck_assert(tc_traffic(&g, 100, 30, 30, 10 * SEC));
  check_run(&g);
  ck_assert_uint_eq(tc_seqbb_stat(&g, 0, "acks_sent"), 0);
  tc_destroy(&g);
}
END_TEST

/* The same seed gives the same agreed sequence. */
START_TEST(test_total_replays_exactly) {
  uint64_t hash[2] = { 0, 0 };
  for (int k = 0; k < 2; k++) {
    tc_group_t g;
    tc_opts_t o = { .n = 4, .sim = lossy(77) };
    ck_assert_int_eq(tc_create(&g, &o), VSX_OK);
    ck_assert(tc_traffic(&g, 300, 30, 30, 60 * SEC));
    check_run(&g);
    hash[k] = vsx_crc32c(0, g.ref, g.ref_len * sizeof *g.ref) ^ g.ref_len << 32;
    tc_destroy(&g);
  }
  ck_assert_uint_eq(hash[0], hash[1]);
}
END_TEST

/* The service needs the layer, and the layer needs reliable casts below. */
START_TEST(test_total_needs_the_layer) {
  tgroup_t tg; /* the default stack has no total order */
  tg_opts_t to = { .n = 2, .sim = lossy(1) };
  ck_assert_int_eq(tgroup_create(&tg, &to), VSX_OK);
  ck_assert_int_eq(vsx_endpoint_cast(tg.m[0].ep, VSX_SVC_TOTAL, "x", 1), VSX_ERR_NOTSUP);
  ck_assert_int_eq(vsx_endpoint_cast(tg.m[0].ep, VSX_SVC_SAFE, "x", 1), VSX_ERR_NOTSUP);
  tgroup_destroy(&tg);
  tc_group_t g;
  tc_opts_t o = { .n = 2, .stack = "top:seqbb:tc_probe:bottom", .sim = lossy(1) };
  ck_assert_int_eq(tc_create(&g, &o), VSX_ERR_PLACEMENT);
  ck_assert_ptr_nonnull(strstr(vsx_last_error(), "seqbb"));
  o.stack = NULL;
  ck_assert_int_eq(tc_create(&g, &o), VSX_OK);
  ck_assert(vsx_stack_caps(vsx_endpoint_stack(g.m[0].ep)) & VSX_CAP_TOTAL_ORDER);
  tc_destroy(&g);
}
END_TEST

/* ---- one stack against fakes: the wire format and bad input --------------- */

#define U_N 3
#define U_CAP 64

/* u_rel: the fake below seqbb: "reliable casts", everything goes to the
   sink, where the test reads it. */
static void u_bounce(vsx_layer_ctx_t *ctx, vsx_event_t *ev) { vsx_pass_up(ctx, ev); }
static const vsx_layer_ops_t u_rel = {
  .name = "u_rel", .provides = VSX_CAP_DATAGRAM | VSX_CAP_RELIABLE_CAST | VSX_CAP_RELIABLE_SEND | VSX_CAP_CAST_UNITS,
  .dnnm = u_bounce,
};

typedef struct u_msg { int32_t peer; uint16_t flags; uint8_t svc; size_t len; uint8_t b[512]; } u_msg_t;
typedef struct u_node {
  vsx_stack_t *st;
  vsx_bufpool_t *bp;
  vsx_evpool_t *evp;
  u_msg_t up[U_CAP], dn[U_CAP];
  int up_cnt, dn_cnt;
} u_node_t;

static uint64_t u_now = 1000000000ull;
static uint64_t u_clock(void *o) { (void)o; return u_now; }

static void u_keep(u_msg_t *m, int *cnt, vsx_event_t *ev) {
  ck_assert_int_lt(*cnt, U_CAP);
  u_msg_t *x = &m[(*cnt)++];
  x->peer = ev->peer;
  x->flags = ev->flags;
  x->svc = ev->svc;
  x->len = vsx_iovl_gather(&ev->iovl, 0, x->b, sizeof x->b);
}
static void u_sink_up(void *o, vsx_event_t *ev) { u_node_t *n = o; u_keep(n->up, &n->up_cnt, ev); vsx_evpool_free(n->evp, ev); }
static void u_sink_dn(void *o, vsx_event_t *ev) { u_node_t *n = o; u_keep(n->dn, &n->dn_cnt, ev); vsx_evpool_free(n->evp, ev); }

static const vsx_view_t u_view = { .ltime = 1, .coord_eid = 100, .member_cnt = U_N, .members = { 100, 101, 102 } };

static void u_create(u_node_t *n, uint32_t rank) {
  memset(n, 0, sizeof *n);
  int err = vsx_layer_register(&u_rel);
  ck_assert(err == VSX_OK || err == VSX_ERR_BUSY);
  vsx_bufpool_opts_t bo = { .buf_cnt = 256, .buf_sz = 2048, .headroom = 256, .reserve_cnt = 16, .ext_cnt = 8, .ext_cap = 16 };
  ck_assert_int_eq(vsx_bufpool_create(&bo, &n->bp), VSX_OK);
  ck_assert_int_eq(vsx_evpool_create(256, 16, &n->evp), VSX_OK);
  vsx_stack_cfg_t c = { .spec = "top:seqbb(window=4,order_us=10):u_rel", .view = &u_view, .rank = rank, .group_id = 7,
                        .payload_max = 1344, .seed = 1, .pool = n->bp, .evpool = n->evp, .owner = n, .now = u_clock,
                        .sink_up = u_sink_up, .sink_dn = u_sink_dn };
  ck_assert_int_eq(vsx_stack_create(&c, &n->st), VSX_OK);
}

static void u_destroy(u_node_t *n) {
  vsx_stack_destroy(n->st);
  ck_assert_uint_eq(vsx_evpool_free_cnt(n->evp), vsx_evpool_cnt(n->evp));
  ck_assert_uint_eq(vsx_bufpool_check(n->bp, stderr), 0);
  vsx_evpool_destroy(n->evp);
  vsx_bufpool_destroy(n->bp);
}

/* u_inject passes bytes up into n's stack as a cast from peer. */
static void u_inject(u_node_t *n, int32_t peer, uint16_t flags, const void *b, size_t len) {
  vsx_event_t *ev = vsx_evpool_alloc(n->evp, VSX_EV_CAST, 0);
  ck_assert_ptr_nonnull(ev);
  ck_assert_int_eq(vsx_iovl_from_bytes(n->bp, &ev->iovl, b, len, 1536, 0), VSX_OK);
  ev->peer = peer;
  ev->flags = flags;
  vsx_stack_up(n->st, ev);
}

/* The seqbb wire format, as the banner of layers/seqbb.c gives it. */
enum { K_FIFO = 1, K_TOTAL = 2, K_SAFE = 3, K_ORDER = 4, K_ACK = 5 };
static size_t u_hdr(uint8_t *b, uint8_t kind, uint16_t cnt, uint32_t seq) {
  b[0] = kind;
  b[1] = 0;
  uint16_t c = htons(cnt);
  uint32_t s = htonl(seq);
  memcpy(b + 2, &c, 2);
  memcpy(b + 4, &s, 4);
  return 8;
}
/* u_data: a total/safe/fifo cast: seqbb header, top's header, one byte. */
static size_t u_data(uint8_t *b, uint8_t kind, uint32_t seq, uint8_t tag) {
  size_t at = u_hdr(b, kind, 0, seq);
  b[at++] = kind == K_SAFE ? VSX_SVC_SAFE : kind == K_TOTAL ? VSX_SVC_TOTAL : VSX_SVC_FIFO;
  b[at++] = 0; b[at++] = 0; b[at++] = 0;
  b[at++] = tag;
  return at;
}
static size_t u_order(uint8_t *b, uint32_t first_pos, const uint16_t (*runs)[3], uint16_t cnt) {
  size_t at = u_hdr(b, K_ORDER, cnt, first_pos);
  for (uint16_t i = 0; i < cnt; i++) {
    uint16_t o = htons(runs[i][0]), l = htons(runs[i][1]);
    uint32_t f = htonl(runs[i][2]);
    memcpy(b + at, &o, 2); memcpy(b + at + 2, &l, 2); memcpy(b + at + 4, &f, 4);
    at += 8;
  }
  return at;
}
static size_t u_ack(uint8_t *b, uint16_t cnt, uint64_t ready, const uint32_t *dlv) {
  size_t at = u_hdr(b, K_ACK, cnt, 0);
  uint64_t r = htobe64(ready);
  memcpy(b + at, &r, 8);
  at += 8;
  for (uint16_t i = 0; i < cnt; i++) { uint32_t v = htonl(dlv[i]); memcpy(b + at, &v, 4); at += 4; }
  return at;
}

/* The sequencer numbers arrivals and casts them as runs: one ORDER at
   once (nothing pending before), the rest batched order_us later; fed
   back (as mnak's local delivery would), they deliver in that order. */
START_TEST(test_total_sequencer_casts_runs) {
  u_node_t n;
  u_create(&n, 0);
  uint8_t b[512];
  static const uint32_t origin[6] = { 1, 1, 1, 2, 2, 1 }, seq[6] = { 0, 1, 2, 0, 1, 3 };
  for (int i = 0; i < 6; i++) u_inject(&n, (int32_t)origin[i], 0, b, u_data(b, K_TOTAL, seq[i], (uint8_t)(10 + i)));
  ck_assert_int_eq(n.dn_cnt, 1); /* the first arrival is ordered when the queue drains */
  ck_assert_int_eq(n.up_cnt, 0); /* nothing delivered before the order comes back     */
  u_now += 10000;
  vsx_stack_alarms(n.st);
  ck_assert_int_eq(n.dn_cnt, 2); /* the other five in one ORDER */
  uint8_t want0[64], want1[64];
  static const uint16_t runs0[1][3] = { { 1, 1, 0 } }, runs1[3][3] = { { 1, 2, 1 }, { 2, 2, 0 }, { 1, 1, 3 } };
  size_t l0 = u_order(want0, 0, runs0, 1), l1 = u_order(want1, 1, runs1, 3);
  ck_assert_uint_eq(n.dn[0].len, l0);
  ck_assert_mem_eq(n.dn[0].b, want0, l0);
  ck_assert_uint_eq(n.dn[1].len, l1);
  ck_assert_mem_eq(n.dn[1].b, want1, l1);
  ck_assert_uint_eq(n.dn[1].flags & VSX_EVF_UNREL, 0); /* the order is reliable */
  for (int i = 0; i < 2; i++) u_inject(&n, 0, VSX_EVF_LOCAL, n.dn[i].b, n.dn[i].len);
  ck_assert_int_eq(n.up_cnt, 6);
  for (int i = 0; i < 6; i++) {
    ck_assert_int_eq(n.up[i].peer, (int32_t)origin[i]);
    ck_assert_uint_eq(n.up[i].len, 1);
    ck_assert_uint_eq(n.up[i].b[0], 10 + i);
    ck_assert_uint_eq(n.up[i].svc, VSX_SVC_TOTAL);
  }
  /* Progress is acknowledged: ready 6, delivered 4 of 1's and 2 of 2's. */
  u_now += 2000000;
  vsx_stack_alarms(n.st);
  ck_assert_int_eq(n.dn_cnt, 3);
  uint8_t want2[64];
  static const uint32_t dlv[U_N] = { 0, 4, 2 };
  size_t l2 = u_ack(want2, U_N, 6, dlv);
  ck_assert_uint_eq(n.dn[2].len, l2);
  ck_assert_mem_eq(n.dn[2].b, want2, l2);
  u_destroy(&n);
}
END_TEST

/* A safe cast with a learned position waits for every member's ACK. */
START_TEST(test_total_safe_needs_every_ack) {
  u_node_t n;
  u_create(&n, 1);
  uint8_t b[512];
  static const uint16_t runs[1][3] = { { 2, 1, 0 } };
  static const uint32_t none[U_N] = { 0, 0, 0 };
  u_inject(&n, 2, 0, b, u_data(b, K_SAFE, 0, 42));
  u_inject(&n, 0, 0, b, u_order(b, 0, runs, 1));
  ck_assert_uint_eq(vsx_stack_stat(n.st, "seqbb", "pos_ready"), 1);
  ck_assert_int_eq(n.up_cnt, 0);
  u_inject(&n, 0, 0, b, u_ack(b, U_N, 1, none));
  ck_assert_int_eq(n.up_cnt, 0); /* member 2 has not said it holds it */
  u_inject(&n, 2, 0, b, u_ack(b, U_N, 0, none));
  ck_assert_int_eq(n.up_cnt, 0); /* it says it has not */
  u_inject(&n, 2, 0, b, u_ack(b, U_N, 1, none));
  ck_assert_int_eq(n.up_cnt, 1);
  ck_assert_uint_eq(n.up[0].b[0], 42);
  ck_assert_uint_eq(n.up[0].svc, VSX_SVC_SAFE);
  ck_assert_uint_eq(vsx_stack_stat(n.st, "seqbb", "safe_delivered"), 1);
  ck_assert_uint_eq(vsx_stack_stat(n.st, "seqbb", "malformed"), 0);
  u_destroy(&n);
}
END_TEST

/* Bad input is dropped and counted, one by one, delivers nothing and
   changes nothing: afterwards a correct stream still delivers. */
START_TEST(test_total_rejects_bad_input) {
  u_node_t n;
  u_create(&n, 1);
  uint8_t b[512];
  memset(b, 0xA5, sizeof b);
  static const uint32_t zero[U_N] = { 0, 0, 0 }, too_many[U_N] = { 0, 1, 0 };
  static const uint16_t ok_run[1][3] = { { 2, 1, 0 } }, bad_first[1][3] = { { 2, 1, 1 } }, bad_origin[1][3] = { { 9, 1, 0 } },
                        zero_len[1][3] = { { 2, 0, 0 } }, beyond[1][3] = { { 2, 9, 0 } };
  struct { const char *what; int32_t peer; uint16_t flags; size_t len; } cases[16];
  uint8_t bytes[16][128];
  int c = 0;
#define CASE(w, p, f, expr) do { cases[c].what = w; cases[c].peer = p; cases[c].flags = f; cases[c].len = (expr); memcpy(bytes[c], b, cases[c].len); c++; } while (0)
  CASE("truncated header", 2, 0, 5);
  b[0] = 9; CASE("unknown kind", 2, 0, 12);
  CASE("total data with a gap", 2, 0, u_data(b, K_TOTAL, 1, 0));
  CASE("total data sent unreliably", 2, VSX_EVF_UNREL, u_data(b, K_TOTAL, 0, 0));
  CASE("fifo cast flagged unreliable", 2, VSX_EVF_UNREL, u_data(b, K_FIFO, 0, 0));
  CASE("ORDER from a non-sequencer", 2, 0, u_order(b, 0, ok_run, 1));
  CASE("ORDER at the wrong position", 0, 0, u_order(b, 7, ok_run, 1));
  CASE("ORDER skipping a cast", 0, 0, u_order(b, 0, bad_first, 1));
  CASE("ORDER for an unknown origin", 0, 0, u_order(b, 0, bad_origin, 1));
  CASE("ORDER with an empty run", 0, 0, u_order(b, 0, zero_len, 1));
  CASE("ORDER beyond the window", 0, 0, u_order(b, 0, beyond, 1));
  CASE("ORDER shorter than its count", 0, 0, u_order(b, 0, ok_run, 1) - 4);
  CASE("ACK of the wrong size", 2, 0, u_ack(b, 2, 0, zero));
  CASE("ACK delivering casts never sent", 2, 0, u_ack(b, U_N, 0, too_many));
  for (int i = 0; i < c; i++) {
    u_inject(&n, cases[i].peer, cases[i].flags, bytes[i], cases[i].len);
    ck_assert_msg(vsx_stack_stat(n.st, "seqbb", "malformed") == (uint64_t)i + 1, "%s: not counted", cases[i].what);
  }
  /* Beyond the rings: with window=4 origin 2 may have 8 undelivered casts
     here (the rings hold twice the window), not 9. */
  for (uint32_t k = 0; k < 9; k++) u_inject(&n, 2, 0, b, u_data(b, K_TOTAL, k, (uint8_t)k));
  ck_assert_uint_eq(vsx_stack_stat(n.st, "seqbb", "malformed"), (uint64_t)c + 1);
  ck_assert_int_eq(n.up_cnt, 0);
  ck_assert_uint_eq(vsx_stack_stat(n.st, "seqbb", "pos_learned"), 0);
  /* State intact: the right order delivers the eight that were kept. */
  static const uint16_t eight[1][3] = { { 2, 8, 0 } };
  u_inject(&n, 0, 0, b, u_order(b, 0, eight, 1));
  ck_assert_int_eq(n.up_cnt, 8);
  for (int i = 0; i < 8; i++) ck_assert_uint_eq(n.up[i].b[0], i);
  u_inject(&n, 2, 0, b, u_data(b, K_FIFO, 0, 99));
  ck_assert_int_eq(n.up_cnt, 9);
  ck_assert_uint_eq(vsx_stack_stat(n.st, "seqbb", "malformed"), (uint64_t)c + 1);
  u_destroy(&n);
}
END_TEST

int main(void) {
  Suite *s = suite_create("total");
  struct { const char *name; const TTest *test; int loop; } cases[] = {
    { "agreement", test_total_agreement_5_lossy, 0 }, { "sweep", test_total_seed_sweep, 1 },
    { "sizes", test_total_message_sizes, 3 }, { "fifo", test_total_fifo_passes_unordered_total_waits, 0 },
    { "safe", test_total_safe_waits_for_every_member, 0 }, { "window", test_total_window_blocks_and_releases, 0 },
    { "single", test_total_single_member, 0 }, { "replay", test_total_replays_exactly, 0 },
    { "layer", test_total_needs_the_layer, 0 }, { "runs", test_total_sequencer_casts_runs, 0 },
    { "ack", test_total_safe_needs_every_ack, 0 }, { "bad", test_total_rejects_bad_input, 0 },
  };
  int sweep = getenv("VSX_SWEEP") ? atoi(getenv("VSX_SWEEP")) : 24;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    TCase *tc = tcase_create(cases[i].name); /* CK_RUN_CASE=name runs one */
    tcase_set_timeout(tc, 120);
    if (cases[i].loop) tcase_add_loop_test(tc, cases[i].test, 0, cases[i].loop > 1 ? cases[i].loop : sweep);
    else tcase_add_test(tc, cases[i].test);
    suite_add_tcase(s, tc);
  }
  return vsx_check_run(s);
}
