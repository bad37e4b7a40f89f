/* Test scaffolding: a stand-in for p11fast._abi with the loader contract of
 * docs/architecture.md — a CK_FUNCTION_LIST_3_0 in the capsule "p11fast._abi.function_table"
 * and a void (*)(void) in "p11fast._abi.after_fork_child".
 *
 * C_Initialize/C_Finalize keep the standard's initialised state; C_GetInfo needs the GIL (it
 * asks Python for os.getpid()), so a host can tell that Python works on its thread or in its
 * forked child; after_fork_child forgets the initialisation, as the real ABI does. Every other
 * function answers CKR_FUNCTION_NOT_SUPPORTED.
 */
#include <Python.h>

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "pkcs11.h"

static atomic_int initialized;

#define CK_PKCS11_FUNCTION_INFO(name, params, args) \
    static CK_RV unsupported_##name params { return CKR_FUNCTION_NOT_SUPPORTED; }
#include "pkcs11f.h"
#undef CK_PKCS11_FUNCTION_INFO

static CK_RV fake_initialize(CK_VOID_PTR args)
{
    int expected = 0;
    (void)args;
    return atomic_compare_exchange_strong(&initialized, &expected, 1)
               ? CKR_OK
               : CKR_CRYPTOKI_ALREADY_INITIALIZED;
}

static CK_RV fake_finalize(CK_VOID_PTR reserved)
{
    (void)reserved;
    return atomic_exchange(&initialized, 0) ? CKR_OK : CKR_CRYPTOKI_NOT_INITIALIZED;
}

/* manufacturerID "fake-abi", libraryDescription the pid as Python's os.getpid() sees it. */
static CK_RV fake_get_info(CK_INFO_PTR info)
{
    PyGILState_STATE gil;
    PyObject *os, *pid;
    long value = -1;
    if (!atomic_load(&initialized))
        return CKR_CRYPTOKI_NOT_INITIALIZED;
    gil = PyGILState_Ensure();
    if ((os = PyImport_ImportModule("os"))) {
        if ((pid = PyObject_CallMethod(os, "getpid", NULL))) {
            value = PyLong_AsLong(pid);
            Py_DECREF(pid);
        }
        Py_DECREF(os);
    }
    PyErr_Clear();
    PyGILState_Release(gil);
    memset(info, ' ', sizeof *info);
    info->cryptokiVersion.major = 3;
    info->cryptokiVersion.minor = 0;
    memcpy(info->manufacturerID, "fake-abi", 8);
    snprintf((char *)info->libraryDescription, sizeof info->libraryDescription, "%ld", value);
    info->flags = 0;
    return value < 0 ? CKR_GENERAL_ERROR : CKR_OK;
}

static void fake_after_fork_child(void)
{
    atomic_store(&initialized, 0);
}

#define CK_PKCS11_FUNCTION_INFO(name, params, args) unsupported_##name,
static CK_FUNCTION_LIST_3_0 table = {
    {3, 0},
#include "pkcs11f.h"
};
#undef CK_PKCS11_FUNCTION_INFO

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "p11fast._abi", NULL, -1, NULL};

PyMODINIT_FUNC PyInit__abi(void)
{
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    table.C_Initialize = fake_initialize;
    table.C_Finalize = fake_finalize;
    table.C_GetInfo = fake_get_info;
    if (PyModule_AddObject(m, "function_table",
                           PyCapsule_New(&table, "p11fast._abi.function_table", NULL)) < 0 ||
        PyModule_AddObject(m, "after_fork_child",
                           PyCapsule_New((void *)fake_after_fork_child,
                                         "p11fast._abi.after_fork_child", NULL)) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
