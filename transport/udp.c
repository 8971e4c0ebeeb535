/* udp.c - the kernel UDP transport: same wire format as afxdp, no
   privilege needed.

   One non-blocking UDP socket.  Two modes, chosen by cfg.mcast_ip:
   - multicast (mcast_ip != 0): bound to INADDR_ANY:port with SO_REUSEADDR
     and SO_REUSEPORT so several members on one host share the port, joined
     to the group on the interface; casts go to mcast_ip:port.
   - unicast fan-out (mcast_ip == 0): bound to local_ip:port without reuse
     (a clear error if the port is taken); a cast is one datagram to every
     peer in the table and to every seed address.  Works on loopback
     (127.0.0.1) with one port per member.
   SEEDS AND PEER EXCHANGE (unicast mode).  A process does not know the
   endpoint ids of the others before hearing from them, so add_peer with
   eid 0 records a seed: a bare address that gets every cast (so gossip,
   membership's discovery, reaches it) until a datagram from that address
   shows its eid; the seed then becomes that peer's static entry (one
   entry per member, so no duplicate copies).  Seeds alone would connect
   only the members that were given each other's addresses, so members
   also tell each other whom they hear: a PEERS datagram (below) lists
   the peers this transport heard from in the last UDP_FRESH_NS; it goes
   to every peer when a new peer is heard and every UDP_EXCHANGE_NS.  A
   receiver adds the peers it did not know.  So each member needs one
   address that reaches the group (a chain is enough), and a dead
   member's address stops spreading once nobody hears it.
   PEERS datagram: the wire header (kind UDP_KIND_PEERS, a kind private to
   this transport that never reaches the layers, instance 0, dst 0), then
   entries of 16 bytes: eid u64, IPv4 4 bytes, port 2 bytes, 2 zero bytes,
   all in network order.
   Sends go to the peer's address learned from its own traffic (source
   address of its datagrams) or given with add_peer.  In multicast mode a
   send whose peer is unknown, or shares our own address and port (another
   member on this host: the kernel would hand the datagram to any one of
   the sockets sharing the port), goes to the group address instead, and
   every receiver drops sends addressed to someone else.

   Data path: recvmmsg straight into pool buffers allocated ahead
   (vsx_buf_alloc, no copy), sendmmsg straight from the caller's iovecs;
   batches of VSX_XPORT_BATCH; nothing allocated after create. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "vsx/transport.h"
#include "vsx/wire.h"
#include "transport/afxdp_priv.h"

#define UDP_PEERS_DEFAULT   256u
#define UDP_SOCKBUF_DEFAULT (4u << 20)
#define UDP_PAYLOAD_MAX     65507u /* 65535 - 20 (IPv4) - 8 (UDP) */
#define UDP_SEEDS_MAX       64u
#define UDP_KIND_PEERS      0xf1u  /* transport-private wire kind        */
#define UDP_PEER_ENTRY_SZ   16u
#define UDP_PEERS_PER_DG    64u    /* entries per PEERS datagram         */
#define UDP_EXCHANGE_NS     1000000000ull /* PEERS to everyone this often */
#define UDP_FRESH_NS        5000000000ull /* a peer is advertised this long
                                              after we last heard it      */

typedef struct udp_xport {
  int fd;
  vsx_bufpool_t *pool;
  uint64_t eid;
  int mcast;                /* multicast mode                              */
  struct sockaddr_in group; /* mcast_ip:port                               */
  uint32_t local_ip;        /* network order; 0 when unknown               */
  uint16_t port;            /* network order                               */
  uint32_t max_dgram;
  uint32_t piece_max;       /* iovecs one datagram may have                */
  vsx_peertab_t peers;
  vsx_xport_stats_t st;
  uint64_t group_id;
  /* unicast mode: addresses given without an eid, not heard from yet */
  struct sockaddr_in seed[UDP_SEEDS_MAX];
  uint32_t seed_cnt;
  int peers_news;           /* a new peer was heard: tell the others     */
  uint64_t exchange_at;     /* next PEERS to everyone                    */
  /* receive: rx_have buffers allocated ahead for recvmmsg */
  uint32_t rx_have;
  vsx_iovec_t rx_buf[VSX_XPORT_BATCH];
  struct mmsghdr rx_msg[VSX_XPORT_BATCH];
  struct iovec rx_iov[VSX_XPORT_BATCH];
  struct sockaddr_in rx_from[VSX_XPORT_BATCH];
  /* send: one message per destination, iovecs shared by the copies of a
     datagram (datagram k of a flush uses tx_iov[k * piece_max ...]) */
  uint32_t tx_cnt;
  struct mmsghdr tx_msg[VSX_XPORT_BATCH];
  struct sockaddr_in tx_to[VSX_XPORT_BATCH];
  uint32_t tx_dg[VSX_XPORT_BATCH];   /* datagram index of each message     */
  uint8_t tx_first[VSX_XPORT_BATCH]; /* first copy of its datagram         */
  struct iovec *tx_iov;
} udp_xport_t;

