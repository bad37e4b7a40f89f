"""Builds what the codec tests need:

- the checkout's compiled core (`p11fast._abi`, which the codec is part of) brought up to date
  with setup.py, so the tests exercise the very module the loader runs;
- `_codec_harness`, a test-only Cython module that cimports the codec's functions from
  `p11fast._abi` (through the C-API capsule) and wraps each for pytest, into build/codec-tests/.

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


def build_harness() -> None:
    harness = Extension(
        "_codec_harness",
        ["tests/codec/_codec_harness.pyx"],
        # the headers the ABI's declarations name: ours by their path in the tree, PKCS#11's
        include_dirs=[ROOT, os.path.join(ROOT, "include")],
        extra_compile_args=CFLAGS,
    )
    dist = Distribution(
        {
            "ext_modules": cythonize(
                [harness],
                compiler_directives=DIRECTIVES,
                include_path=[ROOT],
                build_dir=HARNESS_DIR,
                quiet=True,
            )
        }
    )
    cmd = dist.get_command_obj("build_ext")
    cmd.build_lib = HARNESS_DIR
    cmd.build_temp = os.path.join(HARNESS_DIR, "tmp")
    cmd.ensure_finalized()
    cmd.run()


def main() -> None:
    os.chdir(ROOT)
    sys.path.insert(0, ROOT)
    from tests import builds

    builds.ensure_inplace()
    build_harness()


if __name__ == "__main__":
    sys.exit(main())
