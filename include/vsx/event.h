/* vsx/event.h - event records and their preallocated pool.

   An event is what layers pass to each other: a type, a direction (given
   by the handler that receives it), a peer rank, a payload iovec list,
   flags, a few fixed fields and, in a union at the end, the rarely used
   per-member vectors and views.  Records come from a pool sized at
   start-up; vsx_evpool_alloc returns NULL when it is empty, which the
   stack turns into back-pressure.

   OWNERSHIP.  Once handed to a stack (vsx_stack_dn/up) an event belongs to
   the stack, like an active libev watcher belongs to its loop: the caller
   must not touch it again.  Inside the stack, every handler either passes
   the event on or frees it (vsx_ev_free), on every path.  Freeing an event
   drops the references of its iovec list. */
#ifndef VSX_EVENT_H
#define VSX_EVENT_H

#include "vsx/iovec.h"

#ifdef __cplusplus
extern "C" {
#endif

#define VSX_MEMBERS_MAX 64
#define VSX_EVPOOL_MAGIC 0x7673782d65766e74ULL /* "vsx-evnt" */

typedef enum vsx_ev_type {
  /* events that carry a message */
  VSX_EV_CAST = 1,  /* to every member of the view; up: peer = origin rank */
  VSX_EV_SEND,      /* point-to-point; dn: peer = destination, up: origin */
  /* events without a message */
  VSX_EV_STABLE,    /* stability: x.vec.lo = casts stable per origin (all
                       members have them), x.vec.hi = casts known to exist */
  VSX_EV_FLOW,      /* u64a = 1 blocked / 0 unblocked (informational)      */
  /* Membership (docs/membership.md).  GOSSIP and XFER_PUT carry a list
     but, like every type below, travel through the no-message handlers
     (upnm/dnnm): layers that do not know a type pass it on unchanged. */
  VSX_EV_GOSSIP,    /* a datagram outside any view (wire kind GOSSIP).
                       dn: u64a = destination eid, 0 = the whole group;
                       up: u64a = sender eid, u64b = its stack instance   */
  VSX_EV_INIT,      /* dn from the owner once the stack is built; bounced */
  VSX_EV_CLOSE,     /* dn from the owner: this stack's view has ended; it
                       only lingers to retransmit (no heartbeats, no new
                       protocol rounds); bounced                          */
  VSX_EV_SUSPECT,   /* up (suspect): u64a = ranks suspected (bit r), only
                       grows; u64b = ranks that announced they leave      */
  VSX_EV_FAIL,      /* dn (vsync): u64a = ranks failed in this view, only
                       grows: mnak freezes their casts, stable ignores
                       them, suspect spreads them                          */
  VSX_EV_LEAVE,     /* dn from the owner: this member leaves the group    */
  VSX_EV_BLOCK,     /* up to the owner: run the block callback, then
                       inject BLOCK_OK                                     */
  VSX_EV_BLOCK_OK,  /* dn: the application is blocked.  A layer that parks
                       casts holds it until it passed them all on, and
                       casts nothing reliably afterwards.  On the bounce
                       up mnak stamps x.vec.lo[r] = casts of r delivered
                       here (mine: sent).  u64b: vsync's tag              */
  VSX_EV_SYNC,      /* dn (vsync -> mnak): deliver exactly x.vec.lo[r]
                       casts of each origin r, fetching the missing ones
                       from rank x.vec.hi[r]; mnak holds the event until
                       it has, then lets it bounce up.  u64a/u64b: tags   */
  VSX_EV_FLUSH,     /* dn (intra -> vsync): run a flush, u64a = ranks
                       failed, u64b = ranks leaving.  up (vsync -> intra): I answer the flush of
                       coordinator rank u64a, u64b = ranks failed          */
  VSX_EV_SYNCED,    /* up (vsync -> intra): I delivered what the flush of
                       coordinator rank u64a agreed on                     */
  VSX_EV_FLUSH_OK,  /* up (vsync -> intra, coordinator): the flush is
                       complete; u64a = survivors, u64b = survivors that
                       still need the state                                */
  VSX_EV_VIEW,      /* up (intra -> owner): install x.view next; u64b = 1
                       if a flush ended the current view (its stack can
                       deliver no more cast), 0 if I left it alone.  dn
                       (inter -> intra): end a merge, u64a = 1 granted
                       (x.view is the merged view), 0 failed              */
  VSX_EV_PREPARE,   /* dn (inter -> intra): flush for a merge request.
                       up: u64a = 1 done (x.view lists the survivors,
                       x.view.ltime mine) or 0 refused                     */
  VSX_EV_MERGE,     /* dn (inter -> intra): take the mergers in x.view
                       (x.view.ltime theirs) into my next view.  up:
                       u64a = 1 taken, 0 refused; u64b = their coord eid  */
  VSX_EV_XFER,      /* up (xfer -> owner): call state_get.  dn (owner ->
                       xfer): u64a = the state's bytes (a pointer, valid
                       until the view callback), u64b = its length        */
  VSX_EV_XFER_PUT,  /* up (xfer -> owner): a piece of the state (list),
                       u64a = its offset, u64b = the state's length       */
  VSX_EV_XFER_DONE, /* dn (xfer -> vsync): I hold the whole state          */
  VSX_EV_READY,     /* up (xfer -> owner): the view may be used: run the
                       view callback                                       */
  VSX_EV_EXIT,      /* up (intra -> owner): u64a = VSX_EXIT_* reason       */
  VSX_EV_TYPE_CNT
} vsx_ev_type_t;

/* u64a of VSX_EV_EXIT. */
enum { VSX_EXIT_LEFT = 1, VSX_EXIT_LEAVE_TIMEOUT = 2 };

/* ev->flags */
enum {
  VSX_EVF_UNREL = 1u << 0, /* unreliable: no retransmission, no ordering    */
  VSX_EVF_APPL  = 1u << 1, /* an application message (counted by top)        */
  VSX_EVF_LOCAL = 1u << 2, /* up: my own cast delivered locally               */
};

/* ev->svc: the service an application message asked for. */
typedef enum vsx_svc { VSX_SVC_FIFO = 1, VSX_SVC_TOTAL = 2, VSX_SVC_SAFE = 3, VSX_SVC_P2P = 4 } vsx_svc_t;

/* vsx_view_t.flags */
enum {
  VSX_VIEW_PRIMARY = 1u << 0, /* holds a majority of the configured
                                 membership (primary-partition mode)     */
  VSX_VIEW_STATIC  = 1u << 1, /* given at creation, never changes        */
};

typedef struct vsx_view {
  uint64_t ltime;       /* logical time of the view                     */
  uint64_t coord_eid;   /* view id = (ltime, coord_eid)                 */
  uint32_t member_cnt;
  uint32_t flags;       /* VSX_VIEW_*                                   */
  uint64_t members[VSX_MEMBERS_MAX]; /* endpoint ids, coordinator first */
  uint64_t xfer_mask;   /* bit r: member r waits for the state (state
                           transfer) before it may use this view        */
} vsx_view_t;

typedef struct vsx_event {
  struct vsx_event *next;  /* private: queue link                          */
  uint16_t type;           /* vsx_ev_type_t                                 */
  uint16_t flags;          /* VSX_EVF_*                                     */
  int32_t  peer;           /* rank: origin (up) or destination (dn SEND)    */
  uint16_t at_layer;       /* private: scheduler target                     */
  uint8_t  going_up;       /* private: scheduler direction                  */
  uint8_t  svc;            /* vsx_svc_t of an application message           */
  uint32_t pool_idx;       /* private: slot in the pool                     */
  vsx_iovl_t iovl;         /* payload (with headers of the layers above)    */
  uint64_t u64a, u64b;     /* fixed fields, meaning given per type          */
  union {
    struct { uint64_t lo[VSX_MEMBERS_MAX], hi[VSX_MEMBERS_MAX]; } vec;
    vsx_view_t view;
  } x;                     /* rarely used: valid only for the types above   */
} vsx_event_t;

typedef struct vsx_evpool vsx_evpool_t;

/* Lifecycle (see iovec.h for the pattern): footprint returns 0 for
   ev_cnt == 0; new returns NULL with vsx_last_error on bad arguments. */
size_t vsx_evpool_footprint(uint32_t ev_cnt);
vsx_evpool_t *vsx_evpool_new(void *mem, uint32_t ev_cnt, uint32_t reserve_cnt);
void *vsx_evpool_delete(vsx_evpool_t *pool);
int  vsx_evpool_create(uint32_t ev_cnt, uint32_t reserve_cnt, vsx_evpool_t **out);
void vsx_evpool_destroy(vsx_evpool_t *pool);

/* vsx_evpool_alloc returns a zeroed event of the given type with an empty
   list, or NULL when the pool is empty (app != 0: when only the reserve
   kept for protocol events is left). */
vsx_event_t *vsx_evpool_alloc(vsx_evpool_t *pool, uint16_t type, int app);

/* vsx_evpool_free drops the event's iovec references and returns it. */
void vsx_evpool_free(vsx_evpool_t *pool, vsx_event_t *ev);

uint32_t vsx_evpool_free_cnt(const vsx_evpool_t *pool);
uint32_t vsx_evpool_cnt(const vsx_evpool_t *pool);
uint64_t vsx_evpool_exhausted_cnt(const vsx_evpool_t *pool);

const char *vsx_ev_type_name(uint16_t type);

#ifdef __cplusplus
}
#endif
#endif
