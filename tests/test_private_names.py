"""No module of the package reaches into another module's private names (``_name``): what one
module uses of another is public there (a private *module* such as ``_io`` is fine; its public
names are the core's internal API). Scanned from the syntax trees, with a planted case that the
scan must catch."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "bapps_toolkit"


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_uses(source: str, where: str) -> list[str]:
    """``where:line: name`` for each private name imported from, or read off, a package module."""
    tree = ast.parse(source)
    found, modules = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            inside = node.level > 0 or (node.module or "").startswith("bapps_toolkit")
            for alias in node.names:
                if inside and _private(alias.name):
                    found.append(f"{where}:{node.lineno}: from {'.' * node.level}{node.module or ''} "
                                 f"import {alias.name}")
                elif inside:
                    modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            modules.update(a.asname or a.name for a in node.names if a.name.startswith("bapps_toolkit"))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
                and _private(node.attr)):
            found.append(f"{where}:{node.lineno}: {node.value.id}.{node.attr}")
    return found


def test_no_module_imports_another_modules_private_names():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        found += private_uses(path.read_text(encoding="utf-8"), str(path.relative_to(PACKAGE.parent)))
    assert not found, "private names used across modules (make them public where they are defined):\n" + \
        "\n".join(found)


def test_the_scan_catches_planted_uses():
    planted = ("from .plots import _helper, public\nfrom bapps_toolkit.scores import _x\n"
               "from . import nets\nprint(nets._ALIASES)\nimport os\nos._exit(0)\n")
    found = private_uses(planted, "m.py")
    assert [f.split(": ", 1)[1] for f in found] == ["from .plots import _helper",
                                                    "from bapps_toolkit.scores import _x", "nets._ALIASES"]
