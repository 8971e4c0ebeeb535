/* stack.c - the layer registry, stack composition from a spec string, the
   event scheduler and the per-layer alarms.  See include/vsx/stack.h. */
#include "vsx/stack.h"

#include <stdlib.h>
#include <string.h>

#define SINK_UP 0xFFFFu
#define SINK_DN 0xFFFEu
#define PARAMS_MAX 2048

struct vsx_stack {
  vsx_stack_cfg_t cfg;
  vsx_view_t view;
  vsx_rng_t rng;
  uint32_t layer_cnt;
  int running;              /* re-entrancy guard: inject only queues    */
  int flow_blocked;         /* last value told to the owner            */
  int batching;             /* the owner packs datagrams until flush   */
  uint64_t now_cache;       /* the clock, read once per 64 events of a
                               run (0 = read it again): clock_gettime
                               was 6% of a busy member's time          */
  int deferred;             /* some layer deferred its idle work        */
  uint64_t dispatched;      /* events handed to a handler or sink      */
  vsx_event_t *q_head, *q_tail;
  char spec[PARAMS_MAX];
  char params[PARAMS_MAX];
  vsx_layer_ctx_t layers[VSX_STACK_LAYERS_MAX];
};

/* ---- registry ------------------------------------------------------------ */

extern const vsx_layer_ops_t vsx_layer_top, vsx_layer_chk_fifo, vsx_layer_frag, vsx_layer_stable,
    vsx_layer_pt2pt, vsx_layer_mnak, vsx_layer_drop, vsx_layer_bottom, vsx_layer_bundle, vsx_layer_seqbb,
    vsx_layer_suspect, vsx_layer_vsync, vsx_layer_intra, vsx_layer_inter, vsx_layer_xfer;

#define REGISTRY_MAX 64
static const vsx_layer_ops_t *registry[REGISTRY_MAX] = {
  &vsx_layer_top, &vsx_layer_chk_fifo, &vsx_layer_frag, &vsx_layer_stable,
  &vsx_layer_pt2pt, &vsx_layer_mnak, &vsx_layer_drop, &vsx_layer_bottom, &vsx_layer_bundle, &vsx_layer_seqbb,
  &vsx_layer_suspect, &vsx_layer_vsync, &vsx_layer_intra, &vsx_layer_inter, &vsx_layer_xfer,
};

int vsx_layer_register(const vsx_layer_ops_t *ops) {
  if (!ops || !ops->name) return vsx_fail(VSX_ERR_INVAL, "layer_register: ops or name is NULL");
  if (vsx_layer_find(ops->name, strlen(ops->name)))
    return vsx_fail(VSX_ERR_BUSY, "layer_register: a layer named '%s' exists already", ops->name);
  for (size_t i = 0; i < REGISTRY_MAX; i++)
    if (!registry[i]) { registry[i] = ops; return VSX_OK; }
  return vsx_fail(VSX_ERR_AGAIN, "layer_register: registry full (%d layers)", REGISTRY_MAX);
}

const vsx_layer_ops_t *vsx_layer_find(const char *name, size_t len) {
  for (size_t i = 0; i < REGISTRY_MAX && registry[i]; i++)
    if (strlen(registry[i]->name) == len && !memcmp(registry[i]->name, name, len)) return registry[i];
  return NULL;
}

void vsx_layer_list(char *buf, size_t cap) {
  size_t at = 0;
  buf[0] = 0;
  for (size_t i = 0; i < REGISTRY_MAX && registry[i] && at < cap; i++)
    at += (size_t)snprintf(buf + at, cap - at, "%s%s", i ? ", " : "", registry[i]->name);
}

static void caps_text(uint32_t caps, char *buf, size_t cap) {
  static const char *const names[] = { "datagrams (bottom)", "reliable casts (mnak)", "reliable sends (pt2pt)",
                                       "casts in mnak units (no frag between)", "stability (stable)",
                                       "large messages (frag)", "application adapter (top)",
                                       "total order (a sequencer)" };
  size_t at = 0;
  buf[0] = 0;
  for (uint32_t b = 0; b < VSX_ARRAY_CNT(names) && at < cap; b++)
    if (caps & (1u << b)) at += (size_t)snprintf(buf + at, cap - at, "%s%s", at ? ", " : "", names[b]);
}

