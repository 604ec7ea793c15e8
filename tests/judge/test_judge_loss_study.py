"""End to end on a ``bapps loss-study`` output: its unjudged 2AFC set (``2afc/val/denoise``)
judged by simulated raters through the HTTP API, exported, packed, evaluated and used to train
LPIPS lin for one epoch.

The simulated raters prefer the output closer to the clean target in mean squared error with
probability ``sigmoid(4000 (mse0 − mse1))`` (judgments are SIMULATED, not human), so L2 must
agree with them well above chance. The tiny study trains a few steps on a handful of crops and
the lin training uses a seeded RANDOM backbone: their numbers only show that the data flows.
"""
from __future__ import annotations

import math
import sqlite3

import numpy as np
import pytest
from PIL import Image

from bapps_toolkit.cli.main import main
from bapps_toolkit.evaluate import evaluate
from bapps_toolkit.judge import create_from_set, export
from bapps_toolkit.study import LossStudyConfig, run_loss_study
from bapps_toolkit.train import TrainConfig, train

from .helpers import answer_all

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

TINY = dict(task="denoise", losses=("l1", "ssim", "l2"), eval_metrics=("psnr", "ssim"), patch_size=32,
            train_patches=16, batch_size=2, steps=6, checkpoint_every=6, width=8, blocks=1, eval_size=32,
            eval_crops=2, grid_crops=2, n_boot=50, device="cpu")


def _mse(folder, sub: str, stem: str) -> float:
    a = np.asarray(Image.open(folder / "ref" / f"{stem}.png"), dtype=np.float64)
    b = np.asarray(Image.open(folder / sub / f"{stem}.png"), dtype=np.float64)
    return float((((a - b) / 255.0) ** 2).mean())


def _rate(url: str, rater: str, folder, stems: dict[int, str], rng: np.random.Generator) -> int:
    def body(t: dict) -> dict:
        stem = stems[t["item"]]
        if stem.startswith("sentinel"):
            wants_p1 = bool(rng.integers(2))
        else:
            m0, m1 = _mse(folder, "p0", stem), _mse(folder, "p1", stem)
            wants_p1 = rng.random() < 1.0 / (1.0 + math.exp(-4000.0 * (m0 - m1)))
        return {"side": "right" if wants_p1 != bool(t["swapped"]) else "left"}
    return answer_all(url, rater, body, rt_ms=650.0)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_loss_study_output_judged_exported_packed_evaluated_trained(tmp_path, live, capsys):
    study = tmp_path / "study"
    run_loss_study(LossStudyConfig(out_dir=str(study), **TINY), progress=False)
    folder = study / "2afc" / "val" / "denoise"
    n_items = len(list((folder / "ref").glob("*.png")))
    assert n_items >= 12 and not (folder / "judge").exists()
    db = create_from_set(study, tmp_path / "s.sqlite", judgments_per_item=5, sentinel_share=0.1, seed=1)
    stems = dict(sqlite3.connect(db).execute("SELECT id, stem FROM items"))
    srv = live(db)
    rng = np.random.default_rng(0)
    total = sum(_rate(srv.url, f"sim{i}", folder, stems, rng) for i in range(5))
    assert total >= 5 * n_items
    summary = export(db, tmp_path / "judged")
    assert summary["2afc_items_judged"] == n_items
    assert (tmp_path / "judged" / "2afc" / "val" / "denoise" / "judge").is_dir()
    assert main(["pack", str(tmp_path / "judged"), str(tmp_path / "judged.h5"), "--no-progress"]) == 0
    table = evaluate(tmp_path / "judged.h5", ["l2", "ssim"], n_boot=100, progress=False)
    assert "denoise" in set(table["category"]), table
    l2 = table[(table["metric"] == "l2") & (table["category"] == "denoise")]
    assert float(l2["score"].iloc[0]) > 0.6, table
    res = train(TrainConfig(data=str(tmp_path / "judged.h5"), out=str(tmp_path / "run"), net="alex", variant="lin",
                            backbone_weights="random", epochs=1, decay_epochs=1, batch_size=8, progress=False,
                            datasets=["2afc/val/denoise"], seed=0))
    trained = evaluate(tmp_path / "judged.h5", [str(res.checkpoint_path)], n_boot=100, progress=False)
    assert 0.0 <= float(trained["score"].iloc[0]) <= 1.0
    with capsys.disabled():
        print("\nloss-study output judged by SIMULATED raters (5 x", n_items, "items):\n" + table.to_string()
              + "\ntrained lin (RANDOM backbone, UNCALIBRATED, scored on its own training data):\n"
              + trained.to_string())