static void udp_destroy(void *state);

/* udp_sockbuf sets SO_RCVBUF/SO_SNDBUF to sz, through the *FORCE variants
   when we may (CAP_NET_ADMIN) so rmem_max does not cap them. */
static void udp_sockbuf(int fd, int sz) {
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz))
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof sz))
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
}

/* udp_if_init resolves cfg->opt_ifname: index, IPv4 address (unless
   opt_local_ip is given) and MTU.  Syscalls: if_nametoindex, ioctl
   SIOCGIFADDR and SIOCGIFMTU on a scratch socket. */
static int udp_if_init(udp_xport_t *u, const vsx_transport_cfg_t *cfg, int *ifindex, uint32_t *mtu) {
  *ifindex = 0;
  *mtu = 0;
  u->local_ip = htonl(cfg->opt_local_ip);
  if (!cfg->opt_ifname) return VSX_OK;
  *ifindex = (int)if_nametoindex(cfg->opt_ifname);
  if (!*ifindex)
    return vsx_fail(VSX_ERR_NOTFOUND, "udp: no interface '%s' in this network namespace (%s); "
                    "check `ip link` or leave opt_ifname NULL", cfg->opt_ifname, strerror(errno));
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return vsx_fail(VSX_ERR_IO, "udp: socket: %s", strerror(errno));
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", cfg->opt_ifname);
  if (!ioctl(s, SIOCGIFMTU, &ifr)) *mtu = (uint32_t)ifr.ifr_mtu;
  if (!u->local_ip && !ioctl(s, SIOCGIFADDR, &ifr))
    u->local_ip = ((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr.s_addr;
  close(s);
  return VSX_OK;
}

/* udp_sock_init opens and binds the socket and joins the group.  Syscalls:
   socket, setsockopt (buffers, reuse, multicast), bind. */
static int udp_sock_init(udp_xport_t *u, const vsx_transport_cfg_t *cfg, int ifindex, uint32_t sock_buf_sz) {
  char ipbuf[INET_ADDRSTRLEN];
  int one = 1, zero = 0;
  u->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (u->fd < 0) return vsx_fail(VSX_ERR_IO, "udp: socket: %s", strerror(errno));
  udp_sockbuf(u->fd, (int)sock_buf_sz);

  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = u->port };
  if (u->mcast) {
    /* Several members of one host share the group port; every socket
       joined to the group gets its own copy of each cast. */
    if (setsockopt(u->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        setsockopt(u->fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one))
      return vsx_fail(VSX_ERR_IO, "udp: SO_REUSEADDR/SO_REUSEPORT: %s", strerror(errno));
    /* Without this a socket bound to INADDR_ANY:port also receives other
       groups' traffic on the same port joined by any socket of the host. */
    (void)setsockopt(u->fd, IPPROTO_IP, IP_MULTICAST_ALL, &zero, sizeof zero);
    sa.sin_addr.s_addr = htonl(INADDR_ANY);
  } else {
    sa.sin_addr.s_addr = u->local_ip;
  }
  if (bind(u->fd, (struct sockaddr *)&sa, sizeof sa)) {
    int e = errno;
    inet_ntop(AF_INET, &sa.sin_addr, ipbuf, sizeof ipbuf);
    if (e == EADDRINUSE)
      return vsx_fail(VSX_ERR_BUSY, "udp: port %u on %s is already in use (a socket bound without "
                      "SO_REUSEPORT, another user, or an afxdp member on this host); choose another "
                      "port or stop that program", ntohs(u->port), ipbuf);
    if (e == EACCES || e == EPERM)
      return vsx_fail(VSX_ERR_PERM, "udp: bind %s:%u: %s; use a port >= 1024 or run with "
                      "CAP_NET_BIND_SERVICE", ipbuf, ntohs(u->port), strerror(e));
    if (e == EADDRNOTAVAIL)
      return vsx_fail(VSX_ERR_NOTFOUND, "udp: bind %s:%u: no interface has this address; fix "
                      "opt_local_ip", ipbuf, ntohs(u->port));
    return vsx_fail(VSX_ERR_IO, "udp: bind %s:%u: %s", ipbuf, ntohs(u->port), strerror(e));
  }
  if (!u->mcast) return VSX_OK;

  struct ip_mreqn mr = { .imr_multiaddr = u->group.sin_addr, .imr_ifindex = ifindex };
  mr.imr_address.s_addr = u->local_ip;
  if (setsockopt(u->fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof mr)) {
    int e = errno;
    inet_ntop(AF_INET, &u->group.sin_addr, ipbuf, sizeof ipbuf);
    return vsx_fail(e == ENODEV ? VSX_ERR_NOTFOUND : VSX_ERR_IO,
                    "udp: cannot join multicast group %s%s%s: %s; give the interface with "
                    "opt_ifname, check it has the MULTICAST flag, or use mcast_ip 0 (unicast fan-out)",
                    ipbuf, cfg->opt_ifname ? " on " : "", cfg->opt_ifname ? cfg->opt_ifname : "", strerror(e));
  }
  struct ip_mreqn mif = { .imr_ifindex = ifindex };
  mif.imr_address.s_addr = u->local_ip;
  if ((ifindex || u->local_ip) && setsockopt(u->fd, IPPROTO_IP, IP_MULTICAST_IF, &mif, sizeof mif))
    return vsx_fail(VSX_ERR_IO, "udp: IP_MULTICAST_IF: %s", strerror(errno));
  /* Members on this host (same port, other sockets) need our casts; our
     own copy comes back too and is dropped by its source eid. */
  (void)setsockopt(u->fd, IPPROTO_IP, IP_MULTICAST_LOOP, &one, sizeof one);
  return VSX_OK;
}

/* udp_create: see transport.h.  Allocates the state, pool, peer table and
   iovec array; opens the socket (no privilege needed). */
static int udp_create(const vsx_transport_cfg_t *cfg, void **state_out) {
  const vsx_udp_opts_t *o = cfg ? cfg->opt_backend : NULL;
  if (!state_out) return vsx_fail(VSX_ERR_INVAL, "udp: state_out is NULL");
  *state_out = NULL;
  if (!cfg) return vsx_fail(VSX_ERR_INVAL, "udp: cfg is NULL");
  if (!cfg->eid) return vsx_fail(VSX_ERR_INVAL, "udp: cfg.eid is 0; every endpoint needs a nonzero id");
  if (!cfg->port) return vsx_fail(VSX_ERR_INVAL, "udp: cfg.port is 0; give the group's UDP port");
  if (cfg->mcast_ip && (cfg->mcast_ip >> 28) != 0xe)
    return vsx_fail(VSX_ERR_INVAL, "udp: cfg.mcast_ip %u.%u.%u.%u is not an IPv4 multicast address "
                    "(224.0.0.0/4)", cfg->mcast_ip >> 24, (cfg->mcast_ip >> 16) & 255,
                    (cfg->mcast_ip >> 8) & 255, cfg->mcast_ip & 255);
  if (cfg->buf_cnt <= VSX_XPORT_BATCH)
    return vsx_fail(VSX_ERR_INVAL, "udp: cfg.buf_cnt %u is too small; give more than %u buffers",
                    cfg->buf_cnt, VSX_XPORT_BATCH);

  udp_xport_t *u = calloc(1, sizeof *u);
  if (!u) return vsx_fail(VSX_ERR_NOMEM, "udp: cannot allocate the transport state");
  u->fd = -1;
  u->eid = cfg->eid;
  u->group_id = cfg->group_id;
  u->port = htons(cfg->port);
  u->mcast = cfg->mcast_ip != 0;
  u->group = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = u->port,
                                   .sin_addr.s_addr = htonl(cfg->mcast_ip) };
  u->piece_max = cfg->ext_cnt && cfg->ext_cap > VSX_IOVL_INLINE ? cfg->ext_cap : VSX_IOVL_INLINE;

  vsx_bufpool_opts_t po = {
    .buf_cnt = cfg->buf_cnt, .buf_sz = cfg->buf_sz, .headroom = cfg->headroom,
    .reserve_cnt = cfg->reserve_cnt, .ext_cnt = cfg->ext_cnt, .ext_cap = cfg->ext_cap,
  };
  int ifindex;
  uint32_t mtu;
  int err = vsx_bufpool_create(&po, &u->pool);
  if (err) goto fail_destroy;
  err = vsx_peertab_init(&u->peers, o && o->peer_max ? o->peer_max : UDP_PEERS_DEFAULT);
  if (err) { vsx_fail(err, "udp: cannot allocate the peer table"); goto fail_destroy; }
  u->tx_iov = calloc((size_t)VSX_XPORT_BATCH * u->piece_max, sizeof *u->tx_iov);
  if (!u->tx_iov) { err = vsx_fail(VSX_ERR_NOMEM, "udp: cannot allocate the send iovecs"); goto fail_destroy; }
  err = udp_if_init(u, cfg, &ifindex, &mtu);
  if (err) goto fail_destroy;
  err = udp_sock_init(u, cfg, ifindex, o && o->sock_buf_sz ? o->sock_buf_sz : UDP_SOCKBUF_DEFAULT);
  if (err) goto fail_destroy;

  /* Largest datagram: what a peer's pool buffer holds, and no IP
     fragmentation when the interface (so its MTU) is known. */
  u->max_dgram = cfg->buf_sz - cfg->headroom;
  if (u->max_dgram > UDP_PAYLOAD_MAX) u->max_dgram = UDP_PAYLOAD_MAX;
  if (mtu && mtu - 28 < u->max_dgram) u->max_dgram = mtu - 28;
  *state_out = u;
  return VSX_OK;

fail_destroy:
  udp_destroy(u); /* undoes whatever part of the set-up ran */
  return err;
}

/* udp_destroy closes the socket (leaving the group), gives back the
   buffers kept for receiving and frees everything; handles a state that
   create left half built. */
static void udp_destroy(void *state) {
  udp_xport_t *u = state;
  if (!u) return;
  if (u->fd >= 0) close(u->fd);
  for (uint32_t i = 0; i < u->rx_have; i++) vsx_iovec_unref(&u->rx_buf[i]);
  if (u->pool) vsx_bufpool_destroy(u->pool);
  vsx_peertab_fini(&u->peers);
  free(u->tx_iov);
  free(u);
}

/* udp_pool returns the pool received datagrams live in. */
static vsx_bufpool_t *udp_pool(void *state) { return ((udp_xport_t *)state)->pool; }

/* udp_poll_fd returns the socket. */
static int udp_poll_fd(void *state) { return ((udp_xport_t *)state)->fd; }

/* same_addr: a and b are one IPv4 address and port. */
static int same_addr(const struct sockaddr_in *a, uint32_t ip, uint16_t port) {
  return a->sin_addr.s_addr == ip && a->sin_port == port;
}

/* udp_is_me: sa is this socket's own address (a seed list given to every
   member holds each member's own address too). */
static int udp_is_me(const udp_xport_t *u, const struct sockaddr_in *sa) {
  if (sa->sin_port != u->port) return 0;
  if (u->local_ip) return sa->sin_addr.s_addr == u->local_ip;
  return (ntohl(sa->sin_addr.s_addr) >> 24) == 127; /* bound to every address: loopback is us */
}

/* udp_seed_drop removes the seed at sa, if any. */
static void udp_seed_drop(udp_xport_t *u, const struct sockaddr_in *sa) {
  for (uint32_t i = 0; i < u->seed_cnt; i++)
    if (same_addr(&u->seed[i], sa->sin_addr.s_addr, sa->sin_port)) {
      u->seed[i] = u->seed[--u->seed_cnt];
      return;
    }
}

/* udp_add_peer records addr (a struct sockaddr_in) as eid's address; it
   is kept (never evicted) and replaced by what eid's own traffic shows.
   eid 0 (unicast mode only): a seed, see the top of the file. */
static int udp_add_peer(void *state, uint64_t eid, const void *addr) {
  udp_xport_t *u = state;
  const struct sockaddr_in *sa = addr;
  if (!sa || sa->sin_family != AF_INET || !sa->sin_port || !sa->sin_addr.s_addr)
    return vsx_fail(VSX_ERR_INVAL, "udp: add_peer needs a struct sockaddr_in with family AF_INET, an "
                    "address and a port");
  if (!eid) {
    if (u->mcast)
      return vsx_fail(VSX_ERR_NOTSUP, "udp: peer addresses are for unicast mode; in multicast mode members "
                      "find each other on the group address: give mcast_ip 0 or no peer address");
    if (udp_is_me(u, sa)) return VSX_OK; /* our own address in a shared list */
    for (uint32_t s = 0; s < u->peers.cap; s++) {
      vsx_peer_t *p = &u->peers.slot[s];
      if (p->eid && p->ip == sa->sin_addr.s_addr && p->port == sa->sin_port) { p->is_static = 1; return VSX_OK; }
    }
    for (uint32_t i = 0; i < u->seed_cnt; i++)
      if (same_addr(&u->seed[i], sa->sin_addr.s_addr, sa->sin_port)) return VSX_OK;
    if (u->seed_cnt == UDP_SEEDS_MAX)
      return vsx_fail(VSX_ERR_AGAIN, "udp: %u peer addresses not heard from yet; give fewer (one that "
                      "reaches the group is enough)", UDP_SEEDS_MAX);
    u->seed[u->seed_cnt++] = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = sa->sin_port,
                                                   .sin_addr = sa->sin_addr };
    return VSX_OK;
  }
  vsx_peer_t *p = vsx_peertab_get(&u->peers, eid);
  if (!p) return vsx_fail(VSX_ERR_AGAIN, "udp: peer table full of %u added peers; raise peer_max",
                          u->peers.max);
  p->ip = sa->sin_addr.s_addr;
  p->port = sa->sin_port;
  p->is_static = 1;
  udp_seed_drop(u, sa);
  return VSX_OK;
}

