/* event.c - the preallocated pool of event records. */
#include "vsx/event.h"

#include <stdlib.h>
#include <string.h>

struct vsx_evpool {
  uint64_t magic;
  uint32_t ev_cnt, reserve_cnt;
  uint32_t free_cnt;
  uint32_t rsvd;
  uint64_t exhausted_cnt;
  uint32_t *free_stack;
  uint8_t  *in_use;  /* per slot: catches double frees */
  vsx_event_t *evs;
};

static size_t round_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

size_t vsx_evpool_footprint(uint32_t ev_cnt) {
  if (!ev_cnt) return 0;
  return round_up(sizeof(struct vsx_evpool), 64) + round_up(ev_cnt * sizeof(uint32_t), 64) +
         round_up(ev_cnt, 64) + (size_t)ev_cnt * sizeof(vsx_event_t);
}

vsx_evpool_t *vsx_evpool_new(void *mem, uint32_t ev_cnt, uint32_t reserve_cnt) {
  size_t fp = vsx_evpool_footprint(ev_cnt);
  if (!mem || !fp) { vsx_fail(VSX_ERR_INVAL, "evpool: mem is NULL or ev_cnt is 0"); return NULL; }
  if ((uintptr_t)mem % 64) { vsx_fail(VSX_ERR_INVAL, "evpool: mem %p not 64-byte aligned", mem); return NULL; }
  if (reserve_cnt >= ev_cnt) {
    vsx_fail(VSX_ERR_INVAL, "evpool: reserve_cnt %u must be below ev_cnt %u", reserve_cnt, ev_cnt);
    return NULL;
  }
  memset(mem, 0, fp);
  struct vsx_evpool *p = mem;
  uint8_t *at = (uint8_t *)mem + round_up(sizeof *p, 64);
  p->free_stack = (uint32_t *)at; at += round_up(ev_cnt * sizeof(uint32_t), 64);
  p->in_use = at;                 at += round_up(ev_cnt, 64);
  p->evs = (vsx_event_t *)at;
  p->ev_cnt = ev_cnt;
  p->reserve_cnt = reserve_cnt;
  for (uint32_t i = 0; i < ev_cnt; i++) p->free_stack[i] = ev_cnt - 1 - i;
  p->free_cnt = ev_cnt;
  p->magic = VSX_EVPOOL_MAGIC;
  return p;
}

void *vsx_evpool_delete(vsx_evpool_t *p) {
  if (!p || p->magic != VSX_EVPOOL_MAGIC) return NULL;
  if (p->free_cnt != p->ev_cnt) vsx_log(0, "evpool: deleted with %u events outstanding", p->ev_cnt - p->free_cnt);
  p->magic = 0;
  return p;
}

int vsx_evpool_create(uint32_t ev_cnt, uint32_t reserve_cnt, vsx_evpool_t **out) {
  size_t fp = vsx_evpool_footprint(ev_cnt);
  *out = NULL;
  if (!fp) return vsx_fail(VSX_ERR_INVAL, "evpool: ev_cnt must be > 0");
  void *mem = aligned_alloc(64, round_up(fp, 64));
  if (!mem) return vsx_fail(VSX_ERR_NOMEM, "evpool: cannot allocate %zu bytes", fp);
  *out = vsx_evpool_new(mem, ev_cnt, reserve_cnt);
  if (!*out) { free(mem); return VSX_ERR_INVAL; }
  return VSX_OK;
}

void vsx_evpool_destroy(vsx_evpool_t *p) { free(vsx_evpool_delete(p)); }

vsx_event_t *vsx_evpool_alloc(vsx_evpool_t *p, uint16_t type, int app) {
  VSX_DASSERT(p->magic == VSX_EVPOOL_MAGIC);
  if (VSX_UNLIKELY(p->free_cnt <= (app ? p->reserve_cnt : 0))) { p->exhausted_cnt++; return NULL; }
  uint32_t i = p->free_stack[--p->free_cnt];
  VSX_ASSERT(!p->in_use[i]);
  p->in_use[i] = 1;
  vsx_event_t *ev = &p->evs[i];
  /* Only the header part is cleared: the vector union is written by the
     layer that sets those types, and clearing 1 KiB per data event would
     cost more than the rest of the hop. */
  memset(ev, 0, offsetof(vsx_event_t, x));
  ev->type = type;
  ev->pool_idx = i;
  vsx_iovl_init(&ev->iovl);
  return ev;
}

void vsx_evpool_free(vsx_evpool_t *p, vsx_event_t *ev) {
  uint32_t i = ev->pool_idx;
  VSX_ASSERT(i < p->ev_cnt);
  VSX_ASSERT(&p->evs[i] == ev);
  if (VSX_UNLIKELY(!p->in_use[i])) vsx_fatal("evpool: double free of event %u (type %s)", i, vsx_ev_type_name(ev->type));
  vsx_iovl_free(&ev->iovl);
  p->in_use[i] = 0;
  p->free_stack[p->free_cnt++] = i;
}

uint32_t vsx_evpool_free_cnt(const vsx_evpool_t *p) { return p->free_cnt; }
uint32_t vsx_evpool_cnt(const vsx_evpool_t *p) { return p->ev_cnt; }
uint64_t vsx_evpool_exhausted_cnt(const vsx_evpool_t *p) { return p->exhausted_cnt; }

const char *vsx_ev_type_name(uint16_t type) {
  static const char *const names[VSX_EV_TYPE_CNT] = {
    [VSX_EV_CAST] = "CAST", [VSX_EV_SEND] = "SEND", [VSX_EV_STABLE] = "STABLE", [VSX_EV_FLOW] = "FLOW",
    [VSX_EV_GOSSIP] = "GOSSIP", [VSX_EV_INIT] = "INIT", [VSX_EV_CLOSE] = "CLOSE", [VSX_EV_SUSPECT] = "SUSPECT",
    [VSX_EV_FAIL] = "FAIL", [VSX_EV_LEAVE] = "LEAVE", [VSX_EV_BLOCK] = "BLOCK", [VSX_EV_BLOCK_OK] = "BLOCK_OK",
    [VSX_EV_SYNC] = "SYNC", [VSX_EV_FLUSH] = "FLUSH", [VSX_EV_SYNCED] = "SYNCED", [VSX_EV_FLUSH_OK] = "FLUSH_OK",
    [VSX_EV_VIEW] = "VIEW", [VSX_EV_PREPARE] = "PREPARE", [VSX_EV_MERGE] = "MERGE", [VSX_EV_XFER] = "XFER",
    [VSX_EV_XFER_PUT] = "XFER_PUT", [VSX_EV_XFER_DONE] = "XFER_DONE", [VSX_EV_READY] = "READY", [VSX_EV_EXIT] = "EXIT",
  };
  return type < VSX_EV_TYPE_CNT && names[type] ? names[type] : "?";
}
