/* vsx_probe.c - vsx-probe: one group member per process that generates
   load and measures it, for tests, benchmarks (vsx-perf) and by hand.

   It joins a group over a real transport (udp or afxdp), optionally waits
   until the view holds K members, casts N messages of S bytes at a rate
   (or as fast as flow control lets it), checks every delivery, writes the
   spec's JSONL trace, and ends with one line of figures: messages and MB
   per second sent and delivered, self-delivery latency (send to its own
   delivery) and one-way latency to the others, and the endpoint's counters
   (retransmissions, drops, time refused by flow control).

     vsx-probe --port 7401 --peer 127.0.0.1:7402 --wait-members 2 --count 1000 --until-delivered 2000
     vsx-probe --transport afxdp --if eth0 --mcast 239.255.0.1 --size 1024 --count 100000 \
               --wait-members 3 --until-delivered 300000 --json

   THE PAYLOAD.  Every message starts with the probe's header (big-endian):
   a magic word, the kind (data, or the DONE marker of --until-delivered),
   the sender's endpoint id, its sequence number (the spec's seq: from 1,
   casts and sends alike), the CLOCK_MONOTONIC time of the cast (so every
   receiver on this machine computes latency on one clock), and the length
   and CRC-32C of the body that follows.  The body is a fixed pattern,
   so sending costs no per-message CRC; receivers check it (unless
   --no-verify: then only the header is checked, for the benchmark's sake).

   ENDING.  --stay D: stay D seconds after the last cast, then leave.
   --until-delivered M: once this member has delivered M data messages in
   all (every sender's, its own included) and sent all of its own, it casts
   a DONE marker; it leaves when every member of its view has sent one, so
   nobody leaves while another still needs its traffic (retransmissions).
   A leave is graceful (vsx_endpoint_leave): the group installs a view
   without the member.

   MEMORY.  Buffers and the latency histograms are allocated at start-up;
   sending and delivering allocate nothing.

   Exit status: 0 success (also when stopped by SIGINT or SIGTERM), 1 a
   delivery failed its checks, the run timed out, or (--until-delivered)
   the view changed during the run, 2 a usage or start-up error. */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <ev.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vsx/vsx.h"
#include "vsx/trace.h"

#define PROBE_MAGIC 0x56535850u /* "VSXP" */
#define KIND_DATA 1
#define KIND_DONE 2
#define PEERS_MAX 64
#define SENDERS_MAX (2 * VSX_MEMBERS_MAX)
#define BURST_MAX 256u /* casts per loop iteration in flood mode: the loop
                          must also get to receive */

/* The probe's header at the front of every message. */
typedef struct probe_hdr {
  uint32_t magic;
  uint8_t  kind;
  uint8_t  svc;
  uint16_t rsvd;
  uint64_t sender;   /* endpoint id                         */
  uint64_t seq;      /* the sender's counter, from 1        */
  uint64_t sent_ns;  /* CLOCK_MONOTONIC at the cast         */
  uint32_t body_len;
  uint32_t body_crc;
} __attribute__((packed)) probe_hdr_t;
_Static_assert(sizeof(probe_hdr_t) == 40, "the probe header is part of the payload format");

/* A latency histogram: log-linear buckets of 32 steps per power of two
   (about 3% resolution) from 1 ns to 2^63 ns, in one fixed array. */
#define HIST_SUB_BITS 5
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_BUCKETS ((64 - HIST_SUB_BITS + 1) * HIST_SUB)
typedef struct hist {
  uint64_t cnt;
  uint64_t bucket[HIST_BUCKETS];
} hist_t;

static uint32_t hist_idx(uint64_t v) {
  if (v < HIST_SUB) return (uint32_t)v;
  uint32_t msb = 63u - (uint32_t)__builtin_clzll(v);
  return (msb - HIST_SUB_BITS + 1) * HIST_SUB + (uint32_t)((v >> (msb - HIST_SUB_BITS)) & (HIST_SUB - 1));
}

/* hist_value: the middle of bucket idx. */
static uint64_t hist_value(uint32_t idx) {
  if (idx < HIST_SUB) return idx;
  uint32_t e = idx / HIST_SUB, m = idx % HIST_SUB, shift = e - 1;
  uint64_t lo = (uint64_t)(HIST_SUB + m) << shift;
  return lo + ((1ull << shift) >> 1);
}

static void hist_add(hist_t *h, uint64_t v) {
  h->bucket[hist_idx(v)]++;
  h->cnt++;
}

/* hist_pct: the value below which a fraction p of the samples lie (0
   without samples). */
static uint64_t hist_pct(const hist_t *h, double p) {
  if (!h->cnt) return 0;
  uint64_t want = (uint64_t)ceil(p * (double)h->cnt), seen = 0;
  if (!want) want = 1;
  for (uint32_t i = 0; i < HIST_BUCKETS; i++)
    if ((seen += h->bucket[i]) >= want) return hist_value(i);
  return hist_value(HIST_BUCKETS - 1);
}

/* What this member knows of one sender. */
typedef struct sender {
  uint64_t eid;
  uint64_t last_cast_seq, last_p2p_seq; /* seq grows per sender and path */
  uint64_t data_cnt;
  int done; /* its DONE marker was delivered */
} sender_t;