/* ---- composition ---------------------------------------------------------- */

/* parse_spec splits "a:b(k=v):c" into the layer contexts, pointing args
   into the stack's own copy of the spec. */
static int parse_spec(vsx_stack_t *s) {
  char *p = s->spec;
  s->layer_cnt = 0;
  while (*p) {
    char *name = p;
    size_t name_len = strcspn(p, ":(");
    if (!name_len) return vsx_fail(VSX_ERR_INVAL, "stack spec '%s': empty layer name", s->cfg.spec);
    p += name_len;
    const char *args = "";
    uint32_t args_len = 0;
    if (*p == '(') {
      char *close = strchr(p, ')');
      if (!close) return vsx_fail(VSX_ERR_INVAL, "stack spec '%s': '(' without ')'", s->cfg.spec);
      args = p + 1;
      args_len = (uint32_t)(close - p - 1);
      p = close + 1;
    }
    if (*p == ':') p++;
    else if (*p) return vsx_fail(VSX_ERR_INVAL, "stack spec '%s': expected ':' after layer", s->cfg.spec);
    const vsx_layer_ops_t *ops = vsx_layer_find(name, name_len);
    if (!ops) {
      char known[512];
      vsx_layer_list(known, sizeof known);
      return vsx_fail(VSX_ERR_NOTFOUND, "stack spec: unknown layer '%.*s' (known layers: %s)",
                      (int)name_len, name, known);
    }
    if (s->layer_cnt == VSX_STACK_LAYERS_MAX)
      return vsx_fail(VSX_ERR_INVAL, "stack spec: more than %d layers", VSX_STACK_LAYERS_MAX);
    vsx_layer_ctx_t *c = &s->layers[s->layer_cnt];
    c->ops = ops;
    c->idx = s->layer_cnt++;
    c->args = args;
    c->args_len = args_len;
  }
  if (!s->layer_cnt) return vsx_fail(VSX_ERR_INVAL, "stack spec is empty");
  return VSX_OK;
}

/* check_placement walks bottom-up for needs_below and top-down for
   needs_above, so each error names the first layer whose needs fail. */
static int check_placement(vsx_stack_t *s) {
  char missing[256];
  uint32_t have = 0;
  for (int i = (int)s->layer_cnt - 1; i >= 0; i--) {
    const vsx_layer_ops_t *o = s->layers[i].ops;
    uint32_t lack = o->needs_below & ~have;
    if (lack) {
      caps_text(lack, missing, sizeof missing);
      return vsx_fail(VSX_ERR_PLACEMENT, "stack '%s': layer '%s' needs below it: %s", s->cfg.spec, o->name, missing);
    }
    have = (have & ~o->clears) | o->provides;
  }
  uint32_t above = 0;
  for (uint32_t i = 0; i < s->layer_cnt; i++) {
    const vsx_layer_ops_t *o = s->layers[i].ops;
    uint32_t lack = o->needs_above & ~above;
    if (lack) {
      caps_text(lack, missing, sizeof missing);
      return vsx_fail(VSX_ERR_PLACEMENT, "stack '%s': layer '%s' needs above it: %s", s->cfg.spec, o->name, missing);
    }
    above |= o->provides;
  }
  return VSX_OK;
}

