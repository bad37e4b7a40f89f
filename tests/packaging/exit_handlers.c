/* Preloaded into a host: appends one line to $P11FAST_EXIT_HANDLERS_LOG for each exit handler
 * registered with a function inside p11fast's extension (_abi.*.so), then registers it as usual.
 * A shared object's atexit() is glibc's __cxa_atexit with the object's handle, called through
 * the PLT, so preloading sees OpenSSL's registration too when OpenSSL is linked in statically. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int __cxa_atexit(void (*fn)(void *), void *arg, void *dso)
{
    int (*next)(void (*)(void *), void *, void *) =
        (int (*)(void (*)(void *), void *, void *))dlsym(RTLD_NEXT, "__cxa_atexit");
    const char *log = getenv("P11FAST_EXIT_HANDLERS_LOG");
    Dl_info info;
    if (log && dladdr((void *)fn, &info) && info.dli_fname && strstr(info.dli_fname, "/_abi.")) {
        FILE *f = fopen(log, "a");
        if (f) {
            fprintf(f, "%s+%#lx\n", info.dli_fname,
                    (unsigned long)((char *)fn - (char *)info.dli_fbase));
            fclose(f);
        }
    }
    return next(fn, arg, dso);
}
