/* test_layers.c - each layer against a fake layer above and below.

   Goal: each layer keeps its own promise in isolation: bottom drops every
   kind of bad datagram into its named counter; mnak recovers lost casts
   (gaps by NAK, tails by the STABLE announcement) and drops duplicates;
   pt2pt retransmits until acknowledged; frag cuts and rebuilds large
   messages and rejects broken fragment streams; stable computes the
   column minimum and maximum of what members report; chk_fifo notices a
   reordering; drop drops what it is told to.
   Method: a few stacks "t_app:<layers>:t_link" joined by a tiny network
   in this file that the test controls datagram by datagram (drop, dup,
   swap), copying bytes between the stacks' own pools as a wire would. */
#include <check.h>
#include "check_main.h"
#include <stdlib.h>
#include <string.h>
#include "vsx/stack.h"
#include "vsx/wire.h"

#define N 3
#define QMAX 4096
#define KIND_BUNDLE_FOR_TEST 2 /* bundle.c's BUNDLE kind, as on the wire */

/* ---- fakes -------------------------------------------------------------- */

static void pass_dnnm_up(vsx_layer_ctx_t *ctx, vsx_event_t *ev) { vsx_pass_up(ctx, ev); }

/* t_link: the fake below: provides every lower capability; messages go to
   the test network (sink_dn), other events bounce up. */
static const vsx_layer_ops_t t_link = {
  .name = "t_link", .provides = VSX_CAP_DATAGRAM | VSX_CAP_RELIABLE_CAST | VSX_CAP_RELIABLE_SEND | VSX_CAP_CAST_UNITS,
  .dnnm = pass_dnnm_up,
};
/* t_app: the fake above: satisfies "stability above" and passes. */
static const vsx_layer_ops_t t_app = { .name = "t_app", .provides = VSX_CAP_STABILITY | VSX_CAP_APPL };

/* t_burst: each message going down becomes five copies in one stack run,
   so a layer below sees them queue up. */
static void burst_dn(vsx_layer_ctx_t *ctx, vsx_event_t *ev) {
  for (int i = 0; i < 4; i++) vsx_pass_dn(ctx, vsx_ev_clone(ctx, ev));
  vsx_pass_dn(ctx, ev);
}
static const vsx_layer_ops_t t_burst = { .name = "t_burst", .needs_below = VSX_CAP_DATAGRAM, .dn = burst_dn };

/* ---- the test network ------------------------------------------------------ */

typedef struct node {
  vsx_stack_t *st;
  vsx_bufpool_t *bp;
  vsx_evpool_t *evp;
  uint32_t rank;
  /* delivered messages: bytes and origin */
  int got_cnt;
  uint32_t got_from[QMAX];
  uint16_t got_type[QMAX];
  char got[QMAX][64];
  size_t got_len[QMAX];
  int stable_seen;
  uint64_t stable_lo[N], stable_hi[N];
} node_t;

typedef struct pkt { uint32_t from; uint16_t type; int32_t peer; size_t len; uint8_t bytes[2048]; } pkt_t;

static node_t nodes[N];
static pkt_t queue[QMAX];
static int q_head, q_tail;
static uint64_t now_ns = 1000000;
static vsx_view_t view = { .ltime = 1, .coord_eid = 100, .member_cnt = N, .members = { 100, 101, 102 } };

static uint64_t clock_fn(void *o) { (void)o; return now_ns; }

static void sink_up(void *o, vsx_event_t *ev) {
  node_t *n = o;
  if (ev->type == VSX_EV_STABLE) {
    n->stable_seen++;
    for (int r = 0; r < N; r++) { n->stable_lo[r] = ev->x.vec.lo[r]; n->stable_hi[r] = ev->x.vec.hi[r]; }
  } else if (n->got_cnt < QMAX) {
    n->got_from[n->got_cnt] = (uint32_t)ev->peer;
    n->got_type[n->got_cnt] = ev->type;
    n->got_len[n->got_cnt] = vsx_iovl_gather(&ev->iovl, 0, n->got[n->got_cnt], 64);
    n->got_cnt++;
  }
  vsx_evpool_free(n->evp, ev);
}

static void sink_dn(void *o, vsx_event_t *ev) {
  node_t *n = o;
  ck_assert_int_lt(q_tail, QMAX);
  pkt_t *p = &queue[q_tail++];
  p->from = n->rank;
  p->type = ev->type;
  p->peer = ev->peer;
  p->len = vsx_iovl_gather(&ev->iovl, 0, p->bytes, sizeof p->bytes);
  ck_assert_uint_eq(p->len, vsx_iovl_len(&ev->iovl));
  vsx_evpool_free(n->evp, ev);
}

