/* mnak.c - reliable FIFO multicast with negative acknowledgements.

   Header (12 bytes, every message that passes):
     kind   u8   DATA (a reliable cast), UNREL (an unreliable cast),
                 PASS (a send from above, untouched), NAK (a request)
     origin u16  the rank whose cast this is (DATA), or the NAK's target
     a, b   u32  DATA: seqno; NAK: first and last missing seqno

   Provides: reliable FIFO casts, delivered in each sender's order with no
             gap and no duplicate, including to the sender itself (local
             delivery happens when a cast is sent); casts are counted in
             mnak units above it (VSX_CAP_CAST_UNITS).
   Requires: datagrams below; stability above (VSX_EV_STABLE going down
             tells it which casts every member has, so it can free them,
             and which casts exist, so it can ask for lost tails).

   Every cast stays in its origin's window at every member until it is
   stable, so any member can answer a NAK.  A receiver that sees a gap asks
   the origin (rate-limited per origin, repeated from the timer while the
   gap lasts).  The sender's window bounds how far it may run ahead of
   stability; a full window parks casts in a FIFO and blocks the
   application (back-pressure), never drops them.

   The view-change flush (docs/membership.md) uses four events:
   - Dn FAIL (one per flush attempt): the casts of failed origins are
     frozen where delivery stands (cap = next): until the attempt agrees
     how many of them survivors deliver, none more is delivered here.
   - Dn BLOCK_OK: the application is blocked.  Parked casts are sent
     first, then BLOCK_OK goes on; reliable casts after it are refused
     (cast_after_block), so my count is final.  On its bounce up it is
     stamped with x.vec.lo[r] = casts of r delivered here (mine: sent).
   - Dn SYNC: the agreed counts.  Every origin is capped at exactly
     x.vec.lo[r] (never below what was delivered: asserted), missing casts
     are asked from rank x.vec.hi[r] (a survivor that has them), and the
     event is held until every origin is delivered up to its cap; then it
     goes on and bounces up to vsync. */
#include "vsx/layer.h"
#include "evq.h"
#include <arpa/inet.h>
#include <string.h>

enum { KIND_DATA = 1, KIND_UNREL = 2, KIND_PASS = 3, KIND_NAK = 4 };

typedef struct mnak_hdr { uint8_t kind, rsvd; uint16_t origin; uint32_t a, b; } __attribute__((packed)) mnak_hdr_t;
_Static_assert(sizeof(mnak_hdr_t) == 12, "mnak header is 12 bytes");

enum { ST_CASTS, ST_DELIVERED, ST_DUPS, ST_OUT_OF_WINDOW, ST_NAKS_SENT, ST_NAKS_RECV, ST_RETRANS,
       ST_PARKED, ST_MALFORMED, ST_NO_EVENT, ST_CAST_AFTER_BLOCK, ST_SYNCS, ST_CNT };
static const char *const stat_names[ST_CNT] = {
  "casts", "delivered", "duplicates", "out_of_window", "naks_sent", "naks_recv", "retransmitted",
  "parked", "malformed", "no_event", "cast_after_block", "syncs" };
_Static_assert(ST_CNT <= VSX_LAYER_STATS_MAX, "mnak: too many counters");

typedef struct origin {
  vsx_window_t win;   /* casts of this origin, from stable up          */
  uint32_t next;      /* me: next seqno to send; others: next to deliver */
  uint32_t known;     /* seqnos below this are known to exist            */
  uint32_t stable;    /* seqnos below this every member has              */
  uint32_t cap;       /* deliver only seqnos below this (flush)          */
  uint32_t nak_to;    /* rank asked for missing casts: the origin, or
                         after a SYNC a survivor that has them          */
  uint64_t nak_ns;    /* when we last asked this origin                  */
} origin_t;

