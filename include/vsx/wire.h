/* vsx/wire.h - the fixed header at the front of every vsx datagram.

   Every transport (AF_XDP, kernel UDP, simulated) carries the same bytes
   as its UDP payload:

     | wire header (40 B) | layer headers, bottom layer first | payload |

   The bottom layer writes and checks this header; transports only peek at
   src_eid (to learn a member's address from its own traffic) and dst_eid.
   All integers are big-endian (network order).  See docs/wire.md. */
#ifndef VSX_WIRE_H
#define VSX_WIRE_H

#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>
#include <endian.h>

#define VSX_WIRE_MAGIC   0x5658u /* "VX" */
#define VSX_WIRE_VERSION 1u

enum vsx_wire_kind {
  VSX_WIRE_CAST   = 1, /* to every member of the sender's view            */
  VSX_WIRE_SEND   = 2, /* point-to-point to dst_eid                        */
  VSX_WIRE_GOSSIP = 3, /* outside any view: discovery and merge requests  */
};

typedef struct vsx_wire_hdr {
  uint16_t magic;     /* VSX_WIRE_MAGIC                                   */
  uint8_t  version;   /* VSX_WIRE_VERSION                                 */
  uint8_t  kind;      /* enum vsx_wire_kind                               */
  uint32_t total_len; /* bytes of the whole vsx datagram, this header incl.*/
  uint64_t group_id;  /* hash of the group name                           */
  uint64_t instance;  /* stack instance (view) the datagram belongs to    */
  uint64_t src_eid;   /* sender's endpoint id                             */
  uint64_t dst_eid;   /* receiver's endpoint id, 0 for casts and gossip   */
} __attribute__((packed)) vsx_wire_hdr_t;

_Static_assert(sizeof(vsx_wire_hdr_t) == 40, "wire header is 40 bytes");

#define VSX_WIRE_SRC_EID_OFF 24
#define VSX_WIRE_DST_EID_OFF 32

/* Largest vsx datagram (UDP payload) on a 1500-byte MTU link:
   1500 - 20 (IPv4) - 8 (UDP). */
#define VSX_WIRE_MTU_PAYLOAD 1472u

static inline void vsx_wire_encode(void *dst, const vsx_wire_hdr_t *h) {
  vsx_wire_hdr_t n;
  n.magic = htons(h->magic);
  n.version = h->version;
  n.kind = h->kind;
  n.total_len = htonl(h->total_len);
  n.group_id = htobe64(h->group_id);
  n.instance = htobe64(h->instance);
  n.src_eid = htobe64(h->src_eid);
  n.dst_eid = htobe64(h->dst_eid);
  memcpy(dst, &n, sizeof n);
}

static inline void vsx_wire_decode(vsx_wire_hdr_t *h, const void *src) {
  memcpy(h, src, sizeof *h);
  h->magic = ntohs(h->magic);
  h->total_len = ntohl(h->total_len);
  h->group_id = be64toh(h->group_id);
  h->instance = be64toh(h->instance);
  h->src_eid = be64toh(h->src_eid);
  h->dst_eid = be64toh(h->dst_eid);
}

/* vsx_wire_peek_eid reads the big-endian endpoint id at off in a datagram
   of len bytes; 0 if too short. */
static inline uint64_t vsx_wire_peek_eid(const uint8_t *dg, uint32_t len, uint32_t off) {
  uint64_t v;
  if (len < sizeof(vsx_wire_hdr_t)) return 0;
  memcpy(&v, dg + off, 8);
  return be64toh(v);
}

#endif
