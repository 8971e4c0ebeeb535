/* bundle.c - packs small messages that queue up into one datagram.

   Header (4 bytes, every cast and send):
     kind  u8   SINGLE (one message follows) or BUNDLE
     count u8   BUNDLE: items that follow, each a u16 length and its bytes

   Provides: fewer, fuller datagrams when small messages queue up, and no
             added latency when they do not: a message is held only until
             the stack's event queue drains (the idle call), which happens
             before the stack returns to the endpoint, or, when the
             endpoint batches (in an event loop), until it transmits, just
             before the loop waits.
   Requires: datagrams below.  Place it right above bottom so every
             layer's traffic (retransmissions, acknowledgements, gossip)
             can share datagrams.

   Per destination (the cast channel, and each member for sends) it holds
   the first small message as it is; a second one starts a bundle buffer
   into which both are copied (small messages: a copy is cheaper than a
   frame).  Order per destination is kept: a message too big to bundle
   flushes what is pending for its destination first.  On receipt the
   items become events over sub-lists of the received buffer, no copy. */
#include "vsx/layer.h"
#include <arpa/inet.h>
#include <string.h>

enum { KIND_SINGLE = 1, KIND_BUNDLE = 2 };

typedef struct bundle_hdr { uint8_t kind, count; uint16_t rsvd; } __attribute__((packed)) bundle_hdr_t;
_Static_assert(sizeof(bundle_hdr_t) == 4, "bundle header is 4 bytes");

enum { ST_SINGLES, ST_BUNDLES, ST_BUNDLED, ST_UNBUNDLED, ST_MALFORMED, ST_NO_MEMORY, ST_CNT };
static const char *const stat_names[ST_CNT] = { "singles", "bundles", "bundled_msgs", "unbundled_msgs", "malformed", "no_memory" };

typedef struct pending {
  vsx_event_t *first;  /* a lone small message, untouched            */
  vsx_event_t *bundle; /* the bundle being filled, or NULL           */
  uint32_t used;       /* bytes written into the bundle's buffer     */
} pending_t;

typedef struct bundle {
  uint32_t capacity;   /* bytes of items per bundle                  */
  uint32_t item_max;   /* larger messages travel alone               */
  pending_t cast;
  pending_t send[VSX_MEMBERS_MAX];
} bundle_t;

static int bundle_init(vsx_layer_ctx_t *ctx) {
  bundle_t *s = ctx->state;
  /* payload_max leaves 128 bytes for the wire and lower headers; this
     layer needs only its own 4 and the 40-byte wire header. */
  s->capacity = (uint32_t)vsx_param_u64(ctx, "capacity", ctx->payload_max + 64);
  s->item_max = (uint32_t)vsx_param_u64(ctx, "item_max", 512);
  if (s->capacity > ctx->payload_max + 84 || s->capacity < 128)
    return vsx_fail(VSX_ERR_INVAL, "bundle: capacity=%u outside [128, %u]", s->capacity, ctx->payload_max + 84);
  if (s->item_max + 2 > s->capacity) return vsx_fail(VSX_ERR_INVAL, "bundle: item_max=%u does not fit capacity=%u", s->item_max, s->capacity);
  return VSX_OK;
}

static void free_pending(vsx_layer_ctx_t *ctx, pending_t *p) {
  if (p->first) vsx_ev_free(ctx, p->first);
  if (p->bundle) vsx_ev_free(ctx, p->bundle);
  p->first = p->bundle = NULL;
}

static void bundle_fini(vsx_layer_ctx_t *ctx) {
  bundle_t *s = ctx->state;
  free_pending(ctx, &s->cast);
  for (uint32_t r = 0; r < VSX_MEMBERS_MAX; r++) free_pending(ctx, &s->send[r]);
}

static void pass_single(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  bundle_hdr_t *at = vsx_hdr_push(ctx, ev, sizeof(bundle_hdr_t));
  if (!at) { ctx->stats[ST_NO_MEMORY]++; vsx_ev_free(ctx, ev); return; } /* reliable layers above retransmit */
  bundle_hdr_t h = { .kind = KIND_SINGLE };
  memcpy(at, &h, sizeof h);
  ctx->stats[ST_SINGLES]++;
  vsx_pass_dn(ctx, ev);
}

/* flush sends what is pending for one destination, in order. */
static void flush(vsx_layer_ctx_t *ctx, pending_t *p) {
  if (p->first) { pass_single(ctx, p->first); p->first = NULL; }
  if (!p->bundle) return;
  vsx_event_t *b = p->bundle;
  p->bundle = NULL;
  vsx_iovl_at(&b->iovl, 0)->len = p->used;
  bundle_hdr_t *at = vsx_hdr_push(ctx, b, sizeof(bundle_hdr_t)); /* in place: the buffer is ours alone */
  VSX_ASSERT(at != NULL);
  bundle_hdr_t h = { .kind = KIND_BUNDLE, .count = (uint8_t)b->u64a };
  memcpy(at, &h, sizeof h);
  ctx->stats[ST_BUNDLES]++;
  vsx_pass_dn(ctx, b);
}

