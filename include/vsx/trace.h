/* vsx/trace.h - the JSONL trace of one member, as the spec defines it
   (../shared/spec/guarantees.md, "The trace"): one JSON object a line,
   events start, view, block, send, deliver and exit, so that a checker
   (tests/checker/vsx_check.py) can verify a run afterwards.

   WHO WRITES WHAT.  The library writes what it knows: start (when the
   endpoint exists), view (when the view callback runs), block (when the
   block callback runs) and exit.  The application writes send and
   deliver, because seq and crc are its own header in the payload (the
   probe's, the test harness's): the library cannot read them.  So an
   application calls vsx_trace_send after vsx_endpoint_cast/send
   returned VSX_OK, and vsx_trace_deliver from its deliver callback, on
   the handle vsx_endpoint_trace returns; the view id is filled in by the
   trace itself.

   FILES.  One file per member: <dir>/<name>-<eid in hex>.jsonl, created
   (truncated) at open.  Endpoint ids are written as JSON integers, view
   ids as "ltime:coordinator-eid" strings.  t is nanoseconds of
   CLOCK_REALTIME, or of a clock the caller gives (the simulator's
   virtual time, offset to a real epoch, so one run's files agree).
   Lines are buffered and flushed at least once a second of real time
   (on the next write or vsx_trace_tick) and at exit and close.

   ERRORS.  A trace never fails the member: a write error is counted
   (vsx_trace_errors) and logged once.

   MEMORY.  vsx_trace_open allocates the handle and a stdio buffer;
   nothing else allocates.  THREADS: one thread per handle. */
#ifndef VSX_TRACE_H
#define VSX_TRACE_H

#include "vsx/event.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vsx_trace vsx_trace_t;

typedef struct vsx_trace_opts {
  const char *dir;        /* directory for the file; required           */
  uint64_t eid;           /* the member's endpoint id; required         */
  const char *opt_name;   /* human name (file name and start event)     */
  const char *group;      /* group name; required                       */
  const char *transport;  /* "sim", "udp", "afxdp"; required            */
  uint64_t (*opt_clock)(void *ctx); /* t; NULL: CLOCK_REALTIME           */
  void *opt_clock_ctx;
} vsx_trace_opts_t;

/* vsx_trace_open creates the file and writes the start event.  Returns
   VSX_OK, VSX_ERR_INVAL (a required option missing) or VSX_ERR_IO (the
   file cannot be created: the message names it and errno). */
int  vsx_trace_open(const vsx_trace_opts_t *opts, vsx_trace_t **out);
/* vsx_trace_close flushes and closes; writes no event.  NULL is a no-op. */
void vsx_trace_close(vsx_trace_t *t);

/* Events.  Every function accepts t == NULL (tracing off) and does
   nothing then. */
void vsx_trace_view(vsx_trace_t *t, const vsx_view_t *view);
void vsx_trace_block(vsx_trace_t *t);
/* vsx_trace_send: seq is the sender's own counter (from 1, casts and
   sends alike), crc the CRC-32C of the payload; to_eid only for
   VSX_SVC_P2P (else ignored). */
void vsx_trace_send(vsx_trace_t *t, vsx_svc_t svc, uint64_t seq, size_t len, uint32_t crc, uint64_t to_eid);
void vsx_trace_deliver(vsx_trace_t *t, uint64_t from_eid, vsx_svc_t svc, uint64_t seq, size_t len, uint32_t crc);
/* vsx_trace_exit writes the exit event (once; later calls do nothing)
   and flushes.  Reasons the checker knows: "crash..." (the member died),
   "stop..." (alive at the end of the run), anything else (it left). */
void vsx_trace_exit(vsx_trace_t *t, const char *reason);
/* vsx_trace_tick flushes if a second of real time passed since the
   last flush (call it from a timer or poll loop). */
void vsx_trace_tick(vsx_trace_t *t);
void vsx_trace_flush(vsx_trace_t *t);

/* vsx_trace_vid writes the current view id ("ltime:coord") into buf. */
void vsx_trace_vid(const vsx_view_t *view, char *buf, size_t cap);
const char *vsx_trace_path(const vsx_trace_t *t);
int      vsx_trace_exited(const vsx_trace_t *t);
uint64_t vsx_trace_errors(const vsx_trace_t *t);

#ifdef __cplusplus
}
#endif
#endif
