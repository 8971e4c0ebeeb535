/* vsx_chat.c - vsx-chat: a group chat in a terminal, on the public vsx API.

   Every line typed on stdin is cast to the group in total order, so every
   member shows the same conversation in the same order:
       [bob] hello            a message from another member
     > [alice] hi bob         my own message, shown when the group delivers it
     * carol joined           membership, in words
   Membership lines: "X joined", "X left" (it said goodbye), "X failed"
   (one member gone without a goodbye: crashed or cut off), "partition:
   you are now with ..." (several gone at once without a goodbye), "merge:
   ... are together again" (members seen before come back), "you are in
   group G with ..." (the first view with company).  A process cannot tell
   a crash from a network cut, so these words describe what the views
   show; vsx itself guarantees only that every member of a view saw the
   same messages before it.

   Names: each message carries its sender's name; every member casts a
   small "name" message after each view, and a newcomer gets the roster
   of known names by state transfer, so names are known at once.  A view
   change is announced only when the names of everybody in it are known
   (or after a second, with endpoint ids in hex); lines delivered
   meanwhile are held back and printed after it, so output stays in the
   order things happened.

   stdin may be a terminal, a pipe or a fifo.  Typed lines wait until
   the group is found (or SETTLE_S of looking found nobody): a line cast
   while alone would reach nobody.  End of input (or /quit,
   Ctrl-C, SIGTERM) leaves the group gracefully: the lines typed so far
   are cast, then a goodbye, then vsx_endpoint_leave; the program exits
   when the group has taken it out (exit status 0).  --stay keeps running
   after end of input.  Flow control never loses a line: a cast refused
   with VSX_ERR_AGAIN (flow) or VSX_ERR_BLOCKED (view change) stays queued
   and is retried from the flow or view callback; while the queue is full
   stdin is not read.

   usage: vsx-chat --name NAME [--group G] [--transport udp|afxdp]
                   [--if IFNAME] [--mcast A.B.C.D | --peer IP:PORT ...]
                   [--port P] [--trace DIR] [--no-timestamps] [--stay]
                   [--stats]
   See docs/vsx-chat.md for sessions over UDP (no root) and AF_XDP. */
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vsx/vsx.h"
#include "vsx/trace.h"

#define PROG "vsx-chat"
#define NAME_MAX_SZ 32        /* bytes of a member's name                    */
#define TEXT_MAX_SZ 1000      /* bytes of one message; longer lines are cut
                                 into several messages                       */
#define QUEUE_CNT 64          /* typed lines waiting to be cast              */
#define ROSTER_CNT 256        /* names remembered (members come and go)     */
#define HOLD_CNT 256          /* output lines held behind an announcement   */
#define LINE_SZ (TEXT_MAX_SZ + NAME_MAX_SZ + 64)
#define NAMES_WAIT_S 1.0      /* how long an announcement waits for names   */
#define SETTLE_S 1.5          /* how long a new member looks for the group
                                 before casting typed lines (three of the
                                 membership's 500 ms discovery rounds)      */
#define HDR_SZ 16
#define MSG_MAX_SZ (HDR_SZ + NAME_MAX_SZ + TEXT_MAX_SZ)

/* The application's message, in network byte order:
     kind u8 ('L' line, 'N' name, 'B' goodbye), name_len u8, text_len u16,
     4 zero bytes, seq u64 (the sender's count of its casts, from 1: the
     trace's message id), then the name and the text. */
enum { MSG_LINE = 'L', MSG_NAME = 'N', MSG_BYE = 'B' };

typedef struct roster_ent {
  uint64_t eid;
  uint64_t touched;           /* when last used: the oldest goes first      */
  char name[NAME_MAX_SZ + 1]; /* "" until known                             */
  uint8_t said_bye;           /* cast a goodbye: its going is a leave       */
  uint8_t was_with_me;        /* was in one of my views: coming back = merge */
} roster_ent_t;

/* A view change waiting to be announced (see the top of the file). */
typedef struct announce {
  int active;
  int first_company;          /* my first view with anybody else            */
  uint32_t left_cnt, failed_cnt, joined_cnt, back_cnt;
  uint64_t left[VSX_MEMBERS_MAX], failed[VSX_MEMBERS_MAX];
  uint64_t joined[VSX_MEMBERS_MAX], back[VSX_MEMBERS_MAX];
  vsx_view_t view;
} announce_t;

typedef struct chat {
  vsx_endpoint_t *ep;
  struct ev_loop *loop;
  const char *name, *group;
  uint64_t eid;
  int timestamps, stay, stats;
  int input_done;             /* end of input, /quit or a signal            */
  int quitting;               /* /quit or a signal: leave even with --stay  */
  int bye_sent, leaving, exited, exit_status;
  int need_name;              /* the name cast of this view is still due   */
  int settled;                /* found the group, or looked long enough    */
  uint64_t seq, clock;
  uint64_t malformed;
  ev_io in;
  ev_signal sigint, sigterm;
  ev_timer names_wait, settle;
  /* input: bytes read but not yet a line, and lines not yet cast */
  char inbuf[2 * TEXT_MAX_SZ];
  size_t in_len;
  char queue[QUEUE_CNT][TEXT_MAX_SZ];
  uint16_t queue_len[QUEUE_CNT];
  uint32_t queue_head, queue_cnt;
  /* membership */
  roster_ent_t roster[ROSTER_CNT];
  vsx_view_t prev;
  int have_prev, had_company;
  announce_t ann;
  char held[HOLD_CNT][LINE_SZ];
  uint32_t held_cnt;
  /* state transfer: the roster as "eid u64, len u8, name" entries */
  uint8_t state_out[ROSTER_CNT * (9 + NAME_MAX_SZ)];
  uint8_t state_in[ROSTER_CNT * (9 + NAME_MAX_SZ)];
  size_t state_in_len;
} chat_t;

static void pump(chat_t *c);
static void announce_print(chat_t *c);

/* ---- output ---------------------------------------------------------------------- */

/* clean replaces control bytes (a terminal escape in somebody's message)
   with '?'; UTF-8 passes. */
static void clean(char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f) *s = '?';
}

