/* vsx_kv.c - vsx-kv: a replicated key-value store.  Each process is one
   replica: one member of a vsx group (the default VSX_STACK_VSYNC stack:
   membership, total order, safe delivery, state transfer).  Clients speak
   a line protocol over TCP or a Unix socket (nc is enough):

     put KEY VALUE      -> OK
     get KEY            -> VALUE v | NOTFOUND
     del KEY            -> OK | NOTFOUND
     cas KEY OLD NEW    -> OK | FAIL current | FAIL (the key is absent)
     stats              -> STATS name=value ...
     digest             -> DIGEST keys=N applied=M hash=H
     quit               -> BYE, then the connection closes
     anything else      -> ERR what is wrong

   WRITES (put, del, cas) are cast to the group as SAFE messages: total
   order, and delivered only once every member of the view has them.  Every
   replica applies every write at delivery, in the one order, so every
   replica decides a cas the same way; the replica the client talks to
   answers when it delivers the write itself.  Because safe delivery means
   every member of the view had the write, an OK survives the crash of the
   replica that gave it (docs/vsx-kv.md says why plain total order would
   not).  A write this replica cast but did not deliver before its view
   ended has an unknown fate (another partition may have applied it): the
   client gets "ERR retry: ...", never a false OK.  Writes that arrive
   while sending is refused (view change, flow control) wait in a bounded
   queue and go out after the view or flow callback.

   READS (get, stats, digest) are served from the local copy, after every
   earlier write of the same client has been answered (a client reads its
   own writes).  They may be stale against other replicas.

   A replica that joins gets the whole store by state transfer (a versioned,
   checksummed snapshot).  --quorum N makes a replica refuse writes (and
   reads) while its view has fewer than N members; see docs/vsx-kv.md.

   Memory: the store, the clients and the write queue are allocated at
   start-up from --capacity, --max-clients and --max-pending; only state
   transfer (a view change) allocates afterwards.

   usage: vsx-kv --listen tcp:HOST:PORT|unix:PATH [--listen ...]
                 [--mcast A.B.C.D | --peer IP:PORT ...] [--port P] ...
          vsx-kv --help   (every option) */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4 */
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "vsx/vsx.h"
#include "vsx/trace.h"

#define PROG "vsx-kv"
#define KEY_MAX 64             /* bytes of a key                             */
#define VAL_MAX 256            /* bytes of a value                           */
#define LINE_CAP 1024          /* a command line, newline included           */
#define ANSWER_MAX 512         /* the longest answer line (STATS, FAIL v)     */
#define CLIENT_WRITES_MAX 64   /* writes one client may have unanswered       */
/* Room for every answer a client may be owed, so a delivered write can
   always be answered without waiting for the client to read. */
#define OUT_CAP ((CLIENT_WRITES_MAX + 2) * ANSWER_MAX)
#define LISTEN_MAX 4
#define PEER_MAX 16

/* A write on the wire (network order): the header, then key, a, b.
   put: a = value; del: nothing; cas: a = old, b = new. */
#define MSG_VERSION 1
#define MSG_HDR 24
#define MSG_MAX (MSG_HDR + KEY_MAX + 2 * VAL_MAX)
enum { OP_PUT = 1, OP_DEL = 2, OP_CAS = 3 };

/* The snapshot (state transfer), network order:
     magic u32 'VSKV', version u16, reserved u16, applied u64, count u32,
     count x (klen u8, vlen u16, key, value) in key order, crc32c u32 of
     everything before it. */
#define SNAP_MAGIC 0x56534b56u
#define SNAP_VERSION 1
#define SNAP_HDR 20
#define SNAP_ENTRY_MAX (3 + KEY_MAX + VAL_MAX)

_Static_assert(MSG_MAX < 1024, "a write fits in one datagram");
_Static_assert(LINE_CAP > 4 + KEY_MAX + 2 * VAL_MAX + 8, "a cas line fits in the input buffer");
_Static_assert(KEY_MAX < 256, "klen is a byte in the snapshot");

/* ---- the store: open addressing with linear probing over entry indices ---- */

typedef struct entry {
  uint64_t hash;
  uint16_t klen, vlen;
  char key[KEY_MAX], val[VAL_MAX];
} entry_t;

typedef struct store {
  entry_t *ents;
  uint32_t cap, cnt;
  uint32_t *free_idx, free_cnt; /* entries not in use (a stack)           */
  uint32_t *table, mask;        /* slot: entry index + 1, 0 = empty        */
  uint32_t *order;              /* scratch: entries in key order           */
  uint64_t applied;             /* writes applied since the group began    */
} store_t;

static uint64_t fnv64(uint64_t h, const void *data, size_t len) {
  const uint8_t *p = data;
  for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}
#define FNV_INIT 0xcbf29ce484222325ull

/* store_init allocates a store for cap keys (the table twice as many
   slots, rounded up to a power of two).  Returns 0, -1 out of memory. */
static int store_init(store_t *s, uint32_t cap) {
  uint32_t slots = 2;
  while (slots < 2 * cap) slots *= 2;
  s->cap = cap;
  s->mask = slots - 1;
  s->ents = calloc(cap, sizeof *s->ents);
  s->free_idx = calloc(cap, sizeof *s->free_idx);
  s->table = calloc(slots, sizeof *s->table);
  s->order = calloc(cap, sizeof *s->order);
  if (!s->ents || !s->free_idx || !s->table || !s->order) return -1;
  for (uint32_t i = 0; i < cap; i++) s->free_idx[i] = cap - 1 - i;
  s->free_cnt = cap;
  return 0;
}

/* store_clear empties the store (before a snapshot is loaded). */
static void store_clear(store_t *s) {
  memset(s->table, 0, ((size_t)s->mask + 1) * sizeof *s->table);
  for (uint32_t i = 0; i < s->cap; i++) s->free_idx[i] = s->cap - 1 - i;
  s->free_cnt = s->cap;
  s->cnt = 0;
  s->applied = 0;
}

/* store_slot returns the slot holding key, or the empty slot where it
   would go (table[slot] == 0). */
static uint32_t store_slot(const store_t *s, const char *key, size_t klen, uint64_t h) {
  uint32_t i = (uint32_t)h & s->mask;
  for (;;) {
    uint32_t e = s->table[i];
    if (!e) return i;
    const entry_t *en = &s->ents[e - 1];
    if (en->hash == h && en->klen == klen && !memcmp(en->key, key, klen)) return i;
    i = (i + 1) & s->mask;
  }
}

/* store_get returns the entry of key, or NULL. */
static entry_t *store_get(const store_t *s, const char *key, size_t klen) {
  uint32_t e = s->table[store_slot(s, key, klen, fnv64(FNV_INIT, key, klen))];
  return e ? &s->ents[e - 1] : NULL;
}

