/* seqbb.c - total order and safe delivery by a broadcast-broadcast
   sequencer: every sender casts its data once, the view's coordinator
   (rank 0, the sequencer) casts only the order.

   Header (8 bytes, every cast; sends pass untouched):
     kind  u8   FIFO  a fifo cast: passed up on arrival
                TOTAL a total cast, SAFE a safe cast: data, delivered at the
                      position the sequencer gives it
                ORDER the sequencer's order (reliable, from rank 0 only)
                ACK   a member's progress (reliable, rate-limited)
                UNREL an unreliable cast of the layers above: passed up
     flags u8   0 (reserved)
     cnt   u16  ORDER: runs that follow; ACK: per-origin counts that follow
     seq   u32  TOTAL/SAFE: the origin's own count of its total and safe
                casts in this view, from 0; ORDER: the low 32 bits of the
                first position it assigns (a check)
   ORDER body: cnt runs { origin u16, len u16, first u32 }: the next len
     positions go to casts first .. first+len-1 of origin.  Positions
     continue from one ORDER to the next (they are reliable and FIFO), so
     a burst of any length from one origin costs 8 bytes of order.
   ACK body: ready u64 (the sender holds the data and the order of every
     position below it), then cnt u32: per origin, the total and safe
     casts the sender has delivered (what sender windows open on).

   Provides: total order (VSX_CAP_TOTAL_ORDER): every member delivers the
             total and safe casts of the view in one and the same order,
             each origin's in the order it cast them, and a safe cast
             only once every member holds it and its position (stable:
             every member's ACK says ready > its position).  Fifo casts
             pass straight up: they never wait for total ones, so a fifo
             cast may overtake an earlier total cast of the same sender
             (FIFO holds within fifo casts and within total+safe casts).
   Requires: reliable FIFO casts below (mnak, with its local delivery of
             my own casts).  Place it right above frag, so that large
             messages are ordered whole and travel once:
             "top:seqbb:frag:stable:pt2pt:mnak:bottom".  It clears "casts
             in mnak units": it holds, reorders and consumes casts.

   Data path.  A sender numbers its total/safe cast and casts it; it comes
   back to its own seqbb through mnak's local delivery like anyone else's.
   Every member keeps received total/safe data per origin, in arrival
   (= the origin's) order.  The sequencer also appends each arrival's
   origin to its pending list, and casts the pending list as runs in
   ORDER messages: when the stack's queue drains, at most one batch per
   order_us, so under load one ORDER covers many casts and when idle it
   adds no latency.  A member learns positions only from ORDER, and
   delivers position p when it has the order and the data of everything up
   to p (and, for a safe cast, when p is stable).  Nothing else ever
   delivers a total or safe cast: there is no "deterministic order" for
   casts whose position a member never learned.

   Acknowledgements.  Each member casts ACK(ready, delivered per origin)
   after it made progress: within ack_us when someone may be waiting on
   it (it became ready past a safe cast, or delivered half a window of
   some origin's casts since its last ACK), else within ack_lazy_us.
   stable = min over members of ready.  ACKs are reliable casts: every
   progress is reported exactly once and eventually arrives, so nobody
   needs to ask again, and an idle group sends nothing.  (Unreliable ACKs
   with periodic repeats would save mnak some buffering, but frag keeps
   one reassembly slot per origin for reliable and unreliable casts
   alike, so an unreliable cast arriving in the middle of a fragmented
   reliable one breaks it; see docs/total-order.md.)  Counts only grow:
   merging is a max.

   Bounds (all sized at init, nothing allocated afterwards):
   - window: once a sender has `window` total/safe casts, or
     `window_bufs` buffers of them, or `window_ext` of them long enough
     to need an iovec extension array (more than VSX_IOVL_INLINE pieces;
     the pool has few), not yet delivered by every member (as their ACKs
     say), the application is blocked (vsx_flow_block) before its next
     cast.  Casts already on their way (queued from inside a callback)
     still go, up to the rings' size, twice the window; beyond that they
     are parked.  Nothing is dropped.  Hence every member holds at most
     2*window casts per origin and members*2*window learned but
     undelivered positions; the rings below are that big.
   - ORDER messages hold at most what fits one datagram.

   View change (docs/total-order.md).  Membership's flush (vsync, mnak)
   gives this layer three moments:
   - Dn FAIL: the failed are no longer waited for (windows, stability).
   - Dn BLOCK_OK: my parked casts go first; the sequencer casts the order
     of everything it received and then CLOSE, its last reliable cast;
     then BLOCK_OK goes on and nobody casts ORDER or ACK again.
   - Up SYNC (the attempt's own, bounced by mnak once every survivor holds
     the same casts): the final delivery, the same at every survivor:
     every learned position whose data is here, in position order; then,
     only if I hold CLOSE (so I know every position the sequencer ever
     gave, and nobody anywhere delivered the rest), the casts it never
     ordered, origin by origin in rank order.  Without CLOSE they are
     discarded: the order may have been fixed where I cannot see it
     (the strong form of property 8).  Nothing is delivered after that.
   Without a flush (a fixed view, or a member left alone) fini discards
   what was not delivered. */
#include "vsx/layer.h"
#include "evq.h"
#include <arpa/inet.h>
#include <endian.h>
#include <stdlib.h>
#include <string.h>

enum { KIND_FIFO = 1, KIND_TOTAL = 2, KIND_SAFE = 3, KIND_ORDER = 4, KIND_ACK = 5, KIND_UNREL = 6, KIND_CLOSE = 7 };

typedef struct seqbb_hdr { uint8_t kind, flags; uint16_t cnt; uint32_t seq; } __attribute__((packed)) seqbb_hdr_t;
typedef struct seqbb_run { uint16_t origin, len; uint32_t first; } __attribute__((packed)) seqbb_run_t;
_Static_assert(sizeof(seqbb_hdr_t) == 8, "seqbb header is 8 bytes");
_Static_assert(sizeof(seqbb_run_t) == 8, "an ORDER run is 8 bytes");
_Static_assert(VSX_MEMBERS_MAX <= 256, "origins are stored in one byte per position");

