/* inter.c - merging partitions: coordinators announce their views on the
   group's address, find each other, and merge into one view (Ensemble's
   Heal, Inter and Merge).

   No header on casts or sends (it never touches them).  Its messages are
   gossip (VSX_EV_GOSSIP: wire kind GOSSIP, outside any view), each a
   4-byte mbr_hdr_t (rsvd = 'I') and a body, network order:
     HEAL     ltime u64, coord u64, cnt u32, flags u32: my view's id, size
              and flags; cast to the group every heal_ms by each idle
              coordinator
     REQUEST  target ltime u64, target coord u64 (the view asked to take
              us), my view's cnt u32 and flags u32, then the survivors of
              my flush as a view (mbr.h wire form, my view's ltime)
     GRANTED  the merged view (wire form)
     DENIED   nothing
   Provides: merges.  Requires: intra below (PREPARE, MERGE, VIEW), and
             bottom's gossip.

   Who merges into whom: views are ordered by (primary, size, ltime,
   coordinator id); a coordinator that hears of a larger view asks to
   merge into it, never the other way round, so no two coordinators wait
   on each other.  The requester A first flushes its own group (PREPARE;
   its members block), then sends REQUEST to B, again every retry_ms.  B,
   if it is a coordinator that may take mergers, hands them to its intra
   (MERGE): B flushes its own group and installs a view of its survivors
   followed by A's, with ltime one more than both; as that view goes up
   through inter, B sends GRANTED(view) to A.  A forwards the view to its
   members (intra) and installs it.  B answers DENIED when it cannot (it
   is merging itself, the lists overlap, too many members); A then, or
   after timeout_ms without an answer, installs a view of its own
   survivors (a merge that fails leaves each side in a sound view).  A
   REQUEST whose members are all in B's current view is answered GRANTED
   with it (B's GRANTED was lost; A's retry reaches B's new stack).

   Parameters: heal_ms (default 500), retry_ms (100), timeout_ms (2000). */
#include "vsx/layer.h"
#include "mbr.h"

enum { KIND_HEAL = 2, KIND_REQUEST = 3, KIND_GRANTED = 4, KIND_DENIED = 5 };
#define TAG 'I'
#define ACC_MAX 8

enum { R_IDLE, R_PREPARING, R_WAITING, R_DONE };

enum { ST_HEALS_SENT, ST_HEALS_RECV, ST_REQUESTS, ST_GRANTED, ST_DENIED, ST_MERGED, ST_FAILED, ST_MALFORMED,
       ST_NO_EVENT, ST_CNT };
static const char *const stat_names[ST_CNT] = { "heals_sent", "heals_recv", "requests_sent", "granted_sent",
                                                "denied_sent", "merged", "merge_failed", "malformed", "no_event" };

typedef struct view_key { uint32_t primary, cnt; uint64_t ltime, coord; } view_key_t;

typedef struct acc {      /* a requester I handed to intra                 */
  uint64_t coord;
  uint32_t cnt;
  uint64_t members[VSX_MEMBERS_MAX];
} acc_t;

typedef struct inter {
  uint64_t heal_ns, retry_ns, timeout_ns;
  int busy;               /* a view change is under way here (BLOCK)       */
  int closed;             /* the view has ended (VIEW went up, or CLOSE)   */
  uint64_t heal_at;
  int r_state;            /* my own request                                */
  int r_denied;
  uint64_t r_target;      /* B's coordinator                               */
  uint64_t r_target_ltime;
  uint64_t r_deadline, r_send_at;
  vsx_view_t r_list;      /* my survivors, from intra's PREPARE            */
  acc_t acc[ACC_MAX];     /* requesters taken (or being taken)             */
  uint32_t acc_cnt;
} inter_t;

static void inter_dump(vsx_layer_ctx_t *ctx, FILE *out) {
  inter_t *s = ctx->state;
  fprintf(out, "    request %d target %llx, takes %u%s%s\n", s->r_state, (unsigned long long)s->r_target, s->acc_cnt,
          s->busy ? " busy" : "", s->closed ? " closed" : "");
}

