"""The loader's compile command, shared by setup.py and the loader tests.

The loader is plain C, built per Python version: the defines tell it which libpython to open
and where the building interpreter keeps its standard library and packages."""

from __future__ import annotations

import os
import sys
import sysconfig

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = [os.path.join(HERE, "p11fast", "loader", name)
           for name in ("loader.c", "light.c", "snapshot.c")]  # fmt: skip
INCLUDE = os.path.join(HERE, "include")
HEADERS = [os.path.join(INCLUDE, name) for name in ("pkcs11.h", "pkcs11t.h", "pkcs11f.h")]


def build_site() -> str:
    """Where the building interpreter finds its packages: the fallback for a module used from a
    source tree (built in place) rather than from an installed wheel."""
    return os.pathsep.join(
        dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    )


def defines() -> list[str]:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stdlib_rel = os.path.relpath(sysconfig.get_path("stdlib"), sys.base_prefix)
    return [
        f'-DP11FAST_PY_VERSION="{version}"',
        f'-DP11FAST_PY_LDLIBRARY="{sysconfig.get_config_var("LDLIBRARY")}"',
        f'-DP11FAST_PY_BUILD_PREFIX="{sys.base_prefix}"',
        f'-DP11FAST_PY_STDLIB_REL="{stdlib_rel}"',
        f'-DP11FAST_PY_BUILD_SITE="{build_site()}"',
        f'-DP11FAST_PY_EXT_SUFFIX="{sysconfig.get_config_var("EXT_SUFFIX")}"',
    ]


def command(target: str, cflags: list[str], cc: list[str] | None = None) -> list[str]:
    # Python.h only for the layouts of PyConfig and friends: every C-API call goes through dlsym,
    # so the library is not linked against libpython.
    python_include = sysconfig.get_paths()["include"]
    return (
        (cc or ["cc"])
        + cflags
        + [
            "-fPIC",
            "-shared",
            "-std=c11",
            f"-I{INCLUDE}",
            f"-I{HERE}",  # the transport's C API by its path in the tree (p11fast/transport/capi.h)
            f"-I{python_include}",
            *defines(),
            *SOURCES,
            "-o",
            target,
            # The C_* names we export are also exported by other PKCS #11 libraries a host may
            # have loaded globally (libp11-kit, which GnuTLS brings along with Debian's libcurl):
            # our own references (the function tables, dladdr on C_GetFunctionList) must bind
            # to our definitions, not to the first library in the process that has the name.
            "-Wl,-Bsymbolic",
            "-ldl",
            "-lpthread",
        ]
    )
