/* bench_stack.c - events per second through the default six-layer stack,
   and heap allocations on the data path (which must be zero).

   Three members on the simulated network (no loss) in one process;
   member 0 casts 64-byte (and then 1 KiB) messages as fast as flow
   control allows until every member has delivered them.  Time is the
   wall clock of this CPU-bound run: the figure is the cost of the stack
   itself, with no network and no syscalls.  malloc, calloc, realloc and
   free are interposed here and counted between start-up and the end of
   the run.  Writes docs/bench-stack.md when given --write. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "vsx/endpoint.h"
#include "vsx/sim.h"

#include "alloc_count.h"

static uint64_t delivered;
static void on_deliver(void *u, vsx_endpoint_t *ep, uint32_t from, vsx_svc_t svc, const vsx_iovl_t *m) {
  (void)u; (void)ep; (void)from; (void)svc; (void)m;
  delivered++;
}

static double wall(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

typedef struct result { const char *spec; uint32_t size; uint64_t msgs; double secs; uint64_t events; unsigned long long alloc_cnt; } result_t;

static result_t run(const char *spec, uint32_t size, uint64_t msgs) {
  enum { N = 3 };
  vsx_sim_t *sim;
  vsx_sim_opts_t so = { .seed = 1, .delay_min_ns = 10000, .delay_max_ns = 10000, .queue_cap = 16384 };
  if (vsx_sim_create(&so, &sim)) { fprintf(stderr, "%s\n", vsx_last_error()); exit(1); }
  vsx_view_t view = { .ltime = 1, .coord_eid = 1, .member_cnt = N, .members = { 1, 2, 3 } };
  vsx_endpoint_t *ep[N];
  for (int i = 0; i < N; i++) {
    vsx_endpoint_opts_t o = { .group = "bench", .transport = &vsx_transport_sim, .opt_backend = sim, .eid = view.members[i],
                              .view = &view, .opt_stack = spec, .opt_clock = vsx_sim_clock, .opt_clock_ctx = sim, .buf_cnt = 8192, .ev_cnt = 8192,
                              .opt_params = "mnak.window=2048,stable.sweep_ms=1", .cbs = { .deliver = on_deliver } };
    if (vsx_endpoint_create(&o, &ep[i])) { fprintf(stderr, "%s\n", vsx_last_error()); exit(1); }
  }
  static char payload[65536];
  memset(payload, 'x', size);
  delivered = 0;
  uint64_t sent = 0, want = msgs * N;
  alloc_cnt = 0;
  alloc_counting = 1;
  double t0 = wall();
  while (delivered < want) {
    while (sent < msgs && vsx_endpoint_cast(ep[0], VSX_SVC_FIFO, payload, size) == VSX_OK) sent++;
    uint64_t next = vsx_sim_next_arrival(sim);
    for (int i = 0; i < N; i++) {
      uint64_t a = vsx_endpoint_next_alarm(ep[i]);
      if (a && a < next) next = a;
    }
    vsx_sim_set_now(sim, next);
    for (int i = 0; i < N; i++) vsx_endpoint_poll(ep[i]);
  }
  double secs = wall() - t0;
  alloc_counting = 0;
  result_t r = { spec, size, msgs, secs, 0, alloc_cnt };
  for (int i = 0; i < N; i++) {
    r.events += vsx_stack_dispatched(vsx_endpoint_stack(ep[i]));
    vsx_endpoint_destroy(ep[i]);
  }
  vsx_sim_destroy(sim);
  return r;
}

int main(int argc, char **argv) {
  /* The counter itself must work, or a zero below would mean nothing. */
  if (!alloc_count_works()) { fprintf(stderr, "allocation counter is not interposed\n"); return 2; }
  int write = argc > 1 && !strcmp(argv[1], "--write");
  uint64_t msgs = argc > 2 ? strtoull(argv[2], NULL, 0) : 200000;
  const char *six = "top:frag:stable:pt2pt:mnak:bottom", *bundled = "top:frag:stable:pt2pt:mnak:bundle:bottom";
  result_t res[4] = { run(six, 64, msgs), run(six, 1024, msgs / 2), run(bundled, 64, msgs), run(bundled, 1024, msgs / 2) };
  char table[4096];
  int at = snprintf(table, sizeof table,
                    "| stack | payload | messages | deliveries | wall s | deliveries/s | layer events/s | ns per event | heap allocations |\n"
                    "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (int i = 0; i < 4; i++) {
    result_t *r = &res[i];
    at += snprintf(table + at, sizeof table - (size_t)at, "| `%s` | %u B | %llu | %llu | %.2f | %.0f | %.0f | %.1f | %llu |\n", r->spec, r->size,
                   (unsigned long long)r->msgs, (unsigned long long)(r->msgs * 3), r->secs, r->msgs * 3 / r->secs,
                   r->events / r->secs, r->secs * 1e9 / (double)r->events, r->alloc_cnt);
  }
  printf("3 simulated members, member 0 casting\n\n%s", table);
  int bad = 0;
  for (int i = 0; i < 4; i++) bad |= res[i].alloc_cnt != 0;
  if (bad) printf("\nFAIL: the data path allocated from the heap\n");
  if (write) {
    FILE *f = fopen("docs/bench-stack.md", "w");
    if (!f) { perror("docs/bench-stack.md"); return 1; }
    fprintf(f, "# Stack benchmark\n\nEvents per second through the six-layer stack, and the default seven-layer one with bundling\n(`%s`), with three members on the\n"
               "simulated network in one process (no loss, no syscalls): member 0 casts as fast as flow control allows until\n"
               "every member has delivered every message. A layer event is one hop of one event through one layer or sink.\n"
               "Heap allocations are counted by interposing malloc/calloc/realloc from start-up to the end of the run.\n\n"
               "Command: `./build/tests/bench_stack --write %llu` (release build, from the repository root)\n\n%s",
            VSX_STACK_DEFAULT, (unsigned long long)msgs, table);
    fclose(f);
  }
  return bad;
}