/* store_put sets key to val.  Returns 0, -1 when the store is full. */
static int store_put(store_t *s, const char *key, size_t klen, const char *val, size_t vlen) {
  uint64_t h = fnv64(FNV_INIT, key, klen);
  uint32_t slot = store_slot(s, key, klen, h);
  entry_t *en;
  if (s->table[slot]) {
    en = &s->ents[s->table[slot] - 1];
  } else {
    if (!s->free_cnt) return -1;
    uint32_t idx = s->free_idx[--s->free_cnt];
    en = &s->ents[idx];
    en->hash = h;
    en->klen = (uint16_t)klen;
    memcpy(en->key, key, klen);
    s->table[slot] = idx + 1;
    s->cnt++;
  }
  en->vlen = (uint16_t)vlen;
  memcpy(en->val, val, vlen);
  return 0;
}

/* store_del removes key.  Returns 0, -1 when it was absent.  Deletion
   shifts later entries of the probe run back, so lookups never need
   tombstones. */
static int store_del(store_t *s, const char *key, size_t klen) {
  uint32_t i = store_slot(s, key, klen, fnv64(FNV_INIT, key, klen));
  if (!s->table[i]) return -1;
  s->free_idx[s->free_cnt++] = s->table[i] - 1;
  s->cnt--;
  s->table[i] = 0;
  for (uint32_t j = (i + 1) & s->mask; s->table[j]; j = (j + 1) & s->mask) {
    uint32_t home = (uint32_t)s->ents[s->table[j] - 1].hash & s->mask;
    /* The entry at j may move to the hole at i only if its home slot is
       not cyclically in (i, j]. */
    int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (stays) continue;
    s->table[i] = s->table[j];
    s->table[j] = 0;
    i = j;
  }
  return 0;
}

static const entry_t *sort_ents;
static int cmp_entries(const void *a, const void *b) {
  const entry_t *x = &sort_ents[*(const uint32_t *)a], *y = &sort_ents[*(const uint32_t *)b];
  size_t n = x->klen < y->klen ? x->klen : y->klen;
  int c = memcmp(x->key, y->key, n);
  return c ? c : (int)x->klen - (int)y->klen;
}

/* store_sort fills s->order with the entries in key order; returns the
   count.  Snapshots and digests use it, so they do not depend on where
   each replica's table happened to place its keys. */
static uint32_t store_sort(store_t *s) {
  uint32_t n = 0;
  for (uint32_t i = 0; i <= s->mask; i++)
    if (s->table[i]) s->order[n++] = s->table[i] - 1;
  sort_ents = s->ents;
  qsort(s->order, n, sizeof *s->order, cmp_entries);
  return n;
}

static uint64_t store_digest(store_t *s) {
  uint64_t h = FNV_INIT;
  uint32_t n = store_sort(s);
  for (uint32_t i = 0; i < n; i++) {
    const entry_t *e = &s->ents[s->order[i]];
    uint8_t lens[3] = { (uint8_t)e->klen, (uint8_t)(e->vlen >> 8), (uint8_t)e->vlen };
    h = fnv64(h, lens, 3);
    h = fnv64(h, e->key, e->klen);
    h = fnv64(h, e->val, e->vlen);
  }
  return h;
}

static void put_u16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put_u32(uint8_t *p, uint32_t v) { put_u16(p, (uint16_t)(v >> 16)); put_u16(p + 2, (uint16_t)v); }
static void put_u64(uint8_t *p, uint64_t v) { put_u32(p, (uint32_t)(v >> 32)); put_u32(p + 4, (uint32_t)v); }
static uint16_t get_u16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get_u32(const uint8_t *p) { return (uint32_t)get_u16(p) << 16 | get_u16(p + 2); }
static uint64_t get_u64(const uint8_t *p) { return (uint64_t)get_u32(p) << 32 | get_u32(p + 4); }

/* store_snapshot serialises the store into a new buffer (*out, *len).
   Returns 0, -1 out of memory. */
static int store_snapshot(store_t *s, uint8_t **out, size_t *len) {
  uint32_t n = store_sort(s);
  size_t sz = SNAP_HDR + 4;
  for (uint32_t i = 0; i < n; i++) sz += 3 + s->ents[s->order[i]].klen + s->ents[s->order[i]].vlen;
  uint8_t *b = malloc(sz), *p = b + SNAP_HDR;
  if (!b) return -1;
  put_u32(b, SNAP_MAGIC);
  put_u16(b + 4, SNAP_VERSION);
  put_u16(b + 6, 0);
  put_u64(b + 8, s->applied);
  put_u32(b + 16, n);
  for (uint32_t i = 0; i < n; i++) {
    const entry_t *e = &s->ents[s->order[i]];
    *p++ = (uint8_t)e->klen;
    put_u16(p, e->vlen);
    memcpy(p + 2, e->key, e->klen);
    memcpy(p + 2 + e->klen, e->val, e->vlen);
    p += 2 + e->klen + e->vlen;
  }
  put_u32(p, vsx_crc32c(0, b, (size_t)(p - b)));
  VSX_ASSERT((size_t)(p + 4 - b) == sz);
  *out = b;
  *len = sz;
  return 0;
}

/* store_restore replaces the store with a snapshot.  Returns NULL, or
   what is wrong with it (the store is then undefined: the caller exits). */
static const char *store_restore(store_t *s, const uint8_t *b, size_t len, char *why, size_t why_cap) {
  if (len < SNAP_HDR + 4) return "shorter than its header";
  if (get_u32(b) != SNAP_MAGIC) return "not a vsx-kv snapshot (bad magic): is another program using this group?";
  if (get_u16(b + 4) != SNAP_VERSION) {
    snprintf(why, why_cap, "snapshot version %u, this vsx-kv reads version %u: run the same vsx-kv version everywhere",
             get_u16(b + 4), SNAP_VERSION);
    return why;
  }
  if (get_u32(b + len - 4) != vsx_crc32c(0, b, len - 4)) return "checksum mismatch (corrupted in transfer)";
  uint32_t n = get_u32(b + 16);
  if (n > s->cap) {
    snprintf(why, why_cap, "the group's store holds %u keys, more than --capacity %u: restart with --capacity %u or more",
             n, s->cap, n);
    return why;
  }
  store_clear(s);
  s->applied = get_u64(b + 8);
  const uint8_t *p = b + SNAP_HDR, *end = b + len - 4;
  for (uint32_t i = 0; i < n; i++) {
    if (end - p < 3) return "truncated entry";
    size_t kl = p[0], vl = get_u16(p + 1);
    if (!kl || kl > KEY_MAX || !vl || vl > VAL_MAX) return "an entry's key or value length is out of range";
    if ((size_t)(end - p) < 3 + kl + vl) return "truncated entry";
    if (store_get(s, (const char *)p + 3, kl)) return "a key appears twice";
    if (store_put(s, (const char *)p + 3, kl, (const char *)p + 3 + kl, vl)) return "more keys than declared";
    p += 3 + kl + vl;
  }
  if (p != end) return "bytes after the last entry";
  return NULL;
}

/* ---- the replica ---- */

typedef struct client {
  int fd, used, eof, closing, discarding;
  uint32_t gen;            /* bumped at close: stale answers are dropped  */
  uint32_t writes;         /* writes sent on its behalf, not answered     */
  ev_io rio, wio;
  size_t in_len, out_off, out_len;
  char in[LINE_CAP];
  char out[OUT_CAP];
} client_t;

typedef struct req {       /* one write of a client, queued or in flight  */
  uint32_t client, gen;
  uint64_t wseq;
  uint16_t len;
  uint8_t msg[MSG_MAX];
} req_t;