/* inject_flags hands bytes to node `to` as if they came from `from`,
   with event flags a lower layer would have set; inject without. */
static void inject_flags(uint32_t to, uint32_t from, uint16_t type, uint16_t flags, const void *bytes, size_t len) {
  node_t *n = &nodes[to];
  vsx_event_t *ev = vsx_evpool_alloc(n->evp, type, 0);
  ck_assert_ptr_nonnull(ev);
  ck_assert_int_eq(vsx_iovl_from_bytes(n->bp, &ev->iovl, bytes, len, 0, 0), VSX_OK);
  ev->peer = (int32_t)from;
  ev->flags = flags;
  vsx_stack_up(n->st, ev);
}

static void inject(uint32_t to, uint32_t from, uint16_t type, const void *bytes, size_t len) {
  inject_flags(to, from, type, 0, bytes, len);
}

typedef int (*keep_fn)(int idx, const pkt_t *p, uint32_t to);
static int keep_all(int idx, const pkt_t *p, uint32_t to) { (void)idx; (void)p; (void)to; return 1; }

/* pump delivers queued datagrams (each cast to every other node) until
   the queue is empty, asking keep() about each copy. */
static void pump(keep_fn keep) {
  static int idx;
  while (q_head < q_tail) {
    pkt_t p = queue[q_head++];
    if (q_head == q_tail) q_head = q_tail = 0;
    for (uint32_t to = 0; to < N; to++) {
      if (to == p.from || (p.type == VSX_EV_SEND && (uint32_t)p.peer != to)) continue;
      if (keep(idx++, &p, to)) inject(to, p.from, p.type, p.bytes, p.len);
    }
  }
}

/* advance moves the clock and runs due alarms everywhere, pumping. */
static void advance(uint64_t ns, keep_fn keep) {
  uint64_t until = now_ns + ns;
  for (;;) {
    uint64_t next = until;
    for (int i = 0; i < N; i++) {
      uint64_t a = vsx_stack_next_alarm(nodes[i].st);
      if (a && a < next) next = a;
    }
    if (next > now_ns) now_ns = next;
    for (int i = 0; i < N; i++) vsx_stack_alarms(nodes[i].st);
    pump(keep);
    if (now_ns >= until) break;
  }
}

static void net_up(const char *spec, const char *params) {
  static int registered;
  if (!registered) { vsx_layer_register(&t_link); vsx_layer_register(&t_app); vsx_layer_register(&t_burst); registered = 1; }
  memset(nodes, 0, sizeof nodes);
  q_head = q_tail = 0;
  for (uint32_t i = 0; i < N; i++) {
    node_t *n = &nodes[i];
    n->rank = i;
    vsx_bufpool_opts_t o = { .buf_cnt = 1024, .buf_sz = 2048, .headroom = 256, .ext_cnt = 8, .ext_cap = 256 };
    ck_assert_int_eq(vsx_bufpool_create(&o, &n->bp), VSX_OK);
    ck_assert_int_eq(vsx_evpool_create(1024, 0, &n->evp), VSX_OK);
    vsx_stack_cfg_t c = { .spec = spec, .opt_params = params, .view = &view, .rank = i, .group_id = 9, .seed = 3 + i,
                          .pool = n->bp, .evpool = n->evp, .owner = n, .now = clock_fn, .sink_up = sink_up, .sink_dn = sink_dn };
    ck_assert_msg(vsx_stack_create(&c, &n->st) == VSX_OK, "%s", vsx_last_error());
  }
}

static void net_down(void) {
  for (int i = 0; i < N; i++) {
    vsx_stack_destroy(nodes[i].st);
    ck_assert_uint_eq(vsx_evpool_free_cnt(nodes[i].evp), 1024);
    ck_assert_uint_eq(vsx_bufpool_check(nodes[i].bp, stderr), 0);
    vsx_evpool_destroy(nodes[i].evp);
    vsx_bufpool_destroy(nodes[i].bp);
  }
}