/* udp_flush sends the queued messages.  Returns VSX_OK with every message
   gone (sent, or refused by the OS and counted as lost), or VSX_ERR_AGAIN
   with *stop_dg = the first datagram not sent: the socket buffer is full.
   When that happens between two copies of one fan-out datagram, the
   remaining copies are counted as lost and the datagram as sent, since a
   datagram is never half sent from the caller's view. */
static int udp_flush(udp_xport_t *u, uint32_t *stop_dg) {
  uint32_t off = 0, n = u->tx_cnt;
  int err = VSX_OK;
  while (off < n) {
    int r = sendmmsg(u->fd, &u->tx_msg[off], n - off, MSG_DONTWAIT);
    if (r > 0) {
      for (int k = 0; k < r; k++) u->st.tx_byte += u->tx_msg[off + k].msg_len;
      u->st.tx_frame += (uint32_t)r;
      off += (uint32_t)r;
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
      uint32_t dg = u->tx_dg[off];
      if (!u->tx_first[off]) {
        for (; off < n && u->tx_dg[off] == dg; off++) u->st.tx_drop++;
        dg++;
      }
      *stop_dg = dg;
      err = VSX_ERR_AGAIN;
      break;
    }
    /* Unreachable network, firewall, message too big: this copy is lost
       like any unreliable datagram; the others go on. */
    u->st.tx_drop++;
    off++;
  }
  u->tx_cnt = 0;
  return err;
}

