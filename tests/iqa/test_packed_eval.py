"""`bapps pack` / `verify` / `evaluate` on IQA folders and their packed files, per-type
intervals, and the cross-benchmark table of a folder holding several replica sets (and BAPPS)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bapps_toolkit import correlation as corr
from bapps_toolkit.cli.main import main
from bapps_toolkit.data.iqa import detect_format, find_benchmarks, is_bapps_source, loader
from bapps_toolkit.evaluate.benchmarks import cross_table, evaluate_benchmarks
from bapps_toolkit.report.benchmark_tables import per_type_markdown

KEY = ("benchmark", "part", "figure", "n", "value", "ci_low", "ci_high")


def test_pack_cli_and_packed_set_scores_as_its_folder(replica_root, tmp_path, capsys):
    out = tmp_path / "tid.h5"
    assert main(["pack", str(replica_root / "tid2013"), str(out), "--no-progress"]) == 0
    said = capsys.readouterr().out
    assert "packed tid2013 (45 items" in said and "original sizes kept" in said and "SYNTHETIC" in said
    assert main(["verify", str(out)]) == 0
    assert "bapps-iqa-h5/1, tid2013: 45 items" in capsys.readouterr().out
    assert detect_format(out) == "tid2013" and not is_bapps_source(out)
    a = evaluate_benchmarks(replica_root / "tid2013", ["l2"], n_boot=25, device="cpu")
    b = evaluate_benchmarks(out, ["l2"], n_boot=25, device="cpu")
    assert [tuple(r[k] for k in KEY) for r in a.rows] == [tuple(r[k] for k in KEY) for r in b.rows]
    assert main(["pack", str(replica_root / "tid2013"), str(out)]) == 2
    assert "already exists; pass --force" in capsys.readouterr().err
    assert main(["pack", str(replica_root / "csiq"), str(tmp_path / "c.h5"), "--size", "64"]) == 2
    assert "--size 64: csiq is a correlation set" in capsys.readouterr().err
    assert not (tmp_path / "c.h5").exists()
    assert main(["pack", str(replica_root / "live"), str(tmp_path / "live.h5"), "--format", "live",
                 "--live-scores", "dmos", "--no-progress"]) == 0
    assert "dmos" in capsys.readouterr().out


def test_per_type_intervals(replica_root):
    res = evaluate_benchmarks(replica_root / "kadid10k", ["l2"], n_boot=40, device="cpu")
    k = loader("kadid10k")(replica_root / "kadid10k")
    per = [r for r in res.rows if r["part"].startswith("type:") and r["figure"] == "srcc"]
    assert {r["part"] for r in per} == {f"type:{t}" for t in set(k.dist_type)}
    d = next(v for v in res.scatter.values())["s"]  # signed prediction = -distance (MOS set)
    for r in per:
        m = np.array(k.dist_type) == r["part"].removeprefix("type:")
        assert r["value"] == pytest.approx(stats.spearmanr(d[m], k.score[m]).statistic, abs=1e-9)
        assert np.isfinite(r["ci_low"]) and r["ci_low"] <= r["ci_high"]
    table = per_type_markdown(res, "kadid10k")
    assert "reference images of each type resampled" in table and " [" in table.splitlines()[-1]
    # the per-type interval resamples that type's references only
    t = corr.per_type_bootstrap(d, k.score, k.dist_type, k.ref_id, n_boot=40)
    assert all(b.n_groups == 3 for _, b in t.values())


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_evaluate_folder_of_several_sets_prints_cross_table(replica_root, mini_h5, tmp_path, capsys):
    folder = tmp_path / "all"
    folder.mkdir()
    for sub in sorted(replica_root.iterdir()):
        if sub.is_dir():
            (folder / sub.name).symlink_to(sub, target_is_directory=True)
    (folder / "bapps.h5").symlink_to(mini_h5)
    assert main(["pack", str(replica_root / "nights"), str(tmp_path / "nights.h5"), "--size", "64",
                 "--no-progress"]) == 0
    assert [f for f, _ in find_benchmarks(folder)] == ["bapps", "csiq", "kadid10k", "live", "nights",
                                                       "pieapp", "pipal", "tid2013"]
    capsys.readouterr()
    assert main(["evaluate", str(folder), "--metrics", "l2", "ssim", "--n-boot", "50", "--device", "cpu",
                 "--per-type", str(tmp_path / "types.md")]) == 0
    out = capsys.readouterr().out
    print(out)  # the table quoted in the project notes (run with -s)
    head = next(line for line in out.splitlines() if line.startswith("| metric |"))
    assert head.split("|")[2:-1] == [" BAPPS 2AFC ", " BAPPS JND mAP ", " NIGHTS 2AFC ", " csiq SRCC ",
                                     " kadid10k SRCC ", " live SRCC ", " pieapp SRCC ", " pipal SRCC ",
                                     " tid2013 SRCC "]
    assert out.startswith("### Cross-benchmark evaluation — SYNTHETIC DATA")
    rows = [line for line in out.splitlines() if line.startswith("| l2 ") or line.startswith("| ssim ")]
    assert len(rows) == 2 and all(line.count("[") >= 8 for line in rows)  # intervals in every column but mAP
    assert "tid2013: per distortion type" in (tmp_path / "types.md").read_text()
    res = evaluate_benchmarks(tmp_path / "nights.h5", ["l2"], n_boot=5, device="cpu")
    assert cross_table(res.rows)[1] == ["NIGHTS 2AFC"]


def test_metric_options_reach_the_iqa_path(replica_root, capsys):
    assert main(["evaluate", str(replica_root / "kadid10k"), "--metrics", "l2", "--metric-option",
                 "ssim.win=3", "--device", "cpu"]) == 2
    assert "'ssim' is not one of the metrics given" in capsys.readouterr().err
    assert main(["evaluate", str(replica_root / "kadid10k"), "--metrics", "l2", "--metric-option",
                 "l2.colorspace=lab", "--device", "cpu"]) == 2
    assert "does not accept the options ['colorspace']" in capsys.readouterr().err
