"""The code blocks of a README section, for the tests that run the README's examples as written."""
from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def section_blocks(heading: str) -> tuple[str, list[str]]:
    """``(python block, shell commands)`` of the README section under ``heading`` (e.g. ``"## Your
    own metric"``), up to the next heading of the same level; continuation lines are joined."""
    level = heading.split(" ", 1)[0]
    section = README.read_text(encoding="utf-8").split(heading + "\n", 1)[1].split(f"\n{level} ", 1)[0]
    py = re.search(r"```python\n(.*?)```", section, re.S)
    sh = re.search(r"```bash\n(.*?)```", section, re.S)
    assert py and sh, f"README section {heading!r} lost its python or bash block"
    return py.group(1), [c for c in sh.group(1).replace("\\\n", " ").splitlines() if c.strip()]
