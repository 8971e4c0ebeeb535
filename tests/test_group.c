/* test_group.c - whole groups on the simulated network.

   Goal: the reliable stack gives every member every cast and send exactly
   once, in each sender's order, with the right bytes, under loss,
   duplication and reordering; and afterwards every pool is full again.
   Method: tgroup (tests/util) members check each delivery as it happens
   (origin, per-origin seqno, CRC-32C); the test then checks completeness,
   the layers' own FIFO checker, and pool levels.  Seeds come from the loop
   index (or VSX_SEED) and every failure message names its seed. */
#include <check.h>
#include "check_main.h"
#include <stdlib.h>
#include "testutil.h"

#define SPEC_CHECKED "top:chk_fifo:frag:stable:pt2pt:mnak:bottom"
#define SPEC_BUNDLED "top:chk_fifo:frag:stable:pt2pt:mnak:bundle:bottom"

static vsx_sim_opts_t lossy(uint64_t seed) {
  return (vsx_sim_opts_t){ .seed = seed, .loss = 0.20, .dup = 0.05, .delay_min_ns = 20000,
                           .delay_max_ns = 400000, .queue_cap = 8192 };
}

/* check_clean: no violation anywhere, and every buffer and event back. */
static void check_clean(tgroup_t *g) {
  char first[256];
  uint64_t errs = tgroup_errors(g, first, sizeof first);
  ck_assert_msg(errs == 0, "seed %llu: %llu violations, first: %s", (unsigned long long)g->seed,
                (unsigned long long)errs, first);
  for (uint32_t r = 0; r < g->n; r++) {
    vsx_stack_t *st = vsx_endpoint_stack(g->m[r].ep);
    ck_assert_msg(vsx_stack_stat(st, "chk_fifo", "violations") == 0, "seed %llu: chk_fifo violation at %u",
                  (unsigned long long)g->seed, r);
  }
}

static void check_pools_full(tgroup_t *g) {
  /* Let stability catch up so every retransmission buffer is released. */
  tgroup_run_for(g, 2000000000ull);
  for (uint32_t r = 0; r < g->n; r++) {
    vsx_bufpool_t *pool = vsx_endpoint_pool(g->m[r].ep);
    vsx_evpool_t *evp = vsx_endpoint_evpool(g->m[r].ep);
    if (vsx_bufpool_free_cnt(pool) != vsx_bufpool_buf_cnt(pool)) {
      vsx_bufpool_check(pool, stderr);
      vsx_stack_dump(vsx_endpoint_stack(g->m[r].ep), stderr);
    }
    ck_assert_msg(vsx_bufpool_free_cnt(pool) == vsx_bufpool_buf_cnt(pool), "seed %llu: member %u holds %u buffers at rest",
                  (unsigned long long)g->seed, r, vsx_bufpool_buf_cnt(pool) - vsx_bufpool_free_cnt(pool));
    ck_assert_msg(vsx_evpool_free_cnt(evp) == vsx_evpool_cnt(evp), "seed %llu: member %u holds %u events at rest",
                  (unsigned long long)g->seed, r, vsx_evpool_cnt(evp) - vsx_evpool_free_cnt(evp));
  }
}

/* The scenario: 5 members, 20% loss with duplication and
   reordering, 10,000 casts from each plus point-to-point sends; once
   with every message in its own datagram, once bundled. */
START_TEST(test_group_reliable_5x10000_lossy) {
  tgroup_t g;
  tg_opts_t o = { .n = 5, .stack = _i ? SPEC_BUNDLED : SPEC_CHECKED, .sim = lossy(tgroup_seed_from_env(42)) };
  ck_assert_int_eq(tgroup_create(&g, &o), VSX_OK);
  int done = tgroup_traffic(&g, 10000, 500, 600ull * 1000000000ull);
  check_clean(&g);
  ck_assert_msg(done, "seed %llu: not everything delivered within 600 s of virtual time", (unsigned long long)g.seed);
  if (_i) ck_assert_uint_gt(vsx_stack_stat(vsx_endpoint_stack(g.m[0].ep), "bundle", "bundles"), 0);
  for (uint32_t r = 0; r < 5; r++)
    for (uint32_t o2 = 0; o2 < 5; o2++) ck_assert_uint_eq(g.m[r].casts_got[o2], 10000);
  check_pools_full(&g);
  tgroup_destroy(&g);
}
END_TEST

/* Seed sweep: smaller runs, many seeds, sizes up to 3 fragments; odd
   seeds run with bundling. */
START_TEST(test_group_seed_sweep) {
  tgroup_t g;
  uint64_t seed = 1000 + (uint64_t)_i;
  tg_opts_t o = { .n = 4, .stack = _i % 2 ? SPEC_BUNDLED : SPEC_CHECKED, .sim = lossy(seed), .msg_len_min = 1,
                  .msg_len_max = _i % 4 == 1 ? 100 : 3000 };
  ck_assert_int_eq(tgroup_create(&g, &o), VSX_OK);
  int done = tgroup_traffic(&g, 300, 50, 300ull * 1000000000ull);
  check_clean(&g);
  ck_assert_msg(done, "seed %llu: not everything delivered", (unsigned long long)seed);
  check_pools_full(&g);
  tgroup_destroy(&g);
}
END_TEST

/* Large messages: casts and sends of the full 1 MiB maximum are cut into
   hundreds of fragments and come back whole, byte for byte; one byte more
   is refused with VSX_ERR_TOOBIG. */
