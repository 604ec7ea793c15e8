"""The code blocks of a documentation section, for the tests that run the docs' examples as written.

The examples that used to live in the README are now in the task guides under ``docs/``; the
tests read them from there (``section_blocks("tasks/own-metric.md", "## Your own metric")``).
"""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"


def section_text(page: str, heading: str) -> str:
    """The text of a section of a docs page, up to the next heading of the same level.

    Args:
        page: Path of the page under ``docs/`` (``"tasks/own-metric.md"``).
        heading: The section's heading line (``"## Your own metric"``).

    Returns:
        The section's text without its heading.
    """
    level = heading.split(" ", 1)[0]
    text = (DOCS / page).read_text(encoding="utf-8")
    assert heading + "\n" in text, f"docs/{page} lost its section {heading!r}"
    return text.split(heading + "\n", 1)[1].split(f"\n{level} ", 1)[0]


def section_blocks(page: str, heading: str) -> tuple[str, list[str]]:
    """The first python block and the shell commands of a section of a docs page.

    Args:
        page: Path of the page under ``docs/``.
        heading: The section's heading line.

    Returns:
        ``(python block, shell commands)``; continuation lines of the commands are joined.
    """
    section = section_text(page, heading)
    py = re.search(r"```python\n(.*?)```", section, re.S)
    sh = re.search(r"```bash\n(.*?)```", section, re.S)
    assert py and sh, f"docs/{page} section {heading!r} lost its python or bash block"
    return py.group(1), [c for c in sh.group(1).replace("\\\n", " ").splitlines() if c.strip()]