/* send_msg injects an application message at node `from`'s top. */
static void send_msg(uint32_t from, uint16_t type, int32_t peer, const char *text) {
  node_t *n = &nodes[from];
  vsx_event_t *ev = vsx_evpool_alloc(n->evp, type, 1);
  ck_assert_ptr_nonnull(ev);
  ck_assert_int_eq(vsx_iovl_from_bytes(n->bp, &ev->iovl, text, strlen(text), 1000, 1), VSX_OK);
  ev->peer = peer;
  vsx_stack_dn(n->st, ev);
}

static uint64_t stat(int i, const char *layer, const char *name) { return vsx_stack_stat(nodes[i].st, layer, name); }

/* ---- bottom ----------------------------------------------------------------------- */

static void bottom_frame(uint8_t *buf, vsx_wire_hdr_t h) { vsx_wire_encode(buf, &h); }

START_TEST(test_layers_bottom_drops_bad_datagrams_by_reason) {
  net_up("t_app:bottom", NULL);
  vsx_stack_t *st = nodes[1].st;
  uint64_t inst = vsx_stack_layer(st, 1)->instance;
  const vsx_wire_hdr_t good = { VSX_WIRE_MAGIC, VSX_WIRE_VERSION, VSX_WIRE_CAST, 44, 9, 0, 100, 0 };
  uint8_t buf[44] = { 0 };
  memcpy(buf + 40, "data", 4);
  struct { const char *stat; vsx_wire_hdr_t h; size_t len; } cases[] = {
    { "drop_length", good, 20 },                                                            /* truncated */
    { "drop_magic", { 0x1234, VSX_WIRE_VERSION, VSX_WIRE_CAST, 44, 9, 0, 100, 0 }, 44 },    /* not ours */
    { "drop_version", { VSX_WIRE_MAGIC, 9, VSX_WIRE_CAST, 44, 9, 0, 100, 0 }, 44 },
    { "drop_length", { VSX_WIRE_MAGIC, VSX_WIRE_VERSION, VSX_WIRE_CAST, 45, 9, 0, 100, 0 }, 44 }, /* wrong length */
    { "drop_group", { VSX_WIRE_MAGIC, VSX_WIRE_VERSION, VSX_WIRE_CAST, 44, 8, 0, 100, 0 }, 44 },
    { "drop_stale", { VSX_WIRE_MAGIC, VSX_WIRE_VERSION, VSX_WIRE_CAST, 44, 9, 1, 100, 0 }, 44 },
    { "drop_sender", { VSX_WIRE_MAGIC, VSX_WIRE_VERSION, VSX_WIRE_CAST, 44, 9, 0, 555, 0 }, 44 },
    { "drop_not_mine", { VSX_WIRE_MAGIC, VSX_WIRE_VERSION, VSX_WIRE_SEND, 44, 9, 0, 100, 102 }, 44 },
    { "drop_own", { VSX_WIRE_MAGIC, VSX_WIRE_VERSION, VSX_WIRE_CAST, 44, 9, 0, 101, 0 }, 44 },
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    vsx_wire_hdr_t h = cases[k].h;
    if (strcmp(cases[k].stat, "drop_stale")) h.instance = inst;
    bottom_frame(buf, h);
    uint64_t before = stat(1, "bottom", cases[k].stat);
    inject(1, 0, VSX_EV_CAST, buf, cases[k].len);
    ck_assert_msg(stat(1, "bottom", cases[k].stat) == before + 1, "case %zu (%s) not counted", k, cases[k].stat);
  }
  ck_assert_int_eq(nodes[1].got_cnt, 0); /* nothing bad reached the layer above */
  vsx_wire_hdr_t h = good;
  h.instance = inst;
  bottom_frame(buf, h);
  inject(1, 0, VSX_EV_CAST, buf, 44);
  ck_assert_int_eq(nodes[1].got_cnt, 1);
  ck_assert_uint_eq(nodes[1].got_from[0], 0);
  ck_assert_mem_eq(nodes[1].got[0], "data", 4);
  net_down();
}
END_TEST

/* ---- mnak ------------------------------------------------------------------------------- */

/* Loses every third copy from node 0, except the last message: a lost
   tail is invisible without stable's announcement (next test). */
static int drop_every_third_from_0(int idx, const pkt_t *p, uint32_t to) {
  (void)to;
  return p->from != 0 || idx % 3 != 1 || !memcmp(p->bytes + p->len - 3, "c59", 3);
}

