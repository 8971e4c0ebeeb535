/* vsync.c - the view-change flush: block the application, agree on
   exactly which casts of the ending view every survivor delivers, fetch
   the missing ones (Ensemble's Sync and Vsync, by count exchange).

   Header (4 bytes, every send; casts pass untouched): mbr_hdr_t
     kind u8   DATA (a send of the layers above), FLUSH, REPORT, SYNC, DONE
     cnt  u16  REPORT, SYNC: per-origin entries that follow
   Bodies (network order):
     FLUSH  attempt u32, failed u64, leaving u64
     REPORT attempt u32, flags u32 (NEEDS_STATE), failed u64, cnt x u32
            casts delivered per origin (mine: casts sent)
     SYNC   attempt u32, cnt x u32 agreed counts, cnt x u8 holders
     DONE   attempt u32
   All travel as reliable sends (pt2pt), coordinator <-> each survivor;
   the coordinator sends to itself too (pt2pt loops it back).

   Provides: the flush (VSX_EV_FLUSH down from intra starts it, FLUSH_OK
             up tells the coordinator's intra it is complete), and at every
             member VSX_EV_BLOCK up (the owner runs the application's
             block callback and answers BLOCK_OK), VSX_EV_FLUSH up (which
             flush I answer, what failed) and VSX_EV_SYNCED up (I delivered
             what it agreed on).
   Requires: reliable sends below, and mnak's flush events (FAIL,
             BLOCK_OK counts, SYNC) below that.

   One attempt, coordinator c (the lowest rank neither failed nor leaving,
   or if all are leaving the lowest not failed), failed set F:
    1. c sends FLUSH(a, F) to every survivor S = view - F.
    2. A survivor adds F to its failed set (only grows) and sends FAIL
       down: mnak freezes failed origins where delivery stands (all of
       them, at every attempt: a SYNC of an earlier attempt may have let
       them move).  It blocks
       the application (first attempt only), and BLOCK_OK goes down behind
       the FAIL: layers holding casts send them first, mnak stamps the
       final counts on the bounce.  It REPORTs them (and its failed set)
       to c.  A failed set that says more than F makes c start a new
       attempt with the union; one that names c excludes c.
    3. c takes, per origin, the maximum count and a survivor that has it
       (the origin itself when it survives: its count is what it sent),
       and sends SYNC to every survivor.
    4. A survivor passes SYNC down: mnak delivers exactly those counts,
       fetching missing casts from the named survivors (casts stay in
       mnak until stable, so they have them), then lets SYNC bounce up.
       It sends DONE; and passes SYNCED up.
    5. DONE from every survivor: FLUSH_OK(S) to intra, which installs
       the next view.
   Why it is right: a survivor never delivers a failed origin's cast past
   what it reported (frozen), nor a live origin's past what that origin
   sent (blocked, final), so the maxima are never below anyone's delivery
   (mnak asserts it); after SYNC every survivor has delivered exactly the
   maxima.  A new failure or a new coordinator is a new attempt; every
   message names its attempt and stale ones are dropped. */
#include "vsx/layer.h"
#include "mbr.h"

enum { KIND_FLUSH = 2, KIND_REPORT = 3, KIND_SYNC = 4, KIND_DONE = 5 };
enum { FLAG_NEEDS_STATE = 1 };

/* member-side phases */
enum { P_NONE, P_COUNT, P_REPORT, P_WAIT_SYNC, P_SYNC, P_SEND_DONE, P_DONE, P_CLOSED };

enum { ST_FLUSHES, ST_ATTEMPTS, ST_REPORTS, ST_SYNCS, ST_DONES, ST_STALE, ST_MALFORMED, ST_NO_EVENT,
       ST_RESTARTS, ST_CNT };
static const char *const stat_names[ST_CNT] = { "flushes_done", "attempts", "reports_sent", "syncs_recv", "dones_sent",
                                                "stale", "malformed", "no_event", "restarts" };

