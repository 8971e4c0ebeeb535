/* frag.c - fragmentation and reassembly of messages larger than one
   datagram.

   Header (8 bytes, every cast and send):
     kind  u8   WHOLE (not fragmented), FIRST, MID, LAST
     total u32  FIRST: bytes of the whole message; others: 0

   Provides: messages up to max_msg (default 4 MiB) bytes.
   Requires: reliable FIFO casts and sends below: fragments of one origin
             arrive in order and none is lost, so one reassembly slot per
             (origin, cast|send) suffices.  Clears "casts in mnak units":
             layers above count whole messages.

   Cutting never copies: fragments are sub-lists of the message.  The
   endpoint copies application data into buffers of payload_max - 64 bytes,
   so each fragment is exactly one buffer and the headers below land in
   its headroom.  If event records run short mid-message the whole message
   is parked and cut later, never half sent.  A Dn BLOCK_OK (the view is
   ending) waits behind parked messages, so they are all sent in the view
   that accepted them.

   Reassembly never drops a reliable fragment for want of memory: if the
   iovec extension arrays run out, the fragment is held (with every later
   one of the same origin and kind, in order) and retried every
   millisecond; an Up SYNC (the flush's end of the view) waits behind held
   fragments, so the layers above see every cast of the view first. */
#include "vsx/layer.h"
#include "evq.h"
#include <arpa/inet.h>
#include <string.h>

enum { KIND_WHOLE = 1, KIND_FIRST = 2, KIND_MID = 3, KIND_LAST = 4 };

typedef struct frag_hdr { uint8_t kind, rsvd[3]; uint32_t total; } __attribute__((packed)) frag_hdr_t;
_Static_assert(sizeof(frag_hdr_t) == 8, "frag header is 8 bytes");

enum { ST_WHOLE, ST_FRAGMENTED, ST_FRAGMENTS, ST_REASSEMBLED, ST_PARKED, ST_MALFORMED, ST_TOO_BIG, ST_NO_MEMORY, ST_CNT };
static const char *const stat_names[ST_CNT] = {
  "whole", "fragmented", "fragments", "reassembled", "parked", "malformed", "too_big", "no_memory" };
#define RETRY_NS 1000000ull

#define FRAG_MAX_PER_MSG 8192

typedef struct reasm {
  vsx_iovl_t acc;   /* fragments so far                           */
  uint32_t total;   /* expected bytes, 0 = no message in progress */
  uint8_t bad;      /* drop fragments until the next FIRST        */
} reasm_t;

typedef struct frag {
  uint32_t max_msg;
  uint32_t frag_sz;                /* payload bytes per fragment     */
  vsx_evq_t parked;                /* messages waiting for records   */
  vsx_evq_t block_oks;             /* BLOCK_OKs waiting behind them  */
  reasm_t in[VSX_MEMBERS_MAX][2];  /* [origin][0 cast, 1 send]       */
  vsx_evq_t held[VSX_MEMBERS_MAX][2]; /* fragments waiting for memory  */
  uint32_t held_cnt;               /* events in held[][]              */
  vsx_evq_t syncs;                 /* Up SYNCs waiting behind them    */
  size_t ends[FRAG_MAX_PER_MSG];   /* scratch for send_fragments     */
  vsx_event_t *parts[FRAG_MAX_PER_MSG];
} frag_t;

static int frag_init(vsx_layer_ctx_t *ctx) {
  frag_t *s = ctx->state;
  s->max_msg = (uint32_t)vsx_param_u64(ctx, "max_msg", 4u << 20);
  s->frag_sz = ctx->payload_max - (uint32_t)sizeof(frag_hdr_t);
  if (s->max_msg < (1u << 20)) return vsx_fail(VSX_ERR_INVAL, "frag: max_msg=%u is below 1 MiB", s->max_msg);
  if (ctx->payload_max < 256) return vsx_fail(VSX_ERR_INVAL, "frag: payload_max=%u too small", ctx->payload_max);
  return VSX_OK;
}

