/* mgroup.c - the dynamic-membership simulated group (see mgroup.h). */
#include "mgroup.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define MAGIC 0x4d475250u /* "MGRP" */
#define TICK_NS 1000000ull
enum { KIND_CAST = 1, KIND_SEND = 2 };

/* The payload header, network order. */
typedef struct mg_hdr {
  uint32_t magic, kind;
  uint64_t sender, seq, vl, vc;
  uint32_t k, body_len, body_crc, pad;
} __attribute__((packed)) mg_hdr_t;
_Static_assert(sizeof(mg_hdr_t) == 56, "mgroup payload header is 56 bytes");

static uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

static void gfail(mgroup_t *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void gfail(mgroup_t *g, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (!g->errors++) vsnprintf(g->first_error, sizeof g->first_error, fmt, ap);
  va_end(ap);
}

#define PFAIL(p, ...) do { (p)->errors++; gfail((p)->g, __VA_ARGS__); } while (0)

static int live(const mg_proc_t *p) { return p->ep && !p->crashed && !p->exited; }
int mgroup_alive(const mgroup_t *g, uint32_t i) { return i < g->n && live(&g->p[i]); }
uint64_t mgroup_now(const mgroup_t *g) { return vsx_sim_now(g->sim); }

/* ---- checks on view installs -------------------------------------------------- */

static uint64_t members_digest(const vsx_view_t *v) {
  uint64_t d = v->member_cnt;
  for (uint32_t i = 0; i < v->member_cnt; i++) d = mix64(d ^ v->members[i]);
  return d;
}

/* check_agreement: property 3 over every view id any process installed. */
static void check_agreement(mg_proc_t *p, const vsx_view_t *v) {
  mgroup_t *g = p->g;
  uint64_t d = members_digest(v);
  for (uint32_t i = 0; i < g->view_cnt; i++) {
    mg_view_rec_t *r = &g->views[i];
    if (r->ltime != v->ltime || r->coord != v->coord_eid) continue;
    if (r->digest != d || r->cnt != v->member_cnt)
      PFAIL(p, "seed %llu: property 3: %s installed view %llu:%llx with %u members, another process with %u "
            "(different lists)", (unsigned long long)g->seed, p->name, (unsigned long long)v->ltime,
            (unsigned long long)v->coord_eid, v->member_cnt, r->cnt);
    return;
  }
  if (g->view_cnt < MG_VIEWS_MAX) g->views[g->view_cnt++] = (mg_view_rec_t){ v->ltime, v->coord_eid, d, v->member_cnt };
}

/* check_transition: property 6, the set of casts delivered in the view
   left, against every process that made the same transition; with total
   order (every cast total or safe) property 8 as well: the same order. */
static void check_transition(mg_proc_t *p, const vsx_view_t *to) {
  mgroup_t *g = p->g;
  mg_trans_rec_t t = { p->view.ltime, p->view.coord_eid, to->ltime, to->coord_eid, p->vs_sum, p->vs_ord, p->vs_cnt, p->idx };
  for (uint32_t i = 0; i < g->trans_cnt; i++) {
    mg_trans_rec_t *r = &g->trans[i];
    if (r->from_l != t.from_l || r->from_c != t.from_c || r->to_l != t.to_l || r->to_c != t.to_c) continue;
    if (r->cnt != t.cnt || r->sum != t.sum)
      PFAIL(p, "seed %llu: property 6: %s and %s both went from view %llu:%llx to %llu:%llx but delivered %u and %u "
            "casts (different sets)", (unsigned long long)g->seed, p->name, g->p[r->proc].name,
            (unsigned long long)t.from_l, (unsigned long long)t.from_c, (unsigned long long)t.to_l,
            (unsigned long long)t.to_c, t.cnt, r->cnt);
    else if (g->o.svc && g->o.svc != VSX_SVC_FIFO && r->ord != t.ord)
      PFAIL(p, "seed %llu: property 8: %s and %s both went from view %llu:%llx to %llu:%llx, delivered the same %u "
            "casts but in different orders", (unsigned long long)g->seed, p->name, g->p[r->proc].name,
            (unsigned long long)t.from_l, (unsigned long long)t.from_c, (unsigned long long)t.to_l,
            (unsigned long long)t.to_c, t.cnt);
    return;
  }
  if (g->trans_cnt < MG_TRANS_MAX) g->trans[g->trans_cnt++] = t;
}

static void on_view(void *user, vsx_endpoint_t *ep, const vsx_view_t *v, uint32_t rank) {
  mg_proc_t *p = user;
  mgroup_t *g = p->g;
  (void)ep;
  if (rank >= v->member_cnt || v->members[rank] != p->eid)
    PFAIL(p, "seed %llu: property 1: %s installed view %llu:%llx without itself at rank %u", (unsigned long long)g->seed,
          p->name, (unsigned long long)v->ltime, (unsigned long long)v->coord_eid, rank);
  if (p->has_view && v->ltime <= p->view.ltime)
    PFAIL(p, "seed %llu: property 2: %s installed view ltime %llu after ltime %llu", (unsigned long long)g->seed,
          p->name, (unsigned long long)v->ltime, (unsigned long long)p->view.ltime);
  if (p->has_view && !p->blocked)
    PFAIL(p, "seed %llu: %s got view %llu without a block callback first", (unsigned long long)g->seed, p->name,
          (unsigned long long)v->ltime);
  if (v->coord_eid != v->members[0])
    PFAIL(p, "seed %llu: %s: view %llu's coordinator is not its first member", (unsigned long long)g->seed, p->name,
          (unsigned long long)v->ltime);
  check_agreement(p, v);
  if (p->has_view) check_transition(p, v);
  /* Property 11 where the trace checker asks it: a view left with no
     member lost (everyone of it went on into the next) had a complete
     flush, so my own casts of it were all delivered to me. */
  int none_lost = p->has_view;
  for (uint32_t a = 0; none_lost && a < p->view.member_cnt; a++) {
    int in = 0;
    for (uint32_t b = 0; b < v->member_cnt && !in; b++) in = v->members[b] == p->view.members[a];
    none_lost = in;
  }
  if (none_lost && p->cast_got[p->rank] != p->cast_k)
    PFAIL(p, "seed %llu: property 11: %s delivered %u of its %u casts of view %llu, which it left with no member lost",
          (unsigned long long)g->seed, p->name, p->cast_got[p->rank], p->cast_k, (unsigned long long)p->view.ltime);
  p->prev_view = p->view;
  p->prev_cast_k = p->cast_k;
  memcpy(p->prev_cast_got, p->cast_got, sizeof p->cast_got);
  p->view = *v;
  p->rank = rank;
  p->has_view = 1;
  p->blocked = 0;
  p->views++;
  p->vs_cnt = 0;
  p->vs_sum = 0;
  p->vs_ord = 0;
  p->cast_k = 0;
  memset(p->send_k, 0, sizeof p->send_k);
  memset(p->cast_got, 0, sizeof p->cast_got);
  memset(p->send_got, 0, sizeof p->send_got);
}

static void on_block(void *user, vsx_endpoint_t *ep) {
  mg_proc_t *p = user;
  (void)ep;
  if (p->blocked) PFAIL(p, "seed %llu: %s: two block callbacks without a view", (unsigned long long)p->g->seed, p->name);
  p->blocked = 1;
}

static void on_exit_cb(void *user, vsx_endpoint_t *ep, const char *reason) {
  mg_proc_t *p = user;
  (void)ep;
  if (!p->leaving)
    PFAIL(p, "seed %llu: %s exited (%s) without leaving", (unsigned long long)p->g->seed, p->name, reason);
  p->exited = 1;
}

/* ---- state transfer ------------------------------------------------------------- */

static int on_state_get(void *user, vsx_endpoint_t *ep, const void **data, size_t *len) {
  mg_proc_t *p = user;
  (void)ep;
  *data = p->state;
  *len = p->g->o.state_len;
  p->state_gets++;
  return VSX_OK;
}

static void on_state_put(void *user, vsx_endpoint_t *ep, const void *data, size_t len, uint64_t off, uint64_t total) {
  mg_proc_t *p = user;
  (void)ep;
  if (total != p->g->o.state_len || off + len > total) {
    PFAIL(p, "seed %llu: %s: state piece [%llu, +%zu) of %llu, expected a state of %u bytes", (unsigned long long)p->g->seed,
          p->name, (unsigned long long)off, len, (unsigned long long)total, p->g->o.state_len);
    return;
  }
  if (p->has_view && !p->blocked)
    PFAIL(p, "seed %llu: %s: state piece while its view is in use", (unsigned long long)p->g->seed, p->name);
  memcpy(p->state_in + off, data, len);
  if (off + len == total) {
    memcpy(p->state, p->state_in, total);
    p->state_puts++;
  }
}

/* ---- traffic and delivery ------------------------------------------------------- */

static void on_deliver(void *user, vsx_endpoint_t *ep, uint32_t from, vsx_svc_t svc, const vsx_iovl_t *msg) {
  mg_proc_t *p = user;
  mgroup_t *g = p->g;
  static uint8_t buf[1 << 16];
  size_t len = vsx_iovl_len(msg);
  (void)ep;
  if (len < sizeof(mg_hdr_t) || len > sizeof buf) {
    PFAIL(p, "seed %llu: property 4: %s got a message of %zu bytes", (unsigned long long)g->seed, p->name, len);
    return;
  }
  vsx_iovl_gather(msg, 0, buf, len);
  mg_hdr_t h;
  memcpy(&h, buf, sizeof h);
  uint64_t sender = be64toh(h.sender), seq = be64toh(h.seq), vl = be64toh(h.vl), vc = be64toh(h.vc);
  uint32_t kind = ntohl(h.kind), k = ntohl(h.k), blen = ntohl(h.body_len);
  if (!p->has_view) {
    PFAIL(p, "seed %llu: %s delivered a message before its first view", (unsigned long long)g->seed, p->name);
    return;
  }
  vsx_trace_deliver(vsx_endpoint_trace(p->ep), sender, svc, seq, len, vsx_crc32c(0, buf, len));
  const char *v = "";
  if (ntohl(h.magic) != MAGIC || blen != len - sizeof h || vsx_crc32c(0, buf + sizeof h, blen) != ntohl(h.body_crc))
    v = "property 4: corrupted bytes";
  else if (from >= p->view.member_cnt || p->view.members[from] != sender)
    v = "property 4: the claimed sender is not that member of my view";
  else if (vl != p->view.ltime || vc != p->view.coord_eid)
    v = "property 5: sent in another view";
  else if ((kind == KIND_CAST) != (svc != VSX_SVC_P2P))
    v = "property 4: service mismatch";
  else if (k != (kind == KIND_CAST ? p->cast_got[from] : p->send_got[from]))
    v = "property 7/4: out of order, after a gap, or a duplicate";
  if (*v) {
    PFAIL(p, "seed %llu: %s: %s: %s #%llu (k %u) from %llx, in view %llu:%llx (mine %llu:%llx)", (unsigned long long)g->seed,
          p->name, v, kind == KIND_CAST ? "cast" : "send", (unsigned long long)seq, k, (unsigned long long)sender,
          (unsigned long long)vl, (unsigned long long)vc, (unsigned long long)p->view.ltime,
          (unsigned long long)p->view.coord_eid);
    return;
  }
  p->delivered++;
  if (kind == KIND_SEND) { p->send_got[from]++; return; }
  p->cast_got[from]++;
  uint64_t m = mix64(sender ^ mix64(seq));
  p->vs_cnt++;
  p->vs_sum += m;
  p->vs_ord = mix64(p->vs_ord ^ m);
  if (p->state) p->state[m % (g->o.state_len / 8)] += m;
}

/* submit sends one checked message from p: a cast (dst < 0) or a send. */
static int submit(mg_proc_t *p, int dst) {
  mgroup_t *g = p->g;
  static uint8_t buf[sizeof(mg_hdr_t) + 4096];
  uint32_t span = g->o.msg_max - g->o.msg_min;
  uint32_t blen = g->o.msg_min + (span ? (uint32_t)vsx_rng_below(&g->rng, span + 1) : 0);
  for (uint32_t i = 0; i < blen; i++) buf[sizeof(mg_hdr_t) + i] = (uint8_t)vsx_rng_next(&g->rng);
  uint32_t k = dst < 0 ? p->cast_k : p->send_k[dst];
  mg_hdr_t h = { htonl(MAGIC), htonl(dst < 0 ? KIND_CAST : KIND_SEND), htobe64(p->eid), htobe64(p->seq + 1),
                 htobe64(p->view.ltime), htobe64(p->view.coord_eid), htonl(k), htonl(blen),
                 htonl(vsx_crc32c(0, buf + sizeof h, blen)), 0 };
  memcpy(buf, &h, sizeof h);
  size_t len = sizeof h + blen;
  uint32_t self_before = p->cast_got[p->rank];
  vsx_svc_t svc = g->o.svc ? g->o.svc : VSX_SVC_FIFO;
  int err = dst < 0 ? vsx_endpoint_cast(p->ep, svc, buf, len) : vsx_endpoint_send(p->ep, (uint32_t)dst, buf, len);
  if (err) return err;
  if (getenv("MG_DEBUG") && dst < 0 && p->cast_got[p->rank] == self_before) {
    fprintf(stderr, "%s: cast #%llu not delivered locally at once (view %llu)\n", p->name, (unsigned long long)p->seq + 1,
            (unsigned long long)p->view.ltime);
    vsx_stack_dump(vsx_endpoint_stack(p->ep), stderr);
  }
  p->seq++;
  if (dst < 0) p->cast_k++;
  else p->send_k[dst]++;
  vsx_trace_send(vsx_endpoint_trace(p->ep), dst < 0 ? svc : VSX_SVC_P2P, p->seq, len, vsx_crc32c(0, buf, len),
                 dst < 0 ? 0 : p->view.members[dst]);
  return VSX_OK;
}

/* traffic_tick: each live member casts (and sends) by chance; a member
   that is blocked tries now and then and must be refused. */
static void traffic_tick(mgroup_t *g) {
  uint64_t now = vsx_sim_now(g->sim);
  for (uint32_t i = 0; i < g->n; i++) {
    mg_proc_t *p = &g->p[i];
    if (!live(p) || !p->has_view || p->paused_until > now || p->leaving) continue;
    if (p->blocked) {
      if (vsx_rng_uniform(&g->rng) < 0.05) {
        int err = submit(p, -1);
        p->blocked_refusals++;
        if (err != VSX_ERR_BLOCKED)
          PFAIL(p, "seed %llu: property 10: %s cast while blocked and got %d (%s), not VSX_ERR_BLOCKED",
                (unsigned long long)g->seed, p->name, err, vsx_strerror(err));
      }
      continue;
    }
    if (vsx_rng_uniform(&g->rng) < g->o.cast_p) {
      for (uint32_t b = 0; b < (g->o.burst ? g->o.burst : 1); b++) {
        int err = submit(p, -1);
        if (err == VSX_ERR_AGAIN) { p->flow_refusals++; break; }
        if (err && !(err == VSX_ERR_BLOCKED && !vsx_endpoint_primary(p->ep)))
          PFAIL(p, "seed %llu: %s: cast refused: %s (%s)", (unsigned long long)g->seed, p->name, vsx_strerror(err),
                vsx_last_error());
        if (err || !live(p) || p->blocked) break;
      }
    }
    if (p->view.member_cnt > 1 && vsx_rng_uniform(&g->rng) < g->o.send_p) {
      uint32_t d = (uint32_t)vsx_rng_below(&g->rng, p->view.member_cnt);
      if (d != p->rank) {
        int err = submit(p, (int)d);
        if (err && err != VSX_ERR_AGAIN && !(err == VSX_ERR_BLOCKED && !vsx_endpoint_primary(p->ep)))
          PFAIL(p, "seed %llu: %s: send refused: %s (%s)", (unsigned long long)g->seed, p->name, vsx_strerror(err),
                vsx_last_error());
      }
    }
  }
}

/* ---- processes -------------------------------------------------------------------- */

static void trace_dir_prepare(mgroup_t *g) {
  const char *base = g->o.trace_dir ? g->o.trace_dir : getenv("VSX_TRACE_DIR");
  g->trace_dir[0] = 0;
  if (!base || !*base) return;
  char name[128];
  if (g->o.run_name) snprintf(name, sizeof name, "%s", g->o.run_name);
  else snprintf(name, sizeof name, "run-%llu", (unsigned long long)g->seed);
  mkdir(base, 0777);
  snprintf(g->trace_dir, sizeof g->trace_dir, "%s/%s", base, name);
  if (mkdir(g->trace_dir, 0777) && errno != EEXIST) { g->trace_dir[0] = 0; return; }
  DIR *d = opendir(g->trace_dir); /* a rerun with the same name starts clean */
  struct dirent *e;
  while (d && (e = readdir(d))) {
    size_t l = strlen(e->d_name);
    if (l > 6 && !strcmp(e->d_name + l - 6, ".jsonl")) {
      char path[1024];
      snprintf(path, sizeof path, "%s/%s", g->trace_dir, e->d_name);
      unlink(path);
    }
  }
  if (d) closedir(d);
}

int mgroup_spawn(mgroup_t *g) {
  if (g->n == MG_PROCS_MAX) return -1;
  uint32_t i = g->n;
  mg_proc_t *p = &g->p[i];
  memset(p, 0, sizeof *p);
  p->g = g;
  p->idx = i;
  p->grp = g->o.groups > 1 ? i % g->o.groups : 0;
  p->eid = mix64(g->seed * 1000003ull + i) | 1;
  char group[16];
  snprintf(group, sizeof group, g->o.groups > 1 ? "mbr%u" : "mbr", p->grp);
  snprintf(p->name, sizeof p->name, "p%u", i);
  if (g->o.state_len) {
    p->state = calloc(g->o.state_len / 8, 8);
    p->state_in = calloc(g->o.state_len, 1);
    if (!p->state || !p->state_in) return -1;
    for (uint32_t c = 0; c < g->o.state_len / 8; c++) p->state[c] = mix64(p->eid + c); /* everyone starts different */
  }
  vsx_endpoint_opts_t eo = {
    .group = group, .opt_name = p->name, .opt_stack = g->o.stack, .opt_params = g->o.params,
    .transport = &vsx_transport_sim, .opt_backend = g->sim, .eid = p->eid, .buf_cnt = 1024, .ev_cnt = 768,
    .seed = mix64(g->seed + 77 * i), .opt_clock = vsx_sim_clock, .opt_clock_ctx = g->sim,
    .cbs = { .deliver = on_deliver, .view = on_view, .block = on_block, .exit = on_exit_cb,
             .state_get = g->o.state_len ? on_state_get : NULL, .state_put = g->o.state_len ? on_state_put : NULL },
    .user = p, .opt_primary = g->primary_cnt ? g->primary_eids : NULL, .primary_cnt = g->primary_cnt,
    .opt_trace_dir = g->trace_dir, .linger_ms = g->o.linger_ms,
  };
  if (vsx_endpoint_create(&eo, &p->ep)) return -1;
  g->n++;
  return (int)i;
}

int mgroup_create(mgroup_t *g, const mg_opts_t *o) {
  memset(g, 0, sizeof *g);
  g->o = *o;
  if (!g->o.params) g->o.params = MG_PARAMS_FAST;
  if (!g->o.msg_max) { g->o.msg_min = 8; g->o.msg_max = 200; }
  if (g->o.msg_max > 4096) g->o.msg_max = 4096;
  if (!g->o.linger_ms) g->o.linger_ms = 200;
  if (g->o.state_len) g->o.state_len = (g->o.state_len + 7) / 8 * 8;
  if (!g->o.sim.queue_cap) g->o.sim.queue_cap = 4096;
  g->seed = o->sim.seed;
  vsx_rng_seed(&g->rng, g->seed ^ 0x6d67726f7570ull);
  trace_dir_prepare(g);
  int err = vsx_sim_create(&g->o.sim, &g->sim);
  if (err) return err;
  if (o->primary) {
    g->primary_cnt = o->n;
    for (uint32_t i = 0; i < o->n; i++) g->primary_eids[i] = mix64(g->seed * 1000003ull + i) | 1;
  }
  for (uint32_t i = 0; i < o->n; i++)
    if (mgroup_spawn(g) < 0) { mgroup_destroy(g); return VSX_ERR_NOMEM; }
  g->traffic = 1;
  g->tick_at = vsx_sim_now(g->sim) + TICK_NS;
  return VSX_OK;
}

void mgroup_destroy(mgroup_t *g) {
  for (uint32_t i = 0; i < g->n; i++) {
    vsx_endpoint_destroy(g->p[i].ep);
    g->p[i].ep = NULL;
    free(g->p[i].state);
    free(g->p[i].state_in);
  }
  vsx_sim_destroy(g->sim);
  g->sim = NULL;
}

void mgroup_crash(mgroup_t *g, uint32_t i) {
  mg_proc_t *p = &g->p[i];
  if (!live(p)) return;
  vsx_sim_crash(g->sim, p->eid);
  vsx_trace_exit(vsx_endpoint_trace(p->ep), "crash");
  p->crashed = 1;
}

void mgroup_pause(mgroup_t *g, uint32_t i, uint64_t ns) {
  if (!live(&g->p[i])) return;
  g->p[i].paused_until = vsx_sim_now(g->sim) + ns;
  vsx_sim_pause(g->sim, g->p[i].eid, g->p[i].paused_until);
}

int mgroup_leave(mgroup_t *g, uint32_t i) {
  mg_proc_t *p = &g->p[i];
  if (!live(p) || p->leaving) return VSX_ERR_STATE;
  p->leaving = 1;
  return vsx_endpoint_leave(p->ep);
}

/* ---- time ----------------------------------------------------------------------------- */

int mgroup_step(mgroup_t *g, uint64_t limit_ns) {
  uint64_t now = vsx_sim_now(g->sim), next = vsx_sim_next_arrival(g->sim);
  if (g->traffic && g->tick_at < next) next = g->tick_at;
  for (uint32_t i = 0; i < g->n; i++) {
    mg_proc_t *p = &g->p[i];
    if (!p->ep || p->crashed) continue;
    if (p->paused_until > now) { if (p->paused_until < next) next = p->paused_until; continue; }
    uint64_t a = vsx_endpoint_next_alarm(p->ep);
    if (a && a < next) next = a;
  }
  if (next > limit_ns) { vsx_sim_set_now(g->sim, limit_ns); return 0; }
  /* Time must move: an alarm that stays due after every poll is a bug
     in a layer (a timer re-armed in the past), and would spin forever. */
  if (next <= now) {
    if (++g->stuck_steps > 100000) {
      mgroup_describe(g, stderr);
      for (uint32_t i = 0; i < g->n; i++) {
        if (!g->p[i].ep || g->p[i].crashed || !vsx_endpoint_stack(g->p[i].ep)) continue;
        vsx_stack_t *st = vsx_endpoint_stack(g->p[i].ep);
        fprintf(stderr, "%s: next alarm %llu, paused until %llu; current stack's timers:", g->p[i].name,
                (unsigned long long)vsx_endpoint_next_alarm(g->p[i].ep), (unsigned long long)g->p[i].paused_until);
        for (uint32_t l = 0; l < vsx_stack_layer_cnt(st); l++)
          fprintf(stderr, " %s=%llu", vsx_stack_layer(st, l)->ops->name, (unsigned long long)vsx_stack_layer(st, l)->timer_ns);
        fprintf(stderr, "\n");
      }
      vsx_fatal("mgroup: seed %llu: virtual time stuck at %llu ns", (unsigned long long)g->seed, (unsigned long long)now);
    }
  } else {
    g->stuck_steps = 0;
  }
  vsx_sim_set_now(g->sim, next);
  now = vsx_sim_now(g->sim);
  for (uint32_t i = 0; i < g->n; i++) {
    mg_proc_t *p = &g->p[i];
    if (p->ep && !p->crashed && p->paused_until <= now) vsx_endpoint_poll(p->ep);
  }
  if (g->traffic && now >= g->tick_at) {
    traffic_tick(g);
    g->tick_at = now + TICK_NS;
  }
  return 1;
}

void mgroup_run(mgroup_t *g, uint64_t ns) {
  uint64_t until = vsx_sim_now(g->sim) + ns;
  while (mgroup_step(g, until)) {}
}

/* ---- random faults --------------------------------------------------------------------- */

static uint32_t live_cnt(const mgroup_t *g) {
  uint32_t c = 0;
  for (uint32_t i = 0; i < g->n; i++) c += live(&g->p[i]) && !g->p[i].leaving;
  return c;
}

/* pick_live returns a random live, not leaving process, or -1. */
static int pick_live(mgroup_t *g) {
  uint32_t c = live_cnt(g);
  if (!c) return -1;
  uint32_t k = (uint32_t)vsx_rng_below(&g->rng, c);
  for (uint32_t i = 0; i < g->n; i++)
    if (live(&g->p[i]) && !g->p[i].leaving && !k--) return (int)i;
  return -1;
}

static void chaos_note(mgroup_t *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void chaos_note(mgroup_t *g, const char *fmt, ...) {
  char item[96];
  va_list ap;
  va_start(ap, fmt);
  int n = snprintf(item, sizeof item, "%.3f ", (double)vsx_sim_now(g->sim) / 1e9);
  vsnprintf(item + n, sizeof item - (size_t)n, fmt, ap);
  va_end(ap);
  size_t have = strlen(g->chaos_log), add = strlen(item) + 2;
  if (have + add >= sizeof g->chaos_log) { /* keep the latest */
    size_t cut = have + add - sizeof g->chaos_log + 1;
    memmove(g->chaos_log, g->chaos_log + cut, have - cut + 1);
  }
  strcat(g->chaos_log, item);
  strcat(g->chaos_log, "; ");
}

/* chaos_fault injects one fault of the given kind (0-7), if it applies;
   returns 1 if it did (heals are not counted). */
static int chaos_fault(mgroup_t *g, uint32_t kind, uint32_t max, uint64_t *burst_end) {
  int i = pick_live(g), j = pick_live(g);
  switch (kind) {
  case 0: /* crash */
    if (i < 0 || live_cnt(g) < 2) return 0;
    mgroup_crash(g, (uint32_t)i);
    chaos_note(g, "crash p%d", i);
    return 1;
  case 1: /* join */
    if (g->n >= max || (i = mgroup_spawn(g)) < 0) return 0;
    chaos_note(g, "join p%d", i);
    return 1;
  case 2: { /* pause */
    if (i < 0) return 0;
    uint64_t ns = 50000000ull + vsx_rng_below(&g->rng, 550000000ull);
    mgroup_pause(g, (uint32_t)i, ns);
    chaos_note(g, "pause p%d %llums", i, (unsigned long long)(ns / 1000000));
    return 1;
  }
  case 3: /* partition: every live process on a random side of two */
    for (uint32_t k = 0; k < g->n; k++)
      if (g->p[k].ep && !g->p[k].crashed) vsx_sim_side(g->sim, g->p[k].eid, (uint32_t)vsx_rng_below(&g->rng, 2));
    chaos_note(g, "partition");
    return 1;
  case 4: /* asymmetric: cut one direction of one link */
    if (i < 0 || j < 0 || i == j) return 0;
    vsx_sim_link(g->sim, g->p[i].eid, g->p[j].eid, 0);
    chaos_note(g, "cut p%d->p%d", i, j);
    return 1;
  case 5: { /* loss burst */
    uint64_t ns = 50000000ull + vsx_rng_below(&g->rng, 750000000ull);
    vsx_sim_set_loss(g->sim, 0.5 + 0.45 * vsx_rng_uniform(&g->rng), g->o.sim.dup);
    *burst_end = vsx_sim_now(g->sim) + ns;
    chaos_note(g, "burst %llums", (unsigned long long)(ns / 1000000));
    return 1;
  }
  case 6: /* graceful leave (a paused process cannot ask) */
    if (i < 0 || live_cnt(g) < 2 || g->p[i].paused_until > vsx_sim_now(g->sim)) return 0;
    mgroup_leave(g, (uint32_t)i);
    chaos_note(g, "leave p%d", i);
    return 1;
  default: /* heal */
    vsx_sim_heal(g->sim);
    chaos_note(g, "heal");
    return 0;
  }
}

uint32_t mgroup_chaos(mgroup_t *g, const mg_chaos_t *c) {
  uint64_t end = vsx_sim_now(g->sim) + c->duration_ns, burst_end = 0;
  uint32_t faults = 0, max = c->procs_max && c->procs_max <= MG_PROCS_MAX ? c->procs_max : MG_PROCS_MAX;
  g->traffic = 1;
  for (;;) {
    uint64_t gap = 20000000ull + vsx_rng_below(&g->rng, 380000000ull);
    uint64_t at = vsx_sim_now(g->sim) + gap;
    if (at > end) break;
    while (vsx_sim_now(g->sim) < at) {
      uint64_t lim = burst_end && burst_end < at ? burst_end : at;
      mgroup_step(g, lim);
      if (burst_end && vsx_sim_now(g->sim) >= burst_end) { vsx_sim_set_loss(g->sim, c->base_loss, g->o.sim.dup); burst_end = 0; }
    }
    uint32_t kind = (uint32_t)vsx_rng_below(&g->rng, 8);
    if ((c->allow >> (kind < 7 ? kind : 3)) & 1) faults += (uint32_t)chaos_fault(g, kind, max, &burst_end); /* 7: heal, with partitions */
  }
  while (mgroup_step(g, end)) {}
  vsx_sim_heal(g->sim);
  vsx_sim_set_loss(g->sim, c->base_loss, g->o.sim.dup);
  uint64_t last_pause = 0;
  for (uint32_t k = 0; k < g->n; k++)
    if (live(&g->p[k]) && g->p[k].paused_until > last_pause) last_pause = g->p[k].paused_until;
  if (last_pause > vsx_sim_now(g->sim)) mgroup_run(g, last_pause - vsx_sim_now(g->sim));
  chaos_note(g, "all healed");
  return faults;
}

/* ---- liveness --------------------------------------------------------------------------- */

/* converged_group: the live members of group grp are all in one view
   that holds exactly them, and may use it. */
static int converged_group(const mgroup_t *g, uint32_t grp) {
  const mg_proc_t *first = NULL;
  uint32_t cnt = 0;
  for (uint32_t i = 0; i < g->n; i++) {
    const mg_proc_t *p = &g->p[i];
    if (!live(p) || p->grp != grp) continue;
    if (!p->has_view || p->blocked || p->paused_until > vsx_sim_now(g->sim)) return 0;
    if (!first) first = p;
    else if (p->view.ltime != first->view.ltime || p->view.coord_eid != first->view.coord_eid) return 0;
    cnt++;
  }
  if (!first) return 1; /* nobody left in this group */
  if (first->view.member_cnt != cnt) return 0;
  for (uint32_t k = 0; k < first->view.member_cnt; k++) {
    int found = 0;
    for (uint32_t i = 0; i < g->n && !found; i++) found = live(&g->p[i]) && g->p[i].eid == first->view.members[k];
    if (!found) return 0;
  }
  return 1;
}

int mgroup_converged(const mgroup_t *g) {
  uint32_t groups = g->o.groups > 1 ? g->o.groups : 1;
  for (uint32_t k = 0; k < groups; k++)
    if (!converged_group(g, k)) return 0;
  return 1;
}

uint64_t mgroup_wait_converged(mgroup_t *g, uint64_t max_ns) {
  uint64_t start = vsx_sim_now(g->sim), until = start + max_ns;
  while (!mgroup_converged(g)) {
    if (!mgroup_step(g, until)) return mgroup_converged(g) ? vsx_sim_now(g->sim) - start : UINT64_MAX;
  }
  return vsx_sim_now(g->sim) - start;
}

int mgroup_all_delivered(const mgroup_t *g, char *why, size_t cap) {
  if (cap) why[0] = 0;
  for (uint32_t s = 0; s < g->n; s++) {
    const mg_proc_t *ps = &g->p[s];
    if (!live(ps) || !ps->has_view) continue;
    for (uint32_t r = 0; r < g->n; r++) {
      const mg_proc_t *pr = &g->p[r];
      if (!live(pr) || !pr->has_view || pr->view.ltime != ps->view.ltime || pr->view.coord_eid != ps->view.coord_eid) continue;
      if (pr->cast_got[ps->rank] != ps->cast_k) {
        snprintf(why, cap, "property %s: %s delivered %u of the %u casts %s sent in the final view",
                 r == s ? "11" : "13", pr->name, pr->cast_got[ps->rank], ps->cast_k, ps->name);
        return 0;
      }
      if (r != s && pr->send_got[ps->rank] != ps->send_k[pr->rank]) {
        snprintf(why, cap, "%s delivered %u of the %u sends %s sent it in the final view", pr->name,
                 pr->send_got[ps->rank], ps->send_k[pr->rank], ps->name);
        return 0;
      }
    }
  }
  return 1;
}

int mgroup_settle(mgroup_t *g, uint64_t max_ns, char *why, size_t cap) {
  g->traffic = 0;
  uint64_t until = vsx_sim_now(g->sim) + max_ns;
  if (mgroup_wait_converged(g, max_ns) == UINT64_MAX) {
    snprintf(why, cap, "property 12: no convergence within %llu ms", (unsigned long long)(max_ns / 1000000));
    return 0;
  }
  /* Converged and everything delivered at the same time: a suspicion
     raised just before the faults stopped may still change the view. */
  while (!mgroup_converged(g) || !mgroup_all_delivered(g, why, cap)) {
    if (!mgroup_step(g, until)) {
      if (!mgroup_converged(g)) snprintf(why, cap, "property 12: no stable convergence within %llu ms",
                                         (unsigned long long)(max_ns / 1000000));
      return 0;
    }
  }
  if (g->o.state_len) {
    const mg_proc_t *first = NULL;
    for (uint32_t i = 0; i < g->n; i++) {
      const mg_proc_t *p = &g->p[i];
      if (!live(p) || p->grp) continue; /* the first group's */
      if (!first) { first = p; continue; }
      if (memcmp(first->state, p->state, g->o.state_len)) {
        snprintf(why, cap, "state transfer: %s and %s end in one view with different states", first->name, p->name);
        return 0;
      }
    }
  }
  if (cap) why[0] = 0;
  return 1;
}

uint64_t mgroup_errors(const mgroup_t *g, char *first, size_t cap) {
  uint64_t e = g->errors;
  if (cap) snprintf(first, cap, "%s", g->first_error);
  for (uint32_t i = 0; i < g->n; i++) {
    if (!g->p[i].ep) continue;
    vsx_endpoint_stats_t st;
    vsx_endpoint_get_stats(g->p[i].ep, &st);
    if (st.old_view_casts || st.early_msgs || st.casts_after_block) {
      if (!e && cap)
        snprintf(first, cap, "seed %llu: %s: %llu casts of flushed views, %llu messages before the view callback, "
                 "%llu casts after BLOCK_OK", (unsigned long long)g->seed, g->p[i].name,
                 (unsigned long long)st.old_view_casts, (unsigned long long)st.early_msgs,
                 (unsigned long long)st.casts_after_block);
      e++;
    }
  }
  return e;
}

void mgroup_describe(const mgroup_t *g, FILE *out) {
  fprintf(out, "seed %llu at %.3f s:\n", (unsigned long long)g->seed, (double)vsx_sim_now(g->sim) / 1e9);
  for (uint32_t i = 0; i < g->n; i++) {
    const mg_proc_t *p = &g->p[i];
    fprintf(out, "  %s %016llx %s%s%s view %llu:%llx (%u members, rank %u)%s, %u views, %llu delivered\n", p->name,
            (unsigned long long)p->eid, p->crashed ? "crashed " : "", p->exited ? "exited " : "",
            p->leaving ? "leaving " : "", (unsigned long long)p->view.ltime, (unsigned long long)p->view.coord_eid,
            p->view.member_cnt, p->rank, p->blocked ? " blocked" : "", p->views, (unsigned long long)p->delivered);
    if (getenv("VSX_DUMP") && p->ep && !p->crashed && vsx_endpoint_stack(p->ep)) vsx_stack_dump(vsx_endpoint_stack(p->ep), out);
  }
}

int mgroup_run_checker(mgroup_t *g, const char *extra, int *ran, char *verdict, size_t cap) {
  *ran = 0;
  if (cap) verdict[0] = 0;
  if (!g->trace_dir[0]) return 0;
  for (uint32_t i = 0; i < g->n; i++)
    if (g->p[i].ep) vsx_trace_flush(vsx_endpoint_trace(g->p[i].ep));
  char cmd[1400];
  snprintf(cmd, sizeof cmd, "python3 %s/tests/checker/vsx_check.py --quiet %s '%s' 2>&1", VSX_SOURCE_DIR,
           extra ? extra : "", g->trace_dir);
  FILE *f = popen(cmd, "r");
  if (!f) { snprintf(verdict, cap, "cannot run: %s", cmd); return 127; }
  size_t at = 0;
  char line[512];
  while (fgets(line, sizeof line, f))
    if (at < cap) at += (size_t)snprintf(verdict + at, cap - at, "%s", line);
  int st = pclose(f);
  *ran = 1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 126;
}

/* ---- one random run ---------------------------------------------------------------------- */

void mgroup_rm_run(const mgroup_t *g) {
  if (!g->trace_dir[0]) return;
  DIR *d = opendir(g->trace_dir);
  struct dirent *e;
  while (d && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", g->trace_dir, e->d_name);
    unlink(path);
  }
  if (d) closedir(d);
  rmdir(g->trace_dir);
}

int mgroup_random_run(mgroup_t *g, uint64_t seed, const char *trace_dir, int keep, uint64_t settle_ns, char *why,
                      size_t cap) {
  vsx_rng_t r;
  vsx_rng_seed(&r, seed);
  uint32_t n = 3 + (uint32_t)vsx_rng_below(&r, 3);
  double loss = vsx_rng_uniform(&r) < 0.3 ? 0.15 : 0.03;
  char run[64];
  snprintf(run, sizeof run, "random-%llu", (unsigned long long)seed);
  mg_opts_t o = {
    .n = n, .sim = { .seed = seed, .loss = loss, .dup = 0.02, .delay_min_ns = 20000, .delay_max_ns = 300000,
                     .queue_cap = 4096 },
    .state_len = vsx_rng_uniform(&r) < 0.5 ? 3000 : 0, .primary = vsx_rng_uniform(&r) < 0.15,
    .trace_dir = trace_dir ? trace_dir : "", .run_name = run, .cast_p = 0.05, .send_p = 0.01,
    .svc = (vsx_svc_t)(VSX_SVC_FIFO + seed % 3), /* fifo, total, safe in turn */
  };
  if (mgroup_create(g, &o)) { snprintf(why, cap, "seed %llu: mgroup_create: %s", (unsigned long long)seed, vsx_last_error()); return 0; }
  mgroup_wait_converged(g, 3000000000ull);
  /* Safe delivery (property 9) is promised under crashes, joins and
     leaves: a member cut off by a partition, a one-way cut, a pause or a
     loss burst that ends up excluded while alive may miss a safe cast its
     old view delivered (docs/total-order.md: no rule avoids that without
     transitional views).  Safe runs draw their faults from the crash
     model; fifo and total runs from all of them. */
  uint32_t allow = o.svc == VSX_SVC_SAFE ? MG_F_CRASH | MG_F_JOIN | MG_F_LEAVE : MG_F_ALL;
  mg_chaos_t c = { .duration_ns = 3000000000ull, .procs_max = n + 3, .base_loss = loss, .allow = allow };
  mgroup_chaos(g, &c);
  char reason[400] = "", first[400] = "";
  int ok = mgroup_settle(g, settle_ns, reason, sizeof reason);
  uint64_t errs = mgroup_errors(g, first, sizeof first);
  int ran = 0, rc = 0;
  char verdict[1024] = "";
  if (ok && !errs) rc = mgroup_run_checker(g, NULL, &ran, verdict, sizeof verdict);
  int pass = ok && !errs && !rc;
  if (!pass) {
    snprintf(why, cap, "seed %llu: %s%s%s%s%s (faults: %s)", (unsigned long long)seed, ok ? "" : reason,
             errs ? (ok ? "" : "; ") : "", errs ? first : "", rc ? "; trace checker: " : "", rc ? verdict : "", g->chaos_log);
  } else if (cap) {
    why[0] = 0;
  }
  if (pass && ran && !keep) mgroup_rm_run(g);
  mgroup_destroy(g);
  return pass;
}
