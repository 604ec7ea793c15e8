"""NIGHTS packed into the BAPPS format, trained on with the ranking and the hinge loss (fast and
full paths), and scored from the packed file exactly as from its folder."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

from bapps_toolkit.cli.main import main
from bapps_toolkit.data import find_sets, load_2afc
from bapps_toolkit.data.iqa import detect_format, is_bapps_source
from bapps_toolkit.data.iqa.nights import load as load_nights
from bapps_toolkit.data.iqa.pack_2afc import NIGHTS_KEYS, pack_nights, read_resized
from bapps_toolkit.evaluate.benchmarks import evaluate_benchmarks
from bapps_toolkit.train import ConfigError, TrainConfig, train

from . import replicas


@pytest.fixture(scope="module")
def nights_root(tmp_path_factory):
    return replicas.nights(tmp_path_factory.mktemp("nights") / "set", n_refs=24) / "nights"


@pytest.fixture(scope="module")
def nights_h5(nights_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("nights_h5") / "nights.h5"
    assert main(["pack", str(nights_root), str(out), "--size", "64", "--no-progress"]) == 0
    return out


def test_pack_nights_keys_sizes_and_pixels(nights_root, nights_h5, tmp_path, capsys):
    assert find_sets(nights_h5) == [NIGHTS_KEYS["train"], NIGHTS_KEYS["val"], NIGHTS_KEYS["test_imagenet"],
                                    NIGHTS_KEYS["test_no_imagenet"]]
    assert detect_format(nights_h5) == "nights" and not is_bapps_source(nights_h5)
    assert main(["verify", str(nights_h5), "--no-progress"]) == 0
    assert "SYNTHETIC data" in capsys.readouterr().out
    val = load_nights(nights_root, "val")
    s = load_2afc(nights_h5, [NIGHTS_KEYS["val"]])[0]
    assert len(s) == len(val) and s.synthetic
    np.testing.assert_array_equal(np.asarray(s.judge), val.judge.astype(np.float32))
    np.testing.assert_array_equal(np.asarray(s.p1[1]), read_resized(val.p1[1], 64))
    # default size 224: DreamSim's bicubic resize, stated in the file
    out, notes = pack_nights(nights_root, tmp_path / "n224.h5", progress=False)
    with h5py.File(out, "r") as f:
        assert f["2afc/val/nights/ref"].shape[1:] == (224, 224, 3)
        assert "bicubic" in f.attrs["size_rule"] and json.loads(f.attrs["parts"])["val"] == NIGHTS_KEYS["val"]
        np.testing.assert_array_equal(f["2afc/val/nights/p0"][0], read_resized(val.p0[0], 224))
    with pytest.raises(FileExistsError, match="--force"):
        pack_nights(nights_root, out, progress=False)


def test_packed_nights_scores_as_its_folder(nights_root, tmp_path):
    out, _ = pack_nights(nights_root, tmp_path / "n.h5", progress=False)  # 224, the folder's size
    a = evaluate_benchmarks(nights_root, ["l2"], n_boot=20, device="cpu")
    b = evaluate_benchmarks(out, ["l2"], n_boot=20, device="cpu")
    key = ("part", "n", "value", "ci_low", "ci_high")
    assert [tuple(r[k] for k in key) for r in a.rows] == [tuple(r[k] for k in key) for r in b.rows]
    assert {r["part"] for r in b.rows} == {"val", "test_imagenet", "test_no_imagenet", "test"}


def _cfg(data, out, **kw):
    base = dict(data=str(data), out=str(out), net="alex", variant="lin", backbone_weights="random",
                epochs=1, decay_epochs=0, batch_size=4, progress=False, seed=1, device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def _weights(res):
    from safetensors.torch import load_file

    return load_file(str(res.checkpoint_path))


@pytest.mark.filterwarnings("ignore:bapps train")
def test_train_lin_on_nights_ranking_and_hinge(nights_h5, tmp_path):
    rank = train(_cfg(nights_h5, tmp_path / "rank"))
    hinge = train(_cfg(nights_h5, tmp_path / "hinge", loss="hinge", margin=0.05))
    # one step per epoch, no dropout: the epoch's loss is the hinge at the (same) initial weights
    one = dict(loss="hinge", batch_size=8, dropout=0.0)
    m1 = train(_cfg(nights_h5, tmp_path / "m1", margin=1.0, **one))
    m2 = train(_cfg(nights_h5, tmp_path / "m2", margin=2.0, **one))
    n_train = rank.card["data"]["n_train"]
    assert rank.card["data"]["datasets"] == {NIGHTS_KEYS["train"]: n_train} and n_train == 8
    assert rank.card["loss"]["name"] == "ranking" and rank.card["loss"]["margin"] is None
    assert hinge.card["loss"] == {"name": "hinge", "margin": 0.05, "formula": hinge.card["loss"]["formula"]}
    assert "0.05 - y (d0 - d1)" in hinge.card["loss"]["formula"]
    assert not hinge.calibrated and "SYNTHETIC" in hinge.card["calibration_note"]
    w_r, w_h, w_m1 = _weights(rank), _weights(hinge), _weights(m1)
    g_keys = [k for k in w_h if k.startswith("G.")]
    lin_keys = [k for k in w_h if k.startswith("lin.")]
    assert g_keys and lin_keys
    # hinge: G is never trained (the same init in every hinge run); ranking trains it
    assert all(torch.equal(w_h[k], w_m1[k]) for k in g_keys)
    assert not all(torch.equal(w_h[k], w_r[k]) for k in g_keys)
    # the objective changes what the linear layers learn
    assert not all(torch.equal(w_h[k], w_r[k]) for k in lin_keys)
    # |d0 - d1| < 1 here, so every term is active: loss = margin - mean(y (d0 - d1))
    l1, l2 = m1.card["history"][0]["loss"], m2.card["history"][0]["loss"]
    assert l2 - l1 == pytest.approx(1.0, abs=1e-5) and l1 > 0.5


@pytest.mark.filterwarnings("ignore:bapps train")
def test_hinge_fast_path_equals_full_path(nights_h5, tmp_path):
    kw = dict(loss="hinge", margin=0.05, dropout=0.0)
    fast = train(_cfg(nights_h5, tmp_path / "fast", fast=True, **kw))
    full = train(_cfg(nights_h5, tmp_path / "full", fast=False, **kw))
    assert fast.card["fast_path"] and not full.card["fast_path"]
    wf, wl = _weights(fast), _weights(full)
    for k in (k for k in wf if k.startswith("lin.")):
        torch.testing.assert_close(wf[k], wl[k], atol=1e-5, rtol=1e-4)
    assert fast.card["history"][0]["loss"] == pytest.approx(full.card["history"][0]["loss"], rel=1e-4)


def test_loss_options_are_checked():
    with pytest.raises(ConfigError, match="margin: 0.1 is a hinge-loss margin"):
        TrainConfig(data="x", margin=0.1).validated()
    with pytest.raises(ConfigError, match="margin: must be a finite number >= 0"):
        TrainConfig(data="x", loss="hinge", margin=-1).validated()
    with pytest.raises(ConfigError, match="loss: unknown loss 'bce'"):
        TrainConfig(data="x", loss="bce").validated()
    assert TrainConfig(data="x", loss="hinge").validated().margin == 0.05


@pytest.mark.filterwarnings("ignore:bapps train")
def test_train_cli_hinge(nights_h5, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["train", str(nights_h5), "--out", str(out), "--backbone-weights", "alex=random",
                 "--epochs", "1", "--decay-epochs", "0", "--batch-size", "4", "--device", "cpu",
                 "--loss", "hinge", "--margin", "0.01", "--val", "--val-datasets", "val/nights",
                 "--no-progress"]) == 0
    card = json.loads((out / "card.json").read_text())
    assert card["config"]["loss"] == "hinge" and card["config"]["margin"] == 0.01
    assert card["data"]["val_datasets"] == [NIGHTS_KEYS["val"]]
    assert "UNCALIBRATED" in capsys.readouterr().out


def test_pack_pieapp_pairs_as_2afc(replica_root, tmp_path, capsys):
    from bapps_toolkit.data.iqa.pieapp import load_pairs

    out = tmp_path / "pie.h5"
    assert main(["pack", str(replica_root / "pieapp"), str(out), "--pairs", "--no-progress"]) == 0
    said = capsys.readouterr().out
    assert "48x48" in said and "val pairs left out" in said  # the replica has train and test only
    assert find_sets(out) == ["2afc/train/pieapp", "2afc/val/pieapp-test"]
    pairs = load_pairs(replica_root / "pieapp", "train")
    s = load_2afc(out, ["2afc/train/pieapp"])[0]
    np.testing.assert_allclose(np.asarray(s.judge), pairs.judge, atol=1e-7)
    np.testing.assert_array_equal(np.asarray(s.p0[2]), read_resized(pairs.p0[2], None))
    assert main(["pack", str(replica_root / "tid2013"), str(tmp_path / "t.h5"), "--pairs"]) == 2
    assert "only PieAPP has labelled pairs" in capsys.readouterr().err
