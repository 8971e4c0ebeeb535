/* afxdp.c - the AF_XDP transport: vsx datagrams as Ethernet/IPv4/UDP
   frames through AF_XDP sockets, bypassing the kernel's socket, IP and
   UDP layers.  Ring ownership is drawn in transport/afxdp_priv.h; the
   wire format is docs/wire.md, the design docs/transport.md.

   SET-UP (create), in order, each step undone by destroy:
   1. privilege and interface checks (Ethernet, up, IPv4 address, MTU);
   2. a kernel UDP socket bound to the port: it reserves the port on this
      host (our XDP program would steal any other socket's traffic) and
      joins the multicast group so IGMP snooping and NIC filters let the
      group's frames in;
   3. the UMEM: an mmap'ed region that is also the buffer pool's region;
   4. our XDP program (bpf/vsx_xdp.bpf.c), attached with libxdp after
      checking that no foreign program holds the interface (a stale vsx
      program left by a killed process is replaced); native mode where
      the driver has it, else generic (SKB);
   5. one AF_XDP socket per receive queue, all sharing the UMEM, each in
      the program's XSKMAP; zero-copy where the driver does it, else copy.
   Capabilities: CAP_NET_ADMIN and CAP_BPF (attach, maps), CAP_NET_RAW
   (AF_XDP socket), CAP_IPC_LOCK or a large RLIMIT_MEMLOCK (UMEM pinning).

   DATA PATH: batches of up to VSX_XPORT_BATCH on every ring; no heap
   allocation and no syscall per frame (one sendto per TX batch in copy
   mode, where the kernel sends from within the syscall). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/capability.h>
#include <linux/ethtool.h>
#include <linux/if_xdp.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/libxdp.h>
#include <xdp/xsk.h>

#include "vsx/transport.h"
#include "vsx/wire.h"
#include "transport/afxdp_priv.h"

/* Debian 12's uapi headers predate these. */
#ifndef XDP_MAX_TX_SKB_BUDGET
#define XDP_MAX_TX_SKB_BUDGET 9
#endif
#ifndef SO_PREFER_BUSY_POLL
#define SO_PREFER_BUSY_POLL 69
#endif
#ifndef SO_BUSY_POLL_BUDGET
#define SO_BUSY_POLL_BUDGET 70
#endif
#ifndef VSX_BPF_BUILD_PATH
#define VSX_BPF_BUILD_PATH ""
#endif
#ifndef VSX_BPF_INSTALL_PATH
#define VSX_BPF_INSTALL_PATH ""
#endif

#define AFX_RING_DEFAULT   4096u
#define AFX_PEERS_DEFAULT  256u
#define AFX_RX_HEADROOM    256u /* XDP_PACKET_HEADROOM: where copy-mode RX
                                   writes a frame inside its chunk        */
#define AFX_MTU_MIN        576u /* IPv4's minimum datagram every host takes */
#define AFX_BIND_TRIES     8    /* EBUSY retries: unbinding is asynchronous */
#define AFX_PROBE_NS       10000000ull /* ARP cache look-ups per peer: 10 ms */
#define AFX_BUSY_POLL_US   20
#define AFX_TTL_UNICAST    64
#define AFX_TTL_MCAST      1    /* the group stays on the link (kernel default) */

enum { FRAME_APP = 0, FRAME_FILL = 1, FRAME_TX = 2 }; /* who holds our ref */

/* Ethernet + IPv4 (no options) + UDP, as on the wire. */
typedef struct __attribute__((packed)) afx_hdr {
  uint8_t  dst[6], src[6];
  uint16_t type;
  uint8_t  vihl, tos;
  uint16_t tot_len, id, frag;
  uint8_t  ttl, proto;
  uint16_t ip_csum;
  uint32_t saddr, daddr;
  uint16_t sport, dport, ulen, udp_csum;
} afx_hdr_t;
_Static_assert(sizeof(afx_hdr_t) == VSX_AFXDP_L2L4_SZ, "Ethernet+IPv4+UDP header is 42 bytes");

/* afx_dest_t is where one frame goes. */
typedef struct afx_dest { const uint8_t *mac; uint32_t ip; uint16_t port; uint8_t ttl; } afx_dest_t;

typedef struct afx_q {
  struct xsk_socket *xsk;
  struct xsk_ring_cons rx;
  struct xsk_ring_prod tx;   /* queue 0 only: every frame leaves there   */
  struct xsk_ring_prod fq;
  struct xsk_ring_cons cq;
  int fd;
  uint32_t fq_held;          /* our frames in this queue's fill/RX rings */
  uint64_t rx_frames;        /* frames this queue's RX ring delivered    */
} afx_q_t;

typedef struct afx {
  /* identity and addresses (network order) */
  uint64_t eid;
  uint32_t local_ip, mcast_ip;
  uint16_t port;
  uint8_t  mac[6], mcast_mac[6];
  char     ifname[IF_NAMESIZE];
  int      ifindex;
  uint32_t mtu, max_dgram;
  int      busy_poll;
  /* UMEM and pool: frame i of the UMEM is buffer i of the pool */
  uint8_t *umem_area;        /* also the pool's region                     */
  size_t   umem_sz;
  uint32_t frame_sz, frame_cnt;
  struct xsk_umem *umem;
  vsx_bufpool_t *pool;
  uint8_t *frame_owner;      /* FRAME_* per frame                         */
  /* rings */
  uint32_t ring_sz, fill_cnt, nq, rx_next;
  uint32_t tx_inflight;      /* on the TX ring or not yet completed        */
  afx_q_t *q;
  int      epfd;             /* nq > 1: one fd for the caller's loop      */
  int      zerocopy;
  /* XDP program */
  struct xdp_program *prog;
  enum xdp_attach_mode mode;
  int      attached;
  int      xsks_map_fd;
  /* kernel socket: port reservation, group membership, ARP trigger */
  int      ksock;
  afx_hdr_t tmpl;            /* header fields that never change           */
  uint16_t ip_id;
  vsx_peertab_t peers;
  afx_dest_t *dest;          /* peer_max: one datagram's destinations     */
  vsx_iovec_t *fr;           /* peer_max: and its frames                  */
  vsx_xport_stats_t st;
} afx_t;

static void afx_destroy(void *state);

/* ---- checksums (RFC 1071) ------------------------------------------------ */

/* afx_csum_add adds len bytes at p to a ones-complement sum in memory
   byte order; any alignment.  Four independent 64-bit accumulators of
   32-bit words need no carry handling (2^32 words before one can
   overflow) and let the CPU add in parallel.  Fold with afx_csum_fold. */
static inline uint64_t afx_csum_add(uint64_t sum, const uint8_t *p, size_t len) {
  uint64_t s0 = sum, s1 = 0, s2 = 0, s3 = 0;
  uint32_t w0, w1, w2, w3;
  while (len >= 16) {
    memcpy(&w0, p, 4);
    memcpy(&w1, p + 4, 4);
    memcpy(&w2, p + 8, 4);
    memcpy(&w3, p + 12, 4);
    s0 += w0;
    s1 += w1;
    s2 += w2;
    s3 += w3;
    p += 16;
    len -= 16;
  }
  while (len >= 4) { memcpy(&w0, p, 4); s0 += w0; p += 4; len -= 4; }
  if (len >= 2) { uint16_t w; memcpy(&w, p, 2); s1 += w; p += 2; len -= 2; }
  if (len) { uint8_t b[2] = { p[0], 0 }; uint16_t w; memcpy(&w, b, 2); s2 += w; }
  /* Each accumulator is below 2^63; fold two pairs before the last add
     so nothing can carry out of 64 bits. */
  s0 = (s0 & 0xffffffffu) + (s0 >> 32) + (s1 & 0xffffffffu) + (s1 >> 32);
  s2 = (s2 & 0xffffffffu) + (s2 >> 32) + (s3 & 0xffffffffu) + (s3 >> 32);
  return s0 + s2;
}

/* afx_csum_fold folds a sum to 16 bits (not complemented). */
static inline uint16_t afx_csum_fold(uint64_t sum) {
  sum = (sum & 0xffffffffu) + (sum >> 32);
  sum = (sum & 0xffffffffu) + (sum >> 32);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)sum;
}

/* afx_pseudo_sum is the UDP pseudo-header's sum for these addresses and
   UDP length (all network order). */
static inline uint64_t afx_pseudo_sum(uint32_t saddr, uint32_t daddr, uint16_t ulen_be) {
  return (uint64_t)saddr + daddr + htons(IPPROTO_UDP) + ulen_be;
}

/* ---- set-up -------------------------------------------------------------- */

/* afx_libxdp_print routes libxdp's and libbpf's messages to stderr only at
   VSX_LOG=2: our own errors say what failed and what to do, and libxdp's
   warnings about the dispatcher fallback would only alarm. */
