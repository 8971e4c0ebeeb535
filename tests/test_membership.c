/* test_membership.c - dynamic membership on the simulated network.

   Goal: the spec's properties 1-7 and 10-13 hold whatever the faults, and
   once faults stop every live process ends in one view with everyone
   else it can reach, within detection timeout + 2 s.
   Method: the mgroup harness (tests/util/mgroup.h) starts processes
   alone, lets them find each other, injects scripted faults (one test
   per scenario of the issue) or random fault schedules (the seed sweep),
   drives traffic throughout, and checks the properties in process as
   every view, block and delivery happens; each run also writes the
   spec's JSONL traces and the independent checker
   (tests/checker/vsx_check.py) must pass them.  Every failure names its
   seed: VSX_SEED=<seed> CK_RUN_CASE=<case> replays it exactly.

   Environment: VSX_SWEEP or VSX_MBR_SWEEP (seeds of the random sweep,
   default 1000; the latter for this program alone),
   VSX_LOOPS (seeds of each scripted scenario, default 1-3),
   VSX_CHECK_EVERY (run the trace checker on every Nth sweep seed,
   default 25; 1 = all), VSX_TRACE_DIR (keep the traces there instead of
   a temporary directory that is removed when a run passes). */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "check_main.h"
#include "mgroup.h"
#include "vsx/trace.h"

#define MS 1000000ull
#define S 1000000000ull
/* The fast parameters detect a crash in about 100-120 ms; the spec bound
   for convergence after the last fault is detection + 2 s. */
#define CONVERGE_NS (120 * MS + 2 * S)

static char tmp_trace_dir[256];

static vsx_sim_opts_t net(uint64_t seed, double loss) {
  return (vsx_sim_opts_t){ .seed = seed, .loss = loss, .dup = loss > 0 ? 0.02 : 0, .delay_min_ns = 20000,
                           .delay_max_ns = 300000, .queue_cap = 4096 };
}

static uint64_t seed_of(uint64_t base, int i) {
  const char *e = getenv("VSX_SEED");
  return e ? strtoull(e, NULL, 0) : base + (uint64_t)i;
}

/* trace_base: VSX_TRACE_DIR, else the temporary directory main made. */
static const char *trace_base(void) {
  const char *e = getenv("VSX_TRACE_DIR");
  return e && *e ? e : tmp_trace_dir;
}

static void rm_run_dir(const mgroup_t *g) {
  if (!getenv("VSX_TRACE_DIR")) mgroup_rm_run(g); /* kept on request */
}

static void start(mgroup_t *g, mg_opts_t *o, const char *name, uint64_t seed) {
  static char run[128];
  snprintf(run, sizeof run, "%s-%llu", name, (unsigned long long)seed);
  if (!o->trace_dir) o->trace_dir = trace_base();
  o->run_name = run;
  if (!o->cast_p) o->cast_p = 0.05;
  if (!o->send_p) o->send_p = 0.01;
  ck_assert_msg(mgroup_create(g, o) == VSX_OK, "seed %llu: mgroup_create: %s", (unsigned long long)seed, vsx_last_error());
}

static void assert_clean(mgroup_t *g) {
  char first[400];
  uint64_t e = mgroup_errors(g, first, sizeof first);
  if (e) mgroup_describe(g, stderr);
  ck_assert_msg(e == 0, "seed %llu: %llu violations, first: %s (faults: %s)", (unsigned long long)g->seed,
                (unsigned long long)e, first, g->chaos_log);
}

/* finish: faults have stopped; converge within the bound, deliver
   everything, then the in-process checks and the trace checker. */
static void finish(mgroup_t *g, const char *checker_opts, int run_checker) {
  char why[400];
  uint64_t t0 = mgroup_now(g);
  int ok = mgroup_settle(g, CONVERGE_NS + 3 * S, why, sizeof why);
  if (!ok) mgroup_describe(g, stderr);
  ck_assert_msg(ok, "seed %llu: %s (faults: %s)", (unsigned long long)g->seed, why, g->chaos_log);
  uint64_t took = mgroup_now(g) - t0;
  assert_clean(g);
  (void)took;
  if (run_checker) {
    int ran;
    char verdict[2048];
    int rc = mgroup_run_checker(g, checker_opts, &ran, verdict, sizeof verdict);
    ck_assert_msg(rc == 0, "seed %llu: the trace checker fails on %s: %s", (unsigned long long)g->seed, g->trace_dir,
                  verdict);
    if (ran) rm_run_dir(g);
  }
  mgroup_destroy(g);
}

