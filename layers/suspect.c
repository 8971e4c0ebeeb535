/* suspect.c - failure detection: heartbeats, timeouts, shared suspicions
   and leave announcements (Ensemble's Suspect and Slander).

   Header (4 bytes, every cast; sends pass untouched): mbr_hdr_t
     kind u8   DATA (a cast of the layers above) or PING
   PING body (unreliable cast every sweep): suspects u64, leavers u64
     (bit r: rank r of this view).

   Provides: VSX_EV_SUSPECT going up whenever what it knows grows:
             u64a = ranks suspected, u64b = ranks that announced they
             leave.  Both only grow within a view (a view change starts
             from scratch in a new stack).
   Requires: datagrams below.  Place it low (just above bundle/bottom):
             every datagram of this view from a member, whatever layer
             sent it, is a sign of life.

   A member is suspected when nothing came from it for timeout_ms (its
   first grace_ms in the view are free: members install a view at
   slightly different times).  Suspicions are shared: each PING carries
   everything its sender suspects, and receivers adopt it, so the
   coordinator learns of failures it did not see itself, and a member
   learns that others suspect it (it is then on its way out).  Dn FAIL
   adds the flush's failed ranks; Dn LEAVE marks me as leaving; Dn CLOSE
   (the view has ended) stops pings and detection.

   Parameters: sweep_ms (ping period, default 100), timeout_ms (default
   500: a crash is suspected within 0.6 s), grace_ms (default timeout). */
#include "vsx/layer.h"
#include "mbr.h"

enum { KIND_PING = 2 };
#define PING_SZ 16

enum { ST_PINGS_SENT, ST_PINGS_RECV, ST_SUSPECTED, ST_ADOPTED, ST_MALFORMED, ST_NO_EVENT, ST_CNT };
static const char *const stat_names[ST_CNT] = { "pings_sent", "pings_recv", "suspected", "adopted", "malformed", "no_event" };

typedef struct suspect {
  uint64_t sweep_ns, timeout_ns;
  uint64_t all;                      /* ranks of the view                 */
  uint64_t suspects, leavers;        /* what I know; only grows           */
  uint64_t told_suspects, told_leavers; /* what went up last               */
  int closed;                        /* Dn CLOSE: the view has ended      */
  uint64_t heard_ns[VSX_MEMBERS_MAX]; /* last sign of life per rank        */
} suspect_t;

static void suspect_dump(vsx_layer_ctx_t *ctx, FILE *out) {
  suspect_t *s = ctx->state;
  fprintf(out, "    suspects %llx leavers %llx%s\n", (unsigned long long)s->suspects, (unsigned long long)s->leavers,
          s->closed ? " closed" : "");
}

static int suspect_init(vsx_layer_ctx_t *ctx) {
  suspect_t *s = ctx->state;
  s->sweep_ns = vsx_param_u64(ctx, "sweep_ms", 100) * 1000000ull;
  s->timeout_ns = vsx_param_u64(ctx, "timeout_ms", 500) * 1000000ull;
  uint64_t grace_ns = vsx_param_u64(ctx, "grace_ms", s->timeout_ns / 1000000ull) * 1000000ull;
  if (!s->sweep_ns) return vsx_fail(VSX_ERR_INVAL, "suspect: sweep_ms must be > 0");
  if (s->timeout_ns < 2 * s->sweep_ns)
    return vsx_fail(VSX_ERR_INVAL, "suspect: timeout_ms=%llu must be at least two sweeps (sweep_ms=%llu)",
                    (unsigned long long)(s->timeout_ns / 1000000), (unsigned long long)(s->sweep_ns / 1000000));
  s->all = mbr_all(ctx->member_cnt);
  uint64_t now = vsx_now(ctx);
  for (uint32_t r = 0; r < ctx->member_cnt; r++) s->heard_ns[r] = now + grace_ns;
  /* Stagger the first ping so members do not ping in lockstep. */
  vsx_timer_set(ctx, now + 1 + vsx_rng_below(ctx->rng, s->sweep_ns));
  return VSX_OK;
}

/* report passes up what grew since the last report. */
static void report(vsx_layer_ctx_t *ctx) {
  suspect_t *s = ctx->state;
  if (s->suspects == s->told_suspects && s->leavers == s->told_leavers) return;
  vsx_event_t *ev = vsx_ev_alloc(ctx, VSX_EV_SUSPECT);
  if (!ev) { ctx->stats[ST_NO_EVENT]++; vsx_timer_soon(ctx, vsx_now(ctx) + s->sweep_ns / 4 + 1); return; }
  ev->u64a = s->suspects;
  ev->u64b = s->leavers;
  s->told_suspects = s->suspects;
  s->told_leavers = s->leavers;
  vsx_pass_up(ctx, ev);
}