/* udp_queue adds one message for datagram dg to dst, whose iovecs are the
   iov_cnt at iov. */
static void udp_queue(udp_xport_t *u, uint32_t dg, int first, const struct sockaddr_in *dst,
                      struct iovec *iov, uint32_t iov_cnt) {
  uint32_t k = u->tx_cnt++;
  u->tx_to[k] = *dst;
  u->tx_dg[k] = dg;
  u->tx_first[k] = (uint8_t)first;
  u->tx_msg[k].msg_hdr = (struct msghdr){ .msg_name = &u->tx_to[k], .msg_namelen = sizeof u->tx_to[k],
                                          .msg_iov = iov, .msg_iovlen = iov_cnt };
}

/* udp_send_batch: see transport.h.  A cast goes to the group, or in
   unicast mode to every peer and seed; a send to the peer's address (or the group,
   see the top of the file).  Sends to an unknown peer in unicast mode are
   dropped and counted (tx_noroute).  VSX_ERR_TOOBIG stops the batch at a
   datagram larger than vsx_udp_max_dgram. */
static int udp_send_batch(void *state, const vsx_datagram_t *dgs, uint32_t cnt, uint32_t *sent_cnt) {
  udp_xport_t *u = state;
  uint32_t slice = 0, stop = 0;
  *sent_cnt = 0;
  for (uint32_t i = 0; i < cnt; i++) {
    const vsx_iovl_t *l = &dgs[i].iovl;
    size_t len = vsx_iovl_len(l);
    if (VSX_UNLIKELY(len > u->max_dgram)) {
      if (u->tx_cnt && udp_flush(u, &stop)) goto again;
      *sent_cnt = i;
      u->st.tx_dgram += i;
      return vsx_fail(VSX_ERR_TOOBIG, "udp: datagram of %zu bytes is larger than %u", len, u->max_dgram);
    }
    /* Each datagram's iovec slice serves all its copies; a flush frees
       every slice. */
    if (slice == VSX_XPORT_BATCH) {
      if (udp_flush(u, &stop)) goto again;
      slice = 0;
    }
    struct iovec *iov = &u->tx_iov[(size_t)slice++ * u->piece_max];
    VSX_ASSERT(l->cnt <= u->piece_max);
    for (uint32_t k = 0; k < l->cnt; k++) {
      const vsx_iovec_t *v = vsx_iovl_at_c(l, k);
      iov[k] = (struct iovec){ .iov_base = vsx_iovec_ptr(v), .iov_len = v->len };
    }

    const struct sockaddr_in *dst = &u->group;
    struct sockaddr_in sa;
    if (dgs[i].peer_eid) {
      vsx_peer_t *p = vsx_peertab_find(&u->peers, dgs[i].peer_eid);
      if (p && !(u->mcast && p->ip == u->local_ip && p->port == u->port)) {
        sa = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = p->port, .sin_addr.s_addr = p->ip };
        dst = &sa;
      } else if (!p && !u->mcast) {
        u->st.tx_noroute++;
        continue;
      }
    } else if (!u->mcast) {
      int first = 1;
      for (uint32_t s = 0; s < u->peers.cap; s++) {
        const vsx_peer_t *p = &u->peers.slot[s];
        if (!p->eid || p->eid == u->eid) continue;
        if (u->tx_cnt == VSX_XPORT_BATCH && udp_flush(u, &stop)) goto again;
        sa = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = p->port, .sin_addr.s_addr = p->ip };
        udp_queue(u, i, first, &sa, iov, l->cnt);
        first = 0;
      }
      for (uint32_t s = 0; s < u->seed_cnt; s++) {
        if (u->tx_cnt == VSX_XPORT_BATCH && udp_flush(u, &stop)) goto again;
        udp_queue(u, i, first, &u->seed[s], iov, l->cnt);
        first = 0;
      }
      continue;
    }
    if (u->tx_cnt == VSX_XPORT_BATCH && udp_flush(u, &stop)) goto again;
    udp_queue(u, i, 1, dst, iov, l->cnt);
  }
  if (u->tx_cnt && udp_flush(u, &stop)) goto again;
  *sent_cnt = cnt;
  u->st.tx_dgram += cnt;
  return VSX_OK;