typedef struct ring { uint32_t *idx, cap, head, cnt; } ring_t;

typedef struct listener {
  int fd;
  ev_io w;
  char path[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* unix: to unlink */
} listener_t;

typedef struct kv {
  vsx_endpoint_t *ep;
  struct ev_loop *loop;
  ev_idle kick;            /* runs the clients and the queue once more    */
  ev_signal sigterm, sigint;
  store_t store;
  uint64_t eid, wseq;      /* my writes cast so far (trace seq)           */
  uint32_t quorum, rank, view_cnt;
  int failed;
  client_t *clients;
  uint32_t client_cnt, client_max;
  req_t *reqs;
  uint32_t *req_free, req_free_cnt;
  ring_t queued;           /* not cast yet (view change, flow control)    */
  ring_t inflight;         /* cast, not delivered yet: in my cast order   */
  listener_t lis[LISTEN_MAX];
  uint32_t lis_cnt;
  uint8_t *snap;           /* state_get's buffer, until the view callback */
  uint8_t *put_buf;        /* state_put's pieces                          */
  uint64_t put_got, put_total;
  uint64_t bad_msgs, order_errors, retried, refused;
  int casting;             /* inside vsx_endpoint_cast of write cast_seq   */
  uint64_t cast_seq;
  struct {                 /* that write, if the cast delivered it at once */
    int got, res, svc;
    size_t len, cur_len;
    uint32_t crc;
    char cur[VAL_MAX];
  } early;
} kv_t;

static void ring_push(ring_t *r, uint32_t v) {
  VSX_ASSERT(r->cnt < r->cap);
  r->idx[(r->head + r->cnt++) % r->cap] = v;
}
static uint32_t ring_pop(ring_t *r) {
  VSX_ASSERT(r->cnt > 0);
  uint32_t v = r->idx[r->head];
  r->head = (r->head + 1) % r->cap;
  r->cnt--;
  return v;
}

static void kick(kv_t *kv) { ev_idle_start(kv->loop, &kv->kick); }

/* ---- client output ---- */

/* client_close closes a connection; answers still owed to it are
   dropped (its generation changes). */
static void client_close(kv_t *kv, client_t *c) {
  ev_io_stop(kv->loop, &c->rio);
  ev_io_stop(kv->loop, &c->wio);
  close(c->fd);
  c->fd = -1;
  c->used = 0;
  c->gen++;
  c->writes = 0;
  kv->client_cnt--;
}

/* client_flush writes what the client is owed, as far as its socket
   takes it (the rest when it is writable again), and closes a client that
   is done (closing, nothing owed). */
static void client_flush(kv_t *kv, client_t *c) {
  while (c->out_len > c->out_off) {
    ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      ev_io_start(kv->loop, &c->wio);
      return;
    }
    if (n <= 0) { /* the client went away: nothing more to tell it */
      client_close(kv, c);
      return;
    }
    c->out_off += (size_t)n;
  }
  c->out_off = c->out_len = 0;
  ev_io_stop(kv->loop, &c->wio);
  if (c->closing && !c->writes) client_close(kv, c);
}

/* reply appends one answer line; the caller made sure it fits (OUT_CAP
   holds every answer a client may be owed). */