START_TEST(test_layers_mnak_recovers_gaps_by_nak) {
  net_up("t_app:mnak:t_link", NULL);
  char text[16];
  for (int i = 0; i < 60; i++) { snprintf(text, sizeof text, "c%02d", i); send_msg(0, VSX_EV_CAST, -1, text); }
  advance(200000000ull, drop_every_third_from_0);
  advance(200000000ull, keep_all);
  for (int to = 1; to < N; to++) {
    ck_assert_int_eq(nodes[to].got_cnt, 60);
    for (int i = 0; i < 60; i++) { snprintf(text, sizeof text, "c%02d", i); ck_assert_str_eq(nodes[to].got[i], text); }
  }
  ck_assert_int_eq(nodes[0].got_cnt, 60); /* local delivery of its own casts */
  ck_assert_uint_gt(stat(1, "mnak", "naks_sent"), 0);
  ck_assert_uint_gt(stat(0, "mnak", "retransmitted"), 0);
  net_down();
}
END_TEST

static int drop_all_from_0(int idx, const pkt_t *p, uint32_t to) { (void)idx; (void)to; return p->from != 0; }

START_TEST(test_layers_mnak_recovers_tail_from_stable_announcement) {
  net_up("t_app:mnak:t_link", NULL);
  send_msg(0, VSX_EV_CAST, -1, "lost-tail");
  pump(drop_all_from_0);
  ck_assert_int_eq(nodes[1].got_cnt, 0);
  /* Stable (above) announces that origin 0 has cast one message. */
  vsx_event_t *ev = vsx_evpool_alloc(nodes[1].evp, VSX_EV_STABLE, 0);
  memset(&ev->x.vec, 0, sizeof ev->x.vec);
  ev->x.vec.hi[0] = 1;
  vsx_stack_dn(nodes[1].st, ev);
  advance(100000000ull, keep_all);
  ck_assert_int_eq(nodes[1].got_cnt, 1);
  ck_assert_str_eq(nodes[1].got[0], "lost-tail");
  net_down();
}
END_TEST

static int dup_everything(int idx, const pkt_t *p, uint32_t to) {
  (void)idx;
  if (to == 1) inject(to, p->from, p->type, p->bytes, p->len); /* an extra copy first */
  return 1;
}

START_TEST(test_layers_mnak_drops_duplicates_and_blocks_when_full) {
  net_up("t_app:mnak(window=8):t_link", NULL);
  for (int i = 0; i < 5; i++) send_msg(0, VSX_EV_CAST, -1, "d");
  pump(dup_everything);
  ck_assert_int_eq(nodes[1].got_cnt, 5);
  ck_assert_uint_eq(stat(1, "mnak", "duplicates"), 5);
  /* nothing is ever stable (no stable layer): the window fills and parks */
  for (int i = 0; i < 5; i++) send_msg(0, VSX_EV_CAST, -1, "e");
  ck_assert(vsx_stack_flow_blocked(nodes[0].st));
  ck_assert_uint_eq(stat(0, "mnak", "casts"), 8);
  vsx_event_t *ev = vsx_evpool_alloc(nodes[0].evp, VSX_EV_STABLE, 0);
  memset(&ev->x.vec, 0, sizeof ev->x.vec);
  ev->x.vec.lo[0] = ev->x.vec.hi[0] = 8; /* everyone has the first 8 */
  vsx_stack_dn(nodes[0].st, ev);
  ck_assert(!vsx_stack_flow_blocked(nodes[0].st));
  ck_assert_uint_eq(stat(0, "mnak", "casts"), 10);
  pump(keep_all);
  ck_assert_int_eq(nodes[2].got_cnt, 10);
  net_down();
}
END_TEST

/* ---- pt2pt ---------------------------------------------------------------------------------- */

static int drop_first_two_sends(int idx, const pkt_t *p, uint32_t to) {
  static int seen;
  (void)idx; (void)to;
  if (p->type == VSX_EV_SEND && p->from == 0 && seen < 2) { seen++; return 0; }
  return 1;
}

