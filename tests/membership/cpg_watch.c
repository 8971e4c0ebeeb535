/* cpg_watch.c - the Corosync side of bench_failover.sh: joins a CPG
   group through the local corosync daemon and appends one line per
   membership change to a file:
     <CLOCK_REALTIME ns> <member count>
   Exits when the daemon goes away (its connection fails) or on SIGTERM.

   usage: cpg_watch GROUP FILE
   Build: cc -O2 cpg_watch.c $(pkg-config --cflags --libs libcpg) */
#include <corosync/cpg.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *out_path;
static volatile sig_atomic_t stop;

static void on_term(int sig) { (void)sig; stop = 1; }

static void log_members(size_t cnt) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  FILE *f = fopen(out_path, "a");
  if (!f) return;
  fprintf(f, "%llu %zu\n", (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec, cnt);
  fclose(f);
}

static void on_confchg(cpg_handle_t h, const struct cpg_name *g, const struct cpg_address *members, size_t members_cnt,
                       const struct cpg_address *left, size_t left_cnt, const struct cpg_address *joined,
                       size_t joined_cnt) {
  (void)h; (void)g; (void)members; (void)left; (void)left_cnt; (void)joined; (void)joined_cnt;
  log_members(members_cnt);
}

static void on_deliver(cpg_handle_t h, const struct cpg_name *g, uint32_t nodeid, uint32_t pid, void *msg, size_t len) {
  (void)h; (void)g; (void)nodeid; (void)pid; (void)msg; (void)len;
}

int main(int argc, char **argv) {
  if (argc != 3) { fprintf(stderr, "usage: cpg_watch GROUP FILE\n"); return 2; }
  out_path = argv[2];
  signal(SIGTERM, on_term);
  signal(SIGINT, on_term);
  cpg_callbacks_t cbs = { .cpg_deliver_fn = on_deliver, .cpg_confchg_fn = on_confchg };
  cpg_handle_t h;
  cs_error_t err;
  for (int tries = 0; (err = cpg_initialize(&h, &cbs)) != CS_OK; tries++) {
    if (tries > 100) { fprintf(stderr, "cpg_watch: cpg_initialize: %d\n", err); return 1; }
    struct timespec w = { 0, 100000000 };
    nanosleep(&w, NULL);
  }
  struct cpg_name name;
  name.length = (uint32_t)strlen(argv[1]);
  memcpy(name.value, argv[1], name.length);
  if ((err = cpg_join(h, &name)) != CS_OK) { fprintf(stderr, "cpg_watch: cpg_join: %d\n", err); return 1; }
  int fd;
  cpg_fd_get(h, &fd);
  while (!stop) {
    struct pollfd p = { .fd = fd, .events = POLLIN };
    if (poll(&p, 1, 200) < 0) continue;
    if (p.revents & (POLLERR | POLLHUP)) break;
    if (p.revents & POLLIN && cpg_dispatch(h, CS_DISPATCH_ALL) != CS_OK) break; /* the daemon is gone */
  }
  cpg_finalize(h);
  return 0;
}
