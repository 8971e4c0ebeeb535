/* endpoint.c - one member: transport + the current view's stack +
   callbacks, driven by poll, by libev, or by the simulator.  See
   include/vsx/endpoint.h.

   Two stack slots: the current view's stack, and the previous one while
   it lingers (it retransmits the view message to stragglers; it gets the
   datagrams that carry its instance id, and whatever it still passes up
   to the application is dropped and counted: the flush makes that
   nothing).  A view change builds the new stack in the free slot. */
#include "vsx/endpoint.h"
#include "vsx/trace.h"
#include "vsx/wire.h"
#include "transport/afxdp_priv.h"

#include <arpa/inet.h>
#include <ev.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define TX_BATCH 64
#define RX_BATCH 64
#define RX_BUDGET 1024     /* datagrams per poll before yielding to alarms */
#define HDR_BELOW_MAX 128  /* wire + layer headers below frag              */
#define HDR_ABOVE_MAX 64   /* layer headers above frag                     */
#define BORROW_MAX 64      /* zero-copy buffers lent out at once           */

/* A zero-copy buffer lent to the application: one pool buffer.  The
   slots live in the endpoint (no allocation per borrow); the handle is
   the slot's address. */
struct vsx_msgbuf {
  struct vsx_endpoint *ep; /* NULL: the slot is free                    */
  vsx_iovec_t iov;         /* one reference, the application's          */
};

typedef struct ep_slot {
  struct vsx_endpoint *ep;
  vsx_stack_t *stack;      /* NULL: free                                */
  vsx_view_t view;
  uint32_t rank;
  uint64_t instance;
  uint64_t linger_until;   /* an old slot is destroyed then             */
  int flushed;             /* its view ended by a flush: it can deliver
                              no cast any more (a bug if it does)       */
} ep_slot_t;

struct vsx_endpoint {
  vsx_endpoint_opts_t opts;
  char group[128], name[64], spec[512], params[1100];
  vsx_view_t view;         /* the current view (as installed)           */
  uint32_t rank;
  uint64_t eid;
  const vsx_transport_ops_t *tops;
  void *tstate;
  vsx_bufpool_t *pool;
  vsx_evpool_t *evpool;
  vsx_stack_t *stack;      /* == slot[cur].stack                        */
  ep_slot_t slot[2];
  uint32_t cur;
  uint32_t payload_max, chunk_sz, max_msg;
  int has_frag, dynamic, has_xfer;
  int ready;               /* the view callback ran for the view        */
  int app_blocked;         /* sending refused: the block callback ran
                              (or no view was shown yet)                */
  int stack_blocked;       /* the current stack asked for BLOCK         */
  int leaving, exited;
  int init_pending;        /* the first view starts at the first poll  */
  int primary;
  uint64_t primary_eids[VSX_MEMBERS_MAX];
  uint32_t primary_cnt;
  uint64_t linger_ns;
  uint64_t spin_ns;           /* busy-poll window after traffic (0: none) */
  vsx_trace_t *trace;
  uint8_t *xfer_buf;       /* contiguous copy of a state piece          */
  size_t xfer_cap;
  vsx_datagram_t tx[TX_BATCH];
  uint32_t tx_cnt;
  vsx_endpoint_stats_t stats;  /* includes the counters of freed stacks */
  uint64_t blocked_since_ns;
  vsx_msgbuf_t borrow[BORROW_MAX];
  uint32_t borrow_free[BORROW_MAX]; /* free slot indexes, a stack        */
  uint32_t borrow_free_cnt;
  /* libev: embedded, never allocated (the loop is the application's) */
  struct ev_loop *loop;
  ev_io io;
  ev_timer timer;
  ev_prepare prepare;
  int own_loop;
};

static void sink_up(void *owner, vsx_event_t *ev);

static uint64_t clock_now(const vsx_endpoint_t *ep) {
  return ep->opts.opt_clock ? ep->opts.opt_clock(ep->opts.opt_clock_ctx) : vsx_now_ns();
}

static uint64_t stack_now(void *owner) { return clock_now(((ep_slot_t *)owner)->ep); }

/* The trace's clock for a simulated endpoint: a real epoch taken once
   per process, plus virtual time, so every member of one run agrees. */
static uint64_t trace_clock(void *ctx) {
  static uint64_t epoch;
  vsx_endpoint_t *ep = ctx;
  if (!epoch) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    epoch = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
  }
  return epoch + clock_now(ep);
}

/* flush_tx hands the batch to the transport; what it refuses stays for
   the next flush. */
static void flush_tx(vsx_endpoint_t *ep) {
  if (!ep->tx_cnt) return;
  uint32_t sent = 0;
  int err = ep->tops->send_batch(ep->tstate, ep->tx, ep->tx_cnt, &sent);
  VSX_ASSERT(sent <= ep->tx_cnt);
  for (uint32_t i = 0; i < sent; i++) {
    ep->stats.tx_bytes += vsx_iovl_len(&ep->tx[i].iovl);
    vsx_iovl_free(&ep->tx[i].iovl);
  }
  ep->stats.tx_datagrams += sent;
  memmove(ep->tx, ep->tx + sent, (ep->tx_cnt - sent) * sizeof ep->tx[0]);
  ep->tx_cnt -= sent;
  if (err && err != VSX_ERR_AGAIN) vsx_log(1, "endpoint %s: send_batch: %s", ep->name, vsx_strerror(err));
}

/* sink_dn: a datagram leaves a stack; batch it. */
static void sink_dn(void *owner, vsx_event_t *ev) {
  ep_slot_t *sl = owner;
  vsx_endpoint_t *ep = sl->ep;
  if (ep->tx_cnt == TX_BATCH) flush_tx(ep);
  if (ep->tx_cnt == TX_BATCH) { /* the transport refuses a whole batch: it is unreliable, the layers retransmit */
    ep->stats.tx_dropped++;
    vsx_evpool_free(ep->evpool, ev);
    return;
  }
  vsx_datagram_t *dg = &ep->tx[ep->tx_cnt++];
  dg->peer_eid = ev->type == VSX_EV_SEND ? sl->view.members[ev->peer] : ev->type == VSX_EV_GOSSIP ? ev->u64a : 0;
  dg->iovl = ev->iovl;
  vsx_iovl_init(&ev->iovl);
  vsx_evpool_free(ep->evpool, ev);
}

/* transmit lets the stacks pack what they deferred (bundles), then
   hands every batched datagram to the transport. */
static void transmit(vsx_endpoint_t *ep) {
  for (int i = 0; i < 2; i++)
    if (ep->slot[i].stack) vsx_stack_flush(ep->slot[i].stack);
  flush_tx(ep);
}

static void on_flow(void *owner, int blocked) {
  ep_slot_t *sl = owner;
  vsx_endpoint_t *ep = sl->ep;
  if (sl->stack != ep->stack) return;
  uint64_t now = clock_now(ep);
  if (blocked) ep->blocked_since_ns = now;
  else if (ep->blocked_since_ns) { ep->stats.flow_blocked_ns += now - ep->blocked_since_ns; ep->blocked_since_ns = 0; }
  if (ep->opts.cbs.flow) ep->opts.cbs.flow(ep->opts.user, ep, blocked);
}