typedef struct probe {
  /* options */
  const char *name, *trace_dir;
  uint64_t count;      /* messages to send                         */
  uint32_t size;       /* bytes per message, header included        */
  double rate;         /* msgs/s; 0 = as fast as flow control lets  */
  vsx_svc_t svc;
  int p2p, verify, json, verbose;
  uint32_t wait_members;
  double wait_timeout, stay, timeout;
  uint64_t until;      /* --until-delivered; 0 = off               */
  int sender_rank;     /* --sender-rank; -1 = every member sends    */

  vsx_endpoint_t *ep;
  struct ev_loop *loop;
  ev_timer rate_timer, retry_timer, stay_timer, timeout_timer, tick_timer;
  ev_check pump_check;
  ev_idle pump_idle;
  ev_signal sigint, sigterm;

  uint8_t *tx_buf, *rx_buf; /* one message each, allocated at start-up */
  uint32_t body_crc, empty_crc; /* of the fixed body, and of no body (DONE) */
  uint32_t rx_cap;
  uint64_t eid;
  int started;          /* the view had wait_members: sending began */
  int start_rank;       /* my rank then                             */
  int flow_blocked, view_blocked;
  int done_sent, leaving, finished, timed_out, interrupted;
  int disturbed;        /* the view changed during an --until-delivered run */
  int in_send;          /* inside vsx_endpoint_cast/send: a cast may run
                           callbacks (deliveries) before it returns, and
                           those must not send again with the same seq */
  uint64_t seq;         /* last seq used                            */
  uint64_t sent;        /* data messages accepted                   */
  uint64_t start_ns;    /* when sending began                       */
  uint64_t first_send_ns, last_send_ns;
  uint64_t first_deliver_ns, last_deliver_ns;
  uint64_t delivered, delivered_bytes;
  uint32_t p2p_next;
  uint64_t errors;
  char first_error[200];
  sender_t senders[SENDERS_MAX];
  uint32_t sender_cnt;
  hist_t self_lat, other_lat;
} probe_t;

static const char *prog = "vsx-probe";

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s: ", prog);
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  exit(2);
}

static void usage(FILE *f) {
  fprintf(f,
    "usage: vsx-probe [options]\n"
    "One member of a vsx group that casts a load, checks every delivery and reports figures.\n"
    "\n"
    "Joining:\n"
    "  --transport udp|afxdp  transport (default udp; afxdp needs root and --if)\n"
    "  --if IF                interface (afxdp: required; udp: bind to its address)\n"
    "  --mcast A.B.C.D        group multicast address (without it, udp runs unicast: give --peer)\n"
    "  --port P               UDP port: the group's with --mcast, else this member's own (default 7400)\n"
    "  --peer IP:PORT         another member's address (udp unicast); may repeat\n"
    "  --group G              group name (default vsx-probe)\n"
    "  --name N               member name for logs and the trace (default probe-<pid>)\n"
    "  --eid E                endpoint id (default: random)\n"
    "  --wait-members K       start sending when the view has K members (default 1)\n"
    "  --wait-timeout T       give up waiting for K members after T s (default 30)\n"
    "  --fail-timeout MS      a member silent this long is excluded (default 500)\n"
    "  --stack SPEC --params P  layer stack and parameters (experiments; default the vsync stack)\n"
    "Load:\n"
    "  --count N              messages to send (default 0: receive only)\n"
    "  --size S               bytes per message, the probe's 40-byte header included (default 64)\n"
    "  --rate R               messages per second; 0 = as fast as flow control allows (default 0)\n"
    "  --svc fifo|total|safe  service of the casts (default fifo)\n"
    "  --sender-rank R        only the member of rank R in the view where sending begins sends\n"
    "                         (start every member alike, get one sender; rank 0 is the coordinator,\n"
    "                         which is also the total-order sequencer)\n"
    "  --p2p                  point-to-point sends, round-robin to the other members, instead of casts\n"
    "Ending:\n"
    "  --stay D               stay D seconds after the last send, receiving (default 1)\n"
    "  --until-delivered M    leave once M data messages (all senders together, mine included) were\n"
    "                         delivered here and every member of the view got as far (barrier)\n"
    "  --leave-timeout MS     how long a leave waits for the group's answer (default 2000; when all\n"
    "                         members leave at once nobody answers, and each waits this long)\n"
    "  --timeout T            give up after T seconds in all (default: 120 with --until-delivered, else none)\n"
    "Output:\n"
    "  --trace DIR            write the JSONL trace (the spec's format) to DIR\n"
    "  --json                 print the final figures as one JSON object (the human line goes to stderr)\n"
    "  --no-verify            check only the probe header of each delivery, not the body's CRC\n"
    "  -v, --verbose          print views and progress to stderr\n"
    "  -h, --help             this text\n"
    "Exit status: 0 ok, 1 a delivery failed its checks, the run timed out, or (with --until-delivered) the\n"
    "view changed during the run; 2 usage or start-up error.\n");
}

static double num_arg(const char *opt, const char *s, double lo, double hi) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || v < lo || v > hi)
    die("bad %s '%s': give a number in [%.15g, %.15g] (see --help)", opt, s, lo, hi);
  return v;
}

static void probe_error(probe_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void probe_error(probe_t *p, const char *fmt, ...) {
  if (!p->errors++) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->first_error, sizeof p->first_error, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: %s: %s\n", prog, p->name, p->first_error);
  }
}

static sender_t *sender_of(probe_t *p, uint64_t eid) {
  for (uint32_t i = 0; i < p->sender_cnt; i++)
    if (p->senders[i].eid == eid) return &p->senders[i];
  if (p->sender_cnt == SENDERS_MAX) return NULL;
  sender_t *s = &p->senders[p->sender_cnt++];
  memset(s, 0, sizeof *s);
  s->eid = eid;
  return s;
}

