/* stable.c - stability detection by gossiping acknowledgement vectors.

   Header (4 bytes, on casts only):
     kind u8   DATA (a reliable cast of the layers above), UNREL (an
               unreliable one), GOSSIP (my row: u32 per origin follows)
     flags u8  GOSSIP: BEHIND when the sender sees something unstable
     cnt  u16  GOSSIP: number of u32 counts that follow

   Provides: VSX_EV_STABLE events going down (mnak frees and NAKs by them;
             bottom bounces them up for everyone else): per origin, lo =
             casts that every member has received, hi = casts that some
             member has received (so everyone learns what exists).
   Requires: reliable casts counted in mnak units directly below
             (VSX_CAP_CAST_UNITS: no frag in between).

   Each member counts, per origin, the reliable casts that pass up through
   it (its own come back through mnak's local delivery), and every sweep
   casts its row unreliably when it changed or while something is not yet
   stable.  Under load it does not wait for the sweep: once some origin's
   count grew by `eager` casts since its last gossip, it gossips as soon
   as the event queue drains (at most one gossip per `eager_us`), so a
   sender's window (mnak's, which stability opens) is released a round
   trip after it was used, not a sweep later; an idle group gossips only
   on the sweep.  Rows only grow, so merging is a max and a lost gossip costs
   one sweep.  A member that still sees something unstable says so in its
   gossip, and everyone answers with a gossip of their own next sweep:
   otherwise a member whose copy of some row is old would wait forever for
   members that, from where they stand, have nothing left to say.

   Dn FAIL (a view change is under way): the rows of failed members no
   longer count, so what every survivor has becomes stable and senders'
   windows open again (a full window would otherwise stall the flush). */
#include "vsx/layer.h"
#include <arpa/inet.h>
#include <string.h>

enum { KIND_DATA = 1, KIND_UNREL = 2, KIND_GOSSIP = 3 };

typedef struct stable_hdr { uint8_t kind, flags; uint16_t cnt; } __attribute__((packed)) stable_hdr_t;
#define GOSSIP_BEHIND 1 /* flags: the sender still sees something unstable: answer with your rows */
_Static_assert(sizeof(stable_hdr_t) == 4, "stable header is 4 bytes");

enum { ST_GOSSIP_SENT, ST_GOSSIP_RECV, ST_STABLE_EVENTS, ST_MALFORMED, ST_NO_EVENT, ST_CNT };
static const char *const stat_names[ST_CNT] = { "gossip_sent", "gossip_recv", "stable_events", "malformed", "no_event" };

typedef struct stable {
  uint64_t sweep_ns;
  uint32_t eager;              /* gossip early after this many new casts  */
  uint64_t eager_ns;           /* ... but at most once per this           */
  uint64_t last_gossip_ns;
  int eager_due;               /* an early gossip is wanted               */
  uint32_t told[VSX_MEMBERS_MAX]; /* my row as my last gossip said        */
  int changed;                 /* my row or a merge changed something    */
  int asked;                   /* someone behind wants our rows          */
  uint64_t failed;             /* rows that no longer count (Dn FAIL)    */
  uint32_t row[VSX_MEMBERS_MAX][VSX_MEMBERS_MAX]; /* row[r][o]: casts of o r has */
  uint32_t lo[VSX_MEMBERS_MAX], hi[VSX_MEMBERS_MAX]; /* last told below  */
} stable_t;

static void stable_dump(vsx_layer_ctx_t *ctx, FILE *out) {
  stable_t *s = ctx->state;
  for (uint32_t o = 0; o < ctx->member_cnt; o++) fprintf(out, "    origin %u: stable %u of %u\n", o, s->lo[o], s->hi[o]);
}

static int stable_init(vsx_layer_ctx_t *ctx) {
  stable_t *s = ctx->state;
  s->sweep_ns = vsx_param_u64(ctx, "sweep_ms", 10) * 1000000ull;
  if (!s->sweep_ns) return vsx_fail(VSX_ERR_INVAL, "stable: sweep_ms must be > 0");
  s->eager = (uint32_t)vsx_param_u64(ctx, "eager", 64);
  s->eager_ns = vsx_param_u64(ctx, "eager_us", 200) * 1000ull;
  if (!s->eager) return vsx_fail(VSX_ERR_INVAL, "stable: eager must be > 0 (casts between early gossips)");
  vsx_timer_set(ctx, vsx_now(ctx) + s->sweep_ns);
  return VSX_OK;
}