static void print_line(chat_t *c, const char *line) {
  if (c->timestamps) {
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    printf("%02d:%02d:%02d.%03ld ", tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
  }
  puts(line);
}

/* say prints one line that starts with marker (' ' message, '>' my
   message, '*' membership, '!' a problem), or holds it while a view
   change waits for names. */
static void say(chat_t *c, char marker, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(chat_t *c, char marker, const char *fmt, ...) {
  char line[LINE_SZ];
  line[0] = marker;
  line[1] = ' ';
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line + 2, sizeof line - 2, fmt, ap);
  va_end(ap);
  if (c->ann.active && marker != '*') {
    if (c->held_cnt < HOLD_CNT) {
      memcpy(c->held[c->held_cnt++], line, sizeof line);
      return;
    }
    announce_print(c); /* no more room: say it now, with ids for the unnamed */
  }
  print_line(c, line);
}

/* ---- roster ---------------------------------------------------------------------- */

static roster_ent_t *roster_find(chat_t *c, uint64_t eid) {
  for (uint32_t i = 0; i < ROSTER_CNT; i++)
    if (c->roster[i].eid == eid) return &c->roster[i];
  return NULL;
}

static int in_view(const vsx_view_t *v, uint64_t eid) {
  for (uint32_t i = 0; i < v->member_cnt; i++)
    if (v->members[i] == eid) return 1;
  return 0;
}

/* roster_get returns eid's entry, making one if needed: a free one, else
   the least recently used of the members not in the current view.  Never
   NULL: the roster is larger than a view. */
static roster_ent_t *roster_get(chat_t *c, uint64_t eid) {
  roster_ent_t *e = roster_find(c, eid), *victim = NULL;
  if (!e) {
    const vsx_view_t *v = c->have_prev ? &c->prev : NULL;
    for (uint32_t i = 0; i < ROSTER_CNT && !e; i++) {
      roster_ent_t *r = &c->roster[i];
      if (!r->eid) e = r;
      else if ((!v || !in_view(v, r->eid)) && (!victim || r->touched < victim->touched)) victim = r;
    }
    if (!e) e = victim;
    memset(e, 0, sizeof *e);
    e->eid = eid;
  }
  e->touched = ++c->clock;
  return e;
}

static void roster_name(chat_t *c, uint64_t eid, const char *name, size_t len) {
  roster_ent_t *e = roster_get(c, eid);
  if (len > NAME_MAX_SZ) len = NAME_MAX_SZ;
  memcpy(e->name, name, len);
  e->name[len] = 0;
  clean(e->name);
}

/* name_of: the member's name, or its endpoint id in hex while unknown
   (the string lives until the next call with the same slot). */
static const char *name_of(chat_t *c, uint64_t eid) {
  static char hex[4][20];
  static unsigned next;
  if (eid == c->eid) return c->name;
  roster_ent_t *e = roster_find(c, eid);
  if (e && e->name[0]) return e->name;
  char *h = hex[next++ % 4];
  snprintf(h, sizeof hex[0], "%016llx", (unsigned long long)eid);
  return h;
}

/* join_names writes "a", "a and b", "a, b and c" into out. */
static void join_names(chat_t *c, const uint64_t *eids, uint32_t cnt, char *out, size_t cap) {
  size_t n = 0;
  out[0] = 0;
  for (uint32_t i = 0; i < cnt && n < cap; i++) {
    const char *sep = i == 0 ? "" : i + 1 == cnt ? " and " : ", ";
    n += (size_t)snprintf(out + n, cap - n, "%s%s", sep, name_of(c, eids[i]));
  }
}

/* ---- view changes in words ------------------------------------------------------- */

static int all_named(chat_t *c, const uint64_t *eids, uint32_t cnt) {
  for (uint32_t i = 0; i < cnt; i++) {
    roster_ent_t *e = roster_find(c, eids[i]);
    if (eids[i] != c->eid && (!e || !e->name[0])) return 0;
  }
  return 1;
}

/* announce_print says what the pending view change was, then prints the
   lines held behind it. */
static void announce_print(chat_t *c) {
  announce_t *a = &c->ann;
  char names[VSX_MEMBERS_MAX * (NAME_MAX_SZ + 8)];
  uint64_t others[VSX_MEMBERS_MAX];
  uint32_t other_cnt = 0;
  for (uint32_t i = 0; i < a->view.member_cnt; i++)
    if (a->view.members[i] != c->eid) others[other_cnt++] = a->view.members[i];
  a->active = 0;
  ev_timer_stop(c->loop, &c->names_wait);
  for (uint32_t i = 0; i < a->left_cnt; i++) say(c, '*', "%s left", name_of(c, a->left[i]));
  if (a->failed_cnt == 1) {
    say(c, '*', "%s failed", name_of(c, a->failed[0]));
  } else if (a->failed_cnt > 1) {
    join_names(c, others, other_cnt, names, sizeof names);
    if (other_cnt) say(c, '*', "partition: you are now with %s", names);
    else say(c, '*', "partition: you are now alone");
  }
  if (a->first_company) {
    join_names(c, others, other_cnt, names, sizeof names);
    say(c, '*', "you are in group '%s' with %s", c->group, names);
  } else {
    if (a->back_cnt) {
      join_names(c, a->view.members, a->view.member_cnt, names, sizeof names);
      say(c, '*', "merge: %s are together again", names);
    }
    for (uint32_t i = 0; i < a->joined_cnt; i++) say(c, '*', "%s joined", name_of(c, a->joined[i]));
  }
  for (uint32_t i = 0; i < c->held_cnt; i++) print_line(c, c->held[i]);
  c->held_cnt = 0;
}

static void announce_try(chat_t *c) {
  if (c->ann.active && all_named(c, c->ann.view.members, c->ann.view.member_cnt)) announce_print(c);
}

static void names_wait_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop;
  (void)revents;
  chat_t *c = w->data;
  if (c->ann.active) announce_print(c); /* with ids in hex for the unnamed */
}

