/* sim.c - the simulated network and its transport backend ("sim").
   See include/vsx/sim.h. */
#include "vsx/sim.h"

#include <stdlib.h>
#include <string.h>

typedef struct flight { uint64_t at_ns, order; uint64_t src_eid; vsx_iovl_t iovl; } flight_t;

typedef struct sim_ep {
  vsx_sim_t *net;
  uint64_t eid;
  uint32_t side;
  int crashed;
  vsx_bufpool_t *pool;
  flight_t *heap;       /* min-heap on (at_ns, order)             */
  uint32_t heap_cnt;
  uint64_t link_down;   /* bit i: datagrams from endpoint slot i cut */
  uint64_t paused_until;/* receives nothing before this              */
  uint32_t slot;
} sim_ep_t;

struct vsx_sim {
  vsx_sim_opts_t opts;
  vsx_rng_t rng;
  uint64_t now_ns;
  uint64_t order;       /* ties in arrival time keep send order     */
  vsx_sim_stats_t stats;
  sim_ep_t *eps[VSX_SIM_ENDPOINTS_MAX];
};

int vsx_sim_create(const vsx_sim_opts_t *o, vsx_sim_t **out) {
  *out = NULL;
  if (!o || o->loss < 0 || o->loss > 1 || o->dup < 0 || o->dup > 1 || o->delay_max_ns < o->delay_min_ns || !o->queue_cap)
    return vsx_fail(VSX_ERR_INVAL, "sim: loss and dup must be in [0,1], delay_max >= delay_min, queue_cap > 0");
  vsx_sim_t *s = calloc(1, sizeof *s);
  if (!s) return vsx_fail(VSX_ERR_NOMEM, "sim: out of memory");
  s->opts = *o;
  vsx_rng_seed(&s->rng, o->seed);
  s->now_ns = 1000000000ull; /* start at 1 s so "0" can mean "no alarm" */
  *out = s;
  return VSX_OK;
}

void vsx_sim_destroy(vsx_sim_t *s) {
  if (!s) return;
  for (int i = 0; i < VSX_SIM_ENDPOINTS_MAX; i++) VSX_ASSERT(!s->eps[i]);
  free(s);
}

uint64_t vsx_sim_now(const vsx_sim_t *s) { return s->now_ns; }
uint64_t vsx_sim_clock(void *s) { return ((vsx_sim_t *)s)->now_ns; }

void vsx_sim_set_now(vsx_sim_t *s, uint64_t now_ns) {
  if (now_ns > s->now_ns) s->now_ns = now_ns;
}

static uint64_t ep_next(const sim_ep_t *e) {
  if (!e->heap_cnt) return UINT64_MAX;
  return e->heap[0].at_ns > e->paused_until ? e->heap[0].at_ns : e->paused_until;
}

uint64_t vsx_sim_next_arrival(const vsx_sim_t *s) {
  uint64_t best = UINT64_MAX;
  for (int i = 0; i < VSX_SIM_ENDPOINTS_MAX; i++)
    if (s->eps[i] && ep_next(s->eps[i]) < best) best = ep_next(s->eps[i]);
  return best;
}

void vsx_sim_set_loss(vsx_sim_t *s, double loss, double dup) {
  VSX_ASSERT(loss >= 0 && loss <= 1);
  VSX_ASSERT(dup >= 0 && dup <= 1);
  s->opts.loss = loss;
  s->opts.dup = dup;
}

static sim_ep_t *find(vsx_sim_t *s, uint64_t eid) {
  for (int i = 0; i < VSX_SIM_ENDPOINTS_MAX; i++)
    if (s->eps[i] && s->eps[i]->eid == eid) return s->eps[i];
  return NULL;
}

int vsx_sim_side(vsx_sim_t *s, uint64_t eid, uint32_t side) {
  sim_ep_t *e = find(s, eid);
  if (!e) return vsx_fail(VSX_ERR_NOTFOUND, "sim: no endpoint %llx", (unsigned long long)eid);
  e->side = side;
  return VSX_OK;
}

int vsx_sim_link(vsx_sim_t *s, uint64_t from, uint64_t to, int up) {
  sim_ep_t *f = find(s, from), *t = find(s, to);
  if (!f || !t) return vsx_fail(VSX_ERR_NOTFOUND, "sim: no endpoint %llx or %llx", (unsigned long long)from, (unsigned long long)to);
  if (up) t->link_down &= ~(1ull << f->slot);
  else t->link_down |= 1ull << f->slot;
  return VSX_OK;
}

