/* check_main.h - the end of every Check test program: run the suite,
   print Check's summary line, exit non-zero on any failure. */
#ifndef VSX_CHECK_MAIN_H
#define VSX_CHECK_MAIN_H

#include <check.h>
#include <stdlib.h>

static inline int vsx_check_run(Suite *s) {
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