#define RUNS_MAX 2048         /* runs one received ORDER may carry (validation scratch) */
#define HDR_BELOW_SLACK 64    /* bytes left for the headers of the layers between us and bottom */
#define RETRY_NS 200000ull    /* retry after the event or buffer pool ran dry */

enum { ST_CASTS, ST_DELIVERED, ST_SAFE_DELIVERED, ST_ORDERS_SENT, ST_ORDERED, ST_ACKS_SENT, ST_POS_LEARNED,
       ST_POS_READY, ST_POS_STABLE, ST_PARKED, ST_MALFORMED, ST_NO_EVENT, ST_FLUSH_DELIVERED, ST_LEFTOVERS,
       ST_DISCARDED, ST_UNSENT, ST_CNT };
static const char *const stat_names[ST_CNT] = {
  "casts", "delivered", "safe_delivered", "orders_sent", "ordered", "acks_sent", "pos_learned",
  "pos_ready", "pos_stable", "parked", "malformed", "no_event", "flush_delivered", "leftovers",
  "discarded", "unsent" };
_Static_assert(ST_CNT <= VSX_LAYER_STATS_MAX, "seqbb stats fit the context");

typedef struct origin {
  vsx_iovl_t *slot;   /* cap lists: its total/safe casts held, at seq & mask */
  uint8_t *safe;      /* cap flags: the cast in that slot is safe            */
  uint32_t recv;      /* its total/safe casts received (data)                */
  uint32_t ordered;   /* ... whose position I learned                        */
  uint32_t ready;     /* ... at positions below ready_pos                     */
  uint32_t dlv;       /* ... delivered; slots [dlv, recv) are held           */
  uint32_t dlv_acked; /* ... delivered as my last ACK said                   */
  uint32_t assigned;  /* sequencer: its casts given a position so far        */
  uint64_t ack_ready; /* its ready position, as its ACKs said (not mine)     */
  uint32_t ack_dlv;   /* my casts it delivered, as its ACKs said             */
} origin_t;

typedef struct seqbb {
  /* parameters */
  uint32_t window, window_bufs;  /* per sender: casts, buffers not yet delivered everywhere */
  uint32_t window_ext;           /* ... and casts of them that need an extension array     */
  uint32_t cap, mask;            /* per-origin ring: power of two >= window                */
  uint64_t ord_cap, ord_mask;    /* position rings: power of two >= members * cap          */
  uint64_t order_gap_ns, ack_gap_ns, ack_lazy_ns;
  uint32_t runs_max;             /* runs per ORDER we send (one datagram)                   */
  /* sender */
  uint32_t sent, done;           /* my total/safe casts sent; delivered by every member     */
  uint32_t *out_bufs;            /* cap: buffers of my cast seq (for the buffer window)      */
  uint8_t *out_ext;              /* cap: my cast seq needs an extension array                */
  uint64_t out_bufs_sum;
  uint32_t out_ext_sum;
  vsx_evq_t parked;              /* my total/safe casts waiting for the window or a buffer  */
  vsx_evq_t parked_fifo;         /* fifo casts waiting for a header buffer (rare)           */
  /* positions (every member) */
  uint8_t *ord;                  /* ord_cap: origin of each learned, undelivered position   */
  uint64_t learned, ready_pos, dlv_pos, stable_pos;
  /* sequencer (rank 0) */
  uint8_t *pend;                 /* ord_cap: origin of each arrival; index = position        */
  uint64_t pend_lo, pend_hi;     /* [pend_lo, pend_hi) not yet cast in an ORDER              */
  uint64_t last_order_ns;
  /* acknowledgements */
  int ack_due;                   /* progress since my last ACK                              */
  int safe_unacked;              /* ... and it made a safe cast ready                       */
  uint64_t last_ack_ns;
  /* view change (docs/total-order.md) */
  uint64_t failed;               /* ranks failed in this view (Dn FAIL): not waited for     */
  int blocking;                  /* BLOCK_OK went by: no ORDER, ACK or CLOSE after it       */
  vsx_evq_t block_oks;           /* BLOCK_OKs held until my parked casts are out            */
  vsx_event_t *sync;             /* SYNC held while the final delivery waits for events     */
  uint64_t sync_attempt, sync_gen; /* tags of the last SYNC that went down ...              */
  int sync_live;                 /* ... and no FAIL or BLOCK_OK went down after it          */
  int seq_closed;                /* I hold the sequencer's CLOSE: I know every ORDER it sent */
  int final;                     /* the final delivery ran: nothing more goes up            */
  /* deadlines for the one alarm, 0 = none */
  uint64_t order_at, ack_at, retry_at;
  seqbb_run_t scratch[RUNS_MAX];
  origin_t o[VSX_MEMBERS_MAX];
} seqbb_t;

static void seqbb_dump(vsx_layer_ctx_t *ctx, FILE *out) {
  seqbb_t *s = ctx->state;
  fprintf(out, "    positions: learned %llu ready %llu delivered %llu stable %llu\n", (unsigned long long)s->learned,
          (unsigned long long)s->ready_pos, (unsigned long long)s->dlv_pos, (unsigned long long)s->stable_pos);
  fprintf(out, "    sender: sent %u delivered everywhere %u, out %llu buffers %u long; window %u casts / %u buffers / %u long;"
          " parked %u + %u fifo\n", s->sent, s->done, (unsigned long long)s->out_bufs_sum, s->out_ext_sum, s->window,
          s->window_bufs, s->window_ext, s->parked.cnt, s->parked_fifo.cnt);
  if (ctx->rank == 0)
    fprintf(out, "    sequencer: positions assigned %llu, pending %llu\n", (unsigned long long)s->pend_lo,
            (unsigned long long)(s->pend_hi - s->pend_lo));
  for (uint32_t r = 0; r < ctx->member_cnt; r++) {
    const origin_t *o = &s->o[r];
    fprintf(out, "    origin %u: received %u ordered %u ready %u delivered %u", r, o->recv, o->ordered, o->ready, o->dlv);
    if (ctx->rank == 0) fprintf(out, " assigned %u", o->assigned);
    if (r != ctx->rank) fprintf(out, " | its ack: ready %llu, mine delivered %u", (unsigned long long)o->ack_ready, o->ack_dlv);
    fputc('\n', out);
  }
}