static void frag_fini(vsx_layer_ctx_t *ctx) {
  frag_t *s = ctx->state;
  vsx_evq_free_all(ctx, &s->parked);
  vsx_evq_free_all(ctx, &s->block_oks);
  vsx_evq_free_all(ctx, &s->syncs);
  for (uint32_t r = 0; r < VSX_MEMBERS_MAX; r++)
    for (int k = 0; k < 2; k++) {
      vsx_iovl_free(&s->in[r][k].acc);
      vsx_evq_free_all(ctx, &s->held[r][k]);
    }
}

static void frag_dump(vsx_layer_ctx_t *ctx, FILE *out) {
  frag_t *s = ctx->state;
  fprintf(out, "    fragment %u bytes, max message %u, parked %u, held for memory %u\n", s->frag_sz, s->max_msg,
          s->parked.cnt, s->held_cnt);
}

static int put_hdr(vsx_layer_ctx_t *ctx, vsx_event_t *ev, uint8_t kind, uint32_t total) {
  void *at = vsx_hdr_push(ctx, ev, sizeof(frag_hdr_t));
  if (!at) return VSX_ERR_AGAIN;
  frag_hdr_t h = { .kind = kind, .total = htonl(total) };
  memcpy(at, &h, sizeof h);
  return VSX_OK;
}

/* cut_points fills ends[] with the end offset of each fragment: whole
   pieces are packed up to frag_sz, a piece is split only if it alone is
   larger.  Returns the fragment count, or 0 if there would be too many. */
static uint32_t cut_points(const frag_t *s, const vsx_iovl_t *l, size_t *ends, uint32_t max) {
  uint32_t n = 0;
  size_t at = 0, start = 0;
  for (uint32_t i = 0; i < l->cnt; i++) {
    size_t len = vsx_iovl_at_c(l, i)->len;
    if (at + len - start > s->frag_sz && at > start) { /* close before this piece */
      if (n == max) return 0;
      ends[n++] = at;
      start = at;
    }
    while (at + len - start > s->frag_sz) { /* the piece alone is too big */
      if (n == max) return 0;
      ends[n++] = start + s->frag_sz;
      start += s->frag_sz;
    }
    at += len;
  }
  if (at > start) {
    if (n == max) return 0;
    ends[n++] = at;
  }
  return n;
}

/* send_fragments cuts ev into fragments and passes them down.  Returns 0
   (ev untouched) when event records or list space run short. */
static int send_fragments(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  frag_t *s = ctx->state;
  size_t *ends = s->ends;
  vsx_event_t **parts = s->parts;
  size_t total = vsx_iovl_len(&ev->iovl);
  uint32_t n = cut_points(s, &ev->iovl, ends, FRAG_MAX_PER_MSG);
  VSX_ASSERT(n >= 2);
  uint32_t made = 0;
  int failed = 0;
  for (; made < n && !failed; made++) {
    size_t start = made ? ends[made - 1] : 0;
    vsx_event_t *p = vsx_ev_alloc(ctx, ev->type);
    if (!p) break;
    parts[made] = p;
    p->peer = ev->peer;
    p->flags = ev->flags;
    p->svc = ev->svc;
    failed = vsx_iovl_sub(&p->iovl, &ev->iovl, start, ends[made] - start) ||
             put_hdr(ctx, p, made == 0 ? KIND_FIRST : made + 1 == n ? KIND_LAST : KIND_MID, made ? 0 : (uint32_t)total);
  }
  if (made < n || failed) {
    for (uint32_t i = 0; i < made; i++) vsx_ev_free(ctx, parts[i]);
    ctx->stats[ST_NO_MEMORY]++;
    return 0;
  }
  for (uint32_t i = 0; i < n; i++) vsx_pass_dn(ctx, parts[i]);
  ctx->stats[ST_FRAGMENTED]++;
  ctx->stats[ST_FRAGMENTS] += n;
  vsx_ev_free(ctx, ev);
  return 1;
}

