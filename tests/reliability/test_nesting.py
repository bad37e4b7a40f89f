"""A configuration nested beyond reason is refused by C_Initialize, quickly and by name."""

from __future__ import annotations

import pytest

from p11fast.config import MAX_NESTING
from tests.reliability.conftest import fields, run_host

DEPTH = 100_000  # crashed the module (recursion in the composer); 50,000 took 9 s

NESTINGS = {
    "flow sequences": "slots: " + "[" * DEPTH + "]" * DEPTH + "\n",
    "flow mappings": "slots: " + "{" * DEPTH + "}" * DEPTH + "\n",
    "block sequences": "slots:\n" + "- " * DEPTH + "x\n",
}


@pytest.mark.parametrize("nesting", NESTINGS)
def test_deeply_nested_configuration_fails_initialize_with_file_and_line(
    host, module_path, tmp_path, nesting
):
    config = tmp_path / "deep.conf"
    config.write_text("log_level: Info\n" + NESTINGS[nesting])
    config.chmod(0o600)
    done = run_host(host, str(config), "inits", module_path, "1", timeout=60)
    assert done.returncode == 0, done.stderr  # no crash
    assert fields(done.stdout)["init"] == 0x6  # CKR_FUNCTION_FAILED
    line = 3 if nesting == "block sequences" else 2
    assert f"{config}:{line}: invalid YAML: nested deeper than {MAX_NESTING} levels" in done.stderr