/* step_until runs until pred holds (1) or max_ns passed (0). */
static int step_until(mgroup_t *g, int (*pred)(const mgroup_t *), uint64_t max_ns) {
  uint64_t until = mgroup_now(g) + max_ns;
  while (!pred(g))
    if (!mgroup_step(g, until)) return pred(g);
  return 1;
}

static int any_blocked(const mgroup_t *g) {
  for (uint32_t i = 0; i < g->n; i++)
    if (mgroup_alive(g, i) && g->p[i].blocked) return 1;
  return 0;
}

/* coord_of returns the index of the coordinator of process i's view. */
static int coord_of(const mgroup_t *g, uint32_t i) {
  for (uint32_t k = 0; k < g->n; k++)
    if (g->p[k].eid == g->p[i].view.coord_eid) return (int)k;
  return -1;
}

static void converge(mgroup_t *g, uint64_t max_ns) {
  uint64_t t = mgroup_wait_converged(g, max_ns);
  if (t == UINT64_MAX) mgroup_describe(g, stderr);
  ck_assert_msg(t != UINT64_MAX, "seed %llu: no convergence within %llu ms", (unsigned long long)g->seed,
                (unsigned long long)(max_ns / MS));
}

/* ---- scripted scenarios ---------------------------------------------------------- */

/* Processes started at the same moment end up in one view. */
START_TEST(test_membership_start_together) {
  mgroup_t *g = malloc(sizeof *g);
  mg_opts_t o = { .n = 6, .sim = net(seed_of(100, _i), 0.05) };
  start(g, &o, "start", o.sim.seed);
  converge(g, CONVERGE_NS);
  ck_assert_uint_eq(g->p[0].view.member_cnt, 6);
  mgroup_run(g, 500 * MS);
  finish(g, NULL, 1);
  free(g);
}
END_TEST

/* A member crashes: the others install a view without it. */
START_TEST(test_membership_crash_member) {
  mgroup_t *g = malloc(sizeof *g);
  mg_opts_t o = { .n = 5, .sim = net(seed_of(200, _i), 0.05) };
  start(g, &o, "crash", o.sim.seed);
  converge(g, CONVERGE_NS);
  mgroup_run(g, 300 * MS);
  uint32_t victim = (uint32_t)(coord_of(g, 0) == 0 ? 1 : 0);
  mgroup_crash(g, victim);
  converge(g, CONVERGE_NS);
  ck_assert_uint_eq(g->p[victim == 0 ? 1 : 0].view.member_cnt, 4);
  mgroup_run(g, 300 * MS);
  finish(g, NULL, 1);
  free(g);
}
END_TEST

/* The coordinator crashes: the next member takes over. */
START_TEST(test_membership_crash_coordinator) {
  mgroup_t *g = malloc(sizeof *g);
  mg_opts_t o = { .n = 5, .sim = net(seed_of(300, _i), 0.05) };
  start(g, &o, "crash-coord", o.sim.seed);
  converge(g, CONVERGE_NS);
  mgroup_run(g, 300 * MS);
  int c = coord_of(g, 0);
  ck_assert_int_ge(c, 0);
  uint64_t old = g->p[c].eid;
  mgroup_crash(g, (uint32_t)c);
  converge(g, CONVERGE_NS);
  for (uint32_t i = 0; i < g->n; i++)
    if (mgroup_alive(g, i)) ck_assert_msg(g->p[i].view.coord_eid != old, "seed %llu: the dead coordinator still leads",
                                          (unsigned long long)g->seed);
  mgroup_run(g, 300 * MS);
  finish(g, NULL, 1);
  free(g);
}
END_TEST

/* Total order across view changes: heavy total traffic while the
   coordinator, which is the sequencer, crashes; then a member joins.
   Members that make the same transition must have delivered the same
   casts in the same order (the harness compares an order-dependent
   digest, property 8), and the checker reads the traces. */
START_TEST(test_membership_total_sequencer_crash) {
  mgroup_t *g = malloc(sizeof *g);
  mg_opts_t o = { .n = 5, .sim = net(seed_of(1300, _i), 0.05), .svc = VSX_SVC_TOTAL, .cast_p = 0.6 };
  start(g, &o, "total-seq-crash", o.sim.seed);
  converge(g, CONVERGE_NS);
  mgroup_run(g, 200 * MS);
  int c = coord_of(g, 0);
  ck_assert_int_ge(c, 0);
  mgroup_crash(g, (uint32_t)c);
  converge(g, CONVERGE_NS);
  mgroup_run(g, 100 * MS);
  ck_assert_int_ge(mgroup_spawn(g), 0);
  converge(g, CONVERGE_NS);
  mgroup_run(g, 200 * MS);
  finish(g, NULL, 1);
  free(g);
}
END_TEST