int vsx_stack_create(const vsx_stack_cfg_t *cfg, vsx_stack_t **out) {
  if (!out) return vsx_fail(VSX_ERR_INVAL, "stack_create: out is NULL");
  *out = NULL;
  if (!cfg || !cfg->spec || !cfg->view || !cfg->pool || !cfg->evpool || !cfg->now || !cfg->sink_up || !cfg->sink_dn)
    return vsx_fail(VSX_ERR_INVAL, "stack_create: cfg needs spec, view, pool, evpool, now, sink_up and sink_dn");
  if (cfg->view->member_cnt == 0 || cfg->view->member_cnt > VSX_MEMBERS_MAX || cfg->rank >= cfg->view->member_cnt)
    return vsx_fail(VSX_ERR_INVAL, "stack_create: rank %u outside a view of %u members (max %d)", cfg->rank,
                    cfg->view->member_cnt, VSX_MEMBERS_MAX);
  if (strlen(cfg->spec) >= PARAMS_MAX || (cfg->opt_params && strlen(cfg->opt_params) >= PARAMS_MAX))
    return vsx_fail(VSX_ERR_INVAL, "stack_create: spec or params longer than %d bytes", PARAMS_MAX - 1);

  vsx_stack_t *s = calloc(1, sizeof *s);
  if (!s) return vsx_fail(VSX_ERR_NOMEM, "stack_create: out of memory");
  s->cfg = *cfg;
  s->view = *cfg->view;
  strcpy(s->spec, cfg->spec);
  if (cfg->opt_params) strcpy(s->params, cfg->opt_params);
  s->cfg.spec = s->spec;
  vsx_rng_seed(&s->rng, cfg->seed);
  uint64_t instance = cfg->instance;
  if (!instance) {
    char id[64];
    snprintf(id, sizeof id, "%llx/%llx/%llx", (unsigned long long)cfg->view->ltime,
             (unsigned long long)cfg->view->coord_eid, (unsigned long long)cfg->group_id);
    instance = vsx_hash64(id);
  }
  int err = parse_spec(s);
  if (!err) err = check_placement(s);
  if (err) { free(s); return err; }

  uint32_t i;
  for (i = 0; i < s->layer_cnt; i++) {
    vsx_layer_ctx_t *c = &s->layers[i];
    c->stack = s;
    c->rank = cfg->rank;
    c->member_cnt = s->view.member_cnt;
    c->view = &s->view;
    c->eid = s->view.members[cfg->rank];
    c->group_id = cfg->group_id;
    c->instance = instance;
    c->pool = cfg->pool;
    c->rng = &s->rng;
    c->payload_max = cfg->payload_max ? cfg->payload_max : 1344;
    c->state = c->ops->state_sz ? calloc(1, c->ops->state_sz) : NULL;
    if (c->ops->state_sz && !c->state) { err = vsx_fail(VSX_ERR_NOMEM, "stack_create: out of memory"); break; }
    if (c->ops->init && (err = c->ops->init(c)) != VSX_OK) { free(c->state); break; }
  }
  if (err) {
    while (i-- > 0) {
      if (s->layers[i].ops->fini) s->layers[i].ops->fini(&s->layers[i]);
      free(s->layers[i].state);
    }
    free(s);
    return err;
  }
  *out = s;
  return VSX_OK;
}

void vsx_stack_destroy(vsx_stack_t *s) {
  if (!s) return;
  for (vsx_event_t *ev = s->q_head, *next; ev; ev = next) {
    next = ev->next;
    vsx_evpool_free(s->cfg.evpool, ev);
  }
  s->q_head = s->q_tail = NULL;
  for (uint32_t i = 0; i < s->layer_cnt; i++) {
    if (s->layers[i].ops->fini) s->layers[i].ops->fini(&s->layers[i]);
    free(s->layers[i].state);
  }
  free(s);
}

/* ---- scheduling ------------------------------------------------------------ */

static void enqueue(vsx_stack_t *s, vsx_event_t *ev) {
  ev->next = NULL;
  if (s->q_tail) s->q_tail->next = ev;
  else s->q_head = ev;
  s->q_tail = ev;
}

static int has_message(const vsx_event_t *ev) { return ev->type == VSX_EV_CAST || ev->type == VSX_EV_SEND; }