static int afx_libxdp_print(enum libxdp_print_level level, const char *fmt, va_list ap) {
  (void)level;
  if (vsx_log_level() >= 2) { fputs("vsx: libxdp: ", stderr); vfprintf(stderr, fmt, ap); }
  return 0;
}

/* afx_libbpf_print is afx_libxdp_print for libbpf. */
static int afx_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap) {
  (void)level;
  if (vsx_log_level() >= 2) { fputs("vsx: libbpf: ", stderr); vfprintf(stderr, fmt, ap); }
  return 0;
}

/* afx_quiet_t holds the print callbacks that were installed before ours. */
typedef struct afx_quiet { libxdp_print_fn_t xdp; libbpf_print_fn_t bpf; } afx_quiet_t;

/* afx_quiet_begin routes libxdp's and libbpf's messages through ours for
   the duration of a set-up or tear-down call; afx_quiet_end restores the
   application's callbacks (they are process-wide). */
static afx_quiet_t afx_quiet_begin(void) {
  afx_quiet_t q = { libxdp_set_print(afx_libxdp_print), libbpf_set_print(afx_libbpf_print) };
  return q;
}

static void afx_quiet_end(afx_quiet_t q) {
  libxdp_set_print(q.xdp);
  libbpf_set_print(q.bpf);
}

/* afx_caps_check fails with VSX_ERR_PERM naming the missing capabilities.
   Syscall: capget. */
static int afx_caps_check(void) {
  struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
  struct __user_cap_data_struct d[2];
  if (syscall(SYS_capget, &h, d)) return VSX_OK; /* cannot tell: let the OS decide */
  uint64_t eff = d[0].effective | (uint64_t)d[1].effective << 32;
#define HAS(c) ((eff >> (c)) & 1)
  char missing[96] = "";
  if (!HAS(CAP_NET_ADMIN)) strcat(missing, " CAP_NET_ADMIN");
  if (!HAS(CAP_BPF) && !HAS(CAP_SYS_ADMIN)) strcat(missing, " CAP_BPF");
  if (!HAS(CAP_NET_RAW)) strcat(missing, " CAP_NET_RAW");
#undef HAS
  if (!missing[0]) return VSX_OK;
  return vsx_fail(VSX_ERR_PERM, "afxdp: missing capabilities:%s.  Run as root, or grant them "
                  "(setcap cap_net_admin,cap_bpf,cap_net_raw,cap_ipc_lock+ep PROGRAM), or use "
                  "transport \"udp\", which needs no privilege", missing);
}

/* afx_ethtool runs one ethtool get command on the interface; 0 on success. */
static int afx_ethtool(int s, const char *ifname, void *cmd) {
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
  ifr.ifr_data = cmd;
  return ioctl(s, SIOCETHTOOL, &ifr);
}

/* afx_if_init checks the interface and reads its index, flags, MAC, MTU,
   IPv4 address, driver and receive queue count.  Syscalls: ioctl
   SIOCGIF{FLAGS,HWADDR,MTU,ADDR} and SIOCETHTOOL. */
static int afx_if_init(afx_t *a, const vsx_transport_cfg_t *cfg, const char **driver_out, char *driver,
                       size_t driver_sz) {
  const char *ifn = cfg->opt_ifname;
  if (!ifn || !*ifn)
    return vsx_fail(VSX_ERR_INVAL, "afxdp: cfg.opt_ifname is required (the Ethernet interface to "
                    "bind); use transport \"udp\" for loopback or when any interface will do");
  if (strlen(ifn) >= sizeof a->ifname)
    return vsx_fail(VSX_ERR_INVAL, "afxdp: interface name '%s' is longer than %zu bytes", ifn,
                    sizeof a->ifname - 1);
  snprintf(a->ifname, sizeof a->ifname, "%s", ifn);
  a->ifindex = (int)if_nametoindex(ifn);
  if (!a->ifindex)
    return vsx_fail(VSX_ERR_NOTFOUND, "afxdp: no interface '%s' in this network namespace; check "
                    "the name with `ip link` (names resolve in the caller's namespace)", ifn);

  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return vsx_fail(VSX_ERR_IO, "afxdp: socket: %s", strerror(errno));
  int err = VSX_OK;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifn);
  if (ioctl(s, SIOCGIFFLAGS, &ifr)) {
    err = vsx_fail(VSX_ERR_IO, "afxdp: SIOCGIFFLAGS %s: %s", ifn, strerror(errno));
    goto out;
  }
  if (ifr.ifr_flags & IFF_LOOPBACK) {
    err = vsx_fail(VSX_ERR_NOTSUP, "afxdp: '%s' is the loopback device, which has no Ethernet "
                   "frames for AF_XDP; use transport \"udp\" on loopback", ifn);
    goto out;
  }
  if (!(ifr.ifr_flags & IFF_UP)) {
    err = vsx_fail(VSX_ERR_STATE, "afxdp: interface %s is down; bring it up "
                   "(`ip link set dev %s up`)", ifn, ifn);
    goto out;
  }
  if (ioctl(s, SIOCGIFHWADDR, &ifr)) {
    err = vsx_fail(VSX_ERR_IO, "afxdp: SIOCGIFHWADDR %s: %s", ifn, strerror(errno));
    goto out;
  }
  if (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER) {
    err = vsx_fail(VSX_ERR_NOTSUP, "afxdp: %s is not an Ethernet device (link type %u) and the "
                   "afxdp transport sends Ethernet frames; use transport \"udp\" on it",
                   ifn, ifr.ifr_hwaddr.sa_family);
    goto out;
  }
  memcpy(a->mac, ifr.ifr_hwaddr.sa_data, 6);
  if (ioctl(s, SIOCGIFMTU, &ifr)) {
    err = vsx_fail(VSX_ERR_IO, "afxdp: SIOCGIFMTU %s: %s", ifn, strerror(errno));
    goto out;
  }
  a->mtu = (uint32_t)ifr.ifr_mtu;
  a->local_ip = htonl(cfg->opt_local_ip);
  if (!a->local_ip) {
    if (ioctl(s, SIOCGIFADDR, &ifr)) {
      err = vsx_fail(VSX_ERR_NOTFOUND, "afxdp: %s has no IPv4 address (%s); assign one "
                     "(`ip addr add ADDR/LEN dev %s`) or set cfg.opt_local_ip", ifn, strerror(errno), ifn);
      goto out;
    }
    a->local_ip = ((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr.s_addr;
  }

  struct ethtool_drvinfo di = { .cmd = ETHTOOL_GDRVINFO };
  *driver_out = "unknown";
  if (!afx_ethtool(s, ifn, &di)) {
    snprintf(driver, driver_sz, "%s", di.driver);
    *driver_out = driver;
  }
  struct ethtool_channels ch = { .cmd = ETHTOOL_GCHANNELS };
  a->nq = 1;
  if (!afx_ethtool(s, ifn, &ch)) {
    uint32_t n = ch.rx_count > ch.combined_count ? ch.rx_count : ch.combined_count;
    if (n > 1) a->nq = n;
  }
  if (a->nq > VSX_XDP_QUEUES_MAX) a->nq = VSX_XDP_QUEUES_MAX;
out:
  close(s);
  return err;
}

/* afx_ksock_init opens the kernel UDP socket that reserves the port and
   holds the group membership.  Syscalls: socket, bind, setsockopt. */
static int afx_ksock_init(afx_t *a) {
  int zero = 0, small = 4096;
  a->ksock = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (a->ksock < 0) return vsx_fail(VSX_ERR_IO, "afxdp: socket: %s", strerror(errno));
  /* It never reads: frames that reach the kernel (no socket in the map
     yet) sit in a small buffer and are dropped. */
  (void)setsockopt(a->ksock, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  (void)setsockopt(a->ksock, IPPROTO_IP, IP_MULTICAST_ALL, &zero, sizeof zero);
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = a->port, .sin_addr.s_addr = htonl(INADDR_ANY) };
  if (bind(a->ksock, (struct sockaddr *)&sa, sizeof sa)) {
    if (errno == EADDRINUSE)
      return vsx_fail(VSX_ERR_BUSY, "afxdp: UDP port %u is already in use in this network namespace "
                      "(another program or vsx member); the XDP program would take its traffic, so "
                      "choose another port or stop that program", ntohs(a->port));
    return vsx_fail(VSX_ERR_IO, "afxdp: bind UDP port %u: %s", ntohs(a->port), strerror(errno));
  }
  if (!a->mcast_ip) return VSX_OK;
  struct ip_mreqn mr = { .imr_multiaddr.s_addr = a->mcast_ip, .imr_address.s_addr = a->local_ip,
                         .imr_ifindex = a->ifindex };
  if (setsockopt(a->ksock, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof mr)) {
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &a->mcast_ip, ip, sizeof ip);
    return vsx_fail(VSX_ERR_IO, "afxdp: cannot join multicast group %s on %s: %s; check that the "
                    "interface has the MULTICAST flag", ip, a->ifname, strerror(errno));
  }
  return VSX_OK;
}