static int inter_init(vsx_layer_ctx_t *ctx) {
  inter_t *s = ctx->state;
  s->heal_ns = vsx_param_u64(ctx, "heal_ms", 500) * 1000000ull;
  s->retry_ns = vsx_param_u64(ctx, "retry_ms", 100) * 1000000ull;
  s->timeout_ns = vsx_param_u64(ctx, "timeout_ms", 2000) * 1000000ull;
  if (!s->heal_ns || !s->retry_ns || s->timeout_ns < 2 * s->retry_ns)
    return vsx_fail(VSX_ERR_INVAL, "inter: heal_ms and retry_ms must be > 0 and timeout_ms at least two retries");
  uint64_t now = vsx_now(ctx);
  s->heal_at = now + 1 + vsx_rng_below(ctx->rng, s->heal_ns / 2 + 1); /* announce soon, staggered */
  vsx_timer_set(ctx, s->heal_at);
  return VSX_OK;
}

static view_key_t my_key(vsx_layer_ctx_t *ctx) {
  return (view_key_t){ .primary = (ctx->view->flags & VSX_VIEW_PRIMARY) != 0, .cnt = ctx->member_cnt,
                       .ltime = ctx->view->ltime, .coord = ctx->view->coord_eid };
}

/* key_less: a < b in the merge order. */
static int key_less(view_key_t a, view_key_t b) {
  if (a.primary != b.primary) return a.primary < b.primary;
  if (a.cnt != b.cnt) return a.cnt < b.cnt;
  if (a.ltime != b.ltime) return a.ltime < b.ltime;
  return a.coord < b.coord;
}

static int send_gossip(vsx_layer_ctx_t *ctx, uint64_t to, uint8_t kind, const void *body, uint32_t len) {
  vsx_event_t *ev = mbr_msg(ctx, VSX_EV_GOSSIP, -1, kind, 0, body, len);
  if (!ev) { ctx->stats[ST_NO_EVENT]++; return 0; }
  ((mbr_hdr_t *)vsx_iovec_ptr(vsx_iovl_at(&ev->iovl, 0)))->rsvd = TAG;
  ev->u64a = to;
  vsx_pass_dn(ctx, ev);
  return 1;
}

static void send_view(vsx_layer_ctx_t *ctx, uint64_t to, uint8_t kind, const vsx_view_t *v) {
  uint8_t body[MBR_BODY_MAX];
  uint32_t len = v ? mbr_view_put(body, v) : 0;
  if (send_gossip(ctx, to, kind, len ? body : NULL, len))
    ctx->stats[kind == KIND_GRANTED ? ST_GRANTED : ST_DENIED]++;
}

static void send_request(vsx_layer_ctx_t *ctx) {
  inter_t *s = ctx->state;
  uint8_t body[24 + MBR_BODY_MAX];
  mbr_put64(body, s->r_target_ltime);
  mbr_put64(body + 8, s->r_target);
  mbr_put32(body + 16, ctx->member_cnt);
  mbr_put32(body + 20, ctx->view->flags);
  uint32_t len = 24 + mbr_view_put(body + 24, &s->r_list);
  if (send_gossip(ctx, s->r_target, KIND_REQUEST, body, len)) ctx->stats[ST_REQUESTS]++;
  s->r_send_at = vsx_now(ctx) + s->retry_ns;
  vsx_timer_soon(ctx, s->r_send_at < s->r_deadline ? s->r_send_at : s->r_deadline);
}

/* end_request tells intra how my request ended. */
static void end_request(vsx_layer_ctx_t *ctx, int granted, const vsx_view_t *opt_v) {
  inter_t *s = ctx->state;
  vsx_event_t *ev = vsx_ev_alloc(ctx, VSX_EV_VIEW);
  if (!ev) { ctx->stats[ST_NO_EVENT]++; vsx_timer_soon(ctx, vsx_now(ctx) + 1000000ull); return; }
  ev->u64a = (uint64_t)granted;
  if (opt_v) ev->x.view = *opt_v;
  s->r_state = R_DONE;
  ctx->stats[granted ? ST_MERGED : ST_FAILED]++;
  vsx_pass_dn(ctx, ev);
}

