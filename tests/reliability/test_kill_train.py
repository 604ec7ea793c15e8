"""kill -9 ``bapps train`` at seeded random points; ``--resume`` ends bit-identical.

The child runs ``bapps train`` (lin on a seeded random AlexNet — UNCALIBRATED, CPU,
``--deterministic``) on 80 triplets of the packed mini-set subset: 3 epochs of 8 steps, each
step slowed by the owner's test hook ``BAPPS_TRAIN_TEST_STEP_SLEEP`` so the kills land in the
set-up, the feature precompute, mid-epoch and while checkpoints are written; plus commit-point
kills just before/after a rename that publishes a checkpoint, ``log.csv`` or ``card.json``.

After every kill: every file in the run folder under a final name is complete — each
``.safetensors`` reads, each ``.lin.pth`` reads with ``weights_only=True``, ``card.json`` and
``log.csv`` parse, every epoch the card says is finished has its files, and a folder with a
``latest.safetensors`` loads as a metric; anything else is a ``.*.tmp-*`` temporary. Then the
run is finished the way a user would (``--resume`` when the folder holds a card, else the same
command again), and its final weights and Adam state are bit-identical to an uninterrupted run,
with no temporary left in the folder.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from bapps_toolkit.cli.main import main
from bapps_toolkit.train import checkpoint as ck
from bapps_toolkit.train import load_metric_from_checkpoint

from .harness import Schedule, make_plans, record, run_child

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning")]

N_TIME = 6
N_COMMIT = 4
SLEEP = "0.03"


def train_args(h5: Path, out: Path, *extra: str) -> list:
    return ["train", str(h5), "--out", str(out), "--net", "alex", "--variant", "lin",
            "--backbone-weights", "alex=random", "--epochs", "2", "--decay-epochs", "1",
            "--batch-size", "10", "--datasets", "train/traditional", "train/cnn", "--seed", "11",
            "--device", "cpu", "--deterministic", "--no-progress", *extra]


_BODY = """
import sys, warnings
warnings.simplefilter("ignore")
import torch
import bapps_toolkit.train, bapps_toolkit.data, bapps_toolkit.metrics.lpips
from bapps_toolkit.cli.main import main
import functools, os, time
import bapps_toolkit.train as _tr  # bapps train calls bapps_toolkit.train.train at run time
_sleep = float(os.environ.get("BAPPS_TRAIN_TEST_STEP_SLEEP", "0") or 0)  # read here, by the test child
_tr.train = functools.partial(_tr.train, on_step=lambda epoch, step: time.sleep(_sleep))
_started()
sys.exit(main(sys.argv[1:]))
"""


def _weights(path: Path) -> dict:
    tensors, _ = ck.read_safetensors(path)
    return tensors


def _temporaries(out: Path) -> list:
    return sorted(p.name for p in out.iterdir() if ".tmp-" in p.name)


def _check_after_kill(out: Path) -> list:
    if not out.exists():
        return ["nothing"]
    found = []
    for p in sorted(out.iterdir()):
        n = p.name
        if n.startswith(".") and ".tmp-" in n:
            found.append("temporary")
            continue
        if n.endswith(".safetensors"):
            ck.read_safetensors(p)
        elif n.endswith(".lin.pth"):
            ck.read_tensor_dict_pth(p)
        elif n == ck.CARD:
            card = json.loads(p.read_text())
            assert card["format"] == ck.CARD_FORMAT
            for e in range(1, int(card["epochs_done"]) + 1):
                for f in (ck.weights_path(out, ck.epoch_stem(e)), ck.optim_path(out, ck.epoch_stem(e))):
                    assert f.is_file(), f"{f} missing although the card says epoch {e} finished"
            found.append(f"card(epochs_done={card['epochs_done']})")
        elif n == ck.LOG:
            rows = list(csv.DictReader(p.open()))
            assert all(r["loss"] for r in rows)
        else:
            raise AssertionError(f"unexpected file {p} in the run folder")
    if (out / "latest.safetensors").exists():
        m = load_metric_from_checkpoint(out)
        assert not m.calibrated
        found.append("latest loads")
    return found or ["empty folder"]


def test_kill_train_at_random_points(rel_h5, tmp_path):
    ref_out = tmp_path / "ref"
    assert main(train_args(rel_h5, ref_out)) == 0
    ref_w = _weights(ref_out / "latest.safetensors")
    ref_o = _weights(ref_out / "latest.optim.safetensors")
    ref_loss = [h["loss"] for h in json.loads((ref_out / ck.CARD).read_text())["history"]]
    env = {"BAPPS_TRAIN_TEST_STEP_SLEEP": SLEEP}

    timing = run_child(_BODY, tmp_path / "ctl", train_args(rel_h5, tmp_path / "timing"), env=env,
                       watch=tmp_path / "timing" / ck.CARD)
    assert timing.status == "finished" and timing.watch_seconds is not None, timing.output
    child_w = _weights(tmp_path / "timing" / "latest.safetensors")
    assert all(torch.equal(child_w[k], ref_w[k]) for k in ref_w), "child and in-process runs differ"

    # half the time points in the set-up (model, features), half once card.json exists (epochs)
    setup = make_plans(608, N_TIME // 2, timing.watch_seconds, 0, 0)
    epochs = make_plans(609, N_TIME - N_TIME // 2, timing.seconds - timing.watch_seconds, 0, 0)
    for p in epochs:
        p.after_watch = True
    plans = Schedule(setup + epochs + make_plans(610, 0, 0.0, timing.replaces, N_COMMIT),
                     make_plans(1608, 8, 0.5 * timing.watch_seconds, 0, 0), N_TIME)
    for i, plan in enumerate(plans):
        out = tmp_path / f"trial{i:02d}"
        res = run_child(_BODY, tmp_path / "ctl", train_args(rel_h5, out), env=env,
                        delay=plan.delay, kill_at_replace=plan.replace, watch=out / ck.CARD,
                        after_watch=plan.after_watch)
        assert res.status in ("killed", "finished"), res.output
        left = _check_after_kill(out)
        resume = (out / ck.CARD).exists()
        assert main(train_args(rel_h5, out, *(["--resume"] if resume else []))) == 0
        w = _weights(out / "latest.safetensors")
        o = _weights(out / "latest.optim.safetensors")
        assert sorted(w) == sorted(ref_w) and sorted(o) == sorted(ref_o)
        for k in ref_w:
            assert torch.equal(w[k], ref_w[k]), f"trial {i} ({plan.describe()}): {k} differs"
        for k in ref_o:
            assert torch.equal(o[k], ref_o[k]), f"trial {i} ({plan.describe()}): optimizer {k} differs"
        card = json.loads((out / ck.CARD).read_text())
        assert card["finished"] and [h["loss"] for h in card["history"]] == ref_loss
        assert _temporaries(out) == [], f"trial {i} ({plan.describe()}): temporaries left behind"
        plans.done(plan, res.status == "killed")
        record("train", plan, res.status == "killed",
               ("killed; " if res.status == "killed" else "finished before the kill; ")
               + ("--resume" if resume else "plain rerun") + " -> weights bit-identical", left)
    assert plans.time_kills >= N_TIME, f"only {plans.time_kills} time-based kills landed mid-work"


def test_resume_leaves_no_temporaries(rel_h5, tmp_path):
    """A kill just before the first rename leaves a finished '.<name>.tmp-*'; the rerun removes it."""
    out = tmp_path / "run"
    res = run_child(_BODY, tmp_path / "ctl", train_args(rel_h5, out), kill_at_replace=[1, "before"])
    assert res.status == "killed", res.output
    _check_after_kill(out)
    resume = (out / ck.CARD).exists()
    assert main(train_args(rel_h5, out, *(["--resume"] if resume else []))) == 0
    assert _temporaries(out) == []
