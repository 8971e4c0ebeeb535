/* pt2pt.c - reliable FIFO point-to-point.

   Header (8 bytes, on sends only; casts pass untouched):
     kind u8   DATA (reliable send), UNREL (unreliable send), ACK
     seq  u32  DATA: seqno on this sender->receiver channel;
               ACK: every seqno below it was received

   Provides: reliable FIFO sends between every pair of members, and sends
             to oneself (delivered locally).
   Requires: datagrams below.

   The sender keeps each send in a per-destination window until it is
   acknowledged and retransmits the oldest unacknowledged ones (at most
   `burst` per peer, oldest first: the receiver acknowledges cumulatively,
   so the head of the window is what unblocks it) every rto, doubling the
   interval after every sweep that saw no acknowledgement progress, up to
   8 x rto: a receiver that is slow (a loaded machine, a paused process)
   is not flooded with the whole window again and again.  The
   receiver keeps out-of-order sends in its own window, delivers in order,
   and acknowledges cumulatively, shortly after receiving (ack_ms) so one
   ACK covers a burst.  A full window parks sends and blocks the
   application. */
#include "vsx/layer.h"
#include "evq.h"
#include <arpa/inet.h>
#include <string.h>

enum { KIND_DATA = 1, KIND_UNREL = 2, KIND_ACK = 3 };

typedef struct pt2pt_hdr { uint8_t kind, rsvd[3]; uint32_t seq; } __attribute__((packed)) pt2pt_hdr_t;
_Static_assert(sizeof(pt2pt_hdr_t) == 8, "pt2pt header is 8 bytes");

enum { ST_SENDS, ST_DELIVERED, ST_DUPS, ST_OUT_OF_WINDOW, ST_RETRANS, ST_ACKS_SENT, ST_ACKS_RECV,
       ST_PARKED, ST_MALFORMED, ST_NO_EVENT, ST_CNT };
static const char *const stat_names[ST_CNT] = {
  "sends", "delivered", "duplicates", "out_of_window", "retransmitted", "acks_sent", "acks_recv",
  "parked", "malformed", "no_event" };

typedef struct peer {
  vsx_window_t out;   /* my unacknowledged sends to this peer          */
  vsx_window_t in;    /* its sends to me that arrived early            */
  uint32_t send_next; /* next seqno I send it                          */
  uint32_t recv_next; /* next seqno I deliver from it                  */
  int ack_due;        /* it sent something since my last ACK           */
  vsx_evq_t parked;   /* sends waiting for window space                */
} peer_t;

typedef struct pt2pt {
  uint32_t window;
  uint64_t rto_ns, ack_ns;
  uint64_t retrans_at_ns; /* next retransmission sweep, 0 = none due    */
  uint32_t burst;         /* retransmissions per peer per sweep          */
  uint32_t backoff;       /* sweeps without progress (interval rto << it) */
  int progress;           /* an ACK released something since the sweep   */
  uint64_t ack_at_ns;     /* next ACK sweep, 0 = none due               */
  peer_t p[VSX_MEMBERS_MAX];
} pt2pt_t;

static int pt2pt_init(vsx_layer_ctx_t *ctx) {
  pt2pt_t *s = ctx->state;
  s->window = (uint32_t)vsx_param_u64(ctx, "window", 256);
  s->rto_ns = vsx_param_u64(ctx, "rto_ms", 20) * 1000000ull;
  s->ack_ns = vsx_param_u64(ctx, "ack_ms", 2) * 1000000ull;
  s->burst = (uint32_t)vsx_param_u64(ctx, "burst", 32);
  if (!s->burst) return vsx_fail(VSX_ERR_INVAL, "pt2pt: burst must be > 0");
  if (s->window < 2 || s->window > (1u << 20)) return vsx_fail(VSX_ERR_INVAL, "pt2pt: window=%u outside [2, 2^20]", s->window);
  if (!s->rto_ns) return vsx_fail(VSX_ERR_INVAL, "pt2pt: rto_ms must be > 0");
  for (uint32_t r = 0; r < ctx->member_cnt; r++) {
    if (r == ctx->rank) continue;
    if (vsx_window_init(&s->p[r].out, s->window) || vsx_window_init(&s->p[r].in, s->window))
      return vsx_fail(VSX_ERR_NOMEM, "pt2pt: cannot allocate windows of %u sends", s->window);
  }
  return VSX_OK;
}

