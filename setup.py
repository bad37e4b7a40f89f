"""Build: the C loader `p11fast/libp11fast.so` and the Cython extensions.

Switches (environment variables):
  P11FAST_DEBUG=1      -O0 -g and invariant checks (`P11FAST_DEBUG` macro: the ABI's object
                       handle table checks itself after every change, p11fast/abi/objects.pxd)
  P11FAST_ANNOTATE=1   Cython HTML annotation next to each .pyx
  P11FAST_CURL_CONFIG  the curl-config to ask for libcurl's flags (default: curl-config)
  P11FAST_STATIC_DEPS  a prefix made by scripts/build-static-deps.sh: libcurl and OpenSSL are
                       linked statically into the ABI's extension, their symbols hidden (release
                       wheels); without it the system's shared libcurl and OpenSSL are used
"""

import os
import shlex
import subprocess
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import abi_build  # noqa: E402  (beside this file, not installed)
import loader_build  # noqa: E402
import mechanisms_build  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
INCLUDE = os.path.join(HERE, "include")
DEBUG = os.environ.get("P11FAST_DEBUG") == "1"
STATIC_DEPS = os.environ.get("P11FAST_STATIC_DEPS")
# The newest libcurl symbol the transport uses is CURLE_SSL_CLIENTCERT (7.77.0); the others are
# older (curl_multi_poll 7.66.0, CURLOPT_MAXAGE_CONN 7.65.0). tests/packaging checks this
# against curl's symbols-in-versions.
CURL_MIN = (7, 77, 0)


def curl_flags() -> tuple[list[str], list[str]]:
    default = os.path.join(STATIC_DEPS, "bin", "curl-config") if STATIC_DEPS else "curl-config"
    tool = os.environ.get("P11FAST_CURL_CONFIG", default)
    try:
        version = subprocess.check_output([tool, "--vernum"], text=True).strip()
        backends = subprocess.check_output([tool, "--ssl-backends"], text=True)
        cflags = subprocess.check_output([tool, "--cflags"], text=True)
        libs = subprocess.check_output(
            [tool, "--static-libs" if STATIC_DEPS else "--libs"], text=True
        )
    except (OSError, subprocess.CalledProcessError):
        sys.exit("p11fast needs libcurl's development files (Debian: libcurl4-openssl-dev)")
    found = tuple(int(version[i : i + 2], 16) for i in (0, 2, 4))
    if found < CURL_MIN:
        sys.exit(f"p11fast needs libcurl >= {'.'.join(map(str, CURL_MIN))}, found {found}")
    # The transport configures TLS through CURLOPT_SSL_CTX_FUNCTION, which hands it an OpenSSL
    # SSL_CTX: a libcurl on GnuTLS or NSS cannot serve it.
    if "OpenSSL" not in backends:
        sys.exit(f"p11fast needs a libcurl built with OpenSSL, {tool} reports: {backends.strip()}")
    return shlex.split(cflags), shlex.split(libs)


def static_link_args(curl_libs: list[str]) -> list[str]:
    """Link arguments for the static archives of P11FAST_STATIC_DEPS: libcurl, OpenSSL and the
    system libraries they need.

    --exclude-libs hides every symbol that comes from an archive, so the extension exports
    nothing of libcurl or OpenSSL and resolves its own calls at link time: a host that has
    another libcurl or OpenSSL loaded (globally, or under the same symbol versions) cannot
    interpose on them, and nothing of ours can interpose on the host's."""
    lib = os.path.join(STATIC_DEPS, "lib")
    openssl = [os.path.join(lib, "libssl.a"), os.path.join(lib, "libcrypto.a")]
    system = [arg for arg in curl_libs if arg.startswith("-l") and arg not in ("-lssl", "-lcrypto")]
    hidden = ["-Wl,--exclude-libs,ALL"]
    return [os.path.join(lib, "libcurl.a"), *openssl, *system, "-lpthread", "-ldl", *hidden]


