"""``bapps loss-study`` end to end on a tiny configuration: outputs, determinism (same seed →
identical matrix), resumption after a SIGKILL (→ identical result), errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from bapps_toolkit.errors import CheckpointError
from bapps_toolkit.study import LossStudyConfig, run_loss_study

pytestmark = pytest.mark.filterwarnings("ignore:.*UNCALIBRATED:UserWarning")

TINY = dict(task="denoise", losses=("l1", "ssim", "0.5*l1+lpips-alex"), eval_metrics=("psnr", "ssim", "lpips-alex"),
            patch_size=32, train_patches=16, batch_size=2, steps=6, checkpoint_every=2, width=8, blocks=1,
            eval_size=32, eval_crops=1, grid_crops=2, n_boot=50, device="cpu", backbone_weights="random")
NUMBERS = ("rows", "cols", "mean", "ci_low", "ci_high", "per_image", "training_history")


def _numbers(out: Path) -> dict:
    mx = json.loads((out / "matrix.json").read_text())
    return {k: mx[k] for k in NUMBERS}


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "a"
    result = run_loss_study(LossStudyConfig(out_dir=str(out), **TINY), progress=False)
    return out, result


def test_outputs_and_labels(first_run):
    out, result = first_run
    mx = result.matrix
    assert mx["rows"][0] == "(input, no network)" and len(mx["rows"]) == 4
    assert "UNCALIBRATED" in mx["cols"][2] and "UNCALIBRATED" in mx["rows"][3]
    assert "SMALL STUDY" in mx["note"] and "RANDOM backbones" in mx["note"]
    for name in ("matrix.md", "matrix.tex", "matrix.csv", "matrix.json", "grid.png", "afc_manifest.csv"):
        assert (out / name).stat().st_size > 0
    assert "SMALL STUDY" in (out / "matrix.md").read_text() and "SMALL STUDY" in (out / "matrix.csv").read_text()
    # one convergence line per loss, in the JSON and the report; curves drawn under the grid
    assert [c["loss"] for c in mx["convergence"]] == list(TINY["losses"])
    assert all(c["text"] in result.markdown for c in mx["convergence"])
    assert [p[0] for p in mx["training_history"]["l1"]] == [2, 4, 6]
    n_test = len(mx["test_images"])
    for i in range(len(mx["rows"])):
        for j in range(len(mx["cols"])):
            assert mx["ci_low"][i][j] <= mx["mean"][i][j] <= mx["ci_high"][i][j]
            assert len(mx["per_image"][mx["rows"][i]][mx["cols"][j]]) == n_test
    assert not set(mx["train_images"]) & set(mx["test_images"])
    # 2AFC set: every crop x every pair of the 3 losses, no judge folder
    afc = out / "2afc" / "val" / "denoise"
    items = json.loads((out / "afc_manifest.json").read_text())["items"]
    assert len(items) == n_test * 3
    assert sorted(p.name for p in afc.iterdir()) == ["p0", "p1", "ref"]
    assert len(list((afc / "p0").glob("*.png"))) == len(items)
    assert {frozenset((i["p0_loss"], i["p1_loss"])) for i in items} == {
        frozenset(p) for p in (("l1", "ssim"), ("l1", "0.5*l1+lpips-alex"), ("ssim", "0.5*l1+lpips-alex"))}


def test_same_seed_identical_matrix_and_rerun_skips_training(first_run, tmp_path):
    out, _ = first_run
    run_loss_study(LossStudyConfig(out_dir=str(tmp_path / "b"), **TINY), progress=False)
    assert _numbers(tmp_path / "b") == _numbers(out)
    calls = []
    run_loss_study(LossStudyConfig(out_dir=str(out), **TINY), progress=False,
                   on_checkpoint=lambda *a: calls.append(a))
    assert calls == []  # every loss finished: loaded, not retrained
    other = run_loss_study(LossStudyConfig(out_dir=str(tmp_path / "c"), **{**TINY, "seed": 1}), progress=False)
    assert other.matrix["mean"] != json.loads((out / "matrix.json").read_text())["mean"]


def test_resume_after_sigkill_gives_the_same_result(first_run, tmp_path):
    out, _ = first_run
    killed = tmp_path / "killed"
    script = textwrap.dedent(f"""
        import os, signal, warnings
        warnings.simplefilter("ignore")
        from bapps_toolkit.study import LossStudyConfig, run_loss_study
        def die(loss, step, finished):
            if loss == "ssim" and step == 4:
                os.kill(os.getpid(), signal.SIGKILL)
        run_loss_study(LossStudyConfig(out_dir={str(killed)!r}, **{TINY!r}), progress=False, on_checkpoint=die)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                          env={**os.environ})
    assert proc.returncode == -9, proc.stderr
    assert not (killed / "matrix.json").exists()
    ckpts = sorted(p.name for p in (killed / "checkpoints").iterdir())
    assert ckpts == ["l1.pt", "ssim.pt"]  # l1 finished, ssim partial (step 4 of 6), nothing half-written
    steps = []
    run_loss_study(LossStudyConfig(out_dir=str(killed), **TINY), progress=False,
                   on_checkpoint=lambda loss, step, fin: steps.append((loss, step)))
    assert steps[0] == ("ssim", 6) and ("l1", 2) not in steps
    assert _numbers(killed) == _numbers(out)


