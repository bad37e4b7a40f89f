/* libp11fast.so: the only file PKCS #11 hosts load.
 *
 * It exports C_GetFunctionList, C_GetInterfaceList and C_GetInterface, whose tables hold
 * trampolines into the ABI (p11fast._abi, a CPython extension). The first C_Initialize gets a
 * Python interpreter — the host's own if it runs one, otherwise libpython loaded and started
 * here with the wheel's environment — imports p11fast._abi and takes its CK_FUNCTION_LIST_3_0
 * from a capsule. From then on a forwarded call costs one atomic load and one indirect call: no
 * GIL and no lock, the ABI takes the GIL itself when it needs Python. Before that, light mode
 * (light.c) may answer the slot and token queries of a one-shot host without Python at all.
 *
 * This library is not linked against libpython: one build serves hosts without Python and
 * Python hosts alike, and a host's Python of another version gets a clear error instead of a
 * second interpreter. Python.h is included for the layouts of PyConfig, PyPreConfig and
 * PyStatus (which differ between Python versions; the wheel is built per version) and for
 * PyGILState_STATE; every C-API call goes through a pointer from dlsym.
 *
 * Environment: P11FAST_LIBPYTHON, when set, is the only libpython path tried (for Pythons
 * installed where the wheel's layout does not lead, and for tests).
 */
#include <Python.h> /* first: pyconfig.h sets the feature macros (_GNU_SOURCE) used below */

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "loader.h"
#include "pkcs11.h"

#define EXPORT __attribute__((visibility("default")))

#define ABI_MODULE "p11fast._abi"
#define TABLE_CAPSULE ABI_MODULE ".function_table"
#define OWN_CAPSULE ABI_MODULE ".own_interpreter"
#define FORK_CAPSULE ABI_MODULE ".after_fork_child"
#define SEED_CAPSULE ABI_MODULE ".seed_presence"

/* ------------------------------------------------------------------ logging */

/* Python's logging does not exist yet when these lines matter, so: one line on stderr, one in
 * syslog (without openlog, so the host's own syslog settings stay as they are). */
void say(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "p11fast: %s\n", line);
    syslog(LOG_USER | LOG_ERR, "p11fast: %s", line);
}

/* ------------------------------------------------------------------ the Python C-API, by dlsym */

/* What any interpreter, the host's or ours, must provide. */
#define PY_CORE_API(X)                                                    \
    X(int, Py_IsInitialized, (void))                                      \
    X(const char *, Py_GetVersion, (void))                                \
    X(PyGILState_STATE, PyGILState_Ensure, (void))                        \
    X(void, PyGILState_Release, (PyGILState_STATE))                       \
    X(PyObject *, PyImport_ImportModule, (const char *))                  \
    X(PyObject *, PyObject_GetAttrString, (PyObject *, const char *))     \
    X(void *, PyCapsule_GetPointer, (PyObject *, const char *))           \
    X(PyObject *, PyErr_Occurred, (void))                                 \
    X(void, PyErr_Fetch, (PyObject **, PyObject **, PyObject **))         \
    X(void, PyErr_Clear, (void))                                          \
    X(PyObject *, PyObject_Repr, (PyObject *))                            \
    X(const char *, PyUnicode_AsUTF8, (PyObject *))                       \
    X(PyObject *, PySys_GetObject, (const char *))                        \
    X(PyObject *, PyUnicode_DecodeFSDefault, (const char *))              \
    X(int, PyList_Append, (PyObject *, PyObject *))                       \
    X(void, Py_DecRef, (PyObject *))

/* What starting our own interpreter and keeping it usable across fork() needs. */
#define PY_EMBED_API(X)                                                            \
    X(void, PyPreConfig_InitIsolatedConfig, (PyPreConfig *))                       \
    X(PyStatus, Py_PreInitialize, (const PyPreConfig *))                           \
    X(void, PyConfig_InitIsolatedConfig, (PyConfig *))                             \
    X(PyStatus, PyConfig_SetBytesString, (PyConfig *, wchar_t **, const char *))   \
    X(PyStatus, PyWideStringList_Append, (PyWideStringList *, const wchar_t *))    \
    X(wchar_t *, Py_DecodeLocale, (const char *, size_t *))                        \
    X(void, PyMem_RawFree, (void *))                                               \
    X(int, PyStatus_Exception, (PyStatus))                                         \
    X(PyStatus, Py_InitializeFromConfig, (const PyConfig *))                       \
    X(void, PyConfig_Clear, (PyConfig *))                                          \
    X(PyThreadState *, PyEval_SaveThread, (void))                                  \
    X(int, PyGILState_Check, (void))                                               \
    X(void, PyOS_BeforeFork, (void))                                               \
    X(void, PyOS_AfterFork_Parent, (void))                                         \
    X(void, PyOS_AfterFork_Child, (void))

