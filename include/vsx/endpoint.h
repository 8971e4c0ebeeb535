/* vsx/endpoint.h - one member of one group: a transport, a protocol stack
   and the application's callbacks, run by the application's event loop.

   An endpoint owns, from vsx_endpoint_create until vsx_endpoint_destroy:
   the transport instance (and so the buffer pool datagrams live in), an
   event pool, and the stack built from opts.stack for the current view.
   Nothing is allocated on the data path: a cast that finds no buffer, no
   event record or a closed flow window returns VSX_ERR_AGAIN, and
   opts.cbs.flow tells the application when it may send again.

   VIEWS.  With opts.view == NULL (the usual case) the endpoint starts
   alone, in a singleton view, and finds its group: the membership layers
   (VSX_STACK_VSYNC, docs/membership.md) merge it into the group's view,
   exclude members that fail, take in those that join, and merge
   partitions when they heal.  Each view change runs, in order:
     cbs.block  - the view is about to change; from its return until the
                  next view callback, cast and send are refused with
                  VSX_ERR_BLOCKED ("wait for the view callback");
     (the flush: every surviving member delivers exactly the same casts
     of the ending view; a member that came in gets the state:
     cbs.state_get at one old member, cbs.state_put at the new ones)
     cbs.view   - the new view and my rank; sending is allowed again.
   Every view runs in a stack of its own (a new stack instance id on the
   wire), so nothing of an old view reaches the application in a new one.
   A VIEW CHANGE ALLOCATES: the new view's stack (its layer states and
   windows) is built then, and the previous one is freed after lingering
   opts.linger_ms to retransmit the view to stragglers.  Only view
   changes allocate; the data path never does.  With opts.view given and
   a stack without membership layers (VSX_STACK_DEFAULT), the view is
   fixed for the endpoint's life, as in the core release.

   DRIVING.  Either attach the endpoint to a libev loop the application
   owns (vsx_endpoint_attach: an io watcher on the transport's descriptor,
   an ev_timer for the stack's alarms and an ev_prepare that flushes
   batched datagrams), run vsx_endpoint_run for programs without a loop of
   their own, or call vsx_endpoint_poll yourself (the simulator does, on
   its virtual clock).

   CALLBACKS run on the loop's thread, from inside vsx calls; they may call
   vsx_endpoint_cast/send and their _borrowed forms (those queue behind the
   current event), borrow, return, leave, add_peer, the queries and stop,
   but must not destroy, attach, detach, run or poll the endpoint.  A
   delivered message's list is borrowed for the duration of the callback
   only.  vsx/vsx.h has the whole contract (lifecycle, services, errors,
   threads, ownership); docs/api.md the reference.

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

/* The default stack for a fixed view: application adapter,
   fragmentation, stability, reliable point-to-point and multicast,
   bundling. */
#define VSX_STACK_DEFAULT "top:frag:stable:pt2pt:mnak:bundle:bottom"
/* The default stack with membership (used when opts.view is NULL):
   state transfer, merges, view changes, flush, failure detection. */
#define VSX_STACK_VSYNC "top:xfer:inter:intra:vsync:seqbb:frag:stable:pt2pt:mnak:suspect:bundle:bottom"

typedef struct vsx_endpoint_cbs {
  /* deliver: a message from member rank `from` (me included), service
     svc.  msg is borrowed for the call.  Required. */
  void (*deliver)(void *user, vsx_endpoint_t *ep, uint32_t from, vsx_svc_t svc, const vsx_iovl_t *msg);
  /* flow: blocked = 1 when casts/sends would return VSX_ERR_AGAIN
     because of flow control, 0 when they may go again.  Optional. */
  void (*flow)(void *user, vsx_endpoint_t *ep, int blocked);
  /* view: a view is installed; rank is mine in it (view->members[rank]
     is my id).  view->flags has VSX_VIEW_PRIMARY in a primary view
     (primary-partition mode).  The application may send again.  The
     view is borrowed for the call; vsx_endpoint_view has it later.
     Optional. */
  void (*view)(void *user, vsx_endpoint_t *ep, const vsx_view_t *view, uint32_t rank);
  /* block: the current view is ending.  When it returns, casts and sends
     are refused (VSX_ERR_BLOCKED) until the view callback.  Messages of
     the ending view may still be delivered after it.  Optional. */
  void (*block)(void *user, vsx_endpoint_t *ep);
  /* state_get: at one member that has the state, when a view brings in
     members that need it.  Store the state's bytes in *data and *len and
     return VSX_OK; they must stay valid and unchanged until this
     endpoint's view callback (no message is delivered before it).  Set
     state_get and state_put to enable state transfer (every member of a
     group should); a member without state_get sends an empty state. */
  int (*state_get)(void *user, vsx_endpoint_t *ep, const void **data, size_t *len);
  /* state_put: at a member that came into a view, the state, in pieces
     in order (offset grows; offset 0 starts over: an earlier transfer
     failed), before any message of the view and before the view
     callback.  total is the state's length; the last piece ends there. */
  void (*state_put)(void *user, vsx_endpoint_t *ep, const void *data, size_t len, uint64_t offset, uint64_t total);
  /* exit: this member is out of the group for good (reason: "leave"
     after vsx_endpoint_leave, "leave-timeout" when nobody answered,
     "excluded" when the group went on without it, "error: ..." when a
     view change could not allocate its stack).
     Only vsx_endpoint_destroy may follow.  Optional. */
  void (*exit)(void *user, vsx_endpoint_t *ep, const char *reason);
} vsx_endpoint_cbs_t;