static void pt2pt_fini(vsx_layer_ctx_t *ctx) {
  pt2pt_t *s = ctx->state;
  for (uint32_t r = 0; r < ctx->member_cnt; r++) {
    vsx_evq_free_all(ctx, &s->p[r].parked);
    vsx_window_fini(&s->p[r].out);
    vsx_window_fini(&s->p[r].in);
  }
}

static void pt2pt_dump(vsx_layer_ctx_t *ctx, FILE *out) {
  pt2pt_t *s = ctx->state;
  for (uint32_t r = 0; r < ctx->member_cnt; r++)
    if (r != ctx->rank)
      fprintf(out, "    peer %u: sent %u acked %u parked %u, delivered %u\n", r, s->p[r].send_next, s->p[r].out.lo,
              s->p[r].parked.cnt, s->p[r].recv_next);
}

static void *push_hdr(vsx_layer_ctx_t *ctx, vsx_event_t *ev, uint8_t kind, uint32_t seq) {
  void *at = vsx_hdr_push(ctx, ev, sizeof(pt2pt_hdr_t));
  if (at) {
    pt2pt_hdr_t h = { .kind = kind, .seq = htonl(seq) };
    memcpy(at, &h, sizeof h);
  }
  return at;
}

static void update_flow(vsx_layer_ctx_t *ctx) {
  pt2pt_t *s = ctx->state;
  int blocked = 0;
  for (uint32_t r = 0; r < ctx->member_cnt && !blocked; r++)
    blocked = s->p[r].parked.cnt > 0;
  vsx_flow_block(ctx, blocked);
}

/* send_data numbers ev, keeps it until acknowledged and sends it.
   Returns 0 (ev untouched) when the window is full or memory is short. */
static int send_data(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  pt2pt_t *s = ctx->state;
  peer_t *p = &s->p[ev->peer];
  if (p->send_next - p->out.lo >= s->window) return 0;
  if (!push_hdr(ctx, ev, KIND_DATA, p->send_next)) return 0;
  if (vsx_window_put(&p->out, p->send_next, &ev->iovl)) { vsx_hdr_pop(ev, NULL, sizeof(pt2pt_hdr_t)); return 0; }
  p->send_next++;
  ctx->stats[ST_SENDS]++;
  uint64_t now = vsx_now(ctx);
  if (!s->retrans_at_ns) s->retrans_at_ns = now + s->rto_ns;
  vsx_timer_soon(ctx, s->retrans_at_ns);
  vsx_pass_dn(ctx, ev);
  return 1;
}

static void drain_parked(vsx_layer_ctx_t *ctx, peer_t *p) {
  vsx_event_t *ev;
  while ((ev = vsx_evq_pop(&p->parked))) {
    if (!send_data(ctx, ev)) { vsx_evq_unpop(&p->parked, ev); break; }
  }
  update_flow(ctx);
}

static void send_ack(vsx_layer_ctx_t *ctx, uint32_t r) {
  pt2pt_t *s = ctx->state;
  vsx_event_t *ack = vsx_ev_alloc(ctx, VSX_EV_SEND);
  if (!ack) { ctx->stats[ST_NO_EVENT]++; return; } /* the next sweep acknowledges */
  if (!push_hdr(ctx, ack, KIND_ACK, s->p[r].recv_next)) { vsx_ev_free(ctx, ack); return; }
  ack->peer = (int32_t)r;
  ack->flags = VSX_EVF_UNREL;
  s->p[r].ack_due = 0;
  ctx->stats[ST_ACKS_SENT]++;
  vsx_pass_dn(ctx, ack);
}