/* ---- casting --------------------------------------------------------------------- */

/* cast_msg casts one message of kind with text; returns what the cast
   returned (VSX_ERR_AGAIN / _BLOCKED: try again later). */
static int cast_msg(chat_t *c, int kind, const char *text, size_t text_len) {
  uint8_t buf[MSG_MAX_SZ];
  size_t name_len = strlen(c->name);
  uint64_t seq = c->seq + 1;
  buf[0] = (uint8_t)kind;
  buf[1] = (uint8_t)name_len;
  buf[2] = (uint8_t)(text_len >> 8);
  buf[3] = (uint8_t)text_len;
  memset(buf + 4, 0, 4);
  for (int i = 0; i < 8; i++) buf[8 + i] = (uint8_t)(seq >> (56 - 8 * i));
  memcpy(buf + HDR_SZ, c->name, name_len);
  memcpy(buf + HDR_SZ + name_len, text, text_len);
  size_t len = HDR_SZ + name_len + text_len;
  int err = vsx_endpoint_cast(c->ep, VSX_SVC_TOTAL, buf, len);
  if (err == VSX_OK) {
    c->seq = seq;
    vsx_trace_send(vsx_endpoint_trace(c->ep), VSX_SVC_TOTAL, seq, len, vsx_crc32c(0, buf, len), 0);
  } else if (err != VSX_ERR_AGAIN && err != VSX_ERR_BLOCKED && err != VSX_ERR_STATE) {
    say(c, '!', "cannot send: %s: %s", vsx_strerror(err), vsx_last_error());
  }
  return err;
}