typedef struct vsync {
  uint64_t all;
  /* member side */
  uint64_t failed;         /* ranks failed in this view (only grows)     */
  uint64_t fail_told;      /* failed as last sent down in a FAIL          */
  uint32_t gen;            /* bumped with every FAIL; tags BLOCK_OK, SYNC */
  int phase;
  int32_t coord;           /* coordinator of the attempt I answer         */
  uint32_t attempt;
  int app_blocked;         /* a BLOCK_OK came from the owner              */
  int block_asked;         /* BLOCK went up, its BLOCK_OK has not come    */
  int count_out;           /* a BLOCK_OK tagged gen is on its way         */
  int tell_flush, tell_synced;
  int fail_down;           /* a FAIL is owed for the attempt I answer     */
  int needs_state;
  uint32_t cnt[VSX_MEMBERS_MAX];   /* my counts for the REPORT            */
  uint32_t sync_cnt[VSX_MEMBERS_MAX];
  uint8_t sync_from[VSX_MEMBERS_MAX];
  int sync_down;           /* the SYNC event is still to go down          */
  /* coordinator side */
  int c_active;            /* an attempt of mine is running               */
  int c_ok;                /* FLUSH_OK still to go up                     */
  uint32_t c_attempt;
  uint64_t c_failed, c_leavers, c_surv, c_reported, c_done, c_needs;
  uint64_t c_flush_todo, c_sync_todo; /* ranks still owed FLUSH, SYNC   */
  uint32_t c_max[VSX_MEMBERS_MAX];
  uint8_t c_holder[VSX_MEMBERS_MAX];
} vsync_t;

static void vsync_dump(vsx_layer_ctx_t *ctx, FILE *out) {
  vsync_t *s = ctx->state;
  fprintf(out, "    phase %d coord %d attempt %u failed %llx blocked %d gen %u%s\n", s->phase, s->coord, s->attempt,
          (unsigned long long)s->failed, s->app_blocked, s->gen, s->needs_state ? " needs-state" : "");
  if (s->c_active || s->c_ok)
    fprintf(out, "    coordinating attempt %u: failed %llx reported %llx done %llx\n", s->c_attempt,
            (unsigned long long)s->c_failed, (unsigned long long)s->c_reported, (unsigned long long)s->c_done);
}

static int vsync_init(vsx_layer_ctx_t *ctx) {
  vsync_t *s = ctx->state;
  s->all = mbr_all(ctx->member_cnt);
  s->coord = -1;
  s->needs_state = mbr_has(ctx->view->xfer_mask, ctx->rank);
  return VSX_OK;
}

static void retry_soon(vsx_layer_ctx_t *ctx) {
  ctx->stats[ST_NO_EVENT]++;
  vsx_timer_soon(ctx, vsx_now(ctx) + 1000000ull);
}

/* send_ctl sends a control message to rank r; 0 if memory is short. */
static int send_ctl(vsx_layer_ctx_t *ctx, uint32_t r, uint8_t kind, uint16_t cnt, const void *body, uint32_t len) {
  vsx_event_t *ev = mbr_msg(ctx, VSX_EV_SEND, (int32_t)r, kind, cnt, body, len);
  if (!ev) return 0;
  vsx_pass_dn(ctx, ev);
  return 1;
}

static int pass_new(vsx_layer_ctx_t *ctx, uint16_t type, int up, uint64_t a, uint64_t b) {
  vsx_event_t *ev = vsx_ev_alloc(ctx, type);
  if (!ev) return 0;
  ev->u64a = a;
  ev->u64b = b;
  if (up) vsx_pass_up(ctx, ev);
  else vsx_pass_dn(ctx, ev);
  return 1;
}

/* ---- coordinator ------------------------------------------------------------ */

