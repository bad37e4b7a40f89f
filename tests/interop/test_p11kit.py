"""p11-kit registration: with the module file `p11fast p11-kit-module --install` writes,
p11-kit-aware programs see the token without being given the module's path.

Nothing here touches the real home or /etc: the per-user file goes to a temporary $HOME (p11-kit
reads `~/.config/pkcs11/modules/` from $HOME; it ignores $XDG_CONFIG_HOME), and the system-wide
file to /etc as an overlay seen only inside a private mount namespace. p11-kit skips per-user
files in a process running as root, so when the suite runs as root the per-user tests run their
programs in a user namespace where the process is not uid 0 (and the files it reads are its
own); other tests never see either file.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

import pytest

from p11fast import p11kit
from tests.hosts import host_env

PROXY = "/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so"


def p11fast_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "p11fast", *args]


def as_user(command: list[str]) -> list[str]:
    """`command` in a process p11-kit reads per-user configuration for (not uid 0)."""
    if os.geteuid() != 0:
        return command
    return ["unshare", "--user", "--map-user=65534", "--map-group=65534", *command]


def run(command: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture
def home(tmp_path) -> str:
    path = tmp_path / "home"
    path.mkdir()
    return str(path)


def user_env(home: str, config: str | None) -> dict[str, str]:
    env = host_env(config or "", HOME=home)
    if config is None:
        del env["P11FAST_CONFIG_FILE"]
    return env


def install_for_user(home: str) -> str:
    out = run(p11fast_command("p11-kit-module", "--install"), user_env(home, None))
    path = os.path.join(home, ".config", "pkcs11", "modules", "p11fast.module")
    assert out == f"wrote {path}; `p11-kit list-modules` shows the module\n"
    return path


def test_the_module_file_names_the_library(module_path):
    out = run(p11fast_command("p11-kit-module"), os.environ.copy())
    assert out.splitlines()[1:] == [f"module: {module_path}"]
    assert out.startswith("# ")


def test_p11kit_lists_the_module_and_its_token_installed_for_the_user(module_path, hsm, home):
    install_for_user(home)
    out = run(as_user(["p11-kit", "list-modules"]), user_env(home, hsm.config_path))
    ours = out[out.index(f"p11fast: {module_path}\n") :].split("\n")
    # Its entry: the module line, then indented lines up to the next module.
    entry = ours[: next(i for i, line in enumerate(ours[1:], 1) if not line.startswith(" "))]
    assert "    token: p11fast-dev" in entry, out


def test_p11tool_lists_the_token_without_provider(module_path, hsm, home):
    install_for_user(home)
    out = run(as_user(["p11tool", "--list-tokens"]), user_env(home, hsm.config_path))
    assert "URL: pkcs11:model=NetHSM;manufacturer=p11fast;serial=0000000000000000;" \
           "token=p11fast-dev\n" in out  # fmt: skip
    assert f"Module: {module_path}\n" in out


def test_the_p11kit_proxy_module_offers_the_token(hsm, home):
    install_for_user(home)
    out = run(as_user(["pkcs11-tool", "--module", PROXY, "-L"]), user_env(home, hsm.config_path))
    assert "token label        : p11fast-dev" in out


def test_without_install_nothing_is_written_and_p11kit_does_not_list_it(module_path, hsm, home):
    run(p11fast_command("p11-kit-module"), user_env(home, None))
    assert os.listdir(home) == []
    out = run(as_user(["p11-kit", "list-modules"]), user_env(home, hsm.config_path))
    assert module_path not in out


def test_installed_system_wide_p11kit_lists_it(module_path, hsm, tmp_path):
    upper, work = tmp_path / "etc-changes", tmp_path / "overlay-work"
    upper.mkdir()
    work.mkdir()
    script = " && ".join([
        f"mount -t overlay overlay -o lowerdir=/etc,upperdir={upper},workdir={work} /etc",
        shlex.join(p11fast_command("p11-kit-module", "--install", "--system")),
        "p11-kit list-modules",
    ])  # fmt: skip
    namespace = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        namespace[1:1] = ["--user", "--map-root-user"]
    out = run([*namespace, "sh", "-c", script], host_env(hsm.config_path, HOME=str(tmp_path)))
    assert out.startswith(f"wrote {p11kit.SYSTEM_DIR}/p11fast.module;")
    assert f"p11fast: {module_path}" in out and "token: p11fast-dev" in out
    written = upper / "pkcs11" / "modules" / "p11fast.module"
    assert written.read_text().splitlines()[1] == f"module: {module_path}"
    assert not os.path.exists(os.path.join(p11kit.SYSTEM_DIR, "p11fast.module"))