/* ---- membership events from the current stack ------------------------------- */

/* inject passes a fresh no-message event down into sl's stack (it only
   queues when that stack is running).  0 when the pool is empty. */
static int inject(vsx_endpoint_t *ep, ep_slot_t *sl, uint16_t type, uint64_t a, uint64_t b) {
  vsx_event_t *ev = vsx_evpool_alloc(ep->evpool, type, 0);
  if (!ev) return 0;
  ev->u64a = a;
  ev->u64b = b;
  vsx_stack_dn(sl->stack, ev);
  return 1;
}

static void do_exit(vsx_endpoint_t *ep, const char *reason) {
  if (ep->exited) return;
  ep->exited = 1;
  ep->ready = 0;
  /* The stack lingers (it may still owe the view message to others)
     but falls silent, and is freed after linger_ms. */
  if (ep->dynamic && ep->stack) {
    ep->slot[ep->cur].linger_until = clock_now(ep) + ep->linger_ns;
    if (!inject(ep, &ep->slot[ep->cur], VSX_EV_CLOSE, 0, 0))
      vsx_log(0, "endpoint %s: no event to close the stack at exit", ep->name);
  }
  vsx_log(1, "endpoint %s: exit (%s)", ep->name, reason);
  vsx_trace_exit(ep->trace, reason);
  if (ep->opts.cbs.exit) ep->opts.cbs.exit(ep->opts.user, ep, reason);
}

/* do_block runs the block callback once per view change. */
static void do_block(vsx_endpoint_t *ep) {
  if (ep->app_blocked || ep->exited) return;
  ep->app_blocked = 1;
  ep->stats.blocks++;
  vsx_trace_block(ep->trace);
  if (ep->opts.cbs.block) ep->opts.cbs.block(ep->opts.user, ep);
}

/* view_ready: the view may be used: the view callback.  If the view is
   already ending (its flush asked to block before its state transfer was
   done), sending stays refused and the block callback follows at once:
   the application still sees the view, and the casts of it that the
   flush agreed on. */
static void view_ready(vsx_endpoint_t *ep) {
  if (ep->ready || ep->exited) return;
  ep->ready = 1;
  ep->app_blocked = ep->stack_blocked; /* a leaving member may not send either: can_send says so */
  ep->stats.views++;
  vsx_trace_view(ep->trace, &ep->view);
  if (ep->opts.cbs.view) ep->opts.cbs.view(ep->opts.user, ep, &ep->view, ep->rank);
  if (ep->stack_blocked && !ep->exited) {
    ep->stats.blocks++;
    vsx_trace_block(ep->trace);
    if (ep->opts.cbs.block) ep->opts.cbs.block(ep->opts.user, ep);
  }
}

static int is_primary(const vsx_endpoint_t *ep, const vsx_view_t *v) {
  if (!ep->primary_cnt) return 1;
  uint32_t in = 0;
  for (uint32_t i = 0; i < ep->primary_cnt; i++)
    for (uint32_t k = 0; k < v->member_cnt; k++)
      if (v->members[k] == ep->primary_eids[i]) { in++; break; }
  return 2 * in > ep->primary_cnt;
}

/* build_stack makes sl's stack for view v (rank = mine). */
static int build_stack(vsx_endpoint_t *ep, ep_slot_t *sl, const vsx_view_t *v, uint32_t rank) {
  sl->ep = ep;
  sl->view = *v;
  sl->rank = rank;
  sl->linger_until = 0;
  sl->flushed = 0;
  uint64_t seed = (ep->opts.seed ? ep->opts.seed : ep->eid) ^ (v->ltime * 0x9e3779b97f4a7c15ull);
  vsx_stack_cfg_t sc = {
    .spec = ep->spec, .opt_params = ep->params, .view = &sl->view, .rank = rank, .group_id = vsx_hash64(ep->group),
    .payload_max = ep->payload_max, .seed = seed, .pool = ep->pool, .evpool = ep->evpool, .owner = sl,
    .now = stack_now, .sink_up = sink_up, .sink_dn = sink_dn, .on_flow = on_flow,
  };
  int err = vsx_stack_create(&sc, &sl->stack);
  if (err) { sl->stack = NULL; return err; }
  sl->instance = vsx_stack_layer(sl->stack, 0)->instance;
  if (ep->loop) vsx_stack_set_batching(sl->stack, 1); /* the loop's prepare transmits */
  ep->stats.stacks++;
  return VSX_OK;
}

/* The layers' counters the endpoint's statistics sum over the stacks of
   every view (a stack's counters are added when it is freed). */
static const struct stack_sum {
  const char *layer, *stat;
  size_t off;
} stack_sums[] = {
  { "mnak", "cast_after_block", offsetof(vsx_endpoint_stats_t, casts_after_block) },
  { "mnak", "retransmitted", offsetof(vsx_endpoint_stats_t, retransmits) },
  { "pt2pt", "retransmitted", offsetof(vsx_endpoint_stats_t, retransmits) },
  { "bottom", "drop_magic", offsetof(vsx_endpoint_stats_t, drop_magic) },
  { "bottom", "drop_version", offsetof(vsx_endpoint_stats_t, drop_version) },
  { "bottom", "drop_length", offsetof(vsx_endpoint_stats_t, drop_length) },
  { "bottom", "drop_group", offsetof(vsx_endpoint_stats_t, drop_group) },
  { "bottom", "drop_stale", offsetof(vsx_endpoint_stats_t, drop_stale) },
  { "bottom", "drop_sender", offsetof(vsx_endpoint_stats_t, drop_sender) },
  { "bottom", "drop_not_mine", offsetof(vsx_endpoint_stats_t, drop_not_mine) },
  { "bottom", "drop_own", offsetof(vsx_endpoint_stats_t, drop_own) },
  { "bottom", "drop_too_big", offsetof(vsx_endpoint_stats_t, drop_too_big) },
  { "bottom", "drop_no_buffer", offsetof(vsx_endpoint_stats_t, drop_no_buffer) },
};

static void add_stack_sums(vsx_stack_t *st, vsx_endpoint_stats_t *to) {
  for (size_t i = 0; i < VSX_ARRAY_CNT(stack_sums); i++)
    *(uint64_t *)(void *)((char *)to + stack_sums[i].off) += vsx_stack_stat(st, stack_sums[i].layer, stack_sums[i].stat);
}

static void free_slot(ep_slot_t *sl) {
  add_stack_sums(sl->stack, &sl->ep->stats); /* keep the totals of the view's counters */
  vsx_stack_destroy(sl->stack);
  sl->stack = NULL;
  sl->linger_until = 0;
}

/* new_view: the current stack says v comes next: build its stack, let
   the old one linger, start the new one. */
