/* vsx/iovec.h - reference-counted buffers, iovecs and iovec lists.

   One region reserved at start-up is cut into buf_cnt equal buffers of
   buf_sz bytes.  The region is either mapped by the pool itself or lent by
   a transport (the AF_XDP UMEM), so a received frame travels up the stack
   as an iovec into the very frame the NIC wrote, without a copy.

       region: | buf 0 | buf 1 | buf 2 | ... | buf N-1 |
       buffer: |headroom|  payload ...                  |
                        ^ off (alloc)  push moves off down into headroom

   OWNERSHIP (the one default rule, after Ensemble's iovec.mli): a function
   borrows the iovecs and lists it is given; every iovec or list it returns
   carries its own reference, owned by the caller.  Functions that consume
   a reference of an argument end in _take.

   HEADROOM.  vsx_iovl_push writes a header in place in front of the data
   when it may: the first buffer's lowest claimed byte ("head") must be the
   list's first byte, so no other holder of the buffer can see the bytes
   being written.  Otherwise it prepends a fresh buffer.  So pushes never
   corrupt a buffer that is shared (retransmission copies, fragments).

   MEMORY.  Nothing here allocates after vsx_bufpool_new.  When the pool is
   empty, allocation returns VSX_ERR_AGAIN (back-pressure): never malloc,
   never abort.  Lists of more than VSX_IOVL_INLINE pieces (reassembled
   large messages) draw one extension array from the pool's fixed set.

   DEBUG.  Built with VSX_DEBUG, every reference operation records its call
   site; a double free aborts with the buffer's history, and
   vsx_bufpool_check lists each buffer still referenced with the sites that
   took it, so a leak can be traced to where it started.

   THREADS.  A pool and its buffers belong to one thread (the endpoint's
   loop).  No locking. */
#ifndef VSX_IOVEC_H
#define VSX_IOVEC_H

#include <stdio.h>
#include "vsx/base.h"

