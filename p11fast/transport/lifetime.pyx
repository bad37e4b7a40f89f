# lifetime: the process's one-time set-up, and a pool's construction and close (contract in
# lifetime.pxd).

from p11fast._decl.curl cimport CURL_GLOBAL_DEFAULT, CURLE_OK, curl_global_init
from p11fast._decl.posix cimport (
    atexit, pthread_atfork, pthread_mutex_init, pthread_mutex_lock, pthread_mutex_unlock,
    pthread_once, pthread_once_t,
)

cdef extern from * nogil:
    """
    #include <pthread.h>
    #include <openssl/crypto.h>
    /* Defined in C, not as a module-level cdef with an initialiser: Cython assigns those in the
       module's init function, which runs only when Python imports us, possibly after the loader's
       light mode already used the library (see _global_init). */
    static pthread_once_t tp_once = PTHREAD_ONCE_INIT;

    /* A release build carries its own OpenSSL, hidden in this extension: nothing else in the
       process uses it, and the process's exit frees its memory anyway. OpenSSL's exit handler
       would free it first: 1.4M instructions at the end of a one-shot `pkcs11-tool --sign`,
       six times what all its PKCS#11 calls after C_Initialize take. A build on the system's
       OpenSSL shares it with the host and leaves its exit alone. */
    static void tp_openssl_no_atexit(void) {
    #ifdef P11FAST_OWN_OPENSSL
        OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL);
    #endif
    }
    """
    pthread_once_t tp_once
    void tp_openssl_no_atexit()

cdef bint g_init_ok                   # _global_init succeeded (written once, under tp_once)
cdef bint g_forward_wanted            # the loader asks to run our fork handlers from its own
cdef bint g_forwarded                 # it does (decided once, under tp_once)


cdef void _global_init_once() noexcept nogil:
    global g_init_ok, g_forwarded
    pthread_mutex_init(&g_tp_lock, NULL)
    _bg_init()
    tp_openssl_no_atexit()  # before curl_global_init starts OpenSSL
    if curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK:
        return
    # Registered after curl_global_init made OpenSSL register its own cleanup (if it does):
    # exit handlers run in reverse order, so the background thread is gone before OpenSSL frees
    # what it uses.
    atexit(_at_exit)
    g_forwarded = g_forward_wanted
    if not g_forwarded:
        pthread_atfork(_atfork_prepare, _atfork_parent, _atfork_child)
    g_init_ok = True


cdef bint _global_init() noexcept nogil:
    """Process-wide set-up, exactly once, by whichever comes first: the module's import or a light
    mode entry point (then without an initialised Python). False when libcurl cannot start."""
    pthread_once(&tp_once, _global_init_once)
    return g_init_ok


cdef int _global_init_for_loader() noexcept nogil:
    global g_forward_wanted
    g_forward_wanted = True  # only read if the process-wide set-up has not run yet
    if not _global_init():
        return -1
    return 1 if g_forwarded else 0


cdef tp_pool *_pool_from_spec(const unsigned char *spec, size_t n, int threads_allowed,
                              int *failed) noexcept nogil:
    """The one constructor of pools (for Pool() and for the loader's light mode)."""
    cdef tp_pool *pool = _spec_pool(spec, n, threads_allowed, failed)
    if pool == NULL:
        return NULL
    _pool_register(pool)
    if pool.threads_allowed:
        _bg_kick()  # warm-up: the first signature does not pay the TLS handshake
    return pool


cdef void _pool_close(tp_pool *pool) noexcept nogil:
    """The owner's close: no new requests, waiters fail; the last reference frees the memory."""
    cdef int i
    cdef bint last
    if pool.forked:
        # A forked child's inherited pool, already off the registry (tp_after_fork_child). g_tp_lock
        # must not be taken: the pool may be dropped from another atfork child handler, before
        # ours released what _atfork_prepare took.
        tp_store(&pool.closed, 1)
        _pool_unref(pool)
        return
    pthread_mutex_lock(&g_tp_lock)
    tp_store(&pool.closed, 1)
    _pool_unregister(pool)
    # A light-mode handle of an adopted pool must not reach it once its owner let it go.
    _park_forget(pool)
    last = g_registry == NULL and _bg_started()
    pthread_mutex_unlock(&g_tp_lock)
    for i in range(pool.ninstances):
        _wake_waiters(&pool.instances[i])
    _pool_unref(pool)
    if last:
        # No pool left to serve (C_Finalize): the thread ends, joined, not left running into
        # the process's exit.
        _bg_stop(False)