/* Options of an endpoint.  Zero in any field means its default, so a
   zeroed struct plus group, transport and cbs.deliver is complete;
   vsx_endpoint_opts_init writes the defaults out explicitly.  Strings and
   arrays are copied by vsx_endpoint_create (opts may be a temporary),
   except opt_backend and opt_clock_ctx, which must outlive the endpoint,
   and view, which is read once at create. */
typedef struct vsx_endpoint_opts {
  const char *group;          /* group name; required                    */
  const char *opt_name;       /* human name (logs)                       */
  const char *opt_stack;      /* layer spec; NULL = VSX_STACK_VSYNC, or
                                 VSX_STACK_DEFAULT when view is given    */
  const char *opt_params;     /* "layer.key=value,..."                   */
  const vsx_transport_ops_t *transport; /* NULL: found by
                                 opt_transport_name ("udp", "afxdp", "sim") */
  const char *opt_ifname;     /* interface (afxdp: required; udp: whose
                                 address to bind and join the group on)  */
  uint32_t mcast_ip;          /* host order; 0 = unicast fan-out (udp:
                                 give peers with vsx_endpoint_add_peer)  */
  uint16_t port;              /* UDP port: the group's (multicast), or
                                 this member's own (unicast)             */
  void *opt_backend;          /* sim: the vsx_sim_t                      */
  uint64_t eid;               /* 0 = a fresh random id                   */
  const vsx_view_t *view;     /* NULL: start alone and find the group
                                 (membership); else the first view, fixed
                                 unless the stack has membership layers  */
  uint32_t mtu_payload;       /* 0 = 1472 (1500-byte MTU)                */
  uint32_t max_msg;           /* 0 = 1 MiB                               */
  uint32_t buf_cnt, ev_cnt;   /* 0 = defaults (4096 each)                */
  uint64_t seed;              /* the stack's PRNG (drop layer); 0 = eid  */
  uint64_t (*opt_clock)(void *clock_ctx); /* NULL = vsx_now_ns          */
  void *opt_clock_ctx;
  vsx_endpoint_cbs_t cbs;
  void *user;
  /* Primary-partition mode: the configured membership (endpoint ids).
     Only a view holding more than half of them is primary; in any other
     view casts and sends are refused (VSX_ERR_BLOCKED, "not a primary
     view") and nothing is delivered: the member waits for a merge.  NULL:
     every view may deliver. */
  const uint64_t *opt_primary;
  uint32_t primary_cnt;
  /* JSONL trace (include/vsx/trace.h) to this directory; NULL: the
     environment variable VSX_TRACE_DIR if set; "": none. */
  const char *opt_trace_dir;
  /* The transport's name: finds it when transport is NULL; else only
     names it in the trace's start event (NULL: transport->name). */
  const char *opt_transport_name;
  uint32_t linger_ms;         /* an old view's stack keeps retransmitting
                                 this long (0 = 500)                      */
  int spin_us;                /* in an event loop, after datagrams arrive,
                                 keep polling for more this long (at most
                                 1 ms a wake-up) before the loop sleeps:
                                 a busy member then takes bursts without a
                                 wake-up each (+25-55% msgs/s on the test
                                 hosts).  0 = 20 us; negative = never     */
  /* TIMEOUTS of the membership layers (0 = the default; the same key
     given in opt_params wins): */
  uint32_t fail_timeout_ms;   /* suspect.timeout_ms: a member silent this
                                 long is suspected and excluded (500)     */
  uint32_t heartbeat_ms;      /* suspect.sweep_ms: heartbeat period; at
                                 most half of fail_timeout_ms (100)       */
  uint32_t merge_ms;          /* inter.heal_ms: how often a coordinator
                                 announces its view to find others (500) */
  uint32_t leave_timeout_ms;  /* intra.leave_ms: how long a leave waits
                                 for the group's answer (2000)            */
  /* GROUP KEY for authenticated groups: not in this release.  A key
     given here makes vsx_endpoint_create fail with VSX_ERR_NOTSUP rather
     than run a group that is not protected. */
  const void *opt_group_key;
  size_t group_key_len;
} vsx_endpoint_opts_t;