static void new_view(vsx_endpoint_t *ep, const vsx_view_t *nv, int flushed) {
  if (ep->exited) return;
  vsx_view_t v = *nv;
  int rank = -1;
  for (uint32_t i = 0; i < v.member_cnt; i++)
    if (v.members[i] == ep->eid) rank = (int)i;
  if (rank < 0) { do_exit(ep, ep->leaving ? "leave" : "excluded"); return; }
  do_block(ep); /* a view never changes without the block callback first */
  v.flags &= ~(uint32_t)(VSX_VIEW_PRIMARY | VSX_VIEW_STATIC);
  if (ep->primary_cnt && is_primary(ep, &v)) v.flags |= VSX_VIEW_PRIMARY;
  uint32_t old = ep->cur, nxt = old ^ 1;
  if (ep->slot[nxt].stack) free_slot(&ep->slot[nxt]); /* a view older still: done lingering */
  int err = build_stack(ep, &ep->slot[nxt], &v, (uint32_t)rank);
  if (err) {
    char reason[200];
    snprintf(reason, sizeof reason, "error: cannot build the stack of view %llu: %s", (unsigned long long)v.ltime,
             vsx_last_error());
    do_exit(ep, reason);
    return;
  }
  ep->slot[old].linger_until = clock_now(ep) + ep->linger_ns;
  ep->slot[old].flushed = flushed;
  if (!inject(ep, &ep->slot[old], VSX_EV_CLOSE, 0, 0)) vsx_log(0, "endpoint %s: no event to close an old view", ep->name);
  ep->cur = nxt;
  ep->stack = ep->slot[nxt].stack;
  ep->view = v;
  ep->rank = (uint32_t)rank;
  ep->ready = 0;
  ep->stack_blocked = 0;
  ep->primary = is_primary(ep, &v);
  vsx_log(1, "endpoint %s: view %llu.%llx, %u members, rank %d", ep->name, (unsigned long long)v.ltime,
          (unsigned long long)v.coord_eid, v.member_cnt, rank);
  if (!inject(ep, &ep->slot[nxt], VSX_EV_INIT, 0, 0)) ep->init_pending = 1;
  /* A leave under way when the view changed (the coordinator had not
     heard of it) goes on in the new view. */
  if (ep->leaving && !inject(ep, &ep->slot[nxt], VSX_EV_LEAVE, 0, 0))
    vsx_log(0, "endpoint %s: no event to go on leaving in the new view", ep->name);
  if (!ep->has_xfer) view_ready(ep);
}

/* state_request: the xfer layer asks for the state (I am its source). */
static void state_request(vsx_endpoint_t *ep, ep_slot_t *sl) {
  const void *data = NULL;
  size_t len = 0;
  if (ep->opts.cbs.state_get && ep->opts.cbs.state_get(ep->opts.user, ep, &data, &len) != VSX_OK) {
    data = NULL;
    len = 0;
  }
  ep->stats.state_bytes_out += len;
  if (!inject(ep, sl, VSX_EV_XFER, (uint64_t)(uintptr_t)data, len))
    vsx_log(0, "endpoint %s: no event for the state: the transfer waits for the next view", ep->name);
}

static void state_piece(vsx_endpoint_t *ep, vsx_event_t *ev) {
  size_t len = vsx_iovl_len(&ev->iovl);
  if (len > ep->xfer_cap) { /* grows to the largest piece, at view changes only */
    uint8_t *b = realloc(ep->xfer_buf, len);
    if (!b) { vsx_log(0, "endpoint %s: no memory for a state piece of %zu bytes", ep->name, len); return; }
    ep->xfer_buf = b;
    ep->xfer_cap = len;
  }
  vsx_iovl_gather(&ev->iovl, 0, ep->xfer_buf, len);
  ep->stats.state_bytes_in += len;
  if (ep->opts.cbs.state_put) ep->opts.cbs.state_put(ep->opts.user, ep, ep->xfer_buf, len, ev->u64a, ev->u64b);
}

/* sink_up: an event leaves the top of a stack.  From the current stack:
   messages go to the application, membership events drive the view
   changes.  From an ended view's stack: nothing reaches the application. */
static void sink_up(void *owner, vsx_event_t *ev) {
  ep_slot_t *sl = owner;
  vsx_endpoint_t *ep = sl->ep;
  int msg = ev->type == VSX_EV_CAST || ev->type == VSX_EV_SEND;
  if (sl->stack != ep->stack || ep->exited || !sl->stack) {
    if (ev->type == VSX_EV_CAST && sl->flushed) ep->stats.old_view_casts++;
    else if (msg) ep->stats.old_view_dropped++;
    vsx_evpool_free(ep->evpool, ev);
    return;
  }
  switch (ev->type) {
  case VSX_EV_CAST:
  case VSX_EV_SEND:
    if (!ep->ready) { ep->stats.early_msgs++; break; }
    ep->stats.delivered++;
    ep->opts.cbs.deliver(ep->opts.user, ep, (uint32_t)ev->peer, (vsx_svc_t)ev->svc, &ev->iovl);
    break;
  case VSX_EV_BLOCK: /* BLOCK: the block callback (if the view was shown), then BLOCK_OK */
    ep->stack_blocked = 1;
    if (ep->ready) do_block(ep);
    if (!inject(ep, sl, VSX_EV_BLOCK_OK, 0, 0)) vsx_log(0, "endpoint %s: no event for BLOCK_OK", ep->name);
    break;
  case VSX_EV_VIEW: { /* VIEW: the next view */
    vsx_view_t v = ev->x.view;
    int flushed = ev->u64b == 1;
    vsx_evpool_free(ep->evpool, ev);
    new_view(ep, &v, flushed);
    return;
  }
  case VSX_EV_READY: view_ready(ep); break;           /* READY: the view callback */
  case VSX_EV_XFER: state_request(ep, sl); break;     /* XFER: state_get */
  case VSX_EV_XFER_PUT: state_piece(ep, ev); break;   /* XFER_PUT: state_put */
  case VSX_EV_EXIT:                                   /* EXIT: out of the group */
    do_exit(ep, ev->u64a == VSX_EXIT_LEAVE_TIMEOUT ? "leave-timeout" : "leave");
    break;
  default: break;
  }
  vsx_evpool_free(ep->evpool, ev);
}

/* ---- creation --------------------------------------------------------------------- */

static uint64_t fresh_eid(void) {
  uint64_t id = 0;
  while (!id)
    if (getrandom(&id, sizeof id, 0) != sizeof id) id = vsx_now_ns() ^ ((uint64_t)getpid() << 32);
  return id;
}

static int copy_str(char *dst, size_t cap, const char *src, const char *what) {
  if (strlen(src) >= cap) return vsx_fail(VSX_ERR_INVAL, "endpoint: %s longer than %zu bytes", what, cap - 1);
  strcpy(dst, src);
  return VSX_OK;
}