static uint32_t pow2_at_least(uint64_t n) {
  uint32_t c = 1;
  while (c < n) c <<= 1;
  return c;
}

static void seqbb_fini(vsx_layer_ctx_t *ctx);

static int seqbb_init(vsx_layer_ctx_t *ctx) {
  seqbb_t *s = ctx->state;
  uint32_t n = ctx->member_cnt;
  uint32_t dflt_window = 1024 / n < 32 ? 32 : 1024 / n > 256 ? 256 : 1024 / n;
  uint32_t dflt_bufs = vsx_bufpool_buf_cnt(ctx->pool) / (4 * n);
  /* Every member may hold window_ext long casts of every origin, and frag
     one in reassembly per origin: keep half the extension arrays free. */
  uint32_t ext = vsx_bufpool_ext_free_cnt(ctx->pool), dflt_ext = ext > 4 * n ? (ext / 2 - n) / n : 1;
  s->window = (uint32_t)vsx_param_u64(ctx, "window", dflt_window);
  s->window_bufs = (uint32_t)vsx_param_u64(ctx, "window_bufs", dflt_bufs < 16 ? 16 : dflt_bufs);
  s->window_ext = (uint32_t)vsx_param_u64(ctx, "window_ext", dflt_ext);
  s->order_gap_ns = vsx_param_u64(ctx, "order_us", 10) * 1000ull;
  s->ack_gap_ns = vsx_param_u64(ctx, "ack_us", 50) * 1000ull;
  s->ack_lazy_ns = vsx_param_u64(ctx, "ack_lazy_us", 1000) * 1000ull;
  if (s->window < 1 || s->window > (1u << 16))
    return vsx_fail(VSX_ERR_INVAL, "seqbb: window=%u outside [1, 65536]", s->window);
  if (!s->window_bufs || !s->window_ext) return vsx_fail(VSX_ERR_INVAL, "seqbb: window_bufs and window_ext must be > 0");
  if (s->ack_lazy_ns < s->ack_gap_ns)
    return vsx_fail(VSX_ERR_INVAL, "seqbb: ack_lazy_us=%llu below ack_us=%llu", (unsigned long long)(s->ack_lazy_ns / 1000),
                    (unsigned long long)(s->ack_gap_ns / 1000));
  uint32_t room = vsx_bufpool_buf_sz(ctx->pool) - vsx_bufpool_headroom(ctx->pool);
  if (ctx->payload_max < room) room = ctx->payload_max;
  if (room < HDR_BELOW_SLACK + sizeof(seqbb_hdr_t) + 8 + 4 * n + sizeof(seqbb_run_t))
    return vsx_fail(VSX_ERR_INVAL, "seqbb: payload_max=%u too small for ORDER and ACK messages", ctx->payload_max);
  s->runs_max = (room - HDR_BELOW_SLACK - (uint32_t)sizeof(seqbb_hdr_t)) / (uint32_t)sizeof(seqbb_run_t);
  if (s->runs_max > RUNS_MAX) s->runs_max = RUNS_MAX;
  /* The rings hold twice the window: the window blocks the application
     as soon as it is full, and casts the application queued before it
     saw that (from inside a callback) still fit without being parked. */
  s->cap = pow2_at_least(2ull * s->window);
  s->mask = s->cap - 1;
  s->ord_cap = pow2_at_least((uint64_t)n * s->cap);
  s->ord_mask = s->ord_cap - 1;
  s->out_bufs = calloc(s->cap, sizeof *s->out_bufs);
  s->out_ext = calloc(s->cap, 1);
  s->ord = calloc(s->ord_cap, 1);
  s->pend = ctx->rank == 0 ? calloc(s->ord_cap, 1) : NULL;
  int bad = !s->out_bufs || !s->out_ext || !s->ord || (ctx->rank == 0 && !s->pend);
  for (uint32_t r = 0; r < n && !bad; r++) {
    s->o[r].slot = calloc(s->cap, sizeof(vsx_iovl_t));
    s->o[r].safe = calloc(s->cap, 1);
    bad = !s->o[r].slot || !s->o[r].safe;
  }
  if (bad) {
    seqbb_fini(ctx); /* the stack runs fini only for layers whose init succeeded */
    return vsx_fail(VSX_ERR_NOMEM, "seqbb: cannot allocate rings for %u members x %u casts", n, s->cap);
  }
  VSX_ASSERT(s->runs_max >= 1);
  VSX_ASSERT(s->ord_cap >= (uint64_t)n * s->window);
  return VSX_OK;
}

static void seqbb_fini(vsx_layer_ctx_t *ctx) {
  seqbb_t *s = ctx->state;
  vsx_evq_free_all(ctx, &s->parked);
  vsx_evq_free_all(ctx, &s->parked_fifo);
  vsx_evq_free_all(ctx, &s->block_oks);
  if (s->sync) vsx_ev_free(ctx, s->sync);
  s->sync = NULL;
  for (uint32_t r = 0; r < ctx->member_cnt; r++) {
    origin_t *o = &s->o[r];
    /* What was never delivered is dropped here: leftovers are never
       delivered in an order this member did not learn. */
    if (o->slot)
      for (uint32_t k = o->dlv; k != o->recv; k++) vsx_iovl_free(&o->slot[k & s->mask]);
    free(o->slot);
    free(o->safe);
    o->slot = NULL;
    o->safe = NULL;
  }
  free(s->out_bufs);
  free(s->out_ext);
  free(s->ord);
  free(s->pend);
  s->out_bufs = NULL;
  s->out_ext = NULL;
  s->ord = s->pend = NULL;
}

/* ---- helpers ------------------------------------------------------------- */

/* due records a deadline (keeping the earlier one) and arms the alarm. */
static void due(vsx_layer_ctx_t *ctx, uint64_t *at, uint64_t t) {
  if (!*at || t < *at) *at = t;
  vsx_timer_soon(ctx, *at);
}

