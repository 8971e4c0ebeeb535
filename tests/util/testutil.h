/* testutil.h - a simulated group for tests and benchmarks.

   tgroup_create puts n endpoints on one simulated network, all in one
   fixed view, each with the given stack.  Every member records what it
   delivers and checks, message by message, what the guarantees demand:
   each payload names its origin and its per-origin seqno and carries a
   CRC-32C of its bytes, so a member notices a duplicate, a gap, a
   reordering, a wrong sender or corrupted bytes the moment it happens.

   The driver feeds casts and sends as fast as flow control allows and
   runs the network on its virtual clock until every member has delivered
   everything or a time limit passes.

   With VSX_TRACE_DIR set, every member writes the spec's JSONL trace
   into <VSX_TRACE_DIR>/group-<seed>-<n>/ (n counts the groups this
   process made), sends and deliveries included, for
   tests/checker/vsx_check.py. */
#ifndef VSX_TESTUTIL_H
#define VSX_TESTUTIL_H

#include <stdio.h>
#include "vsx/endpoint.h"
#include "vsx/sim.h"

#define TG_MAX 16

typedef struct tg_member {
  struct tgroup *g;
  vsx_endpoint_t *ep;
  uint32_t rank;
  /* what it sent */
  uint32_t casts_sent, sends_sent[TG_MAX];
  uint32_t tseq;             /* messages sent, casts and sends (the
                                trace's seq)                          */
  /* what it delivered, per origin */
  uint32_t casts_got[TG_MAX], sends_got[TG_MAX];
  uint64_t bytes_got;
  uint64_t errors;           /* guarantee violations seen          */
  char first_error[256];
  int blocked_cb;            /* the flow callback said blocked     */
  uint64_t flow_blocks, flow_unblocks;
} tg_member_t;

typedef struct tgroup {
  vsx_sim_t *sim;
  uint32_t n;
  uint64_t seed;
  tg_member_t m[TG_MAX];
  vsx_view_t view;
  uint32_t msg_len_min, msg_len_max; /* payload sizes drawn per message */
  vsx_rng_t rng;
  char trace_dir[512];       /* "" when not tracing                */
} tgroup_t;

typedef struct tg_opts {
  uint32_t n;
  const char *stack;       /* NULL: VSX_STACK_DEFAULT             */
  const char *params;
  vsx_sim_opts_t sim;
  uint32_t msg_len_min, msg_len_max; /* 0,0: 16..64 bytes          */
  uint32_t buf_cnt, ev_cnt;
} tg_opts_t;

int  tgroup_create(tgroup_t *g, const tg_opts_t *o);
void tgroup_destroy(tgroup_t *g);

/* tgroup_step advances the virtual clock to the next arrival or alarm
   (at most to limit_ns) and polls every live member.  Returns 0 when
   there was nothing left to do before limit_ns. */
int  tgroup_step(tgroup_t *g, uint64_t limit_ns);
void tgroup_run_for(tgroup_t *g, uint64_t ns);

/* tgroup_cast / tgroup_send: member r casts (sends to dst) one checked
   message; returns the endpoint's result (VSX_ERR_AGAIN under flow). */
int tgroup_cast(tgroup_t *g, uint32_t r);
int tgroup_send(tgroup_t *g, uint32_t r, uint32_t dst);

/* tgroup_traffic runs until every member has cast `casts` messages and
   sent `sends` messages to each other member, and every message has been
   delivered everywhere, or max_ns of virtual time passed.  Returns 1 when
   everything was delivered. */
int tgroup_traffic(tgroup_t *g, uint32_t casts, uint32_t sends, uint64_t max_ns);

/* tgroup_all_delivered: every member has every cast and send sent so far. */
int tgroup_all_delivered(const tgroup_t *g);
uint64_t tgroup_errors(const tgroup_t *g, char *first, size_t cap);
/* tgroup_seed: from VSX_SEED or a default, so a failure replays. */
uint64_t tgroup_seed_from_env(uint64_t dflt);

#endif