/* deliver_ready passes up the early sends of r that are now in order. */
static void deliver_ready(vsx_layer_ctx_t *ctx, uint32_t r) {
  pt2pt_t *s = ctx->state;
  peer_t *p = &s->p[r];
  vsx_iovl_t *l;
  while ((l = vsx_window_get(&p->in, p->recv_next))) {
    vsx_event_t *ev = vsx_ev_alloc(ctx, VSX_EV_SEND);
    if (!ev) { ctx->stats[ST_NO_EVENT]++; vsx_timer_soon(ctx, vsx_now(ctx) + s->ack_ns); return; }
    /* Move the list out of the slot: it is delivered, not kept. */
    ev->iovl = *l;
    p->in.present[p->recv_next & (p->in.cap - 1)] = 0;
    vsx_hdr_pop(ev, NULL, sizeof(pt2pt_hdr_t));
    ev->peer = (int32_t)r;
    p->recv_next++;
    vsx_window_release(&p->in, p->recv_next);
    ctx->stats[ST_DELIVERED]++;
    vsx_pass_up(ctx, ev);
  }
}

static void recv_data(vsx_layer_ctx_t *ctx, vsx_event_t *ev, uint32_t r, uint32_t seq) {
  pt2pt_t *s = ctx->state;
  peer_t *p = &s->p[r];
  uint64_t now = vsx_now(ctx);
  p->ack_due = 1;
  if (!s->ack_at_ns) s->ack_at_ns = now + s->ack_ns;
  vsx_timer_soon(ctx, s->ack_at_ns);
  if (seq < p->recv_next || vsx_window_has(&p->in, seq)) { ctx->stats[ST_DUPS]++; vsx_ev_free(ctx, ev); return; }
  if (!vsx_window_fits(&p->in, seq)) { ctx->stats[ST_OUT_OF_WINDOW]++; vsx_ev_free(ctx, ev); return; }
  if (seq == p->recv_next) {
    vsx_hdr_pop(ev, NULL, sizeof(pt2pt_hdr_t));
    p->recv_next++;
    vsx_window_release(&p->in, p->recv_next);
    ctx->stats[ST_DELIVERED]++;
    vsx_pass_up(ctx, ev);
    deliver_ready(ctx, r);
    return;
  }
  if (vsx_window_put(&p->in, seq, &ev->iovl)) ctx->stats[ST_NO_EVENT]++;
  vsx_ev_free(ctx, ev);
}

/* UP CAST/SEND: casts carry no pt2pt header and pass; a send is data,
   unreliable data or an acknowledgement. */
static void pt2pt_up(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  pt2pt_t *s = ctx->state;
  if (ev->type == VSX_EV_CAST) { vsx_pass_up(ctx, ev); return; }
  pt2pt_hdr_t h;
  uint32_t r = (uint32_t)ev->peer;
  if (vsx_iovl_peek(&ev->iovl, &h, sizeof h) || r >= ctx->member_cnt || r == ctx->rank) {
    ctx->stats[ST_MALFORMED]++;
    vsx_ev_free(ctx, ev);
    return;
  }
  uint32_t seq = ntohl(h.seq);
  switch (h.kind) {
  case KIND_DATA: /* DATA: store (header on) or deliver; an ACK goes out soon */
    recv_data(ctx, ev, r, seq);
    return;
  case KIND_UNREL: /* UNREL: pass up as it came */
    vsx_hdr_pop(ev, NULL, sizeof h);
    ev->flags |= VSX_EVF_UNREL;
    vsx_pass_up(ctx, ev);
    return;
  case KIND_ACK: { /* ACK: free what the peer has, send what waited */
    peer_t *p = &s->p[r];
    ctx->stats[ST_ACKS_RECV]++;
    if (seq > p->out.lo && seq <= p->send_next) {
      vsx_window_release(&p->out, seq);
      s->progress = 1;
      s->backoff = 0;
    }
    vsx_ev_free(ctx, ev);
    drain_parked(ctx, p);
    return;
  }
  }
  ctx->stats[ST_MALFORMED]++;
  vsx_ev_free(ctx, ev);
}

/* DN SEND: to myself it is delivered at once; reliable sends are numbered
   (or parked); unreliable ones get a header and go.  Casts pass. */
