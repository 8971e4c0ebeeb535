/* window.h - a window of messages indexed by sequence number, shared by
   the reliable layers (mnak, pt2pt).  Private to layers/.

   A window holds at most cap (a power of two) consecutive seqnos starting
   at lo.  Each slot keeps its own reference to a message's list (a copy
   of the caller's, so the caller keeps its own).  Memory for the slots is
   taken once at init; nothing allocates afterwards. */
#ifndef VSX_LAYERS_WINDOW_H
#define VSX_LAYERS_WINDOW_H

#include <stdlib.h>
#include "vsx/iovec.h"

typedef struct vsx_window {
  uint32_t cap;        /* slots, power of two                 */
  uint32_t lo;         /* seqnos below lo are released          */
  uint8_t *present;    /* cap flags                             */
  vsx_iovl_t *slots;   /* cap lists                             */
} vsx_window_t;

/* vsx_window_init takes cap rounded up to a power of two.  Start-up only:
   VSX_ERR_NOMEM if calloc fails. */
static inline int vsx_window_init(vsx_window_t *w, uint32_t cap) {
  uint32_t c = 1;
  while (c < cap) c <<= 1;
  w->cap = c;
  w->lo = 0;
  w->present = calloc(c, 1);
  w->slots = calloc(c, sizeof(vsx_iovl_t));
  if (!w->present || !w->slots) { free(w->present); free(w->slots); w->present = NULL; w->slots = NULL; return VSX_ERR_NOMEM; }
  return VSX_OK;
}

static inline int vsx_window_fits(const vsx_window_t *w, uint32_t seq) { return seq >= w->lo && seq - w->lo < w->cap; }

static inline int vsx_window_has(const vsx_window_t *w, uint32_t seq) {
  return vsx_window_fits(w, seq) && w->present[seq & (w->cap - 1)];
}

static inline vsx_iovl_t *vsx_window_get(vsx_window_t *w, uint32_t seq) {
  return vsx_window_has(w, seq) ? &w->slots[seq & (w->cap - 1)] : NULL;
}

/* vsx_window_put stores a copy (new references) of l at seq.  Assumes seq
   fits and is not present.  VSX_ERR_AGAIN if the copy needs an extension
   array and none is free. */
static inline int vsx_window_put(vsx_window_t *w, uint32_t seq, const vsx_iovl_t *l) {
  VSX_ASSERT(vsx_window_fits(w, seq));
  uint32_t i = seq & (w->cap - 1);
  VSX_ASSERT(!w->present[i]);
  int err = vsx_iovl_copy(&w->slots[i], l);
  if (err) return err;
  w->present[i] = 1;
  return VSX_OK;
}

/* vsx_window_release drops every slot below seq and moves lo up to it. */
static inline void vsx_window_release(vsx_window_t *w, uint32_t seq) {
  while (w->lo < seq) {
    uint32_t i = w->lo & (w->cap - 1);
    if (w->present[i]) { vsx_iovl_free(&w->slots[i]); w->present[i] = 0; }
    w->lo++;
  }
}

static inline void vsx_window_fini(vsx_window_t *w) {
  if (!w->slots) return;
  for (uint32_t i = 0; i < w->cap; i++)
    if (w->present[i]) vsx_iovl_free(&w->slots[i]);
  free(w->present);
  free(w->slots);
  w->present = NULL;
  w->slots = NULL;
}

/* A FIFO of events waiting for window space (intrusive, through ev->next:
   a parked event belongs to the layer, not the scheduler). */
typedef struct vsx_evq { struct vsx_event *head, *tail; uint32_t cnt; } vsx_evq_t;

#endif