START_TEST(test_group_large_messages) {
  tgroup_t g;
  tg_opts_t o = { .n = 3, .stack = SPEC_CHECKED, .sim = lossy(tgroup_seed_from_env(7)),
                  .msg_len_min = (1 << 20) - 20, .msg_len_max = (1 << 20) - 20, .buf_cnt = 8192 };
  o.sim.loss = 0.05;
  ck_assert_int_eq(tgroup_create(&g, &o), VSX_OK);
  int done = tgroup_traffic(&g, 4, 1, 300ull * 1000000000ull);
  check_clean(&g);
  ck_assert_msg(done, "seed %llu: large messages not all delivered", (unsigned long long)g.seed);
  static char big[(1 << 20) + 1];
  ck_assert_int_eq(vsx_endpoint_cast(g.m[0].ep, VSX_SVC_FIFO, big, sizeof big), VSX_ERR_TOOBIG);
  check_pools_full(&g);
  tgroup_destroy(&g);
}
END_TEST

/* A partition stops delivery across it; after the heal everything sent
   during the partition arrives (the fixed view keeps everyone a member). */
START_TEST(test_group_partition_heal_recovers) {
  tgroup_t g;
  tg_opts_t o = { .n = 4, .stack = SPEC_CHECKED, .sim = lossy(tgroup_seed_from_env(9)) };
  ck_assert_int_eq(tgroup_create(&g, &o), VSX_OK);
  ck_assert_int_eq(vsx_sim_side(g.sim, g.view.members[2], 1), VSX_OK);
  ck_assert_int_eq(vsx_sim_side(g.sim, g.view.members[3], 1), VSX_OK);
  for (int i = 0; i < 20; i++) { tgroup_cast(&g, 0); tgroup_cast(&g, 3); }
  tgroup_run_for(&g, 500000000ull);
  ck_assert_uint_eq(g.m[1].casts_got[0], 20);
  ck_assert_uint_eq(g.m[2].casts_got[0], 0); /* the partition holds */
  ck_assert_uint_eq(g.m[0].casts_got[3], 0);
  vsx_sim_heal(g.sim);
  ck_assert(tgroup_traffic(&g, 20, 0, 60ull * 1000000000ull));
  check_clean(&g);
  check_pools_full(&g);
  tgroup_destroy(&g);
}
END_TEST

/* Flow control: a member that casts with a stalled receiver is told to
   wait, is never dropped, and is released when the receiver returns. */
START_TEST(test_group_flow_blocks_and_releases) {
  tgroup_t g;
  tg_opts_t o = { .n = 3, .stack = SPEC_CHECKED, .params = "mnak.window=32", .sim = lossy(tgroup_seed_from_env(5)) };
  o.sim.loss = 0;
  ck_assert_int_eq(tgroup_create(&g, &o), VSX_OK);
  ck_assert_int_eq(vsx_sim_side(g.sim, g.view.members[2], 1), VSX_OK);
  int refused = 0;
  for (int i = 0; i < 200 && !refused; i++) {
    refused = tgroup_cast(&g, 0) == VSX_ERR_AGAIN;
    tgroup_run_for(&g, 1000000ull);
  }
  ck_assert_msg(refused, "a sender with an unreachable member was never flow-blocked");
  ck_assert(g.m[0].blocked_cb);
  ck_assert_uint_le(g.m[0].casts_sent, 64);
  vsx_sim_heal(g.sim);
  tgroup_run_for(&g, 1000000000ull);
  ck_assert(!g.m[0].blocked_cb);
  ck_assert_uint_ge(g.m[0].flow_unblocks, 1);
  ck_assert(tgroup_traffic(&g, 300, 0, 60ull * 1000000000ull));
  check_clean(&g);
  tgroup_destroy(&g);
}
END_TEST

/* The same seed gives the same run: the simulator is deterministic. */
START_TEST(test_group_replays_exactly) {
  vsx_sim_stats_t a, b;
  for (int k = 0; k < 2; k++) {
    tgroup_t g;
    tg_opts_t o = { .n = 3, .stack = SPEC_CHECKED, .sim = lossy(77) };
    ck_assert_int_eq(tgroup_create(&g, &o), VSX_OK);
    ck_assert(tgroup_traffic(&g, 200, 20, 60ull * 1000000000ull));
    vsx_sim_get_stats(g.sim, k ? &b : &a);
    tgroup_destroy(&g);
  }
  ck_assert_uint_eq(a.sent, b.sent);
  ck_assert_uint_eq(a.lost, b.lost);
  ck_assert_uint_eq(a.delivered, b.delivered);
}
END_TEST

int main(void) {
  Suite *s = suite_create("group");
  struct { const char *name; const TTest *test; int loop; } cases[] = {
    { "reliable", test_group_reliable_5x10000_lossy, 2 }, { "sweep", test_group_seed_sweep, 1 },
    { "large", test_group_large_messages, 0 }, { "partition", test_group_partition_heal_recovers, 0 },
    { "flow", test_group_flow_blocks_and_releases, 0 }, { "replay", test_group_replays_exactly, 0 },
  };
  int sweep = getenv("VSX_SWEEP") ? atoi(getenv("VSX_SWEEP")) : 40;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    TCase *tc = tcase_create(cases[i].name); /* CK_RUN_CASE=name runs one */
    tcase_set_timeout(tc, 600);
    if (cases[i].loop) tcase_add_loop_test(tc, cases[i].test, 0, cases[i].loop > 1 ? cases[i].loop : sweep);
    else tcase_add_test(tc, cases[i].test);
    suite_add_tcase(s, tc);
  }
  return vsx_check_run(s);
}