static void take_input(chat_t *c);

/* pump casts what is due, in order: this view's name announcement, the
   queued lines, then (input over) the goodbye and the leave.  It stops
   at the first refusal; the flow or view callback calls it again. */
static void pump(chat_t *c) {
  if (c->exited || c->leaving) return;
  if (c->need_name) {
    if (cast_msg(c, MSG_NAME, "", 0) != VSX_OK) return;
    c->need_name = 0;
  }
  /* A line cast while still alone would reach nobody (there is no
     history): typed lines wait until the group is found, or a few
     discovery rounds show there is nobody yet. */
  if (!c->settled) return;
  for (;;) {
    take_input(c); /* lines already read, as the queue makes room */
    if (!c->queue_cnt) break;
    uint32_t h = c->queue_head;
    if (cast_msg(c, MSG_LINE, c->queue[h], c->queue_len[h]) != VSX_OK) return;
    c->queue_head = (h + 1) % QUEUE_CNT;
    c->queue_cnt--;
  }
  if (!c->input_done) {
    if (!ev_is_active(&c->in) && c->in_len < sizeof c->inbuf) ev_io_start(c->loop, &c->in);
    return;
  }
  if (c->stay) return;
  if (!c->bye_sent) {
    if (cast_msg(c, MSG_BYE, "", 0) != VSX_OK) return;
    c->bye_sent = 1;
  }
  int err = vsx_endpoint_leave(c->ep);
  if (err == VSX_OK) c->leaving = 1;
  else if (err != VSX_ERR_AGAIN) say(c, '!', "cannot leave: %s: %s", vsx_strerror(err), vsx_last_error());
}

static void settle_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop;
  (void)revents;
  chat_t *c = w->data;
  c->settled = 1;
  if (!c->had_company) say(c, '*', "nobody else is in group '%s' yet", c->group);
  pump(c);
}

/* ---- input ----------------------------------------------------------------------- */

static void help_text(chat_t *c) {
  say(c, '*', "type a line to send it to everybody; /who lists the members, /quit leaves (so does end of input)");
}

static void who(chat_t *c) {
  const vsx_view_t *v = vsx_endpoint_view(c->ep);
  char names[VSX_MEMBERS_MAX * (NAME_MAX_SZ + 8)];
  join_names(c, v->members, v->member_cnt, names, sizeof names);
  say(c, '*', "%u in group '%s' (view %llu): %s", v->member_cnt, c->group, (unsigned long long)v->ltime, names);
}

/* line_in handles one line of input (without its newline). */
static void line_in(chat_t *c, char *line, size_t len) {
  if (len && line[len - 1] == '\r') len--;
  line[len] = 0;
  if (!len) return;
  if (!strcmp(line, "/quit")) {
    c->quitting = c->input_done = 1;
    c->stay = 0;
    ev_io_stop(c->loop, &c->in);
    return;
  }
  if (!strcmp(line, "/who")) { who(c); return; }
  if (!strcmp(line, "/help")) { help_text(c); return; }
  uint32_t t = (c->queue_head + c->queue_cnt++) % QUEUE_CNT;
  memcpy(c->queue[t], line, len);
  c->queue_len[t] = (uint16_t)len;
}

/* take_input moves complete lines from inbuf to the queue while it has
   room; a line longer than a message is cut (not inside a UTF-8
   character) and goes as several messages.  After end of input, what is
   left is the last line. */
static void take_input(chat_t *c) {
  while (c->queue_cnt < QUEUE_CNT && c->in_len) {
    char *nl = memchr(c->inbuf, '\n', c->in_len);
    size_t len, used;
    if (nl) {
      len = (size_t)(nl - c->inbuf);
      used = len + 1;
    } else if (c->in_len >= TEXT_MAX_SZ || c->input_done) {
      len = c->in_len;
      used = len;
    } else {
      break;
    }
    if (len >= TEXT_MAX_SZ) {
      len = TEXT_MAX_SZ - 1;
      while (len > 1 && ((unsigned char)c->inbuf[len] & 0xc0) == 0x80) len--;
      used = len;
    }
    char line[TEXT_MAX_SZ];
    memcpy(line, c->inbuf, len);
    memmove(c->inbuf, c->inbuf + used, c->in_len - used);
    c->in_len -= used;
    line_in(c, line, len);
  }
}

