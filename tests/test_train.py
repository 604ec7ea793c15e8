"""Training (issue 4): schedule, G, clamp, fast/full path equivalence, checkpoints, resume after
SIGKILL, bad inputs. Runs on a small subset of the synthetic mini set (random backbone, so every
trained metric here is UNCALIBRATED); the slow whole-mini-set and DDP tests are in
``test_train_slow.py``.
"""
from __future__ import annotations

import csv
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from bapps_toolkit._io import FileLock
from bapps_toolkit.errors import BappsError, CheckpointError, DataError, LockedError
from bapps_toolkit.train import ConfigError, TrainConfig, load_metric_from_checkpoint, lr_for_epoch, train
from bapps_toolkit.train.model import G_EPS, MaskSource, RankingNet, TrainModule, bce_sum, train_accuracy

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

N_TRAIN = 30   # triplets per train category in the subset
N_VAL = 30     # triplets per val category


def make_subset(mini_root: Path, dest: Path, train_cats=("traditional", "cnn"), val_cats=("traditional", "cnn"),
                n_train: int = N_TRAIN, n_val: int = N_VAL) -> Path:
    """The first ``n`` triplets of some mini-set categories, copied into a new BAPPS root."""
    base = Path(mini_root)
    if not (base / "2afc").is_dir():  # the fixture may point at the folder holding the root
        base = next(p.parent for p in base.rglob("2afc") if p.is_dir())
    for split, cats, n in (("train", train_cats, n_train), ("val", val_cats, n_val)):
        for cat in cats:
            src = base / "2afc" / split / cat
            stems = sorted(p.stem for p in (src / "ref").iterdir())[:n]
            for folder, ext in (("ref", ".png"), ("p0", ".png"), ("p1", ".png"), ("judge", ".npy")):
                out = dest / "2afc" / split / cat / folder
                out.mkdir(parents=True, exist_ok=True)
                for s in stems:
                    shutil.copyfile(src / folder / f"{s}{ext}", out / f"{s}{ext}")
    if (base / "SYNTHETIC.txt").is_file():
        shutil.copyfile(base / "SYNTHETIC.txt", dest / "SYNTHETIC.txt")
    return dest


@pytest.fixture(scope="module")
def subset(mini_root, tmp_path_factory) -> Path:
    return make_subset(mini_root, tmp_path_factory.mktemp("train_subset") / "bapps")