static void put_hdr(void *at, uint8_t kind, uint16_t cnt, uint32_t seq) {
  seqbb_hdr_t h = { .kind = kind, .cnt = htons(cnt), .seq = htonl(seq) };
  memcpy(at, &h, sizeof h);
}

/* body_alloc gives ev a body of sz bytes in a fresh buffer (so the headers
   pushed after it land in the buffer's headroom) and returns it; NULL when
   the pool is dry. */
static uint8_t *body_alloc(vsx_layer_ctx_t *ctx, vsx_event_t *ev, uint32_t sz) {
  vsx_iovec_t iov;
  if (vsx_buf_alloc(ctx->pool, &iov)) return NULL;
  VSX_ASSERT(sz <= iov.len);
  iov.len = sz;
  if (vsx_iovl_append_take(&ev->iovl, &iov)) { vsx_iovec_unref(&iov); return NULL; }
  return vsx_iovec_ptr(&iov);
}

/* ---- sending ------------------------------------------------------------- */

/* window_full: the window is closed to the application (it is told to
   wait); casts already on their way still go up to the rings' size. */
static int window_full(const seqbb_t *s) {
  return s->sent - s->done >= s->window || s->out_bufs_sum >= s->window_bufs || s->out_ext_sum >= s->window_ext;
}

/* ring_room: may my next total/safe cast go now without overflowing the
   receivers' rings?  Beyond this it is parked. */
static int ring_room(const seqbb_t *s) { return s->sent - s->done < s->cap; }

/* flow_update tells the stack whether the application must wait. */
static void flow_update(vsx_layer_ctx_t *ctx) {
  seqbb_t *s = ctx->state;
  vsx_flow_block(ctx, s->parked.cnt > 0 || s->parked_fifo.cnt > 0 || window_full(s));
}

/* send_total numbers ev and passes it down.  Returns 0 (ev untouched) when
   the window is closed or no buffer is left for the header. */
static int send_total(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  seqbb_t *s = ctx->state;
  uint32_t bufs = ev->iovl.cnt ? ev->iovl.cnt : 1;
  int long_msg = ev->iovl.cnt > VSX_IOVL_INLINE; /* receivers reassemble as many pieces */
  if (!ring_room(s)) return 0;
  void *at = vsx_hdr_push(ctx, ev, sizeof(seqbb_hdr_t));
  if (!at) { ctx->stats[ST_NO_EVENT]++; due(ctx, &s->retry_at, vsx_now(ctx) + RETRY_NS); return 0; }
  put_hdr(at, ev->svc == VSX_SVC_SAFE ? KIND_SAFE : KIND_TOTAL, 0, s->sent);
  VSX_ASSERT(s->sent - s->done < s->cap);
  s->out_bufs[s->sent & s->mask] = bufs;
  s->out_ext[s->sent & s->mask] = (uint8_t)long_msg;
  s->out_bufs_sum += bufs;
  s->out_ext_sum += (uint32_t)long_msg;
  s->sent++;
  ctx->stats[ST_CASTS]++;
  vsx_pass_dn(ctx, ev);
  return 1;
}

/* send_plain pushes a FIFO or UNREL header and passes ev down; 0 (ev
   untouched) when no buffer is left for the header. */
static int send_plain(vsx_layer_ctx_t *ctx, vsx_event_t *ev, uint8_t kind) {
  void *at = vsx_hdr_push(ctx, ev, sizeof(seqbb_hdr_t));
  if (!at) return 0;
  put_hdr(at, kind, 0, 0);
  vsx_pass_dn(ctx, ev);
  return 1;
}

/* block_pump lets held BLOCK_OKs go once my parked casts are out and,
   at the sequencer, the order of all it received and CLOSE are cast.
   From then on this member casts nothing reliably in this view. */
static int send_close(vsx_layer_ctx_t *ctx);
static void block_pump(vsx_layer_ctx_t *ctx) {
  seqbb_t *s = ctx->state;
  if (!s->block_oks.cnt || s->parked.cnt || s->parked_fifo.cnt) return;
  if (!s->blocking && ctx->rank == 0 && !send_close(ctx)) return; /* retried by the timer */
  s->blocking = 1;
  vsx_event_t *ev;
  while ((ev = vsx_evq_pop(&s->block_oks))) vsx_pass_dn(ctx, ev);
}

/* update_window learns how far every member has delivered my casts,
   releases that much window, sends what was parked and tells the stack
   whether the application must wait. */
static void update_window(vsx_layer_ctx_t *ctx) {
  seqbb_t *s = ctx->state;
  uint32_t done = s->o[ctx->rank].dlv;
  for (uint32_t r = 0; r < ctx->member_cnt; r++) /* the failed are not waited for */
    if (r != ctx->rank && !(s->failed >> r & 1) && s->o[r].ack_dlv < done) done = s->o[r].ack_dlv;
  VSX_ASSERT(done >= s->done);
  VSX_ASSERT(done <= s->sent);
  while (s->done != done) {
    VSX_ASSERT(s->out_bufs_sum >= s->out_bufs[s->done & s->mask]);
    s->out_bufs_sum -= s->out_bufs[s->done & s->mask];
    s->out_ext_sum -= s->out_ext[s->done & s->mask];
    s->done++;
  }
  vsx_event_t *ev;
  while ((ev = vsx_evq_pop(&s->parked_fifo)))
    if (!send_plain(ctx, ev, KIND_FIFO)) { vsx_evq_unpop(&s->parked_fifo, ev); break; }
  while ((ev = vsx_evq_pop(&s->parked)))
    if (!send_total(ctx, ev)) { vsx_evq_unpop(&s->parked, ev); break; }
  if (s->parked_fifo.cnt) due(ctx, &s->retry_at, vsx_now(ctx) + RETRY_NS);
  flow_update(ctx);
  block_pump(ctx);
}

/* send_ack casts my progress (reliably: it comes back to me through
   mnak's local delivery, and I ignore it). */
