/* endpoint.c - one member: transport + stack + callbacks, driven by poll,
   by libev, or by the simulator.  See include/vsx/endpoint.h. */
#include "vsx/endpoint.h"

#include <ev.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define TX_BATCH 64
#define RX_BATCH 64
#define RX_BUDGET 1024     /* datagrams per poll before yielding to alarms */
#define HDR_BELOW_MAX 128  /* wire + layer headers below frag              */
#define HDR_ABOVE_MAX 64   /* layer headers above frag                     */

struct vsx_endpoint {
  vsx_endpoint_opts_t opts;
  char group[128], name[64], spec[512], params[1024];
  vsx_view_t view;
  uint32_t rank;
  uint64_t eid;
  const vsx_transport_ops_t *tops;
  void *tstate;
  vsx_bufpool_t *pool;
  vsx_evpool_t *evpool;
  vsx_stack_t *stack;
  uint32_t payload_max, chunk_sz;
  int has_frag;
  vsx_datagram_t tx[TX_BATCH];
  uint32_t tx_cnt;
  vsx_endpoint_stats_t stats;
  uint64_t blocked_since_ns;
  /* libev: embedded, never allocated (the loop is the application's) */
  struct ev_loop *loop;
  ev_io io;
  ev_timer timer;
  ev_prepare prepare;
  int own_loop;
};

static uint64_t clock_now(const vsx_endpoint_t *ep) {
  return ep->opts.opt_clock ? ep->opts.opt_clock(ep->opts.opt_clock_ctx) : vsx_now_ns();
}

static uint64_t stack_now(void *owner) { return clock_now(owner); }

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

/* sink_dn: a datagram leaves the stack; batch it. */
static void sink_dn(void *owner, vsx_event_t *ev) {
  vsx_endpoint_t *ep = owner;
  if (ep->tx_cnt == TX_BATCH) flush_tx(ep);
  if (ep->tx_cnt == TX_BATCH) { /* the transport refuses a whole batch: it is unreliable, the layers retransmit */
    ep->stats.tx_dropped++;
    vsx_evpool_free(ep->evpool, ev);
    return;
  }
  vsx_datagram_t *dg = &ep->tx[ep->tx_cnt++];
  dg->peer_eid = ev->type == VSX_EV_SEND ? ep->view.members[ev->peer] : 0;
  dg->iovl = ev->iovl;
  vsx_iovl_init(&ev->iovl);
  vsx_evpool_free(ep->evpool, ev);
}

/* sink_up: an event leaves the top of the stack; messages go to the
   application, the rest is informational. */
static void sink_up(void *owner, vsx_event_t *ev) {
  vsx_endpoint_t *ep = owner;
  if (ev->type == VSX_EV_CAST || ev->type == VSX_EV_SEND) {
    ep->stats.delivered++;
    ep->opts.cbs.deliver(ep->opts.user, ep, (uint32_t)ev->peer, (vsx_svc_t)ev->svc, &ev->iovl);
  }
  vsx_evpool_free(ep->evpool, ev);
}

static void on_flow(void *owner, int blocked) {
  vsx_endpoint_t *ep = owner;
  uint64_t now = clock_now(ep);
  if (blocked) ep->blocked_since_ns = now;
  else if (ep->blocked_since_ns) { ep->stats.flow_blocked_ns += now - ep->blocked_since_ns; ep->blocked_since_ns = 0; }
  if (ep->opts.cbs.flow) ep->opts.cbs.flow(ep->opts.user, ep, blocked);
}

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
  if (!o->transport) return vsx_fail(VSX_ERR_INVAL, "endpoint: opts.transport is required (vsx_transport_find(\"udp\"), \"afxdp\" or \"sim\")");
  if (!o->cbs.deliver) return vsx_fail(VSX_ERR_INVAL, "endpoint: opts.cbs.deliver is required");
  if (!o->view || !o->view->member_cnt || o->view->member_cnt > VSX_MEMBERS_MAX)
    return vsx_fail(VSX_ERR_INVAL, "endpoint: opts.view must list 1..%d members", VSX_MEMBERS_MAX);
  if (o->mtu_payload && (o->mtu_payload < 512 || o->mtu_payload > 9000))
    return vsx_fail(VSX_ERR_INVAL, "endpoint: mtu_payload=%u outside [512, 9000]", o->mtu_payload);
  return VSX_OK;
}

