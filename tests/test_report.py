"""Table-5-style reports and plots, from a hand-built tidy table (no metric or data needed)."""
import json

import numpy as np
import pandas as pd
import pytest

from bapps_toolkit.evaluate import COLUMNS, EvaluationResult, SetDistances
from bapps_toolkit.report import tables
from bapps_toolkit.scores import HUMAN, MEAN_CATEGORY

UNCAL = "lpips-alex [UNCALIBRATED: random backbone]"


def _table(synthetic=True, calibrated_lpips=False):
    rows = []
    lp_label = "lpips-alex" if calibrated_lpips else UNCAL

    def add(metric, label, cal, mode, split, cat, score):
        rows.append(dict(metric=metric, label=label, calibrated=cal, mode=mode, split=split,
                         category=cat, n=100, score=score, ci_low=score - 0.02, ci_high=score + 0.03,
                         synthetic=synthetic))

    for metric, label, cal, base in (("l2", "l2", True, 0.60), ("lpips-alex", lp_label, calibrated_lpips, 0.70)):
        add(metric, label, cal, "2afc", "val", "traditional", base)
        add(metric, label, cal, "2afc", "val", "cnn", base + 0.1)
        add(metric, label, cal, "2afc", "val", MEAN_CATEGORY, base + 0.05)
        add(metric, label, cal, "2afc", "val", "color", base - 0.05)
        add(metric, label, cal, "jnd", "val", "cnn", base - 0.1)
    add(HUMAN, "human (ceiling)", True, "2afc", "val", "traditional", 0.8)
    add(HUMAN, "human (ceiling)", True, "2afc", "val", "cnn", 0.84)
    add(HUMAN, "human (ceiling)", True, "2afc", "val", MEAN_CATEGORY, 0.82)
    add(HUMAN, "human (ceiling)", True, "2afc", "val", "color", 0.7)
    t = pd.DataFrame(rows, columns=COLUMNS)
    t.attrs.update(n_boot=1000, seed=0, alpha=0.05)
    return t


def test_markdown_layout_and_labels():
    md = tables.to_markdown(_table())
    lines = md.splitlines()
    header = next(line for line in lines if line.startswith("| metric"))
    assert header == "| metric | 2AFC trad | 2AFC cnn | 2AFC color | 2AFC mean | JND cnn |"
    assert "SYNTHETIC DATA" in lines[0]
    assert any("Mean = unweighted mean of the 2AFC val/traditional and val/cnn" in line for line in lines)
    body = [line for line in lines if line.startswith("| ") and not line.startswith("| metric")]
    assert [line.split(" | ")[0] for line in body] == ["| l2", "| " + UNCAL, "| human (ceiling)"]
    # l2 trad 0.60 [0.58, 0.63] ; human has no JND cell
    assert "60.0 [58.0, 63.0]" in body[0]
    assert body[2].endswith("| – |")
    assert "65.0 [63.0, 68.0]" in body[0]  # the mean column


def test_real_data_calibrated_table_has_no_warnings():
    md = tables.to_markdown(_table(synthetic=False, calibrated_lpips=True))
    assert "SYNTHETIC" not in md and "UNCALIBRATED" not in md


def test_latex_escapes_and_caption():
    tex = tables.to_latex(_table())
    assert r"\caption{SYNTHETIC DATA" in tex
    assert r"lpips-alex [UNCALIBRATED: random backbone]" in tex
    assert "UNCALIBRATED use a randomly initialised backbone" in tex
    assert r"60.0\,{\scriptsize[58.0, 63.0]}" in tex
    assert tex.count(r"\\") == 4  # header + 3 rows
    assert tables.latex_escape("a_b & 5%") == r"a\_b \& 5\%"


def test_json_and_atomic_writers(tmp_path):
    t = _table()
    written = tables.write_reports(t, csv=tmp_path / "r.csv", markdown=tmp_path / "r.md",
                                   latex=tmp_path / "r.tex", json_path=tmp_path / "r.json")
    assert len(written) == 4
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["synthetic"] is True and doc["uncalibrated"] == [UNCAL]
    assert len(doc["rows"]) == len(t)
    back = pd.read_csv(tmp_path / "r.csv")
    assert list(back.columns) == COLUMNS
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_plot_png(tmp_path):
    pytest.importorskip("matplotlib")
    from bapps_toolkit.report.plots import save_evaluation_plot

    rng = np.random.default_rng(0)
    dist = [SetDistances("l2", "l2", "jnd/val/cnn", [str(i) for i in range(50)],
                         d=rng.random(50), same=rng.random(50))]
    out = save_evaluation_plot(EvaluationResult(_table(), dist, 1000, 0), tmp_path / "fig.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="PNG"):
        save_evaluation_plot(EvaluationResult(_table(), dist, 1000, 0), tmp_path / "fig.pdf")


def test_plot_without_matplotlib(monkeypatch):
    import builtins

    from bapps_toolkit import _plot
    from bapps_toolkit.errors import BappsError

    real_import = builtins.__import__

    def fake_import(name, *a, **k):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("no matplotlib")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(BappsError, match=r"pip install 'bapps-toolkit\[plot\]'"):
        _plot.pyplot()


def test_short_plot_labels_keep_the_uncalibrated_tag():
    from bapps_toolkit.report.plots import short_label

    long = "lpips-alex[alex-lin/latest.safetensors] [UNCALIBRATED: trained on SYNTHETIC data; random backbone]"
    for width in (20, 36, 48):
        short = short_label(long, width)
        assert short.endswith("[UNCALIBRATED]") and short.startswith("lpips-a")
    assert short_label("l2", 36) == "l2"
    assert short_label("x" * 60, 10) == "x" * 9 + "…"