static void pt2pt_dn(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  pt2pt_t *s = ctx->state;
  if (ev->type == VSX_EV_CAST) { vsx_pass_dn(ctx, ev); return; }
  VSX_ASSERT(ev->peer >= 0 && (uint32_t)ev->peer < ctx->member_cnt);
  if ((uint32_t)ev->peer == ctx->rank) {
    ev->flags |= VSX_EVF_LOCAL;
    vsx_pass_up(ctx, ev);
    return;
  }
  if (ev->flags & VSX_EVF_UNREL) {
    if (!push_hdr(ctx, ev, KIND_UNREL, 0)) { vsx_ev_free(ctx, ev); return; }
    vsx_pass_dn(ctx, ev);
    return;
  }
  peer_t *p = &s->p[ev->peer];
  if (p->parked.cnt || !send_data(ctx, ev)) {
    ctx->stats[ST_PARKED]++;
    vsx_evq_push(&p->parked, ev);
    update_flow(ctx);
    vsx_timer_soon(ctx, vsx_now(ctx) + s->ack_ns);
  }
}

/* TIMER: acknowledge, retransmit the unacknowledged, retry the parked. */
static void pt2pt_timer(vsx_layer_ctx_t *ctx, uint64_t now) {
  pt2pt_t *s = ctx->state;
  if (s->ack_at_ns && now >= s->ack_at_ns) {
    s->ack_at_ns = 0;
    for (uint32_t r = 0; r < ctx->member_cnt; r++)
      if (r != ctx->rank && s->p[r].ack_due) send_ack(ctx, r);
  }
  int unacked = 0;
  if (s->retrans_at_ns && now >= s->retrans_at_ns) {
    s->retrans_at_ns = 0;
    if (!s->progress && s->backoff < 3) s->backoff++; /* nothing acknowledged for a whole rto: slow down */
    s->progress = 0;
    for (uint32_t r = 0; r < ctx->member_cnt; r++) {
      peer_t *p = &s->p[r];
      if (r == ctx->rank) continue;
      uint32_t end = p->send_next - p->out.lo > s->burst ? p->out.lo + s->burst : p->send_next;
      for (uint32_t seq = p->out.lo; seq < end; seq++) {
        vsx_iovl_t *l = vsx_window_get(&p->out, seq);
        if (!l) continue;
        vsx_event_t *ev = vsx_ev_alloc(ctx, VSX_EV_SEND);
        if (!ev || vsx_iovl_copy(&ev->iovl, l)) { if (ev) vsx_ev_free(ctx, ev); ctx->stats[ST_NO_EVENT]++; break; }
        ev->peer = (int32_t)r;
        ev->flags = VSX_EVF_UNREL; /* already numbered: below, it is just a datagram */
        ctx->stats[ST_RETRANS]++;
        vsx_pass_dn(ctx, ev);
      }
    }
  }
  for (uint32_t r = 0; r < ctx->member_cnt; r++) {
    if (r == ctx->rank) continue;
    deliver_ready(ctx, r);
    drain_parked(ctx, &s->p[r]);
    if (s->p[r].send_next != s->p[r].out.lo) unacked = 1;
  }
  if (unacked && !s->retrans_at_ns) s->retrans_at_ns = now + (s->rto_ns << s->backoff);
  if (s->retrans_at_ns) vsx_timer_soon(ctx, s->retrans_at_ns);
  if (s->ack_at_ns) vsx_timer_soon(ctx, s->ack_at_ns);
  for (uint32_t r = 0; r < ctx->member_cnt; r++)
    if (s->p[r].parked.cnt) vsx_timer_soon(ctx, now + s->ack_ns);
}

const vsx_layer_ops_t vsx_layer_pt2pt = {
  .name = "pt2pt", .purpose = "reliable FIFO point-to-point (acknowledgements, retransmission)",
  .state_sz = sizeof(pt2pt_t), .provides = VSX_CAP_RELIABLE_SEND, .needs_below = VSX_CAP_DATAGRAM,
  .stat_names = stat_names, .stat_cnt = ST_CNT,
  .init = pt2pt_init, .fini = pt2pt_fini, .up = pt2pt_up, .dn = pt2pt_dn, .timer = pt2pt_timer,
  .dump = pt2pt_dump,
};