/* afx_umem_init maps the UMEM, makes it the pool's region and registers
   it.  Syscalls: mmap, setsockopt XDP_UMEM_REG and the ring set-up inside
   xsk_umem__create.  Pinning the UMEM counts against RLIMIT_MEMLOCK
   unless the process has CAP_IPC_LOCK. */
static int afx_umem_init(afx_t *a, const vsx_transport_cfg_t *cfg) {
  a->umem_sz = (size_t)a->frame_cnt * a->frame_sz;
  void *area = mmap(NULL, a->umem_sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (area == MAP_FAILED)
    return vsx_fail(VSX_ERR_NOMEM, "afxdp: cannot map a UMEM of %zu bytes (%u frames of %u): %s",
                    a->umem_sz, a->frame_cnt, a->frame_sz, strerror(errno));
  a->umem_area = area;

  vsx_bufpool_opts_t po = {
    .buf_cnt = a->frame_cnt, .buf_sz = a->frame_sz, .headroom = cfg->headroom + VSX_AFXDP_L2L4_SZ,
    .reserve_cnt = cfg->reserve_cnt, .ext_cnt = cfg->ext_cnt, .ext_cap = cfg->ext_cap,
    .opt_region = area,
  };
  int err = vsx_bufpool_create(&po, &a->pool);
  if (err) return err;
  a->frame_owner = calloc(a->frame_cnt, 1);
  if (!a->frame_owner) return vsx_fail(VSX_ERR_NOMEM, "afxdp: cannot allocate the frame table");

  struct xsk_umem_config uc = {
    .fill_size = a->ring_sz, .comp_size = a->ring_sz, .frame_size = a->frame_sz,
    .frame_headroom = 0, .flags = 0,
  };
  err = xsk_umem__create(&a->umem, area, a->umem_sz, &a->q[0].fq, &a->q[0].cq, &uc);
  if (!err) return VSX_OK;
  a->umem = NULL;
  if (err == -ENOBUFS || err == -EPERM || err == -ENOMEM) {
    struct rlimit rl = { 0, 0 };
    getrlimit(RLIMIT_MEMLOCK, &rl);
    char lim[32];
    if (rl.rlim_cur == RLIM_INFINITY) snprintf(lim, sizeof lim, "unlimited");
    else snprintf(lim, sizeof lim, "%llu KiB", (unsigned long long)rl.rlim_cur / 1024);
    return vsx_fail(VSX_ERR_PERM, "afxdp: cannot register a UMEM of %zu KiB (%s): it is over the "
                    "locked-memory limit (ulimit -l = %s).  Raise it (`ulimit -l unlimited`, "
                    "LimitMEMLOCK=infinity in systemd), grant CAP_IPC_LOCK, or give fewer/smaller "
                    "buffers (cfg.buf_cnt, cfg.buf_sz)", a->umem_sz / 1024, strerror(-err), lim);
  }
  return vsx_fail(VSX_ERR_IO, "afxdp: xsk_umem__create: %s", strerror(-err));
}

/* afx_prog_path returns the XDP object to load: $VSX_BPF_OBJ, else the
   build tree's, else the installed one; NULL if none is readable. */
static const char *afx_prog_path(void) {
  const char *env = getenv("VSX_BPF_OBJ");
  if (env && *env) return env;
  if (*VSX_BPF_BUILD_PATH && !access(VSX_BPF_BUILD_PATH, R_OK)) return VSX_BPF_BUILD_PATH;
  if (*VSX_BPF_INSTALL_PATH && !access(VSX_BPF_INSTALL_PATH, R_OK)) return VSX_BPF_INSTALL_PATH;
  return NULL;
}

/* afx_proc_start returns the start time of process pid (field 22 of
   /proc/PID/stat, clock ticks since boot), or 0 if it does not exist. */
static uint64_t afx_proc_start(uint32_t pid) {
  char path[48], buf[1024];
  snprintf(path, sizeof path, "/proc/%u/stat", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  char *p = strrchr(buf, ')'); /* the command name may hold spaces */
  if (!p) return 0;
  for (int field = 2; field < 22 && p; field++) p = strchr(p + 1, ' ');
  return p ? strtoull(p + 1, NULL, 10) : 0;
}

/* afx_prog_cfg reads the vsx_cfg map of an attached program into *cfg;
   0 on success.  Syscalls: BPF_OBJ_GET_INFO_BY_FD, BPF_MAP_GET_FD_BY_ID,
   BPF_MAP_LOOKUP_ELEM. */
static int afx_prog_cfg(int prog_fd, struct vsx_xdp_cfg *cfg) {
  __u32 ids[8];
  struct bpf_prog_info info;
  memset(&info, 0, sizeof info);
  info.nr_map_ids = VSX_ARRAY_CNT(ids);
  info.map_ids = (__u64)(uintptr_t)ids;
  __u32 len = sizeof info;
  if (bpf_obj_get_info_by_fd(prog_fd, &info, &len)) return -1;
  uint32_t n = info.nr_map_ids < VSX_ARRAY_CNT(ids) ? info.nr_map_ids : VSX_ARRAY_CNT(ids);
  int found = -1;
  for (uint32_t i = 0; i < n && found; i++) {
    int fd = bpf_map_get_fd_by_id(ids[i]);
    if (fd < 0) continue;
    struct bpf_map_info mi;
    memset(&mi, 0, sizeof mi);
    __u32 mlen = sizeof mi;
    __u32 key = 0;
    if (!bpf_obj_get_info_by_fd(fd, &mi, &mlen) && !strcmp(mi.name, VSX_XDP_CFG_MAP) &&
        mi.value_size == sizeof *cfg && !bpf_map_lookup_elem(fd, &key, cfg))
      found = 0;
    close(fd);
  }
  return found;
}

/* afx_mode_name names an attach mode for messages. */
static const char *afx_mode_name(enum xdp_attach_mode m) {
  return m == XDP_MODE_NATIVE ? "native (XDP_DRV)" : m == XDP_MODE_SKB ? "generic (XDP_SKB)" : "unspecified";
}

/* afx_ip_mode is the `ip link set dev X <word> off` word that detaches a
   program attached in mode m. */
static const char *afx_ip_mode(enum xdp_attach_mode m) {
  return m == XDP_MODE_NATIVE ? "xdpdrv" : m == XDP_MODE_SKB ? "xdpgeneric" : "xdp";
}

/* afx_prog_clear makes room for our program: a foreign program makes it
   fail with VSX_ERR_BUSY (unless a working libxdp dispatcher lets both
   run), a vsx program of a live process too, and a stale vsx program
   (its process is gone) is detached. */
static int afx_prog_clear(afx_t *a) {
  struct xdp_multiprog *mp = xdp_multiprog__get_from_ifindex(a->ifindex);
  long e = libxdp_get_error(mp);
  if (e == -ENOENT || (!e && !mp)) return VSX_OK;
  if (e) return vsx_fail(VSX_ERR_IO, "afxdp: cannot read the XDP programs of %s: %s", a->ifname, strerror((int)-e));

  int err = VSX_OK, legacy = xdp_multiprog__is_legacy(mp);
  const char *off = afx_ip_mode(xdp_multiprog__attach_mode(mp));
  struct xdp_program *p = legacy ? xdp_multiprog__main_prog(mp) : xdp_multiprog__next_prog(NULL, mp);
  for (; p && !err; p = legacy ? NULL : xdp_multiprog__next_prog(p, mp)) {
    const char *name = xdp_program__name(p);
    if (strcmp(name, VSX_XDP_PROG_NAME)) {
      if (legacy)
        err = vsx_fail(VSX_ERR_BUSY, "afxdp: interface %s already runs a foreign XDP program '%s' "
                       "(id %u) and vsx will not replace it.  Detach it (`ip link set dev %s %s off`) "
                       "if it is not needed, or use transport \"udp\"", a->ifname, name,
                       xdp_program__id(p), a->ifname, off);
      continue; /* in a dispatcher it runs beside ours */
    }
    struct vsx_xdp_cfg c = { 0 };
    if (!afx_prog_cfg(xdp_program__fd(p), &c) && c.owner_pid && afx_proc_start(c.owner_pid) == c.owner_start) {
      err = vsx_fail(VSX_ERR_BUSY, "afxdp: interface %s is in use by the vsx afxdp transport of live "
                     "process %u (UDP port %u); one afxdp transport per interface: use another "
                     "interface, or transport \"udp\"", a->ifname, c.owner_pid, ntohs(c.port));
      continue;
    }
    int derr = legacy ? xdp_multiprog__detach(mp) : xdp_program__detach(p, a->ifindex, xdp_multiprog__attach_mode(mp), 0);
    if (derr)
      err = vsx_fail(VSX_ERR_IO, "afxdp: cannot detach the stale vsx XDP program (id %u) of %s: %s; "
                     "detach it by hand (`ip link set dev %s %s off`)", xdp_program__id(p), a->ifname,
                     strerror(-derr), a->ifname, off);
    else
      vsx_log(1, "afxdp: replaced the stale vsx XDP program (id %u) of dead process %u on %s",
              xdp_program__id(p), c.owner_pid, a->ifname);
  }
  xdp_multiprog__close(mp);
  return err;
}


/* afx_prog_init loads and attaches our XDP program and writes its
   configuration.  Syscalls: bpf (load, map create/update), netlink (attach). */
static int afx_prog_init(afx_t *a, int mode_opt) {
  const char *path = afx_prog_path();
  if (!path)
    return vsx_fail(VSX_ERR_NOTFOUND, "afxdp: the XDP program vsx_xdp.bpf.o was not found (looked at "
                    "$VSX_BPF_OBJ, %s, %s); install the library, which installs it, or point "
                    "VSX_BPF_OBJ at it", VSX_BPF_BUILD_PATH, VSX_BPF_INSTALL_PATH);
  a->prog = xdp_program__open_file(path, "xdp", NULL);
  long e = libxdp_get_error(a->prog);
  if (e || !a->prog) {
    a->prog = NULL;
    return vsx_fail(e == -ENOENT ? VSX_ERR_NOTFOUND : VSX_ERR_IO, "afxdp: cannot open the XDP program "
                    "%s: %s; rebuild it or point VSX_BPF_OBJ at a good copy", path, strerror((int)-e));
  }
  int err = afx_prog_clear(a);
  if (err) return err;

  enum xdp_attach_mode modes[2] = { XDP_MODE_NATIVE, XDP_MODE_SKB };
  int first = 0, last = 1;
  if (mode_opt == VSX_AFXDP_MODE_SKB) first = 1;
  if (mode_opt == VSX_AFXDP_MODE_DRV) last = 0;
  int aerr = 0;
  for (int m = first; m <= last; m++) {
    aerr = xdp_program__attach(a->prog, a->ifindex, modes[m], 0);
    if (!aerr) { a->mode = modes[m]; a->attached = 1; break; }
    vsx_log(1, "afxdp: attaching in %s mode to %s failed: %s", afx_mode_name(modes[m]), a->ifname, strerror(-aerr));
    if (aerr == -EEXIST || aerr == -EBUSY)
      return vsx_fail(VSX_ERR_BUSY, "afxdp: another XDP program was attached to %s meanwhile; vsx "
                      "will not replace it (see `ip link show dev %s`)", a->ifname, a->ifname);
    if (aerr == -EPERM || aerr == -EACCES)
      return vsx_fail(VSX_ERR_PERM, "afxdp: not allowed to load or attach XDP on %s (%s); run as "
                      "root or with CAP_NET_ADMIN and CAP_BPF, or use transport \"udp\"", a->ifname,
                      strerror(-aerr));
  }
  if (!a->attached)
    return vsx_fail(VSX_ERR_NOTSUP, "afxdp: XDP is not supported on %s (tried %s%s: %s); %s, or use "
                    "transport \"udp\"", a->ifname, afx_mode_name(modes[first]),
                    first != last ? " and generic (XDP_SKB) mode" : " mode", strerror(-aerr),
                    mode_opt == VSX_AFXDP_MODE_DRV ? "allow generic mode (mode skb or auto), which "
                                                     "works on every device"
                                                   : "use another interface");

  struct bpf_object *obj = xdp_program__bpf_obj(a->prog);
  struct bpf_map *cfg_map = obj ? bpf_object__find_map_by_name(obj, VSX_XDP_CFG_MAP) : NULL;
  struct bpf_map *xsks = obj ? bpf_object__find_map_by_name(obj, VSX_XDP_XSKS_MAP) : NULL;
  if (!cfg_map || !xsks || bpf_map__fd(cfg_map) < 0 || bpf_map__fd(xsks) < 0)
    return vsx_fail(VSX_ERR_IO, "afxdp: the XDP program %s lacks the maps %s and %s; it is not a "
                    "vsx program: rebuild it", path, VSX_XDP_CFG_MAP, VSX_XDP_XSKS_MAP);
  a->xsks_map_fd = bpf_map__fd(xsks);
  struct vsx_xdp_cfg c = {
    .owner_start = afx_proc_start((uint32_t)getpid()), .owner_pid = (uint32_t)getpid(),
    .local_ip = a->local_ip, .mcast_ip = a->mcast_ip, .port = a->port,
  };
  __u32 key = 0;
  if (bpf_map_update_elem(bpf_map__fd(cfg_map), &key, &c, BPF_ANY))
    return vsx_fail(VSX_ERR_IO, "afxdp: cannot configure the XDP program: %s", strerror(errno));
  return VSX_OK;
}

/* afx_sock_bind creates queue qi's socket with the given bind flags,
   retrying while the queue is still being unbound by a previous owner.
   Returns 0 or a negative errno. */
static int afx_sock_bind(afx_t *a, uint32_t qi, uint16_t bind_flags) {
  afx_q_t *q = &a->q[qi];
  struct xsk_socket_config sc = {
    .rx_size = a->ring_sz, .tx_size = a->ring_sz,
    .libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD, .xdp_flags = 0, .bind_flags = bind_flags,
  };
  int err = 0;
  for (int t = 0; t < AFX_BIND_TRIES; t++) {
    err = xsk_socket__create_shared(&q->xsk, a->ifname, qi, a->umem, &q->rx, qi ? NULL : &q->tx,
                                    &q->fq, &q->cq, &sc);
    if (err != -EBUSY) break;
    usleep(1000u << t);
  }
  if (err) q->xsk = NULL;
  return err;
}

/* afx_socks_init creates one socket per queue, all on the one UMEM (queue
   0's fill/completion rings are the UMEM's), puts each in the XSKMAP and
   fills the fill rings.  Zero-copy is tried first in native mode.
   Syscalls: socket, setsockopt (rings, busy poll, TX budget), mmap, bind,
   BPF_MAP_UPDATE_ELEM. */
static int afx_socks_init(afx_t *a, int copy_opt) {
  uint16_t wake = XDP_USE_NEED_WAKEUP;
  int try_zc = a->mode == XDP_MODE_NATIVE && copy_opt != VSX_AFXDP_COPY_FORCE;
  if (copy_opt == VSX_AFXDP_COPY_NEVER && a->mode != XDP_MODE_NATIVE)
    return vsx_fail(VSX_ERR_NOTSUP, "afxdp: zero-copy needs native XDP, but %s runs in %s mode; "
                    "allow copy mode", a->ifname, afx_mode_name(a->mode));
  for (uint32_t qi = 0; qi < a->nq; qi++) {
    afx_q_t *q = &a->q[qi];
    int err;
    if (qi == 0 && try_zc) {
      err = afx_sock_bind(a, 0, XDP_ZEROCOPY | wake);
      if (err && copy_opt == VSX_AFXDP_COPY_NEVER)
        return vsx_fail(VSX_ERR_NOTSUP, "afxdp: the driver of %s does no AF_XDP zero-copy (%s); allow "
                        "copy mode", a->ifname, strerror(-err));
      if (err) {
        vsx_log(1, "afxdp: zero-copy bind on %s failed (%s); using copy mode", a->ifname, strerror(-err));
        err = afx_sock_bind(a, 0, XDP_COPY | wake);
      }
    } else {
      /* Sockets after the first share the UMEM and inherit its mode. */
      err = afx_sock_bind(a, qi, XDP_COPY | wake);
    }
    if (err == -EBUSY)
      return vsx_fail(VSX_ERR_BUSY, "afxdp: queue %u of %s is taken by another AF_XDP socket (another "
                      "vsx member or AF_XDP program); one afxdp transport per interface", qi, a->ifname);
    if (err == -EPERM || err == -EACCES)
      return vsx_fail(VSX_ERR_PERM, "afxdp: creating an AF_XDP socket needs CAP_NET_RAW (%s); run as "
                      "root or use transport \"udp\"", strerror(-err));
    if (err == -ENOBUFS || err == -ENOMEM)
      return vsx_fail(VSX_ERR_PERM, "afxdp: no memory for the rings of queue %u on %s (%s); raise "
                      "`ulimit -l`, or give a smaller ring_sz", qi, a->ifname, strerror(-err));
    if (err)
      return vsx_fail(err == -EOPNOTSUPP ? VSX_ERR_NOTSUP : VSX_ERR_IO, "afxdp: cannot bind an AF_XDP "
                      "socket to %s queue %u: %s; use transport \"udp\"", a->ifname, qi, strerror(-err));
    q->fd = xsk_socket__fd(q->xsk);
    int merr = xsk_socket__update_xskmap(q->xsk, a->xsks_map_fd);
    if (merr)
      return vsx_fail(VSX_ERR_IO, "afxdp: cannot insert the socket of queue %u into the XSKMAP: %s",
                      qi, strerror(-merr));
    if (qi == 0) {
      struct xdp_options xo;
      socklen_t xl = sizeof xo;
      a->zerocopy = !getsockopt(q->fd, SOL_XDP, XDP_OPTIONS, &xo, &xl) && (xo.flags & XDP_OPTIONS_ZEROCOPY);
      /* Copy mode sends at most this many frames per sendto (32 unless
         raised; kernels before 6.16 lack the option and need more kicks). */
      int budget = VSX_XPORT_BATCH;
      (void)setsockopt(q->fd, SOL_XDP, XDP_MAX_TX_SKB_BUDGET, &budget, sizeof budget);
    }
    if (a->busy_poll) {
      int one = 1, us = AFX_BUSY_POLL_US, budget = VSX_XPORT_BATCH;
      if (setsockopt(q->fd, SOL_SOCKET, SO_PREFER_BUSY_POLL, &one, sizeof one) ||
          setsockopt(q->fd, SOL_SOCKET, SO_BUSY_POLL, &us, sizeof us) ||
          setsockopt(q->fd, SOL_SOCKET, SO_BUSY_POLL_BUDGET, &budget, sizeof budget))
        vsx_log(1, "afxdp: busy-poll socket options refused on %s queue %u: %s", a->ifname, qi, strerror(errno));
    }
  }
  if (a->nq > 1) {
    a->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (a->epfd < 0) return vsx_fail(VSX_ERR_IO, "afxdp: epoll_create1: %s", strerror(errno));
    for (uint32_t qi = 0; qi < a->nq; qi++) {
      struct epoll_event ev = { .events = EPOLLIN, .data.u32 = qi };
      if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, a->q[qi].fd, &ev))
        return vsx_fail(VSX_ERR_IO, "afxdp: epoll_ctl: %s", strerror(errno));
    }
  }
  return VSX_OK;
}