static void drain_parked(vsx_layer_ctx_t *ctx) {
  frag_t *s = ctx->state;
  vsx_event_t *ev;
  while ((ev = vsx_evq_pop(&s->parked))) {
    if (!send_fragments(ctx, ev)) { vsx_evq_unpop(&s->parked, ev); break; }
  }
  vsx_flow_block(ctx, s->parked.cnt > 0);
  if (s->parked.cnt) vsx_timer_soon(ctx, vsx_now(ctx) + 1000000ull);
  while (!s->parked.cnt && (ev = vsx_evq_pop(&s->block_oks))) vsx_pass_dn(ctx, ev);
}

/* DN BLOCK_OK: goes on once nothing is parked.  Others pass. */
static void frag_dnnm(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  frag_t *s = ctx->state;
  if (ev->type == VSX_EV_BLOCK_OK && s->parked.cnt) { vsx_evq_push(&s->block_oks, ev); return; }
  vsx_pass_dn(ctx, ev);
}

/* DN CAST/SEND: small messages get a WHOLE header; large ones are cut. */
static void frag_dn(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  frag_t *s = ctx->state;
  size_t len = vsx_iovl_len(&ev->iovl);
  if (len > s->max_msg || ((ev->flags & VSX_EVF_UNREL) && len > s->frag_sz)) {
    ctx->stats[ST_TOO_BIG]++; /* the endpoint refuses these before they get here */
    vsx_ev_free(ctx, ev);
    return;
  }
  if (len <= s->frag_sz) {
    if (put_hdr(ctx, ev, KIND_WHOLE, 0)) { ctx->stats[ST_NO_MEMORY]++; vsx_ev_free(ctx, ev); return; }
    ctx->stats[ST_WHOLE]++;
    vsx_pass_dn(ctx, ev);
    return;
  }
  if (s->parked.cnt || !send_fragments(ctx, ev)) {
    ctx->stats[ST_PARKED]++;
    vsx_evq_push(&s->parked, ev);
    drain_parked(ctx);
  }
}

/* reassemble takes one reliable message or fragment of origin r whose
   header (kind in u64a, total in u64b) was popped.  Returns 0, ev
   untouched, when the extension arrays ran out: the caller holds it. */
static int reassemble(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  frag_t *s = ctx->state;
  uint32_t r = (uint32_t)ev->peer, kind = (uint32_t)ev->u64a, total = (uint32_t)ev->u64b;
  reasm_t *ra = &s->in[r][ev->type == VSX_EV_SEND];
  ev->u64a = ev->u64b = 0;
  switch (kind) {
  case KIND_WHOLE: /* WHOLE: pass; a half-built message before it is broken */
    if (ra->total) goto broken;
    vsx_pass_up(ctx, ev);
    return 1;
  case KIND_FIRST: /* FIRST: start collecting */
    if (ra->total) goto broken;
    if (total > s->max_msg || total <= s->frag_sz) { ra->bad = 1; goto malformed; }
    if (vsx_iovl_concat_take(&ra->acc, &ev->iovl)) goto no_memory;
    ra->bad = 0;
    ra->total = total;
    vsx_ev_free(ctx, ev);
    return 1;
  case KIND_MID:  /* MID: collect */
  case KIND_LAST: /* LAST: collect and deliver */
    if (ra->bad) { vsx_ev_free(ctx, ev); return 1; }
    if (!ra->total) goto malformed;
    if (vsx_iovl_len(&ra->acc) + vsx_iovl_len(&ev->iovl) > ra->total) goto broken;
    if (kind == KIND_LAST && vsx_iovl_len(&ra->acc) + vsx_iovl_len(&ev->iovl) != ra->total) goto broken;
    if (vsx_iovl_concat_take(&ra->acc, &ev->iovl)) goto no_memory;
    if (kind == KIND_MID) { vsx_ev_free(ctx, ev); return 1; }
    ev->iovl = ra->acc; /* ev's own list was emptied by concat */
    vsx_iovl_init(&ra->acc);
    ra->total = 0;
    ctx->stats[ST_REASSEMBLED]++;
    vsx_pass_up(ctx, ev);
    return 1;
  }
malformed:
  ctx->stats[ST_MALFORMED]++;
  vsx_ev_free(ctx, ev);
  return 1;
no_memory: /* the pool's extension arrays are all in use: hold and retry */
  ev->u64a = kind;
  ev->u64b = total;
  ctx->stats[ST_NO_MEMORY]++;
  return 0;
broken:
  /* Reliable FIFO below makes this impossible for well-formed peers; a
     broken stream is dropped whole until its next FIRST. */
  ctx->stats[ST_MALFORMED]++;
  vsx_iovl_free(&ra->acc);
  ra->total = 0;
  ra->bad = 1;
  vsx_ev_free(ctx, ev);
  return 1;
}