/* Safe casts across view changes: a join and a leave under heavy safe
   traffic lose no cast (every member delivers its own: the harness
   checks self delivery over views that lost no member), then a crash. */
START_TEST(test_membership_safe_join_leave_crash) {
  mgroup_t *g = malloc(sizeof *g);
  mg_opts_t o = { .n = 4, .sim = net(seed_of(1400, _i), 0.05), .svc = VSX_SVC_SAFE, .cast_p = 0.6 };
  start(g, &o, "safe-join", o.sim.seed);
  converge(g, CONVERGE_NS);
  mgroup_run(g, 150 * MS);
  ck_assert_int_ge(mgroup_spawn(g), 0);
  converge(g, CONVERGE_NS);
  mgroup_run(g, 100 * MS);
  ck_assert_int_eq(mgroup_leave(g, 1), VSX_OK);
  converge(g, CONVERGE_NS);
  mgroup_run(g, 100 * MS);
  mgroup_crash(g, 2);
  converge(g, CONVERGE_NS);
  mgroup_run(g, 200 * MS);
  finish(g, NULL, 1);
  free(g);
}
END_TEST

/* Property 14, flow control never starves: members cast total casts as
   fast as flow control lets them, through small windows, while views
   change one after another (joins, a crash, a leave, a partition and its
   heal, without waiting for one change to finish before the next).
   Senders must have been held back (else the test proves nothing), and
   once the churn stops every member is released and delivers everything
   (the harness's delivery check), and is not left blocked. */
START_TEST(test_membership_flow_never_starves) {
  mgroup_t *g = malloc(sizeof *g);
  mg_opts_t o = { .n = 4, .sim = net(seed_of(1500, _i), 0.05), .svc = VSX_SVC_TOTAL, .cast_p = 1.0, .burst = 64,
                  .params = "suspect.sweep_ms=20,suspect.timeout_ms=100,inter.heal_ms=100,inter.retry_ms=20,"
                            "inter.timeout_ms=400,intra.leave_ms=500,stable.sweep_ms=10,mnak.window=32,"
                            "pt2pt.window=16,seqbb.window=8" };
  start(g, &o, "flow-churn", o.sim.seed);
  converge(g, CONVERGE_NS);
  mgroup_run(g, 100 * MS);
  ck_assert_int_ge(mgroup_spawn(g), 0);
  mgroup_run(g, 60 * MS);
  mgroup_crash(g, 1);
  mgroup_run(g, 60 * MS);
  ck_assert_int_ge(mgroup_spawn(g), 0);
  mgroup_run(g, 60 * MS);
  ck_assert_int_eq(mgroup_leave(g, 2), VSX_OK);
  mgroup_run(g, 60 * MS);
  ck_assert_int_eq(vsx_sim_side(g->sim, g->p[3].eid, 1), VSX_OK);
  mgroup_run(g, 300 * MS);
  vsx_sim_heal(g->sim);
  converge(g, CONVERGE_NS);
  mgroup_run(g, 300 * MS);
  uint64_t held = 0;
  for (uint32_t i = 0; i < g->n; i++) held += g->p[i].flow_refusals;
  ck_assert_msg(held > 0, "seed %llu: no cast was ever held back: the windows are too large to test anything",
                (unsigned long long)g->seed);
  char why[400];
  ck_assert_msg(mgroup_settle(g, CONVERGE_NS + 3 * S, why, sizeof why), "seed %llu: %s", (unsigned long long)g->seed, why);
  mgroup_run(g, 100 * MS); /* the last acknowledgements travel (lazily: within a millisecond or so) */
  for (uint32_t i = 0; i < g->n; i++)
    if (mgroup_alive(g, i))
      ck_assert_msg(!vsx_endpoint_flow_blocked(g->p[i].ep), "seed %llu: %s still flow-blocked after the churn stopped",
                    (unsigned long long)g->seed, g->p[i].name);
  finish(g, NULL, 1);
  free(g);
}
END_TEST

/* A member crashes, and the coordinator crashes while the flush that
   excludes it is under way: the next member restarts the flush. */
