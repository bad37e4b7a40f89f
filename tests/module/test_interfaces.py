"""C_GetInfo reports the version of the function list the application got."""

from __future__ import annotations

import json

from tests.module.conftest import run_python

VERSIONS = r"""
import ctypes, json, sys

class Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_ubyte), ("minor", ctypes.c_ubyte)]

class Info(ctypes.Structure):
    _fields_ = [("cryptokiVersion", Version), ("manufacturerID", ctypes.c_char * 32),
                ("flags", ctypes.c_ulong), ("libraryDescription", ctypes.c_char * 32),
                ("libraryVersion", Version)]

class Interface(ctypes.Structure):
    _fields_ = [("pInterfaceName", ctypes.c_char_p), ("pFunctionList", ctypes.c_void_p),
                ("flags", ctypes.c_ulong)]

GET_INFO = ctypes.CFUNCTYPE(ctypes.c_ulong, ctypes.POINTER(Info))

def info_version(function_list):
    entry = ctypes.cast(function_list, ctypes.POINTER(ctypes.c_void_p))[1 + 2]  # C_GetInfo
    info = Info()
    assert GET_INFO(entry)(ctypes.byref(info)) == 0
    return f"{info.cryptokiVersion.major}.{info.cryptokiVersion.minor}"

lib = ctypes.CDLL(sys.argv[1])
assert lib.C_Initialize(None) == 0
list_2_40 = ctypes.c_void_p()
assert lib.C_GetFunctionList(ctypes.byref(list_2_40)) == 0
interface = ctypes.POINTER(Interface)()
assert lib.C_GetInterface(None, None, ctypes.byref(interface), 0) == 0
print(json.dumps({"function_list": info_version(list_2_40),
                  "default_interface": info_version(interface.contents.pFunctionList)}))
lib.C_Finalize(None)
"""


def test_info_version_follows_the_list_in_use(module_path, hsm):
    done = run_python(VERSIONS, hsm.config_path, module_path)
    assert done.returncode == 0, done.stderr
    versions = json.loads(done.stdout.strip().splitlines()[-1])
    assert versions == {"function_list": "2.40", "default_interface": "3.0"}