void vsx_sim_heal(vsx_sim_t *s) {
  for (int i = 0; i < VSX_SIM_ENDPOINTS_MAX; i++)
    if (s->eps[i]) { s->eps[i]->side = 0; s->eps[i]->link_down = 0; }
}

static void heap_clear(sim_ep_t *e) {
  for (uint32_t i = 0; i < e->heap_cnt; i++) vsx_iovl_free(&e->heap[i].iovl);
  e->heap_cnt = 0;
}

int vsx_sim_crash(vsx_sim_t *s, uint64_t eid) {
  sim_ep_t *e = find(s, eid);
  if (!e) return vsx_fail(VSX_ERR_NOTFOUND, "sim: no endpoint %llx", (unsigned long long)eid);
  e->crashed = 1;
  heap_clear(e);
  return VSX_OK;
}

int vsx_sim_pause(vsx_sim_t *s, uint64_t eid, uint64_t until_ns) {
  sim_ep_t *e = find(s, eid);
  if (!e) return vsx_fail(VSX_ERR_NOTFOUND, "sim: no endpoint %llx", (unsigned long long)eid);
  e->paused_until = until_ns;
  return VSX_OK;
}

uint64_t vsx_sim_next_arrival_of(const vsx_sim_t *s, uint64_t eid) {
  for (int i = 0; i < VSX_SIM_ENDPOINTS_MAX; i++)
    if (s->eps[i] && s->eps[i]->eid == eid) return ep_next(s->eps[i]);
  return UINT64_MAX;
}

void vsx_sim_get_stats(const vsx_sim_t *s, vsx_sim_stats_t *out) { *out = s->stats; }

/* ---- the per-receiver arrival heap ------------------------------------------- */

static int earlier(const flight_t *a, const flight_t *b) {
  return a->at_ns < b->at_ns || (a->at_ns == b->at_ns && a->order < b->order);
}

static void heap_push(sim_ep_t *e, flight_t f) {
  uint32_t i = e->heap_cnt++;
  e->heap[i] = f;
  while (i && earlier(&e->heap[i], &e->heap[(i - 1) / 2])) {
    flight_t t = e->heap[i];
    e->heap[i] = e->heap[(i - 1) / 2];
    e->heap[(i - 1) / 2] = t;
    i = (i - 1) / 2;
  }
}

static flight_t heap_pop(sim_ep_t *e) {
  flight_t top = e->heap[0];
  e->heap[0] = e->heap[--e->heap_cnt];
  uint32_t i = 0;
  for (;;) {
    uint32_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < e->heap_cnt && earlier(&e->heap[l], &e->heap[m])) m = l;
    if (r < e->heap_cnt && earlier(&e->heap[r], &e->heap[m])) m = r;
    if (m == i) break;
    flight_t t = e->heap[i];
    e->heap[i] = e->heap[m];
    e->heap[m] = t;
    i = m;
  }
  return top;
}

/* ---- transport backend ----------------------------------------------------------- */

static int sim_create(const vsx_transport_cfg_t *cfg, void **state_out) {
  vsx_sim_t *net = cfg->opt_backend;
  *state_out = NULL;
  if (!net) return vsx_fail(VSX_ERR_INVAL, "sim transport: cfg.opt_backend must be a vsx_sim_t (vsx_sim_create)");
  if (find(net, cfg->eid)) return vsx_fail(VSX_ERR_BUSY, "sim transport: endpoint id %llx attached already", (unsigned long long)cfg->eid);
  int slot = -1;
  for (int i = 0; i < VSX_SIM_ENDPOINTS_MAX && slot < 0; i++)
    if (!net->eps[i]) slot = i;
  if (slot < 0) return vsx_fail(VSX_ERR_AGAIN, "sim transport: network full (%d endpoints)", VSX_SIM_ENDPOINTS_MAX);
  sim_ep_t *e = calloc(1, sizeof *e);
  if (!e) return vsx_fail(VSX_ERR_NOMEM, "sim transport: out of memory");
  e->heap = calloc(net->opts.queue_cap, sizeof(flight_t));
  vsx_bufpool_opts_t po = { .buf_cnt = cfg->buf_cnt, .buf_sz = cfg->buf_sz, .headroom = cfg->headroom,
                            .reserve_cnt = cfg->reserve_cnt, .ext_cnt = cfg->ext_cnt, .ext_cap = cfg->ext_cap };
  int err = e->heap ? vsx_bufpool_create(&po, &e->pool) : vsx_fail(VSX_ERR_NOMEM, "sim transport: out of memory");
  if (err) { free(e->heap); free(e); return err; }
  e->net = net;
  e->eid = cfg->eid;
  e->slot = (uint32_t)slot;
  net->eps[slot] = e;
  *state_out = e;
  return VSX_OK;
}

