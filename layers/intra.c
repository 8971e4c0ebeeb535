/* intra.c - view changes within a partition: coordinator election,
   failures and leaves, composing the next view and installing it
   (Ensemble's Elect, Intra, Leave and the coordinator's part of Top).

   Header (4 bytes, every send; casts pass untouched): mbr_hdr_t
     kind u8   DATA (a send of the layers above) or VIEW
     cnt  u16  VIEW: members of the view that follows
   VIEW body: the next view (mbr.h wire form), sent reliably by the
   coordinator to every survivor of the flush.

   Provides: VSX_EV_VIEW going up to the owner (install x.view: build a
             new stack for it) and VSX_EV_EXIT (this member is out: it
             left); the merge steps inter asks for (PREPARE, MERGE,
             VIEW down) with their answers going up.
   Requires: the flush (vsync) below it, suspicions (suspect) below that.

   Election: the coordinator is the lowest rank neither failed, suspected
   nor leaving (all only grow in a view, so coordinatorship only moves
   up, Ensemble's rule; a leaver coordinates only when everyone left is
   leaving).  The coordinator starts a flush when it learns of a
   failure or a leave (or inter asks, for a merge), restarts it when it
   learns of more, and when the flush is complete composes the next view:
   the survivors minus the leavers, in rank order, then any mergers;
   ltime one more than the largest involved.  It sends VIEW to every
   survivor (leavers learn from it that they are out) and installs it
   itself.  A member installs a VIEW only from the coordinator whose flush
   it completed (SYNCED), and only if the view is newer.  A member that
   learns that a flush failed it, or that someone suspects it, is on its
   way out: it installs a view of its own, alone, at once.

   Parameters: xfer=1 (the owner has state-transfer callbacks: mark
   members that need the state in each view), leave_ms (how long a
   leaving member waits for the view without it, default 2000). */
#include "vsx/layer.h"
#include "mbr.h"

enum { KIND_VIEW = 2 };
enum { S_NORMAL, S_FLUSHING, S_PREPARED, S_CLOSED };
enum { P_FAIL, P_REQUEST, P_ACCEPT };

enum { ST_VIEWS_SENT, ST_VIEWS_RECV, ST_REFUSED, ST_FLUSHES, ST_EXCLUDED, ST_MERGES_IN, ST_MALFORMED, ST_NO_EVENT, ST_CNT };
static const char *const stat_names[ST_CNT] = { "views_sent", "views_recv", "views_refused", "flushes",
                                                "excluded", "mergers_taken", "malformed", "no_event" };

#define REPLIES_MAX 8

typedef struct intra {
  uint64_t all;
  uint64_t failed, suspects, leavers;
  int32_t synced_with;      /* the coordinator whose flush I completed, -1 */
  int state, purpose;
  uint64_t flush_f;         /* failed set asked of vsync                    */
  int flush_down;           /* a Dn FLUSH is still to go                   */
  uint64_t surv, needs;     /* from FLUSH_OK                                */
  int leaving;
  uint64_t leave_ns, leave_deadline;
  int xfer;
  /* mergers taken into my next view (acceptor side) */
  uint64_t m_eid[VSX_MEMBERS_MAX];
  uint32_t m_cnt;
  uint64_t m_ltime;
  /* pending outputs (retried when memory is short) */
  vsx_view_t next;          /* the view to send and install                 */
  uint64_t view_todo;       /* ranks still owed the VIEW message           */
  int install;              /* Up VIEW (or EXIT) still to go               */
  int exit_reason;          /* 0, or the EXIT to pass instead of a view    */
  int flushed;              /* the install ends a flush I took part in     */
  int prepare_reply;        /* 0 none, 1 done, 2 refused                   */
  struct { uint64_t coord; int ok; } reply[REPLIES_MAX]; /* MERGE answers */
  uint32_t reply_cnt;
} intra_t;

static void intra_dump(vsx_layer_ctx_t *ctx, FILE *out) {
  intra_t *s = ctx->state;
  fprintf(out, "    state %d purpose %d failed %llx suspects %llx leavers %llx synced %d mergers %u\n", s->state,
          s->purpose, (unsigned long long)s->failed, (unsigned long long)s->suspects, (unsigned long long)s->leavers,
          s->synced_with, s->m_cnt);
}

static int intra_init(vsx_layer_ctx_t *ctx) {
  intra_t *s = ctx->state;
  s->all = mbr_all(ctx->member_cnt);
  s->synced_with = -1;
  s->xfer = (int)vsx_param_u64(ctx, "xfer", 0);
  s->leave_ns = vsx_param_u64(ctx, "leave_ms", 2000) * 1000000ull;
  return VSX_OK;
}

