"""The argument parser every ``bapps`` command uses: no abbreviated flags, help text in plain words.

:class:`BappsParser` is an ``argparse.ArgumentParser`` that refuses abbreviated flags
(``--metric`` is not taken as ``--metrics``) and formats help with :class:`HelpFormatter`; the
sub-command parsers made from it (``add_subparsers``), nested ones included, are of the same
class. :func:`examples` builds the epilog that ends each sub-command's ``--help``.
"""
from __future__ import annotations

import argparse
import re
import textwrap
from typing import Any

_ROLE = re.compile(r":[a-z]+(?::[a-z]+)?:`~?([^`]+)`")   # :func:`~a.b.c` / :py:class:`x`
_LITERAL = re.compile(r"``([^`]+)``")                      # ``x``
_TICKED = re.compile(r"`([^`]+)`")                         # `x`
_ITEM = re.compile(r"^\s*(\d+\.|[-*])\s+")                  # 1. item / - item / * item


def plain(text: str) -> str:
    """``text`` with its reStructuredText markup turned into plain words.

    ``x`` -> x, :func:`~a.b.c` -> c, `x` -> 'x', a literal-block ``::`` -> ``:``.
    """
    text = _ROLE.sub(lambda m: m.group(1).rsplit(".", 1)[-1] if m.group(0).count("~") else m.group(1), text)
    text = _LITERAL.sub(r"\1", text)
    text = _TICKED.sub(r"'\1'", text)
    return re.sub(r"(\S)::(\s|$)", r"\1:\2", text)


def _fill_list(lines: list[str], width: int, indent: str) -> list[str]:
    """Numbered or bulleted items (continuation lines indented), each wrapped with a hanging indent."""
    items: list[list[str]] = []
    for line in lines:
        if _ITEM.match(line) or not items:
            items.append([line.strip()])
        else:
            items[-1].append(line.strip())
    out: list[str] = []
    for item in items:
        text = " ".join(item)
        m = _ITEM.match(text)
        hang = " " * (len(m.group(0)) if m else 0)
        out += textwrap.wrap(text, width, initial_indent=indent, subsequent_indent=indent + hang,
                             break_on_hyphens=False) or [indent]
    return out


def _fill_block(block: str, width: int, indent: str) -> list[str]:
    lines = block.splitlines()
    if _ITEM.match(lines[0]):
        return _fill_list(lines, width, indent)
    out: list[str] = []
    words: list[str] = []
    for line in lines + [" "]:
        if line[:1].isspace() or line == " ":  # indented lines (commands, examples) stay as written
            if words:
                out += textwrap.wrap(" ".join(words), width, initial_indent=indent, subsequent_indent=indent,
                                     break_on_hyphens=False)
                words = []
            if line.strip():
                out.append(indent + line.rstrip())
        else:
            words += line.split()
    return out


class HelpFormatter(argparse.HelpFormatter):
    """Paragraphs wrapped to the terminal, indented lines and list items kept as written.

    reStructuredText markup (docstrings serve as descriptions) is shown as plain words.
    """

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        blocks = [b for b in re.split(r"\n\s*\n", textwrap.dedent(plain(text)).strip("\n")) if b.strip()]
        return "\n\n".join("\n".join(_fill_block(b, width, indent)) for b in blocks)

    def _split_lines(self, text: str, width: int) -> list[str]:
        return super()._split_lines(plain(text), width)


#: Namespace attribute naming the deepest parser that parsed the command line.
PARSER_DEST = "bapps_parser"


class BappsParser(argparse.ArgumentParser):
    """``ArgumentParser`` with ``allow_abbrev=False`` and :class:`HelpFormatter` by default.

    Each parser records itself as the default of :data:`PARSER_DEST`, so the namespace of a
    parsed command line names the sub-command parser it reached (:func:`parser_of`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        self.set_defaults(**{PARSER_DEST: self})


def parser_of(args: argparse.Namespace, default: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The deepest (sub-)command parser that parsed ``args`` (``default`` when none recorded).

    Args:
        args: a namespace returned by a :class:`BappsParser`.
        default: the parser to use when ``args`` names none.

    Returns:
        The parser whose usage an error about ``args`` should print.
    """
    found = getattr(args, PARSER_DEST, None)
    return found if isinstance(found, argparse.ArgumentParser) else default


def at_least(low: float, kind: type[int] | type[float] = int) -> Any:
    """An argparse ``type`` that reads a number of ``kind`` and refuses one below ``low``.

    Args:
        low: the smallest value accepted.
        kind: ``int`` or ``float``.

    Returns:
        The converter (its errors read ``argument --flag: must be >= low, got X``).
    """
    def convert(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low:g}, got {text}")
        return value

    convert.__name__ = f"{kind.__name__} >= {low:g}"
    return convert


def in_range(low: float, high: float) -> Any:
    """An argparse ``type``: a float in ``(low, high]``.

    Args:
        low: the bound the value must exceed.
        high: the largest value accepted.

    Returns:
        The converter (its errors read ``argument --flag: must lie in (low, high], got X``).
    """
    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not low < value <= high:
            raise argparse.ArgumentTypeError(f"must lie in ({low:g}, {high:g}], got {text}")
        return value

    convert.__name__ = f"float in ({low:g}, {high:g}]"
    return convert


def examples(*lines: str) -> str:
    """The epilog of a sub-command: ``examples:`` and the command lines, one per line.

    Each line is a real ``bapps …`` invocation (tests/test_help_audit.py parses every one with the parser).
    """
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


__all__ = ["PARSER_DEST", "BappsParser", "HelpFormatter", "at_least", "examples", "in_range", "parser_of", "plain"]
