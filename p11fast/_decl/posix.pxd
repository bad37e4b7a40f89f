# POSIX declarations Cython does not ship (threads, poll, sockets, exit handlers), for the
# compiled modules. Cython's own libc.* and posix.* cover the rest (errno, unistd, strings).
#
# Only what the modules call is declared. The mutex and condition types are opaque: their
# layouts are the C library's, and only pointers to them cross into Cython code.

cdef extern from "<pthread.h>" nogil:
    ctypedef unsigned long pthread_t
    ctypedef int pthread_once_t
    ctypedef struct pthread_mutex_t:
        pass
    ctypedef struct pthread_cond_t:
        pass

    int pthread_once(pthread_once_t *once, void (*init)() noexcept nogil)
    int pthread_mutex_init(pthread_mutex_t *m, const void *attr)
    int pthread_mutex_destroy(pthread_mutex_t *m)
    int pthread_mutex_lock(pthread_mutex_t *m)
    int pthread_mutex_unlock(pthread_mutex_t *m)
    int pthread_cond_init(pthread_cond_t *c, const void *attr)
    int pthread_cond_wait(pthread_cond_t *c, pthread_mutex_t *m)
    int pthread_cond_signal(pthread_cond_t *c)
    int pthread_cond_broadcast(pthread_cond_t *c)
    # abstime: a const struct timespec * (CLOCK_REALTIME unless the condition says otherwise)
    int pthread_cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m, const void *abstime)
    int pthread_cond_destroy(pthread_cond_t *c)
    int pthread_create(pthread_t *t, const void *attr, void *(*start)(void *) noexcept nogil,
                       void *arg)
    int pthread_join(pthread_t t, void **result)
    int pthread_atfork(void (*prepare)() noexcept nogil, void (*parent)() noexcept nogil,
                       void (*child)() noexcept nogil)

cdef extern from "<poll.h>" nogil:
    struct pollfd:
        int fd
        short events
        short revents
    enum: POLLIN
    enum: POLLOUT
    int poll(pollfd *fds, unsigned long nfds, int timeout)

cdef extern from "<stdlib.h>" nogil:
    int atexit(void (*handler)() noexcept nogil)

cdef extern from "<sys/socket.h>" nogil:
    enum: SOCK_CLOEXEC
    int socket(int domain, int type, int protocol)