static void in_cb(struct ev_loop *loop, ev_io *w, int revents) {
  (void)revents;
  chat_t *c = w->data;
  ssize_t n = read(w->fd, c->inbuf + c->in_len, sizeof c->inbuf - c->in_len);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n <= 0) {
    if (n < 0) say(c, '!', "reading stdin: %s; leaving the group", strerror(errno));
    c->input_done = 1;
    ev_io_stop(loop, w);
  } else {
    c->in_len += (size_t)n;
  }
  take_input(c);
  /* Stop reading while the queue is full: the writer waits, nothing is lost. */
  if (c->queue_cnt == QUEUE_CNT || c->in_len == sizeof c->inbuf || c->input_done) ev_io_stop(loop, w);
  pump(c);
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents) {
  (void)revents;
  chat_t *c = w->data;
  if (c->quitting) { /* the second signal: stop without waiting */
    c->exit_status = 1;
    ev_break(loop, EVBREAK_ALL);
    return;
  }
  c->quitting = c->input_done = 1;
  c->stay = 0;
  ev_io_stop(loop, &c->in);
  pump(c);
}

/* ---- the endpoint's callbacks ---------------------------------------------------- */

static void on_deliver(void *user, vsx_endpoint_t *ep, uint32_t from, vsx_svc_t svc, const vsx_iovl_t *msg) {
  chat_t *c = user;
  uint8_t buf[MSG_MAX_SZ + 1];
  size_t len = vsx_iovl_len(msg);
  const vsx_view_t *v = vsx_endpoint_view(ep);
  if (len < HDR_SZ || len > MSG_MAX_SZ || from >= v->member_cnt) goto bad;
  vsx_iovl_gather(msg, 0, buf, len);
  size_t name_len = buf[1], text_len = (size_t)buf[2] << 8 | buf[3];
  uint64_t seq = 0, sender = v->members[from];
  for (int i = 0; i < 8; i++) seq = seq << 8 | buf[8 + i];
  if (HDR_SZ + name_len + text_len != len || name_len == 0 || name_len > NAME_MAX_SZ) goto bad;
  vsx_trace_deliver(vsx_endpoint_trace(ep), sender, svc, seq, len, vsx_crc32c(0, buf, len));
  roster_name(c, sender, (const char *)buf + HDR_SZ, name_len);
  char *text = (char *)buf + HDR_SZ + name_len;
  text[text_len] = 0;
  switch (buf[0]) {
  case MSG_LINE:
    clean(text);
    say(c, sender == c->eid ? '>' : ' ', "[%s] %s", name_of(c, sender), text);
    break;
  case MSG_NAME: announce_try(c); break;
  case MSG_BYE: roster_get(c, sender)->said_bye = 1; break;
  default: goto bad;
  }
  return;
bad:
  if (!c->malformed++) say(c, '!', "ignored a malformed message (%zu bytes) from rank %u: not vsx-chat?", len, from);
}

static void on_flow(void *user, vsx_endpoint_t *ep, int blocked) {
  (void)ep;
  if (!blocked) pump(user);
}

/* on_view compares the view with the previous one and announces the
   difference (once the names are known), then casts this view's name. */
static void on_view(void *user, vsx_endpoint_t *ep, const vsx_view_t *v, uint32_t rank) {
  chat_t *c = user;
  announce_t *a = &c->ann;
  (void)ep;
  (void)rank;
  if (a->active) announce_print(c); /* the view before: say it now, ids and all */
  memset(a, 0, sizeof *a);
  if (c->have_prev) {
    for (uint32_t i = 0; i < c->prev.member_cnt; i++) {
      uint64_t e = c->prev.members[i];
      if (in_view(v, e)) continue;
      roster_ent_t *r = roster_get(c, e);
      if (r->said_bye) a->left[a->left_cnt++] = e;
      else a->failed[a->failed_cnt++] = e;
    }
    for (uint32_t i = 0; i < v->member_cnt; i++) {
      uint64_t e = v->members[i];
      if (e == c->eid || in_view(&c->prev, e)) continue;
      roster_ent_t *r = roster_find(c, e);
      if (r && r->was_with_me) a->back[a->back_cnt++] = e;
      else a->joined[a->joined_cnt++] = e;
    }
  }
  for (uint32_t i = 0; i < v->member_cnt; i++) roster_get(c, v->members[i])->was_with_me = 1;
  if (v->member_cnt > 1 && !c->had_company) {
    a->first_company = 1;
    c->had_company = c->settled = 1;
    ev_timer_stop(c->loop, &c->settle);
  }
  a->view = *v;
  c->prev = *v;
  c->have_prev = 1;
  if (a->left_cnt || a->failed_cnt || a->joined_cnt || a->back_cnt || a->first_company) {
    a->active = 1;
    ev_timer_set(&c->names_wait, NAMES_WAIT_S, 0);
    ev_timer_start(c->loop, &c->names_wait);
    announce_try(c);
  }
  c->need_name = 1;
  pump(c);
}