START_TEST(test_membership_crash_coordinator_during_flush) {
  mgroup_t *g = malloc(sizeof *g);
  mg_opts_t o = { .n = 6, .sim = net(seed_of(400, _i), 0.05) };
  start(g, &o, "crash-coord-flush", o.sim.seed);
  converge(g, CONVERGE_NS);
  mgroup_run(g, 300 * MS);
  int c = coord_of(g, 0);
  uint32_t victim = (uint32_t)(c == 5 ? 4 : 5);
  mgroup_crash(g, victim);
  ck_assert_msg(step_until(g, any_blocked, S), "seed %llu: no flush started", (unsigned long long)g->seed);
  mgroup_crash(g, (uint32_t)c); /* mid-flush */
  converge(g, CONVERGE_NS);
  uint32_t alive = 0;
  for (uint32_t i = 0; i < g->n; i++) alive += mgroup_alive(g, i);
  ck_assert_uint_eq(alive, 4);
  mgroup_run(g, 300 * MS);
  finish(g, NULL, 1);
  free(g);
}
END_TEST

/* Cascading crashes: three members die one after another, each before
   the view change for the previous one is over. */
START_TEST(test_membership_cascading_crashes) {
  mgroup_t *g = malloc(sizeof *g);
  mg_opts_t o = { .n = 7, .sim = net(seed_of(500, _i), 0.05) };
  start(g, &o, "cascade", o.sim.seed);
  converge(g, CONVERGE_NS);
  mgroup_run(g, 300 * MS);
  for (int k = 0; k < 3; k++) {
    int c = coord_of(g, 6);
    mgroup_crash(g, (uint32_t)(k == 1 && c >= 0 ? c : k * 2)); /* the second victim is the coordinator */
    mgroup_run(g, (40 + 30 * (uint64_t)k) * MS);
  }
  converge(g, CONVERGE_NS);
  mgroup_run(g, 300 * MS);
  finish(g, NULL, 1);
  free(g);
}
END_TEST

/* A process joins while a view change (a crash) is under way. */
START_TEST(test_membership_join_during_view_change) {
  mgroup_t *g = malloc(sizeof *g);
  mg_opts_t o = { .n = 5, .sim = net(seed_of(600, _i), 0.05), .state_len = 2048 };
  start(g, &o, "join-flush", o.sim.seed);
  converge(g, CONVERGE_NS);
  mgroup_run(g, 200 * MS);
  mgroup_crash(g, 2);
  ck_assert_msg(step_until(g, any_blocked, S), "seed %llu: no flush started", (unsigned long long)g->seed);
  int j = mgroup_spawn(g);
  ck_assert_int_ge(j, 0);
  converge(g, CONVERGE_NS);
  ck_assert_uint_eq(g->p[j].view.member_cnt, 5);
  ck_assert_uint_ge(g->p[j].state_puts, 1); /* it got the group's state */
  mgroup_run(g, 300 * MS);
  finish(g, NULL, 1);
  free(g);
}
END_TEST

/* A partition: each side goes on in a view of its own; after the heal
   the sides merge, and the side merged in gets the other's state. */
START_TEST(test_membership_partition_and_heal) {
  mgroup_t *g = malloc(sizeof *g);
  mg_opts_t o = { .n = 5, .sim = net(seed_of(700, _i), 0.05), .state_len = 4096 };
  start(g, &o, "partition", o.sim.seed);
  converge(g, CONVERGE_NS);
  mgroup_run(g, 200 * MS);
  for (uint32_t i = 0; i < 2; i++) vsx_sim_side(g->sim, g->p[i].eid, 1);
  mgroup_run(g, CONVERGE_NS);
  /* Each side: one view holding exactly it. */
  ck_assert_uint_eq(g->p[0].view.member_cnt, 2);
  ck_assert_uint_eq(g->p[1].view.coord_eid, g->p[0].view.coord_eid);
  ck_assert_uint_eq(g->p[2].view.member_cnt, 3);
  ck_assert_uint_eq(g->p[4].view.coord_eid, g->p[2].view.coord_eid);
  ck_assert(!g->p[0].blocked && !g->p[3].blocked);
  vsx_sim_heal(g->sim);
  uint64_t t = mgroup_wait_converged(g, CONVERGE_NS);
  ck_assert_msg(t != UINT64_MAX, "seed %llu: the sides did not merge", (unsigned long long)g->seed);
  ck_assert_uint_eq(g->p[0].view.member_cnt, 5);
  mgroup_run(g, 300 * MS);
  finish(g, NULL, 1);
  free(g);
}
END_TEST

