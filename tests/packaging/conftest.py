"""The release artefacts, built once per session: an sdist of this tree, a wheel built from that
sdist the way release wheels are (libcurl and OpenSSL static and hidden, P11FAST_STATIC_DEPS),
and a fresh virtual environment, outside the source tree, with the wheel installed."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from p11fast.hsm.testing import ADMIN_PASSPHRASE, ADMIN_USER, HsmProcess, running_hsm
from tests.hsm_api import HsmApi

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.dirname(os.path.abspath(__file__))
# Kept between runs (build/ is ignored by git): the script rebuilds only when it changed.
STATIC_DEPS = os.path.join(ROOT, "build", "static-deps")
KEY_LABEL = "pkgec"


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    assert done.returncode == 0, f"{cmd}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@dataclass
class Installed:
    venv: str
    python: str
    module: str  # libp11fast.so inside the venv's site-packages
    wheel: str


@pytest.fixture(scope="session")
def static_deps() -> str:
    run(["bash", os.path.join(ROOT, "scripts", "build-static-deps.sh"), STATIC_DEPS])
    return STATIC_DEPS


@pytest.fixture(scope="session")
def sdist(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("sdist")
    run([sys.executable, "setup.py", "-q", "sdist", "-d", str(out)], cwd=ROOT)
    (path,) = glob.glob(str(out / "p11fast-*.tar.gz"))
    return path


@pytest.fixture(scope="session")
def wheel(sdist: str, static_deps: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    # Built from the unpacked sdist, so a file missing from MANIFEST.in fails here. The build
    # dependencies come from this environment (no isolation), which has setuptools and Cython.
    src = tmp_path_factory.mktemp("unpacked")
    with tarfile.open(sdist) as tar:
        tar.extractall(src, filter="data")
    (tree,) = glob.glob(str(src / "p11fast-*"))
    out = tmp_path_factory.mktemp("wheel")
    env = {**os.environ, "P11FAST_STATIC_DEPS": static_deps}
    run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-build-isolation", "--no-deps"]
        + ["-w", str(out), tree],
        env=env,
    )
    (path,) = glob.glob(str(out / "p11fast-*.whl"))
    return path


@pytest.fixture(scope="session")
def installed(wheel: str, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    venv = str(tmp_path_factory.mktemp("venv") / "env")
    run([sys.executable, "-m", "venv", venv])
    python = os.path.join(venv, "bin", "python")
    # python-pkcs11 only for the Python-host test; pip compiles .pyc files as it installs.
    run([python, "-m", "pip", "install", "-q", wheel, "python-pkcs11"])
    module = run([os.path.join(venv, "bin", "p11fast"), "module-path"]).stdout.strip()
    return Installed(venv=venv, python=python, module=module, wheel=wheel)


@pytest.fixture(scope="session")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HsmProcess]:
    with running_hsm(str(tmp_path_factory.mktemp("hsm"))) as process:
        HsmApi(process.url, ADMIN_USER, ADMIN_PASSPHRASE).generate(
            "EC_P256", ["ECDSA_Signature"], KEY_LABEL
        )
        yield process


@pytest.fixture(scope="session")
def public_key(hsm: HsmProcess):
    from cryptography.hazmat.primitives import serialization

    pem = HsmApi(hsm.url, ADMIN_USER, ADMIN_PASSPHRASE).public_pem(KEY_LABEL)
    return serialization.load_pem_public_key(pem)


def build_host(
    tmp_path, name: str, defines: tuple[str, ...] = (), libs: tuple[str, ...] = ()
) -> str:
    exe = str(tmp_path / name)
    run(
        ["cc", "-O1", "-Wall", "-I", os.path.join(ROOT, "include"), *defines]
        + [os.path.join(HERE, "sign_host.c"), "-o", exe, *libs, "-ldl"]
    )
    return exe