static int on_state_get(void *user, vsx_endpoint_t *ep, const void **data, size_t *len) {
  chat_t *c = user;
  size_t n = 0;
  (void)ep;
  for (uint32_t i = 0; i < ROSTER_CNT; i++) {
    roster_ent_t *r = &c->roster[i];
    if (!r->eid || !r->name[0]) continue;
    size_t l = strlen(r->name);
    for (int k = 0; k < 8; k++) c->state_out[n + (size_t)k] = (uint8_t)(r->eid >> (56 - 8 * k));
    c->state_out[n + 8] = (uint8_t)l;
    memcpy(c->state_out + n + 9, r->name, l);
    n += 9 + l;
  }
  *data = c->state_out;
  *len = n;
  return VSX_OK;
}

static void on_state_put(void *user, vsx_endpoint_t *ep, const void *data, size_t len, uint64_t offset,
                         uint64_t total) {
  chat_t *c = user;
  (void)ep;
  if (offset == 0) c->state_in_len = 0;
  if (total > sizeof c->state_in || offset != c->state_in_len || offset + len > total) return; /* not ours */
  memcpy(c->state_in + offset, data, len);
  c->state_in_len += len;
  if (c->state_in_len != total) return;
  for (size_t n = 0; n + 9 <= total;) {
    uint64_t eid = 0;
    for (int k = 0; k < 8; k++) eid = eid << 8 | c->state_in[n + (size_t)k];
    size_t l = c->state_in[n + 8];
    if (n + 9 + l > total || l == 0 || l > NAME_MAX_SZ || !eid) break;
    if (eid != c->eid) roster_name(c, eid, (const char *)c->state_in + n + 9, l);
    n += 9 + l;
  }
}

static void on_block(void *user, vsx_endpoint_t *ep) {
  (void)user;
  (void)ep; /* casts now return VSX_ERR_BLOCKED and stay queued until the view */
}

static void on_exit_cb(void *user, vsx_endpoint_t *ep, const char *reason) {
  chat_t *c = user;
  (void)ep;
  if (c->ann.active) announce_print(c);
  c->exited = 1;
  if (!strcmp(reason, "leave")) {
    say(c, '*', "you left group '%s'", c->group);
  } else {
    say(c, '*', "you are out of group '%s': %s", c->group, reason);
    c->exit_status = 1;
  }
  ev_break(c->loop, EVBREAK_ALL);
}

/* ---- start-up -------------------------------------------------------------------- */

static void usage(FILE *f) {
  fprintf(f,
          "usage: " PROG " --name NAME [options]\n"
          "A group chat: lines typed on stdin go to every member in total order.\n"
          "  --name NAME          your name in the chat (1-%d letters, digits, '_', '-', '.'; default $USER)\n"
          "  --group G            the group to join (default chat)\n"
          "  --transport T        udp (default) or afxdp (needs root and --if)\n"
          "  --if IFNAME          interface: afxdp's, or udp's to join the multicast group on\n"
          "  --mcast A.B.C.D      the group's multicast address (default 239.255.42.42)\n"
          "  --port P             UDP port: the group's with multicast, this member's own with --peer\n"
          "                       (default 7400)\n"
          "  --peer IP:PORT       another member's address: UDP without multicast (e.g. on one host\n"
          "                       without root); repeat for more, one reachable member is enough\n"
          "  --trace DIR          write this member's JSONL trace into DIR (tests/checker/vsx_check.py)\n"
          "  --no-timestamps      no time in front of the lines (for scripts and tests)\n"
          "  --stay               keep running after the end of input (leave with Ctrl-C)\n"
          "  --stats              at exit, print the endpoint's counters to stderr\n"
          "  --help               this text\n"
          "In the chat: /who lists the members, /quit leaves (as end of input and Ctrl-C do).\n"
          "Example, two terminals on one host, no root:\n"
          "  " PROG " --name alice --port 7401 --peer 127.0.0.1:7402\n"
          "  " PROG " --name bob   --port 7402 --peer 127.0.0.1:7401\n",
          NAME_MAX_SZ);
}

