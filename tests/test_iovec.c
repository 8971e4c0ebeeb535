/* test_iovec.c - the buffer pool, references, lists and headroom.

   Goal: every promise of include/vsx/iovec.h: constructors reject bad
   arguments, exhaustion is back-pressure, references count exactly,
   pushes never write into bytes another holder can see, split and
   concatenate copy nothing, and a long random workload leaves the pool
   full and every byte intact.  Method: direct calls, SIGABRT tests for
   programmer errors, and a seeded random run (VSX_SEED replays it). */
#include <check.h>
#include "check_main.h"
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include "vsx/iovec.h"

static vsx_bufpool_opts_t std_opts(void) {
  return (vsx_bufpool_opts_t){ .buf_cnt = 64, .buf_sz = 512, .headroom = 64, .reserve_cnt = 8, .ext_cnt = 4, .ext_cap = 32 };
}

static vsx_bufpool_t *std_pool(void) {
  vsx_bufpool_opts_t o = std_opts();
  vsx_bufpool_t *p;
  ck_assert_int_eq(vsx_bufpool_create(&o, &p), VSX_OK);
  return p;
}

START_TEST(test_iovec_footprint_rejects_bad_options) {
  vsx_bufpool_opts_t o = std_opts();
  ck_assert_uint_gt(vsx_bufpool_footprint(&o), 0);
  ck_assert_uint_eq(vsx_bufpool_footprint(NULL), 0);
  o = std_opts(); o.buf_cnt = 0;   ck_assert_uint_eq(vsx_bufpool_footprint(&o), 0);
  o = std_opts(); o.buf_sz = 500;  ck_assert_uint_eq(vsx_bufpool_footprint(&o), 0); /* not a multiple of 64 */
  o = std_opts(); o.buf_sz = 128;  ck_assert_uint_eq(vsx_bufpool_footprint(&o), 0); /* too small */
  o = std_opts(); o.headroom = 256; ck_assert_uint_eq(vsx_bufpool_footprint(&o), 0);
  o = std_opts(); o.reserve_cnt = 64; ck_assert_uint_eq(vsx_bufpool_footprint(&o), 0);
  o = std_opts(); o.ext_cap = VSX_IOVL_INLINE; ck_assert_uint_eq(vsx_bufpool_footprint(&o), 0);
}
END_TEST

START_TEST(test_iovec_new_rejects_null_misaligned_and_bad_magic) {
  vsx_bufpool_opts_t o = std_opts();
  size_t fp = vsx_bufpool_footprint(&o);
  uint8_t *mem = aligned_alloc(64, fp + 64);
  ck_assert_ptr_null(vsx_bufpool_new(NULL, &o));
  ck_assert_str_eq(vsx_last_error(), "bufpool: mem is NULL");
  ck_assert_ptr_null(vsx_bufpool_new(mem + 8, &o));
  ck_assert_ptr_nonnull(strstr(vsx_last_error(), "not aligned"));
  vsx_bufpool_t *p = vsx_bufpool_new(mem, &o);
  ck_assert_ptr_nonnull(p);
  ck_assert_uint_eq(vsx_bufpool_free_cnt(p), 64);
  ck_assert_ptr_eq(vsx_bufpool_delete(p), mem);
  ck_assert_ptr_null(vsx_bufpool_delete(p)); /* magic cleared: no longer a pool */
  memset(mem, 0xab, 8);                      /* a corrupted magic is not a pool either */
  ck_assert_ptr_null(vsx_bufpool_delete((vsx_bufpool_t *)mem));
  free(mem);
}
END_TEST

START_TEST(test_iovec_exhaustion_is_backpressure) {
  vsx_bufpool_t *p = std_pool();
  vsx_iovec_t iov[64];
  for (int i = 0; i < 56; i++) ck_assert_int_eq(vsx_buf_alloc_app(p, &iov[i]), VSX_OK);
  vsx_iovec_t extra;
  ck_assert_int_eq(vsx_buf_alloc_app(p, &extra), VSX_ERR_AGAIN); /* the reserve stays for protocol traffic */
  for (int i = 56; i < 64; i++) ck_assert_int_eq(vsx_buf_alloc(p, &iov[i]), VSX_OK);
  ck_assert_int_eq(vsx_buf_alloc(p, &extra), VSX_ERR_AGAIN);
  ck_assert_uint_eq(vsx_bufpool_exhausted_cnt(p), 2);
  ck_assert_uint_eq(vsx_bufpool_check(p, NULL), 64);
  for (int i = 0; i < 64; i++) vsx_iovec_unref(&iov[i]);
  ck_assert_uint_eq(vsx_bufpool_free_cnt(p), 64);
  ck_assert_uint_eq(vsx_bufpool_check(p, NULL), 0);
  vsx_bufpool_destroy(p);
}
END_TEST

