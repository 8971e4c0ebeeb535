/* transport/afxdp_priv.h - private to the real transports (afxdp.c, udp.c),
   their XDP program (bpf/vsx_xdp.bpf.c), and their tests and benchmark.

   Three parts:
   1. The configuration the XDP program reads, shared with BPF code (the
      only part compiled for the BPF target; guarded by __bpf__ below).
   2. Backend options (cfg.opt_backend) and counters of both transports.
   3. The peer table: endpoint id -> unicast address, learned from each
      member's own traffic or given with add_peer.  Bounded, allocated once
      at create, never on the data path.

   AF_XDP DATA FLOW (transport/afxdp.c).  One UMEM per transport instance;
   it is the region of the transport's buffer pool, so every UMEM frame is
   one pool buffer and every frame's owner is tracked by its pool
   reference:

        vsx_buf_alloc                       vsx_iovec_unref (last ref)
             |                                     ^
             v                                     |
      +-------------+   kernel writes a    +-------------+  recv_batch: the
      |  FILL ring  | -- received frame -> |   RX ring   | -> frame becomes
      | (per queue) |                      | (per queue) |    an iovec the
      +-------------+                      +-------------+    caller owns
       transport holds the frame's ref      transport still holds the ref
       (frame_owner = FILL)                 until recv_batch hands it on

      send_batch: frame written in place      +-------------+
      (the caller's buffer, plus our ref)  -> |   TX ring   | -- kernel sends
      or copied once into a fresh frame       |  (queue 0)  |    the frame
                                              +-------------+       |
                                                                    v
      vsx_iovec_unref  <-- frame address --  +-----------------+   done
      (our TX ref)                           | COMPLETION ring |
                                             |   (queue 0)     |
                                             +-----------------+

   A frame is on at most one ring at a time: fill frames are fresh pool
   buffers nobody else references, and a buffer goes on the TX ring in
   place only when no other holder can see its headroom (vsx_iovl_push's
   rule), so the same buffer never sits on the TX ring twice.

   THREADS.  As transport.h: one thread per transport instance. */
#ifndef VSX_TRANSPORT_AFXDP_PRIV_H
#define VSX_TRANSPORT_AFXDP_PRIV_H

#include <linux/types.h>

/* ---- 1. shared with the XDP program ------------------------------------- */

#define VSX_XDP_PROG_NAME  "vsx_xdp"  /* the program's function name      */
#define VSX_XDP_CFG_MAP    "vsx_cfg"  /* array map, one vsx_xdp_cfg entry */
#define VSX_XDP_XSKS_MAP   "xsks_map" /* XSKMAP keyed by rx queue index   */
#define VSX_XDP_QUEUES_MAX 64         /* XSKMAP entries: queues per device */

/* What the program steers: IPv4/UDP, not fragmented, to port, addressed to
   local_ip or (when not 0) mcast_ip.  All fields in network order except
   owner_pid.  A program whose port is 0 passes everything (the state
   between attach and configuration). */
struct vsx_xdp_cfg {
  __u64 owner_start; /* the owner's start time (/proc/PID/stat field 22),
                        so a reused pid is not taken for the owner      */
  __u32 owner_pid;   /* process that attached the program: a later start
                        finds it dead and replaces the stale program    */
  __be32 local_ip;
  __be32 mcast_ip;
  __be16 port;
  __u16 rsvd;
};

#ifndef __bpf__ /* ---- user space only from here on ---------------------- */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "vsx/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

_Static_assert(sizeof(struct vsx_xdp_cfg) == 24, "vsx_xdp_cfg layout is shared with BPF");

/* ---- 2. options and counters ------------------------------------------- */

/* Frame bytes in front of every vsx datagram sent by afxdp:
   Ethernet 14 + IPv4 20 (no options) + UDP 8. */
#define VSX_AFXDP_L2L4_SZ 42u

/* Datagrams per batch on every ring and per sendmmsg/recvmmsg call. */
#define VSX_XPORT_BATCH 64u

enum vsx_afxdp_mode {
  VSX_AFXDP_MODE_AUTO = 0, /* env VSX_AFXDP_MODE (skb|drv) if set; else
                              native (XDP_DRV) with fallback to XDP_SKB    */
  VSX_AFXDP_MODE_SKB  = 1, /* generic XDP: works on every device           */
  VSX_AFXDP_MODE_DRV  = 2, /* native XDP only: error if the driver lacks it */
};

