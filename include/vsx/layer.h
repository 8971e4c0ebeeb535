/* vsx/layer.h - what a protocol layer is, and the calls it may make.

   A layer is one file in layers/ with one anatomy (see layers/README.md):
   banner, wire header, state struct, dump/init/fini, five handlers, and a
   const ops table registered by name.  The stack calls the handlers of a
   layer one at a time (never re-entrantly) and in FIFO order per
   direction.

   HANDLERS (Ensemble's, in C):
     up    - a CAST or SEND from below, this layer's header at the front
     upnm  - an event without a message from below
     dn    - a CAST or SEND from above
     dnnm  - an event without a message from above
     timer - the alarm this layer set with vsx_timer_set has come due
   Each handler passes its event on (vsx_pass_up / vsx_pass_dn) or frees it
   (vsx_ev_free), on every path.  Passing only queues: the event runs after
   the current handler returns, so layers never recurse.

   HEADERS.  For each message type (CAST, SEND) a layer either always
   pushes its own fixed-size header on the way down and pops it on the way
   up, or never touches that type.  A layer reads no one else's header.
   Headers are in network byte order.

   CAPABILITIES.  Each layer says what it provides, what it needs below it
   and above it, and what it clears (frag clears "casts counted in mnak
   units").  vsx_stack_create rejects a spec whose layers' needs are not
   met, naming the layer and what is missing. */
#ifndef VSX_LAYER_H
#define VSX_LAYER_H

#include <stdio.h>
#include "vsx/event.h"