static void send_ping(vsx_layer_ctx_t *ctx) {
  suspect_t *s = ctx->state;
  if (s->closed || ctx->member_cnt < 2) return;
  uint8_t body[PING_SZ];
  mbr_put64(body, s->suspects);
  mbr_put64(body + 8, s->leavers);
  vsx_event_t *ev = mbr_msg(ctx, VSX_EV_CAST, -1, KIND_PING, 0, body, sizeof body);
  if (!ev) { ctx->stats[ST_NO_EVENT]++; return; } /* the next sweep pings */
  ev->flags = VSX_EVF_UNREL;
  ctx->stats[ST_PINGS_SENT]++;
  vsx_pass_dn(ctx, ev);
}

/* UP CAST/SEND: any datagram is a sign of life; a PING also carries its
   sender's suspicions, which are adopted. */
static void suspect_up(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  suspect_t *s = ctx->state;
  uint32_t r = (uint32_t)ev->peer;
  if (r >= ctx->member_cnt) { ctx->stats[ST_MALFORMED]++; vsx_ev_free(ctx, ev); return; }
  if (!s->closed) s->heard_ns[r] = vsx_now(ctx);
  if (ev->type == VSX_EV_SEND) { vsx_pass_up(ctx, ev); return; }
  mbr_hdr_t h;
  if (vsx_hdr_pop(ev, &h, sizeof h)) goto malformed;
  switch (h.kind) {
  case MBR_DATA: /* DATA: a cast of the layers above */
    vsx_pass_up(ctx, ev);
    return;
  case KIND_PING: { /* PING: adopt its suspicions and leavers */
    uint8_t body[PING_SZ];
    if (vsx_iovl_pop(&ev->iovl, body, sizeof body)) goto malformed;
    uint64_t sus = mbr_get64(body) & s->all, lv = mbr_get64(body + 8) & s->all;
    ctx->stats[ST_PINGS_RECV]++;
    vsx_ev_free(ctx, ev);
    if (s->closed) return;
    if (sus & ~s->suspects) ctx->stats[ST_ADOPTED]++;
    s->suspects |= sus;
    s->leavers |= lv;
    report(ctx);
    return;
  }
  }
malformed:
  ctx->stats[ST_MALFORMED]++;
  vsx_ev_free(ctx, ev);
}

/* DN CAST: tag it DATA.  Sends pass untouched. */
static void suspect_dn(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  if (ev->type == VSX_EV_SEND) { vsx_pass_dn(ctx, ev); return; }
  if (!mbr_push_data(ctx, ev)) { ctx->stats[ST_NO_EVENT]++; vsx_ev_free(ctx, ev); return; }
  vsx_pass_dn(ctx, ev);
}

/* DN FAIL: the failed are suspects too (and everyone hears it).  DN LEAVE:
   announce it at once.  DN CLOSE: the view is over.  All pass on. */
static void suspect_dnnm(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  suspect_t *s = ctx->state;
  switch (ev->type) {
  case VSX_EV_FAIL: /* FAIL: adopt */
    s->suspects |= ev->u64a & s->all;
    report(ctx);
    break;
  case VSX_EV_LEAVE: /* LEAVE: I am leaving; say so now and every sweep */
    s->leavers |= 1ull << ctx->rank;
    send_ping(ctx);
    report(ctx);
    break;
  case VSX_EV_CLOSE: /* CLOSE: no more pings, no more suspicions */
    s->closed = 1;
    break;
  }
  vsx_pass_dn(ctx, ev);
}

/* TIMER: suspect the silent, share what I know, ping. */
static void suspect_timer(vsx_layer_ctx_t *ctx, uint64_t now) {
  suspect_t *s = ctx->state;
  if (s->closed) return;
  for (uint32_t r = 0; r < ctx->member_cnt; r++) {
    if (r == ctx->rank || mbr_has(s->suspects, r)) continue;
    if (now > s->heard_ns[r] + s->timeout_ns) {
      s->suspects |= 1ull << r;
      ctx->stats[ST_SUSPECTED]++;
      vsx_log(1, "suspect: rank %u of %u suspects rank %u (silent %llu ms)", ctx->rank, ctx->member_cnt, r,
              (unsigned long long)((now - s->heard_ns[r]) / 1000000));
    }
  }
  report(ctx);
  send_ping(ctx);
  vsx_timer_set(ctx, now + s->sweep_ns);
}

const vsx_layer_ops_t vsx_layer_suspect = {
  .name = "suspect", .purpose = "failure detection: heartbeats, timeouts, shared suspicions",
  .state_sz = sizeof(suspect_t), .needs_below = VSX_CAP_DATAGRAM,
  .stat_names = stat_names, .stat_cnt = ST_CNT,
  .init = suspect_init, .up = suspect_up, .dn = suspect_dn, .dnnm = suspect_dnnm, .timer = suspect_timer,
  .dump = suspect_dump,
};
