"""MkDocs hook: the CLI reference page, rendered at build time from the real ``bapps`` parser.

``docs/reference/cli.md`` holds the marker ``<!-- cli-reference -->``; :func:`on_page_markdown`
replaces it with the ``--help`` of ``bapps`` and of every sub-command (nested ones included, such
as ``bapps judge serve``), each under its own heading, so the page cannot drift from the code.
"""
from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from typing import Any

MARKER = "<!-- cli-reference -->"
PAGE = "reference/cli.md"
WIDTH = "78"


def _subparsers(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """``(name, parser)`` of every direct sub-command of ``parser``, in the order ``--help`` lists them."""
    for action in parser._actions:  # argparse keeps its sub-commands only here
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def walk(parser: argparse.ArgumentParser, prefix: str = "bapps") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """``(full command, parser)`` of ``parser`` and of every sub-command below it, depth first."""
    yield prefix, parser
    for name, sub in _subparsers(parser):
        yield from walk(sub, f"{prefix} {name}")


def render() -> str:
    """The Markdown of the CLI reference: one section per command with its ``--help`` verbatim."""
    from bapps_toolkit.cli.main import build_parser

    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH  # argparse wraps help to the terminal width; fix it for the page
    try:
        parts = []
        for command, parser in walk(build_parser()):
            level = "#" * min(2 + command.count(" "), 4)
            parts.append(f"{level} `{command}`\n\n```text\n{parser.format_help().rstrip()}\n```\n")
    finally:
        if saved is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = saved
    return "\n".join(parts)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs event: fill the marker of the CLI reference page; other pages pass unchanged."""
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        raise ValueError(f"{PAGE} lost its marker {MARKER!r}")
    return markdown.replace(MARKER, render())
