"""pkcs11-check (PyPI), a vendor-neutral conformance client, against the module.

It needs Python >= 3.12, and a Python host loads the ABI built for its own version: the module
is built for Python 3.12 from this source tree (cached under build/ by a hash of the sources)
and pkcs11-check runs in that venv. The smoke selection runs here; CONFORMANCE.md records the
larger runs and why each accepted failure cannot pass on a NetHSM."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from p11fast.hsm.testing import ADMIN_PASSPHRASE, ADMIN_USER, running_hsm
from tests import builds
from tests.hsm_api import HsmApi
from tests.interop.conftest import KEYS, OPERATOR_PIN, config_without_password, generate, host_env

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PYTHON = "3.12"

# Smoke checks that fail on p11fast by the nature of a NetHSM (see CONFORMANCE.md): none today.
NOT_APPLICABLE: set[str] = set()


def python312() -> str:
    """A real python3.12 (a pyenv shim on PATH may refuse to run one that is not selected)."""
    pyenv = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates = sorted(glob.glob(f"{pyenv}/versions/{PYTHON}.*/bin/python{PYTHON}"))
    candidates += [f"/usr/bin/python{PYTHON}", f"/usr/local/bin/python{PYTHON}"]
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(f"pkcs11-check needs Python {PYTHON} (pyenv install {PYTHON})")


@pytest.fixture(scope="module")
def checker() -> tuple[str, str]:
    """(pkcs11-check executable, module path) from a Python 3.12 venv with p11fast built in it."""
    files = builds.sources()
    requirements = (HERE / "requirements-pkcs11-check.txt").read_bytes()
    root = REPO / "build" / f"interop-py{PYTHON}" / builds.build_key(files, requirements)
    venv, src = root / "venv", root / "src"
    module = src / "p11fast" / "libp11fast.so"
    if not (root / "ready").exists():
        shutil.rmtree(root.parent, ignore_errors=True)  # builds of older sources too
        subprocess.run([python312(), "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
        subprocess.run(
            [*pip, "setuptools>=64", "wheel", "Cython>=3.0", "pyyaml", "cryptography", "pycurl",
             "aiohttp", "-r", str(HERE / "requirements-pkcs11-check.txt")],
            check=True,
        )  # fmt: skip
        builds.copy_sources(files, src)
        subprocess.run(
            [str(venv / "bin" / "python"), "setup.py", "-q", "build_ext", "--inplace", "-j2"],
            cwd=src,
            check=True,
            capture_output=True,
        )
        (root / "ready").touch()
    return str(venv / "bin" / "pkcs11-check"), str(module)


@pytest.fixture(scope="module")
def check_config(tmp_path_factory):
    """An HSM of its own (pkcs11-check creates objects), with the suite's keys."""
    with running_hsm(str(tmp_path_factory.mktemp("check-hsm"))) as process:
        generate(HsmApi(process.url, ADMIN_USER, ADMIN_PASSPHRASE), KEYS)
        yield config_without_password(process, tmp_path_factory.mktemp("check-cfg"))


def run_check(checker, config: str, workdir: Path, *selection: str, timeout: float = 600) -> dict:
    """Runs pkcs11-check in a fresh directory; returns its summary and the failed checks."""
    executable, module = checker
    done = subprocess.run(
        [executable, "test", "--module", module, "--pin", OPERATOR_PIN, "--slot", "0",
         *selection, "--output", "json", "--output-file", str(workdir / "result.json")],
        cwd=workdir,
        env=host_env(config),
        capture_output=True,
        text=True,
        timeout=timeout,
    )  # fmt: skip
    assert (workdir / "result.json").exists(), done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((workdir / "result.json").read_text())["summary"]
    failed = set()
    for line in (workdir / "report.jsonl").read_text().splitlines():
        report = json.loads(line)
        if report.get("$report_type") == "TestReport" and report["outcome"] == "failed":
            failed.add(report["nodeid"].lstrip(":"))
    return {"summary": summary, "failed": failed, "output": done.stdout[-5000:]}


def test_smoke_checks_pass_except_those_a_nethsm_cannot(checker, check_config, tmp_path):
    result = run_check(checker, check_config, tmp_path, "--marker", "smoke")
    summary = result["summary"]
    assert summary["crashed"] == 0 and summary["timeout"] == 0 and summary["error"] == 0, summary
    assert summary["passed"] > 100, summary
    assert result["failed"] <= NOT_APPLICABLE, result["output"]
