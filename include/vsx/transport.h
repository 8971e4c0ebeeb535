/* vsx/transport.h - the interface every bottom transport fills.

   A transport moves unreliable datagrams (vsx wire format, see wire.h)
   between endpoints of one group: casts to every member, sends to one
   member by endpoint id.  Three backends fill the same small ops table,
   after Redis' ae backends: transport/sim.c (deterministic in-process
   network), transport/udp.c (kernel sockets), transport/afxdp.c (AF_XDP).
   Layers never know which one runs under them.

   BUFFERS.  Each transport owns the buffer pool that received datagrams
   live in (for AF_XDP the pool's region is the UMEM), created from the
   sizes in vsx_transport_cfg_t.  The endpoint allocates outgoing buffers
   from that same pool, so a buffer it fills can be sent without a copy
   where the backend allows it.

   OWNERSHIP.  send_batch borrows the lists it is given: a backend that
   needs the bytes after returning (a delay queue, a TX ring) takes its own
   references or copies.  recv_batch hands out lists that each carry one
   reference owned by the caller.

   PARTIAL BATCHES (after fd_aio).  send_batch sends datagrams in order and
   stores in *sent_cnt how many left; on VSX_ERR_AGAIN the rest were not
   sent and may be retried later; they are never half sent.

   THREADS.  One endpoint, one thread: no call is made concurrently on one
   transport instance. */
#ifndef VSX_TRANSPORT_H
#define VSX_TRANSPORT_H

#include "vsx/iovec.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vsx_datagram {
  uint64_t   peer_eid; /* send: destination eid, 0 = cast to the group;
                          recv: sender eid as read from the wire header */
  vsx_iovl_t iovl;     /* the whole vsx datagram, wire header first     */
} vsx_datagram_t;

typedef struct vsx_transport_cfg {
  const char *group;      /* group name (for messages)                        */
  uint64_t    group_id;   /* vsx_hash64(group)                                */
  uint64_t    eid;        /* this endpoint's id                               */
  const char *opt_ifname; /* interface (udp: optional, afxdp: required)       */
  uint32_t    mcast_ip;   /* group IPv4 multicast address, host order; 0 = use
                             unicast fan-out to learned peers                  */
  uint32_t    opt_local_ip; /* host order; 0 = from the interface           */
  uint16_t    port;       /* UDP port of the group                            */
  uint32_t    buf_cnt;    /* pool size asked for                              */
  uint32_t    buf_sz;
  uint32_t    headroom;
  uint32_t    reserve_cnt;
  uint32_t    ext_cnt, ext_cap;
  void       *opt_backend; /* backend-specific options (sim: the network)   */
} vsx_transport_cfg_t;

typedef struct vsx_transport_ops {
  const char *name;
  /* create: open sockets/rings and the pool.  Returns VSX_OK, or an error
     with vsx_last_error saying what to do (use UDP, add a capability...). */
  int  (*create)(const vsx_transport_cfg_t *cfg, void **state_out);
  /* destroy: close everything create opened; state may be partly built. */
  void (*destroy)(void *state);
  /* pool: the buffer pool received datagrams live in. */
  vsx_bufpool_t *(*pool)(void *state);
  int  (*send_batch)(void *state, const vsx_datagram_t *dgs, uint32_t cnt, uint32_t *sent_cnt);
  /* recv_batch: up to max datagrams; *cnt = how many.  VSX_OK with 0 when
     nothing is waiting. */
  int  (*recv_batch)(void *state, vsx_datagram_t *dgs, uint32_t max, uint32_t *cnt);
  /* poll_fd: a descriptor that becomes readable when datagrams wait, or -1
     (sim: driven by its own clock). */
  int  (*poll_fd)(void *state);
  /* add_peer: tell the transport the address of a member it has not heard
     from yet (opt; may be NULL).  addr is backend specific.  eid 0: a
     seed address whose member is not known yet (udp in unicast mode
     only; others answer VSX_ERR_NOTSUP). */
  int  (*add_peer)(void *state, uint64_t eid, const void *addr);
} vsx_transport_ops_t;

extern const vsx_transport_ops_t vsx_transport_sim;
extern const vsx_transport_ops_t vsx_transport_udp;
extern const vsx_transport_ops_t vsx_transport_afxdp;

/* vsx_transport_find returns the ops named name ("sim", "udp", "afxdp"),
   or NULL. */
const vsx_transport_ops_t *vsx_transport_find(const char *name);

#ifdef __cplusplus
}
#endif
#endif