/* vsx_endpoint_opts_init zeroes *opts and writes every default out
   (buffers, events, sizes, timeouts); the caller then sets group,
   transport (or opt_transport_name), port and cbs. */
void vsx_endpoint_opts_init(vsx_endpoint_opts_t *opts);

typedef struct vsx_endpoint_stats {
  uint64_t rx_datagrams, tx_datagrams;
  uint64_t rx_bytes, tx_bytes;
  uint64_t rx_no_event;  /* datagrams dropped: no event record free   */
  uint64_t tx_dropped;   /* datagrams dropped: transport kept refusing */
  uint64_t casts, sends; /* accepted from the application               */
  uint64_t delivered;
  uint64_t refused_again;/* calls answered VSX_ERR_AGAIN               */
  uint64_t flow_blocked_ns; /* time casts were refused by flow control,
                            the current stretch included                 */
  uint64_t views;        /* view callbacks (views installed)            */
  uint64_t blocks;       /* block callbacks                             */
  uint64_t refused_blocked; /* calls answered VSX_ERR_BLOCKED/_STATE    */
  uint64_t stacks;       /* stacks built (one per view)                  */
  uint64_t state_bytes_out, state_bytes_in; /* state transfer          */
  uint64_t old_view_casts; /* casts an ended view's stack still produced
                            after the flush: dropped (always 0: the flush
                            agreed on every cast of the view)           */
  uint64_t old_view_dropped; /* other messages of ended views dropped:
                            sends still in flight, casts after this
                            member left a view without a flush (it was
                            excluded)                                   */
  uint64_t early_msgs;   /* messages before the view callback: dropped
                            (always 0: nobody sends before it)          */
  uint64_t casts_after_block; /* casts a layer issued after BLOCK_OK,
                            dropped by mnak (always 0: a layer bug)     */
  /* Since the vsx.h release; counted over the endpoint's whole life
     (the layers' counters of every view's stack, freed ones included): */
  uint64_t retransmits;  /* casts (mnak) and sends (pt2pt) retransmitted */
  /* Received datagrams dropped, by reason (the bottom layer's gate): */
  uint64_t drop_malformed; /* the transport: truncated, shorter than the
                            wire header, bad checksum, bad PEERS list   */
  uint64_t drop_magic;   /* not vsx (magic, unknown kind)               */
  uint64_t drop_version; /* another wire version                        */
  uint64_t drop_length;  /* length field disagrees with the datagram    */
  uint64_t drop_group;   /* another group on the same port              */
  uint64_t drop_stale;   /* an ended (or future) view's datagram        */
  uint64_t drop_sender;  /* a sender not in the view                    */
  uint64_t drop_not_mine;/* a send addressed to another member          */
  uint64_t drop_own;     /* my own datagram come back                   */
  uint64_t drop_too_big; /* outgoing: larger than mtu_payload (a bug)   */
  uint64_t drop_no_buffer; /* outgoing: no buffer for the wire header   */
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
   frag layer); VSX_ERR_INVAL: bad svc; VSX_ERR_BLOCKED: the view is
   changing (after the block callback, before the view callback) or is
   not primary; VSX_ERR_STATE: the member left the group. */
int vsx_endpoint_cast(vsx_endpoint_t *ep, vsx_svc_t svc, const void *data, size_t len);
/* vsx_endpoint_send copies len bytes and sends them to member rank. */
int vsx_endpoint_send(vsx_endpoint_t *ep, uint32_t rank, const void *data, size_t len);