def cfg(data, out, **kw) -> TrainConfig:
    base = dict(data=str(data), out=str(out), net="alex", variant="lin", backbone_weights="random",
                epochs=1, decay_epochs=1, batch_size=20, progress=False, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def weights_of(path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


# ------------------------------------------------------------------------------------------
# schedule and configuration

def test_official_lr_schedule_per_epoch():
    c = TrainConfig(data="x").validated()
    lrs = c.lr_schedule()
    expected = [1e-4] * 6 + [8e-5, 6e-5, 4e-5, 2e-5]
    assert len(lrs) == 10
    assert np.allclose(lrs, expected, rtol=0, atol=1e-12)
    # the rate is lowered by lr0/decay after each epoch past `epochs`; never reaches 0 while training
    assert min(lrs) > 0
    # other numbers: epochs=2, decay=4, lr 1e-3 -> 1e-3 x3, then 7.5e-4, 5e-4, 2.5e-4
    assert np.allclose([lr_for_epoch(e, 1e-3, 2, 4) for e in range(1, 7)],
                       [1e-3, 1e-3, 1e-3, 7.5e-4, 5e-4, 2.5e-4], atol=1e-15)
    # no decay epochs: constant
    assert [lr_for_epoch(e, 0.5, 3, 0) for e in (1, 2, 3)] == [0.5, 0.5, 0.5]


@pytest.mark.parametrize("kw, word", [
    (dict(epochs=-1), "epochs"), (dict(decay_epochs=-2), "decay_epochs"),
    (dict(epochs=0, decay_epochs=0), "nothing to train"), (dict(batch_size=0), "batch_size"),
    (dict(lr=0.0), "lr"), (dict(lr=-1e-4), "lr"), (dict(lr=float("nan")), "lr"),
    (dict(beta1=1.0), "beta1"), (dict(dropout=1.0), "dropout"), (dict(seed=-1), "seed"),
    (dict(net="resnet"), "unknown network"), (dict(variant="finetune"), "unknown variant"),
    (dict(version="0.2"), "version"), (dict(variant="tune", fast=True), "fast"),
    (dict(variant="tune", backbone_weights="random"), "scratch"),
    (dict(resume=True, overwrite=True), "resume and overwrite"),
])
def test_bad_config_is_a_clear_error(kw, word, tmp_path):
    with pytest.raises(ConfigError, match=word):
        train(cfg(tmp_path / "nodata", tmp_path / "out", **kw))
    assert not (tmp_path / "out").exists()


def test_fast_is_the_default_for_lin_only():
    assert TrainConfig(data="x", variant="lin").validated().fast is True
    assert TrainConfig(data="x", variant="tune").validated().fast is False
    assert TrainConfig(data="x", variant="lin", fast=False).validated().fast is False
    assert TrainConfig(data="x", variant="scratch").validated().backbone_weights == "random"


# ------------------------------------------------------------------------------------------
# G, loss, accuracy (hand-computed)

def test_ranking_net_input_channels_and_layers():
    g = RankingNet()
    assert [type(m).__name__ for m in g.model] == ["Conv2d", "LeakyReLU", "Conv2d", "LeakyReLU", "Conv2d", "Sigmoid"]
    assert [tuple(m.weight.shape) for m in g.model if isinstance(m, torch.nn.Conv2d)] == \
        [(32, 5, 1, 1), (32, 32, 1, 1), (1, 32, 1, 1)]
    assert g.model[1].negative_slope == 0.2 and g.model[3].negative_slope == 0.2
    d0 = torch.tensor([0.3, 2.0, 0.05])
    d1 = torch.tensor([0.7, 0.5, 0.0])
    expected = [d0, d1, d0 - d1, d0 / (d1 + 0.1), d1 / (d0 + 0.1)]
    assert G_EPS == 0.1
    with torch.no_grad():
        for m in g.model:
            if isinstance(m, torch.nn.Conv2d):
                m.weight.zero_()
                m.bias.zero_()
        g.model[2].weight[0, 0] = 1.0
        g.model[4].weight[0, 0] = 1.0
        for i, feat in enumerate(expected):
            g.model[0].weight.zero_()
            g.model[0].weight[0, i] = 1.0
            x = feat.double().numpy()
            leaky = np.where(x > 0, x, 0.2 * x)
            leaky = np.where(leaky > 0, leaky, 0.2 * leaky)
            want = 1.0 / (1.0 + np.exp(-leaky))
            assert np.allclose(g(d0, d1).numpy(), want, atol=1e-6), i


def test_bce_and_official_train_accuracy_by_hand():
    prob = torch.tensor([0.9, 0.2, 0.5])
    judge = torch.tensor([1.0, 0.5, 0.0])
    want = -(math.log(0.9) + 0.5 * math.log(0.2) + 0.5 * math.log(0.8) + math.log(0.5))
    assert bce_sum(prob, judge).item() == pytest.approx(want, rel=1e-6)
    d0 = torch.tensor([1.0, 1.0, 2.0, 1.0])
    d1 = torch.tensor([2.0, 0.5, 1.0, 1.0])
    g = torch.tensor([0.2, 0.2, 1.0, 0.3])
    # (d1<d0)*g + (1-(d1<d0))*(1-g): 0.8, 0.2, 1.0, and a tie counts as d0 closer: 0.7
    assert np.allclose(train_accuracy(d0, d1, g).numpy(), [0.8, 0.2, 1.0, 0.7])


def test_dropout_masks_are_global_and_sliced():
    gen = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    full = MaskSource(0.5, gen(), 7, 0, 7)((3,), torch.device("cpu"), torch.float32)
    part = MaskSource(0.5, gen(), 7, 3, 5)((3,), torch.device("cpu"), torch.float32)
    assert torch.equal(full[3:5], part)
    assert set(full.unique().tolist()) <= {0.0, 2.0}
    assert MaskSource(0.0, gen(), 7, 0, 7).active is False


# ------------------------------------------------------------------------------------------
# fast path == full path

def test_fast_and_full_distances_agree_with_the_metric(subset):
    from bapps_toolkit.data import load_2afc, to_model_input
    from bapps_toolkit.train.distributed import DistContext
    from bapps_toolkit.train.fastpath import precompute
    from bapps_toolkit.train.model import build_lpips

    lp = build_lpips("alex", "0.1", "random", 11)
    with torch.no_grad():
        for lin in lp.lins:
            lin.weight.copy_(torch.rand(lin.weight.shape))
    mod = TrainModule(lp, RankingNet(), train_backbone=False)
    key = "2afc/val/cnn"
    vec = precompute(lp, str(subset), [key], ctx=DistContext(), batch=7)
    s = load_2afc(str(subset), key)[0]
    ref, p0, p1 = (to_model_input(a) for a in (s.ref, s.p0, s.p1))
    with torch.no_grad():
        fd0, fd1, _ = mod.forward_fast(vec.v0, vec.v1, None)
        ud0, ud1, _ = mod.forward_full(ref, p0, p1, None)
        md0, md1 = lp.eval().pair_distances(ref, p0, p1)
    assert vec.v0.shape == (N_VAL, sum(lp.channels)) and len(vec) == N_VAL
    for a, b in ((fd0, ud0), (fd1, ud1), (fd0, md0), (fd1, md1)):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)
    assert torch.equal(vec.judge, torch.as_tensor(s.judge))


def test_fast_and_full_training_give_the_same_weights_without_dropout(subset, tmp_path):
    fast = train(cfg(subset, tmp_path / "fast", fast=True, dropout=0.0, datasets=["train/traditional"]))
    full = train(cfg(subset, tmp_path / "full", fast=False, dropout=0.0, datasets=["train/traditional"]))
    a, b = weights_of(fast.checkpoint_path), weights_of(full.checkpoint_path)
    assert sorted(a) == sorted(b)
    init = weights_of(tmp_path / "fast" / "epoch_001.safetensors")
    moved = 0.0
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-7), k
        moved = max(moved, float((a[k] - init[k]).abs().max()))
    assert moved > 0  # epoch 2 changed the weights
    assert fast.card["fast_path"] is True and full.card["fast_path"] is False
    ha, hb = fast.card["history"], full.card["history"]
    assert [round(h["loss"], 5) for h in ha] == [round(h["loss"], 5) for h in hb]