/* ---- sending ----------------------------------------------------------------------- */

static void pump_start(probe_t *p);

/* send_one casts (or sends) one message of kind; returns what the library
   said.  The header is rewritten in place; the body never changes. */
static int send_one(probe_t *p, int kind) {
  const vsx_view_t *v = vsx_endpoint_view(p->ep);
  uint32_t len = kind == KIND_DATA ? p->size : (uint32_t)sizeof(probe_hdr_t);
  int p2p = kind == KIND_DATA && p->p2p;
  uint32_t to = 0;
  if (p2p) {
    if (v->member_cnt < 2) return VSX_ERR_BLOCKED; /* nobody to send to yet */
    to = p->p2p_next % v->member_cnt;
    if (to == vsx_endpoint_rank(p->ep)) to = (to + 1) % v->member_cnt;
  }
  vsx_svc_t svc = p2p ? VSX_SVC_P2P : kind == KIND_DONE && p->p2p ? VSX_SVC_FIFO : p->svc;
  probe_hdr_t h = { htobe32(PROBE_MAGIC), (uint8_t)kind, (uint8_t)svc, 0, htobe64(p->eid), htobe64(p->seq + 1),
                    htobe64(vsx_now_ns()), htobe32(len - (uint32_t)sizeof h),
                    htobe32(kind == KIND_DATA ? p->body_crc : p->empty_crc) };
  memcpy(p->tx_buf, &h, sizeof h);
  p->in_send = 1;
  int err = p2p ? vsx_endpoint_send(p->ep, to, p->tx_buf, len) : vsx_endpoint_cast(p->ep, svc, p->tx_buf, len);
  p->in_send = 0;
  if (err) return err;
  p->seq++;
  uint64_t now = be64toh(h.sent_ns);
  if (kind == KIND_DATA) {
    p->sent++;
    if (!p->first_send_ns) p->first_send_ns = now;
    p->last_send_ns = now;
    if (p2p) p->p2p_next = to + 1;
  }
  vsx_trace_t *t = vsx_endpoint_trace(p->ep);
  if (t) vsx_trace_send(t, svc, p->seq, len, vsx_crc32c(0, p->tx_buf, len), p2p ? v->members[to] : 0);
  return VSX_OK;
}

/* note_refusal: remember why a send was refused, so the pump waits for
   the right callback (flow or view) instead of spinning. */
static void note_refusal(probe_t *p, int err) {
  if (err == VSX_ERR_AGAIN) {
    p->flow_blocked = 1;
    ev_timer_again(p->loop, &p->retry_timer); /* in case a pool, not the window, was short */
  } else if (err == VSX_ERR_BLOCKED) {
    p->view_blocked = 1;
    ev_timer_again(p->loop, &p->retry_timer); /* also covers a p2p sender alone in its view */
  } else if (err != VSX_OK) {
    probe_error(p, "send refused: %s: %s", vsx_strerror(err), vsx_last_error());
    p->count = p->sent; /* stop sending; the run still ends normally */
  }
}

static void maybe_done(probe_t *p);

/* send_due sends up to max data messages; returns how many went. */
static uint64_t send_due(probe_t *p, uint64_t max) {
  uint64_t n = 0;
  while (n < max && p->sent < p->count && !p->flow_blocked && !p->view_blocked && !p->leaving) {
    int err = send_one(p, KIND_DATA);
    if (err) { note_refusal(p, err); break; }
    n++;
  }
  return n;
}

/* pump: flood mode's sender, run after every loop iteration while there
   is something to send (ev_check), kept from blocking by an ev_idle. */
static void pump(probe_t *p) {
  if (!p->started || p->leaving) return;
  if (p->rate == 0) send_due(p, BURST_MAX);
  maybe_done(p);
  int more = p->rate == 0 && p->sent < p->count && !p->flow_blocked && !p->view_blocked;
  if (more) ev_idle_start(p->loop, &p->pump_idle);
  else ev_idle_stop(p->loop, &p->pump_idle);
}

static void pump_cb(struct ev_loop *loop, ev_check *w, int revents) {
  (void)loop;
  (void)revents;
  pump(w->data);
}

static void idle_cb(struct ev_loop *loop, ev_idle *w, int revents) {
  (void)loop;
  (void)w;
  (void)revents; /* only keeps the loop polling without blocking; pump_cb sends */
}

static void pump_start(probe_t *p) {
  ev_idle_start(p->loop, &p->pump_idle);
}

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  probe_t *p = w->data;
  (void)revents;
  p->flow_blocked = vsx_endpoint_flow_blocked(p->ep);
  p->view_blocked = vsx_endpoint_can_send(p->ep) == VSX_ERR_BLOCKED;
  if (!p->flow_blocked && !p->view_blocked) ev_timer_stop(loop, w);
  pump_start(p);
}

/* rate_cb: paced mode: send what is due by now (a backlog left by flow
   control is sent as soon as it may go). */
static void rate_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  probe_t *p = w->data;
  (void)loop;
  (void)revents;
  if (!p->started || p->leaving) return;
  double due = (double)(vsx_now_ns() - p->start_ns) * 1e-9 * p->rate + 1;
  uint64_t want = due > (double)p->count ? p->count : (uint64_t)due;
  if (want > p->sent) send_due(p, want - p->sent);
  if (p->sent >= p->count) ev_timer_stop(p->loop, w);
  maybe_done(p);
}

