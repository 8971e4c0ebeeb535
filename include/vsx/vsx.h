/* vsx/vsx.h - the one header an application includes: Ensemble-style
   virtual-synchrony group messaging over AF_XDP, kernel UDP or a simulated
   network.  The reference is docs/api.md, the walk-through docs/tutorial.md;
   the promises are ../shared/spec/guarantees.md (the spec; its properties
   are numbered 1-14 and cited as [n] below).

   LIFECYCLE of one member (one vsx_endpoint_t):

     vsx_endpoint_opts_init + fill opts (group, transport, port, callbacks)
       -> vsx_endpoint_create      the transport, pools, first stack
       -> vsx_endpoint_add_peer    (udp unicast only) an address to find
                                   the group through
       -> vsx_endpoint_attach(loop) or vsx_endpoint_run(seconds)
       -> view callback            a view is installed: it may send now.
                                   With membership (opts.view NULL) the
                                   first view holds only this member; merged
                                   views follow as it finds the group
       -> vsx_endpoint_cast / _send (and the _borrowed zero-copy forms)
            deliver callback       messages, in the views they were sent in
            block callback         the view is ending: sending is refused
            state_get / state_put  state transfer to members that join
            view callback          the next view
       -> vsx_endpoint_leave       the group installs a view without it
       -> exit callback            out for good ("leave", "leave-timeout",
                                   "excluded", "error: ...")
       -> vsx_endpoint_destroy     outside any callback

   SERVICES (vsx_svc_t), each a reliable delivery to the members of the
   sender's current view, delivered in that same view or not at all [5],
   exactly once with the bytes sent [4], and the same set of messages at
   every member that goes on into the same next view [6]:
     VSX_SVC_FIFO   cast in each sender's order, without gaps [7].
     VSX_SVC_TOTAL  FIFO, and every member delivers the total and safe casts
                    of a view in one and the same order [8], also across
                    partitions (needs a total-order layer: the default
                    membership stack VSX_STACK_VSYNC has seqbb).
     VSX_SVC_SAFE   TOTAL, and delivered only once every member of the view
                    has it, so what one member delivers every surviving
                    member delivers [9].
     VSX_SVC_P2P    vsx_endpoint_send: to one member (by rank in the current
                    view), reliable and FIFO per sender.
   Casts and sends are refused (VSX_ERR_BLOCKED), never dropped, between the
   block callback and the next view callback [10].

   ERRORS.  Every call that can fail returns VSX_OK (0) or a negative VSX_ERR_* code
   (vsx/base.h); vsx_strerror(code) is a fixed short text that lives
   forever.  A failing call also leaves a sentence in vsx_last_error() that
   says what went wrong and what to do, except VSX_ERR_AGAIN on the data
   path (flow control or an empty pool: try again after the flow callback
   or the next poll), which is too frequent to format.  The common codes:
   INVAL (a bad argument, named), AGAIN (back-pressure), BLOCKED (view
   change, or not a primary view), STATE (left the group), TOOBIG (larger
   than max_msg or one buffer), NOTSUP (not on this transport or stack, or
   not in this release), PERM/NOTFOUND/BUSY/IO (the transport could not
   start; the message names the fix).  Programmer errors that cannot be
   reported (a broken invariant) abort through VSX_ASSERT.

   THREADS.  An endpoint belongs to one thread: every call on it, on the
   buffers it lends and on the lists it delivers is made from the thread
   that drives it (runs its loop or calls vsx_endpoint_poll), and every
   callback runs on that thread, from inside vsx_endpoint_poll (so from
   inside ev_run for an attached endpoint).  There is no locking.
   Endpoints driven by different threads are independent once created:
   each has its own transport, pools and stacks.  Serialize their set-up
   (create them before starting threads, or under a lock of your own):
   the afxdp transport's create swaps libbpf's process-wide print hooks,
   and the log level and CRC-32C table are initialised at first use; set
   vsx_log_level_set and vsx_set_fatal_handler before starting threads.
   vsx_last_error() is thread-local.
   From inside a callback an application may call: cast, send, the
   _borrowed forms, borrow, return, leave, add_peer, can_send, the
   queries (view, rank, eid, stats, ...) and vsx_endpoint_stop.  It must
   not call destroy, attach, detach, run or poll on that endpoint.  A
   cast made from a callback is queued behind the event being handled.

   OWNERSHIP AND LIFETIME of what crosses the API:
     opts (vsx_endpoint_create)  read during the call only: group, names,
                      stack, params, interface, trace directory, primary
                      list and view are copied.  Kept as given:
                      opt_backend (the vsx_sim_t) and opt_clock_ctx, which
                      must outlive the endpoint, and user.
     add_peer addr    read during the call only.
     cast/send data   copied before the call returns (into pool buffers).
     vsx_msgbuf_t     lent by vsx_endpoint_borrow; the caller's until a
                      _borrowed call returns VSX_OK (the endpoint's again)
                      or vsx_endpoint_return; on any error of a _borrowed
                      call it stays the caller's.  destroy reclaims those
                      still lent.
     deliver msg      borrowed for the callback: copy it out with
                      vsx_iovl_gather.  (vsx_iovl_copy keeps it without a
                      copy by taking references; such a list holds pool
                      buffers until vsx_iovl_free, which must come before
                      destroy, on the endpoint's thread.)
     view callback v  borrowed for the callback; vsx_endpoint_view returns
                      the endpoint's own copy, overwritten when the next
                      view is set up (after the block callback, before the
                      next view callback).
     state_get data   the application's: must stay valid and unchanged
                      until this endpoint's next view callback (no message
                      is delivered before it).
     state_put data   borrowed for the callback.
     exit reason      borrowed for the callback.
     vsx_last_error() valid until the next failing call on this thread.
     vsx_strerror()   lives forever.
     stack, pool, evpool, trace (vsx_endpoint_stack and the like, for
                      tools and tests): the endpoint's; the stack until the
                      next view change, the rest until destroy. */
#ifndef VSX_VSX_H
#define VSX_VSX_H

#include "vsx/base.h"
#include "vsx/iovec.h"
#include "vsx/transport.h"
#include "vsx/endpoint.h"

#endif