/* ---- data path ----------------------------------------------------------- */

/* afx_frame_put drops our reference to frame buf; the pool takes it back
   when nobody else holds it. */
static inline void afx_frame_put(afx_t *a, uint32_t buf) {
  vsx_iovec_t v = { .pool = a->pool, .buf = buf };
  a->frame_owner[buf] = FRAME_APP;
  vsx_iovec_unref(&v);
}

/* afx_cq_drain takes back every frame the kernel has finished sending. */
static void afx_cq_drain(afx_t *a) {
  afx_q_t *q = &a->q[0];
  uint32_t idx, n = xsk_ring_cons__peek(&q->cq, a->ring_sz, &idx);
  for (uint32_t i = 0; i < n; i++) {
    uint64_t addr = *xsk_ring_cons__comp_addr(&q->cq, idx + i);
    uint32_t buf = (uint32_t)(addr / a->frame_sz);
    VSX_ASSERT(buf < a->frame_cnt);
    VSX_DASSERT(a->frame_owner[buf] == FRAME_TX);
    afx_frame_put(a, buf);
  }
  if (n) {
    xsk_ring_cons__release(&q->cq, n);
    a->tx_inflight -= n;
  }
}

/* afx_tx_pending is nonzero while frames wait on the TX ring for the
   kernel. */
