"""End to end: an unjudged 2AFC set (BAPPS layout without ``judge/`` — the layout ``bapps
loss-study`` writes) judged by simulated raters through the HTTP API, exported, packed with
``bapps pack``, scored with ``evaluate`` and used to train LPIPS lin for one epoch.

The simulated raters are observers who prefer the less noisy distortion with probability
``sigmoid(8 (t0 - t1))`` (t = noise strength), so L2 must agree with their judgments well above
chance. The lin training uses a seeded RANDOM backbone: its numbers are UNCALIBRATED and only
show the data set trains.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from bapps_toolkit.cli.main import main
from bapps_toolkit.evaluate import evaluate
from bapps_toolkit.judge import create_from_set, export
from bapps_toolkit.train import TrainConfig, train

from .helpers import answer_all, build_unjudged, jnd_timings


def _simulate(url: str, rater: str, truth: dict, rng: np.random.Generator, stems: dict[int, str]) -> int:
    def body(t: dict) -> dict:
        stem = stems[t["item"]]
        if t["kind"] != "2afc":
            return {"side": "same" if rng.random() < 0.5 else "different", "timings": jnd_timings()}
        if stem.startswith("sentinel"):
            wants_p1 = bool(rng.integers(2))
        else:
            t0, t1 = truth["2afc"][stem]
            wants_p1 = rng.random() < 1.0 / (1.0 + math.exp(-8.0 * (t0 - t1)))
        return {"side": "right" if wants_p1 != bool(t["swapped"]) else "left"}
    return answer_all(url, rater, body)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_judge_export_pack_evaluate_train(tmp_path, live, capsys):
    import sqlite3
    root = tmp_path / "set"
    truth = build_unjudged(root, n_2afc=40, n_jnd=0, seed=5, key_2afc="2afc/train/traditional")
    db = create_from_set(root, tmp_path / "s.sqlite", judgments_per_item=5, sentinel_share=0.1, seed=1)
    stems = dict(sqlite3.connect(db).execute("SELECT id, stem FROM items"))
    srv = live(db)
    rng = np.random.default_rng(0)
    total = sum(_simulate(srv.url, f"sim{i}", truth, rng, stems) for i in range(5))
    assert total == sqlite3.connect(db).execute("SELECT COUNT(*) FROM assignments").fetchone()[0] >= 200
    summary = export(db, tmp_path / "judged")
    assert summary["2afc_items_judged"] == 40
    assert main(["pack", str(tmp_path / "judged"), str(tmp_path / "judged.h5"), "--no-progress"]) == 0
    table = evaluate(tmp_path / "judged.h5", ["l2", "ssim"], datasets=["train"], n_boot=100, progress=False)
    with capsys.disabled():
        print("\n" + table.to_string())
    l2 = table[(table["metric"] == "l2")]
    score = float(l2["score"].iloc[0])
    assert score > 0.6, table
    assert 0.5 <= summary["human_ceiling_2afc"] <= 1.0
    res = train(TrainConfig(data=str(tmp_path / "judged.h5"), out=str(tmp_path / "run"), net="alex", variant="lin",
                            backbone_weights="random", epochs=1, decay_epochs=1, batch_size=20, progress=False,
                            datasets=["2afc/train/traditional"], seed=0))
    trained = evaluate(tmp_path / "judged.h5", [str(res.checkpoint_path)], datasets=["train"], n_boot=100,
                       progress=False)
    assert 0.0 <= float(trained["score"].iloc[0]) <= 1.0
    with capsys.disabled():
        print("trained lin on the judged set (RANDOM backbone, UNCALIBRATED, scored on its own training data):\n"
              + trained.to_string())