/* Asymmetric connectivity: a hears b but b does not hear a.  Safety
   holds throughout; when the link comes back, one view again. */
START_TEST(test_membership_asymmetric_link) {
  mgroup_t *g = malloc(sizeof *g);
  mg_opts_t o = { .n = 4, .sim = net(seed_of(800, _i), 0.02) };
  start(g, &o, "asymmetric", o.sim.seed);
  converge(g, CONVERGE_NS);
  mgroup_run(g, 200 * MS);
  vsx_sim_link(g->sim, g->p[1].eid, g->p[3].eid, 0);
  mgroup_run(g, 1500 * MS);
  assert_clean(g);
  vsx_sim_link(g->sim, g->p[1].eid, g->p[3].eid, 1);
  converge(g, CONVERGE_NS);
  mgroup_run(g, 300 * MS);
  finish(g, NULL, 1);
  free(g);
}
END_TEST

/* A long loss burst (95% for 1.5 s): views may split; afterwards they
   merge again and everything sent in the final view arrives. */
START_TEST(test_membership_loss_burst) {
  mgroup_t *g = malloc(sizeof *g);
  mg_opts_t o = { .n = 5, .sim = net(seed_of(900, _i), 0.02) };
  start(g, &o, "burst", o.sim.seed);
  converge(g, CONVERGE_NS);
  mgroup_run(g, 200 * MS);
  vsx_sim_set_loss(g->sim, 0.95, 0.02);
  mgroup_run(g, 1500 * MS);
  vsx_sim_set_loss(g->sim, 0.02, 0.02);
  converge(g, CONVERGE_NS);
  mgroup_run(g, 300 * MS);
  finish(g, NULL, 1);
  free(g);
}
END_TEST

/* Two groups with different names on one network (one port): each
   converges to its own members; the other's datagrams are dropped. */
START_TEST(test_membership_two_groups_one_port) {
  mgroup_t *g = malloc(sizeof *g);
  mg_opts_t o = { .n = 6, .groups = 2, .sim = net(seed_of(1000, _i), 0.05) };
  start(g, &o, "two-groups", o.sim.seed);
  converge(g, CONVERGE_NS);
  for (uint32_t i = 0; i < g->n; i++) {
    ck_assert_uint_eq(g->p[i].view.member_cnt, 3);
    for (uint32_t k = 0; k < g->p[i].view.member_cnt; k++)
      for (uint32_t j = 0; j < g->n; j++)
        if (g->p[j].eid == g->p[i].view.members[k]) ck_assert_uint_eq(g->p[j].grp, g->p[i].grp);
  }
  mgroup_run(g, 300 * MS);
  ck_assert_uint_gt(vsx_stack_stat(vsx_endpoint_stack(g->p[0].ep), "bottom", "drop_group"), 0);
  finish(g, NULL, 1);
  free(g);
}
END_TEST

/* A graceful leave changes the view without failure detection, and the
   leaver's casts are delivered by everyone. */
START_TEST(test_membership_leave) {
  mgroup_t *g = malloc(sizeof *g);
  mg_opts_t o = { .n = 4, .sim = net(seed_of(1100, _i), 0.05),
                  .params = MG_PARAMS_FAST ",suspect.timeout_ms=2000,suspect.grace_ms=2000" };
  start(g, &o, "leave", o.sim.seed);
  converge(g, CONVERGE_NS + 2 * S);
  mgroup_run(g, 200 * MS);
  uint32_t leaver = 2;
  uint64_t t0 = mgroup_now(g);
  uint32_t lrank = g->p[leaver].rank;
  ck_assert_int_eq(mgroup_leave(g, leaver), VSX_OK);
  ck_assert_int_eq(vsx_endpoint_cast(g->p[leaver].ep, VSX_SVC_FIFO, "x", 1), VSX_ERR_STATE);
  ck_assert_int_eq(vsx_endpoint_leave(g->p[leaver].ep), VSX_ERR_STATE);
  converge(g, 1500 * MS);
  ck_assert(g->p[leaver].exited);
  /* Well before the 2 s detection timeout: nobody waited for it. */
  ck_assert_msg(mgroup_now(g) - t0 < 1000 * MS, "seed %llu: the leave took %llu ms", (unsigned long long)g->seed,
                (unsigned long long)((mgroup_now(g) - t0) / MS));
  /* Everyone delivered every cast the leaver sent in its last view. */
  ck_assert_uint_gt(g->p[leaver].cast_k, 0);
  for (uint32_t i = 0; i < g->n; i++) {
    if (i == leaver) continue;
    ck_assert_uint_eq(g->p[i].view.member_cnt, 3);
    ck_assert_uint_eq(g->p[i].prev_view.ltime, g->p[leaver].view.ltime);
    ck_assert_msg(g->p[i].prev_cast_got[lrank] == g->p[leaver].cast_k, "seed %llu: %s got %u of the leaver's %u casts",
                  (unsigned long long)g->seed, g->p[i].name, g->p[i].prev_cast_got[lrank], g->p[leaver].cast_k);
  }
  mgroup_run(g, 300 * MS);
  finish(g, NULL, 1);
  free(g);
}
END_TEST