static int check_opts(const vsx_endpoint_opts_t *o) {
  if (!o) return vsx_fail(VSX_ERR_INVAL, "endpoint: opts is NULL");
  if (!o->group || !*o->group) return vsx_fail(VSX_ERR_INVAL, "endpoint: opts.group (the group name) is required");
  if (!o->transport && !o->opt_transport_name)
    return vsx_fail(VSX_ERR_INVAL, "endpoint: opts.transport is required (vsx_transport_find(\"udp\"), \"afxdp\" or "
                    "\"sim\"), or its name in opts.opt_transport_name");
  if (!o->transport && !vsx_transport_find(o->opt_transport_name))
    return vsx_fail(VSX_ERR_NOTFOUND, "endpoint: no transport named '%s'; give udp, afxdp or sim", o->opt_transport_name);
  if (o->opt_group_key || o->group_key_len)
    return vsx_fail(VSX_ERR_NOTSUP, "endpoint: group keys (authenticated groups) are not in this release; "
                    "remove opts.opt_group_key, and keep the group on a network you trust");
  if (o->heartbeat_ms && o->fail_timeout_ms && o->fail_timeout_ms < 2 * o->heartbeat_ms)
    return vsx_fail(VSX_ERR_INVAL, "endpoint: fail_timeout_ms=%u must be at least two heartbeats (heartbeat_ms=%u)",
                    o->fail_timeout_ms, o->heartbeat_ms);
  if (!o->cbs.deliver) return vsx_fail(VSX_ERR_INVAL, "endpoint: opts.cbs.deliver is required");
  if (o->view && (!o->view->member_cnt || o->view->member_cnt > VSX_MEMBERS_MAX))
    return vsx_fail(VSX_ERR_INVAL, "endpoint: opts.view must list 1..%d members (or be NULL: start alone)", VSX_MEMBERS_MAX);
  if (o->mtu_payload && (o->mtu_payload < 512 || o->mtu_payload > 9000))
    return vsx_fail(VSX_ERR_INVAL, "endpoint: mtu_payload=%u outside [512, 9000]", o->mtu_payload);
  if (o->primary_cnt > VSX_MEMBERS_MAX || (o->primary_cnt && !o->opt_primary))
    return vsx_fail(VSX_ERR_INVAL, "endpoint: opt_primary must list primary_cnt (1..%d) endpoint ids", VSX_MEMBERS_MAX);
  if ((o->cbs.state_get == NULL) != (o->cbs.state_put == NULL))
    return vsx_fail(VSX_ERR_INVAL, "endpoint: set both cbs.state_get and cbs.state_put (state transfer) or neither");
  return VSX_OK;
}

/* first_view: opts.view, or a singleton of me. */
static int first_view(vsx_endpoint_t *ep, const vsx_endpoint_opts_t *opts, uint32_t *rank) {
  if (!opts->view) {
    memset(&ep->view, 0, sizeof ep->view);
    ep->view.member_cnt = 1;
    ep->view.members[0] = ep->view.coord_eid = ep->eid;
    *rank = 0;
    return VSX_OK;
  }
  ep->view = *opts->view;
  ep->view.xfer_mask = 0;
  ep->view.flags &= ~(uint32_t)VSX_VIEW_PRIMARY;
  for (uint32_t r = 0; r < ep->view.member_cnt; r++)
    if (ep->view.members[r] == ep->eid) { *rank = r; return VSX_OK; }
  return vsx_fail(VSX_ERR_INVAL, "endpoint: my id %llx is not in opts.view", (unsigned long long)ep->eid);
}

static int open_trace(vsx_endpoint_t *ep, const vsx_endpoint_opts_t *opts) {
  const char *dir = opts->opt_trace_dir ? opts->opt_trace_dir : getenv("VSX_TRACE_DIR");
  if (!dir || !*dir) return VSX_OK;
  vsx_trace_opts_t to = { .dir = dir, .eid = ep->eid, .opt_name = ep->name, .group = ep->group,
                          .transport = opts->opt_transport_name ? opts->opt_transport_name : ep->tops->name,
                          .opt_clock = opts->opt_clock ? trace_clock : NULL, .opt_clock_ctx = ep };
  return vsx_trace_open(&to, &ep->trace);
}

/* configure fills in names, sizes and the stack's parameters. */
static int configure(vsx_endpoint_t *ep, const vsx_endpoint_opts_t *opts, uint32_t *rank) {
  const char *spec = opts->opt_stack ? opts->opt_stack : opts->view ? VSX_STACK_DEFAULT : VSX_STACK_VSYNC;
  int err;
  if ((err = copy_str(ep->group, sizeof ep->group, opts->group, "group name")) ||
      (err = copy_str(ep->name, sizeof ep->name, opts->opt_name ? opts->opt_name : "member", "name")) ||
      (err = copy_str(ep->spec, sizeof ep->spec, spec, "stack")) || (err = first_view(ep, opts, rank)))
    return err;
  uint32_t mtu = opts->mtu_payload ? opts->mtu_payload : 1472;
  ep->max_msg = opts->max_msg ? opts->max_msg : 1u << 20;
  ep->payload_max = mtu - HDR_BELOW_MAX;
  ep->chunk_sz = ep->payload_max - HDR_ABOVE_MAX;
  ep->has_frag = strstr(ep->spec, "frag") != NULL;
  ep->linger_ns = (opts->linger_ms ? opts->linger_ms : 500) * 1000000ull;
  ep->spin_ns = opts->spin_us < 0 ? 0 : (opts->spin_us ? (uint64_t)opts->spin_us : 20u) * 1000u;
  ep->primary_cnt = opts->primary_cnt;
  if (opts->primary_cnt) memcpy(ep->primary_eids, opts->opt_primary, opts->primary_cnt * sizeof(uint64_t));
  /* A layer takes the first value of a key: opt_params come first, so a
     key given there wins over the typed option (whose value may be only
     the default that vsx_endpoint_opts_init wrote). */
  char timeouts[160] = "";
  size_t tl = 0;
  const struct { uint32_t v; const char *key; } typed[] = {
    { opts->fail_timeout_ms, "suspect.timeout_ms" }, { opts->heartbeat_ms, "suspect.sweep_ms" },
    { opts->merge_ms, "inter.heal_ms" }, { opts->leave_timeout_ms, "intra.leave_ms" },
  };
  for (size_t i = 0; i < VSX_ARRAY_CNT(typed); i++)
    if (typed[i].v) tl += (size_t)snprintf(timeouts + tl, sizeof timeouts - tl, "%s=%u,", typed[i].key, typed[i].v);
  int n = snprintf(ep->params, sizeof ep->params, "%s%s%sfrag.max_msg=%u,bottom.mtu_payload=%u%s",
                   opts->opt_params ? opts->opt_params : "", opts->opt_params && *opts->opt_params ? "," : "", timeouts,
                   ep->max_msg + HDR_ABOVE_MAX, mtu, /* frag sees the headers of the layers above it too */
                   opts->cbs.state_get ? ",intra.xfer=1" : "");
  if (n < 0 || (size_t)n >= sizeof ep->params) return vsx_fail(VSX_ERR_INVAL, "endpoint: opts.params too long");
  /* Everything is copied: no pointer into the caller's options is kept
     (only opt_backend and opt_clock_ctx, which are the caller's objects). */
  ep->opts.group = ep->group;
  ep->opts.opt_name = ep->name;
  ep->opts.opt_primary = NULL;
  ep->opts.opt_stack = ep->spec;
  ep->opts.opt_params = ep->params;
  ep->opts.opt_ifname = NULL;
  ep->opts.view = NULL;
  ep->opts.opt_trace_dir = NULL;
  ep->opts.opt_transport_name = NULL;
  return VSX_OK;
}