/* am_coord: the coordinator is the lowest rank neither failed, suspected
   nor leaving (a leaver never composes the next view: that view's id
   names its first member, and only that member may create views named
   after it, or two different views could share an id); if everyone
   left is leaving, the lowest of them. */
static int coord_rank(const intra_t *s) {
  uint64_t ok = s->all & ~(s->failed | s->suspects);
  return mbr_lowest(ok & ~s->leavers) >= 0 ? mbr_lowest(ok & ~s->leavers) : mbr_lowest(ok);
}

static int am_coord(const intra_t *s, uint32_t rank) { return coord_rank(s) == (int)rank; }

/* ---- outputs --------------------------------------------------------------------- */

static int pass_new(vsx_layer_ctx_t *ctx, uint16_t type, int up, uint64_t a, uint64_t b, const vsx_view_t *opt_view) {
  vsx_event_t *ev = vsx_ev_alloc(ctx, type);
  if (!ev) return 0;
  ev->u64a = a;
  ev->u64b = b;
  if (opt_view) ev->x.view = *opt_view;
  if (up) vsx_pass_up(ctx, ev);
  else vsx_pass_dn(ctx, ev);
  return 1;
}

/* pump passes on everything still owed, in order: VIEW messages before
   the install (the install closes this stack). */
static void pump(vsx_layer_ctx_t *ctx) {
  intra_t *s = ctx->state;
  int ok = 1;
  if (ok && s->flush_down) {
    ok = pass_new(ctx, VSX_EV_FLUSH, 0, s->flush_f, s->leavers & s->all, NULL);
    if (ok) s->flush_down = 0;
  }
  while (ok && s->view_todo) {
    uint32_t r = (uint32_t)mbr_lowest(s->view_todo);
    uint8_t body[MBR_BODY_MAX];
    uint32_t len = mbr_view_put(body, &s->next);
    vsx_event_t *ev = mbr_msg(ctx, VSX_EV_SEND, (int32_t)r, KIND_VIEW, (uint16_t)s->next.member_cnt, body, len);
    if (!(ok = ev != NULL)) break;
    ctx->stats[ST_VIEWS_SENT]++;
    vsx_pass_dn(ctx, ev);
    s->view_todo &= ~(1ull << r);
  }
  if (ok && s->install) {
    if (s->exit_reason) ok = pass_new(ctx, VSX_EV_EXIT, 1, (uint64_t)s->exit_reason, 0, NULL);
    else ok = pass_new(ctx, VSX_EV_VIEW, 1, 0, (uint64_t)s->flushed, &s->next);
    if (ok) s->install = 0;
  }
  if (ok && s->prepare_reply) {
    vsx_view_t list = { .ltime = ctx->view->ltime };
    for (uint32_t r = 0; r < ctx->member_cnt; r++)
      if (mbr_has(s->surv, r) && !mbr_has(s->leavers, r)) list.members[list.member_cnt++] = ctx->view->members[r];
    list.coord_eid = list.member_cnt ? list.members[0] : ctx->eid;
    ok = pass_new(ctx, VSX_EV_PREPARE, 1, s->prepare_reply == 1, 0, s->prepare_reply == 1 ? &list : NULL);
    if (ok) s->prepare_reply = 0;
  }
  while (ok && s->reply_cnt) {
    ok = pass_new(ctx, VSX_EV_MERGE, 1, (uint64_t)s->reply[0].ok, s->reply[0].coord, NULL);
    if (!ok) break;
    memmove(&s->reply[0], &s->reply[1], (--s->reply_cnt) * sizeof s->reply[0]);
  }
  if (!ok) {
    ctx->stats[ST_NO_EVENT]++;
    vsx_timer_soon(ctx, vsx_now(ctx) + 1000000ull);
  }
}

/* install ends this view here: VIEW to the survivors listed in to, then
   up to the owner (or EXIT when I am not in it). */
static void install(vsx_layer_ctx_t *ctx, const vsx_view_t *v, uint64_t to) {
  intra_t *s = ctx->state;
  VSX_ASSERT(v->member_cnt >= 1);
  VSX_ASSERT(v->ltime > ctx->view->ltime);
  s->next = *v;
  s->view_todo = to & ~(1ull << ctx->rank);
  s->state = S_CLOSED;
  s->install = 1;
  s->exit_reason = mbr_view_find(v, ctx->eid) < 0 ? VSX_EXIT_LEFT : 0;
  s->flushed = 1;
  vsx_log(1, "intra: %llx installs view %llu.%llx of %u members", (unsigned long long)ctx->eid,
          (unsigned long long)v->ltime, (unsigned long long)v->coord_eid, v->member_cnt);
}