static inline int afx_tx_pending(afx_t *a) {
  return xsk_prod_nb_free(&a->q[0].tx, a->ring_sz) < a->ring_sz;
}

/* afx_tx_kick makes the kernel send what waits on the TX ring.  In copy
   mode the frames go out inside sendto, a budget at a time, so it kicks
   until the ring is empty or the kernel pushes back (a few tries). */
static void afx_tx_kick(afx_t *a) {
  afx_q_t *q = &a->q[0];
  for (int t = 0; t < 4 && afx_tx_pending(a); t++) {
    if (!xsk_ring_prod__needs_wakeup(&q->tx)) break;
    a->st.tx_kick++;
    if (sendto(q->fd, NULL, 0, MSG_DONTWAIT, NULL, 0) < 0 && errno != EAGAIN && errno != EBUSY &&
        errno != ENOBUFS && errno != ENETDOWN && errno != EINTR)
      break;
    afx_cq_drain(a);
  }
}

/* afx_refill tops queue q's fill ring up to fill_cnt frames from the pool.
   The kernel publishes its fill-ring consumer position lazily, so the
   ring can look fuller than fq_held says: take what room it shows now. */
static void afx_refill(afx_t *a, afx_q_t *q) {
  uint32_t want = a->fill_cnt - q->fq_held, idx;
  if (!want) return;
  uint32_t have = vsx_bufpool_free_cnt(a->pool);
  if (want > have) { want = have; a->st.rx_nobuf++; }
  uint32_t room = xsk_prod_nb_free(&q->fq, want);
  if (want > room) want = room;
  if (!want) return;
  uint32_t got = xsk_ring_prod__reserve(&q->fq, want, &idx);
  VSX_ASSERT(got == want);
  for (uint32_t i = 0; i < want; i++) {
    vsx_iovec_t v;
    int err = vsx_buf_alloc(a->pool, &v);
    VSX_ASSERT(!err); /* the pool had `have` free buffers */
    VSX_DASSERT(a->frame_owner[v.buf] == FRAME_APP);
    a->frame_owner[v.buf] = FRAME_FILL;
    *xsk_ring_prod__fill_addr(&q->fq, idx + i) = (uint64_t)v.buf * a->frame_sz;
  }
  xsk_ring_prod__submit(&q->fq, want);
  q->fq_held += want;
}

/* afx_learn records eid's Ethernet, IPv4 and UDP source addresses. */
static inline void afx_learn(afx_t *a, uint64_t eid, const afx_hdr_t *h, uint64_t now) {
  vsx_peer_t *p = vsx_peertab_find(&a->peers, eid);
  if (VSX_UNLIKELY(!p) && !(p = vsx_peertab_get(&a->peers, eid))) return;
  memcpy(p->mac, h->src, 6);
  p->has_mac = 1;
  p->ip = h->saddr;
  p->port = h->sport;
  p->heard_ns = now;
}

/* afx_rx_frame checks one received frame and turns it into dg.  Returns
   1 when dg is filled (the frame's reference moves to dg), 0 when the
   frame was dropped (and went back to the pool). */
static int afx_rx_frame(afx_t *a, uint64_t addr, uint32_t len, vsx_datagram_t *dg, uint64_t now) {
  uint32_t buf = (uint32_t)(addr / a->frame_sz), off = (uint32_t)(addr % a->frame_sz);
  VSX_ASSERT(buf < a->frame_cnt);
  VSX_DASSERT(a->frame_owner[buf] == FRAME_FILL);
  a->frame_owner[buf] = FRAME_APP;
  const uint8_t *f = a->umem_area + addr;
  afx_hdr_t h;
  if (len < sizeof h + sizeof(vsx_wire_hdr_t) || off + len > a->frame_sz) goto malformed;
  memcpy(&h, f, sizeof h);
  if (h.type != htons(ETH_P_IP) || (h.vihl >> 4) != 4 || h.proto != IPPROTO_UDP) goto malformed;
  uint32_t ihl = (h.vihl & 15u) * 4, tot = ntohs(h.tot_len);
  if (ihl < 20 || tot < ihl + 8 || 14 + tot > len || (ntohs(h.frag) & 0x3fff)) goto malformed;
  if (afx_csum_fold(afx_csum_add(0, f + 14, ihl)) != 0xffff) goto malformed;
  const uint8_t *udp = f + 14 + ihl;
  uint16_t ulen_be, ucsum, dport;
  memcpy(&dport, udp + 2, 2);
  memcpy(&ulen_be, udp + 4, 2);
  memcpy(&ucsum, udp + 6, 2);
  uint32_t ulen = ntohs(ulen_be);
  if (dport != a->port || ulen < 8 + sizeof(vsx_wire_hdr_t) || ulen > tot - ihl) goto malformed;
  /* A kernel sender on a virtual link (veth) leaves the UDP checksum to
     offload hardware that does not exist: the field then holds only the
     pseudo-header's sum, which the kernel's own receive path trusts (the
     frame never left the host).  Accept exactly that value; anything
     else must be a correct checksum. */
  if (ucsum && afx_csum_fold(afx_csum_add(afx_pseudo_sum(h.saddr, h.daddr, ulen_be), udp, ulen)) != 0xffff &&
      ucsum != afx_csum_fold(afx_pseudo_sum(h.saddr, h.daddr, ulen_be)))
    goto malformed;
  /* With IP options the UDP source port sits elsewhere than in h. */
  memcpy(&h.sport, udp, 2);

  const uint8_t *d = udp + 8;
  uint32_t dlen = ulen - 8;
  uint64_t src = vsx_wire_peek_eid(d, dlen, VSX_WIRE_SRC_EID_OFF);
  uint64_t dst = vsx_wire_peek_eid(d, dlen, VSX_WIRE_DST_EID_OFF);
  if (!src) goto malformed;
  if (src == a->eid) { a->st.rx_self++; goto drop; }
  if (dst && dst != a->eid) { a->st.rx_misdirected++; goto drop; }
  afx_learn(a, src, &h, now);

  uint32_t doff = off + (uint32_t)(d - f);
  vsx_buf_claim(a->pool, buf, doff);
  vsx_iovl_init(&dg->iovl);
  dg->iovl.cnt = 1;
  dg->iovl.inl[0] = (vsx_iovec_t){ .pool = a->pool, .buf = buf, .off = doff, .len = dlen };
  dg->peer_eid = src;
  a->st.rx_byte += dlen;
  return 1;

malformed:
  a->st.rx_malformed++;
drop:
  afx_frame_put(a, buf);
  return 0;
}