START_TEST(test_layers_pt2pt_retransmits_until_acknowledged) {
  net_up("t_app:pt2pt:t_link", NULL);
  send_msg(0, VSX_EV_SEND, 2, "one");
  send_msg(0, VSX_EV_SEND, 2, "two");
  send_msg(0, VSX_EV_SEND, 2, "three");
  send_msg(0, VSX_EV_SEND, 0, "self");
  pump(drop_first_two_sends);
  ck_assert_int_eq(nodes[2].got_cnt, 0); /* "three" arrived first and waits */
  ck_assert_int_eq(nodes[0].got_cnt, 1); /* sends to oneself are delivered at once */
  advance(100000000ull, keep_all);
  ck_assert_int_eq(nodes[2].got_cnt, 3);
  ck_assert_str_eq(nodes[2].got[0], "one");
  ck_assert_str_eq(nodes[2].got[2], "three");
  ck_assert_int_eq(nodes[1].got_cnt, 0);
  ck_assert_uint_gt(stat(0, "pt2pt", "retransmitted"), 0);
  ck_assert_uint_gt(stat(0, "pt2pt", "acks_recv"), 0);
  advance(100000000ull, keep_all);
  uint64_t r = stat(0, "pt2pt", "retransmitted");
  advance(500000000ull, keep_all);
  ck_assert_uint_eq(stat(0, "pt2pt", "retransmitted"), r); /* acknowledged: no more retransmission */
  net_down();
}
END_TEST

/* A receiver that hears nothing (cut off, paused): the sender
   retransmits only the oldest `burst` sends per sweep, and sweeps less
   and less often (rto, 2 rto, 4 rto, then 8 rto); when the receiver is
   back, one sweep delivers the head, its ACK resets the pace and the
   rest follows. */
static int drop_sends_to_2(int idx, const pkt_t *p, uint32_t to) { (void)idx; return !(p->type == VSX_EV_SEND && to == 2); }

START_TEST(test_layers_pt2pt_backs_off_and_bounds_bursts) {
  net_up("t_app:pt2pt:t_link", "pt2pt.rto_ms=10,pt2pt.burst=4");
  char text[16];
  for (int i = 0; i < 20; i++) {
    snprintf(text, sizeof text, "m%02d", i);
    send_msg(0, VSX_EV_SEND, 2, text);
  }
  pump(drop_sends_to_2);
  uint64_t sweeps[6];
  for (int k = 0; k < 6; k++) { /* one sample per 10 ms of silence */
    advance(10000000ull, drop_sends_to_2);
    sweeps[k] = stat(0, "pt2pt", "retransmitted");
  }
  /* Sweeps at 10 ms (4 sends), 30 ms (+20 ms, 4), then 70 ms (+40 ms):
     never more than `burst` at a time, and further and further apart. */
  ck_assert_uint_eq(sweeps[0], 4);
  ck_assert_uint_eq(sweeps[1], 4);
  ck_assert_uint_eq(sweeps[2], 8);
  ck_assert_uint_eq(sweeps[5], 8);
  advance(200000000ull, keep_all); /* back: the head goes, the ACK resets the pace, the rest follows */
  ck_assert_int_eq(nodes[2].got_cnt, 20);
  for (int i = 0; i < 20; i++) {
    snprintf(text, sizeof text, "m%02d", i);
    ck_assert_str_eq(nodes[2].got[i], text);
  }
  net_down();
}
END_TEST

/* ---- frag ------------------------------------------------------------------------------------- */

START_TEST(test_layers_frag_cuts_and_rebuilds) {
  net_up("t_app:frag:t_link", NULL);
  static char big[5000];
  for (size_t i = 0; i < sizeof big - 1; i++) big[i] = (char)('a' + i % 26);
  node_t *n = &nodes[0];
  vsx_event_t *ev = vsx_evpool_alloc(n->evp, VSX_EV_CAST, 1);
  ck_assert_int_eq(vsx_iovl_from_bytes(n->bp, &ev->iovl, big, sizeof big, 1000, 1), VSX_OK);
  vsx_stack_dn(n->st, ev);
  ck_assert_int_eq(q_tail, 5); /* 1000-byte pieces packed into 1336-byte fragments: one piece each */
  /* an unreliable message from the same origin arriving between the
     fragments passes without disturbing the reassembly */
  pkt_t frag0 = queue[q_head++];
  inject(1, 0, frag0.type, frag0.bytes, frag0.len);
  inject(2, 0, frag0.type, frag0.bytes, frag0.len);
  uint8_t unrel[12] = { 1, 0, 0, 0, 0, 0, 0, 0, 'u', 'n', 'r', 0 };
  inject_flags(1, 0, VSX_EV_CAST, VSX_EVF_UNREL, unrel, sizeof unrel);
  ck_assert_int_eq(nodes[1].got_cnt, 1);
  ck_assert_str_eq(nodes[1].got[0], "unr");
  pump(keep_all);
  ck_assert_int_eq(nodes[1].got_cnt, 2);
  ck_assert_uint_eq(stat(1, "frag", "reassembled"), 1);
  ck_assert_mem_eq(nodes[1].got[1], big, 64);
  ck_assert_int_eq(nodes[2].got_cnt, 1);
  ck_assert_mem_eq(nodes[2].got[0], big, 64);
  ck_assert_uint_eq(stat(0, "frag", "fragments"), 5);
  /* a MID without FIRST is counted and dropped */
  uint8_t mid[12] = { 3, 0, 0, 0, 0, 0, 0, 0, 'x', 'y', 'z', 'w' };
  inject(2, 0, VSX_EV_CAST, mid, sizeof mid);
  ck_assert_uint_eq(stat(2, "frag", "malformed"), 1);
  ck_assert_int_eq(nodes[2].got_cnt, 1);
  net_down();
}
END_TEST