again:
  /* Back-pressure: the socket buffer is full; datagrams from stop on
     were not sent. */
  *sent_cnt = stop;
  u->st.tx_dgram += stop;
  u->st.tx_again++;
  return VSX_ERR_AGAIN;
}

/* udp_claim: in unicast mode an address belongs to one member, and eid
   now speaks from sa: a seed there has found its eid, and another eid's
   entry there (a member restarted on the same port) goes, so casts reach
   that address once.  Returns 1 if the application had given the address
   (the new entry is then kept the same way).  O(table) per call: only
   when a peer is heard first or moves. */
static int udp_claim(udp_xport_t *u, uint64_t eid, const struct sockaddr_in *sa) {
  int given = 0;
  for (uint32_t i = 0; i < u->seed_cnt; i++)
    if (same_addr(&u->seed[i], sa->sin_addr.s_addr, sa->sin_port)) {
      u->seed[i] = u->seed[--u->seed_cnt];
      given = 1;
      break;
    }
  for (uint32_t s = 0; s < u->peers.cap;) {
    const vsx_peer_t *p = &u->peers.slot[s];
    if (!p->eid || p->eid == eid || !same_addr(sa, p->ip, p->port)) { s++; continue; }
    given |= p->is_static;
    vsx_peertab_remove_(&u->peers, s);
    s = 0; /* the removal moved entries back, maybe across the table's end: look again */
  }
  return given;
}