/* ZERO-COPY SENDING.  vsx_endpoint_borrow lends a buffer of the
   transport's pool (for AF_XDP a UMEM frame) with room for len bytes (up
   to vsx_endpoint_chunk_sz; 0 is allowed) and the layers' headers in
   front; the application writes the message at vsx_msgbuf_data and
   casts or sends it without a copy.  It never takes the buffers kept
   for the protocol (so a borrowing application cannot starve
   retransmissions).  VSX_ERR_TOOBIG: len > vsx_endpoint_chunk_sz;
   VSX_ERR_AGAIN: the pool is empty (try after the next poll), or 64
   buffers are lent out already.  The buffer belongs to the endpoint's
   thread, like the endpoint. */
typedef struct vsx_msgbuf vsx_msgbuf_t;
int    vsx_endpoint_borrow(vsx_endpoint_t *ep, size_t len, vsx_msgbuf_t **out);
/* vsx_msgbuf_data: where to write; vsx_msgbuf_cap: how many bytes fit
   (vsx_endpoint_chunk_sz). */
void  *vsx_msgbuf_data(vsx_msgbuf_t *buf);
size_t vsx_msgbuf_cap(const vsx_msgbuf_t *buf);
/* vsx_endpoint_cast_borrowed / _send_borrowed send the first len bytes
   of buf as vsx_endpoint_cast / _send would.  On VSX_OK the buffer is
   the endpoint's again (do not touch it); on any error it stays lent to
   the caller, who may retry (VSX_ERR_AGAIN, VSX_ERR_BLOCKED) or return
   it.  Errors: those of cast/send, plus VSX_ERR_INVAL for a buffer this
   endpoint did not lend (another endpoint's, or sent or returned
   already) and VSX_ERR_TOOBIG for len > vsx_msgbuf_cap. */
int vsx_endpoint_cast_borrowed(vsx_endpoint_t *ep, vsx_svc_t svc, vsx_msgbuf_t *buf, size_t len);
int vsx_endpoint_send_borrowed(vsx_endpoint_t *ep, uint32_t rank, vsx_msgbuf_t *buf, size_t len);
/* vsx_endpoint_return gives an unused buffer back.  VSX_ERR_INVAL as
   above.  vsx_endpoint_destroy takes back any buffer still lent. */
int vsx_endpoint_return(vsx_endpoint_t *ep, vsx_msgbuf_t *buf);

/* vsx_endpoint_add_peer gives the address "IPv4:PORT" of another member
   (or of a member to be), for the udp transport in unicast mode
   (mcast_ip == 0), where there is no group address to find the others
   on.  Call it after create, before or while running, once per address.
   Casts and discovery go to the address until a datagram from it shows
   the member there; members then tell each other the peers they hear, so
   each member needs just one address that reaches the group (a chain is
   enough).  The endpoint's own address is ignored, so every member may be
   given one shared list.  VSX_ERR_INVAL: not IPv4:PORT; VSX_ERR_NOTSUP:
   another transport (sim, afxdp) or multicast mode; VSX_ERR_AGAIN: more
   than 64 addresses not heard from yet. */
int vsx_endpoint_add_peer(vsx_endpoint_t *ep, const char *addr);

/* vsx_endpoint_leave leaves the group gracefully: sending is refused
   from now on, the group installs a view without this member (without
   waiting for failure detection; its casts are delivered by everyone),
   and then the exit callback runs with reason "leave" (or
   "leave-timeout" if the group did not answer within 2 s).  With a fixed
   view it exits at once.  VSX_ERR_STATE if it already left or leaves. */
int vsx_endpoint_leave(vsx_endpoint_t *ep);

/* vsx_endpoint_can_send says whether a cast or send would be accepted
   now as far as membership goes: VSX_OK, VSX_ERR_BLOCKED (view change,
   not primary; vsx_last_error says which) or VSX_ERR_STATE (left). */
int vsx_endpoint_can_send(const vsx_endpoint_t *ep);

/* vsx_endpoint_primary: 1 if the current view is primary (always 1
   without primary-partition mode). */
int vsx_endpoint_primary(const vsx_endpoint_t *ep);

struct vsx_trace;
/* vsx_endpoint_trace: this member's trace (NULL: none), for the
   application's send and deliver events (see vsx/trace.h). */
struct vsx_trace *vsx_endpoint_trace(vsx_endpoint_t *ep);

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
/* vsx_endpoint_stack: the current view's stack (valid until the next
   view callback). */
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