typedef struct mnak {
  uint32_t window;     /* casts a sender may have unstable               */
  uint64_t nak_gap_ns; /* minimum time between NAKs to one origin        */
  uint32_t nak_burst;  /* seqnos retransmitted per NAK                   */
  vsx_evq_t parked;    /* my casts waiting for window space or an event  */
  int blocking;        /* BLOCK_OK arrived: no new reliable casts        */
  vsx_evq_t block_oks; /* BLOCK_OKs held until parked is empty           */
  vsx_event_t *sync;   /* SYNC held until every origin reaches its cap   */
  uint64_t failed;     /* origins frozen by FAIL                         */
  origin_t o[VSX_MEMBERS_MAX];
} mnak_t;

static void encode(void *at, uint8_t kind, uint32_t origin, uint32_t a, uint32_t b) {
  mnak_hdr_t h = { .kind = kind, .origin = htons((uint16_t)origin), .a = htonl(a), .b = htonl(b) };
  memcpy(at, &h, sizeof h);
}

static void mnak_dump(vsx_layer_ctx_t *ctx, FILE *out) {
  mnak_t *s = ctx->state;
  fprintf(out, "    parked %u%s%s failed %llx\n", s->parked.cnt, s->blocking ? " blocking" : "", s->sync ? " syncing" : "",
          (unsigned long long)s->failed);
  for (uint32_t r = 0; r < ctx->member_cnt; r++)
    fprintf(out, "    origin %u: next %u known %u stable %u cap %u nak_to %u\n", r, s->o[r].next, s->o[r].known,
            s->o[r].stable, s->o[r].cap, s->o[r].nak_to);
}

static int mnak_init(vsx_layer_ctx_t *ctx) {
  mnak_t *s = ctx->state;
  s->window = (uint32_t)vsx_param_u64(ctx, "window", 512);
  s->nak_gap_ns = vsx_param_u64(ctx, "nak_ms", 5) * 1000000ull;
  s->nak_burst = (uint32_t)vsx_param_u64(ctx, "nak_burst", 128);
  if (s->window < 2 || s->window > (1u << 20)) return vsx_fail(VSX_ERR_INVAL, "mnak: window=%u outside [2, 2^20]", s->window);
  if (!s->nak_burst) return vsx_fail(VSX_ERR_INVAL, "mnak: nak_burst must be > 0");
  for (uint32_t r = 0; r < ctx->member_cnt; r++) {
    s->o[r].cap = UINT32_MAX;
    s->o[r].nak_to = r;
    /* Receivers may learn stability later than the sender does, so their
       windows are twice the sender's. */
    if (vsx_window_init(&s->o[r].win, r == ctx->rank ? s->window : 2 * s->window))
      return vsx_fail(VSX_ERR_NOMEM, "mnak: cannot allocate windows of %u casts", s->window);
  }
  return VSX_OK;
}

static void mnak_fini(vsx_layer_ctx_t *ctx) {
  mnak_t *s = ctx->state;
  vsx_evq_free_all(ctx, &s->parked);
  vsx_evq_free_all(ctx, &s->block_oks);
  if (s->sync) vsx_ev_free(ctx, s->sync);
  s->sync = NULL;
  for (uint32_t r = 0; r < ctx->member_cnt; r++) vsx_window_fini(&s->o[r].win);
}

/* send_cast assigns the next seqno to ev, keeps it for retransmission,
   delivers a copy locally and sends it.  Returns 0 (ev left untouched) if
   the window is full or a record or buffer is missing. */
