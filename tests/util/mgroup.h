/* mgroup.h - a simulated group with dynamic membership, for the
   membership tests and the soak program.

   Processes start alone (opts.view = NULL, the VSX_STACK_VSYNC stack) on
   one simulated network and find each other.  The harness injects faults
   (crash, pause, partition, asymmetric links, loss bursts), joins and
   leaves, and drives traffic: every live, unblocked member casts and
   sends now and then.  Every payload carries its sender's id, the
   sender's own seq (casts and sends alike, from 1), the view it was sent
   in, its index among the sender's casts of that view (per destination
   for sends), and a CRC-32C of its body.

   In-process checks, as each event happens (a violation is recorded with
   the process, the view and the message; mgroup_errors returns the
   first):
     1 self inclusion, 2 monotonic views, 3 view agreement (a table of
     every view id seen), 4 integrity (sender in the view, bytes, no
     duplicate), 5 sending view delivery, 6 virtual synchrony (per
     transition V -> V', the set of casts delivered in V, compared across
     every process that took that transition), 7 FIFO without gaps, 10 a
     cast while blocked is refused with VSX_ERR_BLOCKED.
   And on demand, once faults stop: 12 convergence (mgroup_converged)
   and 11/13 delivery of every cast of the final view (mgroup_all_delivered),
   and with state transfer on, every member of the final view holds the
   same state.

   Traces: with VSX_TRACE_DIR set (or opts.trace_dir), every process
   writes the spec's JSONL trace into <dir>/<run name>/, and
   mgroup_run_checker runs tests/checker/vsx_check.py on it. */
#ifndef VSX_MGROUP_H
#define VSX_MGROUP_H

#include <stdio.h>
#include "vsx/endpoint.h"
#include "vsx/sim.h"
#include "vsx/trace.h"

#define MG_PROCS_MAX 24
#define MG_VIEWS_MAX 4096
#define MG_TRANS_MAX 8192

/* Fast membership timings for tests (virtual time is cheap but events
   are not): detection in 100 ms. */
#define MG_PARAMS_FAST "suspect.sweep_ms=20,suspect.timeout_ms=100,inter.heal_ms=100,inter.retry_ms=20," \
                       "inter.timeout_ms=400,intra.leave_ms=500,stable.sweep_ms=10,mnak.window=128,pt2pt.window=64"

typedef struct mg_proc {
  struct mgroup *g;
  uint32_t idx, grp;
  uint64_t eid;
  char name[16];
  vsx_endpoint_t *ep;
  int crashed, exited, leaving;
  uint64_t paused_until;      /* not polled before this (SIGSTOP)            */
  /* what it has installed */
  int has_view, blocked;
  vsx_view_t view;
  uint32_t rank, views;
  /* in the current view */
  uint32_t vs_cnt;            /* casts delivered                              */
  uint64_t vs_sum;            /* order-independent digest of them             */
  uint64_t vs_ord;            /* order-dependent digest (total order)         */
  uint32_t cast_k;            /* my casts sent                                */
  uint32_t send_k[VSX_MEMBERS_MAX];     /* my sends per destination rank   */
  uint32_t cast_got[VSX_MEMBERS_MAX];   /* casts delivered per origin rank */
  uint32_t send_got[VSX_MEMBERS_MAX];
  uint64_t seq;               /* my messages sent, casts and sends          */
  /* the view before the current one, as it ended here */
  vsx_view_t prev_view;
  uint32_t prev_cast_k;       /* my casts sent in it                          */
  uint32_t prev_cast_got[VSX_MEMBERS_MAX]; /* casts delivered in it, per rank */
  uint64_t delivered;
  uint32_t blocked_refusals;  /* casts tried while blocked (all refused)    */
  uint64_t flow_refusals;     /* casts answered VSX_ERR_AGAIN (flow control) */
  /* state transfer */
  uint64_t *state;            /* state_len/8 cells, additive digest         */
  uint8_t *state_in;          /* being received                             */
  uint64_t state_puts, state_gets;
  uint64_t errors;
  char first_error[320];
} mg_proc_t;

typedef struct mg_view_rec { uint64_t ltime, coord, digest; uint32_t cnt; } mg_view_rec_t;
typedef struct mg_trans_rec { uint64_t from_l, from_c, to_l, to_c, sum, ord; uint32_t cnt, proc; } mg_trans_rec_t;

typedef struct mg_opts {
  uint32_t n;                 /* processes started at once                    */
  vsx_sim_opts_t sim;         /* seed: the run's seed                          */
  const char *params;         /* layer parameters (NULL: MG_PARAMS_FAST)      */
  const char *stack;          /* NULL: VSX_STACK_VSYNC                         */
  uint32_t state_len;         /* > 0: state transfer on, this many bytes     */
  int primary;                /* primary-partition mode over the first n     */
  const char *trace_dir;      /* NULL: $VSX_TRACE_DIR; "": none               */
  const char *run_name;       /* the trace subdirectory (default run-SEED)    */
  uint32_t msg_min, msg_max;  /* payload body bytes (default 8..200)          */
  double cast_p, send_p;      /* per traffic tick (1 ms): chance to cast/send */
  uint32_t burst;             /* casts tried per tick when casting, stopping
                                 at the first VSX_ERR_AGAIN (0: 1)        */
  uint32_t linger_ms;         /* default 200                                  */
  vsx_svc_t svc;              /* the casts' service (0: fifo); with total or
                                 safe, property 8 is checked too: members
                                 that make the same transition delivered
                                 the same casts in the same order         */
  uint32_t groups;            /* > 1: process i is in group "mbr<i % groups>"
                                 (groups with different names sharing the
                                 network, hence the port)                 */
} mg_opts_t;