/* exclude: I am out of this view (failed by a flush, or suspected): a
   view of my own, alone, now; or the end if I was leaving anyway. */
static void exclude(vsx_layer_ctx_t *ctx) {
  intra_t *s = ctx->state;
  if (s->state == S_CLOSED) return;
  ctx->stats[ST_EXCLUDED]++;
  if (s->leaving) {
    s->state = S_CLOSED;
    s->install = 1;
    s->exit_reason = VSX_EXIT_LEFT;
    return;
  }
  vsx_view_t v = { .ltime = ctx->view->ltime + 1, .coord_eid = ctx->eid, .member_cnt = 1 };
  v.members[0] = ctx->eid;
  install(ctx, &v, 0);
  s->flushed = 0; /* no flush: this stack may still deliver; the owner drops it */
}

/* compose builds the next view from the flush's survivors (and mergers). */
static void compose(vsx_layer_ctx_t *ctx) {
  intra_t *s = ctx->state;
  vsx_view_t v;
  memset(&v, 0, sizeof v);
  uint64_t keep = s->surv & ~s->leavers, needs = 0;
  /* The creator of a view is its first member, always: a view id names
     its creator, which makes ids unique.  A coordinator that started
     leaving during its flush so stays in this view, and leaves in the
     next one (the owner goes on leaving there). */
  if (keep || s->m_cnt) keep |= 1ull << ctx->rank;
  for (uint32_t r = 0; r < ctx->member_cnt; r++) {
    if (!mbr_has(keep, r)) continue;
    if (mbr_has(s->needs, r)) needs |= 1ull << v.member_cnt;
    v.members[v.member_cnt++] = ctx->view->members[r];
  }
  for (uint32_t i = 0; i < s->m_cnt; i++) {
    needs |= 1ull << v.member_cnt;
    v.members[v.member_cnt++] = s->m_eid[i];
  }
  if (!v.member_cnt) {
    /* Everyone leaves, me last: the others learn it from a view that
       holds only me, which nobody installs (I exit). */
    v.members[v.member_cnt++] = ctx->eid;
    v.ltime = ctx->view->ltime + 1;
    v.coord_eid = ctx->eid;
    install(ctx, &v, s->surv);
    s->exit_reason = VSX_EXIT_LEFT;
    return;
  }
  v.ltime = (s->m_ltime > ctx->view->ltime ? s->m_ltime : ctx->view->ltime) + 1;
  v.coord_eid = v.members[0];
  VSX_ASSERT(v.coord_eid == ctx->eid); /* lower ranks all failed, suspected or leaving */
  /* The state comes from the first member that has it.  If none has it
     (every member that did failed), the first member's becomes the
     state: one state, rather than as many as members. */
  if (needs == mbr_all(v.member_cnt)) needs &= ~1ull;
  v.xfer_mask = s->xfer ? needs : 0;
  install(ctx, &v, s->surv);
}

static void start_flush(vsx_layer_ctx_t *ctx, int purpose) {
  intra_t *s = ctx->state;
  s->state = S_FLUSHING;
  s->purpose = purpose;
  s->flush_f = (s->failed | s->suspects) & s->all & ~(1ull << ctx->rank);
  s->flush_down = 1;
  ctx->stats[ST_FLUSHES]++;
}

/* maybe_change: the coordinator's rule, run whenever what it knows grows. */
static void maybe_change(vsx_layer_ctx_t *ctx) {
  intra_t *s = ctx->state;
  if (s->state != S_NORMAL && s->state != S_FLUSHING) return;
  if (!am_coord(s, ctx->rank)) return;
  uint64_t bad = (s->failed | s->suspects) & s->all & ~(1ull << ctx->rank);
  if (s->state == S_NORMAL) {
    if (bad || (s->leavers & s->all)) start_flush(ctx, P_FAIL);
  } else if (bad & ~(s->flush_f | s->failed)) {
    s->flush_f |= bad; /* restart with what we learnt */
    s->flush_down = 1;
  } /* a new leaver needs no restart: it takes part in the flush, and
       compose leaves every leaver known by then out of the view */
}

