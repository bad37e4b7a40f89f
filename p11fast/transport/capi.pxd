# capi: the C API the loader calls (its declarations and the TP_* codes: capi.h), so that light
# mode can answer token presence without starting Python. The loader answers
# C_GetSlotList/C_GetSlotInfo/C_GetTokenInfo from a snapshot, but presence needs one live
# GET /health/ready through this transport, and the connection it opens should serve the rest
# of the process if Python starts later. So with libpython loaded (initialised or not: nothing
# here touches a Python object, or needs the module's import) the loader can call:
#
#   int p11f_transport_init(void)
#       The process-wide set-up alone (libcurl, the exit handler), for the loader, which then
#       runs the transport's fork handling from its own pthread_atfork handlers: 1. 0 when the
#       module's import came first and registered its own handlers (the loader must not run
#       them as well); -1 when libcurl cannot start.
#   void p11f_transport_fork_prepare(void), p11f_transport_fork_parent(void),
#        p11f_transport_fork_child(void)
#       The transport's fork handlers (fork), for the loader to call from its own when init
#       said 1.
#   void *p11f_transport_open(const unsigned char *spec, size_t len, int threads_allowed)
#       Builds a pool from a pool_spec() blob, exactly as Pool() does (with threads_allowed,
#       the background thread starts connecting it at once), and parks it (park). Returns an
#       opaque handle, NULL for a malformed blob, no memory or a handle libcurl cannot set up.
#   int p11f_transport_get(void *handle, const char *path, long *status, char *why,
#                          size_t why_size)
#       One GET of path (relative to the instance URL: "/health/ready"), no Authorization
#       header, retries and failover as configured, body discarded. Returns TP_OK (*status =
#       the HTTP status) or TP_ERR_* (*status = 0); TP_ERR_CLOSED once the pool is gone (its
#       adopter closed it, or in a forked child). `why` (NUL-terminated, cut to why_size; may
#       be NULL with why_size 0) receives the URL of the instance that answered, or
#       "<instance URL>: <reason>" when none did: what a log line about the answer needs.
#   void p11f_transport_release(void *handle)
#       Ends the handle: a pool still parked is closed (its connections with it); an adopted one
#       is left to its Pool. Once per open; an unknown or already released handle is ignored.
#
# Contract: any thread; none of them may be called from an atfork handler (g_tp_lock may
# still be held there). Ownership of parked and adopted pools: park.pxd.
# uses: types, pool, park, lifetime, request, fork
