/* iovec.c - the buffer pool, reference counts, iovec lists and headroom.
   See include/vsx/iovec.h for the contract. */
#include "vsx/iovec.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define DBG_SITES 6 /* call sites remembered per buffer in debug builds */

typedef struct dbg_site { const char *site; int32_t op; } dbg_site_t;

struct vsx_bufpool {
  uint64_t magic;
  uint32_t buf_cnt, buf_sz, headroom, reserve_cnt;
  uint32_t ext_cnt, ext_cap;
  uint8_t *region;
  size_t   region_sz;
  int      region_owned;
  uint32_t free_cnt;
  uint32_t ext_free_cnt;
  uint64_t exhausted_cnt;
  uint32_t *free_stack;   /* buf_cnt indices of free buffers            */
  uint32_t *refcnt;       /* per buffer                                 */
  uint32_t *head;         /* per buffer: lowest claimed byte offset     */
  uint32_t *ext_free;     /* ext_cnt indices of free extension arrays   */
  vsx_iovec_t *ext_arrays;/* ext_cnt * ext_cap                          */
  dbg_site_t *dbg;        /* buf_cnt * DBG_SITES (debug builds)          */
  uint8_t    *dbg_next;   /* per buffer ring position                    */
};

static size_t round_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

size_t vsx_bufpool_align(void) { return 64; }

static int opts_valid(const vsx_bufpool_opts_t *o) {
  if (!o || !o->buf_cnt || o->buf_sz < 256 || o->buf_sz % 64) return 0;
  if (o->headroom >= o->buf_sz / 2) return 0;
  if (o->reserve_cnt >= o->buf_cnt) return 0;
  if (o->ext_cnt && o->ext_cap <= VSX_IOVL_INLINE) return 0;
  return 1;
}

/* Offsets of each array inside the metadata footprint, in order. */
typedef struct layout { size_t free_stack, refcnt, head, ext_free, ext_arrays, dbg, dbg_next, total; } layout_t;

static layout_t layout_of(const vsx_bufpool_opts_t *o) {
  layout_t l;
  size_t at = round_up(sizeof(struct vsx_bufpool), 64);
  l.free_stack = at; at = round_up(at + o->buf_cnt * sizeof(uint32_t), 64);
  l.refcnt = at;     at = round_up(at + o->buf_cnt * sizeof(uint32_t), 64);
  l.head = at;       at = round_up(at + o->buf_cnt * sizeof(uint32_t), 64);
  l.ext_free = at;   at = round_up(at + o->ext_cnt * sizeof(uint32_t), 64);
  l.ext_arrays = at; at = round_up(at + (size_t)o->ext_cnt * o->ext_cap * sizeof(vsx_iovec_t), 64);
#ifdef VSX_DEBUG
  l.dbg = at;        at = round_up(at + (size_t)o->buf_cnt * DBG_SITES * sizeof(dbg_site_t), 64);
  l.dbg_next = at;   at = round_up(at + o->buf_cnt, 64);
#else
  l.dbg = l.dbg_next = 0;
#endif
  l.total = at;
  return l;
}

size_t vsx_bufpool_footprint(const vsx_bufpool_opts_t *opts) {
  if (!opts_valid(opts)) return 0;
  return layout_of(opts).total;
}

