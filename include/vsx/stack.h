/* vsx/stack.h - a protocol stack built at run time from a spec string.

   "top:chk_fifo:frag:stable:pt2pt:mnak:drop(loss=0.2):bottom" lists the
   layers top to bottom, each with optional "(k=v,...)" arguments.  The
   stack owns one state block per layer, a FIFO queue of pending events
   and one alarm per layer.  It never allocates after vsx_stack_create.

   FLOW.  vsx_stack_dn injects an event from the owner (application side)
   at the top; vsx_stack_up injects a received datagram at the bottom.
   Both run the queue until it is empty and return; an event passed up
   past the top goes to cfg.sink_up, one passed down past the bottom to
   cfg.sink_dn (the transport), and both sinks take ownership.

   TIME.  The owner asks vsx_stack_next_alarm for the earliest alarm and
   calls vsx_stack_alarms when the clock (cfg.now) reaches it: the
   simulator on virtual time, libev on a real ev_timer.

   THREADS.  A stack is used from one thread. */
#ifndef VSX_STACK_H
#define VSX_STACK_H

#include "vsx/layer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vsx_stack_cfg {
  const char *spec;           /* layers, top to bottom                     */
  const char *opt_params;     /* "layer.key=value,..." overrides           */
  const vsx_view_t *view;
  uint32_t rank;              /* my index in view->members                 */
  uint64_t group_id;
  uint64_t instance;          /* 0: derived from the view id               */
  uint32_t payload_max;       /* bytes per datagram for the layers above
                                 the bottom ones (0: a 1500 MTU default)    */
  uint64_t seed;              /* the stack's PRNG                          */
  vsx_bufpool_t *pool;
  vsx_evpool_t  *evpool;
  void *owner;
  uint64_t (*now)(void *owner);
  void (*sink_up)(void *owner, vsx_event_t *ev);
  void (*sink_dn)(void *owner, vsx_event_t *ev);
  void (*on_flow)(void *owner, int blocked); /* opt */
} vsx_stack_cfg_t;

/* vsx_stack_create parses the spec, checks every layer's placement and
   runs each init.  Errors: VSX_ERR_NOTFOUND for an unknown layer (the
   message lists the known ones), VSX_ERR_PLACEMENT when a layer's needs
   are not met (the message names the layer and what is missing),
   VSX_ERR_INVAL for a malformed spec or parameter. */
int  vsx_stack_create(const vsx_stack_cfg_t *cfg, vsx_stack_t **out);
/* vsx_stack_destroy runs every fini and frees queued events. */
void vsx_stack_destroy(vsx_stack_t *stack);

void vsx_stack_dn(vsx_stack_t *stack, vsx_event_t *ev);
void vsx_stack_up(vsx_stack_t *stack, vsx_event_t *ev);

uint64_t vsx_stack_next_alarm(const vsx_stack_t *stack); /* 0 = none */
void     vsx_stack_alarms(vsx_stack_t *stack);

int      vsx_stack_flow_blocked(const vsx_stack_t *stack);
/* Batching: with vsx_stack_set_batching(stack, 1) the owner says it holds
   datagrams back and sends them together (before its event loop waits),
   so layers may pack messages across several of the application's calls
   (bundle does); vsx_stack_flush runs their deferred work, and must be
   called before the owner transmits.  Off by default: every drained
   queue is a flush point. */
void     vsx_stack_set_batching(vsx_stack_t *stack, int on);
void     vsx_stack_flush(vsx_stack_t *stack);
uint32_t vsx_stack_layer_cnt(const vsx_stack_t *stack);
/* vsx_stack_dispatched: events handed to a handler or a sink so far
   (each hop of an event through a layer counts once). */
uint64_t vsx_stack_dispatched(const vsx_stack_t *stack);
/* vsx_stack_caps: the OR of what the stack's layers provide (VSX_CAP_*). */
uint32_t vsx_stack_caps(const vsx_stack_t *stack);
vsx_layer_ctx_t *vsx_stack_layer(vsx_stack_t *stack, uint32_t idx);
/* vsx_stack_find returns the context of the first layer named name. */
vsx_layer_ctx_t *vsx_stack_find(vsx_stack_t *stack, const char *name);
/* vsx_stack_stat returns a named counter of a named layer, or 0. */
uint64_t vsx_stack_stat(vsx_stack_t *stack, const char *layer, const char *stat);
/* vsx_stack_ctl sends a control command to the named layer. */
int      vsx_stack_ctl(vsx_stack_t *stack, const char *layer, const char *cmd);
void     vsx_stack_print_stats(vsx_stack_t *stack, FILE *out);
void     vsx_stack_dump(vsx_stack_t *stack, FILE *out);
vsx_evpool_t *vsx_stack_evpool(vsx_stack_t *stack);

#ifdef __cplusplus
}
#endif
#endif