/* ---- ending ------------------------------------------------------------------------ */

static void leave(probe_t *p) {
  if (p->leaving) return;
  p->leaving = 1;
  ev_idle_stop(p->loop, &p->pump_idle);
  ev_timer_stop(p->loop, &p->rate_timer);
  if (p->verbose) fprintf(stderr, "%s: %s: leaving\n", prog, p->name);
  if (vsx_endpoint_leave(p->ep) != VSX_OK) { ev_break(p->loop, EVBREAK_ALL); return; }
  /* The exit callback ends the loop; if the group never answers, the
     leave times out in the library (leave_timeout_ms). */
}

static void stay_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop;
  (void)revents;
  leave(w->data);
}

/* maybe_done moves the ending along: after the last send, --stay starts
   its timer; --until-delivered casts DONE once enough arrived, and leaves
   when every member of the view has sent its DONE. */
static void maybe_done(probe_t *p) {
  if (!p->started || p->leaving || p->in_send || p->sent < p->count) return;
  if (!p->until) {
    if (!ev_is_active(&p->stay_timer) && !p->finished) {
      p->finished = 1;
      ev_timer_set(&p->stay_timer, p->stay, 0);
      ev_timer_start(p->loop, &p->stay_timer);
    }
    return;
  }
  if (p->delivered < p->until) return;
  if (!p->done_sent) {
    int err = send_one(p, KIND_DONE);
    if (err) { note_refusal(p, err); return; }
    p->done_sent = 1;
  }
  const vsx_view_t *v = vsx_endpoint_view(p->ep);
  for (uint32_t r = 0; r < v->member_cnt; r++) {
    sender_t *s = sender_of(p, v->members[r]);
    if (!s || !s->done) return;
  }
  p->finished = 1;
  leave(p);
}

static uint64_t views_installed(const probe_t *p) {
  vsx_endpoint_stats_t st;
  vsx_endpoint_get_stats(p->ep, &st);
  return st.views;
}

static void timeout_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  probe_t *p = w->data;
  (void)revents;
  p->timed_out = 1;
  if (p->started)
    fprintf(stderr, "%s: %s: timed out after %.0f s: sent %llu of %llu, delivered %llu of %llu, %llu views (now of %u "
            "members); the others may have died, been excluded (a view change during the run loses the old view's "
            "stragglers) or be far slower: see their output\n", prog, p->name, p->timeout, (unsigned long long)p->sent,
            (unsigned long long)p->count, (unsigned long long)p->delivered, (unsigned long long)p->until,
            (unsigned long long)views_installed(p), vsx_endpoint_view(p->ep)->member_cnt);
  else
    fprintf(stderr, "%s: %s: only %u of %u members after %.0f s: start the others with the same --group, --port "
            "and --transport (and --mcast or --peer so they can find each other)\n", prog, p->name,
            vsx_endpoint_view(p->ep)->member_cnt, p->wait_members, p->wait_timeout);
  ev_break(loop, EVBREAK_ALL);
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents) {
  probe_t *p = w->data;
  (void)revents;
  p->interrupted = 1;
  ev_break(loop, EVBREAK_ALL);
}

/* tick_cb: once a second: flush the trace, show progress. */
static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  probe_t *p = w->data;
  (void)loop;
  (void)revents;
  vsx_trace_tick(vsx_endpoint_trace(p->ep));
  if (p->verbose)
    fprintf(stderr, "%s: %s: sent %llu, delivered %llu, view of %u%s\n", prog, p->name, (unsigned long long)p->sent,
            (unsigned long long)p->delivered, vsx_endpoint_view(p->ep)->member_cnt, p->flow_blocked ? ", flow-blocked" : "");
}

/* ---- callbacks of the endpoint ------------------------------------------------------ */

static void begin_sending(probe_t *p) {
  p->started = 1;
  p->start_rank = (int)vsx_endpoint_rank(p->ep);
  if (p->sender_rank >= 0 && p->start_rank != p->sender_rank) p->count = 0; /* not the one sender */
  p->start_ns = vsx_now_ns();
  ev_timer_stop(p->loop, &p->timeout_timer);
  if (p->timeout > 0) {
    ev_timer_set(&p->timeout_timer, p->timeout, 0);
    ev_timer_start(p->loop, &p->timeout_timer);
  }
  if (p->rate > 0 && p->count) {
    double iv = 1.0 / p->rate < 0.001 ? 0.001 : 1.0 / p->rate;
    ev_timer_set(&p->rate_timer, 0, iv);
    ev_timer_start(p->loop, &p->rate_timer);
  }
  if (p->verbose) fprintf(stderr, "%s: %s: sending\n", prog, p->name);
  pump_start(p);
}