vsx_bufpool_t *vsx_bufpool_new(void *mem, const vsx_bufpool_opts_t *o) {
  if (!mem) { vsx_fail(VSX_ERR_INVAL, "bufpool: mem is NULL"); return NULL; }
  if ((uintptr_t)mem % vsx_bufpool_align()) {
    vsx_fail(VSX_ERR_INVAL, "bufpool: mem %p is not aligned to %zu bytes", mem, vsx_bufpool_align());
    return NULL;
  }
  if (!opts_valid(o)) {
    vsx_fail(VSX_ERR_INVAL, "bufpool: invalid options (buf_cnt > 0, buf_sz >= 256 and a multiple of 64, "
             "headroom < buf_sz/2, reserve_cnt < buf_cnt, ext_cap > %d)", VSX_IOVL_INLINE);
    return NULL;
  }
  layout_t l = layout_of(o);
  memset(mem, 0, l.total);
  struct vsx_bufpool *p = mem;
  uint8_t *base = mem;
  p->buf_cnt = o->buf_cnt; p->buf_sz = o->buf_sz; p->headroom = o->headroom;
  p->reserve_cnt = o->reserve_cnt; p->ext_cnt = o->ext_cnt; p->ext_cap = o->ext_cap;
  p->free_stack = (uint32_t *)(base + l.free_stack);
  p->refcnt = (uint32_t *)(base + l.refcnt);
  p->head = (uint32_t *)(base + l.head);
  p->ext_free = (uint32_t *)(base + l.ext_free);
  p->ext_arrays = (vsx_iovec_t *)(base + l.ext_arrays);
#ifdef VSX_DEBUG
  p->dbg = (dbg_site_t *)(base + l.dbg);
  p->dbg_next = base + l.dbg_next;
#endif
  p->region_sz = (size_t)o->buf_cnt * o->buf_sz;
  if (o->opt_region) {
    if ((uintptr_t)o->opt_region % o->buf_sz && (uintptr_t)o->opt_region % 4096) {
      vsx_fail(VSX_ERR_INVAL, "bufpool: lent region %p is not page or buffer aligned", o->opt_region);
      return NULL;
    }
    p->region = o->opt_region;
  } else {
    void *r = mmap(NULL, p->region_sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (r == MAP_FAILED) {
      vsx_fail(VSX_ERR_NOMEM, "bufpool: mmap of %zu bytes failed", p->region_sz);
      return NULL;
    }
    p->region = r;
    p->region_owned = 1;
  }
  /* Free stack holds the lowest indices on top so allocation order is
     deterministic (and a fresh pool hands out buffer 0 first). */
  for (uint32_t i = 0; i < o->buf_cnt; i++) p->free_stack[i] = o->buf_cnt - 1 - i;
  p->free_cnt = o->buf_cnt;
  for (uint32_t i = 0; i < o->ext_cnt; i++) p->ext_free[i] = o->ext_cnt - 1 - i;
  p->ext_free_cnt = o->ext_cnt;
  p->magic = VSX_BUFPOOL_MAGIC; /* written last: the pool is now valid */
  return p;
}

void *vsx_bufpool_delete(vsx_bufpool_t *p) {
  if (!p || p->magic != VSX_BUFPOOL_MAGIC) return NULL;
  uint32_t leaked = vsx_bufpool_check(p, NULL);
  if (leaked) {
    vsx_log(0, "bufpool: deleted with %u buffers still referenced", leaked);
    if (vsx_log_level() > 0) vsx_bufpool_check(p, stderr);
  }
  if (p->region_owned) munmap(p->region, p->region_sz);
  p->magic = 0;
  return p;
}

int vsx_bufpool_create(const vsx_bufpool_opts_t *opts, vsx_bufpool_t **out) {
  size_t fp = vsx_bufpool_footprint(opts);
  if (!out) return vsx_fail(VSX_ERR_INVAL, "bufpool: out is NULL");
  *out = NULL;
  if (!fp) return vsx_fail(VSX_ERR_INVAL, "bufpool: invalid options");
  void *mem = aligned_alloc(vsx_bufpool_align(), round_up(fp, vsx_bufpool_align()));
  if (!mem) return vsx_fail(VSX_ERR_NOMEM, "bufpool: cannot allocate %zu bytes of metadata", fp);
  vsx_bufpool_t *p = vsx_bufpool_new(mem, opts);
  if (!p) { free(mem); return VSX_ERR_INVAL; }
  *out = p;
  return VSX_OK;
}

void vsx_bufpool_destroy(vsx_bufpool_t *pool) { free(vsx_bufpool_delete(pool)); }

uint32_t vsx_bufpool_free_cnt(const vsx_bufpool_t *p) { return p->free_cnt; }
uint32_t vsx_bufpool_buf_cnt(const vsx_bufpool_t *p) { return p->buf_cnt; }
uint32_t vsx_bufpool_buf_sz(const vsx_bufpool_t *p) { return p->buf_sz; }
uint32_t vsx_bufpool_headroom(const vsx_bufpool_t *p) { return p->headroom; }
uint32_t vsx_bufpool_ext_free_cnt(const vsx_bufpool_t *p) { return p->ext_free_cnt; }
uint8_t *vsx_bufpool_region(const vsx_bufpool_t *p) { return p->region; }
uint64_t vsx_bufpool_exhausted_cnt(const vsx_bufpool_t *p) { return p->exhausted_cnt; }

static void dbg_record(vsx_bufpool_t *p, uint32_t buf, const char *site, int32_t op) {
#ifdef VSX_DEBUG
  dbg_site_t *ring = &p->dbg[(size_t)buf * DBG_SITES];
  ring[p->dbg_next[buf] % DBG_SITES] = (dbg_site_t){ site, op };
  p->dbg_next[buf] = (uint8_t)((p->dbg_next[buf] + 1) % DBG_SITES);
#else
  (void)p; (void)buf; (void)site; (void)op;
#endif
}

static void dbg_print(const vsx_bufpool_t *p, uint32_t buf, FILE *out) {
#ifdef VSX_DEBUG
  const dbg_site_t *ring = &p->dbg[(size_t)buf * DBG_SITES];
  for (uint32_t k = 0; k < DBG_SITES; k++) {
    const dbg_site_t *s = &ring[(p->dbg_next[buf] + k) % DBG_SITES];
    if (s->site) fprintf(out, "    %s %s\n", s->op > 0 ? "ref  " : s->op < 0 ? "unref" : "alloc", s->site);
  }
#else
  (void)p; (void)buf; (void)out;
#endif
}

uint32_t vsx_bufpool_check(const vsx_bufpool_t *p, FILE *out) {
  uint32_t used = 0;
  for (uint32_t i = 0; i < p->buf_cnt; i++) {
    if (!p->refcnt[i]) continue;
    used++;
    if (out) {
      fprintf(out, "vsx: buffer %u still has %u reference(s)%s\n", i, p->refcnt[i],
#ifdef VSX_DEBUG
              ", history (oldest first):"
#else
              " (build with VSX_DEBUG for call sites)"
#endif
      );
      dbg_print(p, i, out);
    }
  }
  VSX_ASSERT(used + p->free_cnt == p->buf_cnt);
  return used;
}

int vsx_buf_alloc_at_(vsx_bufpool_t *p, vsx_iovec_t *out, int app, const char *site) {
  VSX_DASSERT(p->magic == VSX_BUFPOOL_MAGIC);
  uint32_t floor = app ? p->reserve_cnt : 0;
  if (VSX_UNLIKELY(p->free_cnt <= floor)) { p->exhausted_cnt++; return VSX_ERR_AGAIN; }
  uint32_t b = p->free_stack[--p->free_cnt];
  VSX_ASSERT(b < p->buf_cnt);
  VSX_ASSERT(p->refcnt[b] == 0);
  p->refcnt[b] = 1;
  p->head[b] = p->headroom;
  dbg_record(p, b, site, 0);
  *out = (vsx_iovec_t){ .pool = p, .buf = b, .off = p->headroom, .len = p->buf_sz - p->headroom };
  return VSX_OK;
}

void vsx_buf_claim(vsx_bufpool_t *p, uint32_t buf, uint32_t off) {
  VSX_ASSERT(buf < p->buf_cnt);
  VSX_ASSERT(p->refcnt[buf] == 1);
  VSX_ASSERT(off <= p->buf_sz);
  p->head[buf] = off;
}

void vsx_iovec_ref_at_(const vsx_iovec_t *iov, const char *site) {
  vsx_bufpool_t *p = iov->pool;
  VSX_DASSERT(iov->buf < p->buf_cnt);
  if (VSX_UNLIKELY(p->refcnt[iov->buf] == 0)) {
#ifdef VSX_DEBUG
    fprintf(stderr, "vsx: reference taken on free buffer %u at %s; history:\n", iov->buf, site);
    dbg_print(p, iov->buf, stderr);
#endif
    vsx_fatal("iovec: reference taken on free buffer %u at %s", iov->buf, site);
  }
  p->refcnt[iov->buf]++;
  dbg_record(p, iov->buf, site, 1);
}

void vsx_iovec_unref_at_(const vsx_iovec_t *iov, const char *site) {
  vsx_bufpool_t *p = iov->pool;
  VSX_DASSERT(iov->buf < p->buf_cnt);
  if (VSX_UNLIKELY(p->refcnt[iov->buf] == 0)) {
#ifdef VSX_DEBUG
    fprintf(stderr, "vsx: double free of buffer %u at %s; history:\n", iov->buf, site);
    dbg_print(p, iov->buf, stderr);
#endif
    vsx_fatal("iovec: double free of buffer %u at %s", iov->buf, site);
  }
  dbg_record(p, iov->buf, site, -1);
  if (--p->refcnt[iov->buf] == 0) {
    VSX_ASSERT(p->free_cnt < p->buf_cnt);
    p->free_stack[p->free_cnt++] = iov->buf;
  }
}

uint32_t vsx_iovec_refcnt(const vsx_iovec_t *iov) { return iov->pool->refcnt[iov->buf]; }

uint8_t *vsx_iovec_ptr(const vsx_iovec_t *iov) {
  VSX_DASSERT(iov->off + iov->len <= iov->pool->buf_sz);
  return iov->pool->region + (size_t)iov->buf * iov->pool->buf_sz + iov->off;
}

/* ---- lists ---------------------------------------------------------------- */

static vsx_iovec_t *slots(vsx_iovl_t *l) {
  if (!l->ext) return l->inl;
  return &l->ext_pool->ext_arrays[(size_t)(l->ext - 1) * l->ext_pool->ext_cap];
}

static uint32_t capacity(const vsx_iovl_t *l) { return l->ext ? l->ext_pool->ext_cap : VSX_IOVL_INLINE; }

vsx_iovec_t *vsx_iovl_at(vsx_iovl_t *l, uint32_t i) {
  VSX_DASSERT(i < l->cnt);
  return &slots(l)[i];
}

const vsx_iovec_t *vsx_iovl_at_c(const vsx_iovl_t *l, uint32_t i) { return vsx_iovl_at((vsx_iovl_t *)l, i); }

size_t vsx_iovl_len(const vsx_iovl_t *l) {
  size_t n = 0;
  for (uint32_t i = 0; i < l->cnt; i++) n += vsx_iovl_at_c(l, i)->len;
  return n;
}

/* ensure_room makes l able to hold need pieces, moving to an extension
   array from pool when the inline array is too small. */
static int ensure_room(vsx_iovl_t *l, uint32_t need, vsx_bufpool_t *pool) {
  if (need <= capacity(l)) return VSX_OK;
  if (l->ext || need > pool->ext_cap || !pool->ext_free_cnt) {
    if (pool) pool->exhausted_cnt++;
    return VSX_ERR_AGAIN;
  }
  uint32_t e = pool->ext_free[--pool->ext_free_cnt];
  vsx_iovec_t *arr = &pool->ext_arrays[(size_t)e * pool->ext_cap];
  memcpy(arr, l->inl, l->cnt * sizeof(vsx_iovec_t));
  l->ext = e + 1;
  l->ext_pool = pool;
  return VSX_OK;
}

static void release_ext(vsx_iovl_t *l) {
  if (!l->ext) return;
  vsx_bufpool_t *p = l->ext_pool;
  VSX_ASSERT(p->ext_free_cnt < p->ext_cnt);
  p->ext_free[p->ext_free_cnt++] = l->ext - 1;
  l->ext = 0;
  l->ext_pool = NULL;
}

int vsx_iovl_append_take(vsx_iovl_t *l, const vsx_iovec_t *iov) {
  if (!iov->len) { vsx_iovec_unref(iov); return VSX_OK; } /* empty pieces are never kept */
  int err = ensure_room(l, l->cnt + 1, iov->pool);
  if (err) return err;
  slots(l)[l->cnt++] = *iov;
  return VSX_OK;
}

int vsx_iovl_append(vsx_iovl_t *l, const vsx_iovec_t *iov) {
  if (!iov->len) return VSX_OK;
  int err = ensure_room(l, l->cnt + 1, iov->pool);
  if (err) return err;
  vsx_iovec_ref(iov);
  slots(l)[l->cnt++] = *iov;
  return VSX_OK;
}

void vsx_iovl_free_at_(vsx_iovl_t *l, const char *site) {
  vsx_iovec_t *s = slots(l);
  for (uint32_t i = 0; i < l->cnt; i++) vsx_iovec_unref_at_(&s[i], site);
  release_ext(l);
  l->cnt = 0;
}

int vsx_iovl_copy(vsx_iovl_t *dst, const vsx_iovl_t *src) {
  vsx_iovl_init(dst);
  if (!src->cnt) return VSX_OK;
  int err = ensure_room(dst, src->cnt, vsx_iovl_at_c(src, 0)->pool);
  if (err) return err;
  vsx_iovec_t *d = slots(dst);
  for (uint32_t i = 0; i < src->cnt; i++) {
    d[i] = *vsx_iovl_at_c(src, i);
    vsx_iovec_ref(&d[i]);
  }
  dst->cnt = src->cnt;
  return VSX_OK;
}

int vsx_iovl_concat_take(vsx_iovl_t *dst, vsx_iovl_t *src) {
  if (!src->cnt) return VSX_OK;
  int err = ensure_room(dst, dst->cnt + src->cnt, vsx_iovl_at(src, 0)->pool);
  if (err) return err;
  memcpy(&slots(dst)[dst->cnt], slots(src), src->cnt * sizeof(vsx_iovec_t));
  dst->cnt += src->cnt;
  src->cnt = 0;
  release_ext(src);
  return VSX_OK;
}

int vsx_iovl_sub(vsx_iovl_t *dst, const vsx_iovl_t *src, size_t off, size_t len) {
  vsx_iovl_init(dst);
  if (off + len > vsx_iovl_len(src)) return VSX_ERR_INVAL;
  for (uint32_t i = 0; i < src->cnt && len; i++) {
    const vsx_iovec_t *s = vsx_iovl_at_c(src, i);
    if (off >= s->len) { off -= s->len; continue; }
    vsx_iovec_t piece = *s;
    piece.off += (uint32_t)off;
    piece.len -= (uint32_t)off;
    if (piece.len > len) piece.len = (uint32_t)len;
    off = 0;
    len -= piece.len;
    int err = vsx_iovl_append(dst, &piece);
    if (err) { vsx_iovl_free(dst); return err; }
  }
  return VSX_OK;
}

void *vsx_iovl_push(vsx_bufpool_t *pool, vsx_iovl_t *l, uint32_t sz) {
  if (l->cnt) {
    vsx_iovec_t *f = &slots(l)[0];
    vsx_bufpool_t *p = f->pool;
    /* In place only when our first byte is the buffer's lowest claimed
       byte: then nobody else can be looking at the headroom we take. */
    if (f->off >= sz && p->head[f->buf] == f->off) {
      f->off -= sz;
      f->len += sz;
      p->head[f->buf] = f->off;
      return vsx_iovec_ptr(f);
    }
  }
  VSX_ASSERT(sz <= pool->buf_sz);
  int err = ensure_room(l, l->cnt + 1, pool);
  if (err) return NULL;
  vsx_iovec_t nb;
  if (vsx_buf_alloc(pool, &nb)) return NULL;
  /* Put the header at the end of the new buffer so that later pushes by
     the layers below also land in place. */
  nb.off = pool->buf_sz - sz;
  nb.len = sz;
  pool->head[nb.buf] = nb.off;
  vsx_iovec_t *s = slots(l);
  memmove(&s[1], &s[0], l->cnt * sizeof(vsx_iovec_t));
  s[0] = nb;
  l->cnt++;
  return vsx_iovec_ptr(&s[0]);
}

int vsx_iovl_peek(const vsx_iovl_t *l, void *out, uint32_t sz) {
  return vsx_iovl_gather(l, 0, out, sz) == sz ? VSX_OK : VSX_ERR_MALFORMED;
}

int vsx_iovl_pop(vsx_iovl_t *l, void *opt_out, uint32_t sz) {
  if (vsx_iovl_len(l) < sz) return VSX_ERR_MALFORMED;
  if (opt_out) vsx_iovl_gather(l, 0, opt_out, sz);
  vsx_iovec_t *s = slots(l);
  uint32_t drop = 0;
  while (sz) {
    vsx_iovec_t *f = &s[drop];
    uint32_t take = f->len < sz ? f->len : sz;
    f->off += take;
    f->len -= take;
    sz -= take;
    if (!f->len) { vsx_iovec_unref(f); drop++; }
  }
  if (drop) {
    memmove(&s[0], &s[drop], (l->cnt - drop) * sizeof(vsx_iovec_t));
    l->cnt -= drop;
  }
  return VSX_OK;
}

int vsx_iovl_trim_tail(vsx_iovl_t *l, size_t sz) {
  if (vsx_iovl_len(l) < sz) return VSX_ERR_MALFORMED;
  vsx_iovec_t *s = slots(l);
  while (sz) {
    vsx_iovec_t *t = &s[l->cnt - 1];
    uint32_t take = t->len < sz ? t->len : (uint32_t)sz;
    t->len -= take;
    sz -= take;
    if (!t->len) { vsx_iovec_unref(t); l->cnt--; }
  }
  return VSX_OK;
}

size_t vsx_iovl_gather(const vsx_iovl_t *l, size_t off, void *dst, size_t cap) {
  uint8_t *d = dst;
  size_t done = 0;
  for (uint32_t i = 0; i < l->cnt && done < cap; i++) {
    const vsx_iovec_t *s = vsx_iovl_at_c(l, i);
    if (off >= s->len) { off -= s->len; continue; }
    size_t n = s->len - off;
    if (n > cap - done) n = cap - done;
    memcpy(d + done, vsx_iovec_ptr(s) + off, n);
    done += n;
    off = 0;
  }
  return done;
}

int vsx_iovl_from_bytes(vsx_bufpool_t *pool, vsx_iovl_t *dst, const void *data, size_t len,
                        uint32_t chunk_sz, int app) {
  vsx_iovl_init(dst);
  uint32_t room = pool->buf_sz - pool->headroom;
  if (!chunk_sz || chunk_sz > room) chunk_sz = room;
  const uint8_t *src = data;
  while (len) {
    vsx_iovec_t iov;
    int err = vsx_buf_alloc_at_(pool, &iov, app, VSX_SITE);
    if (err) { vsx_iovl_free(dst); return err; }
    iov.len = len < chunk_sz ? (uint32_t)len : chunk_sz;
    memcpy(vsx_iovec_ptr(&iov), src, iov.len);
    src += iov.len;
    len -= iov.len;
    err = vsx_iovl_append_take(dst, &iov);
    if (err) { vsx_iovec_unref(&iov); vsx_iovl_free(dst); return err; }
  }
  return VSX_OK;
}

uint32_t vsx_iovl_crc32c(const vsx_iovl_t *l) {
  uint32_t crc = 0;
  for (uint32_t i = 0; i < l->cnt; i++) {
    const vsx_iovec_t *s = vsx_iovl_at_c(l, i);
    crc = vsx_crc32c(crc, vsx_iovec_ptr(s), s->len);
  }
  return crc;
}