/* start_first_view marks the first view usable (a fixed one, or a
   stack without state transfer) or waits for its READY. */
static void start_first_view(vsx_endpoint_t *ep, uint32_t rank) {
  ep->cur = 0;
  ep->stack = ep->slot[0].stack;
  ep->rank = rank;
  ep->dynamic = vsx_stack_find(ep->stack, "intra") != NULL;
  ep->has_xfer = vsx_stack_find(ep->stack, "xfer") != NULL;
  if (!ep->dynamic) ep->view.flags |= VSX_VIEW_STATIC;
  ep->primary = is_primary(ep, &ep->view);
  if (ep->primary_cnt && ep->primary) ep->view.flags |= VSX_VIEW_PRIMARY;
  ep->init_pending = 1;
}

void vsx_endpoint_opts_init(vsx_endpoint_opts_t *o) {
  memset(o, 0, sizeof *o);
  o->mtu_payload = 1472;
  o->max_msg = 1u << 20;
  o->buf_cnt = 4096;
  o->ev_cnt = 4096;
  o->linger_ms = 500;
  o->spin_us = 20;
  o->fail_timeout_ms = 500;
  o->heartbeat_ms = 100;
  o->merge_ms = 500;
  o->leave_timeout_ms = 2000;
}

int vsx_endpoint_create(const vsx_endpoint_opts_t *opts, vsx_endpoint_t **out) {
  if (!out) return vsx_fail(VSX_ERR_INVAL, "endpoint: out is NULL");
  *out = NULL;
  int err = check_opts(opts);
  if (err) return err;
  vsx_endpoint_t *ep = calloc(1, sizeof *ep);
  if (!ep) return vsx_fail(VSX_ERR_NOMEM, "endpoint: out of memory");
  ep->opts = *opts;
  ep->tops = opts->transport ? opts->transport : vsx_transport_find(opts->opt_transport_name);
  ep->opts.transport = ep->tops;
  for (uint32_t i = 0; i < BORROW_MAX; i++) ep->borrow_free[i] = BORROW_MAX - 1 - i;
  ep->borrow_free_cnt = BORROW_MAX;
  ep->eid = opts->eid ? opts->eid : fresh_eid();
  uint32_t rank = 0;
  if ((err = configure(ep, opts, &rank))) goto fail_free;
  uint32_t mtu = opts->mtu_payload ? opts->mtu_payload : 1472;
  uint32_t buf_cnt = opts->buf_cnt ? opts->buf_cnt : 4096, ev_cnt = opts->ev_cnt ? opts->ev_cnt : 4096;
  uint32_t buf_sz = mtu + 256 + 64 > 2048 ? 4096 * ((mtu + 256 + 64 + 4095) / 4096) : 2048;
  vsx_transport_cfg_t tc = {
    .group = ep->group, .group_id = vsx_hash64(ep->group), .eid = ep->eid, .opt_ifname = opts->opt_ifname,
    .mcast_ip = opts->mcast_ip, .port = opts->port, .buf_cnt = buf_cnt, .buf_sz = buf_sz, .headroom = 256,
    .reserve_cnt = buf_cnt / 8, .ext_cnt = 4 * VSX_MEMBERS_MAX + 16, .ext_cap = ep->max_msg / ep->chunk_sz + 16,
    .opt_backend = opts->opt_backend,
  };
  if ((err = ep->tops->create(&tc, &ep->tstate))) goto fail_free;
  ep->pool = ep->tops->pool(ep->tstate);
  if ((err = vsx_evpool_create(ev_cnt, ev_cnt / 8, &ep->evpool))) goto fail_transport;
  if ((err = build_stack(ep, &ep->slot[0], &ep->view, rank))) goto fail_evpool;
  start_first_view(ep, rank);
  if ((err = open_trace(ep, opts))) goto fail_stack;
  if (!ep->dynamic || !ep->has_xfer) {
    /* Usable at once, as in the core release; the view callback (if
       any) runs at the first poll. */
    ep->ready = 1;
    ep->stats.views++;
    vsx_trace_view(ep->trace, &ep->view);
  } else {
    ep->app_blocked = 1; /* until the first view callback */
  }
  *out = ep;
  return VSX_OK;

fail_stack:
  free_slot(&ep->slot[0]);
fail_evpool:
  vsx_evpool_destroy(ep->evpool);
fail_transport:
  ep->tops->destroy(ep->tstate);
fail_free:
  free(ep);
  return err;
}

void vsx_endpoint_destroy(vsx_endpoint_t *ep) {
  if (!ep) return;
  vsx_endpoint_detach(ep);
  vsx_trace_exit(ep->trace, "stop");
  vsx_trace_close(ep->trace);
  for (int i = 0; i < 2; i++)
    if (ep->slot[i].stack) free_slot(&ep->slot[i]);
  for (uint32_t i = 0; i < ep->tx_cnt; i++) vsx_iovl_free(&ep->tx[i].iovl);
  for (uint32_t i = 0; i < BORROW_MAX; i++) /* buffers the application did not give back */
    if (ep->borrow[i].ep) vsx_iovec_unref(&ep->borrow[i].iov);
  vsx_evpool_destroy(ep->evpool);
  ep->tops->destroy(ep->tstate);
  free(ep->xfer_buf);
  free(ep);
}

/* ---- sending ------------------------------------------------------------------------ */

int vsx_endpoint_can_send(const vsx_endpoint_t *ep) {
  if (ep->exited || ep->leaving)
    return vsx_fail(VSX_ERR_STATE, "endpoint %s: %s the group; create a new endpoint to join again", ep->name,
                    ep->exited ? "has left" : "is leaving");
  if (ep->app_blocked || !ep->ready)
    return vsx_fail(VSX_ERR_BLOCKED, "endpoint %s: the view is changing; wait for the view callback", ep->name);
  if (!ep->primary)
    return vsx_fail(VSX_ERR_BLOCKED, "endpoint %s: view %llu is not primary (it holds no majority of the %u "
                    "configured members); wait for a view callback with VSX_VIEW_PRIMARY", ep->name,
                    (unsigned long long)ep->view.ltime, ep->primary_cnt);
  return VSX_OK;
}

/* admit checks a message of len bytes may go now and takes its event:
   the size, the view (membership), flow control, then an event record.
   On success *out is the event, its list still empty. */
static int admit(vsx_endpoint_t *ep, uint16_t type, size_t len, vsx_event_t **out) {
  uint32_t max = ep->has_frag ? ep->max_msg : ep->chunk_sz;
  if (len > max)
    return vsx_fail(VSX_ERR_TOOBIG, "endpoint: message of %zu bytes exceeds the maximum %u%s", len, max,
                    ep->has_frag ? " (raise opts.max_msg)" : " (add the frag layer to the stack)");
  int err = vsx_endpoint_can_send(ep);
  if (err) { ep->stats.refused_blocked++; return err; }
  /* Back-pressure is the data path's normal answer: no message is
     formatted for it (VSX_ERR_AGAIN says it all). */
  if (vsx_stack_flow_blocked(ep->stack)) { ep->stats.refused_again++; return VSX_ERR_AGAIN; }
  *out = vsx_evpool_alloc(ep->evpool, type, 1);
  if (!*out) { ep->stats.refused_again++; return VSX_ERR_AGAIN; }
  return VSX_OK;
}