/* emit computes the column minimum and maximum and, if they moved, sends
   a STABLE event down. */
static void emit(vsx_layer_ctx_t *ctx) {
  stable_t *s = ctx->state;
  uint32_t lo[VSX_MEMBERS_MAX], hi[VSX_MEMBERS_MAX];
  int moved = 0;
  for (uint32_t o = 0; o < ctx->member_cnt; o++) {
    lo[o] = UINT32_MAX;
    hi[o] = 0;
    for (uint32_t r = 0; r < ctx->member_cnt; r++) {
      if (r != ctx->rank && ((s->failed >> r) & 1)) continue;
      if (s->row[r][o] < lo[o]) lo[o] = s->row[r][o];
      if (s->row[r][o] > hi[o]) hi[o] = s->row[r][o];
    }
    VSX_ASSERT(lo[o] <= hi[o]);
    moved |= lo[o] != s->lo[o] || hi[o] != s->hi[o];
  }
  if (!moved) return;
  vsx_event_t *ev = vsx_ev_alloc(ctx, VSX_EV_STABLE);
  if (!ev) { ctx->stats[ST_NO_EVENT]++; return; } /* next sweep tries again */
  for (uint32_t o = 0; o < ctx->member_cnt; o++) {
    VSX_ASSERT(lo[o] >= s->lo[o]); /* stability never goes back */
    s->lo[o] = lo[o];
    s->hi[o] = hi[o];
    ev->x.vec.lo[o] = lo[o];
    ev->x.vec.hi[o] = hi[o];
  }
  ctx->stats[ST_STABLE_EVENTS]++;
  vsx_pass_dn(ctx, ev);
}

static void send_gossip(vsx_layer_ctx_t *ctx, int behind) {
  stable_t *s = ctx->state;
  uint32_t n = ctx->member_cnt;
  vsx_event_t *ev = vsx_ev_alloc(ctx, VSX_EV_CAST);
  if (!ev) { ctx->stats[ST_NO_EVENT]++; return; }
  uint8_t *at = vsx_hdr_push(ctx, ev, (uint32_t)(sizeof(stable_hdr_t) + 4 * n));
  if (!at) { vsx_ev_free(ctx, ev); return; }
  stable_hdr_t h = { .kind = KIND_GOSSIP, .flags = behind ? GOSSIP_BEHIND : 0, .cnt = htons((uint16_t)n) };
  memcpy(at, &h, sizeof h);
  for (uint32_t o = 0; o < n; o++) {
    uint32_t v = htonl(s->row[ctx->rank][o]);
    memcpy(at + sizeof h + 4 * o, &v, 4);
    s->told[o] = s->row[ctx->rank][o];
  }
  s->last_gossip_ns = vsx_now(ctx);
  s->eager_due = 0;
  ev->flags = VSX_EVF_UNREL;
  ctx->stats[ST_GOSSIP_SENT]++;
  vsx_pass_dn(ctx, ev);
}

/* UP CAST: count reliable data, merge gossip.  Sends carry no header. */
static void stable_up(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  stable_t *s = ctx->state;
  if (ev->type == VSX_EV_SEND) { vsx_pass_up(ctx, ev); return; }
  stable_hdr_t h;
  uint32_t r = (uint32_t)ev->peer;
  if (vsx_hdr_pop(ev, &h, sizeof h) || r >= ctx->member_cnt) goto malformed;
  switch (h.kind) {
  case KIND_DATA: /* DATA: one more cast of origin r has reached me */
    if (ev->flags & VSX_EVF_UNREL) goto malformed;
    s->row[ctx->rank][r]++;
    s->changed = 1;
    if (s->row[ctx->rank][r] - s->told[r] >= s->eager && !s->eager_due && ctx->member_cnt > 1) {
      s->eager_due = 1; /* a sender may be waiting for its window: tell soon */
      uint64_t at = s->last_gossip_ns + s->eager_ns, now = vsx_now(ctx);
      if (at <= now) vsx_idle_request(ctx);
      else vsx_timer_soon(ctx, at);
    }
    vsx_pass_up(ctx, ev);
    return;
  case KIND_UNREL: /* UNREL: not counted */
    vsx_pass_up(ctx, ev);
    return;
  case KIND_GOSSIP: { /* GOSSIP: r's row; merge by max */
    uint32_t n = ntohs(h.cnt), v[VSX_MEMBERS_MAX];
    if (n != ctx->member_cnt || r == ctx->rank || vsx_iovl_pop(&ev->iovl, v, 4 * n)) goto malformed;
    for (uint32_t o = 0; o < n; o++) {
      uint32_t c = ntohl(v[o]);
      if (c > s->row[r][o]) { s->row[r][o] = c; s->changed = 1; }
    }
    if (h.flags & GOSSIP_BEHIND) s->asked = 1;
    ctx->stats[ST_GOSSIP_RECV]++;
    vsx_ev_free(ctx, ev);
    emit(ctx);
    return;
  }
  }
malformed:
  ctx->stats[ST_MALFORMED]++;
  vsx_ev_free(ctx, ev);
}