static void send_ack(vsx_layer_ctx_t *ctx, uint64_t now) {
  seqbb_t *s = ctx->state;
  uint32_t n = ctx->member_cnt;
  s->last_ack_ns = now;
  if (n < 2 || s->blocking) { s->ack_due = 0; return; } /* after BLOCK_OK my reliable casts are over */
  vsx_event_t *ev = vsx_ev_alloc(ctx, VSX_EV_CAST);
  uint8_t *body = ev ? body_alloc(ctx, ev, 8 + 4 * n) : NULL;
  void *at = body ? vsx_hdr_push(ctx, ev, sizeof(seqbb_hdr_t)) : NULL;
  if (!at) { /* ack_due stays: the retry tries again */
    if (ev) vsx_ev_free(ctx, ev);
    ctx->stats[ST_NO_EVENT]++;
    due(ctx, &s->retry_at, now + RETRY_NS);
    return;
  }
  uint64_t ready = htobe64(s->ready_pos);
  memcpy(body, &ready, 8);
  for (uint32_t r = 0; r < n; r++) {
    uint32_t v = htonl(s->o[r].dlv);
    memcpy(body + 8 + 4 * r, &v, 4);
    s->o[r].dlv_acked = s->o[r].dlv;
  }
  put_hdr(at, KIND_ACK, (uint16_t)n, 0);
  s->ack_due = 0;
  s->safe_unacked = 0;
  ctx->stats[ST_ACKS_SENT]++;
  vsx_pass_dn(ctx, ev);
}

/* flush_order (sequencer) casts everything pending as ORDER messages of
   at most runs_max runs each. */
static void flush_order(vsx_layer_ctx_t *ctx, uint64_t now) {
  seqbb_t *s = ctx->state;
  VSX_ASSERT(ctx->rank == 0);
  while (s->pend_lo != s->pend_hi && !s->blocking) {
    uint32_t add[VSX_MEMBERS_MAX] = { 0 }, nr = 0;
    uint64_t p = s->pend_lo;
    for (; p != s->pend_hi; p++) {
      uint32_t r = s->pend[p & s->ord_mask];
      seqbb_run_t *last = nr ? &s->scratch[nr - 1] : NULL;
      if (last && last->origin == r && last->len < UINT16_MAX) { last->len++; add[r]++; continue; }
      if (nr == s->runs_max) break;
      s->scratch[nr++] = (seqbb_run_t){ .origin = (uint16_t)r, .len = 1, .first = s->o[r].assigned + add[r] };
      add[r]++;
    }
    vsx_event_t *ev = vsx_ev_alloc(ctx, VSX_EV_CAST);
    uint8_t *body = ev ? body_alloc(ctx, ev, nr * (uint32_t)sizeof(seqbb_run_t)) : NULL;
    void *at = body ? vsx_hdr_push(ctx, ev, sizeof(seqbb_hdr_t)) : NULL;
    if (!at) {
      if (ev) vsx_ev_free(ctx, ev);
      ctx->stats[ST_NO_EVENT]++;
      due(ctx, &s->retry_at, now + RETRY_NS);
      return;
    }
    for (uint32_t i = 0; i < nr; i++) {
      seqbb_run_t w = { .origin = htons(s->scratch[i].origin), .len = htons(s->scratch[i].len),
                        .first = htonl(s->scratch[i].first) };
      memcpy(body + i * sizeof w, &w, sizeof w);
      s->o[s->scratch[i].origin].assigned += s->scratch[i].len;
    }
    put_hdr(at, KIND_ORDER, (uint16_t)nr, (uint32_t)s->pend_lo);
    ctx->stats[ST_ORDERS_SENT]++;
    ctx->stats[ST_ORDERED] += p - s->pend_lo;
    s->pend_lo = p;
    vsx_pass_dn(ctx, ev); /* reliable; mnak's local delivery brings it back to me */
  }
  s->last_order_ns = now;
}

/* ---- delivering ------------------------------------------------------------ */

/* advance_ready moves ready_pos over every learned position whose data is
   here; returns 1 if it moved. */
static int advance_ready(seqbb_t *s) {
  uint64_t from = s->ready_pos;
  while (s->ready_pos != s->learned) {
    origin_t *o = &s->o[s->ord[s->ready_pos & s->ord_mask]];
    if (o->ready == o->recv) break; /* data not here yet */
    s->safe_unacked |= o->safe[o->ready & s->mask]; /* someone may wait for my ACK of it */
    o->ready++;
    s->ready_pos++;
  }
  return s->ready_pos != from;
}

/* update_stable: a position is stable when I hold it and every other
   member's ACK says it does; members that failed are not waited for (a
   flush is under way, and it delivers every held position anyway). */
static void update_stable(vsx_layer_ctx_t *ctx) {
  seqbb_t *s = ctx->state;
  uint64_t st = s->ready_pos;
  for (uint32_t r = 0; r < ctx->member_cnt; r++)
    if (r != ctx->rank && !(s->failed >> r & 1) && s->o[r].ack_ready < st) st = s->o[r].ack_ready;
  if (st > s->stable_pos) s->stable_pos = st;
  VSX_ASSERT(s->stable_pos <= s->ready_pos);
}

/* pass_next passes origin r's next held cast up, moved out of the ring
   (delivered, not kept); 0 when no event record is free (retried). */
static int pass_next(vsx_layer_ctx_t *ctx, uint32_t r) {
  seqbb_t *s = ctx->state;
  origin_t *o = &s->o[r];
  vsx_event_t *ev = vsx_ev_alloc(ctx, VSX_EV_CAST);
  if (!ev) { ctx->stats[ST_NO_EVENT]++; due(ctx, &s->retry_at, vsx_now(ctx) + RETRY_NS); return 0; }
  uint32_t i = o->dlv & s->mask;
  ev->iovl = o->slot[i];
  vsx_iovl_init(&o->slot[i]);
  ev->peer = (int32_t)r;
  if (r == ctx->rank) ev->flags |= VSX_EVF_LOCAL;
  ctx->stats[ST_DELIVERED]++;
  if (o->safe[i]) ctx->stats[ST_SAFE_DELIVERED]++;
  o->dlv++;
  vsx_pass_up(ctx, ev);
  return 1;
}

