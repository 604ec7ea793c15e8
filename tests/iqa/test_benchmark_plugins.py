"""Benchmarks as plug-ins: one file adds a data set to download, pack, verify and evaluate.

A toy set registered from a file the user names (``--benchmark-plugin toy.py:Toy``) and one
registered through the ``bapps_toolkit.benchmarks`` entry point of an installed distribution are
each evaluated with a metric through ``bapps evaluate``; its figures equal those computed directly.
"""
from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from bapps_toolkit.cli.main import main
from bapps_toolkit.data.iqa import CorrelationBenchmark, registry
from bapps_toolkit.errors import DataError

from .toy_benchmark import build_toy, toy_source


@pytest.fixture
def forget() -> Iterator[list[str]]:
    """Names to drop from the registry after the test (plugins are process-wide)."""
    names: list[str] = []
    yield names
    for name in names:
        if name in registry.benchmarks():
            registry.unregister_benchmark(name)


def _l2_srcc(root: Path) -> float:
    """SRCC of -L2 against the toy MOS, computed without the benchmark machinery."""
    import torch

    from bapps_toolkit.data import to_model_input
    from bapps_toolkit.data.images import read_rgb
    from bapps_toolkit.metrics import create_metric

    metric = create_metric("l2")
    with open(root / "toy_scores.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    d = []
    for r in rows:
        x = to_model_input(np.stack([read_rgb(root / "images" / r["ref"]), read_rgb(root / "images" / r["dist"])]))
        with torch.no_grad():
            d.append(float(metric(x[:1], x[1:])[0]))
    return float(stats.spearmanr(-np.array(d), [float(r["mos"]) for r in rows]).statistic)


def _srcc_row(csv_path: Path, bench: str) -> dict[str, str]:
    with open(csv_path, newline="") as f:
        rows = [r for r in csv.DictReader(f)
                if r["benchmark"] == bench and r["part"] == "all" and r["figure"] == "srcc" and r["metric"] == "l2"]
    assert len(rows) == 1, rows
    return rows[0]


def test_file_plugin_evaluated_through_cli(tmp_path, capsys, forget):
    forget.append("toy")
    plugin = tmp_path / "toy.py"
    plugin.write_text(toy_source("toy"))
    root = build_toy(tmp_path / "toyset")
    out = tmp_path / "rows.csv"
    assert main(["evaluate", str(root), "--metrics", "l2", "--benchmark-plugin", f"{plugin}:Toy",
                 "--n-boot", "50", "--device", "cpu", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "toy SRCC" in printed and "SYNTHETIC" in printed.upper()
    row = _srcc_row(out, "toy")
    assert row["n"] == "9" and row["synthetic"] == "True"
    assert float(row["value"]) == pytest.approx(_l2_srcc(root), abs=1e-12)


def test_file_plugin_packs_verifies_and_evaluates_packed(tmp_path, capsys, forget):
    forget.append("toy")
    plugin = f"{tmp_path / 'toy.py'}:Toy"
    (tmp_path / "toy.py").write_text(toy_source("toy"))
    root = build_toy(tmp_path / "toyset")
    h5 = tmp_path / "toy.h5"
    assert main(["pack", str(root), str(h5), "--benchmark-plugin", plugin, "--no-progress"]) == 0
    assert "packed toy (9 items" in capsys.readouterr().out
    assert main(["verify", str(h5)]) == 0
    assert "toy: 9 items" in capsys.readouterr().out
    out = tmp_path / "rows.csv"
    assert main(["evaluate", str(h5), "--metrics", "l2", "--benchmark-plugin", plugin, "--n-boot", "50",
                 "--device", "cpu", "--out", str(out), "--quiet"]) == 0
    assert float(_srcc_row(out, "toy")["value"]) == pytest.approx(_l2_srcc(root), abs=1e-12)
    assert main(["download", "--dataset", "toy", "--root", str(tmp_path / "dl"), "--benchmark-plugin", plugin]) == 1
    assert "Nothing to download: build" in capsys.readouterr().out


def test_entry_point_plugin_evaluated_through_cli(tmp_path, monkeypatch, capsys, forget):
    forget.append("toyep")
    pkg = tmp_path / "site"
    pkg.mkdir()
    (pkg / "toy_ep_bench.py").write_text(toy_source("toyep"))
    dist = pkg / "toy_bench_pkg-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-bench-pkg\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[{registry.ENTRY_POINT_GROUP}]\ntoyep = toy_ep_bench:Toy\n")
    monkeypatch.syspath_prepend(str(pkg))
    assert "toyep" in registry.benchmark_names("correlation")
    root = build_toy(tmp_path / "toyset")
    out = tmp_path / "rows.csv"
    assert main(["evaluate", str(root), "--metrics", "l2", "--n-boot", "50", "--device", "cpu",
                 "--out", str(out), "--quiet"]) == 0
    assert float(_srcc_row(out, "toyep")["value"]) == pytest.approx(_l2_srcc(root), abs=1e-12)
    capsys.readouterr()
    monkeypatch.setattr("sys.argv", ["bapps"])
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    assert "toyep (Toy: a few noisy photos" in capsys.readouterr().out.replace("\n", " ").replace("  ", " ")


def test_a_folder_never_names_code(tmp_path, capsys, forget):
    """Without the user's spec the toy folder is not recognised: no data file loads a plugin."""
    root = build_toy(tmp_path / "toyset")
    (root / "toy.py").write_text(toy_source("toy") + "\nraise SystemExit('imported')\n")
    assert main(["evaluate", str(root), "--metrics", "l2", "--n-boot", "5", "--device", "cpu", "--quiet"]) == 2
    assert "no known benchmark layout" in capsys.readouterr().err
    assert main(["evaluate", str(root), "--metrics", "l2", "--format", "toy", "--quiet"]) == 2
    assert "unknown benchmark format 'toy'" in capsys.readouterr().err


@pytest.mark.parametrize(("spec", "message"), [
    ("missing.py:Toy", "does not exist"),
    ("toy.py", "expected path/to/file.py:Class"),
    ("toy.py:Nope", "has no attribute 'Nope'"),
    ("toy.py:np", "is not a benchmark"),
])
def test_bad_plugin_specs_are_named(tmp_path, monkeypatch, spec, message, forget):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "toy.py").write_text(toy_source("toy"))
    with pytest.raises(DataError, match=message):
        registry.load_benchmark_plugin(spec)


@pytest.mark.parametrize(("attr", "value", "message"), [
    ("name", "Bad Name", "should be 1-40"),
    ("name", "bapps", "taken by the BAPPS loaders"),
    ("name", "tid2013", "already registered"),
    ("kind", "jnd", "has kind 'jnd'"),
    ("signature", (), "empty signature"),
])
def test_invalid_benchmarks_are_refused(attr, value, message):
    class Bad(CorrelationBenchmark):
        name = "bad"
        title = "Bad"
        signature = ("x.csv",)

    setattr(Bad, attr, value)
    with pytest.raises(DataError, match=message):
        registry.register_benchmark(Bad)
    assert "bad" not in registry.benchmarks()


def test_builtins_are_registered_and_cannot_be_removed():
    assert registry.benchmark_names() [:7] == registry.BUILTIN_MODULES
    assert registry.benchmark_names("2afc") == ("nights",)
    with pytest.raises(DataError, match="built in"):
        registry.unregister_benchmark("tid2013")
