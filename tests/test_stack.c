/* test_stack.c - stack composition, its errors, scheduling, alarms, flow
   and parameters.

   Goal: a spec builds exactly the stack it names or is refused with a
   message naming the layer and what is missing; events a handler emits
   run after it returns, in FIFO order, never by recursion; alarms fire
   when due; flow changes reach the owner.  Method: fake layers registered
   by the test, a stack whose sinks record what leaves it. */
#include <check.h>
#include "check_main.h"
#include <stdlib.h>
#include <string.h>
#include "vsx/stack.h"

/* ---- recording owner --------------------------------------------------- */

typedef struct rec {
  uint64_t now;
  int up_cnt, dn_cnt, flow_calls, last_flow;
  uint64_t up_tags[64], dn_tags[64];
  vsx_evpool_t *evp;
} rec_t;

static uint64_t rec_now(void *o) { return ((rec_t *)o)->now; }
static void rec_up(void *o, vsx_event_t *ev) { rec_t *r = o; if (r->up_cnt < 64) r->up_tags[r->up_cnt] = ev->u64a; r->up_cnt++; vsx_evpool_free(r->evp, ev); }
static void rec_dn(void *o, vsx_event_t *ev) { rec_t *r = o; if (r->dn_cnt < 64) r->dn_tags[r->dn_cnt] = ev->u64a; r->dn_cnt++; vsx_evpool_free(r->evp, ev); }
static void rec_flow(void *o, int blocked) { rec_t *r = o; r->flow_calls++; r->last_flow = blocked; }

/* ---- fake layers ----------------------------------------------------------- */

static int depth, depth_max;

/* t_wire: a bottom that provides everything and does nothing. */
static void wire_dnnm(vsx_layer_ctx_t *ctx, vsx_event_t *ev) { vsx_pass_up(ctx, ev); }
static const vsx_layer_ops_t t_wire = {
  .name = "t_wire", .provides = VSX_CAP_DATAGRAM | VSX_CAP_RELIABLE_CAST | VSX_CAP_RELIABLE_SEND | VSX_CAP_CAST_UNITS | VSX_CAP_STABILITY,
  .dnnm = wire_dnnm,
};

/* t_fan: each message going down becomes three (tags x*10+1..3), emitted
   from inside the handler: they must come out in order, after it. */
static void fan_dn(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  depth++;
  if (depth > depth_max) depth_max = depth;
  for (int i = 1; i <= 3; i++) {
    vsx_event_t *n = vsx_ev_alloc(ctx, VSX_EV_CAST);
    ck_assert_ptr_nonnull(n);
    n->u64a = ev->u64a * 10 + (uint64_t)i;
    vsx_pass_dn(ctx, n);
  }
  vsx_ev_free(ctx, ev);
  depth--;
}
static void fan_up(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  depth++;
  if (depth > depth_max) depth_max = depth;
  vsx_pass_up(ctx, ev);
  depth--;
}
static const vsx_layer_ops_t t_fan = { .name = "t_fan", .needs_below = VSX_CAP_DATAGRAM, .dn = fan_dn, .up = fan_up };

/* t_clock: reads its period from parameters and counts alarms. */
typedef struct clk { uint64_t period_ns; int fired; uint64_t fired_at[8]; } clk_t;
static const char *const clk_stats[] = { "fired" };
static int clock_init(vsx_layer_ctx_t *ctx) {
  clk_t *s = ctx->state;
  s->period_ns = vsx_param_u64(ctx, "period", 0);
  if (!s->period_ns) return vsx_fail(VSX_ERR_INVAL, "t_clock: period must be > 0");
  vsx_timer_set(ctx, vsx_now(ctx) + s->period_ns);
  return VSX_OK;
}
static void clock_timer(vsx_layer_ctx_t *ctx, uint64_t now) {
  clk_t *s = ctx->state;
  if (s->fired < 8) s->fired_at[s->fired] = now;
  s->fired++;
  ctx->stats[0]++;
  vsx_timer_set(ctx, now + s->period_ns);
}
static int clock_ctl(vsx_layer_ctx_t *ctx, const char *cmd) {
  vsx_flow_block(ctx, !strcmp(cmd, "block"));
  return VSX_OK;
}
static const vsx_layer_ops_t t_clock = {
  .name = "t_clock", .state_sz = sizeof(clk_t), .needs_below = VSX_CAP_DATAGRAM, .stat_names = clk_stats, .stat_cnt = 1,
  .init = clock_init, .timer = clock_timer, .ctl = clock_ctl,
};

