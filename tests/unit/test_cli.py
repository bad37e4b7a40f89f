"""The command line as `--help` shows it: every option says what it does."""

from __future__ import annotations

import argparse

import pytest

from p11fast import cli
from p11fast.hsm import cli as hsm_cli


def parsers(parser: argparse.ArgumentParser, name: str):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from parsers(sub, f"{name} {sub_name}")


ALL = [*parsers(cli.build_parser(), "p11fast"), *parsers(hsm_cli.build_parser(), "p11fast hsm")]


@pytest.mark.parametrize("name,parser", ALL, ids=[name for name, _ in ALL])
def test_every_option_has_a_description(name, parser) -> None:
    bare = [
        action.option_strings
        for action in parser._actions
        if action.option_strings and not action.help and action.dest != "help"
    ]
    assert bare == [], f"{name}: options without help"


def test_every_subcommand_has_a_description() -> None:
    for name, parser in ALL:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                described = {choice.dest for choice in action._choices_actions}
                assert described == set(action.choices), name