static int send_cast(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  mnak_t *s = ctx->state;
  origin_t *me = &s->o[ctx->rank];
  if (me->next - me->stable >= s->window) return 0;
  vsx_event_t *local = vsx_ev_clone(ctx, ev);
  if (!local) { ctx->stats[ST_NO_EVENT]++; return 0; }
  void *at = vsx_hdr_push(ctx, ev, sizeof(mnak_hdr_t));
  if (!at) { vsx_ev_free(ctx, local); return 0; }
  encode(at, KIND_DATA, ctx->rank, me->next, 0);
  if (vsx_window_put(&me->win, me->next, &ev->iovl)) {
    vsx_hdr_pop(ev, NULL, sizeof(mnak_hdr_t));
    vsx_ev_free(ctx, local);
    return 0;
  }
  me->next++;
  me->known = me->next;
  local->type = VSX_EV_CAST;
  local->peer = (int32_t)ctx->rank;
  local->flags |= VSX_EVF_LOCAL;
  ctx->stats[ST_CASTS]++;
  vsx_pass_up(ctx, local);
  vsx_pass_dn(ctx, ev);
  return 1;
}

/* drain_parked sends parked casts while the window allows, and tells the
   stack whether the application must wait. */
static void drain_parked(vsx_layer_ctx_t *ctx) {
  mnak_t *s = ctx->state;
  vsx_event_t *ev;
  while ((ev = vsx_evq_pop(&s->parked))) {
    if (!send_cast(ctx, ev)) { vsx_evq_unpop(&s->parked, ev); break; }
  }
  origin_t *me = &s->o[ctx->rank];
  vsx_flow_block(ctx, s->parked.cnt > 0 || me->next - me->stable >= s->window);
  if (s->parked.cnt) vsx_timer_soon(ctx, vsx_now(ctx) + s->nak_gap_ns);
  while (!s->parked.cnt && (ev = vsx_evq_pop(&s->block_oks))) vsx_pass_dn(ctx, ev); /* my count is final */
}

/* check_sync lets a held SYNC go on once every origin is delivered up to
   its cap: this member has delivered exactly what the flush agreed on. */
static void check_sync(vsx_layer_ctx_t *ctx) {
  mnak_t *s = ctx->state;
  if (!s->sync) return;
  for (uint32_t r = 0; r < ctx->member_cnt; r++)
    if (r != ctx->rank && s->o[r].next != s->o[r].cap) return;
  vsx_pass_dn(ctx, s->sync);
  s->sync = NULL;
}

/* deliver_ready passes up, in order, every stored cast of origin r that
   follows what was delivered. */
static void deliver_ready(vsx_layer_ctx_t *ctx, uint32_t r) {
  mnak_t *s = ctx->state;
  origin_t *o = &s->o[r];
  vsx_iovl_t *l;
  while (o->next < o->cap && (l = vsx_window_get(&o->win, o->next))) {
    vsx_event_t *ev = vsx_ev_alloc(ctx, VSX_EV_CAST);
    if (!ev || vsx_iovl_copy(&ev->iovl, l)) {
      if (ev) vsx_ev_free(ctx, ev);
      ctx->stats[ST_NO_EVENT]++;
      vsx_timer_soon(ctx, vsx_now(ctx) + s->nak_gap_ns); /* retry when records are back */
      return;
    }
    vsx_hdr_pop(ev, NULL, sizeof(mnak_hdr_t));
    ev->peer = (int32_t)r;
    o->next++;
    ctx->stats[ST_DELIVERED]++;
    vsx_pass_up(ctx, ev);
  }
}

/* send_naks asks origin r for the first holes between what was delivered
   and what is known to exist, at most once per nak_gap. */
