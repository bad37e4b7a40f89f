"""Build: the C loader `p11fast/libp11fast.so` and the Cython extensions.

Switches (environment variables):
  P11FAST_DEBUG=1      -O0 -g and invariant checks (`P11FAST_DEBUG` macro)
  P11FAST_ANNOTATE=1   Cython HTML annotation next to each .pyx
  P11FAST_CURL_CONFIG  the curl-config to ask for libcurl's flags (default: curl-config)
"""

import os
import shlex
import subprocess
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import loader_build  # noqa: E402  (beside this file, not installed)

HERE = os.path.dirname(os.path.abspath(__file__))
INCLUDE = os.path.join(HERE, "include")
DEBUG = os.environ.get("P11FAST_DEBUG") == "1"
CURL_MIN = (7, 74, 0)  # CURLOPT_DOH_*, curl_easy_send/recv with CONNECT_ONLY, CURLINFO_ACTIVESOCKET


def curl_flags() -> tuple[list[str], list[str]]:
    tool = os.environ.get("P11FAST_CURL_CONFIG", "curl-config")
    try:
        version = subprocess.check_output([tool, "--vernum"], text=True).strip()
        cflags = subprocess.check_output([tool, "--cflags"], text=True)
        libs = subprocess.check_output([tool, "--libs"], text=True)
    except (OSError, subprocess.CalledProcessError):
        sys.exit("p11fast needs libcurl's development files (Debian: libcurl4-openssl-dev)")
    found = tuple(int(version[i : i + 2], 16) for i in (0, 2, 4))
    if found < CURL_MIN:
        sys.exit(f"p11fast needs libcurl >= {'.'.join(map(str, CURL_MIN))}, found {found}")
    return shlex.split(cflags), shlex.split(libs)


CURL_CFLAGS, CURL_LIBS = curl_flags()
COMMON_CFLAGS = ["-Wall", "-Wno-unused-function", "-fvisibility=hidden"]
COMMON_CFLAGS += ["-O0", "-g", "-DP11FAST_DEBUG=1"] if DEBUG else ["-O2"]


def extension(name: str, libraries: list[str]) -> Extension:
    return Extension(
        f"p11fast.{name}",
        [f"p11fast/{name}.pyx"],
        include_dirs=[INCLUDE],
        extra_compile_args=COMMON_CFLAGS + CURL_CFLAGS,
        libraries=libraries,
        extra_link_args=CURL_LIBS,
    )


class BuildWithLoader(build_ext):
    """Builds the Cython extensions, then the loader, which must not link libpython."""

    def run(self) -> None:
        super().run()
        self.build_loader()
        self.compile_python()

    def compile_python(self) -> None:
        """Byte-compiles the package: the loader's interpreter never writes .pyc files
        (write_bytecode=0, a host's directories are not ours to write), so without them every
        C_Initialize would compile p11fast's modules from source (~25 ms)."""
        import compileall

        target_dir = os.path.join(HERE if self.inplace else self.build_lib, "p11fast")
        if not compileall.compile_dir(target_dir, quiet=1):
            sys.exit(f"byte-compiling {target_dir} failed")

    def build_loader(self) -> None:
        target_dir = os.path.join(HERE if self.inplace else self.build_lib, "p11fast")
        os.makedirs(target_dir, exist_ok=True)
        target = os.path.join(target_dir, "libp11fast.so")
        sources = [loader_build.SOURCE, *loader_build.HEADERS]
        if (
            not self.force
            and os.path.exists(target)
            and os.path.getmtime(target) > max(map(os.path.getmtime, sources))
        ):
            return
        cmd = loader_build.command(target, COMMON_CFLAGS, shlex.split(os.environ.get("CC", "cc")))
        self.announce(" ".join(cmd), level=2)
        subprocess.check_call(cmd)


setup(
    ext_modules=cythonize(
        [
            extension("_codec", ["crypto"]),
            extension("_transport", ["curl", "ssl", "crypto"]),
            extension("_abi", ["curl", "crypto"]),
            extension("_yamlnodes", ["yaml"]),
        ],
        compiler_directives={
            "language_level": 3,
            "boundscheck": DEBUG,
            "wraparound": False,
            "initializedcheck": DEBUG,
            "cdivision": True,
        },
        annotate=os.environ.get("P11FAST_ANNOTATE") == "1",
    ),
    cmdclass={"build_ext": BuildWithLoader},
)