/* deliver passes up, in position order, every ready cast: a total one at
   once, a safe one once its position is stable.  Returns 1 if any went. */
static int deliver(vsx_layer_ctx_t *ctx) {
  seqbb_t *s = ctx->state;
  uint64_t from = s->dlv_pos;
  while (s->dlv_pos != s->ready_pos) {
    uint32_t r = s->ord[s->dlv_pos & s->ord_mask];
    origin_t *o = &s->o[r];
    uint32_t i = o->dlv & s->mask;
    VSX_DASSERT(o->dlv != o->ready);
    if (o->safe[i] && s->dlv_pos >= s->stable_pos) break; /* not every member holds it yet */
    if (!pass_next(ctx, r)) break;
    s->dlv_pos++;
  }
  return s->dlv_pos != from;
}

/* progress runs everything that may follow new data, order or ACKs, and
   schedules my next ACK: soon if someone may be waiting on it (a safe
   cast became ready, or half a window of some origin's casts was
   delivered), lazily otherwise. */
static void progress(vsx_layer_ctx_t *ctx) {
  seqbb_t *s = ctx->state;
  if (s->final) return; /* the view's deliveries are over */
  int moved = advance_ready(s);
  update_stable(ctx);
  moved |= deliver(ctx);
  update_window(ctx);
  if (moved) s->ack_due = 1;
  if (s->ack_due && ctx->member_cnt > 1) {
    int urgent = s->safe_unacked;
    for (uint32_t r = 0; r < ctx->member_cnt && !urgent; r++) urgent = s->o[r].dlv - s->o[r].dlv_acked >= (s->window + 1) / 2;
    uint64_t now = vsx_now(ctx), at = s->last_ack_ns + (urgent ? s->ack_gap_ns : s->ack_lazy_ns);
    due(ctx, &s->ack_at, at > now ? at : now);
  }
  ctx->stats[ST_POS_LEARNED] = s->learned;
  ctx->stats[ST_POS_READY] = s->ready_pos;
  ctx->stats[ST_POS_STABLE] = s->stable_pos;
}

/* ---- the end of the view (docs/total-order.md) --------------------------------- */

/* send_close (the sequencer, when the application is blocked) casts the
   order of everything received so far, then CLOSE: its last reliable
   cast of the view.  FIFO below makes CLOSE follow every ORDER, so a
   member holding it knows every position anyone ever learned.  Returns
   0 when the pools are dry (the caller retries). */
static int send_close(vsx_layer_ctx_t *ctx) {
  seqbb_t *s = ctx->state;
  flush_order(ctx, vsx_now(ctx));
  if (s->pend_lo != s->pend_hi) return 0;
  vsx_event_t *ev = vsx_ev_alloc(ctx, VSX_EV_CAST);
  void *at = ev ? vsx_hdr_push(ctx, ev, sizeof(seqbb_hdr_t)) : NULL;
  if (!at) {
    if (ev) vsx_ev_free(ctx, ev);
    ctx->stats[ST_NO_EVENT]++;
    due(ctx, &s->retry_at, vsx_now(ctx) + RETRY_NS);
    return 0;
  }
  put_hdr(at, KIND_CLOSE, 0, (uint32_t)s->pend_lo);
  vsx_pass_dn(ctx, ev);
  return 1;
}

/* final_delivery runs when the flush has given every survivor the same
   casts (the SYNC bounced up from mnak): the same inputs everywhere, so
   the same output everywhere.
   1. Every learned position whose data is here, in position order, safe
      ones too (every survivor holds them now).  A position whose data
      no survivor had belongs to the tail of a failed origin's stream
      (FIFO below): it and the rest of that origin are skipped.
   2. If I hold the sequencer's CLOSE, I know every position it ever
      gave, so casts it never ordered were delivered nowhere, on any
      side of any partition: they follow, origin by origin in rank
      order, each origin's in its own order.  Without CLOSE (the
      sequencer crashed or is on the other side of a partition) they are
      discarded: their order may have been fixed where I cannot see it.
   Returns 0 when it must be resumed (no event record free). */
static int final_delivery(vsx_layer_ctx_t *ctx) {
  seqbb_t *s = ctx->state;
  for (; s->dlv_pos != s->learned; s->dlv_pos++) {
    uint32_t r = s->ord[s->dlv_pos & s->ord_mask];
    origin_t *o = &s->o[r];
    if (o->dlv == o->recv) continue; /* no survivor had it: the tail of a failed origin */
    if (!pass_next(ctx, r)) return 0;
    ctx->stats[ST_FLUSH_DELIVERED]++;
  }
  if (s->seq_closed)
    for (uint32_t r = 0; r < ctx->member_cnt; r++)
      while (s->o[r].dlv != s->o[r].recv) {
        if (!pass_next(ctx, r)) return 0;
        ctx->stats[ST_FLUSH_DELIVERED]++;
        ctx->stats[ST_LEFTOVERS]++;
      }
  for (uint32_t r = 0; r < ctx->member_cnt; r++) ctx->stats[ST_DISCARDED] += s->o[r].recv - s->o[r].dlv;
  s->final = 1;
  return 1;
}

/* view_change_pump moves the end of the view along after a retry. */
static void view_change_pump(vsx_layer_ctx_t *ctx) {
  seqbb_t *s = ctx->state;
  if (s->sync && final_delivery(ctx)) {
    vsx_event_t *ev = s->sync;
    s->sync = NULL;
    vsx_pass_up(ctx, ev);
  }
}

/* ---- receiving --------------------------------------------------------------- */

/* recv_data keeps a total/safe cast of origin r (header popped) until its
   position comes; the sequencer also gives it one. */
