/* Getting Python ready and the ABI imported: the host's interpreter adopted or our own started
 * (isolated, with the wheel's environment: environment.c), p11fast._abi imported and its
 * CK_FUNCTION_LIST_3_0 and hand-over functions taken from capsules, and its C_Initialize
 * called (initialize_abi). Also whether light mode can load the transport without starting
 * Python (python_idle). python.h has why every C-API call goes through dlsym. */
#include "python.h" /* first: Python.h sets the feature macros (_GNU_SOURCE) used below */

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pkcs11.h"

#define ABI_MODULE "p11fast._abi"
#define TABLE_CAPSULE ABI_MODULE ".function_table"
#define OWN_CAPSULE ABI_MODULE ".own_interpreter"
#define FORK_CAPSULE ABI_MODULE ".after_fork_child"
#define SEED_CAPSULE ABI_MODULE ".seed_presence"

struct python_api py;

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

/* The ABI's table once imported, and its hand-over of light mode's presence answers; under the
 * GIL. */
static CK_FUNCTION_LIST_3_0 *abi_imported;
static void (*abi_seed_presence)(int slot, int present, double checked_at, long status,
                                  const char *why);
void (*_Atomic abi_after_fork_child)(void);

pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;
static enum { PY_ABSENT, PY_READY, PY_BROKEN } python_state; /* under start_lock */
int started_here;

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

static CK_RV start_python_locked(void)
{
    const struct environment *env;
    void *running = dlsym(RTLD_DEFAULT, "Py_IsInitialized");
    void *handle;

    if (running && ((int (*)(void))running)())
        return adopt(RTLD_DEFAULT) ? CKR_OK : CKR_GENERAL_ERROR;

    if (!(env = environment()) || !(handle = open_libpython(env, 1, 0)))
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
    path_up(site);
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
    /* The transport's set-up, before the ABI's import would do it (when the extension cannot be
     * loaded, that import fails and says why): its fork handling is then ours. */
    transport_api();
    if (started_here)
        pthread_mutex_lock(&init_gate);
    if ((table = load_abi(rv)))
        *rv = table->C_Initialize(args);
    if (started_here)
        pthread_mutex_unlock(&init_gate);
    return table;
}


void seed_presence(int slot, int present, double checked_at, long status, const char *why)
{
    if (abi_seed_presence)
        abi_seed_presence(slot, present, checked_at, status, why);
}

static int runs_python(void *py_is_initialized)
{
    return py_is_initialized && ((int (*)(void))py_is_initialized)();
}

int python_idle(int load)
{
    const struct environment *env;
    void *handle = NULL;
    int idle;
    if (runs_python(dlsym(RTLD_DEFAULT, "Py_IsInitialized")))
        return 0;
    pthread_mutex_lock(&start_lock);
    idle = python_state == PY_ABSENT && (env = environment());
    if (idle && (handle = open_libpython(env, 0, load ? 0 : RTLD_NOLOAD)))
        idle = !runs_python(dlsym(handle, "Py_IsInitialized"));
    else if (idle)
        idle = !load;
    /* RTLD_NOLOAD took a reference to a library someone else loaded: ours to give back. */
    if (handle && !load)
        dlclose(handle);
    pthread_mutex_unlock(&start_lock);
    return idle;
}
