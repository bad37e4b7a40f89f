"""Builds what the codec tests need, without the rest of the project.

- `p11fast._codec` in place, with the compiler flags and Cython directives of setup.py
  (release build), so the tests exercise the same module the ABI links against;
- `_codec_harness`, a test-only Cython module that cimports `p11fast._codec` the way
  `_abi` does (through the C-API capsule) and wraps each function for pytest, into
  build/codec-tests/.

The other extensions are left alone: they may not compile while they are being written.
Both steps are incremental, so running this when nothing changed costs well under a second.

    python tests/codec/build_codec.py
"""

import os
import sys

from Cython.Build import cythonize
from setuptools import Distribution, Extension

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HARNESS_DIR = os.path.join(ROOT, "build", "codec-tests")

# Keep in step with setup.py (COMMON_CFLAGS and compiler_directives without P11FAST_DEBUG).
CFLAGS = ["-Wall", "-Wno-unused-function", "-fvisibility=hidden", "-O2"]
DIRECTIVES = {
    "language_level": 3,
    "boundscheck": False,
    "wraparound": False,
    "initializedcheck": False,
    "cdivision": True,
}


def _build(extension: Extension, inplace: bool, build_lib: str) -> None:
    dist = Distribution(
        {
            "ext_modules": cythonize(
                [extension],
                compiler_directives=DIRECTIVES,
                include_path=[ROOT],
                build_dir=None if inplace else HARNESS_DIR,
                quiet=True,
            )
        }
    )
    cmd = dist.get_command_obj("build_ext")
    cmd.inplace = inplace
    cmd.build_lib = build_lib
    cmd.build_temp = os.path.join(HARNESS_DIR, "tmp")
    cmd.ensure_finalized()
    cmd.run()


def main() -> None:
    os.chdir(ROOT)
    _build(
        Extension(
            "p11fast._codec",
            ["p11fast/_codec.pyx"],
            include_dirs=[os.path.join(ROOT, "include")],
            extra_compile_args=CFLAGS,
            libraries=["crypto"],
        ),
        inplace=True,
        build_lib=ROOT,
    )
    _build(
        Extension("_codec_harness", ["tests/codec/_codec_harness.pyx"], extra_compile_args=CFLAGS),
        inplace=False,
        build_lib=HARNESS_DIR,
    )


if __name__ == "__main__":
    sys.exit(main())