/* retry_held takes held fragments in order while memory allows, and
   lets held SYNCs go once none is left. */
static void retry_held(vsx_layer_ctx_t *ctx) {
  frag_t *s = ctx->state;
  vsx_event_t *ev;
  for (uint32_t r = 0; r < ctx->member_cnt && s->held_cnt; r++)
    for (int k = 0; k < 2; k++)
      while ((ev = vsx_evq_pop(&s->held[r][k]))) {
        if (!reassemble(ctx, ev)) { vsx_evq_unpop(&s->held[r][k], ev); break; }
        s->held_cnt--;
      }
  if (s->held_cnt) vsx_timer_soon(ctx, vsx_now(ctx) + RETRY_NS);
  while (!s->held_cnt && (ev = vsx_evq_pop(&s->syncs))) vsx_pass_up(ctx, ev);
}

/* UP CAST/SEND: pass whole messages, collect fragments, pass the message
   when its LAST fragment completes the announced length. */
static void frag_up(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  frag_t *s = ctx->state;
  frag_hdr_t h;
  uint32_t r = (uint32_t)ev->peer;
  if (vsx_hdr_pop(ev, &h, sizeof h) || r >= ctx->member_cnt) {
    ctx->stats[ST_MALFORMED]++;
    vsx_ev_free(ctx, ev);
    return;
  }
  /* UNREL: never fragmented, and not part of the reliable stream: it may
     arrive between the fragments of a reliable message, so it must not
     touch the reassembly slot. */
  if (ev->flags & VSX_EVF_UNREL) {
    if (h.kind != KIND_WHOLE) { ctx->stats[ST_MALFORMED]++; vsx_ev_free(ctx, ev); return; }
    vsx_pass_up(ctx, ev);
    return;
  }
  ev->u64a = h.kind;
  ev->u64b = ntohl(h.total);
  vsx_evq_t *q = &s->held[r][ev->type == VSX_EV_SEND];
  if (q->cnt || !reassemble(ctx, ev)) { /* behind held ones, in order */
    vsx_evq_push(q, ev);
    s->held_cnt++;
    vsx_timer_soon(ctx, vsx_now(ctx) + RETRY_NS);
  }
}

/* UP SYNC: the view's casts end here; it waits behind held fragments. */
static void frag_upnm(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  frag_t *s = ctx->state;
  if (ev->type == VSX_EV_SYNC && (s->held_cnt || s->syncs.cnt)) { vsx_evq_push(&s->syncs, ev); return; }
  vsx_pass_up(ctx, ev);
}

static void frag_timer(vsx_layer_ctx_t *ctx, uint64_t now) {
  (void)now;
  drain_parked(ctx);
  retry_held(ctx);
}

const vsx_layer_ops_t vsx_layer_frag = {
  .name = "frag", .purpose = "fragmentation and reassembly of large messages",
  .state_sz = sizeof(frag_t), .provides = VSX_CAP_LARGE_MSG, .clears = VSX_CAP_CAST_UNITS,
  .needs_below = VSX_CAP_RELIABLE_CAST | VSX_CAP_RELIABLE_SEND,
  .stat_names = stat_names, .stat_cnt = ST_CNT,
  .init = frag_init, .fini = frag_fini, .up = frag_up, .dn = frag_dn, .upnm = frag_upnm, .dnnm = frag_dnnm,
  .timer = frag_timer, .dump = frag_dump,
};