static void register_fakes(void) {
  static int done;
  if (done) return;
  done = 1;
  ck_assert_int_eq(vsx_layer_register(&t_wire), VSX_OK);
  ck_assert_int_eq(vsx_layer_register(&t_fan), VSX_OK);
  ck_assert_int_eq(vsx_layer_register(&t_clock), VSX_OK);
}

/* ---- helpers ---------------------------------------------------------------- */

static vsx_view_t view3 = { .ltime = 1, .coord_eid = 11, .member_cnt = 3, .members = { 11, 12, 13 } };

static int build(const char *spec, const char *params, rec_t *r, vsx_bufpool_t **bp, vsx_stack_t **st) {
  register_fakes();
  vsx_bufpool_opts_t o = { .buf_cnt = 64, .buf_sz = 2048, .headroom = 256, .ext_cnt = 4, .ext_cap = 64 };
  ck_assert_int_eq(vsx_bufpool_create(&o, bp), VSX_OK);
  ck_assert_int_eq(vsx_evpool_create(64, 0, &r->evp), VSX_OK);
  r->now = 1000;
  vsx_stack_cfg_t c = { .spec = spec, .opt_params = params, .view = &view3, .rank = 0, .group_id = 7,
                        .pool = *bp, .evpool = r->evp, .owner = r, .now = rec_now, .sink_up = rec_up,
                        .sink_dn = rec_dn, .on_flow = rec_flow };
  return vsx_stack_create(&c, st);
}

static void teardown(rec_t *r, vsx_bufpool_t *bp, vsx_stack_t *st) {
  vsx_stack_destroy(st);
  ck_assert_uint_eq(vsx_evpool_free_cnt(r->evp), 64);
  vsx_evpool_destroy(r->evp);
  ck_assert_uint_eq(vsx_bufpool_free_cnt(bp), 64);
  vsx_bufpool_destroy(bp);
}

/* ---- composition errors ---------------------------------------------------------- */

START_TEST(test_stack_unknown_layer_is_named) {
  rec_t r = { 0 }; vsx_bufpool_t *bp; vsx_stack_t *st;
  ck_assert_int_eq(build("top:nosuch:bottom", NULL, &r, &bp, &st), VSX_ERR_NOTFOUND);
  ck_assert_ptr_nonnull(strstr(vsx_last_error(), "unknown layer 'nosuch'"));
  ck_assert_ptr_nonnull(strstr(vsx_last_error(), "mnak")); /* it lists the known ones */
  vsx_evpool_destroy(r.evp); vsx_bufpool_destroy(bp);
}
END_TEST

/* Each row: a spec whose placement is wrong, and the words the error
   must contain (the layer and what it lacks). */
static const struct { const char *spec, *words1, *words2; } misplaced[] = {
  { "top:mnak:bottom", "'mnak' needs above it", "stability" },
  { "top:stable:frag:pt2pt:mnak:bottom", "'stable' needs below it", "mnak units" },
  { "top:frag:stable:mnak:bottom", "'frag' needs below it", "reliable sends" },
  { "top:stable:pt2pt:mnak", "'mnak' needs below it", "datagrams" },
  { "frag:top:stable:pt2pt:mnak:bottom", "top", "first layer" },
};