static void reply(client_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply(client_t *c, const char *fmt, ...) {
  if (c->out_off && c->out_off == c->out_len) c->out_off = c->out_len = 0;
  if (c->out_off && OUT_CAP - c->out_len < ANSWER_MAX) { /* compact */
    memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
    c->out_len -= c->out_off;
    c->out_off = 0;
  }
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(c->out + c->out_len, OUT_CAP - c->out_len - 1, fmt, ap);
  va_end(ap);
  VSX_ASSERT(n > 0 && (size_t)n < ANSWER_MAX && c->out_len + (size_t)n + 1 <= OUT_CAP);
  c->out_len += (size_t)n;
  c->out[c->out_len++] = '\n';
}

static size_t out_free(const client_t *c) { return OUT_CAP - (c->out_len - c->out_off); }

/* req_client: the client that sent request r, or NULL if it has gone
   (a client that left does not get the answers of its writes). */
static client_t *req_client(kv_t *kv, const req_t *r) {
  client_t *c = &kv->clients[r->client];
  return c->used && c->gen == r->gen ? c : NULL;
}

/* req_free returns request i to the pool; c (if not NULL) has one write
   fewer outstanding.  Waiting clients may go on: kick. */
static void req_free(kv_t *kv, uint32_t i, client_t *c) {
  if (c) c->writes--;
  kv->req_free[kv->req_free_cnt++] = i;
  kick(kv);
}

/* ---- writes: cast, deliver, apply ---- */

/* view_ok: the current view has --quorum members. */
static int view_ok(const kv_t *kv) { return kv->view_cnt >= kv->quorum; }

enum { RES_OK, RES_NOTFOUND, RES_FAIL, RES_FAIL_ABSENT, RES_FULL };
static void answer_own(kv_t *kv, uint32_t i, int res, const char *cur, size_t cur_len);

/* flush_queue casts queued writes while the endpoint takes them. */
static void flush_queue(kv_t *kv) {
  while (kv->queued.cnt) {
    uint32_t i = kv->queued.idx[kv->queued.head];
    req_t *r = &kv->reqs[i];
    if (vsx_endpoint_can_send(kv->ep) == VSX_ERR_BLOCKED) return; /* the view callback kicks us */
    if (vsx_endpoint_can_send(kv->ep) == VSX_OK && !view_ok(kv)) {
      ring_pop(&kv->queued);
      client_t *c = req_client(kv, r);
      if (c) {
        reply(c, "ERR unavailable: this replica is in a view of %u member(s), --quorum is %u; retry later or on "
                 "another replica", kv->view_cnt, kv->quorum);
        client_flush(kv, c);
      }
      kv->refused++;
      req_free(kv, i, req_client(kv, r));
      continue;
    }
    /* In flight before the cast: alone in a view, the cast delivers
       it at once. */
    uint64_t seq = kv->wseq + 1;
    put_u64(r->msg + 16, seq);
    r->wseq = seq;
    ring_pop(&kv->queued);
    ring_push(&kv->inflight, i);
    kv->casting = 1;
    kv->cast_seq = seq;
    kv->early.got = 0;
    int err = vsx_endpoint_cast(kv->ep, VSX_SVC_SAFE, r->msg, r->len);
    kv->casting = 0;
    if (err) { /* not sent: back to the front of the queue */
      VSX_ASSERT(!kv->early.got);
      VSX_ASSERT(kv->inflight.cnt && kv->inflight.idx[(kv->inflight.head + kv->inflight.cnt - 1) % kv->inflight.cap] == i);
      kv->inflight.cnt--;
      kv->queued.head = (kv->queued.head + kv->queued.cap - 1) % kv->queued.cap;
      kv->queued.idx[kv->queued.head] = i;
      kv->queued.cnt++;
    }
    if (err == VSX_ERR_AGAIN) return; /* flow control: the flow callback kicks us */
    if (err == VSX_ERR_BLOCKED) return;
    if (err) { /* left the group, or a bug: the write was not sent */
      ring_pop(&kv->queued);
      client_t *c = req_client(kv, r);
      if (c) {
        reply(c, "ERR not sent: %s; retry on another replica", vsx_strerror(err));
        client_flush(kv, c);
      }
      req_free(kv, i, req_client(kv, r));
      continue;
    }
    kv->wseq = seq;
    vsx_trace_t *tr = vsx_endpoint_trace(kv->ep);
    vsx_trace_send(tr, VSX_SVC_SAFE, seq, r->len, vsx_crc32c(0, r->msg, r->len), 0);
    if (kv->early.got) {
      VSX_ASSERT(kv->inflight.cnt && kv->inflight.idx[kv->inflight.head] == i);
      vsx_trace_deliver(tr, kv->eid, (vsx_svc_t)kv->early.svc, seq, kv->early.len, kv->early.crc);
      answer_own(kv, ring_pop(&kv->inflight), kv->early.res, kv->early.cur, kv->early.cur_len);
    }
  }
}

/* apply runs one write on the store, the same way at every replica.
   *cur is the current value for RES_FAIL. */
static int apply(kv_t *kv, int op, const char *k, size_t kl, const char *a, size_t al, const char *b, size_t bl,
                 const entry_t **cur) {
  store_t *s = &kv->store;
  s->applied++;
  if (op == OP_PUT) return store_put(s, k, kl, a, al) ? RES_FULL : RES_OK;
  if (op == OP_DEL) return store_del(s, k, kl) ? RES_NOTFOUND : RES_OK;
  const entry_t *e = store_get(s, k, kl);
  if (!e) return RES_FAIL_ABSENT;
  if (e->vlen != al || memcmp(e->val, a, al)) {
    *cur = e;
    return RES_FAIL;
  }
  store_put(s, k, kl, b, bl); /* the key exists: cannot be full */
  return RES_OK;
}

/* answer_own answers the client of my write i with the outcome res
   (cur, cur_len: the current value for RES_FAIL) and frees it. */
static void answer_own(kv_t *kv, uint32_t i, int res, const char *cur, size_t cur_len) {
  client_t *c = req_client(kv, &kv->reqs[i]);
  if (c) {
    switch (res) {
    case RES_OK: reply(c, "OK"); break;
    case RES_NOTFOUND: reply(c, "NOTFOUND"); break;
    case RES_FAIL: reply(c, "FAIL %.*s", (int)cur_len, cur); break;
    case RES_FAIL_ABSENT: reply(c, "FAIL"); break;
    default:
      reply(c, "ERR full: the store holds --capacity %u keys; delete keys or restart the group with a larger "
               "--capacity", kv->store.cap);
    }
    client_flush(kv, c);
  }
  req_free(kv, i, req_client(kv, &kv->reqs[i]));
}

static void on_deliver(void *user, vsx_endpoint_t *ep, uint32_t from, vsx_svc_t svc, const vsx_iovl_t *msg) {
  kv_t *kv = user;
  uint8_t m[MSG_MAX];
  size_t len = vsx_iovl_len(msg);
  (void)from;
  if (len < MSG_HDR || len > MSG_MAX) goto bad;
  vsx_iovl_gather(msg, 0, m, len);
  int op = m[1];
  size_t kl = get_u16(m + 2), al = get_u16(m + 4), bl = get_u16(m + 6);
  uint64_t origin = get_u64(m + 8), wseq = get_u64(m + 16);
  uint32_t crc = vsx_crc32c(0, m, len);
  /* Alone in a view, my cast is delivered inside vsx_endpoint_cast,
     before the trace has its send: the delivery's trace line and answer
     wait for the cast to return (flush_queue). */
  int early = kv->casting && origin == kv->eid && wseq == kv->cast_seq;
  if (!early) vsx_trace_deliver(vsx_endpoint_trace(ep), origin, svc, wseq, len, crc);
  if (m[0] != MSG_VERSION || op < OP_PUT || op > OP_CAS || MSG_HDR + kl + al + bl != len || !kl || kl > KEY_MAX ||
      al > VAL_MAX || bl > VAL_MAX)
    goto bad;
  const char *k = (const char *)m + MSG_HDR;
  const entry_t *cur = NULL;
  int res = apply(kv, op, k, kl, k + kl, al, k + kl + al, bl, &cur);
  if (origin != kv->eid) return;
  /* My own write: my casts come back in the order I cast them. */
  if (!kv->inflight.cnt || kv->reqs[kv->inflight.idx[kv->inflight.head]].wseq != wseq) {
    if (!kv->order_errors++)
      fprintf(stderr, PROG ": my write %llu was delivered out of order: a library bug, please report it\n",
              (unsigned long long)wseq);
    return;
  }
  if (early) {
    kv->early.got = 1;
    kv->early.svc = svc;
    kv->early.len = len;
    kv->early.crc = crc;
    kv->early.res = res;
    kv->early.cur_len = cur ? cur->vlen : 0;
    if (cur) memcpy(kv->early.cur, cur->val, cur->vlen);
    return;
  }
  answer_own(kv, ring_pop(&kv->inflight), res, cur ? cur->val : NULL, cur ? cur->vlen : 0);
  return;
bad:
  /* Every replica gets the same bytes and ignores them the same way. */
  if (!kv->bad_msgs++) fprintf(stderr, PROG ": ignored a malformed write (%zu bytes): is another program in this group?\n", len);
}

/* on_flow: flow control ended: the queue may go out. */
static void on_flow(void *user, vsx_endpoint_t *ep, int blocked) {
  kv_t *kv = user;
  (void)ep;
  if (!blocked) kick(kv); /* casts are taken again: send the queue */
}

/* on_view: a new view.  Ends the old view's business: the snapshot
   buffer, and my writes it did not deliver. */
static void on_view(void *user, vsx_endpoint_t *ep, const vsx_view_t *v, uint32_t rank) {
  kv_t *kv = user;
  (void)ep;
  free(kv->snap); /* state_get's buffer lives until here */
  kv->snap = NULL;
  free(kv->put_buf);
  kv->put_buf = NULL;
  kv->rank = rank;
  kv->view_cnt = v->member_cnt;
  /* My writes of the ended view that I did not deliver: I am in the new
     view, so safe delivery says nobody in it delivered them either, but
     members that are not (another partition) may have: the fate is
     unknown, so the client must check and retry. */
  while (kv->inflight.cnt) {
    uint32_t i = ring_pop(&kv->inflight);
    client_t *c = req_client(kv, &kv->reqs[i]);
    if (c) {
      reply(c, "ERR retry: view changed before the write was delivered; it may or may not have been applied, read "
               "the key and retry");
      client_flush(kv, c);
    }
    kv->retried++;
    req_free(kv, i, c);
  }
  kick(kv);
}

/* on_state_get: a new member needs the store: a snapshot that stays
   valid until the view callback. */
static int on_state_get(void *user, vsx_endpoint_t *ep, const void **data, size_t *len) {
  kv_t *kv = user;
  (void)ep;
  free(kv->snap);
  kv->snap = NULL;
  if (store_snapshot(&kv->store, &kv->snap, len)) return VSX_ERR_NOMEM;
  *data = kv->snap;
  return VSX_OK;
}

/* fail_state: the state received is unusable; the replica stops (its
   store would differ from the group's). */
static void fail_state(kv_t *kv, const char *why) {
  fprintf(stderr, PROG ": the state received from the group is unusable: %s\n", why);
  kv->failed = 1;
  ev_break(kv->loop, EVBREAK_ALL);
}

/* on_state_put: a piece of the group's store; the last one replaces mine. */
static void on_state_put(void *user, vsx_endpoint_t *ep, const void *data, size_t len, uint64_t offset,
                         uint64_t total) {
  kv_t *kv = user;
  (void)ep;
  if (kv->failed) return;
  if (offset == 0) { /* a transfer (re)starts */
    free(kv->put_buf);
    kv->put_got = 0;
    kv->put_total = total;
    uint64_t most = SNAP_HDR + 4 + (uint64_t)kv->store.cap * SNAP_ENTRY_MAX;
    if (total > most) {
      char why[200];
      snprintf(why, sizeof why, "%llu bytes, more than --capacity %u keys can hold: restart with a larger --capacity",
               (unsigned long long)total, kv->store.cap);
      fail_state(kv, why);
      return;
    }
    if (!(kv->put_buf = malloc(total ? total : 1))) {
      fail_state(kv, "out of memory for it");
      return;
    }
  }
  if (!kv->put_buf || offset != kv->put_got || total != kv->put_total || len > total - offset) {
    fail_state(kv, "pieces out of order (a library bug, please report it)");
    return;
  }
  memcpy(kv->put_buf + offset, data, len);
  kv->put_got += len;
  if (kv->put_got < total) return;
  char why[200];
  const char *err = store_restore(&kv->store, kv->put_buf, total, why, sizeof why);
  free(kv->put_buf);
  kv->put_buf = NULL;
  if (err) fail_state(kv, err);
}

/* on_exit_cb: this member is out of the group for good: stop. */
static void on_exit_cb(void *user, vsx_endpoint_t *ep, const char *reason) {
  kv_t *kv = user;
  (void)ep;
  fprintf(stderr, PROG ": out of the group: %s\n", reason);
  kv->failed = 1;
  ev_break(kv->loop, EVBREAK_ALL);
}

/* ---- the line protocol ---- */

/* tokens splits line in place on spaces and tabs (ending each token with
   a NUL); returns the count (at most cap; one more means "too many"). */
static int tokens(char *line, char **tok, size_t *tlen, int cap) {
  int n = 0;
  char *p = line;
  for (;;) {
    while (*p == ' ' || *p == '\t') p++;
    if (!*p) return n;
    if (n == cap) return cap + 1;
    tok[n] = p;
    while (*p && *p != ' ' && *p != '\t') p++;
    tlen[n] = (size_t)(p - tok[n]);
    n++;
    if (*p) *p++ = 0; /* each token its own string */
  }
}

static int is_write(const char *cmd) { return !strcasecmp(cmd, "put") || !strcasecmp(cmd, "del") || !strcasecmp(cmd, "cas"); }

/* check_item: an error answer if a key or value is empty, too long or has
   control bytes; NULL if fine. */
static const char *check_item(const char *what, const char *s, size_t len, size_t max, char *buf, size_t cap) {
  if (len > max) {
    snprintf(buf, cap, "ERR %s too long: %zu bytes, at most %zu", what, len, max);
    return buf;
  }
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
      snprintf(buf, cap, "ERR %s holds a control byte (0x%02x): keys and values are printable", what, (unsigned char)s[i]);
      return buf;
    }
  return NULL;
}

