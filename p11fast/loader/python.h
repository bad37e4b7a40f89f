/* What the loader's Python parts share: the C-API pointers (resolved by python.c), the locks
 * around starting Python and forking, and where this library's Python is (environment.c).
 * python.c, environment.c, fork.c and transport.c include it; light.c and the trampolines
 * (loader.c) need none of it and see only loader.h.
 *
 * This library is not linked against libpython: one build serves hosts without Python and
 * Python hosts alike, and a host's Python of another version gets a clear error instead of a
 * second interpreter. Python.h is included for the layouts of PyConfig, PyPreConfig and
 * PyStatus (which differ between Python versions; the wheel is built per version) and for
 * PyGILState_STATE; every C-API call goes through a pointer from dlsym. */
#ifndef P11FAST_LOADER_PYTHON_H
#define P11FAST_LOADER_PYTHON_H

#include <Python.h> /* first: pyconfig.h sets the feature macros (_GNU_SOURCE) used below */

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>

#include "loader.h"

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
struct python_api {
    PY_CORE_API(PY_POINTER)
    PY_EMBED_API(PY_POINTER)
};
#undef PY_POINTER

/* python.c: the core part once an interpreter is found, the embedding part once we start ours. */
extern struct python_api py;

/* python.c: serialises getting Python ready. Held only while no GIL can be involved (starting
 * our own interpreter, or looking at the host's), so it never nests with the GIL the other way
 * round. */
extern pthread_mutex_t start_lock;
/* python.c: our own interpreter runs (set under start_lock once started). */
extern int started_here;
/* python.c: the ABI's reset for a forked child, once the ABI is imported (NULL: none). */
extern void (*_Atomic abi_after_fork_child)(void);
/* fork.c: a fork waits for a first initialisation in progress (initialize_abi). */
extern pthread_mutex_t init_gate;
/* transport.c: the transport, once loaded, when it left its fork handling to the loader. */
extern _Atomic(const struct transport_api *) forwarded_transport;

/* environment.c: where this library's Python is. */
struct environment {
    char self[PATH_MAX];   /* this library, as the dynamic linker knows it */
    char site[PATH_MAX];   /* the directory holding the p11fast package */
    char base[PATH_MAX];   /* the base Python's prefix: stdlib, libpython */
    char prefix[PATH_MAX]; /* the venv, or the base prefix */
    int source_tree;       /* no installed layout: a build in place, using the build's Python */
};

/* The same for the whole process, so found once (light mode and the start of Python both need
 * it); under start_lock. NULL (said) when this library cannot find itself. */
const struct environment *environment(void);
/* libpython, loaded RTLD_GLOBAL; NULL when it cannot be, said when `report`. */
/* flags: 0, or RTLD_NOLOAD to find it only if someone already loaded it. */
void *open_libpython(const struct environment *env, int report, int flags);
/* Strips the last path component in place; "/a/b" -> "/a". */
void path_up(char *path);

#endif
