/* chk_fifo.c - test layer: checks FIFO order end to end.

   Header (4 bytes, every cast and send):
     seq u32  the sender's count on this channel (casts: per sender;
              sends: per sender->receiver pair), unreliable ones 0

   Provides: nothing; it watches.  Put it anywhere above the reliable
             layers.  Each reliable message must arrive with exactly the
             next seqno of its channel; a gap, a repeat or a reordering is
             counted as a violation (and aborts with abort=1).
   Requires: datagrams below. */
#include "vsx/layer.h"
#include <arpa/inet.h>
#include <string.h>

enum { ST_CHECKED, ST_VIOLATIONS, ST_MALFORMED, ST_CNT };
static const char *const stat_names[ST_CNT] = { "checked", "violations", "malformed" };

typedef struct chk_fifo {
  int abort_on_violation;
  uint32_t cast_sent, send_sent[VSX_MEMBERS_MAX];
  uint32_t cast_expect[VSX_MEMBERS_MAX], send_expect[VSX_MEMBERS_MAX];
} chk_fifo_t;

static int chk_fifo_init(vsx_layer_ctx_t *ctx) {
  chk_fifo_t *s = ctx->state;
  s->abort_on_violation = (int)vsx_param_u64(ctx, "abort", 0);
  return VSX_OK;
}

/* UP CAST/SEND: compare with the next expected seqno of the channel. */
static void chk_fifo_up(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  chk_fifo_t *s = ctx->state;
  uint32_t seq, r = (uint32_t)ev->peer;
  if (vsx_hdr_pop(ev, &seq, sizeof seq) || r >= ctx->member_cnt) {
    ctx->stats[ST_MALFORMED]++;
    vsx_ev_free(ctx, ev);
    return;
  }
  if (!(ev->flags & VSX_EVF_UNREL)) {
    uint32_t *expect = ev->type == VSX_EV_CAST ? &s->cast_expect[r] : &s->send_expect[r];
    seq = ntohl(seq);
    ctx->stats[ST_CHECKED]++;
    if (seq != *expect) {
      ctx->stats[ST_VIOLATIONS]++;
      vsx_log(0, "chk_fifo: rank %u got %s #%u from %u, expected #%u", ctx->rank,
              ev->type == VSX_EV_CAST ? "cast" : "send", seq, r, *expect);
      if (s->abort_on_violation) vsx_fatal("chk_fifo: FIFO violated at rank %u", ctx->rank);
    }
    *expect = seq + 1;
  }
  vsx_pass_up(ctx, ev);
}

/* DN CAST/SEND: number reliable messages per channel. */
static void chk_fifo_dn(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  chk_fifo_t *s = ctx->state;
  uint32_t seq = 0;
  if (!(ev->flags & VSX_EVF_UNREL)) seq = ev->type == VSX_EV_CAST ? s->cast_sent++ : s->send_sent[ev->peer]++;
  void *at = vsx_hdr_push(ctx, ev, sizeof seq);
  if (!at) { vsx_ev_free(ctx, ev); return; }
  seq = htonl(seq);
  memcpy(at, &seq, sizeof seq);
  vsx_pass_dn(ctx, ev);
}

const vsx_layer_ops_t vsx_layer_chk_fifo = {
  .name = "chk_fifo", .purpose = "test: checks per-sender FIFO order without gaps",
  .state_sz = sizeof(chk_fifo_t), .needs_below = VSX_CAP_DATAGRAM,
  .stat_names = stat_names, .stat_cnt = ST_CNT,
  .init = chk_fifo_init, .up = chk_fifo_up, .dn = chk_fifo_dn,
};