static void start_attempt(vsx_layer_ctx_t *ctx, uint64_t failed, uint64_t leavers) {
  vsync_t *s = ctx->state;
  VSX_ASSERT(!mbr_has(failed, ctx->rank));
  failed = (failed | s->failed) & s->all;
  /* A new attempt always fails more members: the same set again could
     only make members count again after catching up to the last one. */
  if (s->c_attempt && failed == s->c_failed && (s->c_active || s->c_ok)) return;
  s->c_leavers |= leavers & s->all;
  s->c_active = 1;
  s->c_ok = 0;
  s->c_attempt++;
  s->c_failed = failed;
  s->c_surv = s->all & ~s->c_failed;
  s->c_reported = s->c_done = s->c_needs = s->c_sync_todo = 0;
  s->c_flush_todo = s->c_surv;
  memset(s->c_max, 0, sizeof s->c_max);
  memset(s->c_holder, 0, sizeof s->c_holder);
  ctx->stats[ST_ATTEMPTS]++;
  vsx_log(1, "vsync: rank %u starts flush attempt %u, failed %llx", ctx->rank, s->c_attempt,
          (unsigned long long)s->c_failed);
}

/* pump_coord sends what the coordinator still owes; stops at the first
   shortage (the timer retries). */
static int pump_coord(vsx_layer_ctx_t *ctx) {
  vsync_t *s = ctx->state;
  while (s->c_flush_todo) {
    uint32_t r = (uint32_t)mbr_lowest(s->c_flush_todo);
    uint8_t body[20];
    mbr_put32(body, s->c_attempt);
    mbr_put64(body + 4, s->c_failed);
    mbr_put64(body + 12, s->c_leavers);
    if (!send_ctl(ctx, r, KIND_FLUSH, 0, body, sizeof body)) return 0;
    s->c_flush_todo &= ~(1ull << r);
  }
  while (s->c_sync_todo) {
    uint32_t r = (uint32_t)mbr_lowest(s->c_sync_todo), n = ctx->member_cnt;
    uint8_t body[4 + 5 * VSX_MEMBERS_MAX];
    mbr_put32(body, s->c_attempt);
    for (uint32_t o = 0; o < n; o++) {
      mbr_put32(body + 4 + 4 * o, s->c_max[o]);
      body[4 + 4 * n + o] = s->c_holder[o];
    }
    if (!send_ctl(ctx, r, KIND_SYNC, (uint16_t)n, body, 4 + 5 * n)) return 0;
    s->c_sync_todo &= ~(1ull << r);
  }
  if (s->c_ok) {
    if (!pass_new(ctx, VSX_EV_FLUSH_OK, 1, s->c_surv, s->c_needs)) return 0;
    s->c_ok = 0;
    ctx->stats[ST_FLUSHES]++;
  }
  return 1;
}

/* ---- member ------------------------------------------------------------------ */

/* pump_member moves the member side along, in order: FAIL goes down
   before any BLOCK_OK that counts for it. */
static int pump_member(vsx_layer_ctx_t *ctx) {
  vsync_t *s = ctx->state;
  if (s->fail_down || s->failed != s->fail_told) {
    if (!pass_new(ctx, VSX_EV_FAIL, 0, s->failed, 0)) return 0;
    s->fail_down = 0;
    s->fail_told = s->failed;
    s->gen++;
    s->count_out = 0; /* BLOCK_OKs still out counted before this FAIL */
  }
  if (s->tell_flush) {
    if (!pass_new(ctx, VSX_EV_FLUSH, 1, (uint64_t)s->coord, s->failed)) return 0;
    s->tell_flush = 0;
  }
  if (s->phase == P_COUNT && !s->count_out) {
    if (!s->app_blocked) {
      if (!s->block_asked) {
        if (!pass_new(ctx, VSX_EV_BLOCK, 1, 0, 0)) return 0;
        s->block_asked = 1;
      }
    } else {
      if (!pass_new(ctx, VSX_EV_BLOCK_OK, 0, 0, s->gen)) return 0;
      s->count_out = 1;
    }
  }
  if (s->phase == P_REPORT) {
    uint32_t n = ctx->member_cnt;
    uint8_t body[16 + 4 * VSX_MEMBERS_MAX];
    mbr_put32(body, s->attempt);
    mbr_put32(body + 4, s->needs_state ? FLAG_NEEDS_STATE : 0);
    mbr_put64(body + 8, s->failed);
    for (uint32_t o = 0; o < n; o++) mbr_put32(body + 16 + 4 * o, s->cnt[o]);
    if (!send_ctl(ctx, (uint32_t)s->coord, KIND_REPORT, (uint16_t)n, body, 16 + 4 * n)) return 0;
    s->phase = P_WAIT_SYNC;
    ctx->stats[ST_REPORTS]++;
  }
  if (s->phase == P_SYNC && s->sync_down) {
    vsx_event_t *ev = vsx_ev_alloc(ctx, VSX_EV_SYNC);
    if (!ev) return 0;
    for (uint32_t o = 0; o < ctx->member_cnt; o++) {
      ev->x.vec.lo[o] = s->sync_cnt[o];
      ev->x.vec.hi[o] = s->sync_from[o];
    }
    ev->u64a = s->attempt;
    ev->u64b = s->gen;
    s->sync_down = 0;
    vsx_pass_dn(ctx, ev);
  }
  if (s->phase == P_SEND_DONE) {
    uint8_t body[4];
    mbr_put32(body, s->attempt);
    if (!send_ctl(ctx, (uint32_t)s->coord, KIND_DONE, 0, body, sizeof body)) return 0;
    s->phase = P_DONE;
    s->tell_synced = 1;
    ctx->stats[ST_DONES]++;
  }
  if (s->tell_synced) {
    if (!pass_new(ctx, VSX_EV_SYNCED, 1, (uint64_t)s->coord, 0)) return 0;
    s->tell_synced = 0;
  }
  return 1;
}