static void send_naks(vsx_layer_ctx_t *ctx, uint32_t r, uint64_t now) {
  mnak_t *s = ctx->state;
  origin_t *o = &s->o[r];
  uint32_t want = o->known < o->cap ? o->known : o->cap; /* never ask past a flush's cap */
  if (o->next >= want || o->nak_to == ctx->rank) return;
  vsx_timer_soon(ctx, now + s->nak_gap_ns); /* keep asking while the gap lasts */
  if (o->nak_ns && now - o->nak_ns < s->nak_gap_ns) return;
  o->nak_ns = now;
  uint32_t lo = o->next, holes = 0;
  while (lo < want && holes < 4) {
    uint32_t hi = lo;
    while (hi + 1 < want && hi + 1 - lo < s->nak_burst && !vsx_window_has(&o->win, hi + 1)) hi++;
    vsx_event_t *nak = vsx_ev_alloc(ctx, VSX_EV_SEND);
    if (!nak) { ctx->stats[ST_NO_EVENT]++; return; }
    void *at = vsx_hdr_push(ctx, nak, sizeof(mnak_hdr_t));
    if (!at) { vsx_ev_free(ctx, nak); return; }
    encode(at, KIND_NAK, r, lo, hi);
    nak->peer = (int32_t)o->nak_to;
    nak->flags = VSX_EVF_UNREL;
    ctx->stats[ST_NAKS_SENT]++;
    vsx_pass_dn(ctx, nak);
    holes++;
    lo = hi + 1;
    while (lo < want && vsx_window_has(&o->win, lo)) lo++;
  }
}

/* answer_nak retransmits, point-to-point to the asker, what we hold of
   origin r's casts in [lo, hi]. */
static void answer_nak(vsx_layer_ctx_t *ctx, uint32_t asker, uint32_t r, uint32_t lo, uint32_t hi) {
  mnak_t *s = ctx->state;
  if (hi - lo >= s->nak_burst) hi = lo + s->nak_burst - 1;
  for (uint32_t seq = lo; seq <= hi && seq >= lo; seq++) {
    vsx_iovl_t *l = vsx_window_get(&s->o[r].win, seq);
    if (!l) continue;
    vsx_event_t *ev = vsx_ev_alloc(ctx, VSX_EV_SEND);
    if (!ev) { ctx->stats[ST_NO_EVENT]++; return; }
    if (vsx_iovl_copy(&ev->iovl, l)) { vsx_ev_free(ctx, ev); return; }
    ev->peer = (int32_t)asker;
    ev->flags = VSX_EVF_UNREL;
    ctx->stats[ST_RETRANS]++;
    vsx_pass_dn(ctx, ev);
  }
}

/* recv_data stores a reliable cast (header still on) and delivers what is
   now in order.  The common in-order case passes ev itself up. */
static void recv_data(vsx_layer_ctx_t *ctx, vsx_event_t *ev, uint32_t r, uint32_t seq) {
  mnak_t *s = ctx->state;
  origin_t *o = &s->o[r];
  if (seq < o->next || vsx_window_has(&o->win, seq)) { ctx->stats[ST_DUPS]++; vsx_ev_free(ctx, ev); return; }
  if (!vsx_window_fits(&o->win, seq)) { ctx->stats[ST_OUT_OF_WINDOW]++; vsx_ev_free(ctx, ev); return; }
  if (vsx_window_put(&o->win, seq, &ev->iovl)) { ctx->stats[ST_NO_EVENT]++; vsx_ev_free(ctx, ev); return; }
  if (seq + 1 > o->known) o->known = seq + 1;
  if (seq == o->next && seq < o->cap) {
    vsx_hdr_pop(ev, NULL, sizeof(mnak_hdr_t));
    ev->type = VSX_EV_CAST;
    ev->peer = (int32_t)r;
    ev->flags &= (uint16_t)~VSX_EVF_UNREL;
    o->next++;
    ctx->stats[ST_DELIVERED]++;
    vsx_pass_up(ctx, ev);
  } else {
    vsx_ev_free(ctx, ev);
  }
  deliver_ready(ctx, r);
  send_naks(ctx, r, vsx_now(ctx));
  check_sync(ctx);
}

