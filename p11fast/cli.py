"""`p11fast` command line: module-path, check, and the software HSM (`p11fast hsm …`)."""

from __future__ import annotations

import argparse
import sys


class CommandError(Exception):
    """A mistake on the command line or in its surroundings that the user can fix: the message
    says what happened and what to do, and is all that is printed."""


def _module_path(_args: argparse.Namespace) -> int:
    from p11fast import module_path

    sys.stdout.write(module_path() + "\n")
    return 0


def _check(args: argparse.Namespace) -> int:
    from p11fast.check import run_check

    return run_check(args.config, uris=args.uris)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="p11fast", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("module-path", help="print the PKCS#11 library path").set_defaults(
        func=_module_path
    )
    check = sub.add_parser("check", help="diagnose the configuration and every HSM instance")
    check.add_argument("--config", help="config file (default: the module's search path)")
    check.add_argument(
        "--uris", action="store_true",
        help="also print the PKCS#11 URI (RFC 7512) of every object of every key",
    )  # fmt: skip
    check.set_defaults(func=_check)
    sub.add_parser("hsm", help="the software HSM (see `p11fast hsm --help`)", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["hsm"]:
            from p11fast.hsm.cli import main as hsm_main

            return hsm_main(argv[1:])
        args = build_parser().parse_args(argv)
        return args.func(args)
    except CommandError as exc:
        sys.stderr.write(f"p11fast: {exc}\n")
        return 1
