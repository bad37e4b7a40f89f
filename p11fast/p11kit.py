"""p11-kit registration: the module file that makes p11-kit-aware programs load p11fast.

p11-kit (pkcs11.conf(5)) loads every module described by a `NAME.module` file in
`~/.config/pkcs11/modules/` (per user; p11-kit expands `~` from $HOME, not from
$XDG_CONFIG_HOME, and ignores it in programs running as root), `/etc/pkcs11/modules/`
(system-wide) and the distribution's `/usr/share/p11-kit/modules/`. Programs that go through
p11-kit — GnuTLS's p11tool and the GnuTLS library, `p11-kit list-modules`, anything loading
`p11-kit-proxy.so` — then see the module's tokens without being told its path.
"""

from __future__ import annotations

import os

from p11fast import module_path

FILE_NAME = "p11fast.module"
USER_DIR = os.path.join("~", ".config", "pkcs11", "modules")
SYSTEM_DIR = "/etc/pkcs11/modules"


def module_file() -> str:
    """The text of the module file. The module finds its configuration as in any program: a
    file in its search path (`~/.config/p11fast/p11fast.conf`, ...) or P11FAST_CONFIG_FILE.
    (p11-kit's `x-init-reserved` would hand the module a path, but GnuTLS initialises modules
    with its own arguments, so p11tool would not see it.)"""
    return "\n".join([
        "# p11fast: PKCS#11 for NetHSM-compatible HSMs (written by `p11fast p11-kit-module`)",
        f"module: {module_path()}",
    ]) + "\n"  # fmt: skip


def install_path(system: bool) -> str:
    return os.path.join(SYSTEM_DIR if system else os.path.expanduser(USER_DIR), FILE_NAME)


def install(text: str, system: bool) -> str:
    """Writes the module file (replacing an older one whole) and returns its path."""
    path = install_path(system)
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    # Written beside the directory, not in it: p11-kit reads every file there.
    partial = os.path.join(os.path.dirname(os.path.dirname(path)), f".{FILE_NAME}.{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(partial, path)
    return path
