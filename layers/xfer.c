/* xfer.c - state transfer: members that come into a view get the
   application's state from one member that has it, before anyone uses
   the view (Ensemble's Xfer, without the extra view: the view is simply
   not "ready" until the state is everywhere).

   Header (4 bytes, every send; casts pass untouched): mbr_hdr_t
     kind u8   DATA (a send of the layers above), CHUNK, ACK, READY
   Bodies (network order):
     CHUNK  offset u64, total u64, then up to chunk_kb KiB of the state
     ACK    next u64: bytes of the state received, in order
     READY  nothing

   Provides: VSX_EV_READY going up (the owner runs the view callback;
             until then the application may not send), the state
             request VSX_EV_XFER going up at the source (the owner answers
             with the bytes), and VSX_EV_XFER_PUT going up at members that
             need the state (each piece in order; offset 0 starts over).
   Requires: reliable FIFO sends below; frag for chunks larger than one
             datagram.  Place it right under top.

   The view says who needs the state (view.xfer_mask, set by the
   coordinator that composed it: the mergers, and members whose earlier
   transfer failed).  The source is the first member that does not need
   it.  On INIT the source asks its owner for the state (a pointer and a
   length: the application keeps them valid and unchanged until its view
   callback, and it gets no message before that), then streams it to
   each member that needs it, window chunks ahead of its ACKs.  When all
   of them have acknowledged the whole state, the source sends READY to
   everyone.  Nobody sends an application message before READY, so
   nobody receives one before the state; a message that arrives before
   READY itself proves READY was sent, and counts as READY.  A member
   that needs the state tells vsync when it has it (XFER_DONE), so a
   flush of this view reports whether it still needs it: a failure during
   the transfer makes the next view try again.  Without the mask, READY
   goes up at INIT.

   Parameters: chunk_kb (default 16), window (chunks ahead, default 4). */
#include "vsx/layer.h"
#include "mbr.h"

enum { KIND_CHUNK = 2, KIND_ACK = 3, KIND_READY = 4 };
#define CHUNK_HDR 16

enum { ST_CHUNKS_SENT, ST_CHUNKS_RECV, ST_BYTES_SENT, ST_BYTES_RECV, ST_EARLY, ST_MALFORMED, ST_NO_EVENT, ST_CNT };
static const char *const stat_names[ST_CNT] = { "chunks_sent", "chunks_recv", "bytes_sent", "bytes_recv",
                                                "early_dropped", "malformed", "no_event" };

typedef struct xfer {
  uint64_t all, mask;       /* ranks of the view; ranks needing the state */
  int32_t source;           /* rank that sends it, -1 none               */
  uint32_t chunk, window;
  int ready;                /* READY went up                              */
  int closed;               /* Dn CLOSE: the view ended; nothing more     */
  int ready_up;             /* READY still to go up                       */
  int ask;                  /* (source) Up XFER still to go               */
  /* a member that needs the state */
  uint64_t got, total;
  int complete, done_down, ack_todo;
  /* the source */
  int have;
  const uint8_t *data;
  uint64_t len;
  uint64_t started;         /* ranks sent the first chunk                 */
  uint64_t done;            /* ranks that acknowledged all of it          */
  uint64_t ready_todo;      /* ranks still owed READY                     */
  uint64_t sent[VSX_MEMBERS_MAX], acked[VSX_MEMBERS_MAX];
} xfer_t;

static void xfer_dump(vsx_layer_ctx_t *ctx, FILE *out) {
  xfer_t *s = ctx->state;
  fprintf(out, "    mask %llx source %d ready %d got %llu/%llu done %llx\n", (unsigned long long)s->mask, s->source,
          s->ready, (unsigned long long)s->got, (unsigned long long)s->total, (unsigned long long)s->done);
}

static int xfer_init(vsx_layer_ctx_t *ctx) {
  xfer_t *s = ctx->state;
  s->chunk = (uint32_t)vsx_param_u64(ctx, "chunk_kb", 16) * 1024u;
  s->window = (uint32_t)vsx_param_u64(ctx, "window", 4);
  if (s->chunk < 1024 || s->chunk > (512u << 10) || !s->window)
    return vsx_fail(VSX_ERR_INVAL, "xfer: chunk_kb must be in [1, 512] and window > 0");
  s->all = mbr_all(ctx->member_cnt);
  s->mask = ctx->view->xfer_mask & s->all;
  s->source = mbr_lowest(s->all & ~s->mask);
  if (!s->mask || s->source < 0) { s->mask = 0; s->source = -1; }
  return VSX_OK;
}

static void retry_soon(vsx_layer_ctx_t *ctx) {
  ctx->stats[ST_NO_EVENT]++;
  vsx_timer_soon(ctx, vsx_now(ctx) + 1000000ull);
}

