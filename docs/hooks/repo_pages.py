"""MkDocs hook: pages that are files of the repository root (``CONTRIBUTING.md``, ``SECURITY.md``).

``docs/contributing.md`` and ``docs/security.md`` hold only the marker ``<!-- include NAME -->``;
:func:`on_page_markdown` puts the root file's text in its place, so there is one copy of each.
The root files link to the docs as ``docs/<page>.md`` (so that the links work where the files are
read on their own: GitHub, a clone); inside the site those pages live at the docs root, so the
``docs/`` prefix of their links is dropped.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
_MARKER = re.compile(r"<!-- include ([A-Z]+\.md) -->")
_LINK = re.compile(r"\]\(docs/")


def include(markdown: str) -> str:
    """``markdown`` with each include marker replaced by the root file it names, links adjusted."""
    def text_of(match: re.Match[str]) -> str:
        return _LINK.sub("](", (ROOT / match.group(1)).read_text(encoding="utf-8"))

    return _MARKER.sub(text_of, markdown)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs event: fill the include markers of a page; pages without one pass unchanged."""
    return include(markdown)
