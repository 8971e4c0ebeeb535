/* vsx_xdp.bpf.c - the XDP program of the afxdp transport.

   Steers the group's datagrams into the AF_XDP sockets and leaves every
   other frame to the kernel: a frame is redirected when it is IPv4/UDP,
   not fragmented, to the configured port, and addressed to the configured
   local or multicast IPv4 address.  ARP, ICMP, IGMP, ssh, other UDP ports
   and anything unparsable return XDP_PASS untouched, so the host keeps
   working while the transport runs.

   The redirect key is the frame's receive queue; a queue without a socket
   in xsks_map falls back to XDP_PASS (the flags argument of
   bpf_redirect_map), so frames are never silently lost here.

   Configuration lives in the one-entry array map vsx_cfg (struct
   vsx_xdp_cfg, transport/afxdp_priv.h), written by user space after
   attaching; until then port is 0 and everything passes.  Its owner_pid
   lets a later process tell a live instance from a stale one left by a
   killed process.

   Built with clang -O2 -g -target bpf; -g gives the BTF libxdp needs. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "transport/afxdp_priv.h"

#define IP_FRAG_MASK 0x3fff /* more-fragments flag and fragment offset */

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct vsx_xdp_cfg);
} vsx_cfg SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_XSKMAP);
  __uint(max_entries, VSX_XDP_QUEUES_MAX);
  __type(key, __u32);
  __type(value, __u32);
} xsks_map SEC(".maps");

SEC("xdp")
int vsx_xdp(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  __u32 key = 0;

  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > data_end) return XDP_PASS;
  if (eth->h_proto != bpf_htons(ETH_P_IP)) return XDP_PASS;

  struct iphdr *ip = (void *)(eth + 1);
  if ((void *)(ip + 1) > data_end) return XDP_PASS;
  if (ip->version != 4 || ip->ihl < 5) return XDP_PASS;
  if (ip->protocol != IPPROTO_UDP) return XDP_PASS;
  /* Fragments go to the kernel, which reassembles them for its own
     sockets; the transport never sends datagrams larger than the MTU. */
  if (ip->frag_off & bpf_htons(IP_FRAG_MASK)) return XDP_PASS;

  struct udphdr *udp = (void *)ip + ip->ihl * 4;
  if ((void *)(udp + 1) > data_end) return XDP_PASS;

  struct vsx_xdp_cfg *cfg = bpf_map_lookup_elem(&vsx_cfg, &key);
  if (!cfg || !cfg->port || udp->dest != cfg->port) return XDP_PASS;
  if (ip->daddr != cfg->local_ip && !(cfg->mcast_ip && ip->daddr == cfg->mcast_ip)) return XDP_PASS;

  return bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