/* send_chunk sends bytes [off, off+n) of the state to r; 0 if short. */
static int send_chunk(vsx_layer_ctx_t *ctx, uint32_t r, uint64_t off, uint32_t n) {
  xfer_t *s = ctx->state;
  vsx_event_t *ev = vsx_ev_alloc(ctx, VSX_EV_SEND);
  if (!ev) return 0;
  uint32_t piece = ctx->payload_max > 128 ? ctx->payload_max - 64 : ctx->payload_max;
  uint8_t *at;
  if ((n && vsx_iovl_from_bytes(ctx->pool, &ev->iovl, s->data + off, n, piece, 0)) ||
      !(at = vsx_hdr_push(ctx, ev, CHUNK_HDR))) {
    vsx_ev_free(ctx, ev);
    return 0;
  }
  mbr_put64(at, off);
  mbr_put64(at + 8, s->len);
  mbr_hdr_t *h = vsx_hdr_push(ctx, ev, sizeof *h);
  if (!h) { vsx_ev_free(ctx, ev); return 0; }
  mbr_hdr_t hv = { .kind = KIND_CHUNK };
  memcpy(h, &hv, sizeof hv);
  ev->peer = (int32_t)r;
  ctx->stats[ST_CHUNKS_SENT]++;
  ctx->stats[ST_BYTES_SENT] += n;
  vsx_pass_dn(ctx, ev);
  return 1;
}

static int send_ctl(vsx_layer_ctx_t *ctx, uint32_t r, uint8_t kind, const void *body, uint32_t len) {
  vsx_event_t *ev = mbr_msg(ctx, VSX_EV_SEND, (int32_t)r, kind, 0, body, len);
  if (!ev) return 0;
  vsx_pass_dn(ctx, ev);
  return 1;
}

static int pass_new(vsx_layer_ctx_t *ctx, uint16_t type, int up) {
  vsx_event_t *ev = vsx_ev_alloc(ctx, type);
  if (!ev) return 0;
  if (up) vsx_pass_up(ctx, ev);
  else vsx_pass_dn(ctx, ev);
  return 1;
}

/* pump sends what is owed: state requests, chunks within the window,
   ACK, XFER_DONE, READY. */
static void pump(vsx_layer_ctx_t *ctx) {
  xfer_t *s = ctx->state;
  int ok = 1;
  if (s->closed) return;
  if (s->ask) { if ((ok = pass_new(ctx, VSX_EV_XFER, 1))) s->ask = 0; }
  for (uint32_t r = 0; ok && s->have && r < ctx->member_cnt; r++) {
    if (!mbr_has(s->mask, r)) continue;
    while (ok && (!mbr_has(s->started, r) ||
                  (s->sent[r] < s->len && s->sent[r] - s->acked[r] < (uint64_t)s->window * s->chunk))) {
      uint64_t left = s->len - s->sent[r];
      uint32_t n = left < s->chunk ? (uint32_t)left : s->chunk;
      if (!(ok = send_chunk(ctx, r, s->sent[r], n))) break;
      s->sent[r] += n;
      s->started |= 1ull << r;
    }
  }
  if (ok && s->ack_todo) {
    uint8_t body[8];
    mbr_put64(body, s->got);
    if ((ok = send_ctl(ctx, (uint32_t)s->source, KIND_ACK, body, sizeof body))) s->ack_todo = 0;
  }
  if (ok && s->complete && !s->done_down) { if ((ok = pass_new(ctx, VSX_EV_XFER_DONE, 0))) s->done_down = 1; }
  while (ok && s->ready_todo) {
    uint32_t r = (uint32_t)mbr_lowest(s->ready_todo);
    if (!(ok = send_ctl(ctx, r, KIND_READY, NULL, 0))) break;
    s->ready_todo &= ~(1ull << r);
  }
  if (ok && s->ready_up && !s->ready) {
    if ((ok = pass_new(ctx, VSX_EV_READY, 1))) { s->ready = 1; s->ready_up = 0; }
  }
  if (!ok) retry_soon(ctx);
}

/* on_chunk: a piece of the state for me; its bytes go up as XFER_PUT.
   Returns 1 if it took ev. */
static int on_chunk(vsx_layer_ctx_t *ctx, uint32_t r, vsx_event_t *ev) {
  xfer_t *s = ctx->state;
  uint8_t b[CHUNK_HDR];
  if ((int32_t)r != s->source || !mbr_has(s->mask, ctx->rank) || vsx_iovl_pop(&ev->iovl, b, sizeof b)) {
    ctx->stats[ST_MALFORMED]++;
    return 0;
  }
  uint64_t off = mbr_get64(b), total = mbr_get64(b + 8), n = vsx_iovl_len(&ev->iovl);
  if (off != s->got || (s->got && total != s->total) || off + n > total || s->complete) { ctx->stats[ST_MALFORMED]++; return 0; }
  s->total = total;
  s->got += n;
  s->ack_todo = 1;
  if (s->got == s->total) s->complete = 1;
  ctx->stats[ST_CHUNKS_RECV]++;
  ctx->stats[ST_BYTES_RECV] += n;
  ev->type = VSX_EV_XFER_PUT;
  ev->u64a = off;
  ev->u64b = total;
  vsx_pass_up(ctx, ev);
  return 1;
}