/* cmd_stats answers the stats command: the replica's counters and the
   endpoint's. */
static void cmd_stats(kv_t *kv, client_t *c) {
  vsx_endpoint_stats_t st;
  vsx_endpoint_get_stats(kv->ep, &st);
  /* The current view's merge layer: whether this replica hears other
     partitions' coordinators and asks to merge (a replica left alone). */
  vsx_stack_t *stk = vsx_endpoint_stack(kv->ep);
  uint64_t heals_sent = vsx_stack_stat(stk, "inter", "heals_sent"), heals_recv = vsx_stack_stat(stk, "inter", "heals_recv");
  uint64_t merge_requests = vsx_stack_stat(stk, "inter", "requests_sent");
  reply(c, "STATS keys=%u applied=%llu view=%u rank=%u quorum=%u pending=%u queued=%u clients=%u retried=%llu "
           "refused=%llu bad=%llu casts=%llu delivered=%llu views=%llu retransmits=%llu state_in=%llu state_out=%llu "
           "rx=%llu tx=%llu heals_sent=%llu heals_recv=%llu merge_requests=%llu", kv->store.cnt, (unsigned long long)kv->store.applied, kv->view_cnt, kv->rank, kv->quorum,
        kv->inflight.cnt, kv->queued.cnt, kv->client_cnt, (unsigned long long)kv->retried,
        (unsigned long long)kv->refused, (unsigned long long)kv->bad_msgs, (unsigned long long)st.casts,
        (unsigned long long)st.delivered, (unsigned long long)st.views, (unsigned long long)st.retransmits,
        (unsigned long long)st.state_bytes_in, (unsigned long long)st.state_bytes_out,
        (unsigned long long)st.rx_datagrams, (unsigned long long)st.tx_datagrams, (unsigned long long)heals_sent,
        (unsigned long long)heals_recv, (unsigned long long)merge_requests);
}

/* run_read answers a command that is not a write (also errors). */
static void run_read(kv_t *kv, client_t *c, char **tok, size_t *tl, int n) {
  char err[ANSWER_MAX];
  const char *cmd = tok[0];
  int want = !strcasecmp(cmd, "get") ? 2 : 1;
  if (!strcasecmp(cmd, "get") || !strcasecmp(cmd, "stats") || !strcasecmp(cmd, "digest") || !strcasecmp(cmd, "quit")) {
    if (n != want) {
      reply(c, "ERR usage: %s", want == 2 ? "get KEY" : cmd);
      return;
    }
  } else {
    reply(c, "ERR unknown command '%.40s': use put, get, del, cas, stats, digest or quit", cmd);
    return;
  }
  if (!strcasecmp(cmd, "quit")) {
    reply(c, "BYE");
    c->closing = 1;
    return;
  }
  if (!strcasecmp(cmd, "stats")) {
    cmd_stats(kv, c);
    return;
  }
  if (!view_ok(kv)) {
    reply(c, "ERR unavailable: this replica is in a view of %u member(s), --quorum is %u; retry later or on another "
             "replica", kv->view_cnt, kv->quorum);
    return;
  }
  if (!strcasecmp(cmd, "digest")) {
    uint64_t h = store_digest(&kv->store);
    reply(c, "DIGEST keys=%u applied=%llu hash=%016llx", kv->store.cnt, (unsigned long long)kv->store.applied,
          (unsigned long long)h);
    return;
  }
  const char *e = check_item("key", tok[1], tl[1], KEY_MAX, err, sizeof err);
  if (e) {
    reply(c, "%s", e);
    return;
  }
  const entry_t *en = store_get(&kv->store, tok[1], tl[1]);
  if (en) reply(c, "VALUE %.*s", (int)en->vlen, en->val);
  else reply(c, "NOTFOUND");
}

