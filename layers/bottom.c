/* bottom.c - the lowest layer: the vsx wire header and the door to the
   transport.

   Wire header: vsx_wire_hdr_t (include/vsx/wire.h), 40 bytes.
   Provides:    unreliable casts and sends (VSX_CAP_DATAGRAM).
   Requires:    a transport below (the stack's sink_dn).

   Down, it stamps each message with the group, the stack instance, the
   sender and the receiver, and hands it to the transport.  Up, it is the
   gate bad input must not pass: a datagram that is truncated, has wrong
   lengths, an unknown version, another group, a stale view, an unknown
   sender or is not ours at all is dropped and counted, never passed on.
   Events without a message that reach it going down are bounced back up,
   so that every layer sees them (as Ensemble's bottom did).

   GOSSIP (membership traffic outside any view: discovery, merge requests)
   travels as wire kind GOSSIP.  Going down, a VSX_EV_GOSSIP leaves as a
   datagram to u64a (0 = the whole group).  Coming up, a GOSSIP datagram
   of this group passes whatever its instance (that is the point: it
   crosses views), as VSX_EV_GOSSIP with u64a = sender, u64b = instance;
   everything else about it is checked as for any datagram. */
#include "vsx/layer.h"
#include "vsx/wire.h"

enum { ST_SENT, ST_RECV, ST_BAD_MAGIC, ST_BAD_VERSION, ST_BAD_LEN, ST_OTHER_GROUP, ST_STALE_VIEW,
       ST_UNKNOWN_SENDER, ST_NOT_FOR_ME, ST_OWN, ST_NO_BUFFER, ST_TOO_BIG, ST_GOSSIP_SENT, ST_GOSSIP_RECV, ST_CNT };
static const char *const stat_names[ST_CNT] = {
  "sent", "received", "drop_magic", "drop_version", "drop_length", "drop_group", "drop_stale",
  "drop_sender", "drop_not_mine", "drop_own", "drop_no_buffer", "drop_too_big", "gossip_sent", "gossip_recv" };
_Static_assert(ST_CNT <= VSX_LAYER_STATS_MAX, "bottom: too many counters");

typedef struct bottom { uint32_t mtu_payload; } bottom_t;

static int bottom_init(vsx_layer_ctx_t *ctx) {
  bottom_t *s = ctx->state;
  s->mtu_payload = (uint32_t)vsx_param_u64(ctx, "mtu_payload", VSX_WIRE_MTU_PAYLOAD);
  if (s->mtu_payload < 256 || s->mtu_payload > 65507)
    return vsx_fail(VSX_ERR_INVAL, "bottom: mtu_payload=%u outside [256, 65507]", s->mtu_payload);
  return VSX_OK;
}

/* rank_of maps an endpoint id to its rank in the view, or -1. */
static int rank_of(const vsx_layer_ctx_t *ctx, uint64_t eid) {
  for (uint32_t r = 0; r < ctx->member_cnt; r++)
    if (ctx->view->members[r] == eid) return (int)r;
  return -1;
}

static void drop(vsx_layer_ctx_t *ctx, vsx_event_t *ev, int stat) {
  ctx->stats[stat]++;
  vsx_ev_free(ctx, ev);
}

/* UP CAST/SEND (a received datagram): check everything, then pass it up
   with peer set to the sender's rank and type from the header kind. */
