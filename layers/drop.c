/* drop.c - test layer: injects loss and partitions on the receive side.

   No header.  Parameters (spec or ctl): loss=P (probability in [0,1] that
   a received datagram is dropped), cut=R,R,... (ranks whose datagrams are
   all dropped: one side of a partition), heal (clear the cut).  Randomness
   comes from the stack's seeded PRNG, so a run replays exactly.

   Provides: nothing.  Requires: datagrams below; place it right above
   bottom to hit every layer's traffic. */
#include "vsx/layer.h"
#include <stdlib.h>
#include <string.h>

enum { ST_PASSED, ST_LOST, ST_CUT, ST_CNT };
static const char *const stat_names[ST_CNT] = { "passed", "lost", "cut" };

typedef struct drop {
  double loss;
  uint64_t cut; /* bit r: drop everything from rank r */
} drop_t;

/* apply parses one "k=v" or "heal" command. */
static int apply(vsx_layer_ctx_t *ctx, const char *cmd) {
  drop_t *s = ctx->state;
  if (!strcmp(cmd, "heal")) { s->cut = 0; return VSX_OK; }
  if (!strncmp(cmd, "loss=", 5)) {
    double p = strtod(cmd + 5, NULL);
    if (p < 0 || p > 1) return vsx_fail(VSX_ERR_INVAL, "drop: loss=%s outside [0,1]", cmd + 5);
    s->loss = p;
    return VSX_OK;
  }
  if (!strncmp(cmd, "cut=", 4)) {
    uint64_t cut = 0;
    for (const char *p = cmd + 4; *p;) {
      char *end;
      unsigned long r = strtoul(p, &end, 10);
      if (end == p || r >= VSX_MEMBERS_MAX) return vsx_fail(VSX_ERR_INVAL, "drop: bad rank list '%s'", cmd + 4);
      cut |= 1ull << r;
      p = *end == ',' ? end + 1 : end;
      if (*end && *end != ',') return vsx_fail(VSX_ERR_INVAL, "drop: bad rank list '%s'", cmd + 4);
    }
    s->cut = cut;
    return VSX_OK;
  }
  return vsx_fail(VSX_ERR_INVAL, "drop: unknown command '%s' (use loss=P, cut=R,R or heal)", cmd);
}

static int drop_init(vsx_layer_ctx_t *ctx) {
  char buf[256];
  int err = VSX_OK;
  if (vsx_param_str(ctx, "loss", buf, sizeof buf)) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "loss=%s", buf);
    err = apply(ctx, cmd);
  }
  return err;
}

static int drop_ctl(vsx_layer_ctx_t *ctx, const char *cmd) { return apply(ctx, cmd); }

/* UP CAST/SEND: drop if cut off from the sender or unlucky. */
static void drop_up(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  drop_t *s = ctx->state;
  if (ev->peer >= 0 && ev->peer < VSX_MEMBERS_MAX && (s->cut >> ev->peer) & 1) {
    ctx->stats[ST_CUT]++;
    vsx_ev_free(ctx, ev);
    return;
  }
  if (s->loss > 0 && vsx_rng_uniform(ctx->rng) < s->loss) {
    ctx->stats[ST_LOST]++;
    vsx_ev_free(ctx, ev);
    return;
  }
  ctx->stats[ST_PASSED]++;
  vsx_pass_up(ctx, ev);
}

const vsx_layer_ops_t vsx_layer_drop = {
  .name = "drop", .purpose = "test: receive-side loss and partition injection",
  .state_sz = sizeof(drop_t), .needs_below = VSX_CAP_DATAGRAM,
  .stat_names = stat_names, .stat_cnt = ST_CNT,
  .init = drop_init, .up = drop_up, .ctl = drop_ctl,
};