/* inject_msg sends ev (its list filled) down the current stack. */
static void inject_msg(vsx_endpoint_t *ep, vsx_event_t *ev, int32_t peer, vsx_svc_t svc) {
  ev->peer = peer;
  ev->svc = (uint8_t)svc;
  ev->flags = VSX_EVF_APPL;
  vsx_stack_dn(ep->stack, ev);
  if (!ep->loop) transmit(ep); /* in a loop: its prepare transmits, so casts in a row share datagrams */
}

/* submit copies the message in and injects it at the top of the stack. */
static int submit(vsx_endpoint_t *ep, uint16_t type, int32_t peer, vsx_svc_t svc, const void *data, size_t len) {
  if (!data && len) return vsx_fail(VSX_ERR_INVAL, "endpoint: data is NULL with len %zu", len);
  vsx_event_t *ev;
  int err = admit(ep, type, len, &ev);
  if (err) return err;
  if (vsx_iovl_from_bytes(ep->pool, &ev->iovl, data, len, ep->chunk_sz, 1)) {
    vsx_evpool_free(ep->evpool, ev);
    ep->stats.refused_again++;
    return VSX_ERR_AGAIN;
  }
  inject_msg(ep, ev, peer, svc);
  return VSX_OK;
}

static uint32_t stack_caps(const vsx_endpoint_t *ep) { return ep->stack ? vsx_stack_caps(ep->stack) : 0; }

static int check_cast_svc(const vsx_endpoint_t *ep, vsx_svc_t svc) {
  if (svc != VSX_SVC_FIFO && svc != VSX_SVC_TOTAL && svc != VSX_SVC_SAFE)
    return vsx_fail(VSX_ERR_INVAL, "endpoint: cast service must be fifo, total or safe (got %d)", (int)svc);
  if (svc != VSX_SVC_FIFO && !(stack_caps(ep) & VSX_CAP_TOTAL_ORDER))
    return vsx_fail(VSX_ERR_NOTSUP, "endpoint: stack '%s' has no total-order layer; cast with VSX_SVC_FIFO", ep->spec);
  return VSX_OK;
}

static int check_rank(const vsx_endpoint_t *ep, uint32_t rank) {
  if (rank >= ep->view.member_cnt)
    return vsx_fail(VSX_ERR_INVAL, "endpoint: rank %u is not in the view of %u members", rank, ep->view.member_cnt);
  return VSX_OK;
}

int vsx_endpoint_cast(vsx_endpoint_t *ep, vsx_svc_t svc, const void *data, size_t len) {
  int err = check_cast_svc(ep, svc);
  if (!err) err = submit(ep, VSX_EV_CAST, -1, svc, data, len);
  if (!err) ep->stats.casts++;
  return err;
}

int vsx_endpoint_send(vsx_endpoint_t *ep, uint32_t rank, const void *data, size_t len) {
  int err = check_rank(ep, rank);
  if (!err) err = submit(ep, VSX_EV_SEND, (int32_t)rank, VSX_SVC_P2P, data, len);
  if (!err) ep->stats.sends++;
  return err;
}

/* ---- zero-copy sending ---------------------------------------------------------- */

int vsx_endpoint_borrow(vsx_endpoint_t *ep, size_t len, vsx_msgbuf_t **out) {
  if (!out) return vsx_fail(VSX_ERR_INVAL, "endpoint_borrow: out is NULL");
  *out = NULL;
  if (len > ep->chunk_sz)
    return vsx_fail(VSX_ERR_TOOBIG, "endpoint_borrow: %zu bytes do not fit one buffer of %u "
                    "(vsx_endpoint_chunk_sz); use vsx_endpoint_cast for larger messages", len, ep->chunk_sz);
  if (!ep->borrow_free_cnt)
    return vsx_fail(VSX_ERR_AGAIN, "endpoint_borrow: %d buffers are lent out already; send or return one first",
                    BORROW_MAX);
  vsx_iovec_t iov;
  if (vsx_buf_alloc_app(ep->pool, &iov)) { ep->stats.refused_again++; return VSX_ERR_AGAIN; } /* the rest is the protocol's */
  iov.len = ep->chunk_sz; /* room for the layers' headers stays in front */
  vsx_msgbuf_t *b = &ep->borrow[ep->borrow_free[--ep->borrow_free_cnt]];
  b->ep = ep;
  b->iov = iov;
  *out = b;
  return VSX_OK;
}

void *vsx_msgbuf_data(vsx_msgbuf_t *buf) { return vsx_iovec_ptr(&buf->iov); }
size_t vsx_msgbuf_cap(const vsx_msgbuf_t *buf) { return buf->iov.len; }

/* lent checks buf is one of ep's lent buffers. */
static int lent(const vsx_endpoint_t *ep, const vsx_msgbuf_t *buf) {
  if (!buf) return vsx_fail(VSX_ERR_INVAL, "endpoint: the buffer is NULL");
  uintptr_t at = (uintptr_t)buf, first = (uintptr_t)ep->borrow;
  if (at < first || at >= first + sizeof ep->borrow || (at - first) % sizeof ep->borrow[0] || buf->ep != ep)
    return vsx_fail(VSX_ERR_INVAL, "endpoint %s: this buffer was not lent by this endpoint (another endpoint's, "
                    "or already sent or returned)", ep->name);
  return VSX_OK;
}

static void release(vsx_endpoint_t *ep, vsx_msgbuf_t *buf) {
  buf->ep = NULL;
  ep->borrow_free[ep->borrow_free_cnt++] = (uint32_t)(buf - ep->borrow);
}

/* submit_borrowed moves buf's reference into an event and injects it;
   on any error buf stays lent. */
static int submit_borrowed(vsx_endpoint_t *ep, uint16_t type, int32_t peer, vsx_svc_t svc, vsx_msgbuf_t *buf,
                           size_t len) {
  int err = lent(ep, buf);
  if (err) return err;
  if (len > buf->iov.len)
    return vsx_fail(VSX_ERR_TOOBIG, "endpoint: %zu bytes in a buffer of %u", len, buf->iov.len);
  vsx_event_t *ev;
  if ((err = admit(ep, type, len, &ev))) return err;
  vsx_iovec_t iov = buf->iov;
  iov.len = (uint32_t)len;
  if (len) {
    int taken = vsx_iovl_append_take(&ev->iovl, &iov); /* an empty list holds one piece inline */
    VSX_ASSERT(taken == VSX_OK);
  } else {
    vsx_iovec_unref(&iov); /* an empty message carries no buffer */
  }
  release(ep, buf);
  inject_msg(ep, ev, peer, svc);
  return VSX_OK;
}