/* Reassembly that finds no iovec extension array free holds the
   fragment (and the rest of that origin's, in order) and retries; the
   message is delivered whole once an array is free, never dropped. */
START_TEST(test_layers_frag_holds_fragments_without_memory) {
  net_up("t_app:frag:t_link", NULL);
  static char big[5000];
  for (size_t i = 0; i < sizeof big - 1; i++) big[i] = (char)('A' + i % 26);
  /* take every extension array of node 2's pool: lists of 5 pieces */
  static vsx_iovl_t hog[16];
  int hogs = 0;
  for (; hogs < 16; hogs++) {
    vsx_iovl_init(&hog[hogs]);
    int err = 0;
    for (int k = 0; k < 5 && !err; k++) {
      vsx_iovec_t iov;
      ck_assert_int_eq(vsx_buf_alloc(nodes[2].bp, &iov), VSX_OK);
      if ((err = vsx_iovl_append_take(&hog[hogs], &iov))) vsx_iovec_unref(&iov);
    }
    if (err) { vsx_iovl_free(&hog[hogs]); break; }
  }
  ck_assert_int_gt(hogs, 0);
  ck_assert_int_lt(hogs, 16);
  send_msg(0, VSX_EV_CAST, -1, "before");
  node_t *n = &nodes[0];
  vsx_event_t *ev = vsx_evpool_alloc(n->evp, VSX_EV_CAST, 1);
  ck_assert_int_eq(vsx_iovl_from_bytes(n->bp, &ev->iovl, big, sizeof big, 1000, 1), VSX_OK);
  vsx_stack_dn(n->st, ev);
  send_msg(0, VSX_EV_CAST, -1, "after");
  pump(keep_all);
  ck_assert_int_eq(nodes[1].got_cnt, 3); /* node 1 has arrays: all three */
  ck_assert_int_eq(nodes[2].got_cnt, 1); /* node 2: "before", then the big one waits, and "after" behind it */
  ck_assert_str_eq(nodes[2].got[0], "before");
  ck_assert_uint_gt(stat(2, "frag", "no_memory"), 0);
  advance(5000000ull, keep_all);
  ck_assert_int_eq(nodes[2].got_cnt, 1); /* still none free: still held, nothing dropped */
  for (int i = 0; i < hogs; i++) vsx_iovl_free(&hog[i]);
  advance(5000000ull, keep_all);
  ck_assert_int_eq(nodes[2].got_cnt, 3);
  ck_assert_mem_eq(nodes[2].got[1], big, 64);
  ck_assert_str_eq(nodes[2].got[2], "after");
  ck_assert_uint_eq(stat(2, "frag", "reassembled"), 1);
  ck_assert_uint_eq(stat(2, "frag", "malformed"), 0);
  net_down();
}
END_TEST

/* ---- stable ----------------------------------------------------------------------------------- */

START_TEST(test_layers_stable_reports_min_and_max) {
  net_up("t_app:stable:t_link", "stable.sweep_ms=5");
  for (int i = 0; i < 4; i++) send_msg(0, VSX_EV_CAST, -1, "s");
  send_msg(1, VSX_EV_CAST, -1, "s");
  /* The fake link delivers casts, but there is no local delivery below
     stable here, so the senders never count their own: origin 0 is at 4
     at members 1 and 2 and at 0 at member 0. */
  advance(50000000ull, keep_all);
  ck_assert_int_gt(nodes[2].stable_seen, 0);
  ck_assert_uint_eq(nodes[2].stable_hi[0], 4);
  ck_assert_uint_eq(nodes[2].stable_lo[0], 0);
  ck_assert_uint_eq(nodes[2].stable_hi[1], 1);
  ck_assert_uint_gt(stat(1, "stable", "gossip_recv"), 0);
  net_down();
}
END_TEST