START_TEST(test_iovec_references_count_exactly) {
  vsx_bufpool_t *p = std_pool();
  vsx_iovec_t a;
  ck_assert_int_eq(vsx_buf_alloc(p, &a), VSX_OK);
  ck_assert_uint_eq(a.off, 64);
  ck_assert_uint_eq(a.len, 512 - 64);
  vsx_iovec_ref(&a);
  vsx_iovec_ref(&a);
  ck_assert_uint_eq(vsx_iovec_refcnt(&a), 3);
  vsx_iovec_unref(&a);
  vsx_iovec_unref(&a);
  ck_assert_uint_eq(vsx_bufpool_free_cnt(p), 63);
  vsx_iovec_unref(&a);
  ck_assert_uint_eq(vsx_bufpool_free_cnt(p), 64);
  vsx_bufpool_destroy(p);
}
END_TEST

START_TEST(test_iovec_double_free_aborts) {
  vsx_bufpool_t *p = std_pool();
  vsx_iovec_t a;
  ck_assert_int_eq(vsx_buf_alloc(p, &a), VSX_OK);
  vsx_iovec_unref(&a);
  vsx_iovec_unref(&a); /* must abort */
}
END_TEST

START_TEST(test_iovec_push_in_place_only_when_unshared) {
  vsx_bufpool_t *p = std_pool();
  vsx_iovl_t l, copy;
  ck_assert_int_eq(vsx_iovl_from_bytes(p, &l, "payload", 7, 0, 0), VSX_OK);
  ck_assert_uint_eq(vsx_bufpool_free_cnt(p), 63);
  uint8_t *h1 = vsx_iovl_push(p, &l, 4);
  memcpy(h1, "HDR1", 4);
  ck_assert_uint_eq(l.cnt, 1); /* in place */
  ck_assert_uint_eq(vsx_bufpool_free_cnt(p), 63);
  /* A second holder at the same offset: a push by the first holder in
     place would change bytes the second could see only if it claims
     below the head.  The copy starts at the same byte, so the first push
     that claims headroom wins; the other must get a new buffer. */
  ck_assert_int_eq(vsx_iovl_copy(&copy, &l), VSX_OK);
  uint8_t *h2 = vsx_iovl_push(p, &l, 2);
  memcpy(h2, "L2", 2);
  ck_assert_uint_eq(l.cnt, 1); /* l's first byte is the head: still in place */
  uint8_t *h3 = vsx_iovl_push(p, &copy, 2);
  memcpy(h3, "C2", 2);
  ck_assert_uint_eq(copy.cnt, 2); /* copy's first byte is no longer the head: new buffer */
  char out[16] = { 0 };
  ck_assert_uint_eq(vsx_iovl_gather(&l, 0, out, sizeof out), 13);
  ck_assert_mem_eq(out, "L2HDR1payload", 13);
  ck_assert_uint_eq(vsx_iovl_gather(&copy, 0, out, sizeof out), 13);
  ck_assert_mem_eq(out, "C2HDR1payload", 13);
  vsx_iovl_free(&l);
  vsx_iovl_free(&copy);
  ck_assert_uint_eq(vsx_bufpool_free_cnt(p), 64);
  vsx_bufpool_destroy(p);
}
END_TEST

START_TEST(test_iovec_pop_and_trim) {
  vsx_bufpool_t *p = std_pool();
  vsx_iovl_t l;
  ck_assert_int_eq(vsx_iovl_from_bytes(p, &l, "abcdefghij", 10, 3, 0), VSX_OK);
  ck_assert_uint_eq(l.cnt, 4); /* chunks of 3: abc def ghi j */
  char h[5] = { 0 };
  ck_assert_int_eq(vsx_iovl_pop(&l, h, 4), VSX_OK);
  ck_assert_str_eq(h, "abcd");
  ck_assert_uint_eq(l.cnt, 3);
  ck_assert_uint_eq(vsx_bufpool_free_cnt(p), 61); /* the emptied piece went back */
  ck_assert_int_eq(vsx_iovl_pop(&l, h, 7), VSX_ERR_MALFORMED);
  ck_assert_uint_eq(vsx_iovl_len(&l), 6); /* unchanged on error */
  ck_assert_int_eq(vsx_iovl_trim_tail(&l, 2), VSX_OK);
  char out[8] = { 0 };
  vsx_iovl_gather(&l, 0, out, sizeof out);
  ck_assert_str_eq(out, "efgh");
  ck_assert_int_eq(vsx_iovl_trim_tail(&l, 9), VSX_ERR_MALFORMED);
  vsx_iovl_free(&l);
  ck_assert_uint_eq(vsx_bufpool_free_cnt(p), 64);
  vsx_bufpool_destroy(p);
}
END_TEST