static void on_view(void *user, vsx_endpoint_t *ep, const vsx_view_t *v, uint32_t rank) {
  probe_t *p = user;
  (void)ep;
  p->view_blocked = 0;
  if (p->verbose) fprintf(stderr, "%s: %s: view %llu of %u members, my rank %u\n", prog, p->name,
                          (unsigned long long)v->ltime, v->member_cnt, rank);
  if (!p->started && v->member_cnt >= p->wait_members) {
    begin_sending(p);
  } else if (p->started && p->until && !p->leaving && (p->delivered < p->until || p->sent < p->count)) {
    /* Members changed during the run (not at its end, where members that
       got everything leave): casts of the ended view that a
       member missed (it was excluded, or came in late) are not redelivered
       in the new one, so --until-delivered may never be reached.  Say so
       and end now rather than at the timeout. */
    p->disturbed = 1;
    fprintf(stderr, "%s: %s: the view changed during the run (now %u members, my rank %u): a member failed, was "
            "excluded or joined; the count of --until-delivered may never be reached, ending (a busy machine can "
            "starve a member past --fail-timeout: try a larger one)\n", prog, p->name, v->member_cnt, rank);
    ev_break(p->loop, EVBREAK_ALL);
  } else if (p->started) {
    pump_start(p);
  }
}

static void on_block(void *user, vsx_endpoint_t *ep) {
  (void)ep;
  ((probe_t *)user)->view_blocked = 1;
}

static void on_flow(void *user, vsx_endpoint_t *ep, int blocked) {
  probe_t *p = user;
  (void)ep;
  p->flow_blocked = blocked;
  if (!blocked && p->started) pump_start(p);
}

static void on_exit_cb(void *user, vsx_endpoint_t *ep, const char *reason) {
  probe_t *p = user;
  (void)ep;
  if (p->verbose || strncmp(reason, "leave", 5)) fprintf(stderr, "%s: %s: out of the group: %s\n", prog, p->name, reason);
  ev_break(p->loop, EVBREAK_ALL);
}

static void on_deliver(void *user, vsx_endpoint_t *ep, uint32_t from, vsx_svc_t svc, const vsx_iovl_t *msg) {
  probe_t *p = user;
  uint64_t now = vsx_now_ns();
  size_t len = vsx_iovl_len(msg);
  probe_hdr_t h;
  if (len < sizeof h) { probe_error(p, "a %zu-byte message from rank %u: shorter than the probe header", len, from); return; }
  /* Without verification only the header is copied out. */
  size_t got = vsx_iovl_gather(msg, 0, p->rx_buf, p->verify || vsx_endpoint_trace(ep) ? p->rx_cap : sizeof h);
  memcpy(&h, p->rx_buf, sizeof h);
  uint64_t sender = be64toh(h.sender), seq = be64toh(h.seq), sent_ns = be64toh(h.sent_ns);
  vsx_trace_t *t = vsx_endpoint_trace(ep);
  if (t) vsx_trace_deliver(t, sender, svc, seq, len, got == len ? vsx_crc32c(0, p->rx_buf, len) : 0);
  const vsx_view_t *v = vsx_endpoint_view(ep);
  if (be32toh(h.magic) != PROBE_MAGIC || (h.kind != KIND_DATA && h.kind != KIND_DONE)) {
    probe_error(p, "a message from rank %u is not the probe's (bad magic or kind)", from);
    return;
  }
  if (from < v->member_cnt && v->members[from] != sender) {
    probe_error(p, "message %llu says it is from %llx but came from rank %u (%llx)", (unsigned long long)seq,
                (unsigned long long)sender, from, (unsigned long long)v->members[from]);
    return;
  }
  if (be32toh(h.body_len) != len - sizeof h) {
    probe_error(p, "message %llu from %llx: %zu bytes, its header says %u + %zu", (unsigned long long)seq,
                (unsigned long long)sender, len, be32toh(h.body_len), sizeof h);
    return;
  }
  if (p->verify && got == len && vsx_crc32c(0, p->rx_buf + sizeof h, len - sizeof h) != be32toh(h.body_crc)) {
    probe_error(p, "message %llu from %llx: body CRC mismatch (corrupted)", (unsigned long long)seq, (unsigned long long)sender);
    return;
  }
  sender_t *s = sender_of(p, sender);
  if (!s) { probe_error(p, "more than %d senders", SENDERS_MAX); return; }
  uint64_t *last = svc == VSX_SVC_P2P ? &s->last_p2p_seq : &s->last_cast_seq;
  if (seq <= *last) {
    probe_error(p, "message %llu from %llx after its message %llu (duplicate or out of order)", (unsigned long long)seq,
                (unsigned long long)sender, (unsigned long long)*last);
    return;
  }
  *last = seq;
  if (h.kind == KIND_DONE) {
    s->done = 1;
    maybe_done(p);
    return;
  }
  s->data_cnt++;
  p->delivered++;
  p->delivered_bytes += len;
  if (!p->first_deliver_ns) p->first_deliver_ns = now;
  p->last_deliver_ns = now;
  if (now >= sent_ns) hist_add(sender == p->eid ? &p->self_lat : &p->other_lat, now - sent_ns);
  if (p->until && p->delivered == p->until) maybe_done(p);
}

/* ---- report ----------------------------------------------------------------------- */

static double per_s(uint64_t n, uint64_t t0, uint64_t t1) {
  return n > 1 && t1 > t0 ? (double)n / ((double)(t1 - t0) * 1e-9) : 0;
}

