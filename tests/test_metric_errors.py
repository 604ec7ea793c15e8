"""Refused metric and loss input is a MetricInputError: a usage error (``bapps`` exits 2 with the
message) that is still a ValueError for API callers; no bare ``raise ValueError`` is left in the
metrics and losses except the listed internal checks."""
from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import bapps_toolkit
from bapps_toolkit.cli.main import main
from bapps_toolkit.errors import EXIT_INPUT, BappsError, MetricInputError, UsageError
from bapps_toolkit.losses import create_loss
from bapps_toolkit.metrics import create_metric

PACKAGE = Path(bapps_toolkit.__file__).resolve().parent

#: ``raise ValueError`` sites kept on purpose, by (file, enclosing function): count. Each is not
#: about the caller's input: an invariant the code above already guarantees, control flow caught
#: a few lines below, or a third-party library that failed or broke its own contract.
EXEMPT = {
    ("metrics/functional/dists.py", "dists_from_stages"): 1,  # unreachable after the stage-count check
    ("metrics/lpips.py", "LPIPS._head"): 1,  # unreachable: a backbone has at least one tap
    ("metrics/provenance.py", "calibration_from_metadata"): 1,  # caught at once (too-long metadata)
    ("metrics/adapters/_common.py", "AdapterMetric._distance"): 1,  # the library failed
    ("metrics/adapters/_common.py", "AdapterMetric._per_item"): 2,  # the library returned a wrong shape
}


def _value_error_raises(path: Path) -> list[str]:
    """The enclosing ``Class.function`` of every ``raise ValueError(...)`` in ``path``."""
    found: list[str] = []

    def visit(node: ast.AST, scope: tuple[str, ...]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                visit(child, (*scope, child.name))
                continue
            if isinstance(child, ast.Raise) and child.exc is not None:
                exc = child.exc.func if isinstance(child.exc, ast.Call) else child.exc
                if isinstance(exc, ast.Name) and exc.id == "ValueError":
                    found.append(".".join(scope))
            visit(child, scope)

    visit(ast.parse(path.read_text(encoding="utf-8")), ())
    return found


def test_no_bare_value_error_in_metrics_and_losses():
    sites: Counter[tuple[str, str]] = Counter()
    for sub in ("metrics", "losses"):
        for path in sorted((PACKAGE / sub).rglob("*.py")):
            for scope in _value_error_raises(path):
                sites[(path.relative_to(PACKAGE).as_posix(), scope)] += 1
    unexpected = {k: n for k, n in sites.items() if n > EXEMPT.get(k, 0)}
    assert not unexpected, f"raise MetricInputError (bapps_toolkit.errors) for refused input: {unexpected}"
    assert dict(sites) == EXEMPT, "an exempt raise ValueError moved or went away: update EXEMPT"


def test_the_ast_scan_sees_a_raise(tmp_path):
    path = tmp_path / "probe.py"
    path.write_text("class C:\n    def f(self, x):\n        if x:\n            raise ValueError('no')\n"
                    "        raise MetricInputError('fine')\n", encoding="utf-8")
    assert _value_error_raises(path) == ["C.f"]


def test_metric_input_error_is_a_usage_error_and_a_value_error():
    assert issubclass(MetricInputError, UsageError)
    assert issubclass(MetricInputError, ValueError)
    assert issubclass(MetricInputError, BappsError)
    assert MetricInputError("x").exit_code == EXIT_INPUT


@pytest.mark.parametrize("call", [
    lambda: create_metric("ssim")(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 17)),  # shapes differ
    lambda: create_metric("l2")(torch.full((1, 3, 8, 8), 5.0), torch.zeros(1, 3, 8, 8)),  # outside the range
    lambda: create_metric("ssim", k1=-1.0),  # a constant out of (0, 1)
    lambda: create_metric("l2", reduction="median"),  # unknown reduction
    lambda: create_loss("ssim", reduction="median"),
])
def test_refused_input_raises_metric_input_error(call):
    with pytest.raises(MetricInputError):
        call()


def test_cli_reports_a_metric_refusal_as_a_usage_error(tmp_path, capsys):
    refs = tmp_path / "refs"
    refs.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(refs / "a.png")
    rc = main(["mad", "l2", "ssim", "--out", str(tmp_path / "out"), "--references", str(refs), "--size", "16",
               "--steps", "1", "--metric-option", "ssim.k1=-1"])
    err = capsys.readouterr().err
    assert rc == EXIT_INPUT
    assert "bapps mad: error: ssim: k1 must satisfy 0 < k1 < 1, got -1.0" in err
    assert "unexpected error" not in err and "Traceback" not in err and "--debug" not in err