int vsx_endpoint_create(const vsx_endpoint_opts_t *opts, vsx_endpoint_t **out) {
  if (!out) return vsx_fail(VSX_ERR_INVAL, "endpoint: out is NULL");
  *out = NULL;
  int err = check_opts(opts);
  if (err) return err;
  vsx_endpoint_t *ep = calloc(1, sizeof *ep);
  if (!ep) return vsx_fail(VSX_ERR_NOMEM, "endpoint: out of memory");
  ep->opts = *opts;
  ep->view = *opts->view;
  ep->eid = opts->eid ? opts->eid : fresh_eid();
  if ((err = copy_str(ep->group, sizeof ep->group, opts->group, "group name")) ||
      (err = copy_str(ep->name, sizeof ep->name, opts->opt_name ? opts->opt_name : "member", "name")) ||
      (err = copy_str(ep->spec, sizeof ep->spec, opts->opt_stack ? opts->opt_stack : VSX_STACK_DEFAULT, "stack")))
    goto fail_free;
  ep->rank = UINT32_MAX;
  for (uint32_t r = 0; r < ep->view.member_cnt; r++)
    if (ep->view.members[r] == ep->eid) ep->rank = r;
  if (ep->rank == UINT32_MAX) {
    err = vsx_fail(VSX_ERR_INVAL, "endpoint: my id %llx is not in opts.view", (unsigned long long)ep->eid);
    goto fail_free;
  }
  uint32_t mtu = opts->mtu_payload ? opts->mtu_payload : 1472;
  uint32_t max_msg = opts->max_msg ? opts->max_msg : 1u << 20;
  ep->payload_max = mtu - HDR_BELOW_MAX;
  ep->chunk_sz = ep->payload_max - HDR_ABOVE_MAX;
  ep->has_frag = strstr(ep->spec, "frag") != NULL;
  int n = snprintf(ep->params, sizeof ep->params, "%s%sfrag.max_msg=%u,bottom.mtu_payload=%u",
                   opts->opt_params ? opts->opt_params : "", opts->opt_params && *opts->opt_params ? "," : "",
                   max_msg + HDR_ABOVE_MAX, mtu); /* frag sees the headers of the layers above it too */
  if (n < 0 || (size_t)n >= sizeof ep->params) { err = vsx_fail(VSX_ERR_INVAL, "endpoint: opts.params too long"); goto fail_free; }
  ep->opts.group = ep->group;
  ep->opts.opt_name = ep->name;

  uint32_t buf_cnt = opts->buf_cnt ? opts->buf_cnt : 4096, ev_cnt = opts->ev_cnt ? opts->ev_cnt : 4096;
  uint32_t buf_sz = mtu + 256 + 64 > 2048 ? 4096 * ((mtu + 256 + 64 + 4095) / 4096) : 2048;
  vsx_transport_cfg_t tc = {
    .group = ep->group, .group_id = vsx_hash64(ep->group), .eid = ep->eid, .opt_ifname = opts->opt_ifname,
    .mcast_ip = opts->mcast_ip, .port = opts->port, .buf_cnt = buf_cnt, .buf_sz = buf_sz, .headroom = 256,
    .reserve_cnt = buf_cnt / 8, .ext_cnt = 4 * ep->view.member_cnt + 16, .ext_cap = max_msg / ep->chunk_sz + 16,
    .opt_backend = opts->opt_backend,
  };
  if ((err = opts->transport->create(&tc, &ep->tstate))) goto fail_free;
  ep->tops = opts->transport;
  ep->pool = ep->tops->pool(ep->tstate);
  if ((err = vsx_evpool_create(ev_cnt, ev_cnt / 8, &ep->evpool))) goto fail_transport;
  vsx_stack_cfg_t sc = {
    .spec = ep->spec, .opt_params = ep->params, .view = &ep->view, .rank = ep->rank, .group_id = tc.group_id,
    .payload_max = ep->payload_max, .seed = opts->seed ? opts->seed : ep->eid, .pool = ep->pool,
    .evpool = ep->evpool, .owner = ep, .now = stack_now, .sink_up = sink_up, .sink_dn = sink_dn, .on_flow = on_flow,
  };
  if ((err = vsx_stack_create(&sc, &ep->stack))) goto fail_evpool;
  *out = ep;
  return VSX_OK;

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
  vsx_stack_destroy(ep->stack);
  for (uint32_t i = 0; i < ep->tx_cnt; i++) vsx_iovl_free(&ep->tx[i].iovl);
  vsx_evpool_destroy(ep->evpool);
  ep->tops->destroy(ep->tstate);
  free(ep);
}

