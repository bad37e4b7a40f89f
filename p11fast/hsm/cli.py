"""`p11fast hsm …`: serve, init and dev for the software HSM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from p11fast.hsm.devsetup import InitOptions, initialise, is_initialised
from p11fast.hsm.listener import Limits


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state", required=True, help="state directory")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8443, help="0 picks a free port")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="p11fast hsm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HSM server")
    _add_common(serve)
    serve.add_argument("--http", action="store_true", help="plain HTTP instead of HTTPS")
    _add_limits(serve)
    init = sub.add_parser("init", help="provision a state directory and write p11fast.conf")
    _add_common(init)
    defaults = InitOptions(state_dir="")
    init.add_argument("--unlock-passphrase", default=defaults.unlock_passphrase)
    init.add_argument("--admin-passphrase", default=defaults.admin_passphrase)
    init.add_argument("--operator-user", default=defaults.operator_user)
    init.add_argument("--operator-passphrase", default=defaults.operator_passphrase)
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


def _init(args: argparse.Namespace) -> int:
    result = initialise(
        InitOptions(
            state_dir=args.state,
            host=args.host,
            port=args.port,
            unlock_passphrase=args.unlock_passphrase,
            admin_passphrase=args.admin_passphrase,
            operator_user=args.operator_user,
            operator_passphrase=args.operator_passphrase,
        )
    )
    print(f"config: {result.config_path}")
    print(f"TLS certificate SHA-256 fingerprint: {result.fingerprint}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from p11fast.hsm.app import serve

    use_tls = not getattr(args, "http", False)
    asyncio.run(serve(args.state, args.host, args.port, use_tls, _limits(args)))
    return 0


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.command == "init":
        return _init(args)
    if args.command == "dev" and not is_initialised(args.state):
        _init(build_parser().parse_args(["init", "--state", args.state, "--host", args.host,
                                         "--port", str(args.port)]))  # fmt: skip
    return _serve(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