CURL_CFLAGS, CURL_LIBS = curl_flags()
COMMON_CFLAGS = ["-Wall", "-Wno-unused-function", "-fvisibility=hidden"]
COMMON_CFLAGS += ["-O0", "-g", "-DP11FAST_DEBUG=1"] if DEBUG else ["-O2"]

if STATIC_DEPS:
    CORE_LINK = static_link_args(CURL_LIBS)
    CORE_CFLAGS = ("-DP11FAST_OWN_OPENSSL=1",)  # see tp_openssl_no_atexit
    # libyaml's static archive from the system's development package, hidden like the others.
    YAML_LINK = ["-l:libyaml.a", "-Wl,--exclude-libs,ALL"]
else:
    CORE_LINK = CURL_LIBS + ["-lssl", "-lcrypto"]
    CORE_CFLAGS = ()
    YAML_LINK = ["-lyaml"]


def extension(name: str, link_args: list[str], cflags: tuple[str, ...] = ()) -> Extension:
    return Extension(
        f"p11fast.{name}",
        [f"p11fast/{name}.pyx"],
        # HERE: our own headers by their path in the tree (p11fast/transport/capi.h)
        include_dirs=[INCLUDE, HERE],
        extra_compile_args=COMMON_CFLAGS + CURL_CFLAGS + list(cflags),
        extra_link_args=link_args,
        # build_ext relinks only when a dependency is newer: link arguments live here.
        depends=[os.path.abspath(__file__)],
    )


class BuildWithLoader(build_ext):
    """Builds the Cython extensions, then the loader, which must not link libpython."""

    def run(self) -> None:
        super().run()
        self.build_loader()
        if self.inplace:
            self.compile_python()

    def compile_python(self) -> None:
        """Byte-compiles the package in a checkout: the loader's interpreter never writes .pyc
        files (write_bytecode=0, a host's directories are not ours to write), so without them
        every C_Initialize would compile p11fast's modules from source (~25 ms). A wheel
        carries none: installers compile for the Python they install into (pip does by
        default; uv with --compile-bytecode)."""
        import compileall

        target_dir = os.path.join(HERE, "p11fast")
        if not compileall.compile_dir(target_dir, quiet=1):
            sys.exit(f"byte-compiling {target_dir} failed")

    def build_loader(self) -> None:
        target_dir = os.path.join(HERE if self.inplace else self.build_lib, "p11fast")
        os.makedirs(target_dir, exist_ok=True)
        # Always rebuilt (one small C file): the library embeds the building Python's version
        # and paths, so a copy left by another interpreter's build must never be reused.
        target = os.path.join(target_dir, "libp11fast.so")
        cmd = loader_build.command(target, COMMON_CFLAGS, shlex.split(os.environ.get("CC", "cc")))
        self.announce(" ".join(cmd), level=2)
        subprocess.check_call(cmd)


# The ABI's mechanism tables, from p11fast/mechanisms.py, and its entry points and function
# table, from include/pkcs11f.h; rewritten only when they change, so an unchanged source
# recompiles nothing.
mechanisms_build.write()
abi_build.write()
# What light mode's C readers share with its Python writers, from p11fast/lightmode.py: the ABI
# includes it too (MAX_SLOTS, the presence TTL).
loader_build.write_header()

setup(
    ext_modules=cythonize(
        [
            # The compiled core: the ABI, the codec and the transport in one shared object, so
            # their calls are direct C calls and libcurl and OpenSSL are linked once. Its
            # function table is filled by typed assignments: a function whose signature is not
            # pkcs11f.h's is an error, not a warning.
            extension("_abi", CORE_LINK, ("-Werror=incompatible-pointer-types", *CORE_CFLAGS)),
            extension("_yamlnodes", YAML_LINK),
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
    # A build tree per link mode: build_ext relinks only when a source changed, so a tree left
    # by the other mode would hand over extensions linked the other way.
    options={"build": {"build_base": os.path.join("build", "static" if STATIC_DEPS else "shared")}},
)
