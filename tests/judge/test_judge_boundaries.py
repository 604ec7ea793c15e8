"""SQL only in the judge's store modules, HTTP only in its app modules.

A scan of every module of :mod:`bapps_toolkit.judge`: a call of ``execute`` / ``executemany`` /
``executescript`` or a string that starts like an SQL statement may appear only in the SQLite
layer (``db.py``, ``store.py``, ``store_*.py``); ``flask`` may be imported only by ``app.py``, and
``waitress`` only by ``app.py`` and ``transport.py`` (the server plumbing). The checker is also run
on small sources so that it is seen to fail.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import bapps_toolkit.judge

JUDGE = Path(bapps_toolkit.judge.__file__).parent
SQL_MODULES = re.compile(r"(db|store|store_\w+)\.py")
HTTP_IMPORTS = {"flask": {"app.py"}, "werkzeug": {"app.py"}, "waitress": {"app.py", "transport.py"}}
_SQL_CALLS = {"execute", "executemany", "executescript"}
_SQL_TEXT = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER|PRAGMA|BEGIN|COMMIT|ROLLBACK|"
                       r"WITH\s+\w+\s+AS|VACUUM|ATTACH)\b")  # upper case, as every statement here is written


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def sql_sites(source: str) -> list[str]:
    """``line: what`` of every SQL call or SQL-looking string constant (docstrings aside) in ``source``."""
    tree = ast.parse(source)
    docs = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _SQL_CALLS:
            found.append(f"{node.lineno}: .{node.func.attr}()")
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs
              and _SQL_TEXT.match(node.value)):
            found.append(f"{node.lineno}: {node.value.strip()[:40]!r}")
    return found


def imported_roots(source: str) -> set[str]:
    """The top-level packages ``source`` imports (absolute imports only)."""
    roots = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def _modules() -> list[Path]:
    mods = sorted(JUDGE.glob("*.py"))
    assert len(mods) > 10, f"judge modules not found in {JUDGE}"
    return mods


def test_sql_lives_in_the_store_modules_only():
    """Across the whole package (the report reads study databases too, through the store)."""
    package = JUDGE.parent
    bad = [f"{p.relative_to(package)}:{site}" for p in sorted(package.rglob("*.py"))
           if not (p.parent == JUDGE and SQL_MODULES.fullmatch(p.name))
           for site in sql_sites(p.read_text(encoding="utf-8"))]
    assert not bad, "SQL outside judge/db.py, store.py and store_*.py:\n" + "\n".join(bad)


def test_the_store_modules_hold_sql():
    assert sql_sites((JUDGE / "store.py").read_text(encoding="utf-8"))
    assert sql_sites((JUDGE / "store_serve.py").read_text(encoding="utf-8"))
    assert sql_sites((JUDGE / "store_reports.py").read_text(encoding="utf-8"))


def test_http_lives_in_the_app_modules_only():
    bad = [f"{p.name} imports {root}" for p in _modules()
           for root in imported_roots(p.read_text(encoding="utf-8")) & set(HTTP_IMPORTS)
           if p.name not in HTTP_IMPORTS[root]]
    assert not bad, "HTTP outside judge/app.py (and transport.py for waitress):\n" + "\n".join(bad)
    assert "flask" in imported_roots((JUDGE / "app.py").read_text(encoding="utf-8"))


# --- the checkers themselves must be able to fail -----------------------------------------------

def test_sql_checker_finds_calls_and_statements():
    src = ('"""Docstring: SELECT the items."""\n'
           'Q = "SELECT id FROM items"\n'
           'def f(con):\n'
           '    """Insert a row."""\n'
           '    con.execute(Q)\n'
           '    con.executemany("insert into t values (?)", [])\n'
           '    return "DELETE FROM t WHERE id=1", "create the study first"\n')
    sites = sql_sites(src)
    assert sorted(int(s.split(":")[0]) for s in sites) == [2, 5, 6, 7], sites
    assert sql_sites('"""SELECT in a docstring only."""\nx = "Select the items"\n') == []


def test_http_checker_finds_imports():
    assert imported_roots("import flask\nfrom waitress.server import X\nfrom .app import y\n") == {"flask", "waitress"}