static void bottom_up(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  uint8_t raw[sizeof(vsx_wire_hdr_t)];
  vsx_wire_hdr_t h;
  size_t len = vsx_iovl_len(&ev->iovl);
  if (vsx_iovl_pop(&ev->iovl, raw, sizeof raw)) { drop(ctx, ev, ST_BAD_LEN); return; }
  vsx_wire_decode(&h, raw);
  if (h.magic != VSX_WIRE_MAGIC) { drop(ctx, ev, ST_BAD_MAGIC); return; }
  if (h.version != VSX_WIRE_VERSION) { drop(ctx, ev, ST_BAD_VERSION); return; }
  if (h.total_len != len) { drop(ctx, ev, ST_BAD_LEN); return; }
  if (h.group_id != ctx->group_id) { drop(ctx, ev, ST_OTHER_GROUP); return; }
  if (h.kind == VSX_WIRE_GOSSIP) { /* GOSSIP: any instance, any sender but me */
    if (h.src_eid == ctx->eid || !h.src_eid) { drop(ctx, ev, ST_OWN); return; }
    if (h.dst_eid != 0 && h.dst_eid != ctx->eid) { drop(ctx, ev, ST_NOT_FOR_ME); return; }
    ev->type = VSX_EV_GOSSIP;
    ev->peer = rank_of(ctx, h.src_eid);
    ev->u64a = h.src_eid;
    ev->u64b = h.instance;
    ctx->stats[ST_GOSSIP_RECV]++;
    vsx_pass_up(ctx, ev);
    return;
  }
  if (h.kind != VSX_WIRE_CAST && h.kind != VSX_WIRE_SEND) { drop(ctx, ev, ST_BAD_MAGIC); return; }
  if (h.instance != ctx->instance) { drop(ctx, ev, ST_STALE_VIEW); return; }
  if (h.src_eid == ctx->eid) { drop(ctx, ev, ST_OWN); return; }
  int rank = rank_of(ctx, h.src_eid);
  if (rank < 0) { drop(ctx, ev, ST_UNKNOWN_SENDER); return; }
  if (h.kind == VSX_WIRE_SEND && h.dst_eid != ctx->eid) { drop(ctx, ev, ST_NOT_FOR_ME); return; }
  if (h.kind == VSX_WIRE_CAST && h.dst_eid != 0) { drop(ctx, ev, ST_NOT_FOR_ME); return; }
  ev->type = h.kind == VSX_WIRE_CAST ? VSX_EV_CAST : VSX_EV_SEND;
  ev->peer = rank;
  ctx->stats[ST_RECV]++;
  vsx_pass_up(ctx, ev);
}

/* DN CAST/SEND: push the wire header and hand the datagram to the
   transport.  A message too big for one datagram here is a bug above
   (frag, or the endpoint's size check), counted and dropped. */
static void bottom_dn(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  bottom_t *s = ctx->state;
  size_t len = vsx_iovl_len(&ev->iovl) + sizeof(vsx_wire_hdr_t);
  if (len > s->mtu_payload) { drop(ctx, ev, ST_TOO_BIG); return; }
  VSX_ASSERT(ev->type == VSX_EV_CAST || ev->type == VSX_EV_SEND);
  VSX_ASSERT(ev->type == VSX_EV_CAST || (ev->peer >= 0 && (uint32_t)ev->peer < ctx->member_cnt));
  void *at = vsx_hdr_push(ctx, ev, sizeof(vsx_wire_hdr_t));
  if (!at) { drop(ctx, ev, ST_NO_BUFFER); return; }
  vsx_wire_hdr_t h = {
    .magic = VSX_WIRE_MAGIC, .version = VSX_WIRE_VERSION,
    .kind = ev->type == VSX_EV_CAST ? VSX_WIRE_CAST : VSX_WIRE_SEND,
    .total_len = (uint32_t)len, .group_id = ctx->group_id, .instance = ctx->instance,
    .src_eid = ctx->eid, .dst_eid = ev->type == VSX_EV_SEND ? ctx->view->members[ev->peer] : 0,
  };
  vsx_wire_encode(at, &h);
  ctx->stats[ST_SENT]++;
  vsx_pass_dn(ctx, ev);
}

/* DN GOSSIP: push the wire header (kind GOSSIP, dst u64a) and send.
   DN (any other event without a message): bounce back up so every layer
   above sees it. */
static void bottom_dnnm(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  bottom_t *s = ctx->state;
  if (ev->type != VSX_EV_GOSSIP) { vsx_pass_up(ctx, ev); return; }
  size_t len = vsx_iovl_len(&ev->iovl) + sizeof(vsx_wire_hdr_t);
  if (len > s->mtu_payload) { drop(ctx, ev, ST_TOO_BIG); return; }
  void *at = vsx_hdr_push(ctx, ev, sizeof(vsx_wire_hdr_t));
  if (!at) { drop(ctx, ev, ST_NO_BUFFER); return; }
  vsx_wire_hdr_t h = {
    .magic = VSX_WIRE_MAGIC, .version = VSX_WIRE_VERSION, .kind = VSX_WIRE_GOSSIP,
    .total_len = (uint32_t)len, .group_id = ctx->group_id, .instance = ctx->instance,
    .src_eid = ctx->eid, .dst_eid = ev->u64a,
  };
  vsx_wire_encode(at, &h);
  ctx->stats[ST_GOSSIP_SENT]++;
  vsx_pass_dn(ctx, ev);
}

const vsx_layer_ops_t vsx_layer_bottom = {
  .name = "bottom", .purpose = "wire header, transport door, bad-input gate",
  .state_sz = sizeof(bottom_t), .provides = VSX_CAP_DATAGRAM,
  .stat_names = stat_names, .stat_cnt = ST_CNT,
  .init = bottom_init, .up = bottom_up, .dn = bottom_dn, .dnnm = bottom_dnnm,
};
