/* vsx/base.h - error codes, assertions and logging shared by every module.

   Error model (after libev and fd_aio):
   - Operating errors (pool exhausted, bad datagram, missing privilege) are
     expected: functions return VSX_OK (0) or a negative VSX_ERR_* code, and
     setup functions also leave a sentence in vsx_last_error() that says what
     went wrong and what to do about it.
   - Programmer errors (broken invariants, misuse that cannot be reported)
     hit VSX_ASSERT, which is always compiled in and aborts.
   - VSX_DASSERT guards hot paths and is compiled only in debug builds.

   Threading: vsx_last_error() is thread-local; everything else here is
   stateless. */
#ifndef VSX_BASE_H
#define VSX_BASE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
  VSX_OK            =   0,
  VSX_ERR_INVAL     =  -1, /* bad argument: the message names it           */
  VSX_ERR_AGAIN     =  -2, /* back-pressure: a pool or window is full       */
  VSX_ERR_NOMEM     =  -3, /* start-up allocation failed                    */
  VSX_ERR_NOTFOUND  =  -4, /* no such layer, interface, member             */
  VSX_ERR_BLOCKED   =  -5, /* the view is changing: sending is refused     */
  VSX_ERR_PERM      =  -6, /* missing privilege (capability, memlock)      */
  VSX_ERR_NOTSUP    =  -7, /* not supported here (XDP mode, feature)       */
  VSX_ERR_IO        =  -8, /* an OS call failed: errno is in the message   */
  VSX_ERR_BUSY      =  -9, /* resource still in use (port, queue, UMEM)    */
  VSX_ERR_TOOBIG    = -10, /* message larger than the configured maximum   */
  VSX_ERR_STATE     = -11, /* call not valid in the object's current state */
  VSX_ERR_PLACEMENT = -12, /* a layer's requirements are not met in stack  */
  VSX_ERR_MALFORMED = -13, /* a datagram or header failed validation       */
};

/* vsx_strerror returns a short fixed description of err.  Never NULL; the
   string lives forever.  Unknown codes give "unknown error". */
const char *vsx_strerror(int err);

/* vsx_last_error returns the detailed message of the last failing setup
   call on this thread ("" if none).  Valid until the next failing call on
   this thread. */
const char *vsx_last_error(void);

/* vsx_fail records a detailed message (printf format) for vsx_last_error
   and returns err, so setup code can write `return vsx_fail(ERR, ...)`. */
int vsx_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Unrecoverable runtime error handler (libev style).  The default prints
   the message and aborts; a program may install its own. */
typedef void (*vsx_fatal_fn_t)(const char *msg);
void vsx_set_fatal_handler(vsx_fatal_fn_t fn);
void vsx_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

void vsx_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));

#define VSX_ASSERT(c) \
  do { if (__builtin_expect(!(c), 0)) vsx_assert_fail(#c, __FILE__, __LINE__); } while (0)

#ifdef VSX_DEBUG
#define VSX_DASSERT(c) VSX_ASSERT(c)
#else
#define VSX_DASSERT(c) ((void)0)
#endif

#define VSX_LIKELY(c)   __builtin_expect(!!(c), 1)
#define VSX_UNLIKELY(c) __builtin_expect(!!(c), 0)
#define VSX_ARRAY_CNT(a) (sizeof(a) / sizeof((a)[0]))

/* Logging: level 0 = errors only (default), 1 = info, 2 = debug.  Set from
   the VSX_LOG environment variable at first use, or vsx_log_level_set. */
void vsx_log_level_set(int level);
int  vsx_log_level(void);
void vsx_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* vsx_now_ns returns CLOCK_MONOTONIC in nanoseconds (the real clock; the
   simulated network has its own). */
uint64_t vsx_now_ns(void);

/* vsx_rng: a small seeded PRNG (splitmix64 seeding xorshift128+) so every
   random choice in tests and the simulator replays from one seed. */
typedef struct { uint64_t s0, s1; } vsx_rng_t;
void     vsx_rng_seed(vsx_rng_t *rng, uint64_t seed);
uint64_t vsx_rng_next(vsx_rng_t *rng);
/* vsx_rng_uniform returns a double in [0,1). */
double   vsx_rng_uniform(vsx_rng_t *rng);
/* vsx_rng_below returns an integer in [0,n); n > 0. */
uint64_t vsx_rng_below(vsx_rng_t *rng, uint64_t n);

/* vsx_crc32c computes CRC-32C (Castagnoli) of len bytes, continuing from
   crc (pass 0 to start). */
uint32_t vsx_crc32c(uint32_t crc, const void *data, size_t len);

/* vsx_hash64 hashes a string to 64 bits (FNV-1a); used for group ids. */
uint64_t vsx_hash64(const char *s);

#ifdef __cplusplus
}
#endif
#endif