START_TEST(test_iovec_sub_and_concat_copy_nothing) {
  vsx_bufpool_t *p = std_pool();
  vsx_iovl_t l, a, b, c;
  const char *text = "0123456789abcdefghijklmnopqrstuvwxyz";
  ck_assert_int_eq(vsx_iovl_from_bytes(p, &l, text, 36, 10, 0), VSX_OK);
  uint32_t used = 64 - vsx_bufpool_free_cnt(p);
  ck_assert_int_eq(vsx_iovl_sub(&a, &l, 5, 12), VSX_OK);
  ck_assert_int_eq(vsx_iovl_sub(&b, &l, 17, 19), VSX_OK);
  ck_assert_uint_eq(64 - vsx_bufpool_free_cnt(p), used); /* no new buffer */
  ck_assert_int_eq(vsx_iovl_sub(&c, &l, 30, 7), VSX_ERR_INVAL); /* past the end */
  ck_assert_uint_eq(c.cnt, 0);
  vsx_iovl_free(&l);
  ck_assert_int_eq(vsx_iovl_concat_take(&a, &b), VSX_OK);
  ck_assert_uint_eq(b.cnt, 0);
  char out[40] = { 0 };
  ck_assert_uint_eq(vsx_iovl_gather(&a, 0, out, sizeof out), 31);
  ck_assert_str_eq(out, text + 5);
  ck_assert_uint_eq(vsx_iovl_crc32c(&a), vsx_crc32c(0, text + 5, 31));
  vsx_iovl_free(&a);
  ck_assert_uint_eq(vsx_bufpool_free_cnt(p), 64);
  vsx_bufpool_destroy(p);
}
END_TEST

START_TEST(test_iovec_long_lists_use_and_release_extensions) {
  vsx_bufpool_t *p = std_pool();
  vsx_iovl_t l[5];
  static char data[40 * 10];
  for (size_t i = 0; i < sizeof data; i++) data[i] = (char)i;
  for (int k = 0; k < 4; k++) ck_assert_int_eq(vsx_iovl_from_bytes(p, &l[k], data, 10 * 10, 10, 0), VSX_OK);
  ck_assert_uint_eq(vsx_bufpool_ext_free_cnt(p), 0);
  ck_assert_int_eq(vsx_iovl_from_bytes(p, &l[4], data, 10 * 10, 10, 0), VSX_ERR_AGAIN); /* no extension left */
  ck_assert_uint_eq(vsx_bufpool_free_cnt(p), 64 - 40); /* the failed copy kept nothing */
  vsx_iovl_free(&l[0]);
  ck_assert_uint_eq(vsx_bufpool_ext_free_cnt(p), 1);
  ck_assert_int_eq(vsx_iovl_from_bytes(p, &l[4], data, 33 * 10, 10, 0), VSX_ERR_AGAIN); /* longer than ext_cap */
  for (int k = 1; k < 4; k++) vsx_iovl_free(&l[k]);
  ck_assert_uint_eq(vsx_bufpool_ext_free_cnt(p), 4);
  ck_assert_uint_eq(vsx_bufpool_free_cnt(p), 64);
  vsx_bufpool_destroy(p);
}
END_TEST