enum vsx_afxdp_copy {
  VSX_AFXDP_COPY_AUTO  = 0, /* zero-copy where the driver does it, else copy */
  VSX_AFXDP_COPY_FORCE = 1, /* always XDP_COPY                               */
  VSX_AFXDP_COPY_NEVER = 2, /* XDP_ZEROCOPY or fail (native mode only)       */
};

/* Options of the afxdp transport, passed as cfg.opt_backend (NULL: all
   defaults).  Zero in any field means its default. */
typedef struct vsx_afxdp_opts {
  int      mode;      /* enum vsx_afxdp_mode                                */
  int      copy;      /* enum vsx_afxdp_copy                                */
  uint32_t ring_sz;   /* depth of every ring, power of 2; default 4096      */
  uint32_t fill_cnt;  /* frames kept on each fill ring; default
                         min(ring_sz, buf_cnt / (2 * queues))               */
  int      busy_poll; /* 1: SO_PREFER_BUSY_POLL + SO_BUSY_POLL on each
                         socket, and a recvfrom kick whenever an RX ring is
                         empty (drives NAPI on zero-copy NICs)             */
  uint32_t peer_max;  /* peer table entries; default 256                    */
} vsx_afxdp_opts_t;

/* Options of the udp transport, passed as cfg.opt_backend (NULL: all
   defaults). */
typedef struct vsx_udp_opts {
  uint32_t peer_max;    /* peer table entries; default 256                  */
  uint32_t sock_buf_sz; /* SO_RCVBUF/SO_SNDBUF bytes; default 4 MiB         */
} vsx_udp_opts_t;

/* Counters of one transport instance since create. */
typedef struct vsx_xport_stats {
  uint64_t rx_dgram, rx_byte;  /* datagrams handed to the caller           */
  uint64_t tx_dgram;           /* datagrams accepted by send_batch         */
  uint64_t tx_frame, tx_byte;  /* packets sent (fan-out counts each copy)  */
  uint64_t tx_inplace;         /* afxdp: frames sent from the caller's
                                  buffer without a copy                    */
  uint64_t tx_copy;            /* afxdp: frames copied into a fresh frame  */
  uint64_t tx_noroute;         /* sends dropped: no address for the peer   */
  uint64_t tx_drop;            /* packets the OS refused (counted, lost)   */
  uint64_t tx_again;           /* send_batch calls ending in back-pressure */
  uint64_t tx_kick;            /* afxdp: sendto() wake-ups of the TX ring  */
  uint64_t rx_malformed;       /* not a well-formed IPv4/UDP/vsx datagram,
                                  bad checksum, or truncated                */
  uint64_t rx_self;            /* our own datagrams (multicast loopback)   */
  uint64_t rx_misdirected;     /* sends addressed to another endpoint      */
  uint64_t rx_nobuf;           /* receive or fill-ring refill found the
                                  pool empty                                */
  uint64_t peer_evict;         /* peer table full: oldest learned dropped  */
  /* afxdp: the kernel's XDP_STATISTICS, summed over the queues */
  uint64_t xdp_rx_dropped, xdp_rx_invalid, xdp_tx_invalid;
  uint64_t xdp_rx_ring_full, xdp_fill_ring_empty, xdp_tx_ring_empty;
} vsx_xport_stats_t;

/* vsx_afxdp_stats_get / vsx_udp_stats_get copy the counters of a transport
   state (as made by that transport's create) into *out.  The afxdp one
   reads XDP_STATISTICS with one getsockopt per queue. */
void vsx_afxdp_stats_get(void *state, vsx_xport_stats_t *out);
void vsx_udp_stats_get(void *state, vsx_xport_stats_t *out);

/* vsx_afxdp_max_dgram / vsx_udp_max_dgram return the largest vsx datagram
   (UDP payload) send_batch accepts: bounded by the interface MTU and by
   what one pool buffer of a receiving peer holds. */
uint32_t vsx_afxdp_max_dgram(void *state);
uint32_t vsx_udp_max_dgram(void *state);

/* ---- 3. peer table ------------------------------------------------------ */