/* afx_recv_batch: see transport.h.  Takes back sent frames, keeps TX
   moving, reads each queue's RX ring (one peek per queue, round robin)
   and refills its fill ring. */
static int afx_recv_batch(void *state, vsx_datagram_t *dgs, uint32_t max, uint32_t *cnt) {
  afx_t *a = state;
  uint32_t n = 0;
  uint64_t now = 0;
  afx_cq_drain(a);
  if (a->tx_inflight && afx_tx_pending(a)) afx_tx_kick(a);
  for (uint32_t k = 0; k < a->nq && n < max; k++) {
    afx_q_t *q = &a->q[(a->rx_next + k) % a->nq];
    uint32_t want = max - n < VSX_XPORT_BATCH ? max - n : VSX_XPORT_BATCH, idx;
    uint32_t got = xsk_ring_cons__peek(&q->rx, want, &idx);
    if (!got) {
      /* Zero-copy drivers ask for a wake-up to fill; busy polling drives
         the driver's NAPI from this thread. */
      if (a->busy_poll || xsk_ring_prod__needs_wakeup(&q->fq))
        (void)recvfrom(q->fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
    } else {
      if (!now) now = vsx_now_ns();
      for (uint32_t i = 0; i < got; i++) {
        const struct xdp_desc *d = xsk_ring_cons__rx_desc(&q->rx, idx + i);
        n += (uint32_t)afx_rx_frame(a, d->addr, d->len, &dgs[n], now);
      }
      xsk_ring_cons__release(&q->rx, got);
      q->fq_held -= got;
      q->rx_frames += got;
    }
    afx_refill(a, q);
  }
  a->rx_next++;
  a->st.rx_dgram += n;
  *cnt = n;
  return VSX_OK;
}

/* afx_resolve finds the MAC of a peer we know only by IP (add_peer), at
   most once per AFX_PROBE_NS per peer: ioctl SIOCGARP on the kernel's ARP
   cache, and a 0-byte datagram to the peer's discard port to make the
   kernel resolve it when missing. */
static int afx_resolve(afx_t *a, vsx_peer_t *p, uint64_t now) {
  if (p->has_mac) return 1;
  if (p->probe_ns && now - p->probe_ns < AFX_PROBE_NS) return 0;
  p->probe_ns = now;
  struct arpreq r;
  memset(&r, 0, sizeof r);
  struct sockaddr_in *sin = (struct sockaddr_in *)&r.arp_pa;
  sin->sin_family = AF_INET;
  sin->sin_addr.s_addr = p->ip;
  snprintf(r.arp_dev, sizeof r.arp_dev, "%s", a->ifname);
  if (!ioctl(a->ksock, SIOCGARP, &r) && (r.arp_flags & ATF_COM)) {
    memcpy(p->mac, r.arp_ha.sa_data, 6);
    p->has_mac = 1;
    return 1;
  }
  struct sockaddr_in discard = { .sin_family = AF_INET, .sin_port = htons(9), .sin_addr.s_addr = p->ip };
  (void)sendto(a->ksock, "", 0, MSG_DONTWAIT, (struct sockaddr *)&discard, sizeof discard);
  return 0;
}

/* afx_dests lists the frames datagram dg needs in out (at most cap).
   Returns how many; 0 means nothing to send (counted as tx_noroute). */
static uint32_t afx_dests(afx_t *a, const vsx_datagram_t *dg, afx_dest_t *out, uint32_t cap, uint64_t *now) {
  const afx_dest_t group = { a->mcast_mac, a->mcast_ip, a->port, AFX_TTL_MCAST };
  if (dg->peer_eid) {
    vsx_peer_t *p = vsx_peertab_find(&a->peers, dg->peer_eid);
    if (p && !p->has_mac) {
      if (!*now) *now = vsx_now_ns();
      afx_resolve(a, p, *now);
    }
    if (p && p->has_mac) {
      out[0] = (afx_dest_t){ p->mac, p->ip, p->port, AFX_TTL_UNICAST };
      return 1;
    }
    /* Unknown yet: through the group, where only dst_eid keeps it. */
    if (a->mcast_ip) { out[0] = group; return 1; }
    a->st.tx_noroute++;
    return 0;
  }
  if (a->mcast_ip) { out[0] = group; return 1; }
  uint32_t n = 0;
  for (uint32_t s = 0; s < a->peers.cap && n < cap; s++) {
    vsx_peer_t *p = &a->peers.slot[s];
    if (!p->eid || p->eid == a->eid) continue;
    if (!p->has_mac) {
      if (!*now) *now = vsx_now_ns();
      if (!afx_resolve(a, p, *now)) { a->st.tx_noroute++; continue; }
    }
    out[n++] = (afx_dest_t){ p->mac, p->ip, p->port, AFX_TTL_UNICAST };
  }
  return n;
}

/* afx_frame_inplace makes the caller's buffer the frame when the list is
   one iovec of our pool with headroom nobody else can see (vsx_iovl_push
   decides), and takes our TX reference on it.  Returns 1 with *frame
   covering Ethernet header + datagram, else 0. */
static int afx_frame_inplace(afx_t *a, const vsx_iovl_t *l, vsx_iovec_t *frame) {
  if (l->cnt != 1 || l->ext) return 0;
  const vsx_iovec_t *v = &l->inl[0];
  if (v->pool != a->pool || v->off < VSX_AFXDP_L2L4_SZ || a->frame_owner[v->buf] != FRAME_APP) return 0;
  vsx_iovl_t c = *l; /* a view: the caller's list stays as it was */
  if (!vsx_iovl_push(a->pool, &c, VSX_AFXDP_L2L4_SZ)) return 0;
  if (c.cnt != 1) {
    /* push had to prepend a fresh buffer (someone else sees this
       headroom): give it back and copy instead. */
    vsx_iovec_unref(&c.inl[0]);
    return 0;
  }
  vsx_iovec_ref(&c.inl[0]);
  *frame = c.inl[0];
  return 1;
}

/* afx_frame_header writes the Ethernet/IPv4/UDP header for dlen bytes of
   datagram (ones-complement sum dsum) to dest at f. */
static inline void afx_frame_header(afx_t *a, uint8_t *f, const afx_dest_t *dest, uint32_t dlen, uint64_t dsum) {
  afx_hdr_t h = a->tmpl;
  memcpy(h.dst, dest->mac, 6);
  h.tot_len = htons((uint16_t)(20 + 8 + dlen));
  h.id = htons(a->ip_id++);
  h.ttl = dest->ttl;
  h.daddr = dest->ip;
  h.ip_csum = 0;
  h.ip_csum = (uint16_t)~afx_csum_fold(afx_csum_add(0, &h.vihl, 20));
  h.dport = dest->port;
  h.ulen = htons((uint16_t)(8 + dlen));
  h.udp_csum = 0;
  uint16_t c = (uint16_t)~afx_csum_fold(afx_csum_add(dsum + afx_pseudo_sum(h.saddr, h.daddr, h.ulen),
                                                     (const uint8_t *)&h.sport, 8));
  h.udp_csum = c ? c : 0xffff; /* 0 would mean "no checksum" */
  memcpy(f, &h, sizeof h);
}

/* afx_send_batch: see transport.h.  Per datagram: its destinations (the
   group, the peer, or every peer in unicast mode), the first frame in
   place when safe else copied, further copies from the first frame, all
   onto the TX ring; one kick for the batch.  VSX_ERR_AGAIN when the pool,
   the TX ring or the completion ring is full; VSX_ERR_TOOBIG at a
   datagram over vsx_afxdp_max_dgram. */
static int afx_send_batch(void *state, const vsx_datagram_t *dgs, uint32_t cnt, uint32_t *sent_cnt) {
  afx_t *a = state;
  afx_q_t *q = &a->q[0];
  afx_dest_t *dest = a->dest;
  uint64_t now = 0;
  int err = VSX_OK;
  uint32_t i;
  afx_cq_drain(a);
  for (i = 0; i < cnt; i++) {
    const vsx_iovl_t *l = &dgs[i].iovl;
    size_t dlen = vsx_iovl_len(l);
    if (VSX_UNLIKELY(dlen > a->max_dgram)) {
      err = vsx_fail(VSX_ERR_TOOBIG, "afxdp: datagram of %zu bytes is larger than %u (MTU %u of %s)",
                     dlen, a->max_dgram, a->mtu, a->ifname);
      break;
    }
    uint32_t k = afx_dests(a, &dgs[i], dest, a->peers.max, &now);
    if (!k) continue;
    /* Room for k frames: the pool, the TX ring, the completion ring. */
    for (int t = 0;; t++) {
      uint32_t free_tx = xsk_prod_nb_free(&q->tx, k);
      if (free_tx >= k && a->tx_inflight + k <= a->ring_sz && vsx_bufpool_free_cnt(a->pool) >= k) break;
      if (t == 1) { err = VSX_ERR_AGAIN; break; }
      afx_tx_kick(a);
      afx_cq_drain(a);
    }
    if (err) break;

    vsx_iovec_t *fr = a->fr;
    uint8_t *first;
    int aerr = 0;
    if (afx_frame_inplace(a, l, &fr[0])) {
      a->st.tx_inplace++;
      first = vsx_iovec_ptr(&fr[0]);
    } else {
      aerr |= vsx_buf_alloc(a->pool, &fr[0]);
      fr[0].off = 0;
      fr[0].len = (uint32_t)(VSX_AFXDP_L2L4_SZ + dlen);
      first = vsx_iovec_ptr(&fr[0]);
      vsx_iovl_gather(l, 0, first + VSX_AFXDP_L2L4_SZ, dlen);
      a->st.tx_copy++;
    }
    uint64_t dsum = afx_csum_add(0, first + VSX_AFXDP_L2L4_SZ, dlen);
    for (uint32_t j = 1; j < k; j++) {
      aerr |= vsx_buf_alloc(a->pool, &fr[j]);
      fr[j].off = 0;
      fr[j].len = fr[0].len;
      memcpy(vsx_iovec_ptr(&fr[j]) + VSX_AFXDP_L2L4_SZ, first + VSX_AFXDP_L2L4_SZ, dlen);
      a->st.tx_copy++;
    }
    uint32_t idx, got = xsk_ring_prod__reserve(&q->tx, k, &idx);
    VSX_ASSERT(!aerr);   /* the pool had k free buffers */
    VSX_ASSERT(got == k); /* and the TX ring k free slots */
    for (uint32_t j = 0; j < k; j++) {
      afx_frame_header(a, vsx_iovec_ptr(&fr[j]), &dest[j], (uint32_t)dlen, dsum);
      VSX_DASSERT(a->frame_owner[fr[j].buf] == FRAME_APP);
      a->frame_owner[fr[j].buf] = FRAME_TX;
      struct xdp_desc *d = xsk_ring_prod__tx_desc(&q->tx, idx + j);
      d->addr = (uint64_t)fr[j].buf * a->frame_sz + fr[j].off;
      d->len = fr[j].len;
      d->options = 0;
      a->st.tx_byte += fr[j].len;
    }
    xsk_ring_prod__submit(&q->tx, k);
    a->tx_inflight += k;
    a->st.tx_frame += k;
  }
  afx_tx_kick(a);
  *sent_cnt = i;
  a->st.tx_dgram += i;
  if (err == VSX_ERR_AGAIN) a->st.tx_again++;
  return err;
}

/* ---- ops ----------------------------------------------------------------- */

/* afx_create: see transport.h and the top of this file.  Fails with
   VSX_ERR_PERM (privilege, memlock), VSX_ERR_NOTFOUND (interface, IPv4
   address, program object), VSX_ERR_NOTSUP (not Ethernet, loopback, no
   XDP, MTU too small), VSX_ERR_BUSY (port or interface in use, foreign
   XDP program), VSX_ERR_INVAL (configuration); each with a sentence in
   vsx_last_error saying what to do. */
static int afx_create(const vsx_transport_cfg_t *cfg, void **state_out) {
  const vsx_afxdp_opts_t *o = cfg ? cfg->opt_backend : NULL;
  vsx_afxdp_opts_t opts = o ? *o : (vsx_afxdp_opts_t){ 0 };
  if (!state_out) return vsx_fail(VSX_ERR_INVAL, "afxdp: state_out is NULL");
  *state_out = NULL;
  if (!cfg) return vsx_fail(VSX_ERR_INVAL, "afxdp: cfg is NULL");
  if (!cfg->eid) return vsx_fail(VSX_ERR_INVAL, "afxdp: cfg.eid is 0; every endpoint needs a nonzero id");
  if (!cfg->port) return vsx_fail(VSX_ERR_INVAL, "afxdp: cfg.port is 0; give the group's UDP port");
  if (cfg->buf_sz != 2048 && cfg->buf_sz != 4096)
    return vsx_fail(VSX_ERR_INVAL, "afxdp: cfg.buf_sz %u must be 2048 or 4096 (the UMEM frame size)", cfg->buf_sz);
  if (cfg->headroom + VSX_AFXDP_L2L4_SZ >= cfg->buf_sz / 2)
    return vsx_fail(VSX_ERR_INVAL, "afxdp: cfg.headroom %u plus the %u-byte Ethernet/IPv4/UDP header "
                    "must stay below half a frame (%u)", cfg->headroom, VSX_AFXDP_L2L4_SZ, cfg->buf_sz / 2);
  if (cfg->mcast_ip && (cfg->mcast_ip >> 28) != 0xe)
    return vsx_fail(VSX_ERR_INVAL, "afxdp: cfg.mcast_ip %u.%u.%u.%u is not an IPv4 multicast address "
                    "(224.0.0.0/4)", cfg->mcast_ip >> 24, (cfg->mcast_ip >> 16) & 255,
                    (cfg->mcast_ip >> 8) & 255, cfg->mcast_ip & 255);
  if (!opts.mode) {
    const char *m = getenv("VSX_AFXDP_MODE");
    if (m && !strcmp(m, "skb")) opts.mode = VSX_AFXDP_MODE_SKB;
    else if (m && !strcmp(m, "drv")) opts.mode = VSX_AFXDP_MODE_DRV;
    else if (m && *m && strcmp(m, "auto"))
      return vsx_fail(VSX_ERR_INVAL, "afxdp: VSX_AFXDP_MODE='%s' is not one of skb, drv, auto", m);
  }
  uint32_t ring = opts.ring_sz ? opts.ring_sz : AFX_RING_DEFAULT;
  if (ring < VSX_XPORT_BATCH || (ring & (ring - 1)))
    return vsx_fail(VSX_ERR_INVAL, "afxdp: ring_sz %u must be a power of 2 and at least %u", ring, VSX_XPORT_BATCH);
  uint32_t peer_max = opts.peer_max ? opts.peer_max : AFX_PEERS_DEFAULT;
  /* A fan-out cast puts one frame per peer on the TX ring at once. */
  if (peer_max > ring / 2)
    return vsx_fail(VSX_ERR_INVAL, "afxdp: peer_max %u must be at most half of ring_sz %u", peer_max, ring);

  int err = afx_caps_check();
  if (err) return err;

  afx_t *a = calloc(1, sizeof *a);
  if (!a) return vsx_fail(VSX_ERR_NOMEM, "afxdp: cannot allocate the transport state");
  afx_quiet_t quiet = afx_quiet_begin();
  a->ksock = a->epfd = a->xsks_map_fd = -1;
  a->eid = cfg->eid;
  a->port = htons(cfg->port);
  a->mcast_ip = htonl(cfg->mcast_ip);
  a->frame_sz = cfg->buf_sz;
  a->frame_cnt = cfg->buf_cnt;
  a->ring_sz = ring;
  a->busy_poll = opts.busy_poll;
  uint32_t mip = cfg->mcast_ip;
  a->mcast_mac[0] = 0x01; a->mcast_mac[1] = 0x00; a->mcast_mac[2] = 0x5e;
  a->mcast_mac[3] = (mip >> 16) & 0x7f; a->mcast_mac[4] = (mip >> 8) & 0xff; a->mcast_mac[5] = mip & 0xff;

  char drvbuf[32];
  const char *driver = "unknown";
  err = afx_if_init(a, cfg, &driver, drvbuf, sizeof drvbuf);
  if (err) goto fail_destroy;
  if (a->mtu < AFX_MTU_MIN) {
    err = vsx_fail(VSX_ERR_NOTSUP, "afxdp: the MTU of %s is %u, too small: vsx needs at least %u "
                   "(the IPv4 minimum every host accepts); raise it (`ip link set dev %s mtu 1500`)",
                   a->ifname, a->mtu, AFX_MTU_MIN, a->ifname);
    goto fail_destroy;
  }
  /* A datagram must fit the link and, on receive, a frame after the
     kernel's headroom; both sides use the same frame size. */
  a->max_dgram = a->mtu - 28;
  if (a->frame_sz - AFX_RX_HEADROOM - VSX_AFXDP_L2L4_SZ < a->max_dgram)
    a->max_dgram = a->frame_sz - AFX_RX_HEADROOM - VSX_AFXDP_L2L4_SZ;
  a->fill_cnt = opts.fill_cnt ? opts.fill_cnt : a->frame_cnt / (2 * a->nq);
  if (a->fill_cnt > ring) a->fill_cnt = ring;
  if (a->fill_cnt < VSX_XPORT_BATCH || (uint64_t)a->fill_cnt * a->nq >= a->frame_cnt) {
    err = vsx_fail(VSX_ERR_INVAL, "afxdp: %u frames (cfg.buf_cnt) cannot keep %u fill rings of %u "
                   "frames and leave some to send with; give more buffers", a->frame_cnt, a->nq,
                   a->fill_cnt < VSX_XPORT_BATCH ? VSX_XPORT_BATCH : a->fill_cnt);
    goto fail_destroy;
  }
  a->q = calloc(a->nq, sizeof *a->q);
  if (!a->q) { err = vsx_fail(VSX_ERR_NOMEM, "afxdp: cannot allocate %u queues", a->nq); goto fail_destroy; }
  for (uint32_t i = 0; i < a->nq; i++) a->q[i].fd = -1;
  err = vsx_peertab_init(&a->peers, peer_max);
  a->dest = calloc(peer_max, sizeof *a->dest);
  a->fr = calloc(peer_max, sizeof *a->fr);
  if (err || !a->dest || !a->fr) { err = vsx_fail(VSX_ERR_NOMEM, "afxdp: cannot allocate the peer table"); goto fail_destroy; }

  err = afx_ksock_init(a);
  if (err) goto fail_destroy;
  err = afx_umem_init(a, cfg);
  if (err) goto fail_destroy;
  err = afx_prog_init(a, opts.mode);
  if (err) goto fail_destroy;
  err = afx_socks_init(a, opts.copy);
  if (err) goto fail_destroy;
  for (uint32_t i = 0; i < a->nq; i++) afx_refill(a, &a->q[i]);

  a->tmpl = (afx_hdr_t){ .type = htons(ETH_P_IP), .vihl = 0x45, .frag = htons(0x4000) /* DF */,
                         .proto = IPPROTO_UDP, .saddr = a->local_ip, .sport = a->port };
  memcpy(a->tmpl.src, a->mac, 6);
  char ip[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &a->local_ip, ip, sizeof ip);
  vsx_log(1, "afxdp: %s (driver %s, %u queue%s, MTU %u) %s:%u, %s mode, %s, %u frames of %u",
          a->ifname, driver, a->nq, a->nq == 1 ? "" : "s", a->mtu, ip, cfg->port, afx_mode_name(a->mode),
          a->zerocopy ? "zero-copy" : "copy", a->frame_cnt, a->frame_sz);
  afx_quiet_end(quiet);
  *state_out = a;
  return VSX_OK;

fail_destroy:
  afx_destroy(a); /* undoes whatever part of the set-up ran */
  afx_quiet_end(quiet);
  return err;
}

/* afx_destroy undoes create in reverse, from whatever point it reached:
   sockets (which leaves the XSKMAP), UMEM, program (detached only if we
   attached it and it is still ours), kernel socket (leaves the group),
   our references on frames still in the kernel's rings, pool, UMEM
   mapping. */
static void afx_destroy(void *state) {
  afx_t *a = state;
  if (!a) return;
  afx_quiet_t quiet = afx_quiet_begin();
  if (a->q && a->q[0].xsk && vsx_log_level() >= 1) {
    /* Where the traffic came in, for multi-queue devices. */
    char per_q[256] = "";
    size_t at = 0;
    for (uint32_t i = 0; i < a->nq && at < sizeof per_q - 24; i++)
      at += (size_t)snprintf(per_q + at, sizeof per_q - at, " q%u=%llu", i, (unsigned long long)a->q[i].rx_frames);
    vsx_log(1, "afxdp: %s closing: %llu datagrams in, %llu out; frames per queue:%s", a->ifname,
            (unsigned long long)a->st.rx_dgram, (unsigned long long)a->st.tx_dgram, per_q);
  }
  if (a->epfd >= 0) close(a->epfd);
  for (uint32_t i = 0; a->q && i < a->nq; i++)
    if (a->q[i].xsk) xsk_socket__delete(a->q[i].xsk);
  if (a->umem) {
    int e = xsk_umem__delete(a->umem);
    if (e) vsx_log(0, "afxdp: xsk_umem__delete: %s", strerror(-e));
  }
  if (a->prog) {
    if (a->attached) {
      int e = xdp_program__detach(a->prog, a->ifindex, a->mode, 0);
      if (e) vsx_log(0, "afxdp: cannot detach the XDP program from %s: %s; detach it by hand "
                     "(`ip link set dev %s %s off`)", a->ifname, strerror(-e), a->ifname, afx_ip_mode(a->mode));
    }
    xdp_program__close(a->prog);
  }
  if (a->ksock >= 0) close(a->ksock);
  if (a->pool && a->frame_owner)
    for (uint32_t b = 0; b < a->frame_cnt; b++)
      if (a->frame_owner[b] != FRAME_APP) afx_frame_put(a, b);
  if (a->pool) vsx_bufpool_destroy(a->pool);
  free(a->frame_owner);
  if (a->umem_area) munmap(a->umem_area, a->umem_sz);
  vsx_peertab_fini(&a->peers);
  free(a->dest);
  free(a->fr);
  free(a->q);
  free(a);
  afx_quiet_end(quiet);
}

/* afx_pool returns the pool whose region is the UMEM. */
static vsx_bufpool_t *afx_pool(void *state) { return ((afx_t *)state)->pool; }

/* afx_poll_fd returns the socket (one queue) or an epoll descriptor over
   all sockets; readable when an RX ring holds frames. */
static int afx_poll_fd(void *state) {
  afx_t *a = state;
  return a->nq > 1 ? a->epfd : a->q[0].fd;
}

/* afx_add_peer records addr (a struct sockaddr_in) as eid's address and
   looks its MAC up in the kernel's ARP cache (asking the kernel to
   resolve it when missing; sends wait for it).  Never evicted; replaced
   by what eid's own traffic shows. */
static int afx_add_peer(void *state, uint64_t eid, const void *addr) {
  afx_t *a = state;
  const struct sockaddr_in *sa = addr;
  if (!eid || !sa || sa->sin_family != AF_INET || !sa->sin_port)
    return vsx_fail(VSX_ERR_INVAL, "afxdp: add_peer needs a nonzero eid and a struct sockaddr_in with "
                    "family AF_INET and a port");
  vsx_peer_t *p = vsx_peertab_get(&a->peers, eid);
  if (!p) return vsx_fail(VSX_ERR_AGAIN, "afxdp: peer table full of %u added peers; raise peer_max", a->peers.max);
  if (p->ip != sa->sin_addr.s_addr) p->has_mac = 0;
  p->ip = sa->sin_addr.s_addr;
  p->port = sa->sin_port;
  p->is_static = 1;
  p->probe_ns = 0;
  afx_resolve(a, p, vsx_now_ns());
  return VSX_OK;
}

/* vsx_afxdp_stats_get: see afxdp_priv.h; one getsockopt per queue. */
void vsx_afxdp_stats_get(void *state, vsx_xport_stats_t *out) {
  afx_t *a = state;
  *out = a->st;
  out->peer_evict = a->peers.evict_cnt;
  for (uint32_t i = 0; i < a->nq; i++) {
    struct xdp_statistics xs;
    socklen_t len = sizeof xs;
    memset(&xs, 0, sizeof xs);
    if (getsockopt(a->q[i].fd, SOL_XDP, XDP_STATISTICS, &xs, &len)) continue;
    out->xdp_rx_dropped += xs.rx_dropped;
    out->xdp_rx_invalid += xs.rx_invalid_descs;
    out->xdp_tx_invalid += xs.tx_invalid_descs;
    /* Kernels before 5.9 return only the first three counters. */
    if (len < sizeof xs) continue;
    out->xdp_rx_ring_full += xs.rx_ring_full;
    out->xdp_fill_ring_empty += xs.rx_fill_ring_empty_descs;
    out->xdp_tx_ring_empty += xs.tx_ring_empty_descs;
  }
}

/* vsx_afxdp_max_dgram: see afxdp_priv.h. */
uint32_t vsx_afxdp_max_dgram(void *state) { return ((afx_t *)state)->max_dgram; }

const vsx_transport_ops_t vsx_transport_afxdp = {
  .name = "afxdp",
  .create = afx_create,
  .destroy = afx_destroy,
  .pool = afx_pool,
  .send_batch = afx_send_batch,
  .recv_batch = afx_recv_batch,
  .poll_fd = afx_poll_fd,
  .add_peer = afx_add_peer,
};