/* A paused process (SIGSTOP) is excluded, resumes, and rejoins. */
START_TEST(test_membership_pause_and_rejoin) {
  mgroup_t *g = malloc(sizeof *g);
  mg_opts_t o = { .n = 4, .sim = net(seed_of(1200, _i), 0.02), .state_len = 1024 };
  start(g, &o, "pause", o.sim.seed);
  converge(g, CONVERGE_NS);
  mgroup_run(g, 200 * MS);
  mgroup_pause(g, 1, 600 * MS);
  mgroup_run(g, 400 * MS);
  ck_assert_uint_eq(g->p[0].view.member_cnt, 3); /* excluded meanwhile */
  mgroup_run(g, 200 * MS);
  converge(g, CONVERGE_NS);
  ck_assert_uint_eq(g->p[1].view.member_cnt, 4);
  mgroup_run(g, 300 * MS);
  finish(g, NULL, 1);
  free(g);
}
END_TEST

/* State transfer: a large state (fragmented) reaches joiners before
   they see any message of the view; a source that crashes mid-transfer
   makes the next view try again. */
START_TEST(test_membership_state_transfer) {
  mgroup_t *g = malloc(sizeof *g);
  mg_opts_t o = { .n = 3, .sim = net(seed_of(1300, _i), 0.05), .state_len = 200 * 1024 };
  start(g, &o, "xfer", o.sim.seed);
  converge(g, CONVERGE_NS);
  mgroup_run(g, 200 * MS);
  int j = mgroup_spawn(g);
  converge(g, CONVERGE_NS);
  ck_assert_uint_ge(g->p[j].state_puts, 1);
  /* Now a joiner whose source dies while the state is on its way. */
  int k = mgroup_spawn(g);
  int crashed = 0;
  uint64_t until = mgroup_now(g) + 2 * S;
  while (!crashed && mgroup_step(g, until)) {
    vsx_endpoint_stats_t st;
    vsx_endpoint_get_stats(g->p[k].ep, &st);
    if (st.state_bytes_in > 0 && g->p[k].state_puts == 0) {
      for (uint32_t i = 0; i < g->n; i++) /* the source: the one that answered state_get for this view */
        if ((int)i != k && mgroup_alive(g, i) && g->p[i].state_gets && g->p[i].view.member_cnt == 4) {
          mgroup_crash(g, i);
          crashed = 1;
          break;
        }
    }
  }
  ck_assert_msg(crashed, "seed %llu: the source never crashed mid-transfer", (unsigned long long)g->seed);
  converge(g, CONVERGE_NS);
  ck_assert_uint_ge(g->p[k].state_puts, 1); /* the retry completed */
  mgroup_run(g, 300 * MS);
  finish(g, NULL, 1);
  free(g);
}
END_TEST

/* Primary-partition mode: only the majority side may send; the minority
   waits and says so; after the heal everyone is primary again. */
