/* vsx/sim.h - a deterministic simulated network for whole groups in one
   process.

   One vsx_sim_t is a network on a virtual clock; each endpoint created
   with the "sim" transport and this network as cfg.opt_backend attaches to
   it.  Every random choice (loss, duplication, delay, hence reordering)
   comes from the network's one PRNG seeded from opts.seed, and endpoints
   are served in attachment order, so a run replays exactly from its seed.

   A datagram is copied into the receiver's pool when it is sent (the
   "wire"), then waits in the receiver's queue until its arrival time.  A
   full queue or pool drops it, as a real NIC ring would.

   Faults: loss, duplication, delay in [delay_min, delay_max] (which
   reorders), partitions that tests change over time (vsx_sim_side,
   vsx_sim_link), crashes (vsx_sim_crash: the endpoint neither sends
   nor receives again), and pauses (vsx_sim_pause: like SIGSTOP, its
   datagrams wait in its queue, up to queue_cap, until it resumes; the
   driver also stops polling it, so its timers stand still).

   THREADS: one thread drives the network and all its endpoints. */
#ifndef VSX_SIM_H
#define VSX_SIM_H

#include "vsx/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

#define VSX_SIM_ENDPOINTS_MAX 64

typedef struct vsx_sim vsx_sim_t;

typedef struct vsx_sim_opts {
  uint64_t seed;
  double   loss;          /* probability a datagram is lost            */
  double   dup;           /* probability it is delivered twice         */
  uint64_t delay_min_ns;  /* one-way delay, uniform in [min, max]      */
  uint64_t delay_max_ns;
  uint32_t queue_cap;     /* datagrams in flight per receiver          */
} vsx_sim_opts_t;

/* vsx_sim_create returns VSX_OK or VSX_ERR_INVAL (probabilities outside
   [0,1], delay_max < delay_min, queue_cap 0) / VSX_ERR_NOMEM. */
int  vsx_sim_create(const vsx_sim_opts_t *opts, vsx_sim_t **out);
/* vsx_sim_destroy: every endpoint must have been destroyed first. */
void vsx_sim_destroy(vsx_sim_t *sim);

uint64_t vsx_sim_now(const vsx_sim_t *sim);
/* vsx_sim_clock is a clock function for vsx_endpoint_opts_t.clock. */
uint64_t vsx_sim_clock(void *sim);
/* vsx_sim_set_now moves the clock forward (never back). */
void     vsx_sim_set_now(vsx_sim_t *sim, uint64_t now_ns);
/* vsx_sim_next_arrival: earliest arrival time of any queued datagram
   (for a paused endpoint: not before its pause ends), or UINT64_MAX
   when nothing is in flight. */
uint64_t vsx_sim_next_arrival(const vsx_sim_t *sim);

/* Faults.  Changing loss/dup at run time is allowed. */
void vsx_sim_set_loss(vsx_sim_t *sim, double loss, double dup);
/* vsx_sim_side puts endpoint eid on side s: datagrams cross only between
   endpoints on the same side (all start on side 0). */
int  vsx_sim_side(vsx_sim_t *sim, uint64_t eid, uint32_t side);
/* vsx_sim_link cuts (up = 0) or restores the one-way link from -> to
   (asymmetric connectivity). */
int  vsx_sim_link(vsx_sim_t *sim, uint64_t from_eid, uint64_t to_eid, int up);
/* vsx_sim_heal puts everyone back on side 0 with every link up. */
void vsx_sim_heal(vsx_sim_t *sim);
/* vsx_sim_crash: eid stops sending and receiving; its queue is dropped. */
int  vsx_sim_crash(vsx_sim_t *sim, uint64_t eid);
/* vsx_sim_pause: eid receives nothing before until_ns (virtual time);
   what arrives meanwhile waits in its queue (a full queue drops, as a
   stopped process's socket buffer would).  vsx_sim_next_arrival does not
   count its queue before then.  until_ns <= now resumes it. */
int  vsx_sim_pause(vsx_sim_t *sim, uint64_t eid, uint64_t until_ns);
/* vsx_sim_next_arrival_of: earliest time eid's queue has something to
   hand over (never before its pause ends), or UINT64_MAX. */
uint64_t vsx_sim_next_arrival_of(const vsx_sim_t *sim, uint64_t eid);

typedef struct vsx_sim_stats { uint64_t sent, delivered, lost, duplicated, cut, overflow; } vsx_sim_stats_t;
void vsx_sim_get_stats(const vsx_sim_t *sim, vsx_sim_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif
