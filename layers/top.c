/* top.c - the application adapter: the topmost layer of every stack.

   Header (4 bytes, every cast and send):
     svc  u8   the service the application asked for (fifo/total/safe/p2p)

   Provides: the application's view of the stack (VSX_CAP_APPL): each
             message carries its service class up to the deliver callback,
             and per-origin counts of application casts and sends (what
             the view-change flush compares).
   Requires: nothing below it in particular; it must be the first layer.

   Everything above it is the stack's owner (the endpoint). */
#include "vsx/layer.h"
#include <string.h>

typedef struct top_hdr { uint8_t svc, rsvd[3]; } __attribute__((packed)) top_hdr_t;
_Static_assert(sizeof(top_hdr_t) == 4, "top header is 4 bytes");

enum { ST_CASTS_SENT, ST_SENDS_SENT, ST_CASTS_RECV, ST_SENDS_RECV, ST_MALFORMED, ST_NO_BUFFER, ST_CNT };
static const char *const stat_names[ST_CNT] = { "casts_sent", "sends_sent", "casts_recv", "sends_recv", "malformed", "no_buffer" };

typedef struct top {
  uint64_t casts_recv[VSX_MEMBERS_MAX]; /* application casts delivered, per origin */
  uint64_t sends_recv[VSX_MEMBERS_MAX];
} top_t;

static int top_init(vsx_layer_ctx_t *ctx) {
  if (ctx->idx != 0) return vsx_fail(VSX_ERR_PLACEMENT, "top: must be the first layer of the stack, not number %u", ctx->idx + 1);
  return VSX_OK;
}

/* UP CAST/SEND: read the service class and hand the message to the owner. */
static void top_up(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  top_t *s = ctx->state;
  top_hdr_t h;
  if (vsx_hdr_pop(ev, &h, sizeof h) || !h.svc || h.svc > VSX_SVC_P2P || (uint32_t)ev->peer >= ctx->member_cnt) {
    ctx->stats[ST_MALFORMED]++;
    vsx_ev_free(ctx, ev);
    return;
  }
  ev->svc = h.svc;
  if (ev->type == VSX_EV_CAST) { s->casts_recv[ev->peer]++; ctx->stats[ST_CASTS_RECV]++; }
  else { s->sends_recv[ev->peer]++; ctx->stats[ST_SENDS_RECV]++; }
  vsx_pass_up(ctx, ev);
}

/* DN CAST/SEND: stamp the service class. */
static void top_dn(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  void *at = vsx_hdr_push(ctx, ev, sizeof(top_hdr_t));
  if (!at) { ctx->stats[ST_NO_BUFFER]++; vsx_ev_free(ctx, ev); return; } /* the endpoint keeps a reserve for this */
  top_hdr_t h = { .svc = ev->svc ? ev->svc : (ev->type == VSX_EV_SEND ? VSX_SVC_P2P : VSX_SVC_FIFO) };
  memcpy(at, &h, sizeof h);
  ctx->stats[ev->type == VSX_EV_CAST ? ST_CASTS_SENT : ST_SENDS_SENT]++;
  vsx_pass_dn(ctx, ev);
}

const vsx_layer_ops_t vsx_layer_top = {
  .name = "top", .purpose = "application adapter (service class, per-origin counts)",
  .state_sz = sizeof(top_t), .provides = VSX_CAP_APPL, .needs_below = VSX_CAP_DATAGRAM,
  .stat_names = stat_names, .stat_cnt = ST_CNT,
  .init = top_init, .up = top_up, .dn = top_dn,
};
