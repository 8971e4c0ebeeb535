/* test_api.c - the public API of vsx.h beyond what the group tests cover:
   peer addresses over UDP, zero-copy sends, options and their errors,
   statistics.

   Goal: each call does what docs/api.md says, including its errors.
   Method: real UDP endpoints on 127.0.0.1 in this one process (ports
   chosen free, driven by vsx_endpoint_poll in a loop: no root, no
   namespaces), and groups on the simulated network for the zero-copy
   buffers (exact pool levels) and the option checks. */
#include <check.h>
#include "check_main.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vsx/vsx.h"
#include "vsx/sim.h"
#include "vsx/wire.h"

#define N_MAX 4

/* ---- a member and what it saw ---------------------------------------------- */

typedef struct member {
  vsx_endpoint_t *ep;
  uint16_t port;
  uint32_t view_cnt, view_size;
  uint32_t got;                    /* casts delivered                       */
  uint32_t got_from[N_MAX];        /* per origin: the message's first byte  */
  char last[1536];
  size_t last_len;
  int exited;
} member_t;

static void on_deliver(void *user, vsx_endpoint_t *ep, uint32_t from, vsx_svc_t svc, const vsx_iovl_t *msg) {
  member_t *m = user;
  (void)ep; (void)from; (void)svc;
  m->last_len = vsx_iovl_len(msg);
  ck_assert_uint_le(m->last_len, sizeof m->last);
  vsx_iovl_gather(msg, 0, m->last, m->last_len);
  /* Messages carry their origin's index as the first byte. */
  if (m->last_len && (uint8_t)m->last[0] < N_MAX) m->got_from[(uint8_t)m->last[0]]++;
  m->got++;
}

static void on_view(void *user, vsx_endpoint_t *ep, const vsx_view_t *v, uint32_t rank) {
  member_t *m = user;
  (void)ep; (void)rank;
  m->view_cnt++;
  m->view_size = v->member_cnt;
}

static void on_exit_cb(void *user, vsx_endpoint_t *ep, const char *reason) {
  (void)ep; (void)reason;
  ((member_t *)user)->exited = 1;
}