START_TEST(test_iovec_crc32c_known_answer) {
  ck_assert_uint_eq(vsx_crc32c(0, "123456789", 9), 0xE3069283u);
  ck_assert_uint_eq(vsx_crc32c(vsx_crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
  ck_assert_uint_eq(vsx_crc32c(0, "", 0), 0);
}
END_TEST

/* A seeded random workload: lists are built, copied, cut, joined, pushed
   and popped; each list's expected bytes are tracked on the side.  At the
   end every byte must match and the pool must be full. */
START_TEST(test_iovec_random_workload_keeps_bytes_and_pool) {
  enum { SLOTS = 16, ROUNDS = 200000 };
  vsx_bufpool_opts_t o = { .buf_cnt = 256, .buf_sz = 256, .headroom = 32, .ext_cnt = 16, .ext_cap = 64 };
  vsx_bufpool_t *p;
  ck_assert_int_eq(vsx_bufpool_create(&o, &p), VSX_OK);
  static uint8_t shadow[SLOTS][4096];
  size_t slen[SLOTS] = { 0 };
  vsx_iovl_t l[SLOTS];
  for (int i = 0; i < SLOTS; i++) vsx_iovl_init(&l[i]);
  vsx_rng_t rng;
  uint64_t seed = getenv("VSX_SEED") ? strtoull(getenv("VSX_SEED"), NULL, 0) : 12345;
  vsx_rng_seed(&rng, seed);
  uint8_t tmp[4096];
  for (int round = 0; round < ROUNDS; round++) {
    int i = (int)vsx_rng_below(&rng, SLOTS), j = (int)vsx_rng_below(&rng, SLOTS);
    switch (vsx_rng_below(&rng, 6)) {
    case 0: /* fill */
      if (!l[i].cnt) {
        size_t n = 1 + vsx_rng_below(&rng, 1000);
        for (size_t k = 0; k < n; k++) tmp[k] = (uint8_t)vsx_rng_next(&rng);
        if (!vsx_iovl_from_bytes(p, &l[i], tmp, n, (uint32_t)(1 + vsx_rng_below(&rng, 200)), 0)) {
          memcpy(shadow[i], tmp, n);
          slen[i] = n;
        }
      }
      break;
    case 1: /* copy */
      if (i != j && !l[j].cnt && !vsx_iovl_copy(&l[j], &l[i])) { memcpy(shadow[j], shadow[i], slen[i]); slen[j] = slen[i]; }
      break;
    case 2: /* sub */
      if (i != j && !l[j].cnt && slen[i]) {
        size_t off = vsx_rng_below(&rng, slen[i]), n = vsx_rng_below(&rng, slen[i] - off + 1);
        if (!vsx_iovl_sub(&l[j], &l[i], off, n)) { memcpy(shadow[j], shadow[i] + off, n); slen[j] = n; }
      }
      break;
    case 3: /* concat */
      if (i != j && slen[i] + slen[j] <= sizeof shadow[0] && !vsx_iovl_concat_take(&l[i], &l[j])) {
        memcpy(shadow[i] + slen[i], shadow[j], slen[j]);
        slen[i] += slen[j];
        slen[j] = 0;
      }
      break;
    case 4: { /* push */
      uint32_t n = (uint32_t)(1 + vsx_rng_below(&rng, 24));
      if (slen[i] + n <= sizeof shadow[0] && l[i].cnt) {
        uint8_t *at = vsx_iovl_push(p, &l[i], n);
        if (at) {
          for (uint32_t k = 0; k < n; k++) at[k] = (uint8_t)(round + k);
          memmove(shadow[i] + n, shadow[i], slen[i]);
          for (uint32_t k = 0; k < n; k++) shadow[i][k] = (uint8_t)(round + k);
          slen[i] += n;
        }
      }
      break;
    }
    case 5: /* pop or free */
      if (vsx_rng_below(&rng, 3) == 0) { vsx_iovl_free(&l[i]); slen[i] = 0; }
      else if (slen[i]) {
        uint32_t n = (uint32_t)(1 + vsx_rng_below(&rng, slen[i] < 40 ? slen[i] : 40));
        ck_assert_int_eq(vsx_iovl_pop(&l[i], tmp, n), VSX_OK);
        ck_assert_msg(!memcmp(tmp, shadow[i], n), "seed %llu round %d: popped bytes differ", (unsigned long long)seed, round);
        memmove(shadow[i], shadow[i] + n, slen[i] - n);
        slen[i] -= n;
      }
      break;
    }
    for (int k = 0; k < SLOTS; k += 5) {
      ck_assert_uint_eq(vsx_iovl_len(&l[k]), slen[k]);
    }
  }
  for (int i = 0; i < SLOTS; i++) {
    ck_assert_uint_eq(vsx_iovl_gather(&l[i], 0, tmp, sizeof tmp), slen[i]);
    ck_assert_msg(!memcmp(tmp, shadow[i], slen[i]), "seed %llu: list %d corrupted", (unsigned long long)seed, i);
    vsx_iovl_free(&l[i]);
  }
  ck_assert_uint_eq(vsx_bufpool_check(p, stderr), 0);
  ck_assert_uint_eq(vsx_bufpool_ext_free_cnt(p), 16);
  vsx_bufpool_destroy(p);
}
END_TEST

int main(void) {
  Suite *s = suite_create("iovec");
  TCase *tc = tcase_create("iovec");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_iovec_footprint_rejects_bad_options);
  tcase_add_test(tc, test_iovec_new_rejects_null_misaligned_and_bad_magic);
  tcase_add_test(tc, test_iovec_exhaustion_is_backpressure);
  tcase_add_test(tc, test_iovec_references_count_exactly);
  tcase_add_test_raise_signal(tc, test_iovec_double_free_aborts, SIGABRT);
  tcase_add_test(tc, test_iovec_push_in_place_only_when_unshared);
  tcase_add_test(tc, test_iovec_pop_and_trim);
  tcase_add_test(tc, test_iovec_sub_and_concat_copy_nothing);
  tcase_add_test(tc, test_iovec_long_lists_use_and_release_extensions);
  tcase_add_test(tc, test_iovec_crc32c_known_answer);
  tcase_add_test(tc, test_iovec_random_workload_keeps_bytes_and_pool);
  suite_add_tcase(s, tc);
  return vsx_check_run(s);
}