/* Under load a member gossips its row as soon as `eager` new casts
   arrived (and the queue drained), not a sweep later: with a 1-second
   sweep, 8 casts with eager=4 are reported at once. */
START_TEST(test_layers_stable_gossips_early_under_load) {
  net_up("t_app:stable:t_link", "stable.sweep_ms=1000,stable.eager=4,stable.eager_us=0");
  advance(1000000ull, keep_all);
  uint64_t before = stat(1, "stable", "gossip_sent");
  for (int i = 0; i < 3; i++) send_msg(0, VSX_EV_CAST, -1, "s");
  pump(keep_all);
  ck_assert_uint_eq(stat(1, "stable", "gossip_sent"), before); /* 3 < eager: waits for the sweep */
  for (int i = 0; i < 5; i++) send_msg(0, VSX_EV_CAST, -1, "s");
  pump(keep_all);
  ck_assert_uint_gt(stat(1, "stable", "gossip_sent"), before); /* 8 >= eager: told at once */
  ck_assert_uint_gt(stat(0, "stable", "gossip_recv"), 0);
  net_down();
}
END_TEST

/* ---- bundle ------------------------------------------------------------------------------------ */

START_TEST(test_layers_bundle_packs_queued_messages_only) {
  net_up("t_app:t_burst:bundle:t_link", NULL);
  send_msg(0, VSX_EV_CAST, -1, "small");
  ck_assert_int_eq(q_tail, 1); /* five queued casts left as one datagram */
  pump(keep_all);
  ck_assert_int_eq(nodes[1].got_cnt, 5);
  ck_assert_str_eq(nodes[1].got[4], "small");
  ck_assert_uint_eq(stat(0, "bundle", "bundled_msgs"), 5);
  ck_assert_uint_eq(stat(1, "bundle", "unbundled_msgs"), 5);
  /* sends to different members never share a datagram */
  send_msg(0, VSX_EV_SEND, 1, "to-one");
  send_msg(0, VSX_EV_SEND, 2, "to-two");
  ck_assert_int_eq(q_tail, 2);
  pump(keep_all);
  ck_assert_int_eq(nodes[1].got_cnt, 10);
  ck_assert_int_eq(nodes[2].got_cnt, 10);
  /* a bundle whose lengths run past its end is dropped whole */
  uint8_t bad[] = { KIND_BUNDLE_FOR_TEST, 2, 0, 0, 0, 3, 'a', 'b', 'c', 0, 9, 'x' };
  inject(1, 0, VSX_EV_CAST, bad, sizeof bad);
  ck_assert_uint_eq(stat(1, "bundle", "malformed"), 1);
  ck_assert_int_eq(nodes[1].got_cnt, 10);
  net_down();
}
END_TEST

START_TEST(test_layers_bundle_adds_no_latency_alone) {
  net_up("t_app:bundle:t_link", NULL);
  send_msg(0, VSX_EV_CAST, -1, "alone");
  ck_assert_int_eq(q_tail, 1); /* left before vsx_stack_dn returned */
  ck_assert_uint_eq(stat(0, "bundle", "singles"), 1);
  ck_assert_uint_eq(stat(0, "bundle", "bundles"), 0);
  pump(keep_all);
  ck_assert_str_eq(nodes[2].got[0], "alone");
  net_down();
}
END_TEST

/* While the owner batches (an endpoint in an event loop), messages the
   application casts one call after another share datagrams, and all of
   them leave at the owner's flush, before it transmits. */
START_TEST(test_layers_bundle_packs_across_calls_while_batching) {
  net_up("t_app:bundle:t_link", NULL);
  vsx_stack_set_batching(nodes[0].st, 1);
  send_msg(0, VSX_EV_CAST, -1, "one");
  send_msg(0, VSX_EV_CAST, -1, "two");
  send_msg(0, VSX_EV_CAST, -1, "three");
  ck_assert_int_eq(q_tail, 0); /* held: the owner has not flushed */
  vsx_stack_flush(nodes[0].st);
  ck_assert_int_eq(q_tail, 1); /* one datagram */
  ck_assert_uint_eq(stat(0, "bundle", "bundled_msgs"), 3);
  pump(keep_all);
  ck_assert_int_eq(nodes[2].got_cnt, 3);
  ck_assert_str_eq(nodes[2].got[0], "one");
  ck_assert_str_eq(nodes[2].got[2], "three");
  send_msg(0, VSX_EV_CAST, -1, "four");
  vsx_stack_set_batching(nodes[0].st, 0); /* turning it off flushes */
  ck_assert_int_eq(q_tail, 1);
  pump(keep_all);
  ck_assert_str_eq(nodes[2].got[3], "four");
  send_msg(0, VSX_EV_CAST, -1, "five"); /* not batching: at once */
  ck_assert_int_eq(q_tail, 1);
  pump(keep_all);
  net_down();
}
END_TEST