/* run_write checks a write and queues it; answers errors at once.
   Returns 1 if it became a request. */
static int run_write(kv_t *kv, client_t *c, char **tok, size_t *tl, int n) {
  char err[ANSWER_MAX];
  int op = !strcasecmp(tok[0], "put") ? OP_PUT : !strcasecmp(tok[0], "del") ? OP_DEL : OP_CAS;
  int want = op == OP_PUT ? 3 : op == OP_DEL ? 2 : 4;
  if (n != want) {
    reply(c, "ERR usage: %s", op == OP_PUT ? "put KEY VALUE" : op == OP_DEL ? "del KEY" : "cas KEY OLD NEW");
    return 0;
  }
  const char *e = check_item("key", tok[1], tl[1], KEY_MAX, err, sizeof err);
  for (int i = 2; !e && i < n; i++) e = check_item("value", tok[i], tl[i], VAL_MAX, err, sizeof err);
  if (e) {
    reply(c, "%s", e);
    return 0;
  }
  uint32_t i = kv->req_free[--kv->req_free_cnt];
  req_t *r = &kv->reqs[i];
  size_t al = n > 2 ? tl[2] : 0, bl = n > 3 ? tl[3] : 0;
  r->client = (uint32_t)(c - kv->clients);
  r->gen = c->gen;
  r->wseq = 0;
  r->msg[0] = MSG_VERSION;
  r->msg[1] = (uint8_t)op;
  put_u16(r->msg + 2, (uint16_t)tl[1]);
  put_u16(r->msg + 4, (uint16_t)al);
  put_u16(r->msg + 6, (uint16_t)bl);
  put_u64(r->msg + 8, kv->eid);
  put_u64(r->msg + 16, 0); /* the write's number, set when it is cast */
  memcpy(r->msg + MSG_HDR, tok[1], tl[1]);
  if (al) memcpy(r->msg + MSG_HDR + tl[1], tok[2], al);
  if (bl) memcpy(r->msg + MSG_HDR + tl[1] + al, tok[3], bl);
  r->len = (uint16_t)(MSG_HDR + tl[1] + al + bl);
  c->writes++;
  ring_push(&kv->queued, i);
  return 1;
}

/* client_pump runs the complete lines a client sent, in order, as far as
   resources allow: a write needs a free request and room for its answer,
   a read waits until every earlier write of the client is answered (so
   answers come in order and a client reads its own writes).  Whatever
   is left waits for the next kick. */
static void client_pump(kv_t *kv, client_t *c) {
  int queued = 0;
  while (c->used && !c->closing) {
    char *nl = memchr(c->in, '\n', c->in_len);
    if (!nl && c->in_len < LINE_CAP && !(c->eof && c->in_len)) break;
    if (c->discarding) { /* the rest of an overlong line */
      size_t drop = nl ? (size_t)(nl - c->in) + 1 : c->in_len;
      memmove(c->in, c->in + drop, c->in_len - drop);
      c->in_len -= drop;
      if (nl) c->discarding = 0;
      continue;
    }
    if (!nl && c->in_len == LINE_CAP) { /* no newline in a whole buffer */
      if (c->writes || out_free(c) < ANSWER_MAX) break;
      reply(c, "ERR line too long: a command line is at most %d bytes", LINE_CAP - 1);
      c->discarding = 1;
      continue;
    }
    size_t line_len = nl ? (size_t)(nl - c->in) : c->in_len; /* at EOF: a last line without newline */
    size_t drop = nl ? line_len + 1 : line_len;
    char line[LINE_CAP + 1];
    memcpy(line, c->in, line_len);
    line[line_len] = 0;
    if (line_len && line[line_len - 1] == '\r') line[--line_len] = 0;
    char *tok[5];
    size_t tl[5];
    int n = tokens(line, tok, tl, 4);
    int write = n > 0 && is_write(tok[0]);
    if (n > 0) {
      if (write && (c->writes >= CLIENT_WRITES_MAX || !kv->req_free_cnt || out_free(c) < (c->writes + 2) * ANSWER_MAX)) break;
      if (!write && (c->writes || out_free(c) < ANSWER_MAX)) break;
    }
    memmove(c->in, c->in + drop, c->in_len - drop);
    c->in_len -= drop;
    if (n == 0) continue; /* an empty line: no answer */
    if (write) queued |= run_write(kv, c, tok, tl, n);
    else run_read(kv, c, tok, tl, n);
  }
  if (queued) flush_queue(kv);
  if (!c->used) return;
  if (c->eof && !c->in_len) c->closing = 1; /* everything it sent is run */
  if (!c->eof && !c->closing && c->in_len < LINE_CAP) ev_io_start(kv->loop, &c->rio);
  else ev_io_stop(kv->loop, &c->rio);
  client_flush(kv, c);
}

/* client_read_cb: bytes from a client (or its end of input). */
static void client_read_cb(struct ev_loop *loop, ev_io *w, int revents) {
  kv_t *kv = ev_userdata(loop);
  client_t *c = w->data;
  (void)revents;
  if (c->in_len == LINE_CAP) { /* full: client_pump reads on when it made room */
    ev_io_stop(loop, &c->rio);
    return;
  }
  ssize_t n = read(c->fd, c->in + c->in_len, LINE_CAP - c->in_len);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
  if (n < 0) {
    client_close(kv, c);
    return;
  }
  if (n == 0) c->eof = 1;
  c->in_len += (size_t)n;
  client_pump(kv, c);
}

/* client_write_cb: a client's socket takes output again. */
static void client_write_cb(struct ev_loop *loop, ev_io *w, int revents) {
  kv_t *kv = ev_userdata(loop);
  client_t *c = w->data;
  (void)revents;
  client_flush(kv, c);
  if (c->used) client_pump(kv, c); /* room for answers again */
}

/* accept_cb takes new connections on a listener; beyond --max-clients
   one gets ERR busy and is closed. */
static void accept_cb(struct ev_loop *loop, ev_io *w, int revents) {
  kv_t *kv = ev_userdata(loop);
  listener_t *l = w->data;
  (void)revents;
  for (;;) {
    int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return; /* EAGAIN, or a client that gave up already */
    client_t *c = NULL;
    for (uint32_t i = 0; i < kv->client_max && !c; i++)
      if (!kv->clients[i].used) c = &kv->clients[i];
    if (!c) {
      static const char busy[] = "ERR busy: too many clients (--max-clients); retry later or raise --max-clients\n";
      ssize_t ignored = write(fd, busy, sizeof busy - 1);
      (void)ignored;
      close(fd);
      continue;
    }
    c->fd = fd;
    c->used = 1;
    c->eof = c->closing = c->discarding = 0;
    c->writes = 0;
    c->in_len = c->out_off = c->out_len = 0;
    ev_io_init(&c->rio, client_read_cb, fd, EV_READ);
    ev_io_init(&c->wio, client_write_cb, fd, EV_WRITE);
    c->rio.data = c->wio.data = c;
    ev_io_start(kv->loop, &c->rio);
    kv->client_cnt++;
  }
}

/* kick_cb: once per loop turn after something freed resources (an answered
   write, the end of a view change or of flow control), run the queue and
   every client's waiting lines.  An idle watcher rather than a direct call
   keeps vsx callbacks from re-entering the clients. */