#define PY_POINTER(ret, name, params) ret(*name) params;
static struct {
    PY_CORE_API(PY_POINTER)
    PY_EMBED_API(PY_POINTER)
} py;

#define PY_RESOLVE(ret, name, params)                         \
    if (!(py.name = (ret(*) params)dlsym(handle, #name))) { \
        say("libpython lacks %s", #name);                    \
        return 0;                                            \
    }

static int resolve_core(void *handle)
{
    PY_CORE_API(PY_RESOLVE)
    return 1;
}

static int resolve_embed(void *handle)
{
    PY_EMBED_API(PY_RESOLVE)
    return 1;
}

/* ------------------------------------------------------------------ state */

/* The ABI's table as the forwarders see it: NULL until the first C_Initialize that reaches the
 * ABI (directly, or by promotion from light mode: light.c), then fixed for the process's life. */
static _Atomic(CK_FUNCTION_LIST_3_0 *) abi;
/* The ABI's table once imported, and its hand-over of light mode's presence answers; under the
 * GIL. */
static CK_FUNCTION_LIST_3_0 *abi_imported;
static void (*abi_seed_presence)(int slot, int present, double checked_at, long status,
                                  const char *why);

/* Serialises getting Python ready. Held only while no GIL can be involved (starting our own
 * interpreter, or looking at the host's), so it never nests with the GIL the other way round. */
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;
static enum { PY_ABSENT, PY_READY, PY_BROKEN } python_state; /* under start_lock */

/* ------------------------------------------------------------------ fork */

/* The process's fork handling for everything the module holds, registered once, when this
 * library is loaded, in every host: start_lock; for the interpreter the loader starts, init_gate
 * and the GIL; the transport's locks and thread (when it leaves them to us: transport_api);
 * light mode's state and the ABI's reset in the child. One set in a fixed order, and nothing
 * registered later: glibc before 2.34 holds its own lock from the first prepare handler to the
 * last child handler and takes it to register one, so a later registration under a lock a
 * prepare handler waits for (the GIL during an import, say) would deadlock with a concurrent
 * fork.
 *
 * The order is start_lock, init_gate, GIL, transport. No thread waits for an earlier one while
 * it holds a later one: once an interpreter runs, start_lock is held briefly and never while
 * waiting for anything; init_gate is taken before the GIL (initialize_abi); the transport
 * never waits for the GIL. Whatever start_lock covers (starting Python, loading the transport)
 * is never half done in a child.
 *
 * The GIL, for our own interpreter only (a Python host's forks are its interpreter's business:
 * os.fork does all of this itself, and a host thread holding the GIL may be waiting for the
 * forking one). Taking it in prepare means no thread holds it mid-fork, so the child's single
 * thread can take it; PyOS_BeforeFork/AfterFork_* are what os.fork() does around fork() (import
 * lock, os.register_at_fork hooks — the ABI's among them — thread-state cleanup in the child).
 * init_gate first: a fork waits for a first initialisation in progress (initialize_abi), whose
 * imports hold module locks a child would otherwise inherit held. A thread that already holds
 * the GIL is Python code forking on our interpreter (os.fork, subprocess): Python does its own
 * part then. */
static PyGILState_STATE fork_gil;  /* these three under start_lock, from prepare to child/parent */
static int fork_takes_gil;
static const struct transport_api *fork_transport;
static pthread_mutex_t init_gate = PTHREAD_MUTEX_INITIALIZER;
/* Our own interpreter runs (set under start_lock once started). */
static int started_here;
static _Atomic(const struct transport_api *) forwarded_transport;
static void (*_Atomic abi_after_fork_child)(void);

static void before_fork(void)
{
    pthread_mutex_lock(&start_lock);
    fork_takes_gil = started_here && !py.PyGILState_Check();
    if (fork_takes_gil) {
        pthread_mutex_lock(&init_gate);
        fork_gil = py.PyGILState_Ensure();
        py.PyOS_BeforeFork();
    }
    if ((fork_transport = atomic_load(&forwarded_transport)))
        fork_transport->fork_prepare();
}

static void after_fork_in_parent(void)
{
    if (fork_transport)
        fork_transport->fork_parent();
    if (fork_takes_gil) {
        py.PyOS_AfterFork_Parent();
        py.PyGILState_Release(fork_gil);
        pthread_mutex_unlock(&init_gate);
    }
    pthread_mutex_unlock(&start_lock);
}

/* In the child this thread's state must outlive the GIL release: PyOS_AfterFork_Child deleted
 * every other thread state, and CPython 3.11 aborts when it has to create one for an
 * interpreter left with none (it reuses the initial thread state, still marked initialised).
 * So the GIL is released with PyEval_SaveThread, not PyGILState_Release, and this thread
 * state stays as the child's main one. The transport and the ABI are reset before Python's own
 * after-fork code runs (it runs the ABI's hook, which drops its pools). */
static void after_fork_in_child(void)
{
    void (*reset)(void) = atomic_load(&abi_after_fork_child);
    if (fork_transport)
        fork_transport->fork_child();
    light_after_fork_child();
    if (reset)
        reset();
    if (fork_takes_gil) {
        py.PyOS_AfterFork_Child();
        py.PyEval_SaveThread();
        pthread_mutex_unlock(&init_gate);
    }
    pthread_mutex_unlock(&start_lock);
}

__attribute__((constructor)) static void install_fork_handlers(void)
{
    pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child);
}

/* ------------------------------------------------------------------ where the wheel's Python is */

struct environment {
    char self[PATH_MAX];   /* this library, as the dynamic linker knows it */
    char site[PATH_MAX];   /* the directory holding the p11fast package */
    char base[PATH_MAX];   /* the base Python's prefix: stdlib, libpython */
    char prefix[PATH_MAX]; /* the venv, or the base prefix */
    int source_tree;       /* no installed layout: a build in place, using the build's Python */
};

static int is_file(const char *path)
{
    return access(path, R_OK) == 0;
}

/* Strips the last path component in place; "/a/b" -> "/a". */
static void up(char *path)
{
    char *slash = strrchr(path, '/');
    if (slash && slash != path)
        *slash = '\0';
    else if (slash)
        path[1] = '\0';
}

/* The `home` of a venv's pyvenv.cfg is the base Python's bin directory. */
static int venv_base(const char *cfg, char *base)
{
    char line[PATH_MAX + 32];
    int found = 0;
    FILE *f = fopen(cfg, "r");
    if (!f)
        return 0;
    while (!found && fgets(line, sizeof line, f)) {
        char *key = line + strspn(line, " \t"), *value = strchr(key, '=');
        size_t keylen = strcspn(key, " \t=");
        if (!value || keylen != 4 || strncmp(key, "home", 4) != 0)
            continue;
        value += 1 + strspn(value + 1, " \t");
        value[strcspn(value, "\r\n")] = '\0';
        for (size_t n = strlen(value); n > 1 && (value[n - 1] == ' ' || value[n - 1] == '/'); n--)
            value[n - 1] = '\0';
        if (*value && realpath(value, base)) {
            up(base);
            found = 1;
        }
    }
    fclose(f);
    return found;
}

static int has_stdlib(const char *prefix)
{
    char os_py[PATH_MAX];
    int n = snprintf(os_py, sizeof os_py, "%s/%s/os.py", prefix, P11FAST_PY_STDLIB_REL);
    return n > 0 && (size_t)n < sizeof os_py && is_file(os_py);
}

static int is_packages_dir(const char *site)
{
    const char *name = strrchr(site, '/');
    return name && (strcmp(name, "/site-packages") == 0 || strcmp(name, "/dist-packages") == 0);
}

/* Finds the Python the wheel was installed into, from this library's own path:
 * <site>/p11fast/libp11fast.so. A venv (pyvenv.cfg at most three levels above site-packages)
 * names its base Python; a plain install has site-packages at <prefix>/lib/pythonX.Y/; a
 * source tree or editable build has neither and uses the Python it was built with. */
static int find_environment(struct environment *env)
{
    Dl_info info;
    char dir[PATH_MAX], cfg[PATH_MAX + 16];
    if (!dladdr((void *)&C_GetFunctionList, &info) || !info.dli_fname ||
        strlen(info.dli_fname) >= sizeof env->self || !realpath(info.dli_fname, env->site)) {
        say("cannot find the path of libp11fast.so itself");
        return 0;
    }
    strcpy(env->self, info.dli_fname);
    up(env->site); /* the package */
    up(env->site); /* the directory holding it */

    strcpy(dir, env->site);
    for (int level = 0; level < 4; level++, up(dir)) {
        snprintf(cfg, sizeof cfg, "%s/pyvenv.cfg", dir);
        if (is_file(cfg) && venv_base(cfg, env->base) && has_stdlib(env->base)) {
            strcpy(env->prefix, dir);
            return 1;
        }
    }
    strcpy(dir, env->site);
    up(dir);
    up(dir);
    up(dir);
    env->source_tree = !(is_packages_dir(env->site) && has_stdlib(dir));
    strcpy(env->base, env->source_tree ? P11FAST_PY_BUILD_PREFIX : dir);
    strcpy(env->prefix, env->base);
    return 1;
}


static void *open_libpython(const struct environment *env, int report)
{
    char path[PATH_MAX + 64];
    const char *forced = getenv("P11FAST_LIBPYTHON");
    const char *candidates[3];
    int count = 0;
    void *handle = NULL;

    if (forced && *forced) {
        candidates[count++] = forced;
    } else {
        snprintf(path, sizeof path, "%s/lib/%s", env->base, P11FAST_PY_LDLIBRARY);
        candidates[count++] = path;
        candidates[count++] = "libpython" P11FAST_PY_VERSION ".so.1.0";
        candidates[count++] = P11FAST_PY_LDLIBRARY;
    }
    for (int i = 0; i < count && !handle; i++)
        handle = dlopen(candidates[i], RTLD_NOW | RTLD_GLOBAL);
    if (!handle && report)
        say("cannot load libpython%s (%s): install a Python %s built with --enable-shared "
            "(Debian/Ubuntu: apt install libpython%s), or set P11FAST_LIBPYTHON to its path",
            P11FAST_PY_VERSION, dlerror(), P11FAST_PY_VERSION, P11FAST_PY_VERSION);
    return handle;
}

/* ------------------------------------------------------------------ getting Python ready */

/* "3.12.1 (main, ...)" -> "3.12" */
static void major_minor(const char *version, char *out, size_t size)
{
    const char *dot = strchr(version, '.');
    size_t n = dot ? strspn(dot + 1, "0123456789") + (size_t)(dot + 1 - version) : strlen(version);
    snprintf(out, size, "%.*s", (int)n, version);
}

/* An interpreter that already runs here: ours from an earlier load, or the host's. The ABI
 * module was compiled for one Python version only. */
static int adopt(void *handle)
{
    char running[16];
    if (!resolve_core(handle))
        return 0;
    major_minor(py.Py_GetVersion(), running, sizeof running);
    if (strcmp(running, P11FAST_PY_VERSION) != 0) {
        say("this module was built for Python %s, the process runs Python %s: install p11fast "
            "into that Python and use its `p11fast module-path`",
            P11FAST_PY_VERSION, running);
        return 0;
    }
    return 1;
}

static int set_string(PyConfig *config, wchar_t **field, const char *value)
{
    PyStatus status = py.PyConfig_SetBytesString(config, field, value);
    return !py.PyStatus_Exception(status);
}

static int add_search_path(PyConfig *config, const char *path)
{
    wchar_t *wide = py.Py_DecodeLocale(path, NULL);
    int ok = wide && !py.PyStatus_Exception(
                         py.PyWideStringList_Append(&config->module_search_paths, wide));
    py.PyMem_RawFree(wide);
    return ok;
}

/* A module built in place imports its dependencies from where the building Python had them. */
static int add_build_site(PyConfig *config)
{
    char paths[] = P11FAST_PY_BUILD_SITE;
    for (char *save = NULL, *path = strtok_r(paths, ":", &save); path;
         path = strtok_r(NULL, ":", &save))
        if (!add_search_path(config, path))
            return 0;
    return 1;
}

/* The isolated pre-configuration keeps the host's locale (utf8_mode instead of setlocale and
 * C-locale coercion); the isolated configuration ignores PYTHON* variables and user site.
 * No signal handlers: the host owns its signals. No site import and an explicit search path:
 * both for start-up time and so nothing of the caller's environment is picked up. */
static int start_interpreter(const struct environment *env)
{
    PyPreConfig pre;
    PyConfig config;
    PyStatus status;
    char stdlib[PATH_MAX + 64], dynload[PATH_MAX + 96], env_site[PATH_MAX + 64],
        executable[PATH_MAX + 64];
    int ok;

    py.PyPreConfig_InitIsolatedConfig(&pre);
    pre.utf8_mode = 1;
    status = py.Py_PreInitialize(&pre);
    if (py.PyStatus_Exception(status)) {
        say("Python pre-initialisation failed: %s", status.err_msg ? status.err_msg : "?");
        return 0;
    }

    snprintf(stdlib, sizeof stdlib, "%s/%s", env->base, P11FAST_PY_STDLIB_REL);
    snprintf(dynload, sizeof dynload, "%s/lib-dynload", stdlib);
    snprintf(env_site, sizeof env_site, "%s/lib/python%s/site-packages", env->prefix,
             P11FAST_PY_VERSION);
    snprintf(executable, sizeof executable, "%s/bin/python%s", env->prefix, P11FAST_PY_VERSION);

    py.PyConfig_InitIsolatedConfig(&config);
    config.install_signal_handlers = 0;
    config.site_import = 0;
    config.write_bytecode = 0;
    config.parse_argv = 0;
    config.user_site_directory = 0;
    config.module_search_paths_set = 1;
    ok = set_string(&config, &config.program_name, "python" P11FAST_PY_VERSION) &&
         set_string(&config, &config.executable, executable) &&
         set_string(&config, &config.prefix, env->prefix) &&
         set_string(&config, &config.exec_prefix, env->prefix) &&
         set_string(&config, &config.base_prefix, env->base) &&
         set_string(&config, &config.base_exec_prefix, env->base) &&
         add_search_path(&config, env->site) && add_search_path(&config, stdlib) &&
         add_search_path(&config, dynload) &&
         (strcmp(env_site, env->site) == 0 || add_search_path(&config, env_site)) &&
         (!env->source_tree || add_build_site(&config));
    if (!ok) {
        py.PyConfig_Clear(&config);
        say("cannot configure Python for %s", env->site);
        return 0;
    }
    status = py.Py_InitializeFromConfig(&config);
    py.PyConfig_Clear(&config);
    if (py.PyStatus_Exception(status)) {
        say("Python initialisation failed (prefix %s): %s%s%s", env->base,
            status.func ? status.func : "", status.func ? ": " : "",
            status.err_msg ? status.err_msg : "?");
        return 0;
    }
    /* Release the GIL taken by initialisation, so any host thread can take it. */
    py.PyEval_SaveThread();
    return 1;
}

/* Our interpreter lives as long as the process; a host's dlclose must not unmap the code its
 * fork handlers point to. A later dlopen then finds this same copy, already initialised. */
static void stay_loaded(const struct environment *env)
{
    if (!dlopen(env->self, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE))
        say("cannot pin libp11fast.so in memory: %s", dlerror());
}

/* Where this library's Python is: the same for the whole process, so found once (light mode
 * and the start of Python both need it); under start_lock. */
static const struct environment *environment(void)
{
    static struct environment env;
    static int found;
    if (!found)
        found = find_environment(&env);
    return found ? &env : NULL;
}

static CK_RV start_python_locked(void)
{
    const struct environment *env;
    void *running = dlsym(RTLD_DEFAULT, "Py_IsInitialized");
    void *handle;

    if (running && ((int (*)(void))running)())
        return adopt(RTLD_DEFAULT) ? CKR_OK : CKR_GENERAL_ERROR;

    if (!(env = environment()) || !(handle = open_libpython(env, 1)))
        return CKR_GENERAL_ERROR;
    if (!resolve_core(handle))
        return CKR_GENERAL_ERROR;
    /* The same libpython may already run here, loaded privately (RTLD_LOCAL) by someone else. */
    if (py.Py_IsInitialized())
        return adopt(handle) ? CKR_OK : CKR_GENERAL_ERROR;
    if (!resolve_embed(handle))
        return CKR_GENERAL_ERROR;

    python_state = PY_BROKEN; /* a failed start cannot be retried in this process */
    if (!start_interpreter(env))
        return CKR_GENERAL_ERROR;
    stay_loaded(env);
    started_here = 1;
    return CKR_OK;
}

static CK_RV start_python(void)
{
    CK_RV rv;
    pthread_mutex_lock(&start_lock);
    if (python_state == PY_READY)
        rv = CKR_OK;
    else if (python_state == PY_BROKEN)
        rv = CKR_GENERAL_ERROR;
    else if ((rv = start_python_locked()) == CKR_OK)
        python_state = PY_READY;
    pthread_mutex_unlock(&start_lock);
    return rv;
}

/* Logs the pending Python exception on one line, and clears it. */
static void say_python_error(const char *what)
{
    PyObject *type, *value, *traceback, *repr = NULL;
    const char *text = NULL;
    py.PyErr_Fetch(&type, &value, &traceback);
    if (value && (repr = py.PyObject_Repr(value)))
        text = py.PyUnicode_AsUTF8(repr);
    say("%s: %s", what, text ? text : "unknown Python error");
    py.PyErr_Clear();
    if (repr)
        py.Py_DecRef(repr);
    if (type)
        py.Py_DecRef(type);
    if (value)
        py.Py_DecRef(value);
    if (traceback)
        py.Py_DecRef(traceback);
}

static void *capsule(PyObject *module, const char *attribute, const char *name)
{
    PyObject *object = py.PyObject_GetAttrString(module, attribute);
    void *pointer = object ? py.PyCapsule_GetPointer(object, name) : NULL;
    if (object)
        py.Py_DecRef(object);
    return pointer;
}

/* A host's own interpreter may not have this library's package on its path (a build in place,
 * a ctypes script elsewhere): the package next to this library is the one to use, so its
 * directory goes at the end of sys.path, where it shadows nothing the host already imports. */
static PyObject *import_abi(void)
{
    char site[PATH_MAX];
    PyObject *module = py.PyImport_ImportModule(ABI_MODULE), *path, *entry;
    if (module || !package_dir(site, sizeof site))
        return module;
    up(site);
    path = py.PySys_GetObject("path");
    entry = py.PyUnicode_DecodeFSDefault(site);
    if (!path || !entry || py.PyList_Append(path, entry) != 0) {
        if (entry)
            py.Py_DecRef(entry);
        return NULL;
    }
    py.Py_DecRef(entry);
    py.PyErr_Clear();
    return py.PyImport_ImportModule(ABI_MODULE);
}

/* The interpreter is ours, so nothing but the ABI runs in it: the ABI takes over what a Python
 * host would own (the own_interpreter capsule, optional). */
static void own_interpreter(PyObject *module)
{
    void (*take)(void) = (void (*)(void))capsule(module, "own_interpreter", OWN_CAPSULE);
    if (take)
        take();
    else
        py.PyErr_Clear();
}

/* Imports the ABI under the GIL, which also serialises concurrent first calls. */
static CK_FUNCTION_LIST_3_0 *load_abi(CK_RV *rv)
{
    PyGILState_STATE gil = py.PyGILState_Ensure();
    CK_FUNCTION_LIST_3_0 *table;
    if (!abi_imported) {
        PyObject *module = import_abi();
        table = module ? capsule(module, "function_table", TABLE_CAPSULE) : NULL;
        if (!table) {
            say_python_error(module ? "p11fast._abi has no usable function_table capsule"
                                    : "cannot import p11fast._abi (is p11fast installed into "
                                      "this Python?)");
        } else {
            *(void **)&abi_seed_presence = capsule(module, "seed_presence", SEED_CAPSULE);
            if (!abi_seed_presence)
                py.PyErr_Clear();
            /* optional: an ABI without fork state needs no reset */
            void (*reset)(void) = (void (*)(void))capsule(module, "after_fork_child", FORK_CAPSULE);
            if (!reset)
                py.PyErr_Clear();
            atomic_store(&abi_after_fork_child, reset);
            abi_imported = table;
            if (started_here)
                own_interpreter(module);
        }
        if (module)
            py.Py_DecRef(module);
    }
    table = abi_imported;
    py.PyGILState_Release(gil);
    *rv = table ? CKR_OK : CKR_GENERAL_ERROR;
    return table;
}

CK_FUNCTION_LIST_3_0 *initialize_abi(CK_VOID_PTR args, CK_RV *rv)
{
    CK_FUNCTION_LIST_3_0 *table = NULL;
    if ((*rv = start_python()) != CKR_OK)
        return NULL;
    /* Before the ABI's import would (when it cannot be, that import fails and says why): its
     * fork handling is then ours. */
    transport_api();
    if (started_here)
        pthread_mutex_lock(&init_gate);
    if ((table = load_abi(rv)))
        *rv = table->C_Initialize(args);
    if (started_here)
        pthread_mutex_unlock(&init_gate);
    return table;
}

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
    snprintf(path, sizeof path, "%s/_transport%s", dir, P11FAST_PY_EXT_SUFFIX);
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
    if ((forwarded = api.init()) < 0)
        return NULL;
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

void publish_abi(CK_FUNCTION_LIST_3_0 *table)
{
    atomic_store_explicit(&abi, table, memory_order_release);
}

void seed_presence(int slot, int present, double checked_at, long status, const char *why)
{
    if (abi_seed_presence)
        abi_seed_presence(slot, present, checked_at, status, why);
}

CK_FUNCTION_LIST_3_0 *published_abi(void)
{
    return atomic_load_explicit(&abi, memory_order_acquire);
}

int package_dir(char *out, unsigned long size)
{
    Dl_info info;
    char real[PATH_MAX];
    if (!dladdr((void *)&C_GetFunctionList, &info) || !info.dli_fname ||
        !realpath(info.dli_fname, real) || strlen(real) >= size)
        return 0;
    up(real);
    strcpy(out, real);
    return 1;
}

int libpython_loaded_idle(void)
{
    const struct environment *env;
    void *running = dlsym(RTLD_DEFAULT, "Py_IsInitialized"), *handle;
    int (*initialized)(void);
    int idle;
    if (running && ((int (*)(void))running)())
        return 0;
    pthread_mutex_lock(&start_lock);
    idle = python_state == PY_ABSENT && (env = environment()) &&
           (handle = open_libpython(env, 0)) &&
           (*(void **)&initialized = dlsym(handle, "Py_IsInitialized")) && !initialized();
    pthread_mutex_unlock(&start_lock);
    return idle;
}

/* ------------------------------------------------------------------ the exported tables */

EXPORT CK_RV C_Initialize(CK_VOID_PTR pInitArgs)
{
    CK_FUNCTION_LIST_3_0 *table = published_abi();
    CK_RV rv;
    if (!table) {
        if (light_initialize(pInitArgs, &rv))
            return rv;
        /* Published whatever C_Initialize answered: it is the ABI's to answer from now on. */
        if ((table = initialize_abi(pInitArgs, &rv)))
            publish_abi(table);
        return rv;
    }
    return table->C_Initialize(pInitArgs);
}

/* Every other function forwards: one template, expanded over pkcs11f.h. Before the ABI is
 * published there is nothing to forward to, which is exactly "not initialised" unless light
 * mode is on: then the call promotes it. Each is also exported under its own name, for hosts
 * that look functions up with dlsym. */
#define FORWARD(name, params, args)                                                 \
    EXPORT CK_RV name params                                                        \
    {                                                                               \
        CK_RV rv;                                                                   \
        CK_FUNCTION_LIST_3_0 *table = published_abi();                              \
        if (!table)                                                                 \
            table = light_promote(&rv);                                             \
        else if (atomic_load_explicit(&early_unconfirmed, memory_order_relaxed))    \
            atomic_store_explicit(&early_unconfirmed, 0, memory_order_relaxed);     \
        return table ? table->name args : rv;                                       \
    }

/* The functions light mode answers: from the snapshot while it is on, else forwarded. */
#define LIGHT(name, light_call, forward_args)                                       \
    {                                                                               \
        CK_RV rv;                                                                   \
        CK_FUNCTION_LIST_3_0 *table = published_abi();                              \
        if (!table && light_call)                                                   \
            return rv;                                                              \
        table = table ? table : published_abi();                                    \
        return table ? table->name forward_args : CKR_CRYPTOKI_NOT_INITIALIZED;     \
    }

EXPORT CK_RV C_Finalize(CK_VOID_PTR pReserved)
{
    CK_RV rv;
    CK_FUNCTION_LIST_3_0 *table = published_abi();
    if (!table && light_finalize(pReserved, &rv))
        return rv;
    table = table ? table : published_abi();
    if (!table)
        return CKR_CRYPTOKI_NOT_INITIALIZED;
    if ((rv = table->C_Finalize(pReserved)) == CKR_OK)
        light_after_finalize();
    return rv;
}

EXPORT CK_RV C_GetInfo(CK_INFO_PTR pInfo)
LIGHT(C_GetInfo, light_get_info(pInfo, &rv), (pInfo))

EXPORT CK_RV C_GetSlotList(CK_BBOOL tokenPresent, CK_SLOT_ID_PTR pSlotList, CK_ULONG_PTR pulCount)
LIGHT(C_GetSlotList, light_get_slot_list(tokenPresent, pSlotList, pulCount, &rv),
      (tokenPresent, pSlotList, pulCount))

EXPORT CK_RV C_GetSlotInfo(CK_SLOT_ID slotID, CK_SLOT_INFO_PTR pInfo)
LIGHT(C_GetSlotInfo, light_get_slot_info(slotID, pInfo, &rv), (slotID, pInfo))

EXPORT CK_RV C_GetTokenInfo(CK_SLOT_ID slotID, CK_TOKEN_INFO_PTR pInfo)
LIGHT(C_GetTokenInfo, light_get_token_info(slotID, pInfo, &rv), (slotID, pInfo))

/* The four functions the loader answers itself, and the five light mode may answer. For them
 * SKIP_x expands to a leading "~," so PICK's second argument becomes the local choice (no
 * trampoline); for every other name it stays a single unknown token and PICK yields the
 * trampoline. LOCAL_x works the same way for the table entries. */
#define LOCAL_C_Initialize ~, C_Initialize
#define LOCAL_C_GetFunctionList ~, C_GetFunctionList
#define LOCAL_C_GetInterfaceList ~, C_GetInterfaceList
#define LOCAL_C_GetInterface ~, C_GetInterface
#define SKIP_C_Initialize ~,
#define SKIP_C_GetFunctionList ~,
#define SKIP_C_GetInterfaceList ~,
#define SKIP_C_GetInterface ~,
#define SKIP_C_Finalize ~,
#define SKIP_C_GetInfo ~,
#define SKIP_C_GetSlotList ~,
#define SKIP_C_GetSlotInfo ~,
#define SKIP_C_GetTokenInfo ~,
#define PICK(...) PICK_(__VA_ARGS__)
#define PICK_(probe, chosen, ...) chosen

#define CK_PKCS11_FUNCTION_INFO(name, params, args) PICK(SKIP_##name, FORWARD(name, params, args), ~)
#include "pkcs11f.h"
#undef CK_PKCS11_FUNCTION_INFO

#define CK_PKCS11_FUNCTION_INFO(name, params, args) PICK(LOCAL_##name, name, ~),

/* C_GetInfo reports the version of the list the application holds: the ABI answers 2.40,
 * what C_GetFunctionList hands out; through the 3.0 interface it is 3.0. */
static CK_RV get_info_3_0(CK_INFO_PTR pInfo)
{
    CK_RV rv = C_GetInfo(pInfo);
    if (rv == CKR_OK) {
        pInfo->cryptokiVersion.major = 3;
        pInfo->cryptokiVersion.minor = 0;
    }
    return rv;
}

static CK_FUNCTION_LIST_3_0 list_3_0 = {
    {3, 0},
#include "pkcs11f.h"
};

#define CK_PKCS11_2_0_ONLY 1
static CK_FUNCTION_LIST list_2_40 = {
    {2, 40},
#include "pkcs11f.h"
};
#undef CK_PKCS11_2_0_ONLY
#undef CK_PKCS11_FUNCTION_INFO

/* The first is the default interface. No CKF_INTERFACE_FORK_SAFE: a forked child must call
 * C_Initialize again. */
static CK_INTERFACE interfaces[] = {
    {(CK_CHAR *)"PKCS 11", &list_3_0, 0},
    {(CK_CHAR *)"PKCS 11", &list_2_40, 0},
};
#define INTERFACE_COUNT (sizeof interfaces / sizeof interfaces[0])

__attribute__((constructor)) static void use_3_0_info(void)
{
    list_3_0.C_GetInfo = get_info_3_0;
}

EXPORT CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR ppFunctionList)
{
    if (!ppFunctionList)
        return CKR_ARGUMENTS_BAD;
    *ppFunctionList = &list_2_40;
    return CKR_OK;
}

EXPORT CK_RV C_GetInterfaceList(CK_INTERFACE_PTR pInterfacesList, CK_ULONG_PTR pulCount)
{
    CK_ULONG capacity;
    if (!pulCount)
        return CKR_ARGUMENTS_BAD;
    capacity = *pulCount;
    *pulCount = INTERFACE_COUNT;
    if (!pInterfacesList)
        return CKR_OK;
    if (capacity < INTERFACE_COUNT)
        return CKR_BUFFER_TOO_SMALL;
    memcpy(pInterfacesList, interfaces, sizeof interfaces);
    return CKR_OK;
}

EXPORT CK_RV C_GetInterface(CK_UTF8CHAR_PTR pInterfaceName, CK_VERSION_PTR pVersion,
                            CK_INTERFACE_PTR_PTR ppInterface, CK_FLAGS flags)
{
    if (!ppInterface)
        return CKR_ARGUMENTS_BAD;
    for (size_t i = 0; i < INTERFACE_COUNT; i++) {
        const CK_VERSION *version = interfaces[i].pFunctionList; /* each list starts with it */
        if (pInterfaceName &&
            strcmp((const char *)pInterfaceName, (const char *)interfaces[i].pInterfaceName) != 0)
            continue;
        if (pVersion && (pVersion->major != version->major || pVersion->minor != version->minor))
            continue;
        if ((interfaces[i].flags & flags) != flags)
            continue;
        *ppInterface = &interfaces[i];
        return CKR_OK;
    }
    *ppInterface = NULL;
    return CKR_ARGUMENTS_BAD;
}