static void report(probe_t *p) {
  vsx_endpoint_stats_t st;
  vsx_endpoint_get_stats(p->ep, &st);
  uint64_t drops = st.rx_no_event + st.tx_dropped + st.drop_malformed + st.drop_magic + st.drop_version +
                   st.drop_length + st.drop_group + st.drop_stale + st.drop_sender + st.drop_not_mine +
                   st.drop_too_big + st.drop_no_buffer;
  double tx_rate = per_s(p->sent, p->first_send_ns, p->last_send_ns);
  double rx_rate = per_s(p->delivered, p->first_deliver_ns, p->last_deliver_ns);
  double tx_mb = tx_rate * p->size / 1e6;
  double rx_mb = p->delivered ? rx_rate * ((double)p->delivered_bytes / (double)p->delivered) / 1e6 : 0;
  double self50 = hist_pct(&p->self_lat, 0.5) / 1e3, self99 = hist_pct(&p->self_lat, 0.99) / 1e3;
  double oth50 = hist_pct(&p->other_lat, 0.5) / 1e3, oth99 = hist_pct(&p->other_lat, 0.99) / 1e3;
  int ok = !p->errors && !p->timed_out && !p->disturbed;
  uint32_t senders = 0; /* that sent data (the DONE markers do not count) */
  for (uint32_t i = 0; i < p->sender_cnt; i++) senders += p->senders[i].data_cnt > 0;
  FILE *human = p->json ? stderr : stdout;
  fprintf(human,
          "%s: sent %llu (%.0f msgs/s, %.2f MB/s), delivered %llu from %u senders (%.0f msgs/s, %.2f MB/s), "
          "self-delivery p50 %.1f us p99 %.1f us, one-way p50 %.1f us p99 %.1f us; retransmits %llu, drops %llu, "
          "flow-blocked %.1f ms (%llu refusals), views %llu, errors %llu%s\n",
          p->name, (unsigned long long)p->sent, tx_rate, tx_mb, (unsigned long long)p->delivered, senders, rx_rate,
          rx_mb, self50, self99, oth50, oth99, (unsigned long long)st.retransmits, (unsigned long long)drops,
          st.flow_blocked_ns / 1e6, (unsigned long long)st.refused_again, (unsigned long long)st.views,
          (unsigned long long)p->errors, p->timed_out ? ", TIMED OUT" : p->disturbed ? ", VIEW CHANGED" : p->interrupted ? ", interrupted" : "");
  if (!p->json) return;
  printf("{\"name\":\"%s\",\"eid\":%llu,\"ok\":%s,\"rank\":%d,\"members\":%u,\"size\":%u,\"svc\":\"%s\",\"count\":%llu,"
         "\"sent\":%llu,\"send_msgs_per_s\":%.1f,\"send_mb_per_s\":%.3f,"
         "\"delivered\":%llu,\"delivered_bytes\":%llu,\"senders\":%u,\"msgs_per_s\":%.1f,\"mb_per_s\":%.3f,"
         "\"deliver_secs\":%.6f,\"self_cnt\":%llu,\"self_p50_us\":%.1f,\"self_p99_us\":%.1f,"
         "\"others_cnt\":%llu,\"others_p50_us\":%.1f,\"others_p99_us\":%.1f,"
         "\"retransmits\":%llu,\"drops\":%llu,\"rx_no_event\":%llu,\"tx_dropped\":%llu,\"flow_blocked_ms\":%.1f,"
         "\"refused_again\":%llu,\"views\":%llu,\"rx_datagrams\":%llu,\"tx_datagrams\":%llu,\"tx_bytes\":%llu,\"errors\":%llu,"
         "\"timed_out\":%s,\"disturbed\":%s,\"first_error\":\"%s\"}\n",
         p->name, (unsigned long long)p->eid, ok ? "true" : "false", p->start_rank, vsx_endpoint_view(p->ep)->member_cnt, p->size,
         p->p2p ? "p2p" : p->svc == VSX_SVC_TOTAL ? "total" : p->svc == VSX_SVC_SAFE ? "safe" : "fifo",
         (unsigned long long)p->count, (unsigned long long)p->sent, tx_rate, tx_mb, (unsigned long long)p->delivered,
         (unsigned long long)p->delivered_bytes, senders, rx_rate, rx_mb,
         (double)(p->last_deliver_ns - p->first_deliver_ns) * 1e-9, (unsigned long long)p->self_lat.cnt, self50, self99,
         (unsigned long long)p->other_lat.cnt, oth50, oth99, (unsigned long long)st.retransmits,
         (unsigned long long)drops, (unsigned long long)st.rx_no_event, (unsigned long long)st.tx_dropped,
         st.flow_blocked_ns / 1e6, (unsigned long long)st.refused_again, (unsigned long long)st.views,
         (unsigned long long)st.rx_datagrams, (unsigned long long)st.tx_datagrams, (unsigned long long)st.tx_bytes,
         (unsigned long long)p->errors,
         p->timed_out ? "true" : "false", p->disturbed ? "true" : "false", p->errors ? "see stderr" : "");
}

/* ---- set-up ----------------------------------------------------------------------- */