/* udp_learn records that eid's traffic comes from sa.  A peer heard for
   the first time (or at a new address) is news for the others. */
static void udp_learn(udp_xport_t *u, uint64_t eid, const struct sockaddr_in *sa, uint64_t now_ns) {
  vsx_peer_t *p = vsx_peertab_find(&u->peers, eid);
  if (VSX_UNLIKELY(!p || !p->heard_ns || !same_addr(sa, p->ip, p->port))) {
    int given = 0;
    if (!u->mcast) { /* in multicast mode members of one host share the group port */
      given = udp_claim(u, eid, sa);
      u->peers_news = 1;
    }
    if (!(p = vsx_peertab_get(&u->peers, eid))) return; /* found again: the claim may have moved it */
    if (given) p->is_static = 1;
  }
  p->ip = sa->sin_addr.s_addr;
  p->port = sa->sin_port;
  p->heard_ns = now_ns;
}

/* udp_peers_in takes the peers a PEERS datagram from src (at from)
   lists that we do not know yet (their own traffic will confirm them),
   and src itself.  Returns 0 if the datagram is malformed. */
static int udp_peers_in(udp_xport_t *u, uint64_t src, const struct sockaddr_in *from, const uint8_t *d,
                        uint32_t len, uint64_t now_ns) {
  vsx_wire_hdr_t h;
  vsx_wire_decode(&h, d);
  if (h.magic != VSX_WIRE_MAGIC || h.version != VSX_WIRE_VERSION || h.total_len != len ||
      (len - sizeof h) % UDP_PEER_ENTRY_SZ)
    return 0;
  if (h.group_id != u->group_id || u->mcast) return 1; /* another group's, or not needed here */
  for (const uint8_t *e = d + sizeof h; e < d + len; e += UDP_PEER_ENTRY_SZ) {
    uint64_t eid;
    memcpy(&eid, e, 8);
    eid = be64toh(eid);
    struct sockaddr_in sa = { .sin_family = AF_INET };
    memcpy(&sa.sin_addr.s_addr, e + 8, 4);
    memcpy(&sa.sin_port, e + 12, 2);
    if (!eid || eid == u->eid || !sa.sin_port || vsx_peertab_find(&u->peers, eid)) continue;
    vsx_peer_t *p = vsx_peertab_get(&u->peers, eid);
    if (!p) break;
    p->ip = sa.sin_addr.s_addr;
    p->port = sa.sin_port;
    udp_seed_drop(u, &sa);
  }
  udp_learn(u, src, from, now_ns);
  return 1;
}

