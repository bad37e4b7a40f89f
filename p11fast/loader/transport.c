/* The transport's C entry points (p11fast/transport/capi.h) and the ABI's compiled session
 * functions (p11fast/abi/compiled.h), in the ABI's extension beside this library
 * (p11fast/_abi<EXT_SUFFIX>.so), loaded without starting Python: for light mode, and the
 * transport's fork handling for fork.c. The ABI's import later finds the same object loaded,
 * with the state these calls left it in. */
#include "python.h" /* first: Python.h sets the feature macros used below */

#include <dlfcn.h>
#include <stdio.h>

_Atomic(const struct transport_api *) forwarded_transport;
static struct compiled_api compiled;
static int compiled_found;

/* Under start_lock (a fork never sees it half done: a dlopen in progress, OpenSSL's own set-up
 * running). */
static const struct transport_api *load_transport_locked(void)
{
    static struct transport_api api;
    char dir[PATH_MAX], path[PATH_MAX + 64];
    void *handle;
    int forwarded;
    if (!package_dir(dir, sizeof dir))
        return NULL;
    snprintf(path, sizeof path, "%s/_abi%s", dir, P11FAST_PY_EXT_SUFFIX);
    if (!(handle = dlopen(path, RTLD_NOW)))
        return NULL;
#define TRANSPORT_SYMBOL(field, name) \
    if (!(*(void **)&api.field = dlsym(handle, name)))    \
        return NULL;
    TRANSPORT_SYMBOL(init, "p11f_transport_init")
    TRANSPORT_SYMBOL(open, "p11f_transport_open")
    TRANSPORT_SYMBOL(get, "p11f_transport_get")
    TRANSPORT_SYMBOL(release, "p11f_transport_release")
    TRANSPORT_SYMBOL(fork_prepare, "p11f_transport_fork_prepare")
    TRANSPORT_SYMBOL(fork_parent, "p11f_transport_fork_parent")
    TRANSPORT_SYMBOL(fork_child, "p11f_transport_fork_child")
#undef TRANSPORT_SYMBOL
#define COMPILED_SYMBOL(field, name) (*(void **)&compiled.field = dlsym(handle, name)) &&
    compiled_found = COMPILED_SYMBOL(start, "p11f_abi_compiled_start")
        COMPILED_SYMBOL(end, "p11f_abi_compiled_end")
        COMPILED_SYMBOL(after_fork_child, "p11f_abi_after_fork_child")
        COMPILED_SYMBOL(open_session_check, "p11f_abi_open_session_check")
        COMPILED_SYMBOL(open_session, "p11f_abi_open_session")
        COMPILED_SYMBOL(close_session, "p11f_abi_close_session")
        COMPILED_SYMBOL(close_all_sessions, "p11f_abi_close_all_sessions")
        COMPILED_SYMBOL(get_session_info, "p11f_abi_get_session_info")
        COMPILED_SYMBOL(session_counts, "p11f_abi_session_counts")
        COMPILED_SYMBOL(failures_waiting, "p11f_abi_failures_waiting")
        COMPILED_SYMBOL(login, "p11f_abi_login")
        COMPILED_SYMBOL(logout, "p11f_abi_logout")
        COMPILED_SYMBOL(find_objects_init, "p11f_abi_find_objects_init")
        COMPILED_SYMBOL(find_objects, "p11f_abi_find_objects")
        COMPILED_SYMBOL(find_objects_final, "p11f_abi_find_objects_final")
        COMPILED_SYMBOL(get_attribute_value, "p11f_abi_get_attribute_value")
        COMPILED_SYMBOL(sign_init, "p11f_abi_sign_init")
        COMPILED_SYMBOL(sign, "p11f_abi_sign")
        COMPILED_SYMBOL(sign_update, "p11f_abi_sign_update")
        COMPILED_SYMBOL(sign_final, "p11f_abi_sign_final")
        COMPILED_SYMBOL(decrypt_init, "p11f_abi_decrypt_init")
        COMPILED_SYMBOL(decrypt, "p11f_abi_decrypt")
        COMPILED_SYMBOL(decrypt_update, "p11f_abi_decrypt_update")
        COMPILED_SYMBOL(decrypt_final, "p11f_abi_decrypt_final") 1;
#undef COMPILED_SYMBOL
    if ((forwarded = api.init()) < 0)
        return NULL;
    /* The ABI's own reset, for a child of a process whose light mode opened sessions in it;
     * its import sets the same function again. */
    if (compiled_found && !atomic_load(&abi_after_fork_child))
        atomic_store(&abi_after_fork_child, compiled.after_fork_child);
    if (forwarded)
        atomic_store(&forwarded_transport, &api);
    return &api;
}

const struct transport_api *transport_api(void)
{
    static const struct transport_api *loaded;
    static int tried;
    pthread_mutex_lock(&start_lock);
    if (!tried) {
        loaded = load_transport_locked();
        tried = 1;
    }
    pthread_mutex_unlock(&start_lock);
    return loaded;
}

const struct compiled_api *compiled_api(void)
{
    return transport_api() && compiled_found ? &compiled : NULL;
}
