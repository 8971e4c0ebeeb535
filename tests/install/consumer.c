/* consumer.c - a program built against the INSTALLED vsx: two members on
   the simulated network; one casts, both must deliver it. */
#include <stdio.h>
#include <string.h>
#include <vsx/endpoint.h>
#include <vsx/sim.h>

static int got[2];

static void on_deliver(void *user, vsx_endpoint_t *ep, uint32_t from, vsx_svc_t svc, const vsx_iovl_t *msg) {
  char buf[32] = { 0 };
  (void)ep; (void)svc;
  vsx_iovl_gather(msg, 0, buf, sizeof buf - 1);
  if (from == 0 && !strcmp(buf, "hello")) got[*(int *)user]++;
}

int main(void) {
  vsx_sim_t *sim;
  vsx_sim_opts_t so = { .seed = 1, .delay_min_ns = 1000, .delay_max_ns = 1000, .queue_cap = 64 };
  if (vsx_sim_create(&so, &sim)) return 1;
  vsx_view_t view = { .ltime = 1, .coord_eid = 1, .member_cnt = 2, .members = { 1, 2 } };
  vsx_endpoint_t *ep[2];
  int idx[2] = { 0, 1 };
  for (int i = 0; i < 2; i++) {
    vsx_endpoint_opts_t o = { .group = "installed", .transport = &vsx_transport_sim, .opt_backend = sim, .eid = view.members[i],
                              .view = &view, .opt_clock = vsx_sim_clock, .opt_clock_ctx = sim, .buf_cnt = 256, .ev_cnt = 256,
                              .cbs = { .deliver = on_deliver }, .user = &idx[i] };
    if (vsx_endpoint_create(&o, &ep[i])) { fprintf(stderr, "%s\n", vsx_last_error()); return 1; }
  }
  if (vsx_endpoint_cast(ep[0], VSX_SVC_FIFO, "hello", 5)) return 1;
  for (int step = 0; step < 1000 && got[1] == 0; step++) {
    vsx_sim_set_now(sim, vsx_sim_now(sim) + 100000);
    for (int i = 0; i < 2; i++) vsx_endpoint_poll(ep[i]);
  }
  for (int i = 0; i < 2; i++) vsx_endpoint_destroy(ep[i]);
  vsx_sim_destroy(sim);
  printf("consumer: delivered at member 0: %d, member 1: %d\n", got[0], got[1]);
  return got[0] == 1 && got[1] == 1 ? 0 : 1;
}
