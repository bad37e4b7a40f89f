/* The transport's C API for the loader: the result codes and the entry points that
 * p11fast/_abi<EXT_SUFFIX>.so exports (its only exported symbols besides PyInit__abi). The
 * loader (p11fast/loader/) includes this header and finds the functions with dlsym; the
 * transport includes it too (p11fast/transport/types.pxd) and defines them
 * (p11fast/transport/capi.pyx), so the compiler checks both sides against one text. What each
 * function does, and who owns what: p11fast/transport/capi.pxd. */
#ifndef P11FAST_TRANSPORT_CAPI_H
#define P11FAST_TRANSPORT_CAPI_H

#include <stddef.h>

/* What a request ended with: tp_request's and p11f_transport_get's return value. */
enum {
    TP_OK = 0,          /* an HTTP response was received (any status) */
    TP_ERR_CONNECT = 1, /* no instance could be reached after all retries */
    TP_ERR_TIMEOUT = 2, /* timed out after all retries */
    TP_ERR_TLS = 3,     /* TLS failure / pin mismatch */
    TP_ERR_NOMEM = 4,
    TP_ERR_CLOSED = 5   /* pool closed (C_Finalize) or invalid after fork */
};

/* The entry points' types, for the loader's function pointers. */
typedef int p11f_transport_init_fn(void);
typedef void p11f_transport_fork_fn(void);
typedef void *p11f_transport_open_fn(const unsigned char *spec, size_t len, int threads_allowed);
typedef int p11f_transport_get_fn(void *handle, const char *path, long *status, char *why,
                                  size_t why_size);
typedef void p11f_transport_release_fn(void *handle);

/* Exported whatever -fvisibility the extension is built with. */
#define P11F_TRANSPORT_API __attribute__((visibility("default")))

P11F_TRANSPORT_API p11f_transport_init_fn p11f_transport_init;
P11F_TRANSPORT_API p11f_transport_fork_fn p11f_transport_fork_prepare;
P11F_TRANSPORT_API p11f_transport_fork_fn p11f_transport_fork_parent;
P11F_TRANSPORT_API p11f_transport_fork_fn p11f_transport_fork_child;
P11F_TRANSPORT_API p11f_transport_open_fn p11f_transport_open;
P11F_TRANSPORT_API p11f_transport_get_fn p11f_transport_get;
P11F_TRANSPORT_API p11f_transport_release_fn p11f_transport_release;

#endif
