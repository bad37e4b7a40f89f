"""Builds of the module from a copy of its sources, for tests that need another Python or other
build switches than the checkout's build: cached under build/ by what they are built from."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# What a build reads: the package, the headers, and the scripts setup.py runs (the generators of
# the ABI's entry points and mechanism tables among them).
BUILD_INPUTS = ("p11fast", "include", "setup.py", "loader_build.py", "mechanisms_build.py",
                "abi_build.py", "pyproject.toml")  # fmt: skip


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
