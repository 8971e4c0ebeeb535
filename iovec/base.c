/* base.c - error strings, assertion and fatal handlers, logging, PRNG,
   CRC-32C and hashing: the small services every module uses. */
#include "vsx/base.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const error_text[] = {
  [0]  = "success",
  [1]  = "invalid argument",
  [2]  = "resource temporarily exhausted (back-pressure), try again",
  [3]  = "out of memory at start-up",
  [4]  = "not found",
  [5]  = "blocked: the view is changing, wait for the next view",
  [6]  = "permission denied",
  [7]  = "not supported",
  [8]  = "I/O error",
  [9]  = "busy",
  [10] = "message too big",
  [11] = "invalid in the current state",
  [12] = "layer requirements not met in the stack",
  [13] = "malformed datagram or header",
};

const char *vsx_strerror(int err) {
  int idx = -err;
  if (idx < 0 || idx >= (int)VSX_ARRAY_CNT(error_text) || !error_text[idx]) return "unknown error";
  return error_text[idx];
}

static _Thread_local char last_error[512];

const char *vsx_last_error(void) { return last_error; }

int vsx_fail(int err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_error, sizeof last_error, fmt, ap);
  va_end(ap);
  vsx_log(1, "error %d (%s): %s", err, vsx_strerror(err), last_error);
  return err;
}

static void default_fatal(const char *msg) {
  fprintf(stderr, "vsx: fatal: %s\n", msg);
  abort();
}

static vsx_fatal_fn_t fatal_fn = default_fatal;

void vsx_set_fatal_handler(vsx_fatal_fn_t fn) { fatal_fn = fn ? fn : default_fatal; }

void vsx_fatal(const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fatal_fn(msg);
  abort(); /* a handler that returns still must not let us continue */
}

void vsx_assert_fail(const char *expr, const char *file, int line) {
  fprintf(stderr, "vsx: assertion failed: %s (%s:%d)\n", expr, file, line);
  abort();
}

static int log_level = -1;

void vsx_log_level_set(int level) { log_level = level; }

int vsx_log_level(void) {
  if (log_level < 0) {
    const char *e = getenv("VSX_LOG");
    log_level = e ? atoi(e) : 0;
  }
  return log_level;
}

void vsx_log(int level, const char *fmt, ...) {
  if (level > vsx_log_level()) return;
  va_list ap;
  va_start(ap, fmt);
  fputs("vsx: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

uint64_t vsx_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void vsx_rng_seed(vsx_rng_t *rng, uint64_t seed) {
  rng->s0 = splitmix64(&seed);
  rng->s1 = splitmix64(&seed);
  if (!rng->s0 && !rng->s1) rng->s1 = 1; /* xorshift must not be all zero */
}

uint64_t vsx_rng_next(vsx_rng_t *rng) {
  uint64_t s1 = rng->s0;
  const uint64_t s0 = rng->s1;
  rng->s0 = s0;
  s1 ^= s1 << 23;
  rng->s1 = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
  return rng->s1 + s0;
}

double vsx_rng_uniform(vsx_rng_t *rng) { return (double)(vsx_rng_next(rng) >> 11) * 0x1.0p-53; }

uint64_t vsx_rng_below(vsx_rng_t *rng, uint64_t n) {
  VSX_ASSERT(n > 0);
  return vsx_rng_next(rng) % n;
}

/* CRC-32C, slicing-by-8 (reflected polynomial 0x82F63B78): eight table
   lookups per 8 bytes, about 1 GB/s without special instructions.  The
   tables are built once and are the same on every run. */
static uint32_t crc_table[8][256];
static int crc_ready;

static void crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    crc_table[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; i++)
    for (int t = 1; t < 8; t++) crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
  crc_ready = 1;
}

uint32_t vsx_crc32c(uint32_t crc, const void *data, size_t len) {
  if (VSX_UNLIKELY(!crc_ready)) crc_init();
  const uint8_t *p = data;
  crc = ~crc;
  while (len >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    w ^= crc; /* little-endian: the CRC folds into the low four bytes */
    crc = crc_table[7][w & 0xff] ^ crc_table[6][(w >> 8) & 0xff] ^ crc_table[5][(w >> 16) & 0xff] ^
          crc_table[4][(w >> 24) & 0xff] ^ crc_table[3][(w >> 32) & 0xff] ^ crc_table[2][(w >> 40) & 0xff] ^
          crc_table[1][(w >> 48) & 0xff] ^ crc_table[0][w >> 56];
    p += 8;
    len -= 8;
  }
  while (len--) crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return ~crc;
}

uint64_t vsx_hash64(const char *s) {
  uint64_t h = 0xcbf29ce484222325ull;
  while (*s) { h ^= (uint8_t)*s++; h *= 0x100000001b3ull; }
  return h ? h : 1;
}
