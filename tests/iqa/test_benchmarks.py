"""Scoring replicas with metrics, the cross-benchmark table and the CLI route."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from scipy import stats

from bapps_toolkit.cli.main import main
from bapps_toolkit.data.iqa import loader
from bapps_toolkit.evaluate.benchmarks import cross_table, evaluate_benchmarks
from bapps_toolkit.report import benchmark_tables as bt
from bapps_toolkit.scores import score_2afc


@pytest.fixture(scope="module")
def result(replica_root):
    # diverging logistic fits on resamples are handled by status codes, not shown as RuntimeWarnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        return evaluate_benchmarks(replica_root, ["l2", "psnr"], n_boot=30, seed=0, device="cpu",
                                   compare=("l2", "psnr"))


def test_correlation_figures_match_direct_computation(result, replica_root):
    tid = loader("tid2013")(replica_root / "tid2013")
    ref = np.stack([np.asarray(__import__("PIL.Image").Image.open(p).convert("RGB"), np.float64) for p in tid.ref])
    dist = np.stack([np.asarray(__import__("PIL.Image").Image.open(p).convert("RGB"), np.float64) for p in tid.dist])
    mse = (((ref - dist) / 127.5) ** 2).mean(axis=(1, 2, 3))
    row = next(r for r in result.rows if r["benchmark"] == "tid2013" and r["metric"] == "l2"
               and r["part"] == "all" and r["figure"] == "srcc")
    assert row["value"] == pytest.approx(stats.spearmanr(-mse, tid.score).statistic, abs=1e-6)
    assert row["value"] > 0.3 and row["ci_low"] <= row["value"] <= row["ci_high"]
    assert row["synthetic"] and "MOS" in row["direction"]
    # DMOS set: positive correlation of the distance itself
    live = next(r for r in result.rows if r["benchmark"] == "live" and r["metric"] == "l2"
                and r["part"] == "all" and r["figure"] == "srcc")
    assert live["value"] > 0.3 and "DMOS" in live["direction"]


def test_nights_parts(result, replica_root):
    from bapps_toolkit.data.iqa.nights import load

    parts = {r["part"]: r for r in result.rows if r["benchmark"] == "nights" and r["metric"] == "l2"}
    assert set(parts) == {"val", "test_imagenet", "test_no_imagenet", "test"}
    n = {k: v["n"] for k, v in parts.items()}
    total = (parts["test_imagenet"]["value"] * n["test_imagenet"]
             + parts["test_no_imagenet"]["value"] * n["test_no_imagenet"]) / n["test"]
    assert parts["test"]["value"] == pytest.approx(total)
    assert 0 <= parts["val"]["value"] <= 1
    assert len(load(replica_root / "nights", "val")) == n["val"]
    assert score_2afc([0.1], [0.2], [1.0]) == 0.0  # p1 preferred but farther: no agreement


def test_cross_table_and_formats(result):
    labels, cols, cells = cross_table(result.rows)
    assert labels == ["l2", "psnr"]
    assert cols[0] == "NIGHTS 2AFC" and "tid2013 SRCC" in cols and "live SRCC" in cols
    md = bt.cross_markdown(result)
    assert md.splitlines()[0].endswith("SYNTHETIC DATA") and bt.SYNTHETIC_NOTE in md
    assert "| l2 |" in md and "A − B" in md
    doc = json.loads(bt.cross_json(result))
    assert doc["synthetic"] and doc["columns"] == cols and doc["comparisons"]
    tex = bt.cross_latex(result)
    assert r"\begin{tabular}" in tex and "SYNTHETIC" in tex
    assert r"\label{tab:benchmarks-compare}" in tex and "l2 - psnr" in tex
    csv_text = bt.cross_csv(result)
    assert csv_text.splitlines()[0].startswith("metric,label,calibrated,benchmark")
    compare_rows = [line for line in csv_text.splitlines() if line.startswith("l2 - psnr,")]
    assert len(compare_rows) == len(result.comparisons) and csv_text.splitlines()[0].endswith(",p_value")
    for c in result.comparisons:  # one rule: p < 0.05 exactly when the interval excludes 0
        assert (c["p_value"] < 0.05) == (not c["ci_low"] <= 0 <= c["ci_high"])
    per = bt.per_type_markdown(result, "csiq")
    assert "jpeg2000" in per and "SYNTHETIC" in per


def test_plot(result, tmp_path):
    pytest.importorskip("matplotlib")
    from bapps_toolkit.report.benchmark_plots import save_benchmark_plot

    out = save_benchmark_plot(result, tmp_path / "fig.png")
    assert out.stat().st_size > 10_000
    with pytest.raises(ValueError, match="PNG"):
        save_benchmark_plot(result, tmp_path / "fig.pdf")


def test_cli_routes_to_benchmarks(replica_root, tmp_path, capsys):
    rc = main(["evaluate", str(replica_root / "kadid10k"), "--metrics", "l2", "--n-boot", "10",
               "--out", str(tmp_path / "r.csv"), "--json", str(tmp_path / "r.json"), "--device", "cpu"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "Cross-benchmark evaluation — SYNTHETIC DATA" in out and "kadid10k SRCC" in out
    assert (tmp_path / "r.csv").exists()
    rc = main(["evaluate", str(replica_root / "tid2013"), "--format", "tid2013", "--metrics", "l2",
               "--n-boot", "5", "--device", "cpu", "--quiet"])
    assert rc == 0
