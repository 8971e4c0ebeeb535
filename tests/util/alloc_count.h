/* alloc_count.h - counts heap allocations, for benchmarks that prove the
   data path allocates nothing.  Include it in exactly one file of a
   program: it interposes malloc, calloc and realloc (glibc exports its
   allocator under __libc_*), counting calls while alloc_counting is set.
   Not for sanitizer builds, which interpose the allocator themselves. */
#ifndef VSX_ALLOC_COUNT_H
#define VSX_ALLOC_COUNT_H

#include <stddef.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

static int alloc_counting;
static unsigned long long alloc_cnt;

void *malloc(size_t n) { if (alloc_counting) alloc_cnt++; return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { if (alloc_counting) alloc_cnt++; return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { if (alloc_counting) alloc_cnt++; return __libc_realloc(p, n); }
void free(void *p) { __libc_free(p); }

/* alloc_count_works: 1 if the interposition is in effect (a zero count
   from a counter that does not count would prove nothing). */
static inline int alloc_count_works(void) {
  unsigned long long before = alloc_cnt;
  int was = alloc_counting;
  alloc_counting = 1;
  free(malloc(16));
  alloc_counting = was;
  return alloc_cnt == before + 1;
}

#endif
