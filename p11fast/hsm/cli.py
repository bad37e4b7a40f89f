"""`p11fast hsm …`: serve, init and dev for the software HSM."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import errno
import logging
import os
import socket
import sys

from p11fast.cli import CommandError
from p11fast.hsm.devsetup import (
    CONFIG_FILE,
    InitOptions,
    InitResult,
    configured_slot,
    dev_banner,
    initialise,
    instance_url,
    is_initialised,
)
from p11fast.hsm.errors import ApiError
from p11fast.hsm.listener import Limits


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state", required=True, help="state directory (keys, users, TLS certificate)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8443, help="TCP port; 0 picks a free port")


# `init`'s options, each an InitOptions field of the same name.
INIT_OPTIONS = (
    ("--unlock-passphrase", "passphrase that unlocks the HSM"),
    ("--admin-passphrase", "passphrase of the Administrator `admin`"),
    ("--operator-user", "name of the Operator user"),
    ("--operator-passphrase", "passphrase of the Operator"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="p11fast hsm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HSM server")
    _add_common(serve)
    _add_limits(serve)
    serve.add_argument("--http", action="store_true", help="plain HTTP instead of HTTPS")
    init = sub.add_parser("init", help="provision a state directory and write p11fast.conf")
    _add_common(init)
    defaults = InitOptions(state_dir="")
    for flag, what in INIT_OPTIONS:
        default = getattr(defaults, flag[2:].replace("-", "_"))
        init.add_argument(flag, default=default, help=f"{what} (default: %(default)s)")
    dev = sub.add_parser("dev", help="init the state directory if needed, then serve")
    _add_common(dev)
    _add_limits(dev)
    return parser


def _add_limits(parser: argparse.ArgumentParser) -> None:
    defaults = Limits()
    parser.add_argument(
        "--header-timeout", type=float, default=defaults.header_timeout, metavar="SECONDS",
        help="unauthenticated connections: TLS handshake and each request head within this",
    )  # fmt: skip
    parser.add_argument(
        "--body-timeout", type=float, default=defaults.body_timeout, metavar="SECONDS",
        help="a request body must arrive within this",
    )  # fmt: skip
    parser.add_argument(
        "--max-unauthenticated", type=int, default=defaults.max_unauthenticated, metavar="N",
        help="connections without an authenticated request; beyond this the oldest idle one "
        "is closed",
    )  # fmt: skip


def _limits(args: argparse.Namespace) -> Limits:
    return Limits(args.header_timeout, args.body_timeout, args.max_unauthenticated)


def _init(args: argparse.Namespace) -> tuple[InitOptions, InitResult]:
    """`init`'s work, for `init` and `dev` (whose parser has no passphrase options)."""
    fields = {field.name for field in dataclasses.fields(InitOptions)}
    options = InitOptions(
        state_dir=args.state, **{k: v for k, v in vars(args).items() if k in fields}
    )
    try:
        result = initialise(options)
    except ApiError as exc:
        raise CommandError(
            f"cannot initialise {args.state}: {exc.message} (a state directory keeps the "
            "passphrases it was provisioned with; use those, or a new --state)"
        ) from None
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename and exc.filename != args.state else ""
        raise CommandError(
            f"cannot initialise {args.state}: {exc.strerror or exc}{where}"
        ) from None
    return options, result


def ensure_state_dir(path: str) -> None:
    """A missing state directory is created as `init` creates it (0700: it holds the keys)."""
    if os.path.isdir(path):
        return
    if os.path.exists(path):
        raise CommandError(f"the state directory {path} is not a directory: pick another --state")
    try:
        os.mkdir(path, 0o700)
    except OSError as exc:
        raise CommandError(
            f"cannot create the state directory {path}: {exc.strerror} "
            "(create its parent directory, or pick another --state)"
        ) from None
    print(f"created the state directory {path} (mode 0700)", file=sys.stderr)


def ensure_port_free(host: str, port: int) -> None:
    """Fails before anything is written when the server could not listen on host:port.

    Bound as aiohttp binds (SO_REUSEADDR), so a port only in TIME_WAIT counts as free."""
    if port == 0:
        return
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as exc:
        raise _listen_error(host, port, exc) from None


def _listen_error(host: str, port: int, exc: OSError) -> CommandError:
    if exc.errno == errno.EADDRINUSE:
        return CommandError(
            f"port {port} on {host} is already in use (another `p11fast hsm`?): stop that "
            "process, or pick another --port (0 picks a free one)"
        )
    return CommandError(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _serve(args: argparse.Namespace) -> int:
    from p11fast.hsm.app import serve

    use_tls = not getattr(args, "http", False)
    try:
        asyncio.run(serve(args.state, args.host, args.port, use_tls, _limits(args)))
    except OSError as exc:
        # Taken between the check and the bind; or an address the check could not resolve.
        raise _listen_error(args.host, args.port, exc) from None
    return 0


def _dev(args: argparse.Namespace) -> int:
    initialised = is_initialised(args.state)
    if args.port == 0 and not initialised:
        # The configuration written below must name the port the server listens on.
        args.port = _free_port(args.host)
    if initialised:
        ensure_configured_here(args)
    ensure_port_free(args.host, args.port)
    options = None if initialised else _init(args)[0]
    print(dev_banner(args.state, configured_slot(args.state), options), flush=True)
    return _serve(args)


def ensure_configured_here(args: argparse.Namespace) -> None:
    """The configuration of an existing state directory names where it was first served: a
    server elsewhere would leave every PKCS#11 program knocking at the old address."""
    configured = configured_slot(args.state)["instances"][0]["url"]
    if configured != instance_url(args.host, args.port):
        raise CommandError(
            f"{os.path.join(args.state, CONFIG_FILE)} names {configured}: serve it there "
            "(its --host and --port), or start a new --state"
        )


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.command == "init":
        result = _init(args)[1]
        print(f"config: {result.config_path}")
        print(f"TLS certificate SHA-256 fingerprint: {result.fingerprint}")
        return 0
    if args.command == "dev":
        return _dev(args)
    ensure_port_free(args.host, args.port)
    ensure_state_dir(args.state)
    return _serve(args)


if __name__ == "__main__":
    from p11fast.cli import main as p11fast_main

    sys.exit(p11fast_main(["hsm", *sys.argv[1:]]))