/* on_view: VIEW from rank c: install it if it ends the flush I completed. */
static void on_view(vsx_layer_ctx_t *ctx, uint32_t c, const uint8_t *b, uint32_t len) {
  intra_t *s = ctx->state;
  vsx_view_t v;
  if (!mbr_view_get(b, len, &v)) { ctx->stats[ST_MALFORMED]++; return; }
  ctx->stats[ST_VIEWS_RECV]++;
  int in = mbr_view_find(&v, ctx->eid) >= 0;
  if (s->state == S_CLOSED || mbr_has(s->failed, c) || s->synced_with != (int32_t)c || v.ltime <= ctx->view->ltime ||
      (!in && !s->leaving)) {
    ctx->stats[ST_REFUSED]++;
    vsx_log(1, "intra: %llx refuses view %llu from rank %u (state %d, synced with %d)", (unsigned long long)ctx->eid,
            (unsigned long long)v.ltime, c, s->state, s->synced_with);
    return;
  }
  install(ctx, &v, 0);
}

/* UP SEND: VIEW from a coordinator; DATA passes.  Casts pass untouched. */
static void intra_up(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  if (ev->type == VSX_EV_CAST) { vsx_pass_up(ctx, ev); return; }
  mbr_hdr_t h;
  uint32_t r = (uint32_t)ev->peer;
  if (r >= ctx->member_cnt || vsx_hdr_pop(ev, &h, sizeof h)) { ctx->stats[ST_MALFORMED]++; vsx_ev_free(ctx, ev); return; }
  if (h.kind == MBR_DATA) { vsx_pass_up(ctx, ev); return; } /* DATA: for the layers above */
  if (h.kind != KIND_VIEW) { ctx->stats[ST_MALFORMED]++; vsx_ev_free(ctx, ev); return; }
  uint8_t body[MBR_BODY_MAX]; /* VIEW: the next view */
  uint32_t len = (uint32_t)vsx_iovl_gather(&ev->iovl, 0, body, sizeof body);
  vsx_ev_free(ctx, ev);
  on_view(ctx, r, body, len);
  pump(ctx);
}

/* DN SEND: tag it DATA.  Casts pass untouched. */
static void intra_dn(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  if (ev->type == VSX_EV_CAST) { vsx_pass_dn(ctx, ev); return; }
  if (!mbr_push_data(ctx, ev)) { ctx->stats[ST_NO_EVENT]++; vsx_ev_free(ctx, ev); return; }
  vsx_pass_dn(ctx, ev);
}

/* on_flush_ok: the coordinator's flush is complete. */
static void on_flush_ok(vsx_layer_ctx_t *ctx, uint64_t surv, uint64_t needs) {
  intra_t *s = ctx->state;
  if (s->state != S_FLUSHING || !mbr_has(surv, ctx->rank)) return;
  if (surv & (s->failed | s->suspects)) return; /* a restart is on its way */
  s->surv = surv;
  s->needs = needs;
  if (s->purpose == P_REQUEST) {
    s->state = S_PREPARED;
    s->prepare_reply = 1;
    return;
  }
  compose(ctx);
}

/* UP SUSPECT / FLUSH / SYNCED / FLUSH_OK: what intra learns from below. */
static void intra_upnm(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  intra_t *s = ctx->state;
  switch (ev->type) {
  case VSX_EV_SUSPECT: /* SUSPECT: suspicions and leaves grow */
    s->suspects |= ev->u64a & s->all;
    s->leavers |= ev->u64b & s->all;
    if (mbr_has(s->suspects, ctx->rank)) exclude(ctx); /* others will exclude me */
    else maybe_change(ctx);
    break;
  case VSX_EV_FLUSH: /* FLUSH: I answer a flush; its failed set */
    s->failed |= ev->u64b & s->all;
    s->synced_with = -1;
    if (mbr_has(s->failed, ctx->rank)) exclude(ctx);
    else maybe_change(ctx);
    break;
  case VSX_EV_SYNCED: /* SYNCED: I delivered what that flush agreed on */
    s->synced_with = (int32_t)ev->u64a;
    break;
  case VSX_EV_FLUSH_OK: /* FLUSH_OK: compose (or report prepared) */
    on_flush_ok(ctx, ev->u64a, ev->u64b);
    break;
  default:
    vsx_pass_up(ctx, ev);
    return;
  }
  vsx_ev_free(ctx, ev);
  pump(ctx);
}