/* submit copies the message in and injects it at the top of the stack. */
static int submit(vsx_endpoint_t *ep, uint16_t type, int32_t peer, vsx_svc_t svc, const void *data, size_t len) {
  if (!data && len) return vsx_fail(VSX_ERR_INVAL, "endpoint: data is NULL with len %zu", len);
  uint32_t max = ep->has_frag ? ep->opts.max_msg ? ep->opts.max_msg : 1u << 20 : ep->chunk_sz;
  if (len > max)
    return vsx_fail(VSX_ERR_TOOBIG, "endpoint: message of %zu bytes exceeds the maximum %u%s", len, max,
                    ep->has_frag ? " (raise opts.max_msg)" : " (add the frag layer to the stack)");
  if (vsx_stack_flow_blocked(ep->stack)) { ep->stats.refused_again++; return VSX_ERR_AGAIN; }
  vsx_event_t *ev = vsx_evpool_alloc(ep->evpool, type, 1);
  if (!ev) { ep->stats.refused_again++; return VSX_ERR_AGAIN; }
  if (vsx_iovl_from_bytes(ep->pool, &ev->iovl, data, len, ep->chunk_sz, 1)) {
    vsx_evpool_free(ep->evpool, ev);
    ep->stats.refused_again++;
    return VSX_ERR_AGAIN;
  }
  ev->peer = peer;
  ev->svc = (uint8_t)svc;
  ev->flags = VSX_EVF_APPL;
  vsx_stack_dn(ep->stack, ev);
  flush_tx(ep);
  return VSX_OK;
}

int vsx_endpoint_cast(vsx_endpoint_t *ep, vsx_svc_t svc, const void *data, size_t len) {
  if (svc != VSX_SVC_FIFO && svc != VSX_SVC_TOTAL && svc != VSX_SVC_SAFE)
    return vsx_fail(VSX_ERR_INVAL, "endpoint: cast service must be fifo, total or safe (got %d)", (int)svc);
  if (svc != VSX_SVC_FIFO && !(vsx_stack_caps(ep->stack) & VSX_CAP_TOTAL_ORDER))
    return vsx_fail(VSX_ERR_NOTSUP, "endpoint: stack '%s' has no total-order layer; cast with VSX_SVC_FIFO", ep->spec);
  int err = submit(ep, VSX_EV_CAST, -1, svc, data, len);
  if (!err) ep->stats.casts++;
  return err;
}

int vsx_endpoint_send(vsx_endpoint_t *ep, uint32_t rank, const void *data, size_t len) {
  if (rank >= ep->view.member_cnt)
    return vsx_fail(VSX_ERR_INVAL, "endpoint: rank %u is not in the view of %u members", rank, ep->view.member_cnt);
  int err = submit(ep, VSX_EV_SEND, (int32_t)rank, VSX_SVC_P2P, data, len);
  if (!err) ep->stats.sends++;
  return err;
}

