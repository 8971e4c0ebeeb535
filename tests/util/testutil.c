/* testutil.c - the simulated group harness (see testutil.h). */
#include "testutil.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include "vsx/trace.h"

/* Checked payload: origin, kind, seqno, length, CRC-32C of the body,
   body.  The kind word's upper 24 bits carry the trace's seq (the
   sender's messages, casts and sends, from 1), so the header stays 20
   bytes: tests size messages to the byte around it. */
typedef struct tg_hdr { uint32_t origin, kind, seq, len, crc; } tg_hdr_t;
enum { KIND_CAST = 1, KIND_SEND = 2 };
_Static_assert(sizeof(tg_hdr_t) == 20, "tests size messages to the byte around this header");

static void fail(tg_member_t *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(tg_member_t *m, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (!m->errors++) vsnprintf(m->first_error, sizeof m->first_error, fmt, ap);
  va_end(ap);
}

static void on_deliver(void *user, vsx_endpoint_t *ep, uint32_t from, vsx_svc_t svc, const vsx_iovl_t *msg) {
  tg_member_t *m = user;
  (void)ep;
  uint8_t buf[1 << 16];
  static uint8_t big[8 << 20];
  size_t len = vsx_iovl_len(msg);
  uint8_t *p = len <= sizeof buf ? buf : big;
  if (len > sizeof big || len < sizeof(tg_hdr_t)) { fail(m, "member %u: message of bad length %u from %u", m->rank, (uint32_t)len, from); return; }
  vsx_iovl_gather(msg, 0, p, len);
  tg_hdr_t h;
  memcpy(&h, p, sizeof h);
  h.origin = ntohl(h.origin); h.kind = ntohl(h.kind); h.seq = ntohl(h.seq); h.len = ntohl(h.len); h.crc = ntohl(h.crc);
  uint32_t tseq = h.kind >> 8;
  h.kind &= 0xff;
  if (from < m->g->n && tseq)
    vsx_trace_deliver(vsx_endpoint_trace(m->ep), m->g->view.members[from], svc, tseq, len, vsx_crc32c(0, p, len));
  if (h.origin != from) { fail(m, "member %u: message claims origin %u but came from %u", m->rank, h.origin, from); return; }
  if (h.len != len - sizeof h) { fail(m, "member %u: length field %u != %u from %u", m->rank, h.len, (uint32_t)(len - sizeof h), from); return; }
  if (vsx_crc32c(0, p + sizeof h, h.len) != h.crc) { fail(m, "member %u: corrupted bytes in #%u from %u", m->rank, h.seq, from); return; }
  uint32_t *got = h.kind == KIND_CAST ? &m->casts_got[from] : &m->sends_got[from];
  if ((h.kind == KIND_CAST) != (svc != VSX_SVC_P2P)) { fail(m, "member %u: service mismatch for #%u from %u", m->rank, h.seq, from); return; }
  if (h.seq != *got) { fail(m, "member %u: got #%u from %u out of order / duplicate / after a gap", m->rank, h.seq, from); return; }
  (*got)++;
  m->bytes_got += len;
}

static void on_flow(void *user, vsx_endpoint_t *ep, int blocked) {
  tg_member_t *m = user;
  (void)ep;
  m->blocked_cb = blocked;
  if (blocked) m->flow_blocks++;
  else m->flow_unblocks++;
}

uint64_t tgroup_seed_from_env(uint64_t dflt) {
  const char *e = getenv("VSX_SEED");
  return e ? strtoull(e, NULL, 0) : dflt;
}

/* trace_dir_make: <VSX_TRACE_DIR>/group-<seed>-<n>, or "" without it. */
static void trace_dir_make(tgroup_t *g) {
  static unsigned made;
  const char *base = getenv("VSX_TRACE_DIR");
  g->trace_dir[0] = 0;
  if (!base || !*base) return;
  mkdir(base, 0777);
  snprintf(g->trace_dir, sizeof g->trace_dir, "%s/group-%llu-%u", base, (unsigned long long)g->seed, made++);
  if (mkdir(g->trace_dir, 0777) && errno != EEXIST) g->trace_dir[0] = 0;
}

int tgroup_create(tgroup_t *g, const tg_opts_t *o) {
  memset(g, 0, sizeof *g);
  VSX_ASSERT(o->n > 0 && o->n <= TG_MAX);
  g->n = o->n;
  g->seed = o->sim.seed;
  g->msg_len_min = o->msg_len_max ? o->msg_len_min : 16;
  g->msg_len_max = o->msg_len_max ? o->msg_len_max : 64;
  vsx_rng_seed(&g->rng, o->sim.seed ^ 0x5eed);
  trace_dir_make(g);
  int err = vsx_sim_create(&o->sim, &g->sim);
  if (err) return err;
  g->view.ltime = 1;
  g->view.member_cnt = o->n;
  for (uint32_t r = 0; r < o->n; r++) g->view.members[r] = 0x1000 + r;
  g->view.coord_eid = g->view.members[0];
  for (uint32_t r = 0; r < o->n; r++) {
    tg_member_t *m = &g->m[r];
    m->g = g;
    m->rank = r;
    char name[16];
    snprintf(name, sizeof name, "m%u", r);
    vsx_endpoint_opts_t eo = {
      .group = "test", .opt_name = name, .opt_stack = o->stack, .opt_params = o->params,
      .transport = &vsx_transport_sim, .opt_backend = g->sim, .eid = g->view.members[r], .view = &g->view,
      .buf_cnt = o->buf_cnt, .ev_cnt = o->ev_cnt, .seed = o->sim.seed * 131 + r,
      .opt_clock = vsx_sim_clock, .opt_clock_ctx = g->sim,
      .cbs = { .deliver = on_deliver, .flow = on_flow }, .user = m, .opt_trace_dir = g->trace_dir,
    };
    if ((err = vsx_endpoint_create(&eo, &m->ep))) { tgroup_destroy(g); return err; }
  }
  return VSX_OK;
}

void tgroup_destroy(tgroup_t *g) {
  for (uint32_t r = 0; r < g->n; r++) { vsx_endpoint_destroy(g->m[r].ep); g->m[r].ep = NULL; }
  vsx_sim_destroy(g->sim);
  g->sim = NULL;
}

int tgroup_step(tgroup_t *g, uint64_t limit_ns) {
  uint64_t next = vsx_sim_next_arrival(g->sim);
  for (uint32_t r = 0; r < g->n; r++) {
    uint64_t a = g->m[r].ep ? vsx_endpoint_next_alarm(g->m[r].ep) : 0;
    if (a && a < next) next = a;
  }
  if (next > limit_ns) { vsx_sim_set_now(g->sim, limit_ns); return 0; }
  vsx_sim_set_now(g->sim, next);
  for (uint32_t r = 0; r < g->n; r++)
    if (g->m[r].ep) vsx_endpoint_poll(g->m[r].ep);
  return 1;
}

void tgroup_run_for(tgroup_t *g, uint64_t ns) {
  uint64_t until = vsx_sim_now(g->sim) + ns;
  while (tgroup_step(g, until)) {}
}

/* submit builds message number seq of (r, kind, dst) once and retries
   the same bytes while flow control refuses it. */
static int submit(tgroup_t *g, uint32_t r, int kind, uint32_t dst) {
  static uint8_t buf[8 << 20];
  static uint32_t built_r = UINT32_MAX, built_kind, built_dst, built_seq, built_tseq, built_len;
  tg_member_t *m = &g->m[r];
  uint32_t seq = kind == KIND_CAST ? m->casts_sent : m->sends_sent[dst];
  if (built_r != r || built_kind != (uint32_t)kind || built_dst != dst || built_seq != seq || built_tseq != m->tseq + 1) {
    uint32_t span = g->msg_len_max - g->msg_len_min;
    uint32_t body = g->msg_len_min + (span ? (uint32_t)vsx_rng_below(&g->rng, span + 1) : 0);
    VSX_ASSERT(body + sizeof(tg_hdr_t) <= sizeof buf);
    uint64_t word = 0x9e3779b97f4a7c15ull * (seq + 1) ^ ((uint64_t)r << 56 | (uint64_t)kind << 48 | dst);
    for (uint32_t i = 0; i < body; i += 8) memcpy(buf + sizeof(tg_hdr_t) + i, &word, body - i < 8 ? body - i : 8);
    VSX_ASSERT(m->tseq + 1 < (1u << 24));
    tg_hdr_t h = { htonl(r), htonl((uint32_t)kind | (m->tseq + 1) << 8), htonl(seq), htonl(body),
                   htonl(vsx_crc32c(0, buf + sizeof(tg_hdr_t), body)) };
    memcpy(buf, &h, sizeof h);
    built_r = r; built_kind = (uint32_t)kind; built_dst = dst; built_seq = seq; built_tseq = m->tseq + 1;
    built_len = (uint32_t)sizeof h + body;
  }
  int err = kind == KIND_CAST ? vsx_endpoint_cast(m->ep, VSX_SVC_FIFO, buf, built_len)
                              : vsx_endpoint_send(m->ep, dst, buf, built_len);
  if (!err) {
    if (kind == KIND_CAST) m->casts_sent++;
    else m->sends_sent[dst]++;
    m->tseq++;
    vsx_trace_send(vsx_endpoint_trace(m->ep), kind == KIND_CAST ? VSX_SVC_FIFO : VSX_SVC_P2P, m->tseq, built_len,
                   vsx_crc32c(0, buf, built_len), kind == KIND_CAST ? 0 : g->view.members[dst]);
  }
  return err;
}

int tgroup_cast(tgroup_t *g, uint32_t r) { return submit(g, r, KIND_CAST, 0); }
int tgroup_send(tgroup_t *g, uint32_t r, uint32_t dst) { return submit(g, r, KIND_SEND, dst); }

int tgroup_all_delivered(const tgroup_t *g) {
  for (uint32_t r = 0; r < g->n; r++) {
    if (!g->m[r].ep) continue;
    for (uint32_t o = 0; o < g->n; o++) {
      if (!g->m[o].ep) continue;
      if (g->m[r].casts_got[o] != g->m[o].casts_sent) return 0;
      if (g->m[r].sends_got[o] != g->m[o].sends_sent[r]) return 0;
    }
  }
  return 1;
}

uint64_t tgroup_errors(const tgroup_t *g, char *first, size_t cap) {
  uint64_t e = 0;
  if (cap) first[0] = 0;
  for (uint32_t r = 0; r < g->n; r++) {
    if (g->m[r].errors && !e && cap) snprintf(first, cap, "%s", g->m[r].first_error);
    e += g->m[r].errors;
  }
  return e;
}

int tgroup_traffic(tgroup_t *g, uint32_t casts, uint32_t sends, uint64_t max_ns) {
  uint64_t until = vsx_sim_now(g->sim) + max_ns;
  for (;;) {
    int pending = 0;
    for (uint32_t r = 0; r < g->n; r++) {
      tg_member_t *m = &g->m[r];
      if (!m->ep) continue;
      if (vsx_endpoint_flow_blocked(m->ep)) { pending = 1; continue; }
      /* a burst per step, until flow control says wait */
      for (int k = 0; k < 8 && m->casts_sent < casts; k++) {
        int err = tgroup_cast(g, r);
        if (err == VSX_ERR_AGAIN) break;
        if (err) { fail(m, "member %u: cast refused: %s", r, vsx_last_error()); return 0; }
      }
      for (uint32_t d = 0; d < g->n; d++) {
        if (d == r || !g->m[d].ep) continue;
        int err = m->sends_sent[d] < sends ? tgroup_send(g, r, d) : VSX_OK;
        if (err && err != VSX_ERR_AGAIN) { fail(m, "member %u: send refused: %s", r, vsx_last_error()); return 0; }
        if (m->sends_sent[d] < sends) pending = 1;
      }
      if (m->casts_sent < casts) pending = 1;
    }
    if (!pending && tgroup_all_delivered(g)) return 1;
    if (!tgroup_step(g, until)) {
      if (!pending && tgroup_all_delivered(g)) return 1;
      if (vsx_sim_now(g->sim) >= until) return 0;
    }
  }
}
