"""Griffe extension for the API reference: the package's reStructuredText habits as Markdown.

Many docstrings use reST inline markup (````x````, ``:func:`~a.b```) and bare doctest lines
(``>>> ...``) outside an ``Examples:`` section. Before mkdocstrings renders a docstring this
extension turns double back-quotes into code spans, roles into code spans of the object's
name, and each run of ``>>>`` / ``...`` lines into a fenced ``pycon`` block, so the pages read as
the source means them. Google sections (``Args:``, ``Returns:`` …) are left to the parser.
"""
from __future__ import annotations

import re
from typing import Any

from griffe import Extension, Object

_ROLE = re.compile(r":(?:py:)?[a-z]+:`(~?)([^`<]+?)(?:\s*<[^>]+>)?`")
_LITERAL = re.compile(r"``([^`]+)``")
_PROMPT = re.compile(r"^(\s*)(>>>|\.\.\.)( |$)")


def _role(match: re.Match[str]) -> str:
    target = match.group(2).strip()
    return f"`{target.rsplit('.', 1)[-1] if match.group(1) else target}`"


def _fence_doctests(lines: list[str]) -> list[str]:
    """Each run of doctest lines (prompts and the output lines that follow) in a pycon fence."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        prompt = _PROMPT.match(lines[i])
        if not prompt or lines[i].strip().startswith("..."):
            out.append(lines[i])
            i += 1
            continue
        indent = prompt.group(1)
        block = []
        while i < len(lines) and lines[i].strip() and lines[i].startswith(indent):
            block.append(lines[i][len(indent):])
            i += 1
        out += [f"{indent}```pycon", *(indent + b for b in block), f"{indent}```"]
    return out


def to_markdown(text: str) -> str:
    """``text`` (a docstring) with reST roles, literals and bare doctest lines made Markdown."""
    text = _ROLE.sub(_role, text)
    text = _LITERAL.sub(r"`\1`", text)
    text = re.sub(r"(\S)::$", r"\1:", text, flags=re.M)
    return "\n".join(_fence_doctests(text.split("\n")))


class RstToMarkdown(Extension):
    """Rewrite every docstring with :func:`to_markdown` once the object tree is built."""

    def on_object(self, *, obj: Object, **kwargs: Any) -> None:
        """Griffe event, for every object: rewrite its docstring in place."""
        if obj.docstring is not None and not obj.is_alias:
            obj.docstring.value = to_markdown(obj.docstring.value)