static void dispatch(vsx_stack_t *s, vsx_event_t *ev) {
  if (ev->at_layer == SINK_UP) { s->cfg.sink_up(s->cfg.owner, ev); return; }
  if (ev->at_layer == SINK_DN) { s->cfg.sink_dn(s->cfg.owner, ev); return; }
  VSX_ASSERT(ev->at_layer < s->layer_cnt);
  vsx_layer_ctx_t *c = &s->layers[ev->at_layer];
  const vsx_layer_ops_t *o = c->ops;
  void (*h)(vsx_layer_ctx_t *, vsx_event_t *);
  if (ev->going_up) h = has_message(ev) ? o->up : o->upnm;
  else h = has_message(ev) ? o->dn : o->dnnm;
  if (!h) { /* a layer with no handler for this kind passes it on */
    if (ev->going_up) vsx_pass_up(c, ev);
    else vsx_pass_dn(c, ev);
    return;
  }
  h(c, ev);
}

static void notify_flow(vsx_stack_t *s) {
  int blocked = vsx_stack_flow_blocked(s);
  if (blocked == s->flow_blocked) return;
  s->flow_blocked = blocked;
  if (s->cfg.on_flow) s->cfg.on_flow(s->cfg.owner, blocked);
}

static void run(vsx_stack_t *s);

/* run_idle gives each layer that asked its idle call; returns 1 if any
   of them queued more work. */
static int run_idle(vsx_stack_t *s) {
  for (uint32_t i = 0; i < s->layer_cnt; i++) {
    vsx_layer_ctx_t *c = &s->layers[i];
    if (!c->idle_wanted) continue;
    c->idle_wanted = 0;
    if (c->ops->idle) c->ops->idle(c);
    if (c->idle_deferred) s->deferred = 1;
  }
  return s->q_head != NULL;
}

int vsx_stack_batching(const vsx_layer_ctx_t *c) { return c->stack->batching; }

void vsx_stack_set_batching(vsx_stack_t *s, int on) {
  s->batching = on != 0;
  if (!on) vsx_stack_flush(s);
}

/* vsx_stack_flush gives the layers that deferred their idle work their
   idle call now, with batching off for the call. */
void vsx_stack_flush(vsx_stack_t *s) {
  if (!s->deferred || s->running) return;
  s->deferred = 0;
  for (uint32_t i = 0; i < s->layer_cnt; i++) {
    vsx_layer_ctx_t *c = &s->layers[i];
    if (c->idle_deferred) { c->idle_deferred = 0; c->idle_wanted = 1; }
  }
  int was = s->batching;
  s->batching = 0;
  run(s);
  s->batching = was;
}

static void run(vsx_stack_t *s) {
  if (s->running) return;
  s->running = 1;
  s->now_cache = 0;
  do {
    while (s->q_head) {
      vsx_event_t *ev = s->q_head;
      s->q_head = ev->next;
      if (!s->q_head) s->q_tail = NULL;
      dispatch(s, ev);
      if ((++s->dispatched & 63) == 0) s->now_cache = 0;
    }
  } while (run_idle(s));
  s->running = 0;
  notify_flow(s);
}

void vsx_pass_up(vsx_layer_ctx_t *c, vsx_event_t *ev) {
  ev->going_up = 1;
  ev->at_layer = c->idx == 0 ? SINK_UP : (uint16_t)(c->idx - 1);
  enqueue(c->stack, ev);
}

void vsx_pass_dn(vsx_layer_ctx_t *c, vsx_event_t *ev) {
  ev->going_up = 0;
  ev->at_layer = c->idx + 1 == c->stack->layer_cnt ? SINK_DN : (uint16_t)(c->idx + 1);
  enqueue(c->stack, ev);
}

void vsx_stack_dn(vsx_stack_t *s, vsx_event_t *ev) {
  ev->going_up = 0;
  ev->at_layer = 0;
  enqueue(s, ev);
  run(s);
}

void vsx_stack_up(vsx_stack_t *s, vsx_event_t *ev) {
  ev->going_up = 1;
  ev->at_layer = (uint16_t)(s->layer_cnt - 1);
  enqueue(s, ev);
  run(s);
}

