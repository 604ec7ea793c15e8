"""``evaluate(..., compare=(A, B))`` / ``bapps evaluate --compare A B`` on the synthetic mini set."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bapps_toolkit.cli.main import main
from bapps_toolkit.evaluate import evaluate, run_evaluation
from bapps_toolkit.evaluate.runner import _set_seed
from bapps_toolkit.report import ReportFiles, evaluate_to_reports
from bapps_toolkit.scores import MEAN_CATEGORY, jnd_map, paired_bootstrap, score_2afc

VAL_KEYS = {"2afc/val/traditional", "2afc/val/cnn", "2afc/val/superres", "2afc/val/deblur",
            "2afc/val/color", "2afc/val/frameinterp", "jnd/val/traditional", "jnd/val/cnn"}


@pytest.fixture(scope="module")
def compared(mini_h5):
    return run_evaluation(mini_h5, ["l2", "ssim"], n_boot=200, seed=1, progress=False, compare=("l2", "ssim"))


def _key(c) -> str:
    return f"{c['mode']}/{c['split']}/{c['category']}"


def test_one_record_per_set_and_the_mean(compared):
    keys = [_key(c) for c in compared.comparisons]
    assert set(keys) == VAL_KEYS | {f"2afc/val/{MEAN_CATEGORY}"} and len(keys) == len(set(keys))
    assert compared.table.attrs["comparisons"] == compared.comparisons
    assert all(c["a"] == "l2" and c["b"] == "ssim" and c["synthetic"] for c in compared.comparisons)


def test_difference_is_score_a_minus_score_b_and_consistent(compared):
    t = compared.table
    for c in compared.comparisons:
        pick = (t["mode"] == c["mode"]) & (t.split == c["split"]) & (t.category == c["category"])
        sa = t[pick & (t.metric == "l2")].score.item()
        sb = t[pick & (t.metric == "ssim")].score.item()
        assert c["score_a"] == pytest.approx(sa, abs=1e-12) and c["score_b"] == pytest.approx(sb, abs=1e-12)
        assert c["diff"] == pytest.approx(sa - sb, abs=1e-12)
        assert 0.0 <= c["p_value"] <= 1.0
        assert c["ci_low"] <= c["ci_high"]
        assert (c["p_value"] < c["alpha"]) == (not c["ci_low"] <= 0.0 <= c["ci_high"]), c
        assert c["n"] == t[pick & (t.metric == "l2")].n.item()
    # both outcomes occur on the mini set (the test would notice a comparison stuck at one answer)
    assert {c["p_value"] < 0.05 for c in compared.comparisons} == {True, False}


def test_per_set_numbers_are_paired_bootstrap_of_the_distances(compared):
    by = {(sd.metric, sd.key): sd for sd in compared.distances}
    recs = {_key(c): c for c in compared.comparisons}
    for key in ("2afc/val/cnn", "jnd/val/traditional"):
        a, b = by[("l2", key)], by[("ssim", key)]
        if key.startswith("2afc"):
            r = paired_bootstrap(score_2afc, (a.d0, a.d1, a.judge), (b.d0, b.d1, b.judge), n_boot=200,
                                 seed=_set_seed(1, key))
        else:
            r = paired_bootstrap(jnd_map, (a.d, a.same), (b.d, b.same), n_boot=200, seed=_set_seed(1, key))
        c = recs[key]  # equal on the CPU; on a GPU the bootstrap runs there (float64, other rounding)
        assert (c["diff"], c["ci_low"], c["ci_high"], c["p_value"]) == pytest.approx(
            (r.diff, r.ci[0], r.ci[1], r.p_value), abs=1e-12)
    mean = recs[f"2afc/val/{MEAN_CATEGORY}"]
    parts = [recs["2afc/val/traditional"]["diff"], recs["2afc/val/cnn"]["diff"]]
    assert mean["diff"] == pytest.approx(np.mean(parts), abs=1e-12)
    assert mean["n"] == recs["2afc/val/traditional"]["n"] + recs["2afc/val/cnn"]["n"]


def test_every_report_format_has_the_comparison(mini_h5, tmp_path):
    files = ReportFiles(csv=tmp_path / "r.csv", markdown=tmp_path / "r.md", latex=tmp_path / "r.tex",
                        json=tmp_path / "r.json")
    res = evaluate_to_reports(mini_h5, ["l2", "ssim"], files, n_boot=100, progress=False, compare=["ssim", "l2"],
                              datasets=["2afc/val/traditional", "2afc/val/cnn", "jnd/val/traditional"])
    recs = res.comparisons
    assert len(recs) == 4 and recs[0]["a"] == "ssim"
    md = (tmp_path / "r.md").read_text()
    assert "#### Paired comparison: ssim − l2" in md and "p < 0.05 exactly when the interval excludes 0" in md
    cnn = next(c for c in recs if _key(c) == "2afc/val/cnn")
    assert f"| 2AFC cnn | {cnn['n']} | {100 * cnn['score_a']:.1f} | {100 * cnn['score_b']:.1f} | " \
           f"{100 * cnn['diff']:+.1f} [" in md
    assert "| 2AFC mean | " in md.split("Paired comparison")[1] and "| JND trad | " in md.split("Paired comparison")[1]
    tex = (tmp_path / "r.tex").read_text()
    assert r"\label{tab:bapps-compare}" in tex and tex.count(r"\begin{table}") == 3  # scores, calibration, comparison
    assert f"{100 * cnn['diff']:+.1f}" + r"\,{\scriptsize[" in tex
    doc = json.loads((tmp_path / "r.json").read_text())
    assert [c["diff"] for c in doc["comparisons"]] == pytest.approx([c["diff"] for c in recs])
    assert doc["comparisons"][0]["p_value"] == pytest.approx(recs[0]["p_value"])
    back = pd.read_csv(tmp_path / "r.csv")
    rows = back[back.metric == "ssim - l2"]
    assert len(rows) == len(recs) and "p_value" in back.columns
    row = rows[(rows.split == "val") & (rows.category == "cnn") & (rows["mode"] == "2afc")].iloc[0]
    assert row.score == pytest.approx(cnn["diff"], rel=1e-5) and row.p_value == pytest.approx(cnn["p_value"], rel=1e-5)
    assert back[back.metric == "l2"].p_value.isna().all()


def test_python_evaluate_and_cli(mini_h5, tmp_path, capsys):
    t = evaluate(mini_h5, ["l2", "ssim"], datasets=["2afc/val/cnn"], n_boot=50, progress=False,
                 compare=("l2", "ssim"))
    assert [_key(c) for c in t.attrs["comparisons"]] == ["2afc/val/cnn"]  # no mean without val/traditional
    assert "comparisons" not in evaluate(mini_h5, ["l2"], datasets=["2afc/val/cnn"], n_boot=20,
                                         progress=False).attrs
    out = tmp_path / "t.md"
    assert main(["evaluate", str(mini_h5), "--metrics", "l2", "ssim", "--compare", "l2", "ssim",
                 "--datasets", "jnd/val/cnn", "--n-boot", "50", "--no-progress", "--markdown", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Paired comparison: l2 − ssim" in printed and "| JND cnn |" in printed
    assert "Paired comparison: l2 − ssim" in out.read_text()


def test_compare_errors_name_the_metrics(mini_h5, capsys):
    with pytest.raises(ValueError, match=r"'lpips-alex' is not among the evaluated metrics \(l2, ssim\)"):
        run_evaluation(mini_h5, ["l2", "ssim"], n_boot=10, progress=False, compare=("l2", "lpips-alex"))
    with pytest.raises(ValueError, match=r"'a' and 'b' are not among the evaluated metrics \(l2, ssim\)"):
        run_evaluation(mini_h5, ["l2", "ssim"], n_boot=10, progress=False, compare=("a", "b"))
    with pytest.raises(ValueError, match="the same metric"):
        run_evaluation(mini_h5, ["l2", "ssim"], n_boot=10, progress=False, compare=("l2", "l2"))
    with pytest.raises(ValueError, match="give two metrics"):
        run_evaluation(mini_h5, ["l2", "ssim"], n_boot=10, progress=False, compare=("l2",))
    assert main(["evaluate", str(mini_h5), "--metrics", "l2", "ssim", "--compare", "l2", "psnr",
                 "--no-progress"]) != 0
    err = capsys.readouterr().err
    assert "'psnr' is not among the evaluated metrics (l2, ssim)" in err