int vsx_endpoint_cast_borrowed(vsx_endpoint_t *ep, vsx_svc_t svc, vsx_msgbuf_t *buf, size_t len) {
  int err = check_cast_svc(ep, svc);
  if (!err) err = submit_borrowed(ep, VSX_EV_CAST, -1, svc, buf, len);
  if (!err) ep->stats.casts++;
  return err;
}

int vsx_endpoint_send_borrowed(vsx_endpoint_t *ep, uint32_t rank, vsx_msgbuf_t *buf, size_t len) {
  int err = check_rank(ep, rank);
  if (!err) err = submit_borrowed(ep, VSX_EV_SEND, (int32_t)rank, VSX_SVC_P2P, buf, len);
  if (!err) ep->stats.sends++;
  return err;
}

int vsx_endpoint_return(vsx_endpoint_t *ep, vsx_msgbuf_t *buf) {
  int err = lent(ep, buf);
  if (err) return err;
  vsx_iovec_unref(&buf->iov);
  release(ep, buf);
  return VSX_OK;
}

int vsx_endpoint_leave(vsx_endpoint_t *ep) {
  if (ep->exited || ep->leaving)
    return vsx_fail(VSX_ERR_STATE, "endpoint %s: %s", ep->name, ep->exited ? "has left the group already" : "is leaving already");
  if (!ep->dynamic) { ep->leaving = 1; do_exit(ep, "leave"); return VSX_OK; }
  vsx_event_t *ev = vsx_evpool_alloc(ep->evpool, VSX_EV_LEAVE, 0);
  if (!ev) return vsx_fail(VSX_ERR_AGAIN, "endpoint %s: no event record free to leave; try again", ep->name);
  ep->leaving = 1;
  do_block(ep); /* leaving is a view change: the block callback runs now */
  vsx_stack_dn(ep->stack, ev);
  transmit(ep);
  return VSX_OK;
}

/* ---- driving ---------------------------------------------------------------------- */

/* route picks the stack a received datagram belongs to: the lingering
   one if it carries that stack's instance, else the current one (which
   drops other instances as stale, and takes gossip of any instance). */
static ep_slot_t *route(vsx_endpoint_t *ep, const vsx_iovl_t *l) {
  ep_slot_t *old = &ep->slot[ep->cur ^ 1];
  if (!old->stack) return &ep->slot[ep->cur];
  uint8_t raw[sizeof(vsx_wire_hdr_t)];
  if (vsx_iovl_peek(l, raw, sizeof raw)) return &ep->slot[ep->cur];
  vsx_wire_hdr_t h;
  vsx_wire_decode(&h, raw);
  return h.kind != VSX_WIRE_GOSSIP && h.instance == old->instance ? old : &ep->slot[ep->cur];
}

int vsx_endpoint_poll(vsx_endpoint_t *ep) {
  vsx_datagram_t dgs[RX_BATCH];
  uint32_t total = 0, cnt;
  if (ep->init_pending) {
    ep->init_pending = 0;
    if (ep->dynamic) {
      if (!inject(ep, &ep->slot[ep->cur], VSX_EV_INIT, 0, 0)) ep->init_pending = 1;
    } else if (ep->opts.cbs.view) {
      ep->opts.cbs.view(ep->opts.user, ep, &ep->view, ep->rank);
    }
  }
  do {
    cnt = 0;
    if (ep->tops->recv_batch(ep->tstate, dgs, RX_BATCH, &cnt)) break;
    for (uint32_t i = 0; i < cnt; i++) {
      ep->stats.rx_bytes += vsx_iovl_len(&dgs[i].iovl);
      vsx_event_t *ev = vsx_evpool_alloc(ep->evpool, VSX_EV_CAST, 0);
      if (!ev) { ep->stats.rx_no_event++; vsx_iovl_free(&dgs[i].iovl); continue; }
      ev->iovl = dgs[i].iovl;
      vsx_stack_t *to = route(ep, &ev->iovl)->stack;
      if (to) vsx_stack_up(to, ev);
      else vsx_evpool_free(ep->evpool, ev); /* exited, and its last stack freed */
    }
    total += cnt;
    ep->stats.rx_datagrams += cnt;
    transmit(ep);
  } while (cnt == RX_BATCH && total < RX_BUDGET);
  uint64_t now = clock_now(ep);
  ep_slot_t *order[2] = { &ep->slot[ep->cur ^ 1], &ep->slot[ep->cur] }; /* the old one first: it may be freed */
  for (int i = 0; i < 2; i++) {
    ep_slot_t *sl = order[i];
    if (!sl->stack) continue;
    if (sl->linger_until && now >= sl->linger_until && (sl->stack != ep->stack || ep->exited)) {
      if (sl->stack == ep->stack) ep->stack = NULL; /* exited: nothing left */
      free_slot(sl);
      continue;
    }
    uint64_t alarm = vsx_stack_next_alarm(sl->stack);
    if (alarm && alarm <= now) vsx_stack_alarms(sl->stack);
  }
  transmit(ep);
  vsx_trace_tick(ep->trace);
  return (int)total;
}

uint64_t vsx_endpoint_next_alarm(const vsx_endpoint_t *ep) {
  uint64_t a = 0, now = 0;
  if (ep->init_pending || ep->tx_cnt) now = clock_now(ep);
  if (ep->init_pending) a = now;
  for (int i = 0; i < 2; i++) {
    const ep_slot_t *sl = &ep->slot[i];
    if (!sl->stack) continue;
    uint64_t t = vsx_stack_next_alarm(sl->stack);
    if (sl->linger_until && (!t || sl->linger_until < t)) t = sl->linger_until;
    if (t && (!a || t < a)) a = t;
  }
  if (ep->tx_cnt) { uint64_t soon = now + 50000; if (!a || soon < a) a = soon; } /* retry refused sends */
  return a;
}

int vsx_endpoint_fd(const vsx_endpoint_t *ep) { return ep->tops->poll_fd(ep->tstate); }

/* ---- libev ----------------------------------------------------------------- */

static void rearm(vsx_endpoint_t *ep) {
  uint64_t alarm = vsx_endpoint_next_alarm(ep), now = clock_now(ep);
  ev_timer_stop(ep->loop, &ep->timer);
  if (!alarm) alarm = now + 1000000000ull; /* the trace flushes every second */
  ev_timer_set(&ep->timer, alarm > now ? (double)(alarm - now) / 1e9 : 0.0, 0.0);
  ev_timer_start(ep->loop, &ep->timer);
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents) {
  (void)loop; (void)revents;
  vsx_endpoint_t *ep = w->data;
  if (vsx_endpoint_poll(ep) <= 0 || !ep->spin_ns) return;
  /* Traffic is flowing: more is likely within microseconds, and taking
     it now costs less than sleeping and being woken for it. */
  uint64_t last = vsx_now_ns(), start = last, now = last;
  while (now - last < ep->spin_ns && now - start < 1000000u && !ep->exited) {
    if (vsx_endpoint_poll(ep) > 0) last = vsx_now_ns(); /* (poll transmits before it returns) */
    now = vsx_now_ns();
  }
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop; (void)revents;
  vsx_endpoint_poll(w->data);
}