def test_errors(first_run, tmp_path):
    out, _ = first_run
    with pytest.raises(ValueError, match="task"):
        run_loss_study(LossStudyConfig(out_dir=str(tmp_path / "x"), **{**TINY, "task": "paint"}))
    with pytest.raises(ValueError, match="unknown loss"):
        run_loss_study(LossStudyConfig(out_dir=str(tmp_path / "x"), **{**TINY, "losses": ("l1", "nope")}))
    with pytest.raises(ValueError, match="unknown metric"):
        run_loss_study(LossStudyConfig(out_dir=str(tmp_path / "x"), **{**TINY, "eval_metrics": ("psnr", "nope")}))
    with pytest.raises(ValueError, match="multiple of 4"):
        LossStudyConfig(**{**TINY, "patch_size": 30}).validate()
    with pytest.raises(CheckpointError, match="other settings.*steps"):
        run_loss_study(replace(LossStudyConfig(out_dir=str(out), **TINY), steps=7), progress=False)


def test_images_folder_and_tasks(tmp_path):
    from PIL import Image

    from bapps_toolkit.study.tasks import degrade, load_images
    folder = tmp_path / "imgs"
    folder.mkdir()
    import numpy as np
    rng = np.random.default_rng(0)
    for k in range(3):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(folder / f"im{k}.png")
    (folder / "notes.txt").write_text("not an image")
    s = load_images(folder)
    assert s.names == ["im0.png", "im1.png", "im2.png"]
    patch = s.images[0][None, :32, :32]
    for task in ("denoise", "deblur", "sr2", "sr4", "jpeg", "autoencode"):
        y = degrade(patch, task, sigma=0.1, blur_sigma=1.5, jpeg_quality=20, rng=np.random.default_rng(1))
        assert y.shape == (1, 32, 32, 3) and y.dtype == np.float32
        assert (task == "autoencode") == bool(np.array_equal(y, patch / np.float32(255)))
    from bapps_toolkit.errors import DataError
    with pytest.raises(DataError, match="at least 2"):
        (folder / "im1.png").unlink()
        (folder / "im2.png").unlink()
        load_images(folder)


