/* total_check.h - a simulated group that checks total order and safe
   delivery as it happens.

   tc_create puts n endpoints (rank 0 is the sequencer) on one simulated
   network, in one fixed view, on a stack holding the seqbb layer and, right
   under it, a probe layer (tc_probe, registered here) that records which
   total/safe casts have reached each member below seqbb.  Each member's
   deliver callback checks, message by message:
   - integrity: the payload names its origin, its service and its number in
     its sender's stream and carries a CRC-32C of its bytes;
   - FIFO, exactly once, no gap: per origin, fifo casts arrive numbered
     0,1,2,... and total+safe casts (one stream) too;
   - total order: the k-th total/safe delivery of every member is the same
     message (the first member to reach k sets it; the others must match);
   - safe delivery: when a member delivers a safe cast at position k, every
     member already holds its data (the probe says so, independently of
     seqbb) and the data and order of every position up to k (seqbb's
     pos_ready > k).  The
     same test on total casts is counted separately (total_early): total
     casts may go before everyone has them, and in a lossy run some do, so
     the check demonstrably fires.
   The driver casts a seeded mix of fifo, total and safe as fast as flow
   control allows, and runs the virtual clock until everything is
   delivered everywhere or a time limit passes.

   Build note: tests/CMakeLists.txt compiles only testutil.c into
   vsx_testutil, so programs using this include total_check.c once. */
#ifndef VSX_TOTAL_CHECK_H
#define VSX_TOTAL_CHECK_H

#include <stdio.h>
#include "vsx/endpoint.h"
#include "vsx/sim.h"

#define TC_MAX 8
/* What the probe layer saw at one member (tests read rx_ord). */
typedef struct tc_probe {
  uint32_t rx_ord[VSX_MEMBERS_MAX]; /* per origin: total/safe casts arrived (they come in order) */
  uint64_t violations;              /* one arrived out of order or twice                       */
} tc_probe_t;

#define TC_SPEC "top:seqbb:tc_probe:frag:stable:pt2pt:mnak:bundle:bottom"

typedef struct tc_member {
  struct tc_group *g;
  vsx_endpoint_t *ep;
  uint32_t rank;
  uint32_t sent_fifo, sent_ord;           /* casts accepted, per stream        */
  uint32_t sent_safe;
  uint32_t got_fifo[TC_MAX], got_ord[TC_MAX]; /* delivered, per origin, stream */
  uint64_t got_safe, got_total;
  uint64_t errors;                        /* violations seen                   */
  char first_error[256];
  int blocked;                            /* the flow callback said blocked    */
  uint64_t flow_blocks, flow_unblocks;
  /* seqbb's counters and the probe, found once at creation */
  const uint64_t *pos_ready;
  const struct tc_probe *probe;
} tc_member_t;

typedef struct tc_ref { uint8_t origin, svc; uint32_t seq; } tc_ref_t;

typedef struct tc_opts {
  uint32_t n;
  const char *stack;                      /* NULL: TC_SPEC                      */
  const char *params;
  vsx_sim_opts_t sim;
  uint32_t len_min, len_max;              /* body bytes; 0,0: 16..64            */
  uint32_t buf_cnt, ev_cnt;
  uint32_t ref_cap;                       /* total/safe casts the run may make  */
} tc_opts_t;

typedef struct tc_group {
  vsx_sim_t *sim;
  uint32_t n;
  uint64_t seed;
  vsx_view_t view;
  tc_member_t m[TC_MAX];
  tc_ref_t *ref;                          /* the agreed sequence                */
  uint64_t ref_len, ref_cap;
  uint64_t safe_checked, safe_early;      /* safe casts checked; delivered too soon (must be 0) */
  uint64_t total_checked, total_early;    /* total casts delivered before everyone had them (allowed) */
  uint32_t len_min, len_max;
  vsx_rng_t rng;
} tc_group_t;

/* tc_create returns VSX_OK or the error of the sim or an endpoint. */
int  tc_create(tc_group_t *g, const tc_opts_t *o);
void tc_destroy(tc_group_t *g);

/* tc_step advances the clock to the next arrival or alarm (at most to
   limit_ns) and polls every member; 0 when nothing was left before it. */
int  tc_step(tc_group_t *g, uint64_t limit_ns);
void tc_run_for(tc_group_t *g, uint64_t ns);

/* tc_cast: member r casts one checked message with service svc; returns
   the endpoint's result (VSX_ERR_AGAIN under flow control). */
int tc_cast(tc_group_t *g, uint32_t r, vsx_svc_t svc);

/* tc_traffic casts, from every member, `casts` messages of a seeded mix
   (percent fifo and percent safe; the rest total) and runs until every
   member delivered every cast, or max_ns of virtual time passed.  Returns
   1 when everything was delivered. */
int tc_traffic(tc_group_t *g, uint32_t casts, uint32_t pct_fifo, uint32_t pct_safe, uint64_t max_ns);

/* tc_all_delivered: every member delivered every cast accepted so far. */
int tc_all_delivered(const tc_group_t *g);
/* tc_errors: violations over all members (the first one's text in first). */
uint64_t tc_errors(const tc_group_t *g, char *first, size_t cap);
/* tc_seqbb_stat: a named counter of member r's seqbb layer. */
uint64_t tc_seqbb_stat(const tc_group_t *g, uint32_t r, const char *name);
/* tc_probe_violations: casts the probes saw out of order or twice (0). */
uint64_t tc_probe_violations(const tc_group_t *g);

#endif
