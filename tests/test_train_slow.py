"""Slow training tests (issue 4): the whole synthetic mini set, and DDP with 2 processes on CPU.

All on a random backbone and synthetic judgments: every number here is UNCALIBRATED.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train import make_subset
from two_ranks import run_two_ranks

from bapps_toolkit.train import TrainConfig, load_metric_from_checkpoint, train

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning")]


def _subset(mini_root: Path, dest: Path, n: int = 40) -> Path:
    """The first ``n`` triplets of train traditional/cnn and val cnn (see test_train.make_subset)."""
    return make_subset(mini_root, dest, val_cats=("cnn",), n_train=n, n_val=n)


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(path))


def _val_vectors(metric, source, keys):
    """Exact fast-path vectors of the val sets (one backbone pass), to score any linear layers."""
    from bapps_toolkit.train.distributed import DistContext
    from bapps_toolkit.train.fastpath import precompute

    return precompute(metric, str(source), keys, ctx=DistContext(), batch=512)


def _score(vec, w) -> float:
    from bapps_toolkit.scores import score_2afc

    d0 = (vec.v0 @ w).numpy()
    d1 = (vec.v1 @ w).numpy()
    j = vec.judge.numpy()
    return float(np.mean([score_2afc(d0[a:b], d1[a:b], j[a:b]) for a, b in vec.offsets().values()]))


def _lin_vector(path) -> torch.Tensor:
    w = _weights(path)
    k = sorted(int(n.split(".")[1]) for n in w if n.startswith("lin."))
    return torch.cat([w[f"lin.{i}.weight"].reshape(-1) for i in k])


# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dropout,budget", [(0.0, 2048), (0.5, 2048), (0.5, 1)],
                         ids=["exact-nodrop", "exact-drop", "streamed-drop"])
def test_ddp_two_cpu_processes_equal_one_process(mini_root, tmp_path, dropout, budget):
    """torchrun --nproc_per_node=2 (gloo, 127.0.0.1) == one process with the same global batch;
    with a 1 MiB budget the full path (``--no-fast``) streams (issue 15 §4) and the ranks share the streamed order."""
    data = _subset(mini_root, tmp_path / "bapps")
    common = ["--backbone-weights", "alex=random", "--epochs", "2", "--decay-epochs", "1", "--batch-size", "16",
              "--seed", "9", "--dropout", str(dropout), "--no-progress", "--datasets", "train",
              "--memory-budget", str(budget), *(["--no-fast"] if budget == 1 else [])]
    one = train(TrainConfig(data=str(data), out=str(tmp_path / "one"), backbone_weights="random", epochs=2,
                            decay_epochs=1, batch_size=16, seed=9, dropout=dropout, progress=False,
                            datasets=["train"], memory_budget_mb=budget, fast=False if budget == 1 else None))
    run_two_ranks("-m", "bapps_toolkit", "train", str(data), "--out", str(tmp_path / "two"), "--device", "cpu",
                  *common)
    card = json.loads((tmp_path / "two" / "card.json").read_text())
    assert card["world_size"] == 2 and card["finished"]
    assert card["shuffle"]["mode"] == one.card["shuffle"]["mode"] == ("streamed" if budget == 1 else "exact")
    a, b = _weights(one.checkpoint_path), _weights(tmp_path / "two" / "latest.safetensors")
    assert sorted(a) == sorted(b)
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-7), (k, float((a[k] - b[k]).abs().max()))
    la = [h["loss"] for h in one.card["history"]]
    lb = [h["loss"] for h in card["history"]]
    assert np.allclose(la, lb, rtol=1e-5)
    assert [h["train_2afc"] for h in one.card["history"]] == pytest.approx([h["train_2afc"] for h in card["history"]])


@pytest.fixture(scope="module")
def mini_runs(mini_h5, tmp_path_factory):
    """The whole mini set, seed 0 (so one random backbone for all runs):

    * ``official``: the official schedule, fast path (default), val 2AFC after every epoch;
    * ``fast``/``full``: both paths with dropout 0.5 on a shorter schedule at a 10x rate (lr 1e-3,
      2 + 1 epochs), so the weights move enough for the dropout treatment to matter;
    * ``vec``: exact val vectors of that backbone, to score any linear layers.
    """
    base = tmp_path_factory.mktemp("mini_runs")
    kw = dict(data=str(mini_h5), backbone_weights="random", seed=0, progress=False)
    official = train(TrainConfig(out=str(base / "official"), val_every_epoch=True, **kw))
    short = dict(lr=1e-3, epochs=2, decay_epochs=1, **kw)
    fast = train(TrainConfig(out=str(base / "fast"), **short))
    full = train(TrainConfig(out=str(base / "full"), fast=False, **short))
    metric = load_metric_from_checkpoint(official.out_dir)
    vec = _val_vectors(metric, mini_h5, list(official.card["data"]["val_datasets"]))
    return official, fast, full, vec


def test_lin_training_raises_val_2afc_on_the_mini_set(mini_runs):
    """Same random backbone throughout; the trained layers against the untrained (seeded init) ones."""
    official, _fast, _full, vec = mini_runs
    before = official.card["initial_val"]["val_2afc"]
    after = official.card["history"][-1]["val_2afc"]
    w0 = _lin_vector(official.out_dir / "epoch_001.safetensors")
    assert _score(vec, _lin_vector(official.checkpoint_path)) == pytest.approx(after, abs=1e-9)
    baseline = _score(vec, torch.ones_like(w0))
    print(f"\nmini set val 2AFC [UNCALIBRATED: random backbone, synthetic]: untrained lin {100 * before:.2f}%"
          f" -> trained {100 * after:.2f}% (uniform-weight baseline {100 * baseline:.2f}%)")
    assert after > before + 0.10, (before, after)
    assert official.card["calibrated"] is False


def test_fast_path_dropout_within_half_a_point_of_full_path(mini_runs):
    _official, fast, full, vec = mini_runs
    w_fast, w_full = _lin_vector(fast.checkpoint_path), _lin_vector(full.checkpoint_path)
    s_fast, s_full = _score(vec, w_fast), _score(vec, w_full)
    print(f"\nfinal val 2AFC with dropout 0.5 (lr 1e-3, 3 epochs): fast {100 * s_fast:.2f}%  full {100 * s_full:.2f}%"
          f"  (max |w_fast - w_full| {float((w_fast - w_full).abs().max()):.2e})")
    assert not torch.equal(w_fast, w_full)  # different dropout noise, so not the same weights
    assert abs(s_fast - s_full) <= 0.005, (s_fast, s_full)
