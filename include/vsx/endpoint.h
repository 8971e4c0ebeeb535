/* vsx/endpoint.h - one member of one group: a transport, a protocol stack
   and the application's callbacks, run by the application's event loop.

   An endpoint owns, from vsx_endpoint_create until vsx_endpoint_destroy:
   the transport instance (and so the buffer pool datagrams live in), an
   event pool, and the stack built from opts.stack.  Nothing is allocated
   on the data path: a cast that finds no buffer, no event record or a
   closed flow window returns VSX_ERR_AGAIN, and opts.cbs.flow tells the
   application when it may send again.

   DRIVING.  Either attach the endpoint to a libev loop the application
   owns (vsx_endpoint_attach: an io watcher on the transport's descriptor,
   an ev_timer for the stack's alarms and an ev_prepare that flushes
   batched datagrams), run vsx_endpoint_run for programs without a loop of
   their own, or call vsx_endpoint_poll yourself (the simulator does, on
   its virtual clock).

   CALLBACKS run on the loop's thread, from inside vsx calls; they may call
   vsx_endpoint_cast/send (those queue behind the current event) but must
   not destroy the endpoint.  A delivered message's list is borrowed for
   the duration of the callback only.

   THREADS.  An endpoint and everything it returns belong to one thread. */
#ifndef VSX_ENDPOINT_H
#define VSX_ENDPOINT_H

#include "vsx/stack.h"
#include "vsx/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ev_loop;
typedef struct vsx_endpoint vsx_endpoint_t;

/* The default stack: application adapter, fragmentation, stability,
   reliable point-to-point and multicast, bundling. */
#define VSX_STACK_DEFAULT "top:frag:stable:pt2pt:mnak:bundle:bottom"

typedef struct vsx_endpoint_cbs {
  /* deliver: a message from member rank `from` (me included), service
     svc.  msg is borrowed for the call.  Required. */
  void (*deliver)(void *user, vsx_endpoint_t *ep, uint32_t from, vsx_svc_t svc, const vsx_iovl_t *msg);
  /* flow: blocked = 1 when casts/sends would return VSX_ERR_AGAIN
     because of flow control, 0 when they may go again.  Optional. */
  void (*flow)(void *user, vsx_endpoint_t *ep, int blocked);
} vsx_endpoint_cbs_t;

typedef struct vsx_endpoint_opts {
  const char *group;          /* group name; required                    */
  const char *opt_name;       /* human name (logs)                       */
  const char *opt_stack;      /* layer spec; NULL = VSX_STACK_DEFAULT    */
  const char *opt_params;     /* "layer.key=value,..."                   */
  const vsx_transport_ops_t *transport; /* required                       */
  const char *opt_ifname;
  uint32_t mcast_ip;          /* host order; 0 = unicast fan-out          */
  uint16_t port;
  void *opt_backend;          /* sim: the vsx_sim_t                      */
  uint64_t eid;               /* 0 = a fresh random id                   */
  const vsx_view_t *view;     /* the members (this core release has a
                                 fixed view given at creation)            */
  uint32_t mtu_payload;       /* 0 = 1472 (1500-byte MTU)                */
  uint32_t max_msg;           /* 0 = 1 MiB                               */
  uint32_t buf_cnt, ev_cnt;   /* 0 = defaults (4096 each)                */
  uint64_t seed;              /* the stack's PRNG (drop layer); 0 = eid  */
  uint64_t (*opt_clock)(void *clock_ctx); /* NULL = vsx_now_ns          */
  void *opt_clock_ctx;
  vsx_endpoint_cbs_t cbs;
  void *user;
} vsx_endpoint_opts_t;

typedef struct vsx_endpoint_stats {
  uint64_t rx_datagrams, tx_datagrams;
  uint64_t rx_bytes, tx_bytes;
  uint64_t rx_no_event;  /* datagrams dropped: no event record free   */
  uint64_t tx_dropped;   /* datagrams dropped: transport kept refusing */
  uint64_t casts, sends; /* accepted from the application               */
  uint64_t delivered;
  uint64_t refused_again;/* calls answered VSX_ERR_AGAIN               */
  uint64_t flow_blocked_ns;
} vsx_endpoint_stats_t;

/* vsx_endpoint_create builds everything.  Errors name the problem
   (vsx_last_error): a bad option, a transport that cannot start (with what
   to do), an unknown layer or a misplaced one. */
int  vsx_endpoint_create(const vsx_endpoint_opts_t *opts, vsx_endpoint_t **out);
/* vsx_endpoint_destroy detaches from any loop and frees everything. */
void vsx_endpoint_destroy(vsx_endpoint_t *ep);

/* vsx_endpoint_cast copies len bytes and casts them to the view with
   service svc.  VSX_ERR_AGAIN: flow control or pools (try after the flow
   callback); VSX_ERR_TOOBIG: len > max_msg (or > one datagram without a
   frag layer); VSX_ERR_INVAL: bad svc. */
int vsx_endpoint_cast(vsx_endpoint_t *ep, vsx_svc_t svc, const void *data, size_t len);
/* vsx_endpoint_send copies len bytes and sends them to member rank. */
int vsx_endpoint_send(vsx_endpoint_t *ep, uint32_t rank, const void *data, size_t len);

/* vsx_endpoint_poll receives what is waiting, runs due alarms and
   flushes batched datagrams.  Returns the number of datagrams received. */
int      vsx_endpoint_poll(vsx_endpoint_t *ep);
/* vsx_endpoint_next_alarm: when poll must run next at the latest (0 =
   no alarm), on the endpoint's clock. */
uint64_t vsx_endpoint_next_alarm(const vsx_endpoint_t *ep);
int      vsx_endpoint_fd(const vsx_endpoint_t *ep);

/* libev integration (see the top of this file). */
int  vsx_endpoint_attach(vsx_endpoint_t *ep, struct ev_loop *loop);
void vsx_endpoint_detach(vsx_endpoint_t *ep);
/* vsx_endpoint_run runs a private loop for seconds (< 0: until
   vsx_endpoint_stop is called from a callback). */
int  vsx_endpoint_run(vsx_endpoint_t *ep, double seconds);
void vsx_endpoint_stop(vsx_endpoint_t *ep);

uint32_t vsx_endpoint_rank(const vsx_endpoint_t *ep);
uint64_t vsx_endpoint_eid(const vsx_endpoint_t *ep);
const vsx_view_t *vsx_endpoint_view(const vsx_endpoint_t *ep);
int      vsx_endpoint_flow_blocked(const vsx_endpoint_t *ep);
vsx_stack_t *vsx_endpoint_stack(vsx_endpoint_t *ep);
vsx_bufpool_t *vsx_endpoint_pool(vsx_endpoint_t *ep);
vsx_evpool_t *vsx_endpoint_evpool(vsx_endpoint_t *ep);
void vsx_endpoint_get_stats(const vsx_endpoint_t *ep, vsx_endpoint_stats_t *out);
/* vsx_endpoint_chunk_sz: payload bytes per buffer when copying messages
   in (so large messages fragment without copies). */
uint32_t vsx_endpoint_chunk_sz(const vsx_endpoint_t *ep);

#ifdef __cplusplus
}
#endif
#endif