/* UP CAST/SEND: dispatch on the header kind. */
static void mnak_up(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  mnak_hdr_t h;
  if (vsx_iovl_peek(&ev->iovl, &h, sizeof h)) { ctx->stats[ST_MALFORMED]++; vsx_ev_free(ctx, ev); return; }
  uint32_t r = ntohs(h.origin), a = ntohl(h.a), b = ntohl(h.b);
  switch (h.kind) {
  case KIND_DATA: /* DATA: a reliable cast, first copy or a retransmission */
    if (r >= ctx->member_cnt || r == ctx->rank) break;
    recv_data(ctx, ev, r, a);
    return;
  case KIND_UNREL: /* UNREL: unreliable cast, passed up as it came */
    if (ev->type != VSX_EV_CAST) break;
    vsx_hdr_pop(ev, NULL, sizeof h);
    ev->flags |= VSX_EVF_UNREL;
    vsx_pass_up(ctx, ev);
    return;
  case KIND_PASS: /* PASS: a send of the layers above */
    if (ev->type != VSX_EV_SEND) break;
    vsx_hdr_pop(ev, NULL, sizeof h);
    vsx_pass_up(ctx, ev);
    return;
  case KIND_NAK: /* NAK: someone misses casts of origin r */
    if (r >= ctx->member_cnt || b < a) break;
    ctx->stats[ST_NAKS_RECV]++;
    answer_nak(ctx, (uint32_t)ev->peer, r, a, b);
    vsx_ev_free(ctx, ev);
    return;
  }
  ctx->stats[ST_MALFORMED]++;
  vsx_ev_free(ctx, ev);
}

/* DN CAST/SEND: reliable casts are numbered (or parked); unreliable casts
   and sends get a header and go. */
static void mnak_dn(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  mnak_t *s = ctx->state;
  if (ev->type == VSX_EV_CAST && !(ev->flags & VSX_EVF_UNREL)) {
    if (s->blocking) { /* after BLOCK_OK my count is final: a bug above */
      ctx->stats[ST_CAST_AFTER_BLOCK]++;
      vsx_log(0, "mnak: rank %u: reliable cast after BLOCK_OK dropped (a layer above casts while blocked)", ctx->rank);
      vsx_ev_free(ctx, ev);
      return;
    }
    if (s->parked.cnt || !send_cast(ctx, ev)) {
      ctx->stats[ST_PARKED]++;
      vsx_evq_push(&s->parked, ev);
      drain_parked(ctx);
    }
    return;
  }
  void *at = vsx_hdr_push(ctx, ev, sizeof(mnak_hdr_t));
  if (!at) { ctx->stats[ST_NO_EVENT]++; vsx_ev_free(ctx, ev); return; } /* the layer above retransmits */
  encode(at, ev->type == VSX_EV_CAST ? KIND_UNREL : KIND_PASS, ctx->rank, 0, 0);
  vsx_pass_dn(ctx, ev);
}

/* sync_caps applies a SYNC: every origin capped at exactly the agreed
   count, missing casts asked from the survivor named for it. */
static void sync_caps(vsx_layer_ctx_t *ctx, const vsx_event_t *ev) {
  mnak_t *s = ctx->state;
  for (uint32_t r = 0; r < ctx->member_cnt; r++) {
    origin_t *o = &s->o[r];
    uint64_t cap = ev->x.vec.lo[r], from = ev->x.vec.hi[r];
    if (r == ctx->rank) { /* my count was final when I reported it */
      VSX_ASSERT(cap == o->next);
      continue;
    }
    /* Virtual synchrony rests on this: nobody delivered more than the
       flush agreed on (frozen origins stopped where they stood). */
    VSX_ASSERT(cap >= o->next);
    VSX_ASSERT(cap < UINT32_MAX);
    o->cap = (uint32_t)cap;
    o->nak_to = from < ctx->member_cnt && from != ctx->rank ? (uint32_t)from : r;
    o->nak_ns = 0;
    if (o->cap > o->known) o->known = o->cap;
  }
}

/* DN STABLE: free what every member has, learn what exists, ask for it.
   DN FAIL: freeze the failed origins.  DN BLOCK_OK: held until my parked
   casts are out.  DN SYNC: cap, fetch, hold until caught up. */