/* udp_peers_out sends every peer the list of peers heard lately, in
   datagrams of up to UDP_PEERS_PER_DG entries.  Unreliable like any
   datagram: the next exchange repeats it. */
static void udp_peers_out(udp_xport_t *u, uint64_t now_ns) {
  uint8_t dg[sizeof(vsx_wire_hdr_t) + UDP_PEERS_PER_DG * UDP_PEER_ENTRY_SZ];
  uint32_t s = 0;
  u->peers_news = 0;
  u->exchange_at = now_ns + UDP_EXCHANGE_NS;
  while (s < u->peers.cap) {
    uint32_t n = 0;
    for (; s < u->peers.cap && n < UDP_PEERS_PER_DG; s++) {
      const vsx_peer_t *p = &u->peers.slot[s];
      if (!p->eid || !p->heard_ns || now_ns - p->heard_ns > UDP_FRESH_NS) continue;
      uint8_t *e = dg + sizeof(vsx_wire_hdr_t) + n++ * UDP_PEER_ENTRY_SZ;
      uint64_t be = htobe64(p->eid);
      memcpy(e, &be, 8);
      memcpy(e + 8, &p->ip, 4);
      memcpy(e + 12, &p->port, 2);
      e[14] = e[15] = 0;
    }
    if (!n) break;
    uint32_t len = (uint32_t)sizeof(vsx_wire_hdr_t) + n * UDP_PEER_ENTRY_SZ;
    vsx_wire_hdr_t h = { .magic = VSX_WIRE_MAGIC, .version = VSX_WIRE_VERSION, .kind = UDP_KIND_PEERS,
                         .total_len = len, .group_id = u->group_id, .src_eid = u->eid };
    vsx_wire_encode(dg, &h);
    for (uint32_t k = 0; k < u->peers.cap; k++) {
      const vsx_peer_t *p = &u->peers.slot[k];
      if (!p->eid || p->eid == u->eid) continue;
      struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = p->port, .sin_addr.s_addr = p->ip };
      if (sendto(u->fd, dg, len, MSG_DONTWAIT, (struct sockaddr *)&to, sizeof to) < 0) u->st.tx_drop++;
    }
  }
}

/* udp_recv_batch: see transport.h.  One recvmmsg into buffers allocated
   ahead; datagrams that are truncated, shorter than the wire header, our
   own, or addressed to another endpoint are dropped and counted, and
   their buffers kept for the next call; PEERS datagrams are taken here.
   Then, in unicast mode, the PEERS exchange if it is due.  VSX_ERR_AGAIN
   when the pool is empty so nothing can be received. */