static int recv_data(vsx_layer_ctx_t *ctx, vsx_event_t *ev, uint32_t r, uint32_t seq, int safe) {
  seqbb_t *s = ctx->state;
  origin_t *o = &s->o[r];
  if (seq != o->recv) return 0;                /* reliable FIFO below makes this impossible */
  if (o->recv - o->dlv >= s->cap) return 0;    /* the origin ignored its window */
  uint32_t i = seq & s->mask;
  o->slot[i] = ev->iovl;                       /* moved: the record goes back to the pool */
  vsx_iovl_init(&ev->iovl);
  o->safe[i] = (uint8_t)safe;
  o->recv++;
  vsx_ev_free(ctx, ev);
  if (ctx->rank == 0) {
    /* Per origin, pending <= received - delivered <= cap, so the ring
       (members * cap) cannot fill. */
    VSX_ASSERT(s->pend_hi - s->pend_lo < s->ord_cap);
    s->pend[s->pend_hi++ & s->ord_mask] = (uint8_t)r;
    uint64_t now = vsx_now(ctx), at = s->last_order_ns + s->order_gap_ns;
    if (at <= now) vsx_idle_request(ctx); /* no added latency: flush when the queue drains */
    else due(ctx, &s->order_at, at);
  }
  return 1;
}

/* recv_order learns the positions of one ORDER (all its runs, or none). */
static int recv_order(vsx_layer_ctx_t *ctx, vsx_event_t *ev, const seqbb_hdr_t *h) {
  seqbb_t *s = ctx->state;
  uint32_t nr = ntohs(h->cnt), next[VSX_MEMBERS_MAX];
  if (!nr || nr > RUNS_MAX || ntohl(h->seq) != (uint32_t)s->learned) return 0;
  if (vsx_iovl_len(&ev->iovl) != nr * sizeof(seqbb_run_t)) return 0;
  vsx_iovl_gather(&ev->iovl, 0, s->scratch, nr * sizeof(seqbb_run_t));
  for (uint32_t r = 0; r < ctx->member_cnt; r++) next[r] = s->o[r].ordered;
  for (uint32_t i = 0; i < nr; i++) { /* validate everything before learning anything */
    seqbb_run_t *run = &s->scratch[i];
    run->origin = ntohs(run->origin);
    run->len = ntohs(run->len);
    run->first = ntohl(run->first);
    if (run->origin >= ctx->member_cnt || !run->len || run->first != next[run->origin]) return 0;
    next[run->origin] += run->len;
    /* A position for a cast beyond the origin's window cannot be right. */
    if (next[run->origin] - s->o[run->origin].dlv > s->cap) return 0;
  }
  for (uint32_t i = 0; i < nr; i++) {
    const seqbb_run_t *run = &s->scratch[i];
    for (uint32_t k = 0; k < run->len; k++) s->ord[s->learned++ & s->ord_mask] = (uint8_t)run->origin;
    s->o[run->origin].ordered += run->len;
  }
  VSX_ASSERT(s->learned - s->dlv_pos <= s->ord_cap);
  vsx_ev_free(ctx, ev);
  return 1;
}

/* recv_ack merges member r's progress. */
static int recv_ack(vsx_layer_ctx_t *ctx, vsx_event_t *ev, uint32_t r, const seqbb_hdr_t *h) {
  seqbb_t *s = ctx->state;
  uint32_t n = ctx->member_cnt;
  uint8_t body[8 + 4 * VSX_MEMBERS_MAX];
  if (ntohs(h->cnt) != n || vsx_iovl_len(&ev->iovl) != 8 + 4 * n) return 0;
  vsx_iovl_gather(&ev->iovl, 0, body, 8 + 4 * n);
  uint64_t ready;
  uint32_t mine;
  memcpy(&ready, body, 8);
  memcpy(&mine, body + 8 + 4 * ctx->rank, 4);
  ready = be64toh(ready);
  mine = ntohl(mine);
  if (mine > s->sent) return 0; /* it cannot have delivered what I never sent */
  origin_t *o = &s->o[r];
  if (ready > o->ack_ready) o->ack_ready = ready; /* counts only grow */
  if (mine > o->ack_dlv) o->ack_dlv = mine;
  vsx_ev_free(ctx, ev);
  return 1;
}

/* ---- handlers --------------------------------------------------------------- */

/* UP CAST/SEND: sends pass; casts are dispatched on the header kind. */
static void seqbb_up(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  seqbb_t *s = ctx->state;
  if (ev->type == VSX_EV_SEND) { vsx_pass_up(ctx, ev); return; }
  seqbb_hdr_t h;
  uint32_t r = (uint32_t)ev->peer;
  int unrel = (ev->flags & VSX_EVF_UNREL) != 0, ok = 0;
  if (vsx_hdr_pop(ev, &h, sizeof h) || r >= ctx->member_cnt) goto malformed;
  switch (h.kind) {
  case KIND_FIFO:  /* FIFO: up at once, it waits for nothing */
  case KIND_UNREL: /* UNREL: up at once, as it came */
    if (unrel != (h.kind == KIND_UNREL)) goto malformed;
    vsx_pass_up(ctx, ev);
    return;
  case KIND_TOTAL: /* TOTAL/SAFE: keep until its position is learned (and stable) */
  case KIND_SAFE:
    if (unrel) goto malformed;
    ok = recv_data(ctx, ev, r, ntohl(h.seq), h.kind == KIND_SAFE);
    break;
  case KIND_ORDER: /* ORDER: learn positions; only the sequencer gives them */
    if (unrel || r != 0) goto malformed;
    ok = recv_order(ctx, ev, &h);
    break;
  case KIND_CLOSE: /* CLOSE: the sequencer's last word; every ORDER came before it */
    if (unrel || r != 0 || ntohl(h.seq) != (uint32_t)s->learned) goto malformed;
    s->seq_closed = 1;
    vsx_ev_free(ctx, ev);
    return;
  case KIND_ACK:   /* ACK: merge a member's progress; mine comes back and is ignored */
    if (unrel) goto malformed;
    if (r == ctx->rank) { vsx_ev_free(ctx, ev); return; }
    ok = recv_ack(ctx, ev, r, &h);
    break;
  }
  if (!ok) goto malformed;
  progress(ctx);
  return;
malformed:
  ctx->stats[ST_MALFORMED]++;
  vsx_ev_free(ctx, ev);
}