vsx_event_t *vsx_ev_alloc(vsx_layer_ctx_t *c, uint16_t type) { return vsx_evpool_alloc(c->stack->cfg.evpool, type, 0); }

void vsx_ev_free(vsx_layer_ctx_t *c, vsx_event_t *ev) { vsx_evpool_free(c->stack->cfg.evpool, ev); }

vsx_event_t *vsx_ev_clone(vsx_layer_ctx_t *c, const vsx_event_t *ev) {
  vsx_event_t *n = vsx_ev_alloc(c, ev->type);
  if (!n) return NULL;
  if (vsx_iovl_copy(&n->iovl, &ev->iovl)) { vsx_ev_free(c, n); return NULL; }
  n->flags = ev->flags;
  n->peer = ev->peer;
  n->svc = ev->svc;
  n->u64a = ev->u64a;
  n->u64b = ev->u64b;
  return n;
}

/* ---- time --------------------------------------------------------------------- */

uint64_t vsx_now(vsx_layer_ctx_t *c) {
  vsx_stack_t *s = c->stack;
  if (!s->running) return s->cfg.now(s->cfg.owner);
  if (!s->now_cache) s->now_cache = s->cfg.now(s->cfg.owner);
  return s->now_cache;
}

void vsx_timer_set(vsx_layer_ctx_t *c, uint64_t at_ns) { c->timer_ns = at_ns; }

void vsx_timer_soon(vsx_layer_ctx_t *c, uint64_t at_ns) {
  if (!c->timer_ns || at_ns < c->timer_ns) c->timer_ns = at_ns;
}

uint64_t vsx_stack_next_alarm(const vsx_stack_t *s) {
  uint64_t best = 0;
  for (uint32_t i = 0; i < s->layer_cnt; i++) {
    uint64_t t = s->layers[i].timer_ns;
    if (t && (!best || t < best)) best = t;
  }
  return best;
}

void vsx_stack_alarms(vsx_stack_t *s) {
  uint64_t now = s->cfg.now(s->cfg.owner);
  for (uint32_t i = 0; i < s->layer_cnt; i++) {
    vsx_layer_ctx_t *c = &s->layers[i];
    if (!c->timer_ns || c->timer_ns > now) continue;
    c->timer_ns = 0;
    if (c->ops->timer) c->ops->timer(c, now);
  }
  run(s);
}

/* ---- flow ---------------------------------------------------------------------- */

void vsx_flow_block(vsx_layer_ctx_t *c, int blocked) { c->flow_blocked = blocked != 0; }

int vsx_stack_flow_blocked(const vsx_stack_t *s) {
  for (uint32_t i = 0; i < s->layer_cnt; i++)
    if (s->layers[i].flow_blocked) return 1;
  return 0;
}

/* ---- parameters ----------------------------------------------------------------- */

/* find_kv looks for key in a "k=v,k=v" list of len bytes; on success
   points *val at the value and returns its length, else -1. */
static int find_kv(const char *list, size_t len, const char *prefix, const char *key, const char **val) {
  size_t plen = prefix ? strlen(prefix) : 0, klen = strlen(key);
  const char *p = list, *end = list + len;
  while (p < end) {
    const char *item_end = memchr(p, ',', (size_t)(end - p));
    if (!item_end) item_end = end;
    const char *eq = memchr(p, '=', (size_t)(item_end - p));
    if (eq) {
      size_t name_len = (size_t)(eq - p);
      int match = prefix ? name_len == plen + 1 + klen && !memcmp(p, prefix, plen) && p[plen] == '.' &&
                               !memcmp(p + plen + 1, key, klen)
                         : name_len == klen && !memcmp(p, key, klen);
      if (match) {
        *val = eq + 1;
        return (int)(item_end - eq - 1);
      }
    }
    p = item_end + 1;
  }
  return -1;
}

int vsx_param_str(vsx_layer_ctx_t *c, const char *key, char *buf, size_t cap) {
  const char *val;
  int n = find_kv(c->args, c->args_len, NULL, key, &val);
  if (n < 0) n = find_kv(c->stack->params, strlen(c->stack->params), c->ops->name, key, &val);
  if (n < 0) return 0;
  snprintf(buf, cap, "%.*s", n, val);
  return 1;
}