int vsx_endpoint_poll(vsx_endpoint_t *ep) {
  vsx_datagram_t dgs[RX_BATCH];
  uint32_t total = 0, cnt;
  do {
    cnt = 0;
    if (ep->tops->recv_batch(ep->tstate, dgs, RX_BATCH, &cnt)) break;
    for (uint32_t i = 0; i < cnt; i++) {
      ep->stats.rx_bytes += vsx_iovl_len(&dgs[i].iovl);
      vsx_event_t *ev = vsx_evpool_alloc(ep->evpool, VSX_EV_CAST, 0);
      if (!ev) { ep->stats.rx_no_event++; vsx_iovl_free(&dgs[i].iovl); continue; }
      ev->iovl = dgs[i].iovl;
      vsx_stack_up(ep->stack, ev);
    }
    total += cnt;
    ep->stats.rx_datagrams += cnt;
    flush_tx(ep);
  } while (cnt == RX_BATCH && total < RX_BUDGET);
  uint64_t alarm = vsx_stack_next_alarm(ep->stack);
  if (alarm && alarm <= clock_now(ep)) vsx_stack_alarms(ep->stack);
  flush_tx(ep);
  return (int)total;
}

uint64_t vsx_endpoint_next_alarm(const vsx_endpoint_t *ep) {
  uint64_t a = vsx_stack_next_alarm(ep->stack);
  if (ep->tx_cnt) { uint64_t soon = clock_now(ep) + 50000; if (!a || soon < a) a = soon; } /* retry refused sends */
  return a;
}

int vsx_endpoint_fd(const vsx_endpoint_t *ep) { return ep->tops->poll_fd(ep->tstate); }

/* ---- libev ----------------------------------------------------------------- */

static void rearm(vsx_endpoint_t *ep) {
  uint64_t alarm = vsx_endpoint_next_alarm(ep), now = clock_now(ep);
  ev_timer_stop(ep->loop, &ep->timer);
  if (!alarm) return;
  ev_timer_set(&ep->timer, alarm > now ? (double)(alarm - now) / 1e9 : 0.0, 0.0);
  ev_timer_start(ep->loop, &ep->timer);
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents) {
  (void)loop; (void)revents;
  vsx_endpoint_poll(w->data);
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
  flush_tx(ep);
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
  return VSX_OK;
}

void vsx_endpoint_detach(vsx_endpoint_t *ep) {
  if (!ep->loop) return;
  if (vsx_endpoint_fd(ep) >= 0) ev_io_stop(ep->loop, &ep->io);
  ev_timer_stop(ep->loop, &ep->timer);
  ev_prepare_stop(ep->loop, &ep->prepare);
  ep->loop = NULL;
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

uint32_t vsx_endpoint_rank(const vsx_endpoint_t *ep) { return ep->rank; }
uint64_t vsx_endpoint_eid(const vsx_endpoint_t *ep) { return ep->eid; }
const vsx_view_t *vsx_endpoint_view(const vsx_endpoint_t *ep) { return &ep->view; }
int vsx_endpoint_flow_blocked(const vsx_endpoint_t *ep) { return vsx_stack_flow_blocked(ep->stack); }
vsx_stack_t *vsx_endpoint_stack(vsx_endpoint_t *ep) { return ep->stack; }
vsx_bufpool_t *vsx_endpoint_pool(vsx_endpoint_t *ep) { return ep->pool; }
vsx_evpool_t *vsx_endpoint_evpool(vsx_endpoint_t *ep) { return ep->evpool; }
uint32_t vsx_endpoint_chunk_sz(const vsx_endpoint_t *ep) { return ep->chunk_sz; }
void vsx_endpoint_get_stats(const vsx_endpoint_t *ep, vsx_endpoint_stats_t *out) { *out = ep->stats; }