/* ---- chk_fifo and drop ----------------------------------------------------------------------- */

START_TEST(test_layers_chk_fifo_notices_reordering) {
  net_up("t_app:chk_fifo:t_link", NULL);
  send_msg(0, VSX_EV_CAST, -1, "a");
  send_msg(0, VSX_EV_CAST, -1, "b");
  pkt_t first = queue[0];
  queue[0] = queue[1];
  queue[1] = first;
  pump(keep_all);
  ck_assert_uint_eq(stat(1, "chk_fifo", "checked"), 2);
  ck_assert_uint_ge(stat(1, "chk_fifo", "violations"), 1);
  send_msg(2, VSX_EV_CAST, -1, "c");
  pump(keep_all);
  ck_assert_uint_eq(stat(0, "chk_fifo", "violations"), 0);
  net_down();
}
END_TEST

START_TEST(test_layers_drop_loses_and_cuts) {
  net_up("t_app:drop(loss=1):t_link", NULL);
  send_msg(0, VSX_EV_CAST, -1, "x");
  pump(keep_all);
  ck_assert_int_eq(nodes[1].got_cnt, 0);
  ck_assert_uint_eq(stat(1, "drop", "lost"), 1);
  ck_assert_int_eq(vsx_stack_ctl(nodes[1].st, "drop", "loss=0"), VSX_OK);
  ck_assert_int_eq(vsx_stack_ctl(nodes[1].st, "drop", "cut=0"), VSX_OK);
  ck_assert_int_eq(vsx_stack_ctl(nodes[1].st, "drop", "cut=0,x"), VSX_ERR_INVAL);
  ck_assert_int_eq(vsx_stack_ctl(nodes[1].st, "drop", "cut=0"), VSX_OK);
  send_msg(0, VSX_EV_CAST, -1, "y");
  send_msg(2, VSX_EV_CAST, -1, "z");
  pump(keep_all);
  ck_assert_int_eq(nodes[1].got_cnt, 1);
  ck_assert_str_eq(nodes[1].got[0], "z");
  ck_assert_uint_eq(stat(1, "drop", "cut"), 1);
  ck_assert_int_eq(vsx_stack_ctl(nodes[1].st, "drop", "heal"), VSX_OK);
  net_down();
}
END_TEST

int main(void) {
  Suite *s = suite_create("layers");
  TCase *tc = tcase_create("layers");
  tcase_add_test(tc, test_layers_bottom_drops_bad_datagrams_by_reason);
  tcase_add_test(tc, test_layers_mnak_recovers_gaps_by_nak);
  tcase_add_test(tc, test_layers_mnak_recovers_tail_from_stable_announcement);
  tcase_add_test(tc, test_layers_mnak_drops_duplicates_and_blocks_when_full);
  tcase_add_test(tc, test_layers_pt2pt_retransmits_until_acknowledged);
  tcase_add_test(tc, test_layers_pt2pt_backs_off_and_bounds_bursts);
  tcase_add_test(tc, test_layers_frag_cuts_and_rebuilds);
  tcase_add_test(tc, test_layers_frag_holds_fragments_without_memory);
  tcase_add_test(tc, test_layers_stable_reports_min_and_max);
  tcase_add_test(tc, test_layers_stable_gossips_early_under_load);
  tcase_add_test(tc, test_layers_bundle_packs_queued_messages_only);
  tcase_add_test(tc, test_layers_bundle_adds_no_latency_alone);
  tcase_add_test(tc, test_layers_bundle_packs_across_calls_while_batching);
  tcase_add_test(tc, test_layers_chk_fifo_notices_reordering);
  tcase_add_test(tc, test_layers_drop_loses_and_cuts);
  suite_add_tcase(s, tc);
  return vsx_check_run(s);
}