static int udp_recv_batch(void *state, vsx_datagram_t *dgs, uint32_t max, uint32_t *cnt) {
  udp_xport_t *u = state;
  *cnt = 0;
  if (max > VSX_XPORT_BATCH) max = VSX_XPORT_BATCH;
  if (!max) return VSX_OK;
  while (u->rx_have < max) {
    if (vsx_buf_alloc(u->pool, &u->rx_buf[u->rx_have])) { u->st.rx_nobuf++; break; }
    u->rx_have++;
  }
  if (!u->rx_have) return VSX_ERR_AGAIN;
  uint32_t m = u->rx_have < max ? u->rx_have : max;
  for (uint32_t k = 0; k < m; k++) {
    u->rx_iov[k] = (struct iovec){ .iov_base = vsx_iovec_ptr(&u->rx_buf[k]), .iov_len = u->rx_buf[k].len };
    u->rx_msg[k].msg_hdr = (struct msghdr){ .msg_name = &u->rx_from[k], .msg_namelen = sizeof u->rx_from[k],
                                            .msg_iov = &u->rx_iov[k], .msg_iovlen = 1 };
  }
  int r;
  do r = recvmmsg(u->fd, u->rx_msg, m, MSG_DONTWAIT, NULL);
  while (r < 0 && errno == EINTR);
  if (r < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK) return vsx_fail(VSX_ERR_IO, "udp: recvmmsg: %s", strerror(errno));
    r = 0;
  }

  uint64_t now = vsx_now_ns();
  uint32_t n = 0, keep = 0;
  vsx_iovec_t spare[VSX_XPORT_BATCH];
  for (uint32_t k = 0; k < (uint32_t)r; k++) {
    uint32_t len = u->rx_msg[k].msg_len;
    const uint8_t *d = vsx_iovec_ptr(&u->rx_buf[k]);
    uint64_t src = vsx_wire_peek_eid(d, len, VSX_WIRE_SRC_EID_OFF);
    uint64_t dst = vsx_wire_peek_eid(d, len, VSX_WIRE_DST_EID_OFF);
    if ((u->rx_msg[k].msg_hdr.msg_flags & MSG_TRUNC) || !src) {
      u->st.rx_malformed++;
    } else if (src == u->eid) {
      u->st.rx_self++;
      if (VSX_UNLIKELY(u->seed_cnt)) udp_seed_drop(u, &u->rx_from[k]); /* a seed that is us */
    } else if (dst && dst != u->eid) {
      u->st.rx_misdirected++;
    } else if (VSX_UNLIKELY(d[3] == UDP_KIND_PEERS)) {
      if (!udp_peers_in(u, src, &u->rx_from[k], d, len, now)) u->st.rx_malformed++;
    } else {
      /* Only a datagram of this group teaches an address; the others go
         up all the same, for the bottom layer to count by reason. */
      vsx_wire_hdr_t h;
      vsx_wire_decode(&h, d);
      if (h.magic == VSX_WIRE_MAGIC && h.version == VSX_WIRE_VERSION && h.group_id == u->group_id)
        udp_learn(u, src, &u->rx_from[k], now);
      vsx_iovec_t iov = u->rx_buf[k];
      iov.len = len;
      vsx_iovl_init(&dgs[n].iovl);
      dgs[n].iovl.cnt = 1;
      dgs[n].iovl.inl[0] = iov;
      dgs[n].peer_eid = src;
      u->st.rx_byte += len;
      n++;
      continue;
    }
    spare[keep++] = u->rx_buf[k]; /* dropped: its buffer serves again */
  }
  /* Buffers left: the dropped ones, then those recvmmsg did not fill. */
  uint32_t rest = u->rx_have - (uint32_t)r;
  memmove(&u->rx_buf[keep], &u->rx_buf[r], rest * sizeof u->rx_buf[0]);
  memcpy(u->rx_buf, spare, keep * sizeof spare[0]);
  u->rx_have = keep + rest;
  u->st.rx_dgram += n;
  *cnt = n;
  if (!u->mcast && (u->peers_news || now >= u->exchange_at)) udp_peers_out(u, now);
  return VSX_OK;
}

/* vsx_udp_stats_get: see afxdp_priv.h. */
void vsx_udp_stats_get(void *state, vsx_xport_stats_t *out) {
  udp_xport_t *u = state;
  *out = u->st;
  out->peer_evict = u->peers.evict_cnt;
}

/* vsx_udp_max_dgram: see afxdp_priv.h. */
uint32_t vsx_udp_max_dgram(void *state) { return ((udp_xport_t *)state)->max_dgram; }

const vsx_transport_ops_t vsx_transport_udp = {
  .name = "udp",
  .create = udp_create,
  .destroy = udp_destroy,
  .pool = udp_pool,
  .send_batch = udp_send_batch,
  .recv_batch = udp_recv_batch,
  .poll_fd = udp_poll_fd,
  .add_peer = udp_add_peer,
};