static void pump(vsx_layer_ctx_t *ctx) {
  if (!pump_member(ctx) || !pump_coord(ctx)) retry_soon(ctx);
}

/* exclude: a flush or a report says I failed.  Intra takes it from the
   FLUSH event (my rank in its failed set). */
static void exclude(vsx_layer_ctx_t *ctx, uint64_t failed) {
  vsync_t *s = ctx->state;
  s->failed |= failed & s->all;
  s->phase = P_CLOSED;
  s->c_active = 0;
  s->c_flush_todo = s->c_sync_todo = 0;
  s->tell_flush = 1;
}

/* on_flush: FLUSH(a, F) from coordinator c. */
static void on_flush(vsx_layer_ctx_t *ctx, uint32_t c, const uint8_t *b, uint32_t len) {
  vsync_t *s = ctx->state;
  if (len < 20) { ctx->stats[ST_MALFORMED]++; return; }
  uint32_t a = mbr_get32(b);
  uint64_t f = mbr_get64(b + 4) & s->all, l = mbr_get64(b + 12) & s->all;
  /* c must be the lowest survivor that is not leaving (the lowest
     survivor if all are leaving). */
  int want = mbr_lowest(s->all & ~f & ~l) >= 0 ? mbr_lowest(s->all & ~f & ~l) : mbr_lowest(s->all & ~f);
  if (want != (int)c) { ctx->stats[ST_MALFORMED]++; return; }
  if (mbr_has(f, ctx->rank)) { exclude(ctx, f); return; }
  s->failed |= f;
  s->coord = (int32_t)c;
  s->attempt = a;
  s->phase = P_COUNT;
  s->fail_down = 1;  /* every attempt freezes the failed origins again */
  s->count_out = 0; /* count afresh for this attempt */
  s->tell_flush = 1;
  s->sync_down = 0;
}