static void sim_destroy(void *state) {
  sim_ep_t *e = state;
  if (!e) return;
  heap_clear(e);
  e->net->eps[e->slot] = NULL;
  vsx_bufpool_destroy(e->pool);
  free(e->heap);
  free(e);
}

static vsx_bufpool_t *sim_pool(void *state) { return ((sim_ep_t *)state)->pool; }

/* carry puts one copy of dg into dst's queue, or counts why not. */
static void carry(vsx_sim_t *net, sim_ep_t *src, sim_ep_t *dst, const vsx_datagram_t *dg) {
  if (dst->crashed) return;
  if (dst->side != src->side || (dst->link_down >> src->slot) & 1) { net->stats.cut++; return; }
  if (vsx_rng_uniform(&net->rng) < net->opts.loss) { net->stats.lost++; return; }
  int copies = vsx_rng_uniform(&net->rng) < net->opts.dup ? 2 : 1;
  if (copies == 2) net->stats.duplicated++;
  size_t len = vsx_iovl_len(&dg->iovl);
  for (int c = 0; c < copies; c++) {
    vsx_iovec_t iov;
    if (dst->heap_cnt == net->opts.queue_cap || len > vsx_bufpool_buf_sz(dst->pool) - vsx_bufpool_headroom(dst->pool) ||
        vsx_buf_alloc(dst->pool, &iov)) {
      net->stats.overflow++;
      return;
    }
    iov.len = (uint32_t)vsx_iovl_gather(&dg->iovl, 0, vsx_iovec_ptr(&iov), len);
    uint64_t span = net->opts.delay_max_ns - net->opts.delay_min_ns;
    flight_t f = { .at_ns = net->now_ns + net->opts.delay_min_ns + (span ? vsx_rng_below(&net->rng, span + 1) : 0),
                   .order = net->order++, .src_eid = src->eid };
    vsx_iovl_init(&f.iovl);
    int err = vsx_iovl_append_take(&f.iovl, &iov);
    VSX_ASSERT(err == VSX_OK); /* an empty list has inline room */
    heap_push(dst, f);
  }
}

static int sim_send_batch(void *state, const vsx_datagram_t *dgs, uint32_t cnt, uint32_t *sent_cnt) {
  sim_ep_t *e = state;
  vsx_sim_t *net = e->net;
  for (uint32_t i = 0; i < cnt; i++) {
    net->stats.sent++;
    if (e->crashed) continue;
    if (dgs[i].peer_eid) {
      sim_ep_t *dst = find(net, dgs[i].peer_eid);
      if (dst) carry(net, e, dst, &dgs[i]);
      continue;
    }
    for (int k = 0; k < VSX_SIM_ENDPOINTS_MAX; k++)
      if (net->eps[k] && net->eps[k] != e) carry(net, e, net->eps[k], &dgs[i]);
  }
  *sent_cnt = cnt;
  return VSX_OK;
}

static int sim_recv_batch(void *state, vsx_datagram_t *dgs, uint32_t max, uint32_t *cnt) {
  sim_ep_t *e = state;
  uint32_t n = 0;
  if (e->paused_until > e->net->now_ns) { *cnt = 0; return VSX_OK; }
  while (n < max && e->heap_cnt && e->heap[0].at_ns <= e->net->now_ns) {
    flight_t f = heap_pop(e);
    dgs[n].peer_eid = f.src_eid;
    dgs[n].iovl = f.iovl;
    n++;
    e->net->stats.delivered++;
  }
  *cnt = n;
  return VSX_OK;
}

static int sim_poll_fd(void *state) { (void)state; return -1; }

const vsx_transport_ops_t vsx_transport_sim = {
  .name = "sim", .create = sim_create, .destroy = sim_destroy, .pool = sim_pool,
  .send_batch = sim_send_batch, .recv_batch = sim_recv_batch, .poll_fd = sim_poll_fd,
};
