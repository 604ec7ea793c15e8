"""`bapps score --metrics A B C`: several metrics on one decode pass, one column each; one metric
keeps the long single-metric CSV byte for byte; resuming, refusals and the CLI's exit codes."""
from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from bapps_toolkit.cli.main import main
from bapps_toolkit.errors import DataError, MissingWeightsError, UsageError
from bapps_toolkit.scoring import pair_stream
from bapps_toolkit.scoring.pairs import score_folders, score_folders_many

METRICS = ["ssim", "psnr", "l2"]


@pytest.fixture
def folders(tmp_path):
    rng = np.random.default_rng(3)
    for name in ("a.png", "b.png", "c.png"):
        x = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
        for d, arr in (("d0", x), ("d1", np.clip(x.astype(int) + rng.integers(-20, 21, x.shape), 0, 255))):
            (tmp_path / d).mkdir(exist_ok=True)
            Image.fromarray(arr.astype(np.uint8)).save(tmp_path / d / name)
    return tmp_path


def _cli(root, metrics, out, *extra):
    return main(["score", "--dir0", str(root / "d0"), "--dir1", str(root / "d1"), "--metrics", *metrics,
                 "--out", str(out), "--workers", "0", "--no-progress", *extra])


def test_several_metrics_one_column_each_equal_to_single_runs(folders):
    assert _cli(folders, METRICS, folders / "many.csv") == 0
    rows = list(csv.DictReader(open(folders / "many.csv", encoding="utf-8")))
    header = list(rows[0])
    assert header[0] == "file" and header[-1] == "resized" and len(header) == 2 + len(METRICS)
    for k, name in enumerate(METRICS):
        column = header[1 + k]
        assert column.startswith(name + " [") and "more similar]" in column
        assert _cli(folders, [name], folders / f"{name}.csv") == 0
        single = list(csv.DictReader(open(folders / f"{name}.csv", encoding="utf-8")))
        assert [r["file"] for r in rows] == [r["file"] for r in single]
        assert [r[column] for r in rows] == [r["distance"] for r in single]


def test_one_metric_keeps_the_long_format_byte_for_byte(folders):
    one = score_folders(folders / "d0", folders / "d1", metric="ssim", out=folders / "a.csv", progress=False,
                        num_workers=0)
    many = score_folders_many(folders / "d0", folders / "d1", metrics=["ssim"], out=folders / "b.csv",
                              progress=False, num_workers=0)
    assert (folders / "a.csv").read_bytes() == (folders / "b.csv").read_bytes()
    assert (folders / "a.csv").read_text().startswith("file,distance,unit,direction,resized,metric\n")
    assert many[0].distances == one.distances


def test_every_image_is_decoded_once_for_all_metrics(folders, monkeypatch):
    calls = []
    real = pair_stream.read_image
    monkeypatch.setattr(pair_stream, "read_image", lambda p: (calls.append(p), real(p))[1])
    res = score_folders_many(folders / "d0", folders / "d1", metrics=METRICS, progress=False, num_workers=0)
    assert len(calls) == 6 and len(res) == 3
    assert [r.metric_id for r in res] == METRICS


def test_resume_and_refusals(folders, capsys):
    out = folders / "m.csv"
    assert _cli(folders, METRICS, out) == 0
    before = out.read_bytes()
    assert _cli(folders, METRICS, out) == 0 and out.read_bytes() == before  # everything found: nothing rescored
    with pytest.raises(DataError, match="columns"):
        score_folders_many(folders / "d0", folders / "d1", metrics=["ssim", "l2"], out=out, progress=False)
    capsys.readouterr()
    assert _cli(folders, ["ssim", "ssim"], folders / "dup.csv") == 2
    assert "given twice" in capsys.readouterr().err
    assert main(["score", "--dir", str(folders / "d0"), "--all-pairs", "--metrics", "ssim", "l2"]) == 2
    assert "--all-pairs takes one metric" in capsys.readouterr().err
    with pytest.raises(UsageError):
        score_folders(folders / "d0", folders / "d1", metric=["ssim", "l2"])


def test_metric_option_reaches_the_metric(folders, capsys):
    assert _cli(folders, ["psnr"], folders / "p.csv", "--metric-option", "psnr.max_db=90") == 0
    assert _cli(folders, ["psnr"], folders / "q.csv") == 0
    p = list(csv.DictReader(open(folders / "p.csv", encoding="utf-8")))
    q = list(csv.DictReader(open(folders / "q.csv", encoding="utf-8")))
    assert p[0]["distance"] != q[0]["distance"]
    assert _cli(folders, ["psnr"], folders / "r.csv", "--metric-option", "ssim.x=1") == 2
    assert "not one of the metrics given" in capsys.readouterr().err


def test_exit_codes_and_debug(folders, capsys, monkeypatch):
    def boom(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr("bapps_toolkit.cli.cmd_score.run", boom)
    argv = ["score", "--dir0", str(folders / "d0"), "--dir1", str(folders / "d1")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "unexpected error: RuntimeError: a bug" in err and "--debug" in err and "Traceback" not in err
    assert main(["--debug", *argv]) == 1
    assert "Traceback" in capsys.readouterr().err
    monkeypatch.setenv("BAPPS_DEBUG", "1")
    assert main(argv) == 1
    assert "Traceback" in capsys.readouterr().err


def test_missing_weights_speak_the_callers_language():
    exc = MissingWeightsError("no weights: pass backbone_weights=PATH", net="alex",
                              cli_hint="no weights: pass --backbone-weights alex=PATH")
    assert "backbone_weights=PATH" in str(exc) and "--backbone-weights alex=PATH" in exc.cli_message()
    assert "--backbone-weights alex=PATH" in MissingWeightsError("no weights", net="alex").cli_message()