/* DN CAST: tag it so receivers know whether to count it. */
static void stable_dn(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  if (ev->type == VSX_EV_SEND) { vsx_pass_dn(ctx, ev); return; }
  stable_hdr_t *at = vsx_hdr_push(ctx, ev, sizeof(stable_hdr_t));
  if (!at) { ctx->stats[ST_NO_EVENT]++; vsx_ev_free(ctx, ev); return; }
  stable_hdr_t h = { .kind = (ev->flags & VSX_EVF_UNREL) ? KIND_UNREL : KIND_DATA };
  memcpy(at, &h, sizeof h);
  vsx_pass_dn(ctx, ev);
}

/* DN FAIL: failed members' rows stop counting; recompute.  Others pass. */
static void stable_dnnm(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  stable_t *s = ctx->state;
  if (ev->type == VSX_EV_FAIL && (ev->u64a & ~s->failed)) {
    s->failed |= ev->u64a;
    emit(ctx);
  }
  vsx_pass_dn(ctx, ev);
}

/* sees_unstable: something some member has is not stable yet, or I
   have more than the others know of. */
static int sees_unstable(const vsx_layer_ctx_t *ctx) {
  const stable_t *s = ctx->state;
  for (uint32_t o = 0; o < ctx->member_cnt; o++)
    if (s->lo[o] != s->hi[o] || s->row[ctx->rank][o] != s->hi[o]) return 1;
  return 0;
}

/* gossip_now: my row (saying whether I still see something unstable),
   then what the merge may have made stable. */
static void gossip_now(vsx_layer_ctx_t *ctx) {
  stable_t *s = ctx->state;
  int unstable = sees_unstable(ctx);
  s->changed = 0;
  s->asked = 0;
  if (ctx->member_cnt > 1) send_gossip(ctx, unstable);
  emit(ctx);
}

/* IDLE: the queue drained and an early gossip is due. */
static void stable_idle(vsx_layer_ctx_t *ctx) {
  stable_t *s = ctx->state;
  if (s->eager_due) gossip_now(ctx);
}

/* TIMER: an early gossip that waited for eager_us; else the sweep:
   gossip my row if it changed, something is unstable, or someone asked. */
static void stable_timer(vsx_layer_ctx_t *ctx, uint64_t now) {
  stable_t *s = ctx->state;
  if (s->eager_due && now >= s->last_gossip_ns + s->eager_ns) { /* early: not the sweep */
    gossip_now(ctx);
    vsx_timer_soon(ctx, s->last_gossip_ns + s->sweep_ns);
    return;
  }
  if (s->changed || s->asked || sees_unstable(ctx)) gossip_now(ctx);
  vsx_timer_set(ctx, now + s->sweep_ns);
}

const vsx_layer_ops_t vsx_layer_stable = {
  .name = "stable", .purpose = "stability detection (gossiped acknowledgement vectors)",
  .state_sz = sizeof(stable_t), .provides = VSX_CAP_STABILITY,
  .needs_below = VSX_CAP_RELIABLE_CAST | VSX_CAP_CAST_UNITS,
  .stat_names = stat_names, .stat_cnt = ST_CNT,
  .init = stable_init, .up = stable_up, .dn = stable_dn, .dnnm = stable_dnnm, .timer = stable_timer, .dump = stable_dump,
  .idle = stable_idle,
};
