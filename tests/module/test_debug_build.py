"""A P11FAST_DEBUG build (setup.py: -O0 -g, and the ABI's object handle table checks its
invariants after every change, p11fast/abi/objects.pyx, aborting when one is broken) runs what
changes the table — objects found, made, renamed and destroyed, session objects ended with
their session, 70,000 objects made and destroyed — exactly as the release build does: its
checks hold. The build is a copy of the sources under build/debug/, kept while they do not
change; the Python hosts import it (PYTHONPATH, and a working directory without the checkout's
own p11fast)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

from p11fast import ckr
from p11fast.hsm.testing import HsmProcess, running_hsm
from tests import builds
from tests.hsm_api import HsmApi
from tests.module import test_manage
from tests.module.conftest import (
    OPERATOR_PIN,
    api_with_keys,
    config_without_password,
    run_host,
    run_python,
)

SEMANTICS_HOST = os.path.join(os.path.dirname(__file__), "semantics_host.py")


@pytest.fixture(scope="module")
def debug_module() -> str:
    files = builds.sources()
    root = builds.REPO / "build" / "debug" / builds.build_key(files, b"P11FAST_DEBUG=1")
    if not (root / "ready").exists():
        shutil.rmtree(root.parent, ignore_errors=True)  # builds of older sources too
        builds.copy_sources(files, root)
        done = subprocess.run(
            [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
            cwd=root,
            env={**os.environ, "P11FAST_DEBUG": "1"},
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr[-5000:]
        (root / "ready").touch()
    return str(root / "p11fast" / "libp11fast.so")


@pytest.fixture
def debug_hosts(debug_module, monkeypatch, tmp_path) -> str:
    """Python hosts started from here on import the debug build; its loader's path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", os.path.dirname(os.path.dirname(debug_module)))
    return debug_module


@pytest.fixture(scope="module")
def debug_hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HsmProcess]:
    """An HSM of its own: the management tests below make and rename keys the suite's HSM
    already had them make."""
    with running_hsm(str(tmp_path_factory.mktemp("debug-hsm"))) as process:
        yield process


@pytest.fixture(scope="module")
def debug_api(debug_hsm: HsmProcess) -> HsmApi:
    return api_with_keys(debug_hsm)


def test_the_hosts_here_run_the_debug_build(debug_hosts, debug_hsm):
    done = run_python("import p11fast._abi; print(p11fast._abi.__file__)", debug_hsm.config_path)
    assert done.stdout.startswith(os.path.dirname(debug_hosts) + os.sep), done.stdout
    # What the debug switch compiles in: the handle table's checks.
    assert b"object handle table broken" in open(done.stdout.strip(), "rb").read()


@pytest.mark.parametrize(
    "check",
    [
        test_manage.test_rename_and_relabel_through_set_attribute_value,
        test_manage.test_session_objects_live_as_long_as_their_session,
    ],
    ids=["rename", "session objects"],
)
def test_the_debug_build_keeps_the_handle_table_whole(debug_hosts, debug_hsm, debug_api, check):
    check(debug_hosts, debug_hsm, debug_api)


def test_the_debug_build_keeps_the_handle_table_whole_across_70000_objects(
    debug_hosts, debug_hsm, debug_api, tmp_path
):
    config = config_without_password(debug_hsm, tmp_path)
    out = run_host(SEMANTICS_HOST, config, debug_hosts, OPERATOR_PIN, "churn")
    assert out["failures"] == {}
    assert out["stale handle"] == ckr.CKR_OBJECT_HANDLE_INVALID
