"""`p11fast` command line: module-path, check, p11-kit-module, and the software HSM
(`p11fast hsm …`)."""

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


def _p11kit_module(args: argparse.Namespace) -> int:
    from p11fast import p11kit

    text = p11kit.module_file()
    if not args.install:
        sys.stdout.write(text)
        return 0
    try:
        path = p11kit.install(text, system=args.system)
    except OSError as exc:
        hint = " (system-wide needs root)" if args.system else ""
        raise CommandError(f"cannot write {exc.filename or 'the module file'}: "
                           f"{exc.strerror}{hint}") from None  # fmt: skip
    print(f"wrote {path}; `p11-kit list-modules` shows the module")
    return 0


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
    p11kit = sub.add_parser(
        "p11-kit-module",
        help="print the p11-kit module file that registers p11fast (see --install)",
    )
    p11kit.add_argument(
        "--install", action="store_true",
        help="write it to ~/.config/pkcs11/modules/p11fast.module instead of printing it",
    )  # fmt: skip
    p11kit.add_argument(
        "--system", action="store_true",
        help="with --install: write /etc/pkcs11/modules/p11fast.module (all users)",
    )  # fmt: skip
    p11kit.set_defaults(func=_p11kit_module)
    sub.add_parser("hsm", help="the software HSM (see `p11fast hsm --help`)", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["hsm"]:
            from p11fast.hsm.cli import main as hsm_main

            return hsm_main(argv[1:])
        args = build_parser().parse_args(argv)
        if getattr(args, "system", False) and not args.install:
            raise CommandError("--system goes with --install")
        return args.func(args)
    except CommandError as exc:
        sys.stderr.write(f"p11fast: {exc}\n")
        return 1
