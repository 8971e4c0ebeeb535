/* bench_soak_membership.c - the membership soak: random fault schedules
   over many seeds (100,000 by default), as the CI sweep does over 1,000.

   Each seed is one mgroup_random_run (tests/util/mgroup.h): 3-5
   processes find each other on the simulated network, 3 s of random
   crashes, joins, pauses, partitions, asymmetric cuts, loss bursts and
   leaves with traffic, then everything heals and the run must settle
   (one view, every cast delivered, equal states) with every property
   checked in process.  Every Nth seed also writes traces and runs the
   trace checker.  Prints progress, the rate in seeds per second, and
   every failing seed (replay one with: VSX_SEED=<seed>
   CK_RUN_CASE=random tests/test_membership).

   usage: bench_soak_membership [seeds [first-seed [check-every]]]
   Exit status: 0 when every seed passed. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include "mgroup.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  uint64_t seeds = argc > 1 ? strtoull(argv[1], NULL, 0) : 100000;
  uint64_t first = argc > 2 ? strtoull(argv[2], NULL, 0) : 1000000;
  uint64_t every = argc > 3 ? strtoull(argv[3], NULL, 0) : 1000;
  static mgroup_t g;
  char dir[128], why[2048];
  snprintf(dir, sizeof dir, "/tmp/vsx-soak-%d", (int)getpid());
  uint64_t failed = 0;
  double t0 = now_s(), last = t0;
  printf("soak: %llu seeds from %llu, trace checker every %llu\n", (unsigned long long)seeds,
         (unsigned long long)first, (unsigned long long)every);
  fflush(stdout);
  for (uint64_t i = 0; i < seeds; i++) {
    uint64_t seed = first + i;
    int check = every && i % every == 0;
    if (!mgroup_random_run(&g, seed, check ? dir : NULL, 0, 5000000000ull, why, sizeof why)) {
      failed++;
      printf("FAIL %s\n", why);
      fflush(stdout);
    }
    double t = now_s();
    if (t - last >= 10 || i + 1 == seeds) {
      printf("%llu/%llu seeds, %llu failed, %.1f seeds/s\n", (unsigned long long)(i + 1), (unsigned long long)seeds,
             (unsigned long long)failed, (double)(i + 1) / (t - t0));
      fflush(stdout);
      last = t;
    }
  }
  rmdir(dir);
  double el = now_s() - t0;
  printf("soak: %llu seeds in %.0f s (%.1f seeds/s), %llu failed\n", (unsigned long long)seeds, el,
         (double)seeds / el, (unsigned long long)failed);
  return failed ? 1 : 0;
}
