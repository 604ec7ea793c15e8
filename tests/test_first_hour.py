"""Issue 10, first hour: what a new user trips over (defaults, one weights syntax, parsers,
"did you mean", the [0, 1] input warning, lock files, CSV precision, figure panel order)."""
from __future__ import annotations

import multiprocessing as mp
import warnings
from pathlib import Path

import pandas as pd
import pytest
import torch

from bapps_toolkit._io import FileLock
from bapps_toolkit.cli.main import build_parser, main
from bapps_toolkit.errors import LockedError
from bapps_toolkit.evaluate import select_sets
from bapps_toolkit.metrics import create_metric
from bapps_toolkit.metrics.weight_specs import parse_weight_specs
from bapps_toolkit.report.tables import write_csv
from bapps_toolkit.train import ConfigError, TrainConfig


def test_bare_bapps_prints_help_and_exits_0(capsys):
    assert main([]) == 0
    assert "usage: bapps" in capsys.readouterr().out


def test_no_abbreviated_flags_on_any_parser(capsys):
    parser = build_parser()
    assert parser.allow_abbrev is False
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    assert all(p.allow_abbrev is False for p in sub.choices.values())
    with pytest.raises(SystemExit):
        main(["evaluate", "x.h5", "--metrics", "l2", "--metric-opt", "l2.x=1"])  # not taken as --metric-option
    assert "unrecognized arguments: --metric-opt" in capsys.readouterr().err


def test_score_takes_metrics_too():
    args = build_parser().parse_args(["score", "a.png", "b.png", "--metrics", "psnr"])
    assert args.metrics == ["psnr"]
    args = build_parser().parse_args(["score", "a.png", "b.png", "--metric", "psnr", "ssim"])
    assert args.metrics == ["psnr", "ssim"]


def test_bare_random_names_the_net_random_form():
    with pytest.raises(ValueError, match=r"NET=random \(e\.g\. alex=random\)"):
        parse_weight_specs(["random"], "backbone_weights", allow_random=True)
    with pytest.raises(ConfigError, match="alex=random"):
        TrainConfig(data="x", backbone_weights=["random"]).validated()


def test_train_takes_net_specs_and_refuses_other_nets(tmp_path):
    assert TrainConfig(data="x", backbone_weights=["alex=random"]).validated().backbone_weights == "random"
    w = tmp_path / "w.pth"
    w.write_bytes(b"x")
    assert TrainConfig(data="x", backbone_weights=[f"alex={w}"]).validated().backbone_weights == str(w.resolve())
    with pytest.raises(ConfigError, match="vgg given, but the run trains net alex"):
        TrainConfig(data="x", backbone_weights=["vgg=random"]).validated()
    args = build_parser().parse_args(["train", "d", "--out", "o", "--backbone-weights", "alex=random", "vgg=random"])
    assert args.backbone_weights == ["alex=random", "vgg=random"]
    args = build_parser().parse_args(["evaluate", "d", "--backbone-weights", "alex=random", "vgg=random"])
    assert args.backbone_weights == ["alex=random", "vgg=random"]


def test_did_you_mean_for_metric_names_and_options():
    with pytest.raises(ValueError, match="did you mean lpips-alex"):
        create_metric("lpips-alx")
    with pytest.raises(ValueError, match="did you mean input_range"):
        create_metric("l2", input_rnge=(0, 1))
    with pytest.raises(ValueError, match="did you mean backbone_weights"):
        create_metric("lpips-alex", backbone_weight="random")


def test_unit_range_input_warns_once_naming_input_range():
    m = create_metric("l2")
    x0, x1 = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        m(x0, x1)
        m(x0, x1)
    msgs = [str(w.message) for w in rec if "input_range" in str(w.message)]
    assert len(msgs) == 1 and "[0, 1]" in msgs[0]
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        m2 = create_metric("l2")
        m2(x0 * 2 - 1, x1 * 2 - 1)
        create_metric("l2", input_range=(0, 1))(x0, x1)
    assert not [w for w in rec if "input_range" in str(w.message)]


def test_evaluate_defaults_to_the_val_sets():
    present = ["2afc/train/mix", "2afc/val/cnn", "2afc/val/traditional", "jnd/val/cnn"]
    assert select_sets(present, None) == ["2afc/val/cnn", "2afc/val/traditional", "jnd/val/cnn"]
    assert select_sets(present, ["train"]) == ["2afc/train/mix"]


def _hold(path, started, stop):
    with FileLock(path):
        started.set()
        stop.wait(30)


def test_lock_file_is_removed_on_release_and_still_excludes(tmp_path):
    target = tmp_path / "runs" / "y"
    with FileLock(target):
        assert (tmp_path / "runs" / "y.lock").exists()
    assert not (tmp_path / "runs" / "y.lock").exists()
    ctx = mp.get_context("spawn")
    started, stop = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold, args=(target, started, stop))
    proc.start()
    try:
        assert started.wait(60)
        with pytest.raises(LockedError):
            FileLock(target).acquire()
    finally:
        stop.set()
        proc.join(30)
    with FileLock(target):
        pass
    assert list((tmp_path / "runs").iterdir()) == []


def test_lock_acquire_retries_when_the_file_was_unlinked_under_it(tmp_path, monkeypatch):
    lock = FileLock(tmp_path / "z")
    calls = {"n": 0}
    real = FileLock._still_linked

    def first_stale(self, fd):
        calls["n"] += 1
        return False if calls["n"] == 1 else real(self, fd)

    monkeypatch.setattr(FileLock, "_still_linked", first_stale)
    lock.acquire()
    assert calls["n"] >= 2
    lock.release()
    assert not (tmp_path / "z.lock").exists()


def test_failed_command_leaves_no_lock(tmp_path):
    assert main(["train", str(tmp_path / "missing"), "--out", str(tmp_path / "runs" / "y"),
                 "--backbone-weights", "alex=random", "--no-progress"]) == 2
    assert not any(p.name.endswith(".lock") for p in tmp_path.rglob("*"))


def test_report_csv_has_six_significant_digits(tmp_path):
    out = tmp_path / "t.csv"
    write_csv(pd.DataFrame({"score": [0.660000000645717, 6.000000000000001e-05]}), out)
    assert out.read_text().split() == ["score", "0.66", "6e-05"]


def test_jnd_panels_in_table_order(monkeypatch, tmp_path):
    pytest.importorskip("matplotlib")
    from types import SimpleNamespace

    from bapps_toolkit.report import plots

    seen: list[str] = []
    monkeypatch.setattr(plots, "plot_jnd_pr", lambda d, key, ax=None, table=None: seen.append(key))
    monkeypatch.setattr(plots, "plot_2afc_bars", lambda *a, **k: None)
    ds = [SimpleNamespace(key=k) for k in ("jnd/val/cnn", "jnd/val/traditional", "2afc/val/cnn")]
    table = pd.DataFrame({"synthetic": [False], "calibrated": [True]})
    plots.save_evaluation_plot(SimpleNamespace(distances=ds, table=table), Path(tmp_path / "f.png"))
    assert seen == ["jnd/val/traditional", "jnd/val/cnn"]