typedef struct mgroup {
  mg_opts_t o;
  uint64_t seed;
  vsx_sim_t *sim;
  vsx_rng_t rng;
  uint32_t n;                 /* processes so far (crashed ones included)   */
  mg_proc_t p[MG_PROCS_MAX];
  int traffic;                /* casts/sends flow                            */
  uint64_t tick_at;           /* next traffic tick                            */
  uint64_t primary_eids[MG_PROCS_MAX];
  uint32_t primary_cnt;
  char trace_dir[512];        /* "" when not tracing                          */
  mg_view_rec_t views[MG_VIEWS_MAX];
  uint32_t view_cnt;
  mg_trans_rec_t trans[MG_TRANS_MAX];
  uint32_t trans_cnt;
  uint64_t errors;
  char first_error[400];
  uint64_t stuck_steps;       /* steps without time moving               */
  char chaos_log[1024];       /* the faults of mgroup_chaos, last ones    */
} mgroup_t;

int  mgroup_create(mgroup_t *g, const mg_opts_t *o);
/* mgroup_destroy writes each live member's exit ("stop") and frees all. */
void mgroup_destroy(mgroup_t *g);

/* Processes. */
int  mgroup_spawn(mgroup_t *g);            /* a new process; its index or -1 */
void mgroup_crash(mgroup_t *g, uint32_t i);
void mgroup_pause(mgroup_t *g, uint32_t i, uint64_t ns);
int  mgroup_leave(mgroup_t *g, uint32_t i);
int  mgroup_alive(const mgroup_t *g, uint32_t i); /* not crashed, not exited */

/* Time. */
int  mgroup_step(mgroup_t *g, uint64_t limit_ns);
void mgroup_run(mgroup_t *g, uint64_t ns);
uint64_t mgroup_now(const mgroup_t *g);

/* Liveness checks (once faults stop). */
int mgroup_converged(const mgroup_t *g);
/* mgroup_wait_converged runs until converged (returns the virtual ns it
   took) or max_ns passed (returns UINT64_MAX). */
uint64_t mgroup_wait_converged(mgroup_t *g, uint64_t max_ns);
int mgroup_all_delivered(const mgroup_t *g, char *why, size_t cap);
/* mgroup_settle stops traffic, waits for convergence and for every cast
   to be delivered, checks the states agree; 1 on success, else 0 with the
   reason in why. */
int mgroup_settle(mgroup_t *g, uint64_t max_ns, char *why, size_t cap);

/* A random fault schedule: for duration_ns, every 20-400 ms one fault
   drawn from those allowed (crash, a new process joining, a pause, a
   random partition, a heal, an asymmetric link cut, a loss burst, a
   graceful leave), traffic flowing; then everything heals (links, sides,
   loss back to base_loss) and pauses end.  At least one process stays
   alive.  Returns the number of faults injected; their log goes to
   g->chaos_log (the last ones) so a failure can say what happened. */
typedef struct mg_chaos {
  uint64_t duration_ns;
  uint32_t procs_max;        /* joins stop there (<= MG_PROCS_MAX)       */
  double base_loss;
  uint32_t allow;            /* MG_F_* bits                               */
} mg_chaos_t;
enum { MG_F_CRASH = 1, MG_F_JOIN = 2, MG_F_PAUSE = 4, MG_F_PARTITION = 8, MG_F_ASYM = 16, MG_F_BURST = 32,
       MG_F_LEAVE = 64, MG_F_ALL = 127 };
uint32_t mgroup_chaos(mgroup_t *g, const mg_chaos_t *c);

/* mgroup_random_run is one random run, all of it: seed picks the size
   (3-5 processes), the loss (3% or 15%), state transfer and primary
   mode; the processes find each other, 3 s of random faults with
   traffic, then everything heals and the run must settle within
   settle_ns (convergence, delivery, equal states) with no violation.
   trace_dir: where to write the traces (NULL or "": none); with
   traces, the trace checker must pass too (and the run's directory is
   removed when it does, unless keep).  Returns 1 on success, else 0
   with the reason (and the fault log) in why.  g is scratch space. */
int mgroup_random_run(mgroup_t *g, uint64_t seed, const char *trace_dir, int keep, uint64_t settle_ns, char *why,
                      size_t cap);
/* mgroup_rm_run removes a run's trace directory. */
void mgroup_rm_run(const mgroup_t *g);

uint64_t mgroup_errors(const mgroup_t *g, char *first, size_t cap);
/* mgroup_describe prints every process's view and state (for failures). */
void mgroup_describe(const mgroup_t *g, FILE *out);

/* mgroup_run_checker flushes the traces and runs the checker on them:
   0 when it passes (or traces are off: *ran = 0), else its exit code,
   with its verdict line in verdict.  extra: more checker options. */
int mgroup_run_checker(mgroup_t *g, const char *extra, int *ran, char *verdict, size_t cap);

#endif