START_TEST(test_membership_primary_partition) {
  mgroup_t *g = malloc(sizeof *g);
  mg_opts_t o = { .n = 5, .sim = net(seed_of(1400, _i), 0.02), .primary = 1, .state_len = 512 };
  start(g, &o, "primary", o.sim.seed);
  converge(g, CONVERGE_NS);
  ck_assert(vsx_endpoint_primary(g->p[0].ep));
  ck_assert(g->p[0].view.flags & VSX_VIEW_PRIMARY);
  for (uint32_t i = 0; i < 2; i++) vsx_sim_side(g->sim, g->p[i].eid, 1);
  mgroup_run(g, CONVERGE_NS);
  ck_assert_uint_eq(g->p[0].view.member_cnt, 2);
  ck_assert(!vsx_endpoint_primary(g->p[0].ep));
  ck_assert(!(g->p[0].view.flags & VSX_VIEW_PRIMARY));
  ck_assert_int_eq(vsx_endpoint_cast(g->p[0].ep, VSX_SVC_FIFO, "x", 1), VSX_ERR_BLOCKED);
  ck_assert_msg(strstr(vsx_last_error(), "not primary") != NULL, "message: %s", vsx_last_error());
  ck_assert(vsx_endpoint_primary(g->p[3].ep));
  uint64_t minority_before = g->p[0].delivered;
  mgroup_run(g, 500 * MS);
  ck_assert_uint_eq(g->p[0].delivered, minority_before); /* nothing delivered off the majority */
  vsx_sim_heal(g->sim);
  converge(g, CONVERGE_NS);
  ck_assert(vsx_endpoint_primary(g->p[0].ep));
  mgroup_run(g, 300 * MS);
  finish(g, NULL, 1);
  free(g);
}
END_TEST

/* API misuse while a view changes: a clear refusal, never a silent drop. */
START_TEST(test_membership_blocked_refuses) {
  mgroup_t *g = malloc(sizeof *g);
  mg_opts_t o = { .n = 3, .sim = net(seed_of(1500, _i), 0) };
  start(g, &o, "refuse", o.sim.seed);
  converge(g, CONVERGE_NS);
  mgroup_crash(g, 2);
  ck_assert(step_until(g, any_blocked, S));
  for (uint32_t i = 0; i < 2; i++) {
    if (!g->p[i].blocked) continue;
    ck_assert_int_eq(vsx_endpoint_cast(g->p[i].ep, VSX_SVC_FIFO, "x", 1), VSX_ERR_BLOCKED);
    ck_assert_msg(strstr(vsx_last_error(), "wait for the view callback") != NULL, "message: %s", vsx_last_error());
    ck_assert_int_eq(vsx_endpoint_send(g->p[i].ep, 0, "x", 1), VSX_ERR_BLOCKED);
    ck_assert_int_eq(vsx_endpoint_can_send(g->p[i].ep), VSX_ERR_BLOCKED);
  }
  converge(g, CONVERGE_NS);
  ck_assert_int_eq(vsx_endpoint_can_send(g->p[0].ep), VSX_OK);
  finish(g, NULL, 1);
  free(g);
}
END_TEST

/* Old views are harmless: with delays of up to 40 ms, datagrams of ended
   views keep arriving after the view changes; they are dropped as stale
   and nothing of an old view reaches the application. */
START_TEST(test_membership_old_views_harmless) {
  mgroup_t *g = malloc(sizeof *g);
  mg_opts_t o = { .n = 4, .sim = net(seed_of(1600, _i), 0.05), .cast_p = 0.2 };
  o.sim.delay_max_ns = 40 * MS;
  o.params = MG_PARAMS_FAST ",suspect.timeout_ms=400";
  start(g, &o, "old-views", o.sim.seed);
  converge(g, CONVERGE_NS + S);
  mgroup_run(g, 200 * MS);
  uint64_t stale = 0;
  for (int k = 0; k < 3; k++) {
    mgroup_spawn(g);
    mgroup_run(g, 300 * MS);
    for (uint32_t i = 0; i < g->n; i++)
      if (mgroup_alive(g, i)) stale += vsx_stack_stat(vsx_endpoint_stack(g->p[i].ep), "bottom", "drop_stale");
  }
  ck_assert_uint_gt(stale, 0); /* the situation was really tested */
  converge(g, CONVERGE_NS + S);
  finish(g, NULL, 1);
  free(g);
}
END_TEST

/* Failure detection: within 1 s with the default parameters, and tuned
   down to tens of milliseconds. */
START_TEST(test_membership_detection_time) {
  static const struct { const char *params; uint64_t bound_ns; } cases[] = {
    { "inter.heal_ms=100", 1000 * MS },                                  /* defaults (merge quicker at start) */
    { "suspect.sweep_ms=5,suspect.timeout_ms=30,inter.heal_ms=20,inter.retry_ms=5,inter.timeout_ms=100", 60 * MS },
  };
  for (size_t c = 0; c < VSX_ARRAY_CNT(cases); c++) {
    mgroup_t *g = malloc(sizeof *g);
    mg_opts_t o = { .n = 4, .sim = net(seed_of(1700, _i) + c, 0), .params = cases[c].params };
    start(g, &o, c ? "detect-fast" : "detect-default", o.sim.seed);
    converge(g, 5 * S);
    mgroup_run(g, 200 * MS);
    uint64_t t0 = mgroup_now(g);
    mgroup_crash(g, 3);
    converge(g, 5 * S);
    uint64_t took = mgroup_now(g) - t0;
    ck_assert_msg(took <= cases[c].bound_ns, "seed %llu: the crash took %llu ms to a new view with '%s' (bound %llu ms)",
                  (unsigned long long)g->seed, (unsigned long long)(took / MS), cases[c].params,
                  (unsigned long long)(cases[c].bound_ns / MS));
    finish(g, NULL, 1);
    free(g);
  }
}
END_TEST