@pytest.mark.slow
def test_losses_notebook_executes(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    monkeypatch.setenv("BAPPS_NOTEBOOK_WORK", str(tmp_path / "work"))
    monkeypatch.setenv("BAPPS_NOTEBOOK_STEPS", "4")
    nb = nbformat.read(Path(__file__).resolve().parents[1] / "notebooks" / "losses.ipynb", as_version=4)
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    shown = "".join(str(o.get("data", {}).get("text/markdown", "")) for o in outputs)
    assert "SMALL STUDY" in shown and "UNCALIBRATED" in shown
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert (tmp_path / "work" / "grid.png").stat().st_size > 0


def test_refuses_without_backbone_weights(tmp_path, monkeypatch):
    """No ImageNet weights cached and none downloadable: refused before training, CLI form in the message."""
    from bapps_toolkit.errors import WeightsError
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("BAPPS_WEIGHTS_BASE_URL", "http://127.0.0.1:9/")
    cfg = LossStudyConfig(out_dir=str(tmp_path / "x"), **{**TINY, "backbone_weights": ()})
    with pytest.raises(WeightsError, match=r"lpips-alex.*--backbone-weights NET=PATH.*--backbone-weights random"):
        run_loss_study(cfg, progress=False)
    assert not (tmp_path / "x" / "checkpoints").exists()
    missing = LossStudyConfig(out_dir=str(tmp_path / "y"), **{**TINY, "backbone_weights": ("alex=nope.pth",)})
    with pytest.raises(WeightsError, match="alex=nope.pth"):
        run_loss_study(missing, progress=False)
    # without deep metrics nothing is needed
    plain = {**TINY, "losses": ("l1",), "eval_metrics": ("psnr",), "backbone_weights": (), "steps": 2}
    run_loss_study(LossStudyConfig(out_dir=str(tmp_path / "z"), **plain), progress=False)


def test_cli_refuses_random_backbones_unless_asked(tmp_path, monkeypatch, capsys):
    from bapps_toolkit.cli.main import main
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("BAPPS_WEIGHTS_BASE_URL", "http://127.0.0.1:9/")
    args = ["loss-study", "--out", str(tmp_path / "s"), "--losses", "l1", "--eval-metrics", "psnr,lpips-alex",
            "--steps", "2", "--train-patches", "4", "--batch-size", "2", "--width", "8", "--blocks", "0",
            "--eval-crops", "1", "--grid-crops", "1", "--n-boot", "20", "--no-progress", "--device", "cpu"]
    assert main(args) != 0
    assert "--backbone-weights random" in capsys.readouterr().err
    assert main(args + ["--backbone-weights", "random"]) == 0
    assert "UNCALIBRATED" in capsys.readouterr().out


def test_backbone_weights_forms():
    cfg = LossStudyConfig(backbone_weights="random").validate()
    assert cfg.training_fingerprint()["backbone_weights"] == "random"  # earlier checkpoints still resume
    assert cfg.deep_options("lpips-vgg") == {"backbone_weights": "random"} and cfg.deep_options("psnr") == {}
    assert LossStudyConfig(backbone_weights="imagenet").validate().training_fingerprint()["backbone_weights"] == \
        "imagenet"
    mixed = LossStudyConfig(backbone_weights=("alex=w.pth", "vgg=random")).validate()
    assert mixed.deep_options("lpips-alex") == {"backbone_weights": "w.pth"}
    assert mixed.deep_options("dists") == {"backbone_weights": "random"}
    assert mixed.deep_options("lpips-squeeze") == {"backbone_weights": None}
    for bad in (("random", "alex=w.pth"), ("alex",), ("resnet=w.pth",), ("alex=a", "alex=b")):
        with pytest.raises(ValueError, match="backbone_weights"):
            LossStudyConfig(backbone_weights=bad).validate()


def test_convergence_rule():
    from bapps_toolkit.study.convergence import convergence_lines, curve_trend
    falling = [[s, 1.0 - 0.001 * s] for s in range(10, 110, 10)]
    flat = [[s, 0.5 + (0.001 if s % 20 else -0.001)] for s in range(10, 110, 10)]
    assert curve_trend(falling).improving and abs(curve_trend(falling).change_per_100 + 0.1) < 1e-9
    assert not curve_trend(flat).improving
    assert curve_trend([[10, 1.0], [20, 0.5]]).points == 0
    cols = ["ssim", "l2"]
    means = {"SSIM": [0.30, 0.010], "L2": [0.25, 0.008]}
    labels = {"ssim": "SSIM", "l2": "L2"}
    lines = convergence_lines(["ssim", "l2"], labels, cols, means, {"ssim": falling, "l2": flat})
    ssim, l2 = lines
    assert not ssim.wins and abs(ssim.gap - 0.05) < 1e-12
    assert ssim.steps_needed == 50 and "would need about 50 more steps" in ssim.text  # 0.05 / (0.1 per 100)
    assert l2.wins and "levelled off" in l2.text and l2.steps_needed is None
    stuck = convergence_lines(["ssim", "l2"], labels, cols, means, {"ssim": flat, "l2": flat})[0]
    assert not stuck.wins and stuck.steps_needed is None and "unlikely to close" in stuck.text
