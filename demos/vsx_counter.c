/* vsx-counter - a replicated counter (docs/tutorial.md walks through it): members cast "+1" in
   total order, so all apply them in one order; a joiner gets the counter by state transfer.  --help */
#include <vsx/vsx.h>
#include <arpa/inet.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static uint64_t counter, expect, to_add; /* to_add: increments not cast yet */
static uint32_t wait_size = 1;           /* add once a view has this many members */
static int have_expect, reached, in_group;
static char snapshot[24];                /* the state lent to state_get */

/* add_more casts the increments left until the library says wait. */
static void add_more(vsx_endpoint_t *ep) {
  while (in_group && to_add && vsx_endpoint_cast(ep, VSX_SVC_TOTAL, "+1", 2) == VSX_OK) to_add--;
}
/* check_expect: with --expect, leave the group once the counter is there. */
static void check_expect(vsx_endpoint_t *ep) {
  if (have_expect && !reached && counter == expect) { reached = 1; vsx_endpoint_leave(ep); }
}
static void on_deliver(void *u, vsx_endpoint_t *ep, uint32_t from, vsx_svc_t svc, const vsx_iovl_t *msg) {
  char text[24] = "";
  (void)u, (void)svc;
  vsx_iovl_gather(msg, 0, text, sizeof text - 1);
  counter += strtoull(text + 1, NULL, 10);
  printf("counter %" PRIu64 " (%s from rank %u)\n", counter, text, from);
  check_expect(ep);
}
static void on_view(void *u, vsx_endpoint_t *ep, const vsx_view_t *v, uint32_t rank) {
  (void)u;
  printf("view %" PRIu64 ": %u members, rank %u, counter %" PRIu64 "\n", v->ltime, v->member_cnt, rank, counter);
  if (v->member_cnt >= wait_size) in_group = 1;
  add_more(ep);
  check_expect(ep);
}
static void on_flow(void *u, vsx_endpoint_t *ep, int blocked) { (void)u; if (!blocked) add_more(ep); }
static int on_state_get(void *u, vsx_endpoint_t *ep, const void **data, size_t *len) {
  (void)u, (void)ep;
  *len = (size_t)snprintf(snapshot, sizeof snapshot, "%" PRIu64, counter);
  *data = snapshot; /* stays unchanged until our view callback */
  return VSX_OK;
}
static void on_state_put(void *u, vsx_endpoint_t *ep, const void *data, size_t len, uint64_t off, uint64_t total) {
  (void)u, (void)ep;
  if (total >= sizeof snapshot || off + len > total) return; /* not a counter: keep ours */
  memcpy(snapshot + off, data, len);
  if (off + len < total) return; /* more pieces follow */
  snapshot[total] = 0;
  counter = strtoull(snapshot, NULL, 10);
  printf("state transfer: counter %" PRIu64 "\n", counter);
}
static void on_exit_cb(void *u, vsx_endpoint_t *ep, const char *why) {
  (void)u;
  printf("left the group (%s)\n", why);
  vsx_endpoint_stop(ep); /* ends vsx_endpoint_run */
}
int main(int argc, char **argv) {
  static const struct option opts[] = { { "name", 1, 0, 'n' }, { "port", 1, 0, 'p' }, { "peer", 1, 0, 'P' },
    { "transport", 1, 0, 't' }, { "if", 1, 0, 'i' }, { "mcast", 1, 0, 'm' }, { "add", 1, 0, 'a' },
    { "wait", 1, 0, 'w' }, { "stay", 1, 0, 's' }, { "expect", 1, 0, 'e' }, { "help", 0, 0, 'h' }, { 0, 0, 0, 0 } };
  const char *peers[64]; /* the --peer addresses, given to the endpoint once it exists */
  int peer_cnt = 0, c; double stay = 30;
  vsx_endpoint_opts_t o;
  vsx_endpoint_opts_init(&o);
  o.group = "counter", o.opt_transport_name = "udp", o.port = 7400; /* the defaults of this program */
  o.cbs = (vsx_endpoint_cbs_t){ .deliver = on_deliver, .view = on_view, .flow = on_flow, .state_get = on_state_get,
                                .state_put = on_state_put, .exit = on_exit_cb };
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case 'n': o.opt_name = optarg; break;
    case 'p': o.port = (uint16_t)atoi(optarg); break;
    case 'P': if (peer_cnt < 64) peers[peer_cnt++] = optarg; break;
    case 't': o.opt_transport_name = optarg; break;
    case 'i': o.opt_ifname = optarg; break;
    case 'm': o.mcast_ip = ntohl(inet_addr(optarg)); break; /* a bad address is refused by create */
    case 'a': to_add = strtoull(optarg, NULL, 10); break;
    case 'w': wait_size = (uint32_t)atoi(optarg); break;
    case 's': stay = atof(optarg); break;
    case 'e': expect = strtoull(optarg, NULL, 10); have_expect = 1; break;
    default:
      fprintf(c == 'h' ? stdout : stderr,
              "usage: vsx-counter [--name N] [--port P (7400)] [--peer IP:PORT]... [--transport udp|afxdp]\n"
              "  [--if IFACE] [--mcast IP] [--add N: cast N increments] [--wait M: once a view has M members]\n"
              "  [--stay SECONDS (30)] [--expect VALUE: exit 0 when the counter is VALUE, 1 if --stay passes first]\n");
      return c == 'h' ? 0 : 2;
    }
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  vsx_endpoint_t *ep;
  int err = vsx_endpoint_create(&o, &ep);
  for (int i = 0; !err && i < peer_cnt; i++) err = vsx_endpoint_add_peer(ep, peers[i]);
  if (err) { fprintf(stderr, "vsx-counter: %s: %s\n", vsx_strerror(err), vsx_last_error()); return 2; }
  vsx_endpoint_run(ep, stay);                          /* until --stay passes or we left */
  if (vsx_endpoint_leave(ep) == VSX_OK) vsx_endpoint_run(ep, 3); /* leave gracefully if still in */
  vsx_endpoint_destroy(ep);
  return have_expect && !reached;
}