/* ---- random fault schedules ---------------------------------------------------------- */

/* Random faults (crashes, joins, pauses, partitions, heals, asymmetric
   cuts, loss bursts, leaves) for 3 s over 4-8 processes, traffic
   throughout; then everything heals: convergence within the bound, and
   every property.  The seed is the loop index. */
START_TEST(test_membership_random_faults) {
  static mgroup_t g;
  uint64_t seed = seed_of(1000000, _i);
  const char *every = getenv("VSX_CHECK_EVERY");
  int check = (uint64_t)_i % (uint64_t)(every ? atoi(every) > 0 ? atoi(every) : 1 : 25) == 0 || getenv("VSX_SEED");
  char why[2048];
  int ok = mgroup_random_run(&g, seed, check || getenv("VSX_TRACE_DIR") ? trace_base() : NULL,
                             getenv("VSX_TRACE_DIR") != NULL, CONVERGE_NS + 3 * S, why, sizeof why);
  ck_assert_msg(ok, "%s", why);
}
END_TEST

int main(void) {
  Suite *s = suite_create("membership");
  struct { const char *name; const TTest *test; int loops; } cases[] = {
    { "start", test_membership_start_together, 3 },
    { "crash", test_membership_crash_member, 3 },
    { "crash_coord", test_membership_crash_coordinator, 3 },
    { "crash_coord_flush", test_membership_crash_coordinator_during_flush, 3 },
    { "cascade", test_membership_cascading_crashes, 3 },
    { "join_flush", test_membership_join_during_view_change, 3 },
    { "partition", test_membership_partition_and_heal, 3 },
    { "asymmetric", test_membership_asymmetric_link, 3 },
    { "burst", test_membership_loss_burst, 3 },
    { "two_groups", test_membership_two_groups_one_port, 2 },
    { "leave", test_membership_leave, 3 },
    { "pause", test_membership_pause_and_rejoin, 3 },
    { "xfer", test_membership_state_transfer, 2 },
    { "primary", test_membership_primary_partition, 2 },
    { "refuse", test_membership_blocked_refuses, 1 },
    { "old_views", test_membership_old_views_harmless, 2 },
    { "detection", test_membership_detection_time, 1 },
    { "total_seq_crash", test_membership_total_sequencer_crash, 3 },
    { "safe_join", test_membership_safe_join_leave_crash, 3 },
    { "flow_churn", test_membership_flow_never_starves, 3 },
    { "random", test_membership_random_faults, -1 },
  };
  const char *sw = getenv("VSX_MBR_SWEEP") ? getenv("VSX_MBR_SWEEP") : getenv("VSX_SWEEP");
  int sweep = sw ? atoi(sw) : 1000;
  snprintf(tmp_trace_dir, sizeof tmp_trace_dir, "/tmp/vsx-mbr-%d-XXXXXX", (int)getpid());
  if (!mkdtemp(tmp_trace_dir)) tmp_trace_dir[0] = 0; /* then no traces (and no checker) */
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    TCase *tc = tcase_create(cases[i].name); /* CK_RUN_CASE=name runs one */
    tcase_set_timeout(tc, 600);
    int loops = getenv("VSX_SEED") ? 1 : cases[i].loops < 0 ? sweep : getenv("VSX_LOOPS") ? atoi(getenv("VSX_LOOPS")) : cases[i].loops;
    tcase_add_loop_test(tc, cases[i].test, 0, loops);
    suite_add_tcase(s, tc);
  }
  int rc = vsx_check_run(s);
  if (tmp_trace_dir[0] && rmdir(tmp_trace_dir) == 0) tmp_trace_dir[0] = 0; /* empty unless a run failed */
  if (tmp_trace_dir[0]) fprintf(stderr, "traces of failed runs kept in %s\n", tmp_trace_dir);
  return rc;
}