uint64_t vsx_param_u64(vsx_layer_ctx_t *c, const char *key, uint64_t dflt) {
  char buf[64];
  return vsx_param_str(c, key, buf, sizeof buf) ? strtoull(buf, NULL, 0) : dflt;
}

double vsx_param_f64(vsx_layer_ctx_t *c, const char *key, double dflt) {
  char buf[64];
  return vsx_param_str(c, key, buf, sizeof buf) ? strtod(buf, NULL) : dflt;
}

/* ---- introspection --------------------------------------------------------------- */

uint32_t vsx_stack_layer_cnt(const vsx_stack_t *s) { return s->layer_cnt; }

uint64_t vsx_stack_dispatched(const vsx_stack_t *s) { return s->dispatched; }

uint32_t vsx_stack_caps(const vsx_stack_t *s) {
  uint32_t caps = 0;
  for (uint32_t i = 0; i < s->layer_cnt; i++) caps |= s->layers[i].ops->provides;
  return caps;
}
vsx_layer_ctx_t *vsx_stack_layer(vsx_stack_t *s, uint32_t idx) { return idx < s->layer_cnt ? &s->layers[idx] : NULL; }
vsx_evpool_t *vsx_stack_evpool(vsx_stack_t *s) { return s->cfg.evpool; }

vsx_layer_ctx_t *vsx_stack_find(vsx_stack_t *s, const char *name) {
  for (uint32_t i = 0; i < s->layer_cnt; i++)
    if (!strcmp(s->layers[i].ops->name, name)) return &s->layers[i];
  return NULL;
}

uint64_t vsx_stack_stat(vsx_stack_t *s, const char *layer, const char *stat) {
  vsx_layer_ctx_t *c = vsx_stack_find(s, layer);
  if (!c) return 0;
  for (uint32_t i = 0; i < c->ops->stat_cnt && i < VSX_LAYER_STATS_MAX; i++)
    if (!strcmp(c->ops->stat_names[i], stat)) return c->stats[i];
  return 0;
}

int vsx_stack_ctl(vsx_stack_t *s, const char *layer, const char *cmd) {
  vsx_layer_ctx_t *c = vsx_stack_find(s, layer);
  if (!c) return vsx_fail(VSX_ERR_NOTFOUND, "stack_ctl: no layer '%s' in stack '%s'", layer, s->spec);
  if (!c->ops->ctl) return vsx_fail(VSX_ERR_NOTSUP, "stack_ctl: layer '%s' takes no commands", layer);
  int err = c->ops->ctl(c, cmd);
  run(s);
  return err;
}

void vsx_stack_print_stats(vsx_stack_t *s, FILE *out) {
  fprintf(out, "%-10s %-16s %12s\n", "layer", "counter", "value");
  for (uint32_t i = 0; i < s->layer_cnt; i++) {
    vsx_layer_ctx_t *c = &s->layers[i];
    for (uint32_t k = 0; k < c->ops->stat_cnt && k < VSX_LAYER_STATS_MAX; k++)
      if (c->stats[k]) fprintf(out, "%-10s %-16s %12llu\n", c->ops->name, c->ops->stat_names[k],
                               (unsigned long long)c->stats[k]);
  }
}

void vsx_stack_dump(vsx_stack_t *s, FILE *out) {
  fprintf(out, "stack '%s' rank %u of %u, %s\n", s->spec, s->layers[0].rank, s->view.member_cnt,
          s->flow_blocked ? "flow-blocked" : "flowing");
  for (uint32_t i = 0; i < s->layer_cnt; i++) {
    vsx_layer_ctx_t *c = &s->layers[i];
    fprintf(out, "  [%u] %s%s\n", i, c->ops->name, c->flow_blocked ? " (blocking)" : "");
    if (c->ops->dump) c->ops->dump(c, out);
  }
}