static void die(const char *what, const char *todo) {
  fprintf(stderr, PROG ": %s: %s\n", what, todo);
  exit(2);
}

static int name_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > NAME_MAX_SZ) return 0;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || strchr("_-.", *s)))
      return 0;
  return 1;
}

typedef struct args {
  const char *transport, *ifname, *trace_dir, *peers[64];
  uint32_t peer_cnt, mcast_ip;
  uint16_t port;
} args_t;

static void parse_args(int argc, char **argv, chat_t *c, args_t *a) {
  static const struct option lo[] = {
    { "name", 1, 0, 'n' }, { "group", 1, 0, 'g' }, { "transport", 1, 0, 't' }, { "if", 1, 0, 'i' },
    { "mcast", 1, 0, 'm' }, { "port", 1, 0, 'p' }, { "peer", 1, 0, 'P' }, { "trace", 1, 0, 'T' },
    { "no-timestamps", 0, 0, 'S' }, { "stay", 0, 0, 's' }, { "stats", 0, 0, 'X' }, { "help", 0, 0, 'h' },
    { 0, 0, 0, 0 } };
  struct in_addr ia;
  int opt, mcast_given = 0;
  char *end;
  while ((opt = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
    switch (opt) {
    case 'n': c->name = optarg; break;
    case 'g': c->group = optarg; break;
    case 't': a->transport = optarg; break;
    case 'i': a->ifname = optarg; break;
    case 'm':
      if (!inet_aton(optarg, &ia) || (ntohl(ia.s_addr) >> 28) != 0xe)
        die("--mcast: not an IPv4 multicast address", "give one in 224.0.0.0/4, e.g. 239.255.42.42");
      a->mcast_ip = ntohl(ia.s_addr);
      mcast_given = 1;
      break;
    case 'p': {
      unsigned long p = strtoul(optarg, &end, 10);
      if (*end || p == 0 || p > 65535) die("--port: not a port number", "give 1-65535");
      a->port = (uint16_t)p;
      break;
    }
    case 'P':
      if (a->peer_cnt == VSX_ARRAY_CNT(a->peers)) die("--peer: too many", "give at most 64; one reachable member is enough");
      a->peers[a->peer_cnt++] = optarg;
      break;
    case 'T': a->trace_dir = optarg; break;
    case 'S': c->timestamps = 0; break;
    case 's': c->stay = 1; break;
    case 'X': c->stats = 1; break;
    case 'h': usage(stdout); exit(0);
    default: usage(stderr); exit(2);
    }
  }
  if (optind < argc) die("unexpected argument", "options only; see --help");
  if (!c->name) die("no name", "give --name NAME (or set $USER)");
  if (!name_ok(c->name)) die("--name: bad name", "use 1-32 letters, digits, '_', '-' or '.'");
  if (!*c->group) die("--group: empty", "give a group name");
  if (strcmp(a->transport, "udp") && strcmp(a->transport, "afxdp"))
    die("--transport: unknown", "use udp or afxdp");
  if (a->peer_cnt && mcast_given) die("--peer and --mcast together", "use --peer (unicast UDP) or --mcast, not both");
  if (a->peer_cnt && strcmp(a->transport, "udp"))
    die("--peer works only with --transport udp", "use --mcast with afxdp, or --transport udp");
  if (!strcmp(a->transport, "afxdp") && !a->ifname)
    die("--transport afxdp needs --if IFNAME", "name the interface (as root), or use --transport udp");
  if (!a->peer_cnt && !a->mcast_ip) a->mcast_ip = 0xefff2a2a; /* 239.255.42.42 */
}

static int start(chat_t *c, const args_t *a) {
  vsx_endpoint_opts_t o;
  vsx_endpoint_opts_init(&o);
  o.group = c->group;
  o.opt_name = c->name;
  o.opt_transport_name = a->transport;
  o.opt_ifname = a->ifname;
  o.mcast_ip = a->mcast_ip;
  o.port = a->port;
  o.opt_trace_dir = a->trace_dir;
  o.user = c;
  o.cbs = (vsx_endpoint_cbs_t){ .deliver = on_deliver, .flow = on_flow, .view = on_view, .block = on_block,
                                .state_get = on_state_get, .state_put = on_state_put, .exit = on_exit_cb };
  int err = vsx_endpoint_create(&o, &c->ep);
  if (err) {
    fprintf(stderr, PROG ": cannot join group '%s' over %s: %s: %s\n", c->group, a->transport, vsx_strerror(err),
            vsx_last_error());
    if (!strcmp(a->transport, "afxdp"))
      fprintf(stderr, PROG ": AF_XDP needs root and an interface; without them use --transport udp\n");
    return 2;
  }
  c->eid = vsx_endpoint_eid(c->ep);
  for (uint32_t i = 0; i < a->peer_cnt; i++) {
    if ((err = vsx_endpoint_add_peer(c->ep, a->peers[i]))) {
      fprintf(stderr, PROG ": --peer %s: %s: %s; give IPv4:PORT, e.g. 127.0.0.1:7402\n", a->peers[i],
              vsx_strerror(err), vsx_last_error());
      return 2;
    }
  }
  if ((err = vsx_endpoint_attach(c->ep, c->loop))) {
    fprintf(stderr, PROG ": cannot attach to the event loop: %s\n", vsx_last_error());
    return 2;
  }
  return 0;
}

/* print_stats: what the endpoint counted, for tests and the curious
   (refused = casts answered VSX_ERR_AGAIN by flow control and retried). */
static void print_stats(chat_t *c) {
  vsx_endpoint_stats_t st;
  vsx_endpoint_get_stats(c->ep, &st);
  fprintf(stderr, PROG ": %s: casts %llu, delivered %llu, views %llu, refused again %llu, refused blocked %llu, "
          "retransmits %llu, malformed %llu\n", c->name, (unsigned long long)st.casts,
          (unsigned long long)st.delivered, (unsigned long long)st.views, (unsigned long long)st.refused_again,
          (unsigned long long)st.refused_blocked, (unsigned long long)st.retransmits, (unsigned long long)c->malformed);
}

int main(int argc, char **argv) {
  static chat_t chat; /* large (held lines, queue): not on the stack */
  chat_t *c = &chat;
  args_t a = { .transport = "udp", .port = 7400 };
  c->name = getenv("USER");
  c->group = "chat";
  c->timestamps = 1;
  parse_args(argc, argv, c, &a);
  setvbuf(stdout, NULL, _IOLBF, 0); /* a pipe or file sees each line at once */
  signal(SIGPIPE, SIG_IGN);
  c->loop = ev_loop_new(EVFLAG_AUTO);
  if (!c->loop) die("cannot create the event loop", "check the process's file descriptor limit");
  /* The callbacks may use these timers as soon as the endpoint exists. */
  ev_timer_init(&c->names_wait, names_wait_cb, NAMES_WAIT_S, 0);
  c->names_wait.data = c;
  ev_timer_init(&c->settle, settle_cb, SETTLE_S, 0);
  c->settle.data = c;
  int rc = start(c, &a);
  if (rc) return rc;
  /* stdin without blocking: a read never stalls the group's protocol */
  int fl = fcntl(0, F_GETFL);
  if (fl >= 0) fcntl(0, F_SETFL, fl | O_NONBLOCK);
  ev_io_init(&c->in, in_cb, 0, EV_READ);
  c->in.data = c;
  ev_io_start(c->loop, &c->in);
  ev_timer_start(c->loop, &c->settle);
  ev_signal_init(&c->sigint, signal_cb, SIGINT);
  ev_signal_init(&c->sigterm, signal_cb, SIGTERM);
  c->sigint.data = c->sigterm.data = c;
  ev_signal_start(c->loop, &c->sigint);
  ev_signal_start(c->loop, &c->sigterm);
  say(c, '*', "you are %s (member %016llx); looking for group '%s' over %s", c->name, (unsigned long long)c->eid,
      c->group, a.transport);
  ev_run(c->loop, 0);
  if (fl >= 0) fcntl(0, F_SETFL, fl); /* the shell gets its terminal back as it was */
  if (c->stats) print_stats(c);
  vsx_endpoint_destroy(c->ep);
  ev_loop_destroy(c->loop);
  return c->exit_status;
}
