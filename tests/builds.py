"""Builds of the module from a copy of its sources, for tests that need another Python or other
build switches than the checkout's build: cached under build/ by what they are built from. And
the checkout's own build, brought up to date for the suites that import the extension."""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# What a build reads: the package, the headers, and the scripts setup.py runs (the generators of
# the ABI's entry points and mechanism tables among them).
BUILD_INPUTS = ("p11fast", "include", "setup.py", "loader_build.py", "mechanisms_build.py",
                "abi_build.py", "pyproject.toml")  # fmt: skip
# The sources of the compiled core, p11fast._abi (the ABI, the transport and the codec).
CORE_SOURCES = ("p11fast/_abi.pyx", "p11fast/_abi.pxd", "p11fast/abi/*", "p11fast/transport/*",
                "p11fast/codec/*", "p11fast/_decl/*")  # fmt: skip


def ensure_inplace() -> None:
    """The checkout's own build brought up to date (`setup.py build_ext --inplace`) when a source
    of the compiled core is newer than the extension: the transport's and the codec's tests
    import it directly, often right after a piece was edited."""
    built = glob.glob(str(REPO / "p11fast" / "_abi.*.so"))
    sources = [path for pattern in CORE_SOURCES for path in glob.glob(str(REPO / pattern))]
    newest = max(os.path.getmtime(path) for path in sources)
    if built and os.path.getmtime(built[0]) >= newest:
        return
    subprocess.check_call(
        [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
    )


def sources() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", *BUILD_INPUTS], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    return [path for path in listed if os.path.exists(REPO / path)]


def build_key(files: list[str], seed: bytes) -> str:
    """What names a build: `seed` (its switches, its requirements) and every source's bytes."""
    digest = hashlib.sha256(seed)
    for path in files:
        digest.update(path.encode() + b"\0" + (REPO / path).read_bytes())
    return digest.hexdigest()[:16]


def copy_sources(files: list[str], dest: Path) -> None:
    for path in files:
        (dest / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / path, dest / path)
