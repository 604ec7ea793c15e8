"""Every sub-command parser of the ``bapps`` command line, for the tests that audit the parser."""
from __future__ import annotations

import argparse
from collections.abc import Iterator


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The sub-command parsers directly under ``parser``, by name (empty when it has none)."""
    act = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    return dict(act.choices) if act is not None else {}


def command_tree(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
                 ) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """``(path, parser)`` of every sub-command parser under ``parser``, depth first."""
    for name, sub in subparsers(parser).items():
        yield path + (name,), sub
        yield from command_tree(sub, path + (name,))