/* on_heal: another partition's coordinator announces its view. */
static void on_heal(vsx_layer_ctx_t *ctx, uint64_t from, const uint8_t *b, uint32_t len) {
  inter_t *s = ctx->state;
  if (len < 24) { ctx->stats[ST_MALFORMED]++; return; }
  ctx->stats[ST_HEALS_RECV]++;
  view_key_t k = { .ltime = mbr_get64(b), .coord = mbr_get64(b + 8), .cnt = mbr_get32(b + 16),
                   .primary = (mbr_get32(b + 20) & VSX_VIEW_PRIMARY) != 0 };
  if (k.coord != from || !k.cnt || k.cnt > VSX_MEMBERS_MAX) { ctx->stats[ST_MALFORMED]++; return; }
  if (s->closed || s->busy || ctx->rank != 0 || s->r_state != R_IDLE || s->acc_cnt) return;
  if (mbr_view_find(ctx->view, from) >= 0) return; /* one of mine: failure detection deals with it */
  if (ctx->member_cnt + k.cnt > VSX_MEMBERS_MAX || !key_less(my_key(ctx), k)) return;
  vsx_event_t *ev = vsx_ev_alloc(ctx, VSX_EV_PREPARE);
  if (!ev) { ctx->stats[ST_NO_EVENT]++; return; } /* the next HEAL tries again */
  s->r_state = R_PREPARING;
  s->r_denied = 0;
  s->r_target = from;
  s->r_target_ltime = k.ltime;
  s->r_deadline = vsx_now(ctx) + s->timeout_ns;
  vsx_log(1, "inter: %llx (view %llu, %u members) asks to merge into %llx (view %llu, %u members)",
          (unsigned long long)ctx->eid, (unsigned long long)ctx->view->ltime, ctx->member_cnt,
          (unsigned long long)from, (unsigned long long)k.ltime, k.cnt);
  vsx_pass_dn(ctx, ev);
}

/* on_request: coordinator A asks to merge into my view. */
static void on_request(vsx_layer_ctx_t *ctx, uint64_t from, const uint8_t *b, uint32_t len) {
  inter_t *s = ctx->state;
  vsx_view_t a;
  if (len < 24 || !mbr_view_get(b + 24, len - 24, &a) || a.coord_eid != from) { ctx->stats[ST_MALFORMED]++; return; }
  if (s->closed || ctx->rank != 0) return; /* my next stack, or my coordinator, answers */
  int all_in = 1;
  for (uint32_t i = 0; i < a.member_cnt && all_in; i++) all_in = mbr_view_find(ctx->view, a.members[i]) >= 0;
  if (all_in) { send_view(ctx, from, KIND_GRANTED, ctx->view); return; } /* granted before; that answer was lost */
  for (uint32_t i = 0; i < s->acc_cnt; i++)
    if (s->acc[i].coord == from) return; /* a retry: being taken */
  view_key_t ka = { .ltime = a.ltime, .coord = from, .cnt = mbr_get32(b + 16),
                    .primary = (mbr_get32(b + 20) & VSX_VIEW_PRIMARY) != 0 };
  if (mbr_get64(b) != ctx->view->ltime || mbr_get64(b + 8) != ctx->eid || s->r_state != R_IDLE ||
      s->acc_cnt == ACC_MAX || !key_less(ka, my_key(ctx))) {
    send_view(ctx, from, KIND_DENIED, NULL);
    return;
  }
  vsx_event_t *ev = vsx_ev_alloc(ctx, VSX_EV_MERGE);
  if (!ev) { ctx->stats[ST_NO_EVENT]++; return; } /* A retries */
  acc_t *t = &s->acc[s->acc_cnt++];
  t->coord = from;
  t->cnt = a.member_cnt;
  memcpy(t->members, a.members, a.member_cnt * sizeof a.members[0]);
  ev->x.view = a;
  vsx_pass_dn(ctx, ev);
}

/* UP GOSSIP: HEAL, REQUEST, GRANTED, DENIED.  UP BLOCK: a view change
   starts.  UP PREPARE / MERGE: intra's answers.  UP VIEW: the view ends;
   answer the requesters taken.  Others pass. */