static void kick_cb(struct ev_loop *loop, ev_idle *w, int revents) {
  kv_t *kv = ev_userdata(loop);
  (void)w;
  (void)revents;
  ev_idle_stop(loop, &kv->kick);
  flush_queue(kv);
  for (uint32_t i = 0; i < kv->client_max; i++)
    if (kv->clients[i].used) client_pump(kv, &kv->clients[i]);
}

/* stop_cb: SIGTERM or SIGINT: leave the loop; main cleans up. */
static void stop_cb(struct ev_loop *loop, ev_signal *w, int revents) {
  (void)w;
  (void)revents;
  ev_break(loop, EVBREAK_ALL);
}

/* ---- start-up ---- */

static void usage(FILE *out) {
  fprintf(out,
          "usage: " PROG " --listen tcp:HOST:PORT|unix:PATH [--listen ...] [options]\n"
          "A replicated key-value store: this process is one replica of a vsx group; clients speak a line\n"
          "protocol (put KEY VALUE, get KEY, del KEY, cas KEY OLD NEW, stats, digest, quit) on the listeners.\n"
          "Writes are safe casts applied by every replica in one order; reads are local.  See docs/vsx-kv.md.\n\n"
          "  --listen tcp:HOST:PORT  accept clients on TCP (HOST may be 0.0.0.0)   } one or more,\n"
          "  --listen unix:PATH      accept clients on a Unix socket                } at most %d\n"
          "  --name NAME         this replica's name in logs and traces (default kv-PID)\n"
          "  --group NAME        the group (default vsx-kv): replicas of one store share it\n"
          "  --transport T       udp (default) or afxdp (root, an interface)\n"
          "  --if IFACE          interface (afxdp: required; udp: whose address to use)\n"
          "  --mcast A.B.C.D     udp multicast group address (replicas on a network)\n"
          "  --peer IP:PORT      udp unicast: another replica's --port address (repeat; at most %d);\n"
          "                      for replicas on one host, without multicast\n"
          "  --port P            udp port: the group's (multicast) or this replica's own (unicast) (default 7400)\n"
          "  --quorum N          refuse writes and reads in a view of fewer than N members (default 1); give a\n"
          "                      majority of the replicas you run (2 of 3) so a partition's minority side, or a\n"
          "                      replica that starts before it finds the group, takes no writes\n"
          "  --capacity N        keys the store holds (default 16384); keys <= %d bytes, values <= %d bytes\n"
          "  --max-clients N     connections at once (default 64)\n"
          "  --max-pending N     writes queued or in flight, all clients together (default 1024)\n"
          "  --fail-ms MS        a silent member is excluded after MS ms (default 500)\n"
          "  --trace DIR         write the JSONL trace of this member into DIR (default: $VSX_TRACE_DIR if set)\n"
          "  --help              this text\n",
          LISTEN_MAX, PEER_MAX, KEY_MAX, VAL_MAX);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, PROG ": ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  exit(2);
}

static uint32_t parse_count(const char *opt, const char *arg, uint32_t lo, uint32_t hi) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(arg, &end, 10);
  if (errno || end == arg || *end || v < lo || v > hi)
    die("bad %s '%s': give a whole number from %u to %u", opt, arg, lo, hi);
  return (uint32_t)v;
}

/* open_listener binds one --listen address; exits with a message on error. */
static void open_listener(kv_t *kv, const char *spec) {
  if (kv->lis_cnt == LISTEN_MAX) die("too many --listen (at most %d)", LISTEN_MAX);
  listener_t *l = &kv->lis[kv->lis_cnt];
  int fd = -1;
  if (!strncmp(spec, "unix:", 5)) {
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    const char *path = spec + 5;
    if (!*path || strlen(path) >= sizeof sa.sun_path)
      die("bad --listen '%s': the Unix socket path must be 1 to %zu bytes", spec, sizeof sa.sun_path - 1);
    strcpy(sa.sun_path, path);
    struct stat st;
    /* A socket file left by a replica that was killed: reuse its name. */
    if (!stat(path, &st) && S_ISSOCK(st.st_mode)) unlink(path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) || listen(fd, 64))
      die("cannot listen on %s: %s: give a path in a writable directory that is not in use", spec, strerror(errno));
    strcpy(l->path, path);
  } else if (!strncmp(spec, "tcp:", 4)) {
    char host[256];
    const char *colon = strrchr(spec + 4, ':');
    if (!colon || colon == spec + 4 || (size_t)(colon - spec - 4) >= sizeof host || !colon[1])
      die("bad --listen '%s': write tcp:HOST:PORT, e.g. tcp:127.0.0.1:7600", spec);
    memcpy(host, spec + 4, (size_t)(colon - spec - 4));
    host[colon - spec - 4] = 0;
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *ai;
    int gai = getaddrinfo(host, colon + 1, &hints, &ai);
    if (gai) die("bad --listen '%s': %s", spec, gai_strerror(gai));
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 64))
      die("cannot listen on %s: %s: choose another port or stop what uses it", spec, strerror(errno));
    freeaddrinfo(ai);
  } else {
    die("bad --listen '%s': write tcp:HOST:PORT or unix:PATH", spec);
  }
  l->fd = fd;
  ev_io_init(&l->w, accept_cb, fd, EV_READ);
  l->w.data = l;
  kv->lis_cnt++;
}