# ------------------------------------------------------------------------------------------
# a run: files, card, log, official layout, metric loading

@pytest.fixture(scope="module")
def lin_run(subset, tmp_path_factory):
    out = tmp_path_factory.mktemp("lin_run") / "run"
    res = train(cfg(subset, out, epochs=2, decay_epochs=2, batch_size=10, val_every_epoch=True,
                    lr=1e-3))
    return res


def test_run_writes_every_epoch_latest_card_and_log(lin_run):
    out = lin_run.out_dir
    for e in (1, 2, 3, 4):
        for suffix in (".safetensors", ".optim.safetensors", ".lin.pth"):
            assert (out / f"epoch_{e:03d}{suffix}").is_file()
    assert lin_run.checkpoint_path == out / "latest.safetensors"
    assert weights_of(out / "latest.safetensors").keys() == weights_of(out / "epoch_004.safetensors").keys()
    assert not [p for p in out.iterdir() if ".tmp-" in p.name]
    card = json.loads((out / "card.json").read_text())
    assert card["finished"] is True and card["epochs_done"] == 4
    assert card["net"] == "alex" and card["variant"] == "lin" and card["version"] == "0.1"
    assert card["seed"] == 3 and card["toolkit_version"]
    assert card["data"]["synthetic"] is True
    assert card["data"]["datasets"] == {"2afc/train/traditional": N_TRAIN, "2afc/train/cnn": N_TRAIN}
    assert card["backbone"]["source"] == "random"
    assert card["calibrated"] is False and "random backbone" in card["calibration_note"]
    assert "SYNTHETIC" in card["calibration_note"]
    assert np.allclose(card["schedule"]["lr_per_epoch"], [1e-3, 1e-3, 1e-3, 5e-4])
    assert len(card["history"]) == 4
    rows = list(csv.DictReader((out / "log.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2", "3", "4"]
    assert set(rows[0]) == {"epoch", "lr", "loss", "train_2afc", "seconds", "items_per_s", "val_2afc"}
    for r in rows:
        assert 0 <= float(r["train_2afc"]) <= 1 and 0 <= float(r["val_2afc"]) <= 1
        assert float(r["loss"]) > 0 and float(r["items_per_s"]) > 0
    assert [float(r["lr"]) for r in rows] == pytest.approx([1e-3, 1e-3, 1e-3, 5e-4])


def test_val_2afc_is_the_official_score_of_the_saved_metric(lin_run, subset):
    from bapps_toolkit.data import load_2afc, to_model_input
    from bapps_toolkit.scores import score_2afc

    metric = load_metric_from_checkpoint(lin_run.out_dir)
    assert not metric.training and metric.calibrated is False
    assert "UNCALIBRATED" in metric.label
    scores = {}
    for s in load_2afc(str(subset), "val"):
        with torch.no_grad():
            d0, d1 = metric.pair_distances(to_model_input(s.ref), to_model_input(s.p0), to_model_input(s.p1))
        scores[s.key] = score_2afc(d0.numpy(), d1.numpy(), s.judge)
    last = lin_run.card["history"][-1]
    assert last["val"] == pytest.approx(scores, abs=1e-9)
    assert last["val_2afc"] == pytest.approx(np.mean(list(scores.values())))
    # the card's uniform-weight reference is the metric's own baseline on the same backbone
    from bapps_toolkit.metrics.lpips import LPIPS

    base = LPIPS(net="alex", lpips=False, backbone_weights=str(lin_run.out_dir / "backbone.safetensors")).eval()
    bscores = {}
    for s in load_2afc(str(subset), "val"):
        with torch.no_grad():
            d0, d1 = base.pair_distances(to_model_input(s.ref), to_model_input(s.p0), to_model_input(s.p1))
        bscores[s.key] = score_2afc(d0.numpy(), d1.numpy(), s.judge)
    assert lin_run.card["baseline_val"]["per_set"] == pytest.approx(bscores, abs=1e-9)


def test_linear_weights_nonnegative_and_official_layout_loads(lin_run, subset):
    from bapps_toolkit.metrics.lpips import LPIPS

    out = lin_run.out_dir
    sd = torch.load(out / "latest.lin.pth", weights_only=True)
    assert sorted(sd) == [f"lin{k}.model.1.weight" for k in range(5)]
    assert [tuple(v.shape) for v in (sd[f"lin{k}.model.1.weight"] for k in range(5))] == \
        [(1, c, 1, 1) for c in (64, 192, 384, 256, 256)]
    assert all(bool((v >= 0).all()) for v in sd.values())
    ours = load_metric_from_checkpoint(out)
    # other LPIPS code: the metric's own official-layout loader, same frozen random backbone
    other = LPIPS(net="alex", backbone_weights=str(out / "backbone.safetensors"),
                  lin_weights=str(out / "latest.lin.pth"))
    x0 = torch.rand(3, 3, 64, 64) * 2 - 1
    x1 = torch.rand(3, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(ours(x0, x1), other(x0, x1), rtol=1e-6)
    # the same from the .pth alone (net recognised from the channels), backbone given explicitly
    via_pth = load_metric_from_checkpoint(out / "latest.lin.pth", backbone_weights=str(out / "backbone.safetensors"))
    with torch.no_grad():
        assert torch.allclose(via_pth(x0, x1), other(x0, x1), rtol=1e-6)


# ------------------------------------------------------------------------------------------
# clamp: only the linear layers

def test_clamp_touches_only_linear_layers_squeeze_tune(subset, tmp_path):
    bb_file = tmp_path / "squeeze_random.safetensors"
    from safetensors.torch import save_file

    from bapps_toolkit.metrics.backbones import build_backbone, random_init_

    save_file(random_init_(build_backbone("squeeze"), 7).state_dict(), str(bb_file))
    res = train(cfg(subset, tmp_path / "sq", net="squeeze", variant="tune", backbone_weights=str(bb_file),
                    epochs=1, decay_epochs=0, batch_size=60, datasets=["train/traditional"]))
    w = weights_of(res.checkpoint_path)
    lins = [w[f"lin.{k}.weight"] for k in range(7)]
    assert all(bool((x >= 0).all()) for x in lins)
    assert any(bool((x == 0).any()) for x in lins)  # some init weights were negative and got clamped
    one_by_one = [k for k in w if k.startswith("backbone.") and k.endswith(".weight") and w[k].dim() == 4
                  and w[k].shape[-2:] == (1, 1)]
    assert len(one_by_one) >= 16  # squeeze + expand1x1 of 8 Fire modules
    assert all(bool((w[k] < 0).any()) for k in one_by_one), "SqueezeNet's own 1x1 convs must not be clamped"
    # the backbone was trained (tune): it moved away from the given weights
    from safetensors.torch import load_file

    given = load_file(str(bb_file))
    assert any(not torch.equal(w["backbone." + k], v) for k, v in given.items())
    assert res.card["backbone"]["trained"] is True and res.card["backbone"]["started_from_scratch"] is False


def test_scratch_is_labelled_as_started_from_scratch(subset, tmp_path):
    res = train(cfg(subset, tmp_path / "scr", variant="scratch", backbone_weights=None, epochs=1,
                    decay_epochs=0, batch_size=60, datasets=["train/traditional"]))
    assert res.card["backbone"]["started_from_scratch"] is True and res.card["backbone"]["trained"] is True
    # on real data a scratch model would be calibrated; the mini set is synthetic
    assert res.card["calibrated"] is False and "random backbone" not in res.card["calibration_note"]
    w = weights_of(res.checkpoint_path)
    assert any(k.startswith("backbone.") for k in w)
    m = load_metric_from_checkpoint(res.out_dir)
    assert "UNCALIBRATED" in m.label


# ------------------------------------------------------------------------------------------
# bad inputs

def test_no_training_data_is_a_clear_error(subset, tmp_path):
    root = tmp_path / "valonly"
    shutil.copytree(subset / "2afc" / "val", root / "2afc" / "val")
    with pytest.raises(DataError, match="no training data found"):
        train(cfg(root, tmp_path / "o"))
    with pytest.raises(DataError, match="does not exist"):
        train(cfg(tmp_path / "missing", tmp_path / "o"))
    assert not (tmp_path / "o").exists()


def test_refuses_to_overwrite_a_finished_run(lin_run, subset, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(lin_run.out_dir, out)
    before = (out / "latest.safetensors").read_bytes()
    with pytest.raises(BappsError, match="finished run"):
        train(cfg(subset, out, epochs=2, decay_epochs=2, batch_size=10, lr=1e-3))
    assert (out / "latest.safetensors").read_bytes() == before
    res = train(cfg(subset, out, epochs=1, decay_epochs=0, batch_size=10, overwrite=True))
    assert res.card["epochs_done"] == 1 and not (out / "epoch_004.safetensors").exists()


def test_resume_errors(lin_run, subset, tmp_path):
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train(cfg(subset, tmp_path / "empty", resume=True))
    out = tmp_path / "copy"
    shutil.copytree(lin_run.out_dir, out)
    with pytest.raises(CheckpointError, match="for net 'alex', not 'vgg'"):
        train(cfg(subset, out, net="vgg", resume=True, epochs=2, decay_epochs=2, batch_size=10, lr=1e-3))
    with pytest.raises(CheckpointError, match="other settings.*seed"):
        train(cfg(subset, out, resume=True, epochs=2, decay_epochs=2, batch_size=10, lr=1e-3, seed=4))


def test_checkpoint_of_another_net_is_refused(lin_run, tmp_path):
    from bapps_toolkit.train import checkpoint as ck

    tensors, meta = ck.read_safetensors(lin_run.checkpoint_path)
    meta["net"] = "vgg"
    bad = tmp_path / "bad.safetensors"
    ck.write_safetensors(bad, tensors, meta)
    with pytest.raises(CheckpointError, match="another network"):
        load_metric_from_checkpoint(bad, backbone_weights="random")


def test_second_concurrent_run_is_locked_out(subset, tmp_path):
    out = tmp_path / "locked"
    with FileLock(out, "training run"):
        with pytest.raises(LockedError, match="already writing"):
            train(cfg(subset, out))
    assert not out.exists()


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ.get('BAPPS_EVIL_MARK', '/tmp/bapps-evil')}",))


def test_malicious_pickle_checkpoint_is_refused(tmp_path, monkeypatch):
    import pickle

    mark = tmp_path / "pwned"
    monkeypatch.setenv("BAPPS_EVIL_MARK", str(mark))
    run = tmp_path / "run"
    run.mkdir()
    for name in ("latest.safetensors",):
        (run / name).write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(CheckpointError, match="refusing to load|never unpickles"):
        load_metric_from_checkpoint(run)
    torch.save({"x": _Evil()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="weights_only"):
        load_metric_from_checkpoint(tmp_path / "evil.pth")
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        load_metric_from_checkpoint(tmp_path / "junk.safetensors")
    assert not mark.exists()


# ------------------------------------------------------------------------------------------
# kill -9 and resume: bit-identical

_CHILD = textwrap.dedent("""
    import os, sys, time, torch, warnings
    from pathlib import Path
    warnings.simplefilter("ignore")
    from bapps_toolkit.train import TrainConfig, train
    torch.use_deterministic_algorithms(True)

    def pause(epoch, step):  # pause in epoch 2 after step 1: write the marker, wait to be killed
        if (epoch, step) == (2, 1):
            Path(sys.argv[4]).write_text(str(os.getpid()))
            while True:
                time.sleep(0.05)

    train(on_step=pause, config=TrainConfig(data=sys.argv[1], out=sys.argv[2], backbone_weights="random", epochs=2,
                      decay_epochs=1, batch_size=20, seed=5, progress=False, deterministic=True,
                      fast=sys.argv[3] == "fast", datasets=["train/traditional"]))
""")


@pytest.mark.parametrize("path", ["fast", pytest.param("full", marks=pytest.mark.slow)])
def test_sigkill_then_resume_is_bit_identical(subset, tmp_path, path):
    common = dict(epochs=2, decay_epochs=1, batch_size=20, seed=5, deterministic=True,
                  fast=path == "fast", datasets=["train/traditional"])
    ref = train(cfg(subset, tmp_path / "ref", **common))
    out = tmp_path / "killed"
    marker = tmp_path / "paused"
    # The child computes on as many threads as this process (reduction order follows the count).
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(subset), str(out), path, str(marker)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads())))
    try:
        deadline = time.time() + 120
        while not marker.exists():
            if proc.poll() is not None:
                pytest.fail(f"child exited early: {proc.stdout.read().decode()[-2000:]}")
            if time.time() > deadline:
                pytest.fail("child never reached the pause point")
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    card = json.loads((out / "card.json").read_text())
    assert card["epochs_done"] == 1 and not card["finished"]
    assert not (out / "epoch_002.safetensors").exists()
    with pytest.raises(BappsError, match="unfinished run"):
        train(cfg(subset, out, **common))
    res = train(cfg(subset, out, resume=True, **common))
    assert res.card["finished"] and res.card["resumed"][0]["from_epoch"] == 1
    a, b = weights_of(ref.checkpoint_path), weights_of(res.checkpoint_path)
    assert sorted(a) == sorted(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    oa, ob = weights_of(ref.out_dir / "latest.optim.safetensors"), weights_of(out / "latest.optim.safetensors")
    assert all(torch.equal(oa[k], ob[k]) for k in oa)
    assert [h["loss"] for h in ref.card["history"]] == [h["loss"] for h in res.card["history"]]
    # resuming a finished run trains nothing more and returns it
    again = train(cfg(subset, out, resume=True, **common))
    assert again.card["epochs_done"] == 3


# ------------------------------------------------------------------------------------------
# command line

def test_cli_train_and_errors(subset, tmp_path, capsys):
    from bapps_toolkit.cli.main import main

    out = tmp_path / "cli"
    rc = main(["train", str(subset), "--net", "alex", "--variant", "lin", "--out", str(out),
               "--backbone-weights", "alex=random", "--epochs", "1", "--decay-epochs", "0", "--batch-size", "30",
               "--datasets", "train/cnn", "--seed", "2", "--no-progress", "--val"])
    captured = capsys.readouterr()
    assert rc == 0
    assert "UNCALIBRATED" in captured.out and "UNCALIBRATED" in captured.err
    assert (out / "latest.safetensors").is_file()
    card = json.loads((out / "card.json").read_text())
    assert card["config"]["batch_size"] == 30 and card["data"]["datasets"] == {"2afc/train/cnn": N_TRAIN}
    assert main(["train", str(subset), "--out", str(out), "--backbone-weights", "alex=random", "--no-progress",
                 "--datasets", "train/cnn", "--epochs", "1", "--decay-epochs", "0"]) == 2
    assert "finished run" in capsys.readouterr().err
    assert main(["train", str(subset), "--out", str(tmp_path / "x"), "--net", "resnet"]) == 2
    assert "unknown network" in capsys.readouterr().err
    assert main(["train", str(subset), "--out", str(tmp_path / "x"), "--batch-size", "0"]) == 2
    assert "batch_size" in capsys.readouterr().err


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bf16_autocast_on_cuda(subset, tmp_path):
    res = train(cfg(subset, tmp_path / "bf16", bf16=True, device="cuda", val_every_epoch=True))
    assert res.card["bf16"] is True
    assert 0.0 <= res.card["history"][-1]["val_2afc"] <= 1.0


def test_bf16_is_refused_on_cpu(subset, tmp_path):
    with pytest.raises(ValueError, match="CUDA"):
        train(cfg(subset, tmp_path / "b", bf16=True, device="cpu"))