/* DN CAST/SEND: total and safe casts are numbered (or parked on a closed
   window); fifo and unreliable casts get their kind and go; sends pass. */
static void seqbb_dn(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  seqbb_t *s = ctx->state;
  if (ev->type == VSX_EV_SEND) { vsx_pass_dn(ctx, ev); return; }
  if (ev->flags & VSX_EVF_UNREL) {
    if (!send_plain(ctx, ev, KIND_UNREL)) { ctx->stats[ST_NO_EVENT]++; vsx_ev_free(ctx, ev); } /* unreliable */
    return;
  }
  if (ev->svc == VSX_SVC_TOTAL || ev->svc == VSX_SVC_SAFE) {
    if (s->parked.cnt || !send_total(ctx, ev)) {
      ctx->stats[ST_PARKED]++;
      vsx_evq_push(&s->parked, ev);
      progress(ctx); /* blocks the application until ACKs open the window */
    } else if (window_full(s)) {
      flow_update(ctx); /* the next cast waits: told before it is tried */
    }
    return;
  }
  if (s->parked_fifo.cnt || !send_plain(ctx, ev, KIND_FIFO)) {
    ctx->stats[ST_PARKED]++;
    vsx_evq_push(&s->parked_fifo, ev);
    progress(ctx);
  }
}

/* DN FAIL: the failed are no longer waited for (windows, stability).
   DN BLOCK_OK: the application is blocked: my parked casts go first (the
   view's casts are sent in the view); the sequencer casts the order of
   all it received and CLOSE; then BLOCK_OK goes on and neither ORDER
   nor ACK is cast again.  A cast parked because the receivers' rings are
   full could wait for ever now (ACKs have stopped): it is dropped,
   counted in `unsent` and logged; the window blocks the application long
   before that in every ordinary use. */
static void seqbb_dnnm(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  seqbb_t *s = ctx->state;
  switch (ev->type) {
  case VSX_EV_FAIL: /* FAIL: stop waiting for them; a new flush attempt begins */
    s->failed |= ev->u64a;
    s->sync_live = 0;
    vsx_pass_dn(ctx, ev);
    progress(ctx);
    return;
  case VSX_EV_BLOCK_OK: /* BLOCK_OK: my casts, then the order, then on */
    s->sync_live = 0; /* a new count: any SYNC still out belongs to an attempt that is over */
    if (!s->blocking && !s->block_oks.cnt && !ring_room(s) && s->parked.cnt) {
      ctx->stats[ST_UNSENT] += s->parked.cnt;
      vsx_log(0, "seqbb: rank %u: %u total casts parked beyond the rings' size not sent before the view change",
              ctx->rank, s->parked.cnt);
      vsx_evq_free_all(ctx, &s->parked);
      flow_update(ctx);
    }
    vsx_evq_push(&s->block_oks, ev);
    block_pump(ctx);
    return;
  case VSX_EV_SYNC: /* SYNC: the flush's agreement, on its way to mnak */
    s->sync_attempt = ev->u64a;
    s->sync_gen = ev->u64b;
    s->sync_live = 1;
    break;
  }
  vsx_pass_dn(ctx, ev);
}

/* UP SYNC (bounced from mnak): every survivor holds the same casts now:
   deliver what the rule allows, then let it go on.  Only the SYNC of the
   attempt under way counts: one that went down before a later FAIL or
   count (BLOCK_OK) is stale, and vsync drops it; mnak may yet deliver
   more casts for the next attempt's SYNC. */
static void seqbb_upnm(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  seqbb_t *s = ctx->state;
  if (ev->type == VSX_EV_SYNC && !s->final && !s->sync && s->sync_live && ev->u64a == s->sync_attempt &&
      ev->u64b == s->sync_gen) {
    s->sync = ev;
    view_change_pump(ctx);
    return;
  }
  vsx_pass_up(ctx, ev);
}

/* IDLE: the queue drained; the sequencer casts its pending order. */
static void seqbb_idle(vsx_layer_ctx_t *ctx) {
  seqbb_t *s = ctx->state;
  if (ctx->rank == 0 && s->pend_lo != s->pend_hi) flush_order(ctx, vsx_now(ctx));
}

/* TIMER: retry after pool exhaustion, cast pending order, ACK progress. */
static void seqbb_timer(vsx_layer_ctx_t *ctx, uint64_t now) {
  seqbb_t *s = ctx->state;
  int retry = s->retry_at && now >= s->retry_at; /* progress below retries deliveries and parked casts */
  if (retry) s->retry_at = 0;
  if (retry || (s->order_at && now >= s->order_at)) {
    s->order_at = 0;
    if (ctx->rank == 0 && s->pend_lo != s->pend_hi) flush_order(ctx, now);
  }
  if (s->ack_at && now >= s->ack_at) {
    s->ack_at = 0;
    if (s->ack_due) send_ack(ctx, now); /* after a failed one, progress below schedules it again */
  }
  progress(ctx);
  block_pump(ctx);
  view_change_pump(ctx);
  uint64_t *at[] = { &s->order_at, &s->ack_at, &s->retry_at };
  for (size_t i = 0; i < VSX_ARRAY_CNT(at); i++)
    if (*at[i]) vsx_timer_soon(ctx, *at[i]);
}

const vsx_layer_ops_t vsx_layer_seqbb = {
  .name = "seqbb", .purpose = "total order and safe delivery (broadcast-broadcast sequencer)",
  .state_sz = sizeof(seqbb_t),
  .provides = VSX_CAP_TOTAL_ORDER, .needs_below = VSX_CAP_RELIABLE_CAST, .clears = VSX_CAP_CAST_UNITS,
  .stat_names = stat_names, .stat_cnt = ST_CNT,
  .init = seqbb_init, .fini = seqbb_fini, .up = seqbb_up, .dn = seqbb_dn, .upnm = seqbb_upnm, .dnnm = seqbb_dnnm,
  .timer = seqbb_timer,
  .dump = seqbb_dump, .idle = seqbb_idle,
};