#ifdef __cplusplus
extern "C" {
#endif

enum vsx_cap {
  VSX_CAP_DATAGRAM      = 1u << 0, /* unreliable casts and sends (bottom)          */
  VSX_CAP_RELIABLE_CAST = 1u << 1, /* reliable FIFO casts (mnak)                   */
  VSX_CAP_RELIABLE_SEND = 1u << 2, /* reliable FIFO sends (pt2pt)                  */
  VSX_CAP_CAST_UNITS    = 1u << 3, /* casts seen here are mnak's units (no frag)   */
  VSX_CAP_STABILITY     = 1u << 4, /* VSX_EV_STABLE events (stable)                */
  VSX_CAP_LARGE_MSG     = 1u << 5, /* messages larger than a datagram (frag)       */
  VSX_CAP_APPL          = 1u << 6, /* application adapter (top)                    */
  VSX_CAP_TOTAL_ORDER   = 1u << 7, /* total and safe casts (a sequencer layer)      */
};

#define VSX_LAYER_STATS_MAX 16
#define VSX_STACK_LAYERS_MAX 24

typedef struct vsx_stack vsx_stack_t;
typedef struct vsx_layer_ops vsx_layer_ops_t;

/* The per-instance context every handler receives.  Fields marked (ro)
   may be read by the layer; the rest are private to the stack. */
typedef struct vsx_layer_ctx {
  void *state;                 /* (ro) the layer's state, state_sz bytes, zeroed */
  const vsx_layer_ops_t *ops;  /* (ro)                                      */
  vsx_stack_t *stack;          /* private                                   */
  uint32_t idx;                /* (ro) position, 0 = top                    */
  uint32_t rank;               /* (ro) my rank in the view                  */
  uint32_t member_cnt;         /* (ro)                                      */
  uint32_t payload_max;        /* (ro) bytes per datagram above the bottom
                                  layers' headers (what frag cuts to)       */
  const vsx_view_t *view;      /* (ro)                                      */
  uint64_t eid;                /* (ro) my endpoint id                       */
  uint64_t group_id;           /* (ro)                                      */
  uint64_t instance;           /* (ro) this stack instance's id             */
  vsx_bufpool_t *pool;         /* (ro) buffers for headers and control msgs */
  vsx_rng_t *rng;              /* (ro) the stack's seeded PRNG              */
  uint64_t timer_ns;           /* private: next alarm, 0 = none             */
  int flow_blocked;            /* private                                   */
  int idle_wanted;             /* private                                   */
  int idle_deferred;           /* private                                   */
  const char *args;            /* private: "k=v,k=v" from the spec          */
  uint32_t args_len;           /* private                                   */
  uint64_t stats[VSX_LAYER_STATS_MAX]; /* (rw) the layer's counters         */
} vsx_layer_ctx_t;

struct vsx_layer_ops {
  const char *name;
  const char *purpose;           /* one line, for listings                  */
  size_t state_sz;
  uint32_t provides, needs_below, needs_above, clears;
  const char *const *stat_names; /* stat_cnt names of ctx->stats            */
  uint32_t stat_cnt;
  /* init: state is zeroed; read parameters with vsx_param_*.  Returns
     VSX_OK or an error (with vsx_fail) naming the bad parameter. */
  int  (*init)(vsx_layer_ctx_t *ctx);
  /* fini: drop every buffered event and iovec.  Cannot fail. */
  void (*fini)(vsx_layer_ctx_t *ctx);
  void (*up)(vsx_layer_ctx_t *ctx, vsx_event_t *ev);
  void (*upnm)(vsx_layer_ctx_t *ctx, vsx_event_t *ev);
  void (*dn)(vsx_layer_ctx_t *ctx, vsx_event_t *ev);
  void (*dnnm)(vsx_layer_ctx_t *ctx, vsx_event_t *ev);
  void (*timer)(vsx_layer_ctx_t *ctx, uint64_t now_ns);
  /* dump: one or more lines of state, for debugging (opt). */
  void (*dump)(vsx_layer_ctx_t *ctx, FILE *out);
  /* ctl: runtime control from tests, e.g. "cut=1,3" (opt). */
  int  (*ctl)(vsx_layer_ctx_t *ctx, const char *cmd);
  /* idle: the event queue just drained and this layer asked for it with
     vsx_idle_request (opt); what it passes on runs before the stack
     returns.  Bundling flushes here, so it never adds latency; while the
     owner batches (vsx_stack_batching) it may defer with
     vsx_idle_defer and is called again at vsx_stack_flush, before the
     owner transmits. */
  void (*idle)(vsx_layer_ctx_t *ctx);
};

/* ---- calls a layer makes --------------------------------------------- */

/* vsx_pass_up / vsx_pass_dn queue ev for the layer above / below (past
   the top: the stack's owner; past the bottom: the transport).  The
   caller gives up the event. */
void vsx_pass_up(vsx_layer_ctx_t *ctx, vsx_event_t *ev);
void vsx_pass_dn(vsx_layer_ctx_t *ctx, vsx_event_t *ev);

/* vsx_ev_alloc returns a fresh protocol event, or NULL when the pool is
   exhausted: the layer must cope (retry from its timer, or drop an
   unreliable message). */
vsx_event_t *vsx_ev_alloc(vsx_layer_ctx_t *ctx, uint16_t type);
void vsx_ev_free(vsx_layer_ctx_t *ctx, vsx_event_t *ev);

/* vsx_ev_clone returns a new event with ev's type, flags, peer, svc and a
   second reference to its list; NULL on exhaustion. */
vsx_event_t *vsx_ev_clone(vsx_layer_ctx_t *ctx, const vsx_event_t *ev);

/* vsx_hdr_push returns sz writable bytes at the front of ev's message
   (NULL on buffer exhaustion).  vsx_hdr_pop copies them out and removes
   them (VSX_ERR_MALFORMED if the message is too short). */
static inline void *vsx_hdr_push(vsx_layer_ctx_t *ctx, vsx_event_t *ev, uint32_t sz) {
  return vsx_iovl_push(ctx->pool, &ev->iovl, sz);
}
static inline int vsx_hdr_pop(vsx_event_t *ev, void *out, uint32_t sz) {
  return vsx_iovl_pop(&ev->iovl, out, sz);
}

/* vsx_now returns the stack's clock (virtual in the simulator). */
uint64_t vsx_now(vsx_layer_ctx_t *ctx);

/* vsx_timer_set asks for the layer's timer handler to run at at_ns
   (replacing any earlier request; 0 cancels).  vsx_timer_soon keeps the
   earlier of the pending request and at_ns. */
void vsx_timer_set(vsx_layer_ctx_t *ctx, uint64_t at_ns);
void vsx_timer_soon(vsx_layer_ctx_t *ctx, uint64_t at_ns);

/* vsx_idle_request asks for the layer's idle handler to run once, when
   the stack's event queue next drains. */
static inline void vsx_idle_request(vsx_layer_ctx_t *ctx) { ctx->idle_wanted = 1; }

/* vsx_stack_batching: 1 while the owner holds datagrams back to send
   them together later (an endpoint in an event loop, between the
   application's casts and the loop's next wait): a layer's idle work that
   only packs datagrams may wait for vsx_stack_flush (vsx_idle_defer). */
int vsx_stack_batching(const vsx_layer_ctx_t *ctx);
/* vsx_idle_defer: call the layer's idle handler again at the owner's next
   vsx_stack_flush (from inside the idle handler). */
static inline void vsx_idle_defer(vsx_layer_ctx_t *ctx) { ctx->idle_deferred = 1; }

/* vsx_flow_block says whether this layer can take more messages from the
   application.  The stack tells the application when the OR over all
   layers changes. */
void vsx_flow_block(vsx_layer_ctx_t *ctx, int blocked);

/* Parameters: "name(k=v,...)" in the spec, then "name.k=v" in the stack's
   params string, then dflt. */
uint64_t vsx_param_u64(vsx_layer_ctx_t *ctx, const char *key, uint64_t dflt);
double   vsx_param_f64(vsx_layer_ctx_t *ctx, const char *key, double dflt);
/* vsx_param_str copies the value into buf; returns 1 if found. */
int      vsx_param_str(vsx_layer_ctx_t *ctx, const char *key, char *buf, size_t cap);

/* ---- registry --------------------------------------------------------- */

/* vsx_layer_register adds a layer (tests add fake ones).  VSX_ERR_BUSY if
   the name is taken, VSX_ERR_AGAIN if the registry is full. */
int vsx_layer_register(const vsx_layer_ops_t *ops);
const vsx_layer_ops_t *vsx_layer_find(const char *name, size_t name_len);
/* vsx_layer_list writes the registered names, ", " separated. */
void vsx_layer_list(char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