/* One member's unicast address.  Integers in network order. */
typedef struct vsx_peer {
  uint64_t eid;      /* 0: empty slot                                      */
  uint64_t heard_ns; /* vsx_now_ns of its last datagram; 0 if never heard  */
  uint64_t probe_ns; /* afxdp: last look-up of its MAC in the ARP cache    */
  uint32_t ip;
  uint16_t port;
  uint8_t  mac[6];   /* afxdp: its Ethernet address                        */
  uint8_t  has_mac;  /* afxdp: mac is known (learned or resolved)          */
  uint8_t  is_static;/* given with add_peer: never evicted                 */
  uint16_t rsvd;
} vsx_peer_t;

/* Open addressing with linear probing over cap slots (a power of two,
   twice max), so a lookup is one or two probes; eviction uses backward
   shift deletion so no tombstones pile up. */
typedef struct vsx_peertab {
  vsx_peer_t *slot;
  uint32_t cap, cnt, max;
  uint64_t evict_cnt;
} vsx_peertab_t;

/* vsx_peertab_init allocates a table for max entries (start-up only).
   VSX_ERR_NOMEM on allocation failure. */
static inline int vsx_peertab_init(vsx_peertab_t *t, uint32_t max) {
  uint32_t cap = 8;
  while (cap < 2 * max) cap *= 2;
  memset(t, 0, sizeof *t);
  t->slot = (vsx_peer_t *)calloc(cap, sizeof(vsx_peer_t));
  if (!t->slot) return VSX_ERR_NOMEM;
  t->cap = cap;
  t->max = max;
  return VSX_OK;
}

/* vsx_peertab_fini frees the table; safe on a zeroed or finished table. */
static inline void vsx_peertab_fini(vsx_peertab_t *t) {
  free(t->slot);
  t->slot = NULL;
  t->cap = t->cnt = 0;
}

static inline uint32_t vsx_peertab_home_(const vsx_peertab_t *t, uint64_t eid) {
  return (uint32_t)((eid * 0x9e3779b97f4a7c15ULL) >> 32) & (t->cap - 1);
}

/* vsx_peertab_find returns the entry of eid, or NULL.  The pointer lives
   until the next insertion. */
static inline vsx_peer_t *vsx_peertab_find(vsx_peertab_t *t, uint64_t eid) {
  if (!eid) return NULL;
  for (uint32_t i = vsx_peertab_home_(t, eid);; i = (i + 1) & (t->cap - 1)) {
    if (t->slot[i].eid == eid) return &t->slot[i];
    if (!t->slot[i].eid) return NULL;
  }
}

/* vsx_peertab_remove_ empties slot i and moves later entries of its probe
   run back so every entry stays reachable from its home slot. */
static inline void vsx_peertab_remove_(vsx_peertab_t *t, uint32_t i) {
  uint32_t mask = t->cap - 1;
  for (uint32_t j = (i + 1) & mask; t->slot[j].eid; j = (j + 1) & mask) {
    uint32_t h = vsx_peertab_home_(t, t->slot[j].eid);
    /* j's entry may move to i only if i lies on its probe path h..j. */
    if (((j - h) & mask) >= ((j - i) & mask)) {
      t->slot[i] = t->slot[j];
      i = j;
    }
  }
  memset(&t->slot[i], 0, sizeof t->slot[i]);
  t->cnt--;
}

/* vsx_peertab_get returns the entry of eid, inserting an empty one when
   missing; when the table is full it first evicts the learned entry heard
   from longest ago.  NULL only when every entry is static.  O(cap) on
   eviction, which only a table too small for the group needs. */
static inline vsx_peer_t *vsx_peertab_get(vsx_peertab_t *t, uint64_t eid) {
  vsx_peer_t *p = vsx_peertab_find(t, eid);
  if (p) return p;
  if (t->cnt >= t->max) {
    uint32_t victim = t->cap;
    for (uint32_t i = 0; i < t->cap; i++) {
      if (!t->slot[i].eid || t->slot[i].is_static) continue;
      if (victim == t->cap || t->slot[i].heard_ns < t->slot[victim].heard_ns) victim = i;
    }
    if (victim == t->cap) return NULL;
    vsx_peertab_remove_(t, victim);
    t->evict_cnt++;
  }
  uint32_t i = vsx_peertab_home_(t, eid);
  while (t->slot[i].eid) i = (i + 1) & (t->cap - 1);
  memset(&t->slot[i], 0, sizeof t->slot[i]);
  t->slot[i].eid = eid;
  t->cnt++;
  return &t->slot[i];
}

#ifdef __cplusplus
}
#endif
#endif /* !__bpf__ */
#endif
