/* foreign_xdp.bpf.c - a stand-in for somebody else's XDP program: passes
   every frame.  errors.sh attaches it to prove the afxdp transport refuses
   to replace a program that is not its own. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int foreign_pass(struct xdp_md *ctx) {
  (void)ctx;
  return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