int main(int argc, char **argv) {
  enum { O_LISTEN = 256, O_NAME, O_GROUP, O_TRANSPORT, O_IF, O_MCAST, O_PEER, O_PORT, O_QUORUM, O_CAPACITY,
         O_MAX_CLIENTS, O_MAX_PENDING, O_FAIL_MS, O_TRACE, O_HELP };
  static const struct option lo[] = {
    { "listen", 1, 0, O_LISTEN }, { "name", 1, 0, O_NAME }, { "group", 1, 0, O_GROUP },
    { "transport", 1, 0, O_TRANSPORT }, { "if", 1, 0, O_IF }, { "mcast", 1, 0, O_MCAST }, { "peer", 1, 0, O_PEER },
    { "port", 1, 0, O_PORT }, { "quorum", 1, 0, O_QUORUM }, { "capacity", 1, 0, O_CAPACITY },
    { "max-clients", 1, 0, O_MAX_CLIENTS }, { "max-pending", 1, 0, O_MAX_PENDING }, { "fail-ms", 1, 0, O_FAIL_MS },
    { "trace", 1, 0, O_TRACE }, { "help", 0, 0, O_HELP }, { 0, 0, 0, 0 } };
  static kv_t kv;
  const char *listen_spec[LISTEN_MAX + 1], *peers[PEER_MAX], *trace_dir = NULL, *ifname = NULL;
  const char *group = "vsx-kv", *transport = "udp";
  char name[64];
  uint32_t listen_cnt = 0, peer_cnt = 0, capacity = 16384, max_pending = 1024, fail_ms = 0;
  uint16_t port = 7400;
  struct in_addr mcast = { 0 };
  snprintf(name, sizeof name, "kv-%d", (int)getpid());
  kv.client_max = 64;
  kv.quorum = 1;
  int c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
    switch (c) {
    case O_LISTEN:
      if (listen_cnt == LISTEN_MAX) die("too many --listen (at most %d)", LISTEN_MAX);
      listen_spec[listen_cnt++] = optarg;
      break;
    case O_NAME:
      if (!*optarg || strlen(optarg) >= sizeof name) die("bad --name: 1 to %zu bytes", sizeof name - 1);
      strcpy(name, optarg);
      break;
    case O_GROUP: group = optarg; break;
    case O_TRANSPORT:
      if (strcmp(optarg, "udp") && strcmp(optarg, "afxdp")) die("bad --transport '%s': give udp or afxdp", optarg);
      transport = optarg;
      break;
    case O_IF: ifname = optarg; break;
    case O_MCAST:
      if (!inet_aton(optarg, &mcast) || (ntohl(mcast.s_addr) >> 28) != 14)
        die("bad --mcast '%s': give an IPv4 multicast address (224.0.0.0/4), e.g. 239.255.0.1", optarg);
      break;
    case O_PEER:
      if (peer_cnt == PEER_MAX) die("too many --peer (at most %d): one reachable replica is enough", PEER_MAX);
      peers[peer_cnt++] = optarg;
      break;
    case O_PORT: port = (uint16_t)parse_count("--port", optarg, 1, 65535); break;
    case O_QUORUM: kv.quorum = parse_count("--quorum", optarg, 1, VSX_MEMBERS_MAX); break;
    case O_CAPACITY: capacity = parse_count("--capacity", optarg, 1, 1u << 24); break;
    case O_MAX_CLIENTS: kv.client_max = parse_count("--max-clients", optarg, 1, 65536); break;
    case O_MAX_PENDING: max_pending = parse_count("--max-pending", optarg, 1, 1u << 20); break;
    case O_FAIL_MS: fail_ms = parse_count("--fail-ms", optarg, 20, 600000); break;
    case O_TRACE: trace_dir = optarg; break;
    case O_HELP: usage(stdout); return 0;
    default:
      fprintf(stderr, PROG ": unknown option or missing value: '%s'; see --help\n", argv[optind - 1]);
      return 2;
    }
  }
  if (optind < argc) die("unexpected argument '%s': every setting is an --option; see --help", argv[optind]);
  if (!listen_cnt) die("no --listen: give --listen tcp:HOST:PORT or --listen unix:PATH so clients can reach this replica");
  if (mcast.s_addr && peer_cnt) die("--mcast and --peer exclude each other: multicast finds the replicas by itself");
  if (!strcmp(transport, "afxdp") && !ifname) die("--transport afxdp needs --if IFACE (or use --transport udp)");
  if (!strcmp(transport, "afxdp") && peer_cnt) die("--peer is for --transport udp; afxdp needs --mcast");

  signal(SIGPIPE, SIG_IGN); /* a client that went away is an error on its write, not our death */
  if (store_init(&kv.store, capacity)) die("out of memory for --capacity %u", capacity);
  kv.clients = calloc(kv.client_max, sizeof *kv.clients);
  kv.reqs = calloc(max_pending, sizeof *kv.reqs);
  kv.req_free = calloc(max_pending, sizeof *kv.req_free);
  kv.queued.idx = calloc(max_pending, sizeof(uint32_t));
  kv.inflight.idx = calloc(max_pending, sizeof(uint32_t));
  if (!kv.clients || !kv.reqs || !kv.req_free || !kv.queued.idx || !kv.inflight.idx)
    die("out of memory for --max-clients %u and --max-pending %u", kv.client_max, max_pending);
  kv.queued.cap = kv.inflight.cap = max_pending;
  for (uint32_t i = 0; i < max_pending; i++) kv.req_free[i] = max_pending - 1 - i;
  kv.req_free_cnt = max_pending;
  for (uint32_t i = 0; i < kv.client_max; i++) kv.clients[i].fd = -1;
  for (uint32_t i = 0; i < listen_cnt; i++) open_listener(&kv, listen_spec[i]);

  vsx_endpoint_opts_t eo;
  vsx_endpoint_opts_init(&eo);
  eo.group = group;
  eo.opt_name = name;
  eo.opt_transport_name = transport;
  eo.opt_ifname = ifname;
  eo.mcast_ip = ntohl(mcast.s_addr);
  eo.port = port;
  eo.opt_trace_dir = trace_dir;
  eo.fail_timeout_ms = fail_ms;
  if (fail_ms && fail_ms < 200) eo.heartbeat_ms = fail_ms / 4; /* at most half the timeout (default 100) */
  eo.cbs = (vsx_endpoint_cbs_t){ .deliver = on_deliver, .flow = on_flow, .view = on_view,
                                 .state_get = on_state_get, .state_put = on_state_put, .exit = on_exit_cb };
  eo.user = &kv;
  int err = vsx_endpoint_create(&eo, &kv.ep);
  if (err) die("cannot join the group: %s: %s", vsx_strerror(err), vsx_last_error());
  for (uint32_t i = 0; i < peer_cnt; i++)
    if ((err = vsx_endpoint_add_peer(kv.ep, peers[i])))
      die("bad --peer '%s': %s: %s", peers[i], vsx_strerror(err), vsx_last_error());
  kv.eid = vsx_endpoint_eid(kv.ep);
  kv.loop = ev_loop_new(EVFLAG_AUTO);
  if (!kv.loop) die("cannot create the event loop (libev)");
  ev_set_userdata(kv.loop, &kv);
  if ((err = vsx_endpoint_attach(kv.ep, kv.loop))) die("cannot attach to the event loop: %s", vsx_last_error());
  ev_idle_init(&kv.kick, kick_cb);
  ev_set_priority(&kv.kick, EV_MAXPRI); /* must run even while datagrams keep arriving */
  for (uint32_t i = 0; i < kv.lis_cnt; i++) ev_io_start(kv.loop, &kv.lis[i].w);
  ev_signal_init(&kv.sigterm, stop_cb, SIGTERM);
  ev_signal_init(&kv.sigint, stop_cb, SIGINT);
  ev_signal_start(kv.loop, &kv.sigterm);
  ev_signal_start(kv.loop, &kv.sigint);
  fprintf(stderr, PROG ": %s (member %016llx) serving %s%s in group '%s' over %s\n", name,
          (unsigned long long)kv.eid, listen_spec[0], listen_cnt > 1 ? " and more" : "", group, transport);

  ev_run(kv.loop, 0);

  for (uint32_t i = 0; i < kv.client_max; i++)
    if (kv.clients[i].used) client_close(&kv, &kv.clients[i]);
  for (uint32_t i = 0; i < kv.lis_cnt; i++) {
    close(kv.lis[i].fd);
    if (kv.lis[i].path[0]) unlink(kv.lis[i].path);
  }
  vsx_endpoint_detach(kv.ep);
  vsx_endpoint_destroy(kv.ep);
  ev_loop_destroy(kv.loop);
  free(kv.snap);
  free(kv.put_buf);
  if (kv.order_errors) fprintf(stderr, PROG ": %llu of my writes came back out of order\n", (unsigned long long)kv.order_errors);
  return kv.failed || kv.order_errors ? 1 : 0;
}
