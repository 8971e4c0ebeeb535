/* test_event.c - the event pool.

   Goal: records come only from the pool, exhaustion is back-pressure
   (with a reserve the application cannot take), freeing drops the
   record's iovec references, and misuse (double free) aborts.  Method:
   direct calls and SIGABRT tests. */
#include <check.h>
#include "check_main.h"
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include "vsx/event.h"

START_TEST(test_event_pool_rejects_bad_arguments) {
  ck_assert_uint_eq(vsx_evpool_footprint(0), 0);
  ck_assert_uint_gt(vsx_evpool_footprint(8), 8 * sizeof(vsx_event_t));
  void *mem = aligned_alloc(64, vsx_evpool_footprint(8) + 64);
  ck_assert_ptr_null(vsx_evpool_new(NULL, 8, 0));
  ck_assert_ptr_null(vsx_evpool_new((char *)mem + 4, 8, 0));
  ck_assert_ptr_null(vsx_evpool_new(mem, 8, 8)); /* the reserve must leave something */
  ck_assert_ptr_nonnull(strstr(vsx_last_error(), "reserve_cnt"));
  vsx_evpool_t *p = vsx_evpool_new(mem, 8, 2);
  ck_assert_ptr_nonnull(p);
  ck_assert_ptr_eq(vsx_evpool_delete(p), mem);
  ck_assert_ptr_null(vsx_evpool_delete(p));
  free(mem);
}
END_TEST

START_TEST(test_event_exhaustion_and_reserve) {
  vsx_evpool_t *p;
  ck_assert_int_eq(vsx_evpool_create(8, 3, &p), VSX_OK);
  vsx_event_t *ev[8];
  for (int i = 0; i < 5; i++) ck_assert_ptr_nonnull(ev[i] = vsx_evpool_alloc(p, VSX_EV_CAST, 1));
  ck_assert_ptr_null(vsx_evpool_alloc(p, VSX_EV_CAST, 1)); /* application stops at the reserve */
  for (int i = 5; i < 8; i++) ck_assert_ptr_nonnull(ev[i] = vsx_evpool_alloc(p, VSX_EV_SEND, 0));
  ck_assert_ptr_null(vsx_evpool_alloc(p, VSX_EV_SEND, 0));
  ck_assert_uint_eq(vsx_evpool_exhausted_cnt(p), 2);
  ck_assert_uint_eq(ev[6]->type, VSX_EV_SEND);
  ck_assert_uint_eq(ev[6]->iovl.cnt, 0);
  for (int i = 0; i < 8; i++) vsx_evpool_free(p, ev[i]);
  ck_assert_uint_eq(vsx_evpool_free_cnt(p), 8);
  vsx_evpool_destroy(p);
}
END_TEST

START_TEST(test_event_free_drops_iovec_references) {
  vsx_evpool_t *p;
  vsx_bufpool_t *bp;
  vsx_bufpool_opts_t o = { .buf_cnt = 4, .buf_sz = 256, .headroom = 32 };
  ck_assert_int_eq(vsx_bufpool_create(&o, &bp), VSX_OK);
  ck_assert_int_eq(vsx_evpool_create(4, 0, &p), VSX_OK);
  vsx_event_t *ev = vsx_evpool_alloc(p, VSX_EV_CAST, 0);
  ck_assert_int_eq(vsx_iovl_from_bytes(bp, &ev->iovl, "hello world", 11, 4, 0), VSX_OK);
  ck_assert_uint_eq(vsx_bufpool_free_cnt(bp), 1);
  vsx_evpool_free(p, ev);
  ck_assert_uint_eq(vsx_bufpool_free_cnt(bp), 4);
  vsx_evpool_destroy(p);
  vsx_bufpool_destroy(bp);
}
END_TEST

START_TEST(test_event_double_free_aborts) {
  vsx_evpool_t *p;
  ck_assert_int_eq(vsx_evpool_create(4, 0, &p), VSX_OK);
  vsx_event_t *ev = vsx_evpool_alloc(p, VSX_EV_CAST, 0);
  vsx_evpool_free(p, ev);
  vsx_evpool_free(p, ev);
}
END_TEST

START_TEST(test_event_type_names) {
  ck_assert_str_eq(vsx_ev_type_name(VSX_EV_CAST), "CAST");
  ck_assert_str_eq(vsx_ev_type_name(VSX_EV_STABLE), "STABLE");
  ck_assert_str_eq(vsx_ev_type_name(999), "?");
  ck_assert_str_eq(vsx_strerror(VSX_ERR_AGAIN), "resource temporarily exhausted (back-pressure), try again");
  ck_assert_str_eq(vsx_strerror(-999), "unknown error");
}
END_TEST

int main(void) {
  Suite *s = suite_create("event");
  TCase *tc = tcase_create("event");
  tcase_add_test(tc, test_event_pool_rejects_bad_arguments);
  tcase_add_test(tc, test_event_exhaustion_and_reserve);
  tcase_add_test(tc, test_event_free_drops_iovec_references);
  tcase_add_test_raise_signal(tc, test_event_double_free_aborts, SIGABRT);
  tcase_add_test(tc, test_event_type_names);
  suite_add_tcase(s, tc);
  return vsx_check_run(s);
}