/* on_report: REPORT from survivor r (coordinator side). */
static void on_report(vsx_layer_ctx_t *ctx, uint32_t r, uint16_t cnt, const uint8_t *b, uint32_t len) {
  vsync_t *s = ctx->state;
  uint32_t n = ctx->member_cnt;
  if (cnt != n || len < 16 + 4 * n) { ctx->stats[ST_MALFORMED]++; return; }
  if (!s->c_active || mbr_get32(b) != s->c_attempt || !mbr_has(s->c_surv, r) || mbr_has(s->c_reported, r)) {
    ctx->stats[ST_STALE]++;
    return;
  }
  uint64_t rf = mbr_get64(b + 8) & s->all;
  if (rf & ~s->c_failed) { /* r knows of more failures: everyone must count again */
    if (mbr_has(rf, ctx->rank)) { exclude(ctx, rf); return; }
    ctx->stats[ST_RESTARTS]++;
    start_attempt(ctx, s->c_failed | rf, 0);
    return;
  }
  for (uint32_t o = 0; o < n; o++) {
    uint32_t c = mbr_get32(b + 16 + 4 * o);
    if (c > s->c_max[o] || !mbr_has(s->c_reported, s->c_holder[o])) { s->c_max[o] = c; s->c_holder[o] = (uint8_t)r; }
  }
  if (mbr_get32(b + 4) & FLAG_NEEDS_STATE) s->c_needs |= 1ull << r;
  s->c_reported |= 1ull << r;
  if (s->c_reported != s->c_surv) return;
  for (uint32_t o = 0; o < n; o++)
    if (mbr_has(s->c_surv, o)) s->c_holder[o] = (uint8_t)o; /* a live origin has all it sent */
  s->c_sync_todo = s->c_surv;
}

/* on_sync: SYNC from my coordinator: the agreed counts. */
static void on_sync(vsx_layer_ctx_t *ctx, uint32_t c, uint16_t cnt, const uint8_t *b, uint32_t len) {
  vsync_t *s = ctx->state;
  uint32_t n = ctx->member_cnt;
  if (cnt != n || len < 4 + 5 * n) { ctx->stats[ST_MALFORMED]++; return; }
  if ((int32_t)c != s->coord || mbr_get32(b) != s->attempt || s->phase != P_WAIT_SYNC) { ctx->stats[ST_STALE]++; return; }
  for (uint32_t o = 0; o < n; o++) {
    s->sync_cnt[o] = mbr_get32(b + 4 + 4 * o);
    s->sync_from[o] = b[4 + 4 * n + o] < n ? b[4 + 4 * n + o] : (uint8_t)o;
  }
  s->phase = P_SYNC;
  s->sync_down = 1;
  ctx->stats[ST_SYNCS]++;
}

static void on_done(vsx_layer_ctx_t *ctx, uint32_t r, const uint8_t *b, uint32_t len) {
  vsync_t *s = ctx->state;
  if (len < 4) { ctx->stats[ST_MALFORMED]++; return; }
  if (!s->c_active || mbr_get32(b) != s->c_attempt || !mbr_has(s->c_surv, r) || s->c_reported != s->c_surv) {
    ctx->stats[ST_STALE]++;
    return;
  }
  s->c_done |= 1ull << r;
  if (s->c_done != s->c_surv) return;
  VSX_ASSERT(s->c_reported == s->c_surv);
  s->c_active = 0;
  s->c_ok = 1;
}

/* UP SEND: my control messages (from members not failed); DATA passes.
   Casts pass untouched. */
static void vsync_up(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  vsync_t *s = ctx->state;
  if (ev->type == VSX_EV_CAST) { vsx_pass_up(ctx, ev); return; }
  mbr_hdr_t h;
  uint32_t r = (uint32_t)ev->peer;
  if (r >= ctx->member_cnt || vsx_hdr_pop(ev, &h, sizeof h)) { ctx->stats[ST_MALFORMED]++; vsx_ev_free(ctx, ev); return; }
  if (h.kind == MBR_DATA) { vsx_pass_up(ctx, ev); return; } /* DATA: a send of the layers above */
  uint8_t body[16 + 5 * VSX_MEMBERS_MAX];
  uint32_t len = (uint32_t)vsx_iovl_gather(&ev->iovl, 0, body, sizeof body);
  uint16_t cnt = be16toh(h.cnt);
  vsx_ev_free(ctx, ev);
  if (s->phase == P_CLOSED) return;
  if (mbr_has(s->failed, r)) { ctx->stats[ST_STALE]++; return; } /* nothing from the failed */
  switch (h.kind) {
  case KIND_FLUSH: on_flush(ctx, r, body, len); break;        /* FLUSH: count and report */
  case KIND_REPORT: on_report(ctx, r, cnt, body, len); break; /* REPORT: collect (coordinator) */
  case KIND_SYNC: on_sync(ctx, r, cnt, body, len); break;     /* SYNC: catch up */
  case KIND_DONE: on_done(ctx, r, body, len); break;          /* DONE: collect (coordinator) */
  default: ctx->stats[ST_MALFORMED]++; return;
  }
  pump(ctx);
}