/* on_ack: r has the first next bytes (source). */
static void on_ack(vsx_layer_ctx_t *ctx, uint32_t r, const uint8_t *b, uint32_t len) {
  xfer_t *s = ctx->state;
  if (len < 8 || !mbr_has(s->mask, r) || !s->have) { ctx->stats[ST_MALFORMED]++; return; }
  uint64_t next = mbr_get64(b);
  if (next > s->sent[r]) { ctx->stats[ST_MALFORMED]++; return; }
  if (next > s->acked[r]) s->acked[r] = next;
  if (s->acked[r] == s->len && mbr_has(s->started, r)) s->done |= 1ull << r;
  if (s->done == s->mask && !s->ready_todo && !s->ready && !s->ready_up) s->ready_todo = s->all;
}

/* app_arrives: an application message while the view is not ready yet
   means READY was sent (see the banner); 0 if it must be dropped. */
static int app_arrives(vsx_layer_ctx_t *ctx) {
  xfer_t *s = ctx->state;
  if (s->ready) return 1;
  if (mbr_has(s->mask, ctx->rank) && !s->complete) { ctx->stats[ST_EARLY]++; return 0; }
  s->ready_up = 1;
  pump(ctx); /* READY goes up before the message */
  return s->ready;
}

/* UP CAST: an application message.  UP SEND: CHUNK, ACK, READY or DATA. */
static void xfer_up(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  xfer_t *s = ctx->state;
  if (ev->type == VSX_EV_CAST) {
    if (app_arrives(ctx)) vsx_pass_up(ctx, ev);
    else vsx_ev_free(ctx, ev);
    return;
  }
  mbr_hdr_t h;
  uint32_t r = (uint32_t)ev->peer;
  if (r >= ctx->member_cnt || vsx_hdr_pop(ev, &h, sizeof h)) { ctx->stats[ST_MALFORMED]++; vsx_ev_free(ctx, ev); return; }
  uint8_t body[8];
  switch (h.kind) {
  case MBR_DATA: /* DATA: an application send */
    if (app_arrives(ctx)) vsx_pass_up(ctx, ev);
    else vsx_ev_free(ctx, ev);
    return;
  case KIND_CHUNK: /* CHUNK: a piece of the state */
    if (!on_chunk(ctx, r, ev)) vsx_ev_free(ctx, ev);
    pump(ctx);
    return;
  case KIND_ACK: /* ACK: progress of a member that needs the state */
    on_ack(ctx, r, body, (uint32_t)vsx_iovl_gather(&ev->iovl, 0, body, sizeof body));
    break;
  case KIND_READY: /* READY: everyone has the state */
    if ((int32_t)r == s->source) s->ready_up = 1;
    else ctx->stats[ST_MALFORMED]++;
    break;
  default:
    ctx->stats[ST_MALFORMED]++;
  }
  vsx_ev_free(ctx, ev);
  pump(ctx);
}

/* DN SEND: tag it DATA.  Casts pass untouched. */
static void xfer_dn(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  if (ev->type == VSX_EV_CAST) { vsx_pass_dn(ctx, ev); return; }
  if (!mbr_push_data(ctx, ev)) { ctx->stats[ST_NO_EVENT]++; vsx_ev_free(ctx, ev); return; }
  vsx_pass_dn(ctx, ev);
}

/* UP INIT: the view starts: ready at once, or the source asks for the
   state.  Others pass. */
static void xfer_upnm(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  xfer_t *s = ctx->state;
  if (ev->type == VSX_EV_INIT) {
    if (!s->mask) s->ready_up = 1;
    else if ((int32_t)ctx->rank == s->source) s->ask = 1;
    vsx_pass_up(ctx, ev);
    pump(ctx);
    return;
  }
  vsx_pass_up(ctx, ev);
}

/* DN XFER: the state's bytes (source).  DN CLOSE: the view ended: the
   application's bytes may change from now on, never read them again.
   Others pass. */
static void xfer_dnnm(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  xfer_t *s = ctx->state;
  if (ev->type == VSX_EV_CLOSE) {
    s->closed = 1;
    s->have = 0;
    s->data = NULL;
  }
  if (ev->type == VSX_EV_XFER) {
    if ((int32_t)ctx->rank == s->source && !s->have) {
      s->have = 1;
      s->data = (const uint8_t *)(uintptr_t)ev->u64a;
      s->len = s->data ? ev->u64b : 0;
    }
    vsx_ev_free(ctx, ev);
    pump(ctx);
    return;
  }
  vsx_pass_dn(ctx, ev);
}

static void xfer_timer(vsx_layer_ctx_t *ctx, uint64_t now) {
  (void)now;
  pump(ctx);
}

const vsx_layer_ops_t vsx_layer_xfer = {
  .name = "xfer", .purpose = "state transfer to members that come into a view",
  .state_sz = sizeof(xfer_t), .needs_below = VSX_CAP_RELIABLE_SEND,
  .stat_names = stat_names, .stat_cnt = ST_CNT,
  .init = xfer_init, .up = xfer_up, .dn = xfer_dn, .upnm = xfer_upnm, .dnnm = xfer_dnnm, .timer = xfer_timer,
  .dump = xfer_dump,
};