int main(int argc, char **argv) {
  enum { O_IF = 256, O_MCAST, O_PORT, O_PEER, O_GROUP, O_NAME, O_EID, O_WAIT, O_WAIT_T, O_STACK, O_PARAMS, O_COUNT,
         O_SIZE, O_RATE, O_SRANK, O_SVC, O_P2P, O_STAY, O_UNTIL, O_TIMEOUT, O_LEAVE_T, O_FAIL_T, O_TRACE, O_JSON, O_NOVERIFY, O_TRANSPORT };
  static const struct option lo[] = {
    { "transport", 1, 0, O_TRANSPORT }, { "if", 1, 0, O_IF }, { "mcast", 1, 0, O_MCAST }, { "port", 1, 0, O_PORT },
    { "peer", 1, 0, O_PEER }, { "group", 1, 0, O_GROUP }, { "name", 1, 0, O_NAME }, { "eid", 1, 0, O_EID },
    { "wait-members", 1, 0, O_WAIT }, { "wait-timeout", 1, 0, O_WAIT_T }, { "stack", 1, 0, O_STACK },
    { "params", 1, 0, O_PARAMS }, { "count", 1, 0, O_COUNT }, { "size", 1, 0, O_SIZE }, { "rate", 1, 0, O_RATE },
    { "sender-rank", 1, 0, O_SRANK },
    { "svc", 1, 0, O_SVC }, { "p2p", 0, 0, O_P2P }, { "stay", 1, 0, O_STAY }, { "until-delivered", 1, 0, O_UNTIL },
    { "timeout", 1, 0, O_TIMEOUT }, { "leave-timeout", 1, 0, O_LEAVE_T },
    { "fail-timeout", 1, 0, O_FAIL_T }, { "trace", 1, 0, O_TRACE }, { "json", 0, 0, O_JSON },
    { "no-verify", 0, 0, O_NOVERIFY }, { "verbose", 0, 0, 'v' }, { "help", 0, 0, 'h' }, { 0, 0, 0, 0 } };
  static probe_t p; /* large (histograms): static, zeroed */
  const char *transport = "udp", *ifname = NULL, *group = "vsx-probe", *stack = NULL, *params = NULL;
  const char *peers[PEERS_MAX];
  uint32_t peer_cnt = 0, mcast = 0;
  uint16_t port = 7400;
  uint32_t leave_ms = 0, fail_ms = 0;
  uint64_t eid = 0;
  char name[64];
  snprintf(name, sizeof name, "probe-%d", (int)getpid());
  p.name = name;
  p.size = 64;
  p.svc = VSX_SVC_FIFO;
  p.verify = 1;
  p.wait_members = 1;
  p.wait_timeout = 30;
  p.stay = 1;
  p.timeout = -1;
  p.sender_rank = -1;
  p.start_rank = -1;
  int c;
  while ((c = getopt_long(argc, argv, "vh", lo, NULL)) != -1) {
    switch (c) {
    case O_TRANSPORT: transport = optarg; break;
    case O_IF: ifname = optarg; break;
    case O_MCAST: {
      struct in_addr a;
      if (!inet_aton(optarg, &a) || !IN_MULTICAST(ntohl(a.s_addr)))
        die("bad --mcast '%s': give an IPv4 multicast address such as 239.255.0.1", optarg);
      mcast = ntohl(a.s_addr);
      break;
    }
    case O_PORT: port = (uint16_t)num_arg("--port", optarg, 1, 65535); break;
    case O_PEER:
      if (peer_cnt == PEERS_MAX) die("more than %d --peer addresses: one per member that may be up is enough", PEERS_MAX);
      peers[peer_cnt++] = optarg;
      break;
    case O_GROUP: group = optarg; break;
    case O_NAME: p.name = optarg; break;
    case O_EID: {
      char *end;
      eid = strtoull(optarg, &end, 0);
      if (*end || !eid) die("bad --eid '%s': give a nonzero integer (or leave it out for a random one)", optarg);
      break;
    }
    case O_WAIT: p.wait_members = (uint32_t)num_arg("--wait-members", optarg, 1, VSX_MEMBERS_MAX); break;
    case O_WAIT_T: p.wait_timeout = num_arg("--wait-timeout", optarg, 0.1, 86400); break;
    case O_STACK: stack = optarg; break;
    case O_PARAMS: params = optarg; break;
    case O_COUNT: p.count = (uint64_t)num_arg("--count", optarg, 0, 1e15); break;
    case O_SIZE: p.size = (uint32_t)num_arg("--size", optarg, sizeof(probe_hdr_t), 1 << 20); break;
    case O_SRANK: p.sender_rank = (int)num_arg("--sender-rank", optarg, 0, VSX_MEMBERS_MAX - 1); break;
    case O_RATE: p.rate = num_arg("--rate", optarg, 0, 1e9); break;
    case O_SVC:
      if (!strcmp(optarg, "fifo")) p.svc = VSX_SVC_FIFO;
      else if (!strcmp(optarg, "total")) p.svc = VSX_SVC_TOTAL;
      else if (!strcmp(optarg, "safe")) p.svc = VSX_SVC_SAFE;
      else die("bad --svc '%s': give fifo, total or safe (point-to-point: --p2p)", optarg);
      break;
    case O_P2P: p.p2p = 1; break;
    case O_STAY: p.stay = num_arg("--stay", optarg, 0, 86400); break;
    case O_UNTIL: p.until = (uint64_t)num_arg("--until-delivered", optarg, 1, 1e15); break;
    case O_TIMEOUT: p.timeout = num_arg("--timeout", optarg, 0.1, 86400); break;
    case O_LEAVE_T: leave_ms = (uint32_t)num_arg("--leave-timeout", optarg, 10, 600000); break;
    case O_FAIL_T: fail_ms = (uint32_t)num_arg("--fail-timeout", optarg, 20, 600000); break;
    case O_TRACE: p.trace_dir = optarg; break;
    case O_JSON: p.json = 1; break;
    case O_NOVERIFY: p.verify = 0; break;
    case 'v': p.verbose = 1; break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (optind < argc) die("unexpected argument '%s' (see --help)", argv[optind]);
  if (strcmp(transport, "udp") && strcmp(transport, "afxdp"))
    die("bad --transport '%s': give udp or afxdp", transport);
  if (!strcmp(transport, "afxdp") && !ifname)
    die("--transport afxdp needs --if IF (the interface to bind; as root), or use --transport udp");
  if (!strcmp(transport, "udp") && !mcast && !peer_cnt && p.wait_members > 1)
    die("udp without --mcast is unicast: give --peer IP:PORT of another member so they can find each other");
  if (peer_cnt && mcast) die("--peer is for unicast mode: leave out --mcast, or leave out --peer");
  if (p.p2p && p.svc != VSX_SVC_FIFO) die("--p2p sends point-to-point: leave out --svc");
  if (p.timeout < 0) p.timeout = p.until ? 120 : 0;
  if (p.trace_dir && mkdir(p.trace_dir, 0777) && errno != EEXIST) /* one level, as a convenience */
    die("cannot create the trace directory %s: %s; create it or give another --trace", p.trace_dir, strerror(errno));

  vsx_endpoint_opts_t eo;
  vsx_endpoint_opts_init(&eo);
  eo.group = group;
  eo.opt_name = p.name;
  eo.opt_transport_name = transport;
  eo.opt_ifname = ifname;
  eo.mcast_ip = mcast;
  eo.port = port;
  eo.eid = eid;
  eo.opt_stack = stack;
  eo.opt_params = params;
  if (leave_ms) eo.leave_timeout_ms = leave_ms;
  if (fail_ms) eo.fail_timeout_ms = fail_ms;
  eo.opt_trace_dir = p.trace_dir ? p.trace_dir : "";
  eo.cbs = (vsx_endpoint_cbs_t){ .deliver = on_deliver, .flow = on_flow, .view = on_view, .block = on_block,
                                 .exit = on_exit_cb };
  eo.user = &p;
  if (p.size > eo.max_msg) die("--size %u is larger than the largest message (%u bytes)", p.size, eo.max_msg);
  p.tx_buf = calloc(1, p.size);
  p.rx_cap = eo.max_msg;
  p.rx_buf = malloc(p.rx_cap);
  if (!p.tx_buf || !p.rx_buf) die("out of memory for the message buffers");
  for (uint32_t i = sizeof(probe_hdr_t); i < p.size; i++) p.tx_buf[i] = (uint8_t)(i * 7 + 13);
  p.body_crc = vsx_crc32c(0, p.tx_buf + sizeof(probe_hdr_t), p.size - sizeof(probe_hdr_t));
  p.empty_crc = vsx_crc32c(0, p.tx_buf, 0);

  int err = vsx_endpoint_create(&eo, &p.ep);
  if (err) {
    fprintf(stderr, "%s: %s: cannot join the group: %s: %s\n", prog, p.name, vsx_strerror(err), vsx_last_error());
    return 2;
  }
  p.eid = vsx_endpoint_eid(p.ep);
  for (uint32_t i = 0; i < peer_cnt; i++)
    if ((err = vsx_endpoint_add_peer(p.ep, peers[i]))) {
      fprintf(stderr, "%s: %s: --peer %s: %s: %s\n", prog, p.name, peers[i], vsx_strerror(err), vsx_last_error());
      vsx_endpoint_destroy(p.ep);
      return 2;
    }
  p.loop = ev_loop_new(EVFLAG_AUTO);
  if (!p.loop) die("cannot create the event loop (libev)");
  if ((err = vsx_endpoint_attach(p.ep, p.loop))) {
    fprintf(stderr, "%s: %s: cannot attach to the loop: %s\n", prog, p.name, vsx_last_error());
    return 2;
  }
  ev_check_init(&p.pump_check, pump_cb);
  ev_idle_init(&p.pump_idle, idle_cb);
  ev_init(&p.retry_timer, retry_cb);
  p.retry_timer.repeat = 0.001;
  ev_init(&p.rate_timer, rate_cb);
  ev_init(&p.stay_timer, stay_cb);
  ev_init(&p.timeout_timer, timeout_cb);
  ev_timer_init(&p.tick_timer, tick_cb, 1, 1);
  ev_signal_init(&p.sigint, signal_cb, SIGINT);
  ev_signal_init(&p.sigterm, signal_cb, SIGTERM);
  ev_watcher *ws[] = { (ev_watcher *)&p.pump_check, (ev_watcher *)&p.pump_idle, (ev_watcher *)&p.retry_timer,
                       (ev_watcher *)&p.rate_timer, (ev_watcher *)&p.stay_timer, (ev_watcher *)&p.timeout_timer,
                       (ev_watcher *)&p.tick_timer, (ev_watcher *)&p.sigint, (ev_watcher *)&p.sigterm };
  for (size_t i = 0; i < VSX_ARRAY_CNT(ws); i++) ws[i]->data = &p;
  ev_check_start(p.loop, &p.pump_check);
  ev_timer_start(p.loop, &p.tick_timer);
  ev_signal_start(p.loop, &p.sigint);
  ev_signal_start(p.loop, &p.sigterm);
  ev_timer_set(&p.timeout_timer, p.wait_timeout, 0); /* waiting for the members */
  ev_timer_start(p.loop, &p.timeout_timer);
  ev_run(p.loop, 0);

  report(&p);
  vsx_endpoint_detach(p.ep);
  vsx_endpoint_destroy(p.ep);
  ev_loop_destroy(p.loop);
  free(p.tx_buf);
  free(p.rx_buf);
  return p.errors || p.timed_out || p.disturbed ? 1 : 0;
}
