/* total_check.c - the total-order group harness (see total_check.h). */
#include "total_check.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "vsx/layer.h"

/* Checked payload: a header, the body, and a trailer the probe reads from
   the end of the message (so it needs no other layer's header sizes).
   The trailer's first two bytes, 0xFEED, can never start the last run of
   a seqbb ORDER (origins are < 64), so the probe cannot mistake one. */
typedef struct tc_hdr { uint32_t origin, svc, seq, len, crc; } tc_hdr_t;
typedef struct tc_trailer { uint16_t magic; uint8_t origin, svc; uint32_t seq; } __attribute__((packed)) tc_trailer_t;
_Static_assert(sizeof(tc_trailer_t) == 8, "trailer is 8 bytes");
#define TC_MAGIC 0xFEEDu
#define TC_BODY_MAX (1u << 20)

static uint8_t tc_buf[sizeof(tc_hdr_t) + TC_BODY_MAX + sizeof(tc_trailer_t)];

static void tc_fail(tc_member_t *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tc_fail(tc_member_t *m, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (!m->errors++) vsnprintf(m->first_error, sizeof m->first_error, fmt, ap);
  va_end(ap);
}

/* ---- the probe: which total/safe casts reached each member below seqbb -- */


/* UP CAST: read the trailer of a reliable cast; count the total/safe ones. */
static void probe_up(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  tc_probe_t *p = ctx->state;
  size_t len = vsx_iovl_len(&ev->iovl);
  tc_trailer_t t;
  if (ev->type == VSX_EV_CAST && !(ev->flags & VSX_EVF_UNREL) && len >= sizeof t &&
      vsx_iovl_gather(&ev->iovl, len - sizeof t, &t, sizeof t) == sizeof t && ntohs(t.magic) == TC_MAGIC &&
      (t.svc == VSX_SVC_TOTAL || t.svc == VSX_SVC_SAFE)) {
    uint32_t r = (uint32_t)ev->peer;
    if (t.origin != r || r >= VSX_MEMBERS_MAX || ntohl(t.seq) != p->rx_ord[r]) p->violations++;
    else p->rx_ord[r]++;
  }
  vsx_pass_up(ctx, ev);
}

static const vsx_layer_ops_t tc_probe_ops = {
  .name = "tc_probe", .purpose = "test: records total/safe casts reaching the member below seqbb",
  .state_sz = sizeof(tc_probe_t), .needs_below = VSX_CAP_DATAGRAM, .up = probe_up,
};

/* ---- the recorder ---------------------------------------------------------- */

/* check_stability: member m delivers the cast (from, seq) of service svc
   at position k of the agreed sequence: does every member hold its data
   (probe) and the data and order of every position up to k (seqbb)? */
static void check_stability(tc_member_t *m, uint32_t from, uint32_t seq, vsx_svc_t svc, uint64_t k) {
  tc_group_t *g = m->g;
  uint32_t lacking = UINT32_MAX;
  for (uint32_t b = 0; b < g->n && lacking == UINT32_MAX; b++)
    if (g->m[b].probe->rx_ord[from] <= seq || *g->m[b].pos_ready <= k) lacking = b;
  if (svc == VSX_SVC_SAFE) {
    g->safe_checked++;
    if (lacking != UINT32_MAX) {
      g->safe_early++;
      tc_fail(m, "member %u delivered safe #%u of %u at position %llu while member %u lacked it (has %u of %u's, ready %llu)",
              m->rank, seq, from, (unsigned long long)k, lacking, g->m[lacking].probe->rx_ord[from], from,
              (unsigned long long)*g->m[lacking].pos_ready);
    }
  } else {
    g->total_checked++;
    if (lacking != UINT32_MAX) g->total_early++;
  }
}

/* check_order: the k-th total/safe delivery must be the same everywhere. */
static void check_order(tc_member_t *m, uint32_t from, uint32_t seq, vsx_svc_t svc, uint64_t k) {
  tc_group_t *g = m->g;
  tc_ref_t me = { .origin = (uint8_t)from, .svc = (uint8_t)svc, .seq = seq };
  if (k == g->ref_len) {
    if (g->ref_len == g->ref_cap) { tc_fail(m, "test sizing: more than %llu total/safe casts", (unsigned long long)g->ref_cap); return; }
    g->ref[g->ref_len++] = me;
    return;
  }
  const tc_ref_t *r = &g->ref[k];
  if (r->origin != me.origin || r->seq != me.seq || r->svc != me.svc)
    tc_fail(m, "total order violated: member %u's delivery #%llu is %u#%u (svc %u), another member's was %u#%u (svc %u)",
            m->rank, (unsigned long long)k, from, seq, (unsigned)svc, r->origin, r->seq, r->svc);
}

static void on_deliver(void *user, vsx_endpoint_t *ep, uint32_t from, vsx_svc_t svc, const vsx_iovl_t *msg) {
  tc_member_t *m = user;
  (void)ep;
  size_t len = vsx_iovl_len(msg);
  if (len < sizeof(tc_hdr_t) + sizeof(tc_trailer_t) || len > sizeof tc_buf) {
    tc_fail(m, "member %u: message of bad length %zu from %u", m->rank, len, from);
    return;
  }
  vsx_iovl_gather(msg, 0, tc_buf, len);
  tc_hdr_t h;
  tc_trailer_t t;
  memcpy(&h, tc_buf, sizeof h);
  memcpy(&t, tc_buf + len - sizeof t, sizeof t);
  h.origin = ntohl(h.origin); h.svc = ntohl(h.svc); h.seq = ntohl(h.seq); h.len = ntohl(h.len); h.crc = ntohl(h.crc);
  if (h.origin != from || t.origin != from) { tc_fail(m, "member %u: message claims origin %u but came from %u", m->rank, h.origin, from); return; }
  if (h.svc != (uint32_t)svc || t.svc != (uint8_t)svc) { tc_fail(m, "member %u: #%u from %u sent as svc %u, delivered as %u", m->rank, h.seq, from, h.svc, (unsigned)svc); return; }
  if (h.len != len - sizeof h - sizeof t || ntohl(t.seq) != h.seq || ntohs(t.magic) != TC_MAGIC) {
    tc_fail(m, "member %u: bad framing of #%u from %u", m->rank, h.seq, from);
    return;
  }
  if (vsx_crc32c(0, tc_buf + sizeof h, h.len) != h.crc) { tc_fail(m, "member %u: corrupted bytes in #%u from %u", m->rank, h.seq, from); return; }
  if (svc == VSX_SVC_FIFO) {
    if (h.seq != m->got_fifo[from]) tc_fail(m, "member %u: fifo #%u from %u, expected #%u", m->rank, h.seq, from, m->got_fifo[from]);
    else m->got_fifo[from]++;
    return;
  }
  if (svc != VSX_SVC_TOTAL && svc != VSX_SVC_SAFE) { tc_fail(m, "member %u: cast delivered with service %u", m->rank, (unsigned)svc); return; }
  if (h.seq != m->got_ord[from]) {
    tc_fail(m, "member %u: total/safe #%u from %u, expected #%u (duplicate, gap or reordering)", m->rank, h.seq, from, m->got_ord[from]);
    return;
  }
  m->got_ord[from]++;
  uint64_t k = m->got_total + m->got_safe;
  if (svc == VSX_SVC_SAFE) m->got_safe++;
  else m->got_total++;
  check_order(m, from, h.seq, svc, k);
  check_stability(m, from, h.seq, svc, k);
}

static void on_flow(void *user, vsx_endpoint_t *ep, int blocked) {
  tc_member_t *m = user;
  (void)ep;
  m->blocked = blocked;
  if (blocked) m->flow_blocks++;
  else m->flow_unblocks++;
}

/* ---- the group ------------------------------------------------------------------ */

static const uint64_t *stat_ptr(vsx_layer_ctx_t *c, const char *name) {
  for (uint32_t i = 0; i < c->ops->stat_cnt; i++)
    if (!strcmp(c->ops->stat_names[i], name)) return &c->stats[i];
  return NULL;
}

int tc_create(tc_group_t *g, const tc_opts_t *o) {
  memset(g, 0, sizeof *g);
  VSX_ASSERT(o->n > 0 && o->n <= TC_MAX);
  VSX_ASSERT(o->len_max <= TC_BODY_MAX);
  int err = vsx_layer_register(&tc_probe_ops);
  if (err && err != VSX_ERR_BUSY) return err;
  g->n = o->n;
  g->seed = o->sim.seed;
  g->len_min = o->len_max ? o->len_min : 16;
  g->len_max = o->len_max ? o->len_max : 64;
  g->ref_cap = o->ref_cap ? o->ref_cap : 1u << 20;
  g->ref = calloc(g->ref_cap, sizeof *g->ref);
  if (!g->ref) return VSX_ERR_NOMEM;
  vsx_rng_seed(&g->rng, o->sim.seed ^ 0x707a1);
  if ((err = vsx_sim_create(&o->sim, &g->sim))) { free(g->ref); g->ref = NULL; return err; }
  g->view.ltime = 1;
  g->view.member_cnt = o->n;
  for (uint32_t r = 0; r < o->n; r++) g->view.members[r] = 0x2000 + r;
  g->view.coord_eid = g->view.members[0];
  for (uint32_t r = 0; r < o->n; r++) {
    tc_member_t *m = &g->m[r];
    m->g = g;
    m->rank = r;
    char name[16];
    snprintf(name, sizeof name, "t%u", r);
    vsx_endpoint_opts_t eo = {
      .group = "total", .opt_name = name, .opt_stack = o->stack ? o->stack : TC_SPEC, .opt_params = o->params,
      .transport = &vsx_transport_sim, .opt_backend = g->sim, .eid = g->view.members[r], .view = &g->view,
      .buf_cnt = o->buf_cnt, .ev_cnt = o->ev_cnt, .seed = o->sim.seed * 131 + r,
      .opt_clock = vsx_sim_clock, .opt_clock_ctx = g->sim,
      .cbs = { .deliver = on_deliver, .flow = on_flow }, .user = m,
    };
    if ((err = vsx_endpoint_create(&eo, &m->ep))) { tc_destroy(g); return err; }
    vsx_stack_t *st = vsx_endpoint_stack(m->ep);
    vsx_layer_ctx_t *sq = vsx_stack_find(st, "seqbb"), *pr = vsx_stack_find(st, "tc_probe");
    if (!sq || !pr) { tc_destroy(g); return vsx_fail(VSX_ERR_INVAL, "total_check: the stack needs seqbb and tc_probe"); }
    m->pos_ready = stat_ptr(sq, "pos_ready");
    m->probe = pr->state;
    VSX_ASSERT(m->pos_ready);
  }
  return VSX_OK;
}

void tc_destroy(tc_group_t *g) {
  for (uint32_t r = 0; r < g->n; r++) { vsx_endpoint_destroy(g->m[r].ep); g->m[r].ep = NULL; }
  vsx_sim_destroy(g->sim);
  g->sim = NULL;
  free(g->ref);
  g->ref = NULL;
}

int tc_step(tc_group_t *g, uint64_t limit_ns) {
  uint64_t next = vsx_sim_next_arrival(g->sim);
  for (uint32_t r = 0; r < g->n; r++) {
    uint64_t a = vsx_endpoint_next_alarm(g->m[r].ep);
    if (a && a < next) next = a;
  }
  if (next > limit_ns) { vsx_sim_set_now(g->sim, limit_ns); return 0; }
  vsx_sim_set_now(g->sim, next);
  for (uint32_t r = 0; r < g->n; r++) vsx_endpoint_poll(g->m[r].ep);
  return 1;
}

void tc_run_for(tc_group_t *g, uint64_t ns) {
  uint64_t until = vsx_sim_now(g->sim) + ns;
  while (tc_step(g, until)) {}
}

int tc_cast(tc_group_t *g, uint32_t r, vsx_svc_t svc) {
  tc_member_t *m = &g->m[r];
  uint32_t seq = svc == VSX_SVC_FIFO ? m->sent_fifo : m->sent_ord;
  uint32_t span = g->len_max - g->len_min;
  uint32_t body = g->len_min + (span ? (uint32_t)vsx_rng_below(&g->rng, span + 1) : 0);
  uint8_t *b = tc_buf + sizeof(tc_hdr_t);
  uint64_t word = 0x9e3779b97f4a7c15ull * (seq + 1) ^ ((uint64_t)r << 56 | (uint64_t)svc << 48);
  for (uint32_t i = 0; i < body; i += 8) memcpy(b + i, &word, body - i < 8 ? body - i : 8);
  tc_hdr_t h = { htonl(r), htonl((uint32_t)svc), htonl(seq), htonl(body), htonl(vsx_crc32c(0, b, body)) };
  tc_trailer_t t = { .magic = htons(TC_MAGIC), .origin = (uint8_t)r, .svc = (uint8_t)svc, .seq = htonl(seq) };
  memcpy(tc_buf, &h, sizeof h);
  memcpy(b + body, &t, sizeof t);
  int err = vsx_endpoint_cast(m->ep, svc, tc_buf, sizeof h + body + sizeof t);
  if (!err) {
    if (svc == VSX_SVC_FIFO) m->sent_fifo++;
    else m->sent_ord++;
    if (svc == VSX_SVC_SAFE) m->sent_safe++;
  }
  return err;
}

int tc_all_delivered(const tc_group_t *g) {
  for (uint32_t r = 0; r < g->n; r++)
    for (uint32_t o = 0; o < g->n; o++)
      if (g->m[r].got_fifo[o] != g->m[o].sent_fifo || g->m[r].got_ord[o] != g->m[o].sent_ord) return 0;
  return 1;
}

int tc_traffic(tc_group_t *g, uint32_t casts, uint32_t pct_fifo, uint32_t pct_safe, uint64_t max_ns) {
  uint64_t until = vsx_sim_now(g->sim) + max_ns;
  for (;;) {
    int pending = 0;
    for (uint32_t r = 0; r < g->n; r++) {
      tc_member_t *m = &g->m[r];
      for (int k = 0; k < 8 && m->sent_fifo + m->sent_ord < casts && !vsx_endpoint_flow_blocked(m->ep); k++) {
        uint64_t dice = vsx_rng_below(&g->rng, 100);
        vsx_svc_t svc = dice < pct_fifo ? VSX_SVC_FIFO : dice < pct_fifo + pct_safe ? VSX_SVC_SAFE : VSX_SVC_TOTAL;
        int err = tc_cast(g, r, svc);
        if (err == VSX_ERR_AGAIN) break;
        if (err) { tc_fail(m, "member %u: cast refused: %s", r, vsx_last_error()); return 0; }
      }
      if (m->sent_fifo + m->sent_ord < casts) pending = 1;
    }
    if (!pending && tc_all_delivered(g)) return 1;
    if (!tc_step(g, until) && vsx_sim_now(g->sim) >= until) return !pending && tc_all_delivered(g);
  }
}

uint64_t tc_errors(const tc_group_t *g, char *first, size_t cap) {
  uint64_t e = 0;
  if (cap) first[0] = 0;
  for (uint32_t r = 0; r < g->n; r++) {
    if (g->m[r].errors && !e && cap) snprintf(first, cap, "%s", g->m[r].first_error);
    e += g->m[r].errors;
  }
  return e;
}

uint64_t tc_seqbb_stat(const tc_group_t *g, uint32_t r, const char *name) {
  return vsx_stack_stat(vsx_endpoint_stack(g->m[r].ep), "seqbb", name);
}

uint64_t tc_probe_violations(const tc_group_t *g) {
  uint64_t v = 0;
  for (uint32_t r = 0; r < g->n; r++) v += g->m[r].probe->violations;
  return v;
}
