"""README.md's "Try it" sequence, run as a reader pastes it: the block marked
`<!-- readme-test: hsm -->` in one shell (it serves until stopped), the blocks marked
`<!-- readme-test: shell -->` one after the other in another shell, in a fresh directory, with
`p11fast` on the PATH as `. .venv/bin/activate` puts it. The only change: port 8443 becomes a
free one. What the blocks leave behind must be ignored by git, so that running them in a
checkout leaves it clean."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from p11fast.hsm.testing import START_TIMEOUT, free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MARKED = re.compile(r"^<!-- readme-test: (\w+) -->\n```sh\n(.*?)^```$", re.S | re.M)
README_PORT = "8443"


def marked_blocks() -> list[tuple[str, str]]:
    with open(os.path.join(ROOT, "README.md")) as f:
        return MARKED.findall(f.read())


def reader_env(home: str) -> dict[str, str]:
    """A shell after `. .venv/bin/activate`, without the suite's P11FAST_ settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("P11FAST_", "P11NETHSM_"))}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["HOME"] = home
    return env


@pytest.fixture
def dev_hsm(tmp_path):
    """The README's first block running in its own shell; yields (workdir, env, banner)."""
    (role, command), *_ = marked_blocks()
    assert role == "hsm" and README_PORT in command
    workdir, home = tmp_path / "work", tmp_path / "home"
    workdir.mkdir()
    home.mkdir()
    env = reader_env(str(home))
    shell = subprocess.Popen(
        ["bash", "-c", "exec " + command.replace(README_PORT, str(free_port())).strip()],
        cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    banner = []
    try:
        while not (line := shell.stdout.readline()).startswith("p11fast-hsm listening"):
            assert line, "the HSM block ended:\n" + "".join(banner)
            banner.append(line)
        yield workdir, env, "".join(banner)
    finally:
        shell.terminate()
        shell.wait(START_TIMEOUT)


def test_the_readme_marks_one_hsm_block_then_shell_blocks():
    roles = [role for role, _ in marked_blocks()]
    assert roles[0] == "hsm" and len(roles) > 2 and set(roles[1:]) == {"shell"}


def test_the_readme_sequence_runs_as_written(dev_hsm):
    workdir, env, banner = dev_hsm
    assert f"  export P11FAST_CONFIG_FILE={workdir}/hsm-state/p11fast.conf\n" in banner
    script = "\n".join(text for role, text in marked_blocks() if role == "shell")
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("Verified OK") == 2
    assert "token label        : p11fast-dev" in done.stdout
    assert "label:      ec-key" in done.stdout and "label:      rsa-key" in done.stdout
    assert ";object=ec-key;type=private" in done.stdout


def test_what_the_readme_sequence_leaves_is_ignored_by_git(dev_hsm):
    workdir, env, _ = dev_hsm
    script = "\n".join(text for role, text in marked_blocks() if role == "shell")
    subprocess.run(["bash", "-c", script], cwd=workdir, env=env, capture_output=True,
                   timeout=300, check=True)  # fmt: skip
    left = sorted(
        os.path.relpath(os.path.join(d, name), workdir)
        for d, _, names in os.walk(workdir)
        for name in names
    )
    assert "hsm-state/p11fast.conf" in left and "demo.txt" in left
    done = subprocess.run(
        ["git", "-c", "core.excludesFile=/dev/null", "check-ignore", "--no-index", *left],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert sorted(done.stdout.split()) == left