START_TEST(test_stack_misplaced_layer_is_named) {
  rec_t r = { 0 }; vsx_bufpool_t *bp; vsx_stack_t *st;
  int err = build(misplaced[_i].spec, NULL, &r, &bp, &st);
  ck_assert_int_eq(err, VSX_ERR_PLACEMENT);
  ck_assert_msg(strstr(vsx_last_error(), misplaced[_i].words1) && strstr(vsx_last_error(), misplaced[_i].words2),
                "spec %s: message '%s'", misplaced[_i].spec, vsx_last_error());
  vsx_evpool_destroy(r.evp); vsx_bufpool_destroy(bp);
}
END_TEST

START_TEST(test_stack_malformed_spec_and_params) {
  rec_t r = { 0 }; vsx_bufpool_t *bp; vsx_stack_t *st;
  ck_assert_int_eq(build("top::bottom", NULL, &r, &bp, &st), VSX_ERR_INVAL);
  vsx_evpool_destroy(r.evp); vsx_bufpool_destroy(bp);
  ck_assert_int_eq(build("t_clock(period=5:t_wire", NULL, &r, &bp, &st), VSX_ERR_INVAL);
  vsx_evpool_destroy(r.evp); vsx_bufpool_destroy(bp);
  ck_assert_int_eq(build("t_clock:t_wire", NULL, &r, &bp, &st), VSX_ERR_INVAL); /* the layer's own check */
  ck_assert_ptr_nonnull(strstr(vsx_last_error(), "period"));
  vsx_evpool_destroy(r.evp); vsx_bufpool_destroy(bp);
  ck_assert_int_eq(build("top:frag:stable:pt2pt:mnak(window=1):bottom", NULL, &r, &bp, &st), VSX_ERR_INVAL);
  ck_assert_ptr_nonnull(strstr(vsx_last_error(), "window=1"));
  vsx_evpool_destroy(r.evp); vsx_bufpool_destroy(bp);
}
END_TEST

START_TEST(test_stack_builds_what_it_names) {
  rec_t r = { 0 }; vsx_bufpool_t *bp; vsx_stack_t *st;
  ck_assert_int_eq(build("top:chk_fifo:frag:stable:pt2pt:mnak:drop(loss=0.5):bottom", NULL, &r, &bp, &st), VSX_OK);
  ck_assert_uint_eq(vsx_stack_layer_cnt(st), 8);
  ck_assert_str_eq(vsx_stack_layer(st, 0)->ops->name, "top");
  ck_assert_str_eq(vsx_stack_layer(st, 7)->ops->name, "bottom");
  ck_assert_ptr_nonnull(vsx_stack_find(st, "drop"));
  ck_assert_int_eq(vsx_stack_ctl(st, "drop", "loss=2"), VSX_ERR_INVAL);
  ck_assert_int_eq(vsx_stack_ctl(st, "nosuch", "x"), VSX_ERR_NOTFOUND);
  ck_assert_int_eq(vsx_stack_ctl(st, "mnak", "x"), VSX_ERR_NOTSUP);
  ck_assert(vsx_stack_caps(st) & VSX_CAP_LARGE_MSG);
  teardown(&r, bp, st);
}
END_TEST

/* ---- scheduling ---------------------------------------------------------------------- */

START_TEST(test_stack_emitted_events_run_fifo_without_recursion) {
  rec_t r = { 0 }; vsx_bufpool_t *bp; vsx_stack_t *st;
  ck_assert_int_eq(build("t_fan:t_fan:t_wire", NULL, &r, &bp, &st), VSX_OK);
  depth = depth_max = 0;
  for (uint64_t tag = 1; tag <= 2; tag++) {
    vsx_event_t *ev = vsx_evpool_alloc(r.evp, VSX_EV_CAST, 0);
    ev->u64a = tag;
    vsx_stack_dn(st, ev);
  }
  /* two fans: each message becomes 9, in breadth-first FIFO order */
  ck_assert_int_eq(r.dn_cnt, 18);
  ck_assert_uint_eq(r.dn_tags[0], 111);
  ck_assert_uint_eq(r.dn_tags[1], 112);
  ck_assert_uint_eq(r.dn_tags[3], 121);
  ck_assert_uint_eq(r.dn_tags[8], 133);
  ck_assert_uint_eq(r.dn_tags[9], 211);
  ck_assert_int_eq(depth_max, 1); /* never a handler inside a handler */
  /* a non-message event going down is bounced up by the wire */
  vsx_event_t *ev = vsx_evpool_alloc(r.evp, VSX_EV_STABLE, 0);
  ev->u64a = 77;
  vsx_stack_dn(st, ev);
  ck_assert_int_eq(r.up_cnt, 1);
  ck_assert_uint_eq(r.up_tags[0], 77);
  teardown(&r, bp, st);
}
END_TEST