#ifdef __cplusplus
extern "C" {
#endif

#define VSX_IOVL_INLINE 4
#define VSX_BUFPOOL_MAGIC 0x7673782d706f6f6cULL /* "vsx-pool" */

typedef struct vsx_bufpool vsx_bufpool_t;

/* vsx_iovec_t: a window [off, off+len) into one buffer of one pool.  A
   value type: copying the struct does not take a reference. */
typedef struct vsx_iovec {
  vsx_bufpool_t *pool;
  uint32_t buf;  /* buffer index in the pool */
  uint32_t off;  /* byte offset inside the buffer */
  uint32_t len;  /* bytes */
  uint32_t rsvd;
} vsx_iovec_t;

/* vsx_iovl_t: a list of iovecs, inline up to VSX_IOVL_INLINE, beyond that
   in an extension array from the pool.  Movable by struct copy (it holds
   no pointer into itself); a moved-from list must not be freed twice. */
typedef struct vsx_iovl {
  uint32_t cnt;
  uint32_t ext;            /* extension array index + 1, or 0 (inline) */
  vsx_bufpool_t *ext_pool; /* pool of the extension array */
  vsx_iovec_t inl[VSX_IOVL_INLINE];
} vsx_iovl_t;

typedef struct vsx_bufpool_opts {
  uint32_t buf_cnt;     /* buffers; > 0 */
  uint32_t buf_sz;      /* bytes per buffer; multiple of 64, >= 256 */
  uint32_t headroom;    /* bytes kept free in front of allocated data */
  uint32_t reserve_cnt; /* buffers that vsx_buf_alloc_app may not take,
                           kept for protocol traffic; < buf_cnt */
  uint32_t ext_cnt;     /* extension arrays for long lists */
  uint32_t ext_cap;     /* iovecs per extension array (> VSX_IOVL_INLINE) */
  void    *opt_region;  /* lent region of buf_cnt*buf_sz bytes, aligned to
                           buf_sz; NULL: the pool maps its own */
} vsx_bufpool_opts_t;

/* vsx_bufpool_footprint returns the bytes of metadata memory a pool with
   these options needs (not counting a lent region), or 0 if the options
   are invalid (so it doubles as a validator). */
size_t vsx_bufpool_footprint(const vsx_bufpool_opts_t *opts);
size_t vsx_bufpool_align(void);

/* vsx_bufpool_new formats mem (footprint bytes, aligned to
   vsx_bufpool_align) as a pool.  Maps the region when opts->opt_region is
   NULL (mmap; the only syscall).  Returns the pool, or NULL with
   vsx_last_error set (bad options, misaligned mem, mmap failure). */
vsx_bufpool_t *vsx_bufpool_new(void *mem, const vsx_bufpool_opts_t *opts);

/* vsx_bufpool_delete unmaps an owned region and clears the magic; returns
   mem.  Buffers still referenced are reported (see vsx_bufpool_check) and
   then abandoned.  NULL if pool is NULL or not a pool. */
void *vsx_bufpool_delete(vsx_bufpool_t *pool);

/* Convenience: footprint + aligned allocation + new, and the reverse.
   Start-up only. */
int  vsx_bufpool_create(const vsx_bufpool_opts_t *opts, vsx_bufpool_t **out);
void vsx_bufpool_destroy(vsx_bufpool_t *pool);

/* Read-only queries. */
uint32_t vsx_bufpool_free_cnt(const vsx_bufpool_t *pool);
uint32_t vsx_bufpool_buf_cnt(const vsx_bufpool_t *pool);
uint32_t vsx_bufpool_buf_sz(const vsx_bufpool_t *pool);
uint32_t vsx_bufpool_headroom(const vsx_bufpool_t *pool);
uint32_t vsx_bufpool_ext_free_cnt(const vsx_bufpool_t *pool);
uint8_t *vsx_bufpool_region(const vsx_bufpool_t *pool);
/* Allocation failures since creation (back-pressure events). */
uint64_t vsx_bufpool_exhausted_cnt(const vsx_bufpool_t *pool);

/* vsx_bufpool_check writes one line per buffer still referenced (with the
   call sites of its references in debug builds) to opt_out and returns
   how many there are.  0 means no leak. */
uint32_t vsx_bufpool_check(const vsx_bufpool_t *pool, FILE *opt_out);

/* ---- buffers and iovecs ------------------------------------------------- */

#define VSX_SITE __FILE__ ":" VSX_STR2_(__LINE__)
#define VSX_STR2_(x) VSX_STR1_(x)
#define VSX_STR1_(x) #x

/* vsx_buf_alloc takes a free buffer: *out covers [headroom, buf_sz) with
   one reference.  VSX_ERR_AGAIN when the pool is empty.  _app variant
   leaves the reserve to protocol traffic. */
int vsx_buf_alloc_at_(vsx_bufpool_t *pool, vsx_iovec_t *out, int app, const char *site);
#define vsx_buf_alloc(pool, out)     vsx_buf_alloc_at_((pool), (out), 0, VSX_SITE)
#define vsx_buf_alloc_app(pool, out) vsx_buf_alloc_at_((pool), (out), 1, VSX_SITE)

/* vsx_buf_claim marks bytes from off on as claimed (head := off) for a
   buffer whose data a transport wrote at off (a received frame).  Assumes
   the caller holds the only reference. */
void vsx_buf_claim(vsx_bufpool_t *pool, uint32_t buf, uint32_t off);

void vsx_iovec_ref_at_(const vsx_iovec_t *iov, const char *site);
void vsx_iovec_unref_at_(const vsx_iovec_t *iov, const char *site);
#define vsx_iovec_ref(iov)   vsx_iovec_ref_at_((iov), VSX_SITE)
#define vsx_iovec_unref(iov) vsx_iovec_unref_at_((iov), VSX_SITE)
uint32_t vsx_iovec_refcnt(const vsx_iovec_t *iov);

/* vsx_iovec_ptr returns the first byte of iov.  Valid while a reference
   is held. */
uint8_t *vsx_iovec_ptr(const vsx_iovec_t *iov);

/* ---- lists -------------------------------------------------------------- */

static inline void vsx_iovl_init(vsx_iovl_t *l) { l->cnt = 0; l->ext = 0; l->ext_pool = NULL; }

/* vsx_iovl_at returns piece i (i < cnt). */
vsx_iovec_t *vsx_iovl_at(vsx_iovl_t *l, uint32_t i);
const vsx_iovec_t *vsx_iovl_at_c(const vsx_iovl_t *l, uint32_t i);

/* vsx_iovl_len returns the total bytes in the list. */
size_t vsx_iovl_len(const vsx_iovl_t *l);

/* vsx_iovl_append_take appends iov, taking over its reference.
   VSX_ERR_AGAIN if no extension array is free (iov is then untouched and
   still the caller's). vsx_iovl_append takes a new reference instead. */
int vsx_iovl_append_take(vsx_iovl_t *l, const vsx_iovec_t *iov);
int vsx_iovl_append(vsx_iovl_t *l, const vsx_iovec_t *iov);

/* vsx_iovl_free drops every reference and leaves l empty.  Cannot fail. */
void vsx_iovl_free_at_(vsx_iovl_t *l, const char *site);
#define vsx_iovl_free(l) vsx_iovl_free_at_((l), VSX_SITE)

/* vsx_iovl_copy makes dst (assumed empty) a second holder of src's bytes:
   references only, no byte copy.  VSX_ERR_AGAIN if an extension array is
   needed and none is free (dst left empty). */
int vsx_iovl_copy(vsx_iovl_t *dst, const vsx_iovl_t *src);

/* vsx_iovl_concat_take moves every piece of src to the end of dst; src is
   left empty.  VSX_ERR_AGAIN leaves both unchanged. */
int vsx_iovl_concat_take(vsx_iovl_t *dst, vsx_iovl_t *src);

/* vsx_iovl_sub makes dst (assumed empty) reference bytes [off, off+len)
   of src without copying.  VSX_ERR_INVAL if the range is outside src. */
int vsx_iovl_sub(vsx_iovl_t *dst, const vsx_iovl_t *src, size_t off, size_t len);

/* vsx_iovl_push makes sz bytes writable at the front of l and returns
   them (in place in the headroom when safe, see the top of this file;
   else in a new buffer).  NULL when a buffer or extension was needed and
   none was free.  sz <= headroom of the pool. */
void *vsx_iovl_push(vsx_bufpool_t *pool, vsx_iovl_t *l, uint32_t sz);

/* vsx_iovl_pop copies the first sz bytes into opt_out (if not NULL) and
   removes them from l.  VSX_ERR_MALFORMED if l holds fewer than sz bytes
   (l unchanged). */
int vsx_iovl_pop(vsx_iovl_t *l, void *opt_out, uint32_t sz);

/* vsx_iovl_peek copies the first sz bytes without removing them. */
int vsx_iovl_peek(const vsx_iovl_t *l, void *out, uint32_t sz);

/* vsx_iovl_trim_tail removes the last sz bytes.  VSX_ERR_MALFORMED if the
   list is shorter. */
int vsx_iovl_trim_tail(vsx_iovl_t *l, size_t sz);

/* vsx_iovl_gather copies up to cap bytes from off into dst; returns bytes
   copied. */
size_t vsx_iovl_gather(const vsx_iovl_t *l, size_t off, void *dst, size_t cap);

/* vsx_iovl_from_bytes copies len bytes into fresh buffers of pool, at most
   chunk_sz bytes per buffer (so each chunk can later be sent as its own
   datagram with headers pushed in place).  dst assumed empty.  app != 0
   leaves the pool's reserve alone.  VSX_ERR_AGAIN on exhaustion (nothing
   is kept). */
int vsx_iovl_from_bytes(vsx_bufpool_t *pool, vsx_iovl_t *dst, const void *data,
                        size_t len, uint32_t chunk_sz, int app);

/* vsx_iovl_crc32c returns CRC-32C of the bytes of l. */
uint32_t vsx_iovl_crc32c(const vsx_iovl_t *l);

#ifdef __cplusplus
}
#endif
#endif
