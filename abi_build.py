"""The ABI's entry points and function table, written from include/pkcs11f.h into
p11fast/_entry_points.pxi (included by p11fast/abi/entry.pyx; not in git).

setup.py calls `write()` before cythonize; `python abi_build.py` does the same by hand. The
file is written only when its text changes, so an unchanged header rebuilds nothing.

For every function of pkcs11f.h (an X-macro: name, parameters, argument names), C_Name gets:
- its signature from the header, and the initialisation check (CKR_CRYPTOKI_NOT_INITIALIZED)
  unless it is in NO_INIT_CHECK;
- a call to the implementation a piece's .pxd declares under the snake-case name
  (C_FindObjectsInit: c_find_objects_init), with the same arguments. Two shapes:
  - `cdef CK_RV name(<the parameters>) noexcept nogil`: C_Name returns what it returns;
  - `cdef CK_RV name(call_t *call, <the parameters>) except *`: the cold path. C_Name runs the
    piece's `name_check(call_t *call, <the parameters>) noexcept nogil` (if declared) without
    the GIL — an answer other than CKR_OK is returned as is — then `name` with the GIL, where
    any exception becomes `rv_for(exc, b"C_Name")`, then `name_finish(call_t *call, CK_RV rv,
    <the parameters>) noexcept nogil` (if declared) without the GIL, whose answer is returned;
- a typed assignment into CK_FUNCTION_LIST_3_0 (fill_table), whose member types are declared
  from the same header: Cython checks each function against them, the C compiler against
  include/pkcs11.h's own (setup.py makes a mismatch an error).
"""

from __future__ import annotations

import glob
import os
import re

from mechanisms_build import write_if_changed

HERE = os.path.dirname(os.path.abspath(__file__))
HEADER = os.path.join(HERE, "include", "pkcs11f.h")
PIECES = os.path.join(HERE, "p11fast", "abi")
TARGET = os.path.join(HERE, "p11fast", "_entry_points.pxi")
# No initialisation check: C_Initialize starts it, C_Finalize answers a forked child that
# inherited it, and the loader answers the interface functions itself before and after.
NO_INIT_CHECK = {
    "C_Initialize",
    "C_Finalize",
    "C_GetFunctionList",
    "C_GetInterfaceList",
    "C_GetInterface",
}
ENTRY = re.compile(r"CK_PKCS11_FUNCTION_INFO\((\w+),\s*\((.*?)\),\s*\((.*?)\)\)", re.S)
DECLARED = re.compile(r"^cdef (?:inline )?CK_RV (\w+)\(\s*(call_t \*)?", re.M)


def functions(header: str = HEADER) -> list[tuple[str, str, str]]:
    """(name, parameters, arguments) of each function, in the header's (the table's) order."""
    with open(header, encoding="utf-8") as f:
        text = re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)
    return [
        (name, " ".join(params.split()), " ".join(args.split()))
        for name, params, args in ENTRY.findall(text)
    ]


def impl_name(name: str) -> str:
    """C_FindObjectsInit: c_find_objects_init."""
    return "c_" + re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name[len("C_") :]).lower()


def declarations(pieces: str = PIECES) -> dict[str, bool]:
    """Every CK_RV function the pieces' .pxd files declare: name -> takes a call_t first."""
    found: dict[str, bool] = {}
    for path in sorted(glob.glob(os.path.join(pieces, "*.pxd"))):
        with open(path, encoding="utf-8") as f:
            for name, call in DECLARED.findall(f.read()):
                found[name] = bool(call)
    return found


def wrapper(name: str, params: str, args: str, declared: dict[str, bool]) -> str:
    impl = impl_name(name)
    if impl not in declared:
        raise SystemExit(f"abi_build: no piece of p11fast/abi declares {impl}() for {name}")
    check = (
        ""
        if name in NO_INIT_CHECK
        else ("    if not p11f_is_initialized():\n        return CKR_CRYPTOKI_NOT_INITIALIZED\n")
    )
    head = f"cdef CK_RV {name}({params}) noexcept nogil:\n"
    if not declared[impl]:
        return head + check + f"    return {impl}({args})\n"
    call_args = f"(&call, {args})"
    body = "    cdef call_t call\n    cdef CK_RV rv\n" + check
    body += "    call.handle = 0\n    call.slot = -1\n    call.flags = 0\n"
    if f"{impl}_check" in declared:
        body += f"    rv = {impl}_check{call_args}\n    if rv != CKR_OK:\n        return rv\n"
    body += (
        "    with gil:\n        try:\n"
        f"            rv = {impl}{call_args}\n"
        "        except BaseException as exc:\n"
        f'            rv = rv_for(exc, b"{name}")\n'
    )
    if f"{impl}_finish" in declared:
        return head + body + f"    return {impl}_finish(&call, rv, {args})\n"
    return head + body + "    return rv\n"


def render() -> str:
    table = functions()
    declared = declarations()
    types = "".join(
        f"    ctypedef CK_RV (*CK_{name})({params}) noexcept nogil\n" for name, params, _ in table
    )
    members = "".join(f"        CK_{name} {name}\n" for name, _, _ in table)
    fill = "".join(f"    t.{name} = {name}\n" for name, _, _ in table)
    wrappers = "\n\n".join(wrapper(name, params, args, declared) for name, params, args in table)
    return (
        "# Generated by abi_build.py from include/pkcs11f.h: change the header or the pieces, "
        "not this.\n\n"
        'cdef extern from "pkcs11.h":\n'
        f"{types}\n"
        "    ctypedef struct CK_FUNCTION_LIST_3_0:\n"
        "        CK_VERSION version\n"
        f"{members}\n\n"
        f"{wrappers}\n\n"
        "cdef void fill_table(CK_FUNCTION_LIST_3_0 *t) noexcept nogil:\n"
        "    t.version.major = 3\n"
        "    t.version.minor = 0\n"
        f"{fill}"
    )


def write(target: str = TARGET) -> bool:
    """Writes the .pxi if its text changed; True when it did."""
    return write_if_changed(target, render())


if __name__ == "__main__":
    print(f"{TARGET}: {'written' if write() else 'unchanged'}")