START_TEST(test_stack_alarms_fire_when_due) {
  rec_t r = { 0 }; vsx_bufpool_t *bp; vsx_stack_t *st;
  ck_assert_int_eq(build("t_clock:t_wire", "t_clock.period=100", &r, &bp, &st), VSX_OK);
  ck_assert_uint_eq(vsx_stack_next_alarm(st), 1100);
  r.now = 1099;
  vsx_stack_alarms(st);
  ck_assert_uint_eq(vsx_stack_stat(st, "t_clock", "fired"), 0);
  r.now = 1100;
  vsx_stack_alarms(st);
  ck_assert_uint_eq(vsx_stack_stat(st, "t_clock", "fired"), 1);
  ck_assert_uint_eq(vsx_stack_next_alarm(st), 1200);
  teardown(&r, bp, st);
  /* the spec's own arguments win over the params string */
  memset(&r, 0, sizeof r);
  ck_assert_int_eq(build("t_clock(period=7):t_wire", "t_clock.period=100", &r, &bp, &st), VSX_OK);
  ck_assert_uint_eq(vsx_stack_next_alarm(st), 1007);
  teardown(&r, bp, st);
}
END_TEST

START_TEST(test_stack_flow_changes_reach_owner) {
  rec_t r = { 0 }; vsx_bufpool_t *bp; vsx_stack_t *st;
  ck_assert_int_eq(build("t_clock(period=5):t_wire", NULL, &r, &bp, &st), VSX_OK);
  ck_assert(!vsx_stack_flow_blocked(st));
  vsx_stack_ctl(st, "t_clock", "block");
  ck_assert(vsx_stack_flow_blocked(st));
  ck_assert_int_eq(r.flow_calls, 1);
  ck_assert_int_eq(r.last_flow, 1);
  vsx_stack_ctl(st, "t_clock", "block"); /* no change, no call */
  ck_assert_int_eq(r.flow_calls, 1);
  vsx_stack_ctl(st, "t_clock", "unblock");
  ck_assert_int_eq(r.flow_calls, 2);
  ck_assert_int_eq(r.last_flow, 0);
  teardown(&r, bp, st);
}
END_TEST

START_TEST(test_stack_register_rejects_duplicates) {
  register_fakes();
  ck_assert_int_eq(vsx_layer_register(&t_wire), VSX_ERR_BUSY);
  ck_assert_int_eq(vsx_layer_register(NULL), VSX_ERR_INVAL);
  char names[512];
  vsx_layer_list(names, sizeof names);
  ck_assert_ptr_nonnull(strstr(names, "t_fan"));
}
END_TEST

int main(void) {
  Suite *s = suite_create("stack");
  TCase *tc = tcase_create("stack");
  tcase_add_test(tc, test_stack_unknown_layer_is_named);
  tcase_add_loop_test(tc, test_stack_misplaced_layer_is_named, 0, sizeof misplaced / sizeof misplaced[0]);
  tcase_add_test(tc, test_stack_malformed_spec_and_params);
  tcase_add_test(tc, test_stack_builds_what_it_names);
  tcase_add_test(tc, test_stack_emitted_events_run_fifo_without_recursion);
  tcase_add_test(tc, test_stack_alarms_fire_when_due);
  tcase_add_test(tc, test_stack_flow_changes_reach_owner);
  tcase_add_test(tc, test_stack_register_rejects_duplicates);
  suite_add_tcase(s, tc);
  return vsx_check_run(s);
}
