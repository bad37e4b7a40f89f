"""Builds only p11fast._transport in place, with setup.py's flags (other extensions may be
unfinished while the transport is being worked on). `python tests/transport/build.py`."""

import os
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build() -> None:
    from Cython.Build import cythonize
    from setuptools import Extension, setup

    libs = shlex.split(subprocess.check_output(["curl-config", "--libs"], text=True))
    cflags = shlex.split(subprocess.check_output(["curl-config", "--cflags"], text=True))
    ext = Extension(
        "p11fast._transport",
        ["p11fast/_transport.pyx"],
        include_dirs=[os.path.join(ROOT, "include"), ROOT],
        extra_compile_args=["-Wall", "-Wno-unused-function", "-fvisibility=hidden", "-O2"] + cflags,
        libraries=["curl", "ssl", "crypto"],
        extra_link_args=libs,
    )
    directives = {
        "language_level": 3,
        "boundscheck": False,
        "wraparound": False,
        "initializedcheck": False,
        "cdivision": True,
    }
    os.chdir(ROOT)
    setup(
        name="p11fast-transport",
        ext_modules=cythonize([ext], compiler_directives=directives),
        script_args=["build_ext", "--inplace"],
    )


if __name__ == "__main__":
    sys.exit(build())