/* prepare_cb runs before the loop blocks: work the application queued
   from outside our callbacks is flushed and the alarm re-armed. */
static void prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents) {
  (void)loop; (void)revents;
  vsx_endpoint_t *ep = w->data;
  transmit(ep);
  rearm(ep);
}

int vsx_endpoint_attach(vsx_endpoint_t *ep, struct ev_loop *loop) {
  if (!loop) return vsx_fail(VSX_ERR_INVAL, "endpoint_attach: loop is NULL");
  if (ep->loop) return vsx_fail(VSX_ERR_STATE, "endpoint_attach: already attached; detach first");
  if (ep->opts.opt_clock) return vsx_fail(VSX_ERR_STATE, "endpoint_attach: this endpoint runs on a simulated clock");
  ep->loop = loop;
  int fd = vsx_endpoint_fd(ep);
  if (fd >= 0) {
    ev_io_init(&ep->io, io_cb, fd, EV_READ);
    ep->io.data = ep;
    ev_io_start(loop, &ep->io);
  }
  ev_timer_init(&ep->timer, timer_cb, 0.0, 0.0);
  ep->timer.data = ep;
  ev_prepare_init(&ep->prepare, prepare_cb);
  ep->prepare.data = ep;
  ev_prepare_start(loop, &ep->prepare);
  for (int i = 0; i < 2; i++)
    if (ep->slot[i].stack) vsx_stack_set_batching(ep->slot[i].stack, 1);
  return VSX_OK;
}

void vsx_endpoint_detach(vsx_endpoint_t *ep) {
  if (!ep->loop) return;
  if (vsx_endpoint_fd(ep) >= 0) ev_io_stop(ep->loop, &ep->io);
  ev_timer_stop(ep->loop, &ep->timer);
  ev_prepare_stop(ep->loop, &ep->prepare);
  ep->loop = NULL;
  for (int i = 0; i < 2; i++)
    if (ep->slot[i].stack) vsx_stack_set_batching(ep->slot[i].stack, 0);
  flush_tx(ep);
}

static void run_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)w; (void)revents;
  ev_break(loop, EVBREAK_ALL);
}

int vsx_endpoint_run(vsx_endpoint_t *ep, double seconds) {
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  if (!loop) return vsx_fail(VSX_ERR_NOMEM, "endpoint_run: cannot create a libev loop");
  int err = vsx_endpoint_attach(ep, loop);
  if (err) { ev_loop_destroy(loop); return err; }
  ev_timer stop;
  ev_timer_init(&stop, run_timeout_cb, seconds > 0 ? seconds : 0.0, 0.0);
  if (seconds >= 0) ev_timer_start(loop, &stop);
  ep->own_loop = 1;
  ev_run(loop, 0);
  ep->own_loop = 0;
  ev_timer_stop(loop, &stop);
  vsx_endpoint_detach(ep);
  ev_loop_destroy(loop);
  return VSX_OK;
}

void vsx_endpoint_stop(vsx_endpoint_t *ep) {
  if (ep->loop) ev_break(ep->loop, EVBREAK_ALL);
}

/* ---- peer addresses ------------------------------------------------------- */

/* parse_addr reads "IPv4:PORT" (port 1..65535) into *sa. */
static int parse_addr(const char *addr, struct sockaddr_in *sa) {
  char ip[INET_ADDRSTRLEN];
  const char *colon = addr ? strrchr(addr, ':') : NULL;
  if (!colon || colon == addr || (size_t)(colon - addr) >= sizeof ip)
    return vsx_fail(VSX_ERR_INVAL, "endpoint: peer address '%s' is not IP:PORT; give it like 127.0.0.1:7400",
                    addr ? addr : "(null)");
  memcpy(ip, addr, (size_t)(colon - addr));
  ip[colon - addr] = 0;
  char *end;
  unsigned long port = strtoul(colon + 1, &end, 10);
  memset(sa, 0, sizeof *sa);
  sa->sin_family = AF_INET;
  if (inet_pton(AF_INET, ip, &sa->sin_addr) != 1 || !sa->sin_addr.s_addr)
    return vsx_fail(VSX_ERR_INVAL, "endpoint: peer address '%s': '%s' is not an IPv4 address; give it like "
                    "127.0.0.1:7400 (host names are not resolved)", addr, ip);
  if (!colon[1] || *end || !port || port > 65535)
    return vsx_fail(VSX_ERR_INVAL, "endpoint: peer address '%s': the port must be a number 1..65535", addr);
  sa->sin_port = htons((uint16_t)port);
  return VSX_OK;
}

int vsx_endpoint_add_peer(vsx_endpoint_t *ep, const char *addr) {
  struct sockaddr_in sa;
  int err = parse_addr(addr, &sa);
  if (err) return err;
  /* Only udp takes an address without the member's id (a seed). */
  if (ep->tops != &vsx_transport_udp)
    return vsx_fail(VSX_ERR_NOTSUP, "endpoint: the %s transport cannot contact a member by address alone; use "
                    "the udp transport (unicast mode, mcast_ip 0) for peer addresses, or a multicast group",
                    ep->tops->name);
  return ep->tops->add_peer(ep->tstate, 0, &sa);
}

uint32_t vsx_endpoint_rank(const vsx_endpoint_t *ep) { return ep->rank; }
uint64_t vsx_endpoint_eid(const vsx_endpoint_t *ep) { return ep->eid; }
const vsx_view_t *vsx_endpoint_view(const vsx_endpoint_t *ep) { return &ep->view; }
int vsx_endpoint_flow_blocked(const vsx_endpoint_t *ep) { return ep->stack && vsx_stack_flow_blocked(ep->stack); }
int vsx_endpoint_primary(const vsx_endpoint_t *ep) { return ep->primary; }
vsx_trace_t *vsx_endpoint_trace(vsx_endpoint_t *ep) { return ep->trace; }
vsx_stack_t *vsx_endpoint_stack(vsx_endpoint_t *ep) { return ep->stack; }
vsx_bufpool_t *vsx_endpoint_pool(vsx_endpoint_t *ep) { return ep->pool; }
vsx_evpool_t *vsx_endpoint_evpool(vsx_endpoint_t *ep) { return ep->evpool; }
uint32_t vsx_endpoint_chunk_sz(const vsx_endpoint_t *ep) { return ep->chunk_sz; }
void vsx_endpoint_get_stats(const vsx_endpoint_t *ep, vsx_endpoint_stats_t *out) {
  *out = ep->stats;
  for (int i = 0; i < 2; i++)
    if (ep->slot[i].stack) add_stack_sums(ep->slot[i].stack, out);
  if (ep->blocked_since_ns) out->flow_blocked_ns += clock_now(ep) - ep->blocked_since_ns;
  vsx_xport_stats_t xs;
  memset(&xs, 0, sizeof xs);
  if (ep->tops == &vsx_transport_udp) vsx_udp_stats_get(ep->tstate, &xs);
  else if (ep->tops == &vsx_transport_afxdp) vsx_afxdp_stats_get(ep->tstate, &xs);
  out->drop_malformed = xs.rx_malformed;
}