/* on_merge: inter asks me to take these mergers into my next view. */
static void on_merge(vsx_layer_ctx_t *ctx, const vsx_view_t *m) {
  intra_t *s = ctx->state;
  int ok = (s->state == S_NORMAL || (s->state == S_FLUSHING && s->purpose != P_REQUEST)) && am_coord(s, ctx->rank) &&
           !s->leaving && m->member_cnt >= 1 && ctx->member_cnt + s->m_cnt + m->member_cnt <= VSX_MEMBERS_MAX;
  for (uint32_t i = 0; ok && i < m->member_cnt; i++) {
    ok = mbr_view_find(ctx->view, m->members[i]) < 0;
    for (uint32_t j = 0; ok && j < s->m_cnt; j++) ok = s->m_eid[j] != m->members[i];
  }
  if (s->reply_cnt < REPLIES_MAX) {
    s->reply[s->reply_cnt].coord = m->coord_eid;
    s->reply[s->reply_cnt++].ok = ok;
  }
  if (!ok) return;
  for (uint32_t i = 0; i < m->member_cnt; i++) s->m_eid[s->m_cnt++] = m->members[i];
  if (m->ltime > s->m_ltime) s->m_ltime = m->ltime;
  ctx->stats[ST_MERGES_IN] += m->member_cnt;
  if (s->state == S_NORMAL) start_flush(ctx, P_ACCEPT);
  else s->purpose = P_ACCEPT;
}

/* on_merge_end: inter ends my merge request: the granted view, or none
   (then a view of my own survivors). */
static void on_merge_end(vsx_layer_ctx_t *ctx, int granted, const vsx_view_t *v) {
  intra_t *s = ctx->state;
  if (s->state != S_PREPARED) return;
  int ok = granted && v->ltime > ctx->view->ltime;
  for (uint32_t r = 0; ok && r < ctx->member_cnt; r++)
    if (mbr_has(s->surv, r) && !mbr_has(s->leavers, r)) ok = mbr_view_find(v, ctx->view->members[r]) >= 0;
  if (ok) install(ctx, v, s->surv);
  else compose(ctx);
}

/* DN LEAVE (owner), PREPARE / MERGE / VIEW (inter), CLOSE (owner). */
static void intra_dnnm(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  intra_t *s = ctx->state;
  switch (ev->type) {
  case VSX_EV_LEAVE: /* LEAVE: announce (suspect), let the coordinator act */
    if (s->leaving) break;
    s->leaving = 1;
    s->leavers |= 1ull << ctx->rank;
    s->leave_deadline = vsx_now(ctx) + s->leave_ns;
    vsx_timer_soon(ctx, s->leave_deadline);
    if (ctx->member_cnt == 1 && s->state != S_CLOSED) { /* alone: nobody to tell */
      s->state = S_CLOSED;
      s->install = 1;
      s->exit_reason = VSX_EXIT_LEFT;
    } else {
      maybe_change(ctx);
    }
    vsx_pass_dn(ctx, ev);
    pump(ctx);
    return;
  case VSX_EV_PREPARE: /* PREPARE: flush for my merge request, if I can */
    if (s->state == S_NORMAL && am_coord(s, ctx->rank) && !s->leaving && !s->leavers &&
        !((s->failed | s->suspects) & s->all))
      start_flush(ctx, P_REQUEST);
    else
      s->prepare_reply = 2;
    break;
  case VSX_EV_MERGE: /* MERGE: mergers for my next view */
    on_merge(ctx, &ev->x.view);
    break;
  case VSX_EV_VIEW: /* VIEW: my merge request's outcome */
    on_merge_end(ctx, ev->u64a == 1, &ev->x.view);
    break;
  case VSX_EV_CLOSE: /* CLOSE: the owner moved on */
    s->state = S_CLOSED;
    vsx_pass_dn(ctx, ev);
    pump(ctx);
    return;
  default:
    vsx_pass_dn(ctx, ev);
    return;
  }
  vsx_ev_free(ctx, ev);
  pump(ctx);
}

/* TIMER: retries; a leave that nobody answered ends anyway. */
static void intra_timer(vsx_layer_ctx_t *ctx, uint64_t now) {
  intra_t *s = ctx->state;
  if (s->leaving && s->state != S_CLOSED && now >= s->leave_deadline) {
    s->state = S_CLOSED;
    s->install = 1;
    s->exit_reason = VSX_EXIT_LEAVE_TIMEOUT;
  } else if (s->leaving && s->state != S_CLOSED) {
    vsx_timer_soon(ctx, s->leave_deadline);
  }
  pump(ctx);
}

const vsx_layer_ops_t vsx_layer_intra = {
  .name = "intra", .purpose = "view changes within a partition: election, failures, leaves, installation",
  .state_sz = sizeof(intra_t), .needs_below = VSX_CAP_RELIABLE_SEND,
  .stat_names = stat_names, .stat_cnt = ST_CNT,
  .init = intra_init, .up = intra_up, .dn = intra_dn, .upnm = intra_upnm, .dnnm = intra_dnnm,
  .timer = intra_timer, .dump = intra_dump,
};