static void mnak_dnnm(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  mnak_t *s = ctx->state;
  uint64_t now;
  switch (ev->type) {
  case VSX_EV_STABLE: /* STABLE: release, learn tails, NAK */
    now = vsx_now(ctx);
    for (uint32_t r = 0; r < ctx->member_cnt; r++) {
      origin_t *o = &s->o[r];
      uint32_t lo = (uint32_t)ev->x.vec.lo[r], hi = (uint32_t)ev->x.vec.hi[r];
      if (lo > o->next) lo = o->next; /* never free what we did not deliver */
      if (lo > o->stable) { o->stable = lo; vsx_window_release(&o->win, lo); }
      if (r != ctx->rank && hi > o->known) o->known = hi;
      if (r != ctx->rank) send_naks(ctx, r, now);
    }
    drain_parked(ctx);
    break;
  case VSX_EV_FAIL: /* FAIL: a new flush attempt: freeze every failed origin where it stands */
    /* All of them, not only the new ones: an earlier attempt's SYNC may
       have raised their caps, and this attempt's counts must be final. */
    for (uint32_t r = 0; r < ctx->member_cnt; r++) {
      if (!((ev->u64a >> r) & 1) || r == ctx->rank) continue;
      if (s->o[r].cap > s->o[r].next) s->o[r].cap = s->o[r].next;
    }
    s->failed |= ev->u64a;
    if (s->sync) { vsx_pass_dn(ctx, s->sync); s->sync = NULL; } /* that attempt is over: vsync drops it */
    break;
  case VSX_EV_BLOCK_OK: /* BLOCK_OK: my parked casts go first */
    s->blocking = 1;
    if (s->parked.cnt) { vsx_evq_push(&s->block_oks, ev); return; }
    break;
  case VSX_EV_SYNC: /* SYNC: cap every origin, fetch what is missing, hold */
    if (s->sync) vsx_pass_dn(ctx, s->sync); /* superseded */
    sync_caps(ctx, ev);
    s->sync = ev;
    ctx->stats[ST_SYNCS]++;
    now = vsx_now(ctx);
    for (uint32_t r = 0; r < ctx->member_cnt; r++)
      if (r != ctx->rank) { deliver_ready(ctx, r); send_naks(ctx, r, now); }
    check_sync(ctx);
    return;
  }
  vsx_pass_dn(ctx, ev);
}

/* UP BLOCK_OK (bounced): stamp the counts vsync reports. */
static void mnak_upnm(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  mnak_t *s = ctx->state;
  if (ev->type == VSX_EV_BLOCK_OK) {
    for (uint32_t r = 0; r < ctx->member_cnt; r++) ev->x.vec.lo[r] = s->o[r].next;
  }
  vsx_pass_up(ctx, ev);
}

/* TIMER: retry parked casts and stalled deliveries, repeat NAKs. */
static void mnak_timer(vsx_layer_ctx_t *ctx, uint64_t now) {
  drain_parked(ctx);
  for (uint32_t r = 0; r < ctx->member_cnt; r++) {
    if (r == ctx->rank) continue;
    deliver_ready(ctx, r);
    send_naks(ctx, r, now);
  }
  check_sync(ctx);
}

const vsx_layer_ops_t vsx_layer_mnak = {
  .name = "mnak", .purpose = "reliable FIFO multicast (negative acknowledgements)",
  .state_sz = sizeof(mnak_t),
  .provides = VSX_CAP_RELIABLE_CAST | VSX_CAP_CAST_UNITS, .needs_below = VSX_CAP_DATAGRAM,
  .needs_above = VSX_CAP_STABILITY,
  .stat_names = stat_names, .stat_cnt = ST_CNT,
  .init = mnak_init, .fini = mnak_fini, .up = mnak_up, .dn = mnak_dn, .upnm = mnak_upnm, .dnnm = mnak_dnnm,
  .timer = mnak_timer, .dump = mnak_dump,
};
