/* mbr.h - helpers shared by the membership layers (suspect, vsync,
   intra, inter, xfer): rank bitmaps, control messages, and the wire form
   of a view.  Private to layers/.

   Control messages.  Each membership layer that has messages of its own
   pushes a fixed 4-byte header (mbr_hdr_t) on every send (or cast) of
   its type, as every layer does: kind DATA for messages of the layers
   above, its own kinds otherwise.  A control message's body (counts, a
   view) is copied into pool buffers, the header pushed in front.

   Views on the wire (network order), MBR_VIEW_SZ(cnt) bytes:
     ltime u64, coord u64, xfer_mask u64, flags u32, cnt u32, cnt x eid u64 */
#ifndef VSX_LAYERS_MBR_H
#define VSX_LAYERS_MBR_H

#include <endian.h>
#include <string.h>
#include "vsx/layer.h"

typedef struct mbr_hdr { uint8_t kind, rsvd; uint16_t cnt; } __attribute__((packed)) mbr_hdr_t;
_Static_assert(sizeof(mbr_hdr_t) == 4, "membership header is 4 bytes");

enum { MBR_DATA = 1 }; /* kind of a message of the layers above; layer kinds start at 2 */

#define MBR_VIEW_SZ(cnt) (32u + 8u * (uint32_t)(cnt))
#define MBR_BODY_MAX MBR_VIEW_SZ(VSX_MEMBERS_MAX)

/* mbr_all: the bitmap of ranks 0..n-1. */
static inline uint64_t mbr_all(uint32_t n) { return n >= 64 ? ~0ull : (1ull << n) - 1; }
static inline int mbr_has(uint64_t set, uint32_t r) { return r < 64 && ((set >> r) & 1); }
/* mbr_lowest: the lowest rank in set, or -1 when it is empty. */
static inline int mbr_lowest(uint64_t set) { return set ? __builtin_ctzll(set) : -1; }
static inline uint32_t mbr_cnt(uint64_t set) { return (uint32_t)__builtin_popcountll(set); }

/* mbr_msg returns a message event of type (VSX_EV_SEND to rank peer, or
   VSX_EV_CAST) carrying header (kind, cnt) and a copy of body, or NULL
   when event records or buffers are short (the caller retries later). */
static inline vsx_event_t *mbr_msg(vsx_layer_ctx_t *ctx, uint16_t type, int32_t peer, uint8_t kind, uint16_t cnt,
                                   const void *body, uint32_t len) {
  vsx_event_t *ev = vsx_ev_alloc(ctx, type);
  if (!ev) return NULL;
  if (len && vsx_iovl_from_bytes(ctx->pool, &ev->iovl, body, len, 0, 0)) { vsx_ev_free(ctx, ev); return NULL; }
  mbr_hdr_t *at = vsx_hdr_push(ctx, ev, sizeof(mbr_hdr_t));
  if (!at) { vsx_ev_free(ctx, ev); return NULL; }
  mbr_hdr_t h = { .kind = kind, .cnt = htobe16(cnt) };
  memcpy(at, &h, sizeof h);
  ev->peer = peer;
  return ev;
}

/* mbr_push_data gives a message of the layers above its DATA header;
   returns 0 when no buffer was free (the caller drops the event: the
   reliable layers below have not seen it, the owner's reserve makes this
   rare). */
static inline int mbr_push_data(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  mbr_hdr_t *at = vsx_hdr_push(ctx, ev, sizeof(mbr_hdr_t));
  if (!at) return 0;
  mbr_hdr_t h = { .kind = MBR_DATA };
  memcpy(at, &h, sizeof h);
  return 1;
}

static inline void mbr_put64(uint8_t *p, uint64_t v) { v = htobe64(v); memcpy(p, &v, 8); }
static inline void mbr_put32(uint8_t *p, uint32_t v) { v = htobe32(v); memcpy(p, &v, 4); }
static inline uint64_t mbr_get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return be64toh(v); }
static inline uint32_t mbr_get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return be32toh(v); }

/* mbr_view_put writes v at p (MBR_VIEW_SZ(v->member_cnt) bytes). */
static inline uint32_t mbr_view_put(uint8_t *p, const vsx_view_t *v) {
  VSX_ASSERT(v->member_cnt >= 1 && v->member_cnt <= VSX_MEMBERS_MAX);
  mbr_put64(p, v->ltime);
  mbr_put64(p + 8, v->coord_eid);
  mbr_put64(p + 16, v->xfer_mask);
  mbr_put32(p + 24, v->flags);
  mbr_put32(p + 28, v->member_cnt);
  for (uint32_t i = 0; i < v->member_cnt; i++) mbr_put64(p + 32 + 8 * i, v->members[i]);
  return MBR_VIEW_SZ(v->member_cnt);
}

/* mbr_view_get reads a view from len bytes at p; returns its size, or 0
   if it is malformed (bad count, length, zero or repeated ids, a
   coordinator that is not the first member). */
static inline uint32_t mbr_view_get(const uint8_t *p, uint32_t len, vsx_view_t *v) {
  if (len < 32) return 0;
  memset(v, 0, sizeof *v);
  v->ltime = mbr_get64(p);
  v->coord_eid = mbr_get64(p + 8);
  v->xfer_mask = mbr_get64(p + 16);
  v->flags = mbr_get32(p + 24);
  v->member_cnt = mbr_get32(p + 28);
  if (v->member_cnt < 1 || v->member_cnt > VSX_MEMBERS_MAX || len < MBR_VIEW_SZ(v->member_cnt)) return 0;
  for (uint32_t i = 0; i < v->member_cnt; i++) {
    v->members[i] = mbr_get64(p + 32 + 8 * i);
    if (!v->members[i]) return 0;
    for (uint32_t j = 0; j < i; j++)
      if (v->members[j] == v->members[i]) return 0;
  }
  if (v->coord_eid != v->members[0] || (v->xfer_mask & ~mbr_all(v->member_cnt))) return 0;
  return MBR_VIEW_SZ(v->member_cnt);
}

/* mbr_view_find returns eid's rank in v, or -1. */
static inline int mbr_view_find(const vsx_view_t *v, uint64_t eid) {
  for (uint32_t i = 0; i < v->member_cnt; i++)
    if (v->members[i] == eid) return (int)i;
  return -1;
}

#endif