/* free_port: a UDP port nobody on 127.0.0.1 uses right now. */
static uint16_t free_port(void) {
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  ck_assert_int_ge(s, 0);
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  socklen_t len = sizeof sa;
  ck_assert_int_eq(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
  ck_assert_int_eq(getsockname(s, (struct sockaddr *)&sa, &len), 0);
  close(s);
  return ntohs(sa.sin_port);
}

static void udp_member(member_t *m, const char *name) {
  memset(m, 0, sizeof *m);
  m->port = free_port();
  vsx_endpoint_opts_t o;
  vsx_endpoint_opts_init(&o);
  o.group = "test_api";
  o.opt_name = name;
  o.transport = vsx_transport_find("udp");
  o.port = m->port;
  o.buf_cnt = 1024;
  o.ev_cnt = 1024;
  o.cbs = (vsx_endpoint_cbs_t){ .deliver = on_deliver, .view = on_view, .exit = on_exit_cb };
  o.user = m;
  int err = vsx_endpoint_create(&o, &m->ep);
  ck_assert_msg(err == VSX_OK, "create %s: %s", name, vsx_last_error());
}

static void add_peer(member_t *m, const member_t *to) {
  char addr[32];
  snprintf(addr, sizeof addr, "127.0.0.1:%u", to->port);
  int err = vsx_endpoint_add_peer(m->ep, addr);
  ck_assert_msg(err == VSX_OK, "add_peer %s: %s", addr, vsx_last_error());
}

/* run_until polls every member until done(m, n) says so or ms pass (real time).
   Returns 1 if done. */
static int run_until(member_t *m, int n, int (*done)(member_t *, int), int ms) {
  uint64_t end = vsx_now_ns() + (uint64_t)ms * 1000000ull;
  struct pollfd pf[N_MAX];
  while (vsx_now_ns() < end) {
    for (int i = 0; i < n; i++) vsx_endpoint_poll(m[i].ep);
    if (done && done(m, n)) return 1;
    for (int i = 0; i < n; i++) pf[i] = (struct pollfd){ .fd = vsx_endpoint_fd(m[i].ep), .events = POLLIN };
    (void)poll(pf, (nfds_t)n, 1);
  }
  return done ? done(m, n) : 1;
}

static int one_view_of_all(member_t *m, int n) {
  for (int i = 0; i < n; i++)
    if (m[i].view_size != (uint32_t)n || vsx_endpoint_can_send(m[i].ep) != VSX_OK) return 0;
  uint64_t id = vsx_endpoint_view(m[0].ep)->ltime, coord = vsx_endpoint_view(m[0].ep)->coord_eid;
  for (int i = 1; i < n; i++)
    if (vsx_endpoint_view(m[i].ep)->ltime != id || vsx_endpoint_view(m[i].ep)->coord_eid != coord) return 0;
  return 1;
}

static uint32_t want_casts;
static int all_delivered(member_t *m, int n) {
  for (int i = 0; i < n; i++)
    for (int k = 0; k < n; k++)
      if (m[i].got_from[k] < want_casts) return 0;
  return 1;
}

/* Three processes' worth of endpoints on one host, each told only the
   previous one's address (a chain): they must find each other through
   the peer exchange, form one view of 3, and deliver every cast. */
START_TEST(test_api_udp_peers_chain) {
  member_t m[3];
  udp_member(&m[0], "a");
  udp_member(&m[1], "b");
  udp_member(&m[2], "c");
  /* Before its first view a member may not send: a borrowed buffer
     stays the caller's on that error. */
  vsx_msgbuf_t *b;
  ck_assert_int_eq(vsx_endpoint_borrow(m[0].ep, 10, &b), VSX_OK);
  ck_assert_int_eq(vsx_endpoint_cast_borrowed(m[0].ep, VSX_SVC_TOTAL, b, 10), VSX_ERR_BLOCKED);
  ck_assert_int_eq(vsx_endpoint_return(m[0].ep, b), VSX_OK);
  add_peer(&m[1], &m[0]);
  add_peer(&m[2], &m[1]);
  add_peer(&m[2], &m[2]); /* its own address: ignored */
  add_peer(&m[2], &m[1]); /* twice: no duplicate copies */
  ck_assert_msg(run_until(m, 3, one_view_of_all, 15000), "no single view of 3 within 15 s (sizes %u %u %u)",
                m[0].view_size, m[1].view_size, m[2].view_size);
  want_casts = 20;
  for (uint32_t k = 0; k < want_casts; k++)
    for (int i = 0; i < 3; i++) {
      char msg[32];
      int len = snprintf(msg, sizeof msg, "%c cast %u from %d", i, k, i);
      int err;
      while ((err = vsx_endpoint_cast(m[i].ep, VSX_SVC_TOTAL, msg, (size_t)len)) == VSX_ERR_AGAIN)
        run_until(m, 3, NULL, 1);
      ck_assert_msg(err == VSX_OK, "cast: %s", vsx_strerror(err));
    }
  ck_assert_msg(run_until(m, 3, all_delivered, 10000), "casts not delivered within 10 s");
  for (int i = 0; i < 3; i++) {
    ck_assert_uint_eq(m[i].got, 3 * want_casts); /* exactly once: no duplicates */
    vsx_endpoint_stats_t st;
    vsx_endpoint_get_stats(m[i].ep, &st);
    ck_assert_uint_ge(st.views, 2);
  }
  for (int i = 0; i < 3; i++) vsx_endpoint_destroy(m[i].ep);
}
END_TEST

/* A member restarted on the same port (a new endpoint id at the old
   address) replaces the old entry: the others send it each cast once. */
START_TEST(test_api_udp_restart_same_port) {
  member_t m[2];
  udp_member(&m[0], "a");
  udp_member(&m[1], "b");
  add_peer(&m[1], &m[0]);
  ck_assert_msg(run_until(m, 2, one_view_of_all, 15000), "no view of 2");
  uint16_t port = m[1].port;
  vsx_endpoint_destroy(m[1].ep); /* a crash, as far as a can tell */
  memset(&m[1], 0, sizeof m[1]);
  vsx_endpoint_opts_t o;
  vsx_endpoint_opts_init(&o);
  o.group = "test_api";
  o.opt_name = "b2";
  o.opt_transport_name = "udp";
  o.port = port;
  o.cbs = (vsx_endpoint_cbs_t){ .deliver = on_deliver, .view = on_view, .exit = on_exit_cb };
  o.user = &m[1];
  m[1].port = port;
  ck_assert_int_eq(vsx_endpoint_create(&o, &m[1].ep), VSX_OK);
  add_peer(&m[1], &m[0]);
  ck_assert_msg(run_until(m, 2, one_view_of_all, 15000), "no view of a and the restarted b");
  want_casts = 50;
  for (uint32_t k = 0; k < want_casts; k++) {
    char msg[8] = { 0, 'a' };
    ck_assert_int_eq(vsx_endpoint_cast(m[0].ep, VSX_SVC_FIFO, msg, 2), VSX_OK);
    msg[0] = 1;
    ck_assert_int_eq(vsx_endpoint_cast(m[1].ep, VSX_SVC_FIFO, msg, 2), VSX_OK);
    run_until(m, 2, NULL, 1);
  }
  ck_assert_msg(run_until(m, 2, all_delivered, 10000), "casts not delivered");
  ck_assert_uint_eq(vsx_stack_stat(vsx_endpoint_stack(m[1].ep), "mnak", "duplicates"), 0);
  ck_assert_uint_eq(m[1].got_from[0], want_casts);
  for (int i = 0; i < 2; i++) vsx_endpoint_destroy(m[i].ep);
}
END_TEST

/* Bad addresses and transports without seed addresses. */
START_TEST(test_api_add_peer_errors) {
  member_t m;
  udp_member(&m, "a");
  const char *bad[] = { "", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:70000", "localhost:7400",
                        "1.2.3:7400", ":7400", "127.0.0.1:74x", "0.0.0.0:7400" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ck_assert_msg(vsx_endpoint_add_peer(m.ep, bad[i]) == VSX_ERR_INVAL, "'%s' accepted", bad[i]);
    ck_assert_ptr_nonnull(strstr(vsx_last_error(), "peer address"));
  }
  ck_assert_int_eq(vsx_endpoint_add_peer(m.ep, NULL), VSX_ERR_INVAL);
  vsx_endpoint_destroy(m.ep);

  /* The simulated network has no addresses. */
  vsx_sim_t *sim;
  vsx_sim_opts_t so = { .seed = 1, .queue_cap = 64 };
  ck_assert_int_eq(vsx_sim_create(&so, &sim), VSX_OK);
  vsx_endpoint_opts_t o;
  vsx_endpoint_opts_init(&o);
  o.group = "g";
  o.transport = vsx_transport_find("sim");
  o.opt_backend = sim;
  o.opt_clock = vsx_sim_clock;
  o.opt_clock_ctx = sim;
  o.cbs.deliver = on_deliver;
  o.user = &m;
  vsx_endpoint_t *ep;
  ck_assert_int_eq(vsx_endpoint_create(&o, &ep), VSX_OK);
  ck_assert_int_eq(vsx_endpoint_add_peer(ep, "127.0.0.1:7400"), VSX_ERR_NOTSUP);
  ck_assert_ptr_nonnull(strstr(vsx_last_error(), "sim transport"));
  vsx_endpoint_destroy(ep);
  vsx_sim_destroy(sim);
}
END_TEST

/* ---- statistics: drops by reason, kept across views ---------------------------- */

/* send_raw sends len bytes to 127.0.0.1:port from a plain socket. */
static void send_raw(uint16_t port, const void *data, size_t len) {
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  ck_assert_int_eq(sendto(s, data, len, 0, (struct sockaddr *)&to, sizeof to), (ssize_t)len);
  close(s);
}

static vsx_endpoint_stats_t stats_of(member_t *m) {
  vsx_endpoint_stats_t st;
  vsx_endpoint_get_stats(m->ep, &st);
  return st;
}

/* Malformed datagrams from a plain socket are counted under their
   reason, change nothing, and the counts survive the view's stack. */
START_TEST(test_api_stats_drops) {
  member_t m[3];
  udp_member(&m[0], "a");
  udp_member(&m[1], "b");
  add_peer(&m[1], &m[0]);
  ck_assert_msg(run_until(m, 2, one_view_of_all, 15000), "no view of 2");
  uint64_t view_before = vsx_endpoint_view(m[0].ep)->ltime;

  uint8_t dg[64];
  memset(dg, 0, sizeof dg);
  send_raw(m[0].port, "garbage", 7); /* shorter than a wire header: the transport */
  vsx_wire_hdr_t h = { .magic = 0x1234, .version = VSX_WIRE_VERSION, .kind = VSX_WIRE_CAST, .total_len = 64,
                       .group_id = vsx_hash64("test_api"), .instance = 1, .src_eid = 77 };
  vsx_wire_encode(dg, &h);
  send_raw(m[0].port, dg, sizeof dg); /* not vsx */
  h.magic = VSX_WIRE_MAGIC;
  h.group_id = vsx_hash64("another group");
  vsx_wire_encode(dg, &h);
  send_raw(m[0].port, dg, sizeof dg); /* another group */
  h.group_id = vsx_hash64("test_api");
  h.total_len = 63;
  vsx_wire_encode(dg, &h);
  send_raw(m[0].port, dg, sizeof dg); /* wrong length */
  h.total_len = 64;
  vsx_wire_encode(dg, &h);
  send_raw(m[0].port, dg, sizeof dg); /* a view that is not this one */
  run_until(m, 2, NULL, 300);
  vsx_endpoint_stats_t st = stats_of(&m[0]);
  ck_assert_uint_eq(st.drop_malformed, 1);
  ck_assert_uint_eq(st.drop_magic, 1);
  ck_assert_uint_eq(st.drop_group, 1);
  ck_assert_uint_eq(st.drop_length, 1);
  ck_assert_uint_ge(st.drop_stale, 1);
  ck_assert_uint_eq(vsx_endpoint_view(m[0].ep)->ltime, view_before); /* harmless */

  /* A third member: a new view, and the old stack is freed after
     lingering; the counts stay. */
  udp_member(&m[2], "c");
  add_peer(&m[2], &m[0]);
  ck_assert_msg(run_until(m, 3, one_view_of_all, 15000), "no view of 3");
  run_until(m, 3, NULL, 700); /* linger_ms is 500 */
  vsx_endpoint_stats_t st2 = stats_of(&m[0]);
  ck_assert_uint_gt(vsx_endpoint_view(m[0].ep)->ltime, view_before);
  ck_assert_uint_ge(st2.stacks, 2);
  ck_assert_uint_eq(st2.drop_malformed, st.drop_malformed);
  ck_assert_uint_eq(st2.drop_magic, st.drop_magic);
  ck_assert_uint_eq(st2.drop_group, st.drop_group);
  ck_assert_uint_eq(st2.drop_length, st.drop_length);
  ck_assert_uint_ge(st2.drop_stale, st.drop_stale);
  ck_assert_uint_ge(st2.rx_datagrams, st.rx_datagrams);
  want_casts = 1;
  for (int i = 0; i < 3; i++) {
    char msg[8] = { (char)i, 'x' };
    ck_assert_int_eq(vsx_endpoint_cast(m[i].ep, VSX_SVC_FIFO, msg, 2), VSX_OK);
  }
  ck_assert_msg(run_until(m, 3, all_delivered, 10000), "the group does not work after the garbage");
  for (int i = 0; i < 3; i++) vsx_endpoint_destroy(m[i].ep);
}
END_TEST

/* ---- the simulated network ------------------------------------------------------- */

typedef struct simgroup {
  vsx_sim_t *sim;
  member_t m[N_MAX];
  int n;
  vsx_view_t view;
} simgroup_t;

typedef void (*deliver_fn)(void *, vsx_endpoint_t *, uint32_t, vsx_svc_t, const vsx_iovl_t *);

/* A fixed-view group (VSX_STACK_DEFAULT) or, with dynamic, members that
   find each other (VSX_STACK_VSYNC); tmpl (optional) gives the other
   options. */
static void sim_group(simgroup_t *g, int n, double loss, int dynamic, const vsx_endpoint_opts_t *tmpl,
                      deliver_fn deliver) {
  memset(g, 0, sizeof *g);
  g->n = n;
  vsx_sim_opts_t so = { .seed = 7, .loss = loss, .delay_min_ns = 20000, .delay_max_ns = 200000, .queue_cap = 4096 };
  ck_assert_int_eq(vsx_sim_create(&so, &g->sim), VSX_OK);
  g->view.ltime = 1;
  g->view.member_cnt = (uint32_t)n;
  for (int r = 0; r < n; r++) g->view.members[r] = 0x100 + (uint64_t)r;
  g->view.coord_eid = g->view.members[0];
  for (int r = 0; r < n; r++) {
    vsx_endpoint_opts_t o;
    if (tmpl) o = *tmpl;
    else vsx_endpoint_opts_init(&o);
    o.group = "sim_api";
    o.opt_transport_name = "sim";
    o.opt_backend = g->sim;
    o.opt_clock = vsx_sim_clock;
    o.opt_clock_ctx = g->sim;
    o.eid = g->view.members[r];
    o.view = dynamic ? NULL : &g->view;
    o.buf_cnt = 1024;
    o.ev_cnt = 1024;
    o.cbs = (vsx_endpoint_cbs_t){ .deliver = deliver, .view = on_view, .exit = on_exit_cb };
    o.user = &g->m[r];
    int err = vsx_endpoint_create(&o, &g->m[r].ep);
    ck_assert_msg(err == VSX_OK, "create: %s", vsx_last_error());
  }
}

/* sim_run advances virtual time by ns, polling as things come due. */
static void sim_run(simgroup_t *g, uint64_t ns) {
  uint64_t until = vsx_sim_now(g->sim) + ns;
  for (;;) {
    uint64_t next = vsx_sim_next_arrival(g->sim);
    for (int r = 0; r < g->n; r++) {
      uint64_t a = g->m[r].ep ? vsx_endpoint_next_alarm(g->m[r].ep) : 0;
      if (a && a < next) next = a;
    }
    if (next > until) { vsx_sim_set_now(g->sim, until); return; }
    vsx_sim_set_now(g->sim, next);
    for (int r = 0; r < g->n; r++)
      if (g->m[r].ep) vsx_endpoint_poll(g->m[r].ep);
  }
}

static void sim_group_destroy(simgroup_t *g) {
  for (int r = 0; r < g->n; r++) vsx_endpoint_destroy(g->m[r].ep);
  vsx_sim_destroy(g->sim);
}

/* pattern: the bytes of message k of origin i, length len (origin first). */
static void pattern(uint8_t *p, size_t len, int i, uint32_t k) {
  for (size_t j = 0; j < len; j++) p[j] = (uint8_t)(j ? (k * 31 + j * 7 + (size_t)i) : (size_t)i);
}

static uint32_t bad_bytes;
static void on_deliver_check(void *user, vsx_endpoint_t *ep, uint32_t from, vsx_svc_t svc, const vsx_iovl_t *msg) {
  member_t *m = user;
  uint8_t want[2048];
  on_deliver(user, ep, from, svc, msg);
  int origin = (uint8_t)m->last[0];
  uint32_t k = m->got_from[origin] - 1;
  ck_assert_uint_le(m->last_len, sizeof want);
  pattern(want, m->last_len, origin, k);
  if (memcmp(want, m->last, m->last_len)) bad_bytes++;
}

/* Borrowed buffers cast over a lossy network arrive intact, each once;
   every error leaves the buffer with the caller; at rest every buffer of
   every pool is back. */
START_TEST(test_api_borrow_sim) {
  simgroup_t g;
  sim_group(&g, 3, 0.1, 0, NULL, on_deliver_check);
  sim_run(&g, 1000000);
  vsx_endpoint_t *a = g.m[0].ep, *b = g.m[1].ep;
  uint32_t chunk = vsx_endpoint_chunk_sz(a);
  vsx_bufpool_t *pool = vsx_endpoint_pool(a);
  uint32_t free0 = vsx_bufpool_free_cnt(pool);

  /* error paths */
  vsx_msgbuf_t *buf, *other;
  ck_assert_int_eq(vsx_endpoint_borrow(a, chunk + 1, &buf), VSX_ERR_TOOBIG);
  ck_assert_ptr_null(buf);
  ck_assert_int_eq(vsx_endpoint_borrow(a, chunk, &buf), VSX_OK);
  ck_assert_uint_eq(vsx_msgbuf_cap(buf), chunk);
  ck_assert_uint_eq(vsx_bufpool_free_cnt(pool), free0 - 1);
  ck_assert_int_eq(vsx_endpoint_borrow(b, 8, &other), VSX_OK);
  ck_assert_int_eq(vsx_endpoint_cast_borrowed(a, VSX_SVC_FIFO, other, 8), VSX_ERR_INVAL); /* b's buffer */
  ck_assert_ptr_nonnull(strstr(vsx_last_error(), "not lent by this endpoint"));
  ck_assert_int_eq(vsx_endpoint_cast_borrowed(a, VSX_SVC_FIFO, buf, chunk + 1), VSX_ERR_TOOBIG);
  ck_assert_int_eq(vsx_endpoint_cast_borrowed(a, (vsx_svc_t)99, buf, 8), VSX_ERR_INVAL);
  ck_assert_int_eq(vsx_endpoint_cast_borrowed(a, VSX_SVC_TOTAL, buf, 8), VSX_ERR_NOTSUP); /* no seqbb here */
  ck_assert_int_eq(vsx_endpoint_send_borrowed(a, 7, buf, 8), VSX_ERR_INVAL);
  ck_assert_int_eq(vsx_endpoint_cast_borrowed(a, VSX_SVC_FIFO, NULL, 8), VSX_ERR_INVAL);
  ck_assert_uint_eq(vsx_bufpool_free_cnt(pool), free0 - 1); /* still lent, nothing leaked */
  ck_assert_int_eq(vsx_endpoint_return(a, buf), VSX_OK);
  ck_assert_int_eq(vsx_endpoint_return(a, buf), VSX_ERR_INVAL); /* twice */
  ck_assert_int_eq(vsx_endpoint_return(b, other), VSX_OK);
  ck_assert_uint_eq(vsx_bufpool_free_cnt(pool), free0);

  /* at most 64 lent at once */
  vsx_msgbuf_t *many[65];
  for (int i = 0; i < 64; i++) ck_assert_int_eq(vsx_endpoint_borrow(a, 1, &many[i]), VSX_OK);
  ck_assert_int_eq(vsx_endpoint_borrow(a, 1, &many[64]), VSX_ERR_AGAIN);
  for (int i = 0; i < 64; i++) ck_assert_int_eq(vsx_endpoint_return(a, many[i]), VSX_OK);
  ck_assert_uint_eq(vsx_bufpool_free_cnt(pool), free0);

  /* casts and sends of every length class, under 10% loss */
  const uint32_t per = 300;
  uint32_t sent[3] = { 0, 0, 0 }, sends = 0;
  while (sent[0] < per || sent[1] < per || sent[2] < per) {
    for (int i = 0; i < 3; i++) {
      if (sent[i] == per) continue;
      size_t len = 1 + (sent[i] * 97) % chunk;
      vsx_msgbuf_t *mb;
      int err = vsx_endpoint_borrow(g.m[i].ep, len, &mb);
      if (err == VSX_ERR_AGAIN) continue;
      ck_assert_int_eq(err, VSX_OK);
      pattern(vsx_msgbuf_data(mb), len, i, sent[i]);
      err = vsx_endpoint_cast_borrowed(g.m[i].ep, VSX_SVC_FIFO, mb, len);
      if (err == VSX_ERR_AGAIN) { ck_assert_int_eq(vsx_endpoint_return(g.m[i].ep, mb), VSX_OK); continue; }
      ck_assert_int_eq(err, VSX_OK);
      sent[i]++;
    }
    sim_run(&g, 200000);
  }
  /* a point-to-point one, 0 bytes */
  ck_assert_int_eq(vsx_endpoint_borrow(a, 0, &buf), VSX_OK);
  ck_assert_int_eq(vsx_endpoint_send_borrowed(a, 2, buf, 0), VSX_OK);
  sends++;
  sim_run(&g, 3000000000ull);
  ck_assert_uint_eq(bad_bytes, 0);
  for (int r = 0; r < 3; r++) {
    for (int i = 0; i < 3; i++) ck_assert_uint_eq(g.m[r].got_from[i], per);
    ck_assert_uint_eq(g.m[r].got, 3 * per + (r == 2 ? sends : 0));
    vsx_bufpool_t *p = vsx_endpoint_pool(g.m[r].ep);
    ck_assert_msg(vsx_bufpool_free_cnt(p) == vsx_bufpool_buf_cnt(p), "member %d holds %u buffers at rest", r,
                  vsx_bufpool_buf_cnt(p) - vsx_bufpool_free_cnt(p));
  }
  vsx_endpoint_stats_t st;
  vsx_endpoint_get_stats(a, &st);
  ck_assert_uint_gt(st.retransmits, 0); /* 10% loss: mnak repaired some */
  ck_assert_uint_eq(st.casts, per);

  /* a member that left may not send; the buffer stays lent; destroy takes it back */
  ck_assert_int_eq(vsx_endpoint_leave(a), VSX_OK);
  ck_assert_int_eq(vsx_endpoint_borrow(a, 4, &buf), VSX_OK);
  ck_assert_int_eq(vsx_endpoint_cast_borrowed(a, VSX_SVC_FIFO, buf, 4), VSX_ERR_STATE);
  sim_group_destroy(&g);
}
END_TEST

/* ---- options ---------------------------------------------------------------------- */

START_TEST(test_api_options) {
  vsx_endpoint_opts_t o;
  vsx_endpoint_opts_init(&o);
  ck_assert_uint_eq(o.buf_cnt, 4096);
  ck_assert_uint_eq(o.fail_timeout_ms, 500);
  ck_assert_uint_eq(o.heartbeat_ms, 100);
  member_t m;
  memset(&m, 0, sizeof m);
  o.group = "g";
  o.cbs.deliver = on_deliver;
  o.user = &m;
  o.port = free_port();
  vsx_endpoint_t *ep = NULL;
  ck_assert_int_eq(vsx_endpoint_create(&o, &ep), VSX_ERR_INVAL); /* no transport */
  ck_assert_ptr_nonnull(strstr(vsx_last_error(), "opts.transport is required"));
  o.opt_transport_name = "carrier-pigeon";
  ck_assert_int_eq(vsx_endpoint_create(&o, &ep), VSX_ERR_NOTFOUND);
  ck_assert_ptr_nonnull(strstr(vsx_last_error(), "carrier-pigeon"));
  o.opt_transport_name = "udp";

  /* a group key is refused, never ignored */
  o.opt_group_key = "secret";
  o.group_key_len = 6;
  ck_assert_int_eq(vsx_endpoint_create(&o, &ep), VSX_ERR_NOTSUP);
  ck_assert_ptr_nonnull(strstr(vsx_last_error(), "not in this release"));
  o.opt_group_key = NULL;
  o.group_key_len = 0;

  o.fail_timeout_ms = 150;
  o.heartbeat_ms = 100;
  ck_assert_int_eq(vsx_endpoint_create(&o, &ep), VSX_ERR_INVAL);
  ck_assert_ptr_nonnull(strstr(vsx_last_error(), "two heartbeats"));
  o.fail_timeout_ms = 500;

  /* The transport by name, and the strings from temporaries: create
     copies them, so overwriting them changes nothing (the group name is
     hashed again for every view's stack). */
  char group[16] = "test_api", name[16] = "named";
  o.group = group;
  o.opt_name = name;
  o.cbs = (vsx_endpoint_cbs_t){ .deliver = on_deliver, .view = on_view, .exit = on_exit_cb };
  member_t two[2];
  memset(two, 0, sizeof two);
  o.user = &two[0];
  two[0].port = o.port;
  ck_assert_int_eq(vsx_endpoint_create(&o, &two[0].ep), VSX_OK);
  memset(group, 'x', sizeof group - 1);
  memset(name, 'x', sizeof name - 1);
  udp_member(&two[1], "other");
  add_peer(&two[1], &two[0]);
  ck_assert_msg(run_until(two, 2, one_view_of_all, 15000), "no view of 2: the group name was not copied");
  for (int i = 0; i < 2; i++) vsx_endpoint_destroy(two[i].ep);
}
END_TEST

/* fail_timeout_ms reaches failure detection: a crashed member is
   excluded about that long after it fell silent, not at the default. */
static uint64_t exclusion_ms(uint32_t fail_timeout_ms, const char *opt_params) {
  simgroup_t g;
  vsx_endpoint_opts_t t;
  vsx_endpoint_opts_init(&t);
  t.fail_timeout_ms = fail_timeout_ms;
  t.opt_params = opt_params;
  t.heartbeat_ms = 50;
  sim_group(&g, 2, 0.0, 1, &t, on_deliver);
  for (int i = 0; i < 600 && !(g.m[0].view_size == 2 && g.m[1].view_size == 2); i++) sim_run(&g, 10000000);
  ck_assert_msg(g.m[0].view_size == 2, "no view of 2 in 6 s");
  sim_run(&g, 2000000000ull); /* past the new view's grace period */
  uint64_t t0 = vsx_sim_now(g.sim);
  vsx_sim_crash(g.sim, g.view.members[1]);
  while (g.m[0].view_size != 1 && vsx_sim_now(g.sim) - t0 < 20000000000ull) sim_run(&g, 10000000);
  uint64_t ms = (vsx_sim_now(g.sim) - t0) / 1000000;
  sim_group_destroy(&g);
  return ms;
}

START_TEST(test_api_timeouts_reach_layers) {
  uint64_t fast = exclusion_ms(300, NULL), slow = exclusion_ms(3000, NULL);
  /* opt_params wins over the typed option (here the default opts_init wrote) */
  uint64_t by_params = exclusion_ms(500, "suspect.timeout_ms=3000");
  /* silent since its last heartbeat, up to heartbeat_ms before the crash */
  ck_assert_msg(fast >= 250 && fast < 1500, "fail_timeout_ms=300: excluded after %llu ms", (unsigned long long)fast);
  ck_assert_msg(slow >= 2950 && slow < 5000, "fail_timeout_ms=3000: excluded after %llu ms", (unsigned long long)slow);
  ck_assert_msg(by_params >= 2950 && by_params < 5000, "suspect.timeout_ms=3000 in opt_params: excluded after %llu ms",
                (unsigned long long)by_params);
  printf("test_api: exclusion after a crash: %llu ms (fail_timeout_ms 300), %llu ms (3000), %llu ms (params 3000)\n",
         (unsigned long long)fast, (unsigned long long)slow, (unsigned long long)by_params);
}
END_TEST

static Suite *api_suite(void) {
  Suite *s = suite_create("api");
  TCase *tc = tcase_create("udp");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_api_udp_peers_chain);
  tcase_add_test(tc, test_api_udp_restart_same_port);
  tcase_add_test(tc, test_api_add_peer_errors);
  tcase_add_test(tc, test_api_stats_drops);
  tcase_add_test(tc, test_api_options);
  suite_add_tcase(s, tc);
  tc = tcase_create("sim");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_api_borrow_sim);
  tcase_add_test(tc, test_api_timeouts_reach_layers);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return vsx_check_run(api_suite()); }
