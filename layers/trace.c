/* trace.c - the JSONL member trace.  See include/vsx/trace.h. */
#include "vsx/trace.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FLUSH_NS 1000000000ull

struct vsx_trace {
  FILE *f;
  uint64_t eid;
  char vid[48];
  char path[1024];
  uint64_t (*clock)(void *);
  void *clock_ctx;
  uint64_t flushed_ns;  /* real monotonic time of the last flush */
  uint64_t errors;
  int exited;
};

static const char *const svc_names[] = { "?", "fifo", "total", "safe", "p2p" };

static uint64_t realtime_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t now_t(const vsx_trace_t *t) { return t->clock ? t->clock(t->clock_ctx) : realtime_ns(); }

static void check_io(vsx_trace_t *t) {
  if (!ferror(t->f)) return;
  if (!t->errors++) vsx_log(0, "trace %s: write failed: %s", t->path, strerror(errno));
  clearerr(t->f);
}

void vsx_trace_flush(vsx_trace_t *t) {
  if (!t) return;
  if (fflush(t->f)) { if (!t->errors++) vsx_log(0, "trace %s: flush failed: %s", t->path, strerror(errno)); }
  t->flushed_ns = vsx_now_ns();
}

void vsx_trace_tick(vsx_trace_t *t) {
  if (t && vsx_now_ns() - t->flushed_ns >= FLUSH_NS) vsx_trace_flush(t);
}

/* put_str writes a JSON string (escaped). */
static void put_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
    else if (c < 0x20) fprintf(f, "\\u%04x", c);
    else fputc(c, f);
  }
  fputc('"', f);
}

/* line_start writes {"ev":EV,"t":T,"me":ME and leaves the object open. */
static void line_start(vsx_trace_t *t, const char *ev) {
  fprintf(t->f, "{\"ev\":\"%s\",\"t\":%llu,\"me\":%llu", ev, (unsigned long long)now_t(t), (unsigned long long)t->eid);
}

static void line_end(vsx_trace_t *t) {
  fputs("}\n", t->f);
  check_io(t);
  vsx_trace_tick(t);
}

void vsx_trace_vid(const vsx_view_t *v, char *buf, size_t cap) {
  snprintf(buf, cap, "%llu:%llu", (unsigned long long)v->ltime, (unsigned long long)v->coord_eid);
}

int vsx_trace_open(const vsx_trace_opts_t *o, vsx_trace_t **out) {
  if (!out) return vsx_fail(VSX_ERR_INVAL, "trace_open: out is NULL");
  *out = NULL;
  if (!o || !o->dir || !*o->dir || !o->eid || !o->group || !o->transport)
    return vsx_fail(VSX_ERR_INVAL, "trace_open: dir, eid, group and transport are required");
  vsx_trace_t *t = calloc(1, sizeof *t);
  if (!t) return vsx_fail(VSX_ERR_NOMEM, "trace_open: out of memory");
  const char *name = o->opt_name ? o->opt_name : "member";
  int n = snprintf(t->path, sizeof t->path, "%s/%s-%016llx.jsonl", o->dir, name, (unsigned long long)o->eid);
  if (n < 0 || (size_t)n >= sizeof t->path) { free(t); return vsx_fail(VSX_ERR_INVAL, "trace_open: path too long"); }
  t->f = fopen(t->path, "w");
  if (!t->f) {
    int err = vsx_fail(VSX_ERR_IO, "trace_open: cannot create %s: %s (does the directory exist? VSX_TRACE_DIR)", t->path,
                       strerror(errno));
    free(t);
    return err;
  }
  t->eid = o->eid;
  t->clock = o->opt_clock;
  t->clock_ctx = o->opt_clock_ctx;
  t->flushed_ns = vsx_now_ns();
  snprintf(t->vid, sizeof t->vid, "none");
  line_start(t, "start");
  fputs(",\"name\":", t->f);
  put_str(t->f, name);
  fputs(",\"group\":", t->f);
  put_str(t->f, o->group);
  fputs(",\"transport\":", t->f);
  put_str(t->f, o->transport);
  line_end(t);
  *out = t;
  return VSX_OK;
}

void vsx_trace_close(vsx_trace_t *t) {
  if (!t) return;
  vsx_trace_flush(t);
  fclose(t->f);
  free(t);
}

void vsx_trace_view(vsx_trace_t *t, const vsx_view_t *v) {
  if (!t || t->exited) return;
  vsx_trace_vid(v, t->vid, sizeof t->vid);
  line_start(t, "view");
  fprintf(t->f, ",\"vid\":\"%s\",\"ltime\":%llu,\"members\":[", t->vid, (unsigned long long)v->ltime);
  for (uint32_t i = 0; i < v->member_cnt; i++) fprintf(t->f, "%s%llu", i ? "," : "", (unsigned long long)v->members[i]);
  fputc(']', t->f);
  if (v->flags & VSX_VIEW_PRIMARY) fputs(",\"primary\":true", t->f);
  line_end(t);
}

void vsx_trace_block(vsx_trace_t *t) {
  if (!t || t->exited) return;
  line_start(t, "block");
  fprintf(t->f, ",\"vid\":\"%s\"", t->vid);
  line_end(t);
}

void vsx_trace_send(vsx_trace_t *t, vsx_svc_t svc, uint64_t seq, size_t len, uint32_t crc, uint64_t to_eid) {
  if (!t || t->exited) return;
  line_start(t, "send");
  fprintf(t->f, ",\"vid\":\"%s\",\"svc\":\"%s\",\"seq\":%llu,\"len\":%zu,\"crc\":\"%08x\"", t->vid,
          svc_names[svc <= VSX_SVC_P2P ? svc : 0], (unsigned long long)seq, len, crc);
  if (svc == VSX_SVC_P2P) fprintf(t->f, ",\"to\":%llu", (unsigned long long)to_eid);
  line_end(t);
}

void vsx_trace_deliver(vsx_trace_t *t, uint64_t from_eid, vsx_svc_t svc, uint64_t seq, size_t len, uint32_t crc) {
  if (!t || t->exited) return;
  line_start(t, "deliver");
  fprintf(t->f, ",\"vid\":\"%s\",\"from\":%llu,\"svc\":\"%s\",\"seq\":%llu,\"len\":%zu,\"crc\":\"%08x\"", t->vid,
          (unsigned long long)from_eid, svc_names[svc <= VSX_SVC_P2P ? svc : 0], (unsigned long long)seq, len, crc);
  line_end(t);
}

void vsx_trace_exit(vsx_trace_t *t, const char *reason) {
  if (!t || t->exited) return;
  line_start(t, "exit");
  fputs(",\"reason\":", t->f);
  put_str(t->f, reason ? reason : "stop");
  line_end(t);
  t->exited = 1;
  vsx_trace_flush(t);
}

const char *vsx_trace_path(const vsx_trace_t *t) { return t ? t->path : ""; }
int vsx_trace_exited(const vsx_trace_t *t) { return t && t->exited; }
uint64_t vsx_trace_errors(const vsx_trace_t *t) { return t ? t->errors : 0; }