static void inter_upnm(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  inter_t *s = ctx->state;
  switch (ev->type) {
  case VSX_EV_GOSSIP: { /* GOSSIP: ours if tagged */
    mbr_hdr_t h;
    uint8_t body[24 + MBR_BODY_MAX];
    if (vsx_iovl_peek(&ev->iovl, &h, sizeof h) || h.rsvd != TAG) break;
    uint32_t len = (uint32_t)vsx_iovl_gather(&ev->iovl, sizeof h, body, sizeof body);
    uint64_t from = ev->u64a;
    vsx_ev_free(ctx, ev);
    vsx_view_t v;
    switch (h.kind) {
    case KIND_HEAL: on_heal(ctx, from, body, len); break;
    case KIND_REQUEST: on_request(ctx, from, body, len); break;
    case KIND_GRANTED: /* GRANTED: my merge is done; intra installs it */
      if (!mbr_view_get(body, len, &v)) { ctx->stats[ST_MALFORMED]++; break; }
      if (s->r_state == R_WAITING && from == s->r_target) end_request(ctx, 1, &v);
      break;
    case KIND_DENIED: /* DENIED: give up (once my flush is done) */
      if (from != s->r_target) break;
      if (s->r_state == R_WAITING) end_request(ctx, 0, NULL);
      else if (s->r_state == R_PREPARING) s->r_denied = 1;
      break;
    default: ctx->stats[ST_MALFORMED]++;
    }
    return;
  }
  case VSX_EV_BLOCK: /* BLOCK: busy until this view ends */
    s->busy = 1;
    break;
  case VSX_EV_PREPARE: /* PREPARE: my group is flushed (or intra refused) */
    if (s->r_state != R_PREPARING) { vsx_ev_free(ctx, ev); return; }
    if (!ev->u64a) { s->r_state = R_IDLE; vsx_ev_free(ctx, ev); return; }
    s->r_list = ev->x.view;
    vsx_ev_free(ctx, ev);
    if (s->r_denied || vsx_now(ctx) >= s->r_deadline || !s->r_list.member_cnt) { end_request(ctx, 0, NULL); return; }
    s->r_state = R_WAITING;
    send_request(ctx);
    return;
  case VSX_EV_MERGE: /* MERGE: intra's answer; a refusal is DENIED */
    for (uint32_t i = 0; i < s->acc_cnt; i++) {
      if (s->acc[i].coord != ev->u64b || ev->u64a) continue;
      send_view(ctx, s->acc[i].coord, KIND_DENIED, NULL);
      s->acc[i] = s->acc[--s->acc_cnt];
      break;
    }
    vsx_ev_free(ctx, ev);
    return;
  case VSX_EV_VIEW: /* VIEW: answer every requester taken */
    s->closed = 1;
    for (uint32_t i = 0; i < s->acc_cnt; i++) {
      int in = 1;
      for (uint32_t j = 0; j < s->acc[i].cnt && in; j++) in = mbr_view_find(&ev->x.view, s->acc[i].members[j]) >= 0;
      send_view(ctx, s->acc[i].coord, in ? KIND_GRANTED : KIND_DENIED, in ? &ev->x.view : NULL);
    }
    s->acc_cnt = 0;
    break;
  }
  vsx_pass_up(ctx, ev);
}

/* DN CLOSE: the view has ended.  Others pass. */
static void inter_dnnm(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  inter_t *s = ctx->state;
  if (ev->type == VSX_EV_CLOSE) s->closed = 1;
  vsx_pass_dn(ctx, ev);
}

/* TIMER: announce my view; repeat my request; give it up in time. */
static void inter_timer(vsx_layer_ctx_t *ctx, uint64_t now) {
  inter_t *s = ctx->state;
  if (s->closed) return;
  if (s->r_state == R_WAITING) {
    if (now >= s->r_deadline) end_request(ctx, 0, NULL);
    else if (now >= s->r_send_at) send_request(ctx);
    else vsx_timer_soon(ctx, s->r_send_at);
  }
  if (now >= s->heal_at) {
    if (ctx->rank == 0 && !s->busy && s->r_state == R_IDLE && !s->acc_cnt) {
      uint8_t body[24];
      mbr_put64(body, ctx->view->ltime);
      mbr_put64(body + 8, ctx->eid);
      mbr_put32(body + 16, ctx->member_cnt);
      mbr_put32(body + 20, ctx->view->flags);
      if (send_gossip(ctx, 0, KIND_HEAL, body, sizeof body)) ctx->stats[ST_HEALS_SENT]++;
    }
    s->heal_at = now + s->heal_ns / 2 + vsx_rng_below(ctx->rng, s->heal_ns + 1);
  }
  vsx_timer_soon(ctx, s->heal_at);
}

const vsx_layer_ops_t vsx_layer_inter = {
  .name = "inter", .purpose = "partition merge: view announcements, merge requests, grants",
  .state_sz = sizeof(inter_t), .needs_below = VSX_CAP_DATAGRAM,
  .stat_names = stat_names, .stat_cnt = ST_CNT,
  .init = inter_init, .upnm = inter_upnm, .dnnm = inter_dnnm, .timer = inter_timer, .dump = inter_dump,
};
