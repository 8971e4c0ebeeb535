/* evq.h - intrusive FIFO of events parked inside a layer (waiting for a
   window, a reassembly slot or an event record).  Private to layers/. */
#ifndef VSX_LAYERS_EVQ_H
#define VSX_LAYERS_EVQ_H

#include "vsx/layer.h"
#include "window.h"

static inline void vsx_evq_push(vsx_evq_t *q, vsx_event_t *ev) {
  ev->next = NULL;
  if (q->tail) q->tail->next = ev;
  else q->head = ev;
  q->tail = ev;
  q->cnt++;
}

static inline vsx_event_t *vsx_evq_pop(vsx_evq_t *q) {
  vsx_event_t *ev = q->head;
  if (!ev) return NULL;
  q->head = ev->next;
  if (!q->head) q->tail = NULL;
  q->cnt--;
  return ev;
}

/* vsx_evq_unpop puts ev back at the front (it could not be handled yet). */
static inline void vsx_evq_unpop(vsx_evq_t *q, vsx_event_t *ev) {
  ev->next = q->head;
  q->head = ev;
  if (!q->tail) q->tail = ev;
  q->cnt++;
}

static inline void vsx_evq_free_all(vsx_layer_ctx_t *ctx, vsx_evq_t *q) {
  vsx_event_t *ev;
  while ((ev = vsx_evq_pop(q))) vsx_ev_free(ctx, ev);
}

#endif