/* append copies ev's bytes into p's bundle as one item and frees ev. */
static void append(vsx_layer_ctx_t *ctx, pending_t *p, vsx_event_t *ev) {
  vsx_iovec_t *buf = vsx_iovl_at(&p->bundle->iovl, 0);
  uint8_t *at = vsx_iovec_ptr(buf) + p->used;
  uint16_t len = (uint16_t)vsx_iovl_len(&ev->iovl);
  uint16_t nlen = htons(len);
  memcpy(at, &nlen, 2);
  vsx_iovl_gather(&ev->iovl, 0, at + 2, len);
  p->used += 2u + len;
  p->bundle->u64a++;
  ctx->stats[ST_BUNDLED]++;
  vsx_ev_free(ctx, ev);
}

/* start_bundle turns the held first message into a bundle; 0 if memory
   is short (the caller then sends things as they are). */
static int start_bundle(vsx_layer_ctx_t *ctx, pending_t *p) {
  vsx_event_t *b = vsx_ev_alloc(ctx, p->first->type);
  if (!b) return 0;
  vsx_iovec_t buf;
  if (vsx_buf_alloc(ctx->pool, &buf)) { vsx_ev_free(ctx, b); return 0; }
  vsx_iovl_append_take(&b->iovl, &buf); /* an empty list has room */
  b->peer = p->first->peer;
  b->u64a = 0; /* item count */
  p->bundle = b;
  p->used = 0;
  vsx_event_t *first = p->first;
  p->first = NULL;
  append(ctx, p, first);
  return 1;
}

/* DN CAST/SEND: hold, bundle, or (large) send alone after what waits. */
static void bundle_dn(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  bundle_t *s = ctx->state;
  pending_t *p = ev->type == VSX_EV_CAST ? &s->cast : &s->send[ev->peer];
  size_t len = vsx_iovl_len(&ev->iovl);
  if (len > s->item_max) { flush(ctx, p); pass_single(ctx, ev); return; }
  vsx_idle_request(ctx);
  if (!p->first && !p->bundle) { p->first = ev; return; }
  if (!p->bundle && !start_bundle(ctx, p)) { ctx->stats[ST_NO_MEMORY]++; flush(ctx, p); p->first = ev; return; }
  if (p->used + 2 + len > s->capacity || p->bundle->u64a == 255) { flush(ctx, p); p->first = ev; return; }
  append(ctx, p, ev);
}

/* IDLE: the queue drained: nothing more is coming now, send it all;
   unless the owner batches (an endpoint in an event loop while the
   application casts): then at its flush, just before it transmits, so
   casts the application makes one after another share datagrams. */
static void bundle_idle(vsx_layer_ctx_t *ctx) {
  bundle_t *s = ctx->state;
  if (vsx_stack_batching(ctx)) { vsx_idle_defer(ctx); return; }
  flush(ctx, &s->cast);
  for (uint32_t r = 0; r < ctx->member_cnt; r++) flush(ctx, &s->send[r]);
}

/* UP CAST/SEND: a single passes; a bundle becomes its items, in order. */
static void bundle_up(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  bundle_hdr_t h;
  if (vsx_hdr_pop(ev, &h, sizeof h)) goto malformed;
  if (h.kind == KIND_SINGLE) { vsx_pass_up(ctx, ev); return; }
  if (h.kind != KIND_BUNDLE || !h.count) goto malformed;
  /* Check every length before passing anything up: a bundle is taken
     whole or not at all. */
  size_t total = vsx_iovl_len(&ev->iovl), off = 0;
  for (uint32_t i = 0; i < h.count; i++) {
    uint16_t nlen;
    if (off + 2 > total || vsx_iovl_gather(&ev->iovl, off, &nlen, 2) != 2) goto malformed;
    off += 2u + ntohs(nlen);
    if (off > total) goto malformed;
  }
  if (off != total) goto malformed;
  off = 0;
  for (uint32_t i = 0; i < h.count; i++) {
    uint16_t nlen;
    vsx_iovl_gather(&ev->iovl, off, &nlen, 2);
    uint16_t len = ntohs(nlen);
    vsx_event_t *item = vsx_ev_alloc(ctx, ev->type);
    if (!item || vsx_iovl_sub(&item->iovl, &ev->iovl, off + 2, len)) {
      if (item) vsx_ev_free(ctx, item);
      ctx->stats[ST_NO_MEMORY]++; /* the rest is lost like a dropped datagram; reliable layers recover */
      break;
    }
    item->peer = ev->peer;
    item->flags = ev->flags;
    ctx->stats[ST_UNBUNDLED]++;
    vsx_pass_up(ctx, item);
    off += 2u + len;
  }
  vsx_ev_free(ctx, ev);
  return;
malformed:
  ctx->stats[ST_MALFORMED]++;
  vsx_ev_free(ctx, ev);
}

const vsx_layer_ops_t vsx_layer_bundle = {
  .name = "bundle", .purpose = "packs queued small messages into one datagram",
  .state_sz = sizeof(bundle_t), .needs_below = VSX_CAP_DATAGRAM,
  .stat_names = stat_names, .stat_cnt = ST_CNT,
  .init = bundle_init, .fini = bundle_fini, .up = bundle_up, .dn = bundle_dn, .idle = bundle_idle,
};