/* DN SEND: tag it DATA.  Casts pass untouched. */
static void vsync_dn(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  if (ev->type == VSX_EV_CAST) { vsx_pass_dn(ctx, ev); return; }
  if (!mbr_push_data(ctx, ev)) { ctx->stats[ST_NO_EVENT]++; vsx_ev_free(ctx, ev); return; }
  vsx_pass_dn(ctx, ev);
}

/* UP BLOCK_OK (bounced, counts stamped by mnak): report them if they
   were taken after my latest FAIL.  UP SYNC (bounced): mnak delivered
   exactly the agreed counts: DONE.  Both end here. */
static void vsync_upnm(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  vsync_t *s = ctx->state;
  switch (ev->type) {
  case VSX_EV_BLOCK_OK: /* BLOCK_OK: my counts */
    if (ev->u64b == s->gen && s->phase == P_COUNT) {
      for (uint32_t o = 0; o < ctx->member_cnt; o++) s->cnt[o] = (uint32_t)ev->x.vec.lo[o];
      s->phase = P_REPORT;
    } else if (ev->u64b != s->gen) {
      ctx->stats[ST_STALE]++;
    }
    vsx_ev_free(ctx, ev);
    pump(ctx);
    return;
  case VSX_EV_SYNC: /* SYNC: caught up */
    if (ev->u64a == s->attempt && ev->u64b == s->gen && s->phase == P_SYNC && !s->sync_down) s->phase = P_SEND_DONE;
    else ctx->stats[ST_STALE]++;
    vsx_ev_free(ctx, ev);
    pump(ctx);
    return;
  }
  vsx_pass_up(ctx, ev);
}

/* DN FLUSH (intra, coordinator): start an attempt.  DN BLOCK_OK (owner):
   the application is blocked; it counts for the current attempt.  DN
   XFER_DONE: I hold the state.  DN CLOSE: the view has ended. */
static void vsync_dnnm(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  vsync_t *s = ctx->state;
  switch (ev->type) {
  case VSX_EV_FLUSH: /* FLUSH: coordinate an attempt with these failed */
    if (s->phase != P_CLOSED && !mbr_has(ev->u64a, ctx->rank)) start_attempt(ctx, ev->u64a, ev->u64b);
    vsx_ev_free(ctx, ev);
    pump(ctx);
    return;
  case VSX_EV_BLOCK_OK: /* BLOCK_OK: tag it; it counts if we are counting */
    s->app_blocked = 1;
    s->block_asked = 0;
    ev->u64b = s->gen;
    if (s->phase == P_COUNT) s->count_out = 1;
    vsx_pass_dn(ctx, ev);
    pump(ctx);
    return;
  case VSX_EV_XFER_DONE: /* XFER_DONE: later flushes report I need nothing */
    s->needs_state = 0;
    vsx_ev_free(ctx, ev);
    return;
  case VSX_EV_CLOSE: /* CLOSE: stop */
    s->phase = P_CLOSED;
    s->c_active = 0;
    break;
  }
  vsx_pass_dn(ctx, ev);
}

static void vsync_timer(vsx_layer_ctx_t *ctx, uint64_t now) {
  (void)now;
  pump(ctx);
}

const vsx_layer_ops_t vsx_layer_vsync = {
  .name = "vsync", .purpose = "view-change flush: block, agree on the casts delivered, fetch the missing",
  .state_sz = sizeof(vsync_t), .needs_below = VSX_CAP_RELIABLE_SEND | VSX_CAP_RELIABLE_CAST,
  .stat_names = stat_names, .stat_cnt = ST_CNT,
  .init = vsync_init, .up = vsync_up, .dn = vsync_dn, .upnm = vsync_upnm, .dnnm = vsync_dnnm,
  .timer = vsync_timer, .dump = vsync_dump,
};
