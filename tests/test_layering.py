"""The package's import graph follows the data flow, and its modules and functions stay small.

Every module of ``bapps_toolkit`` is parsed with :mod:`ast`; every ``import`` and ``from … import``
— at module level *and* inside functions, classes and ``if TYPE_CHECKING`` blocks — becomes an edge
between two modules. An edge is allowed when it stays inside one top-level package or goes to a
lower layer:

==========  =================================================================
layer        packages (``bapps_toolkit.<name>``)
==========  =================================================================
0 (core)     ``_version``, ``errors``, ``_io``, ``_download``, ``_device``, ``_distributed``, ``_bootstrap``, ``_lazy``,
             ``_workers``
1            ``data``, ``metrics``  (never each other)
2            ``scores``, ``correlation``, ``losses``, ``calibration``
3            ``train``, ``evaluate``, ``study``, ``judge``, ``competition``  (never each other)
4            ``report``
5            ``cli``
==========  =================================================================

The package's own ``__init__`` and ``__main__`` are its façade and may import anything. Any cycle
between modules (through function-level imports too) fails the test as well.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "bapps_toolkit"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

LAYERS: dict[str, int] = {
    "_version": 0, "errors": 0, "_io": 0, "_download": 0, "_device": 0, "_distributed": 0, "_bootstrap": 0, "_lazy": 0,
    "_plugin_files": 0,
    "_workers": 0, "_plot": 0,
    "data": 1, "metrics": 1,
    "scores": 2, "correlation": 2, "losses": 2, "calibration": 2,
    "train": 3, "evaluate": 3, "scoring": 3, "study": 3, "judge": 3, "competition": 3,
    "report": 4,
    "cli": 5,
}
FACADE = {PACKAGE, f"{PACKAGE}.__main__"}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _import_candidates(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    """``from X import a, b`` may name submodules ``X.a``/``X.b`` or attributes of ``X``."""
    if node.level == 0:
        base = node.module or ""
    else:
        anchor = module.split(".") if is_package else module.split(".")[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join(anchor + ([node.module] if node.module else []))
    return [f"{base}.{alias.name}" for alias in node.names]


def imports_of(path: Path, root: Path = ROOT) -> set[str]:
    """Every name that ``path`` imports from inside the package (all nesting levels)."""
    module = module_name(path, root)
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.update(_import_candidates(module, is_package, node))
    return {m for m in found if m == root.name or m.startswith(root.name + ".")}


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the modules it imports; an imported attribute counts as its module."""
    modules = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for target in imports_of(path, root):
            while target not in modules and "." in target:
                target = target.rsplit(".", 1)[0]
            if target != name:
                targets.add(target)
        graph[name] = targets
    return graph


def top_package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layering_violations(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for source, targets in sorted(graph.items()):
        if source in FACADE:
            continue
        src = top_package(source)
        for target in sorted(targets):
            dst = top_package(target)
            if target == PACKAGE:
                bad.append(f"{source} -> {target} (the facade)")
            elif src == dst or LAYERS.get(src) == LAYERS.get(dst) == 0:
                continue  # inside one package, or between the core modules
            elif src not in LAYERS or dst not in LAYERS:
                bad.append(f"{source} -> {target} (package without a layer: add it to LAYERS)")
            elif LAYERS[dst] >= LAYERS[src]:
                bad.append(f"{source} -> {target} (layer {LAYERS[src]} -> {LAYERS[dst]})")
    return bad


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_no_import_against_the_data_flow():
    bad = layering_violations(import_graph())
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_no_import_cycles():
    graph = {k: v for k, v in import_graph().items() if k not in FACADE}
    cycles = find_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_every_top_level_package_has_a_layer():
    names = {p.stem if p.is_file() else p.name for p in ROOT.iterdir()
             if (p.suffix == ".py" or (p / "__init__.py").exists()) and p.name != "__pycache__"}
    names -= {"__init__", "__main__"}
    assert names <= set(LAYERS), f"unlayered: {sorted(names - set(LAYERS))}"


def test_modules_and_functions_stay_small():
    too_long = []
    for path in sorted(ROOT.rglob("*.py")):
        lines = path.read_text(encoding="utf-8").count("\n")
        if lines > MAX_MODULE_LINES:
            too_long.append(f"{path.relative_to(ROOT.parent)}: {lines} lines")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.relative_to(ROOT.parent)}:{node.lineno} {node.name}: {n} lines")
    assert not too_long, "over the size limits:\n" + "\n".join(too_long)


# --- the checker itself must be able to fail -------------------------------------------------

def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / PACKAGE
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def test_checker_reports_upward_function_level_import(tmp_path):
    root = _tree(tmp_path, {
        "__init__.py": "", "metrics/__init__.py": "",
        "metrics/m.py": "def f():\n    from ..train import loop\n",
        "train/__init__.py": "", "train/loop.py": "from ..metrics import m\n",
    })
    graph = import_graph(root)
    assert layering_violations(graph) == [
        "bapps_toolkit.metrics.m -> bapps_toolkit.train.loop (layer 1 -> 3)"]
    assert find_cycles(graph) == [["bapps_toolkit.metrics.m", "bapps_toolkit.train.loop"]]


@pytest.mark.parametrize("code, target", [
    ("from bapps_toolkit.evaluate.runner import x\n", "bapps_toolkit.evaluate.runner"),
    ("import bapps_toolkit.evaluate\n", "bapps_toolkit.evaluate"),
    ("from ..evaluate import runner\n", "bapps_toolkit.evaluate.runner"),
])
def test_checker_resolves_every_import_form(tmp_path, code, target):
    root = _tree(tmp_path, {
        "__init__.py": "", "train/__init__.py": "", "train/a.py": code,
        "evaluate/__init__.py": "", "evaluate/runner.py": "",
    })
    assert import_graph(root)["bapps_toolkit.train.a"] == {target}
    assert layering_violations(import_graph(root)) == [
        f"bapps_toolkit.train.a -> {target} (layer 3 -> 3)"]
