"""Issue 10, honest labels: provenance travels with every weights file the toolkit writes, and
every path by which weights re-enter (``--backbone-weights``, ``--checkpoint``, ``--resume``,
``bapps score``, the Python API) keeps a random / synthetic-data origin labelled UNCALIBRATED."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from test_train import make_subset

from bapps_toolkit.cli.main import main
from bapps_toolkit.metrics import create_metric
from bapps_toolkit.metrics.backbones import build_backbone, random_init_, resolve_backbone
from bapps_toolkit.metrics.provenance import PROVENANCE_KEY, file_calibration, safetensors_metadata
from bapps_toolkit.metrics.trained import load_metric_from_checkpoint
from bapps_toolkit.train import TrainConfig, train

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _cfg(data, out, **kw) -> TrainConfig:
    base = dict(data=str(data), out=str(out), net="alex", variant="lin", backbone_weights="random",
                epochs=1, decay_epochs=0, batch_size=10, progress=False, seed=1)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def subset(mini_root, tmp_path_factory) -> Path:
    return make_subset(mini_root, tmp_path_factory.mktemp("prov_subset") / "bapps", n_train=10, n_val=10)


@pytest.fixture(scope="module")
def random_run(subset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prov_run") / "run"
    train(_cfg(subset, out))
    return out


def _pair(subset: Path) -> tuple[Path, Path]:
    ref = sorted((subset / "2afc" / "val" / "cnn" / "ref").iterdir())[0]
    return ref, ref.parent.parent / "p0" / ref.name


def test_every_written_weights_file_carries_provenance(random_run):
    for name in ("backbone.safetensors", "latest.safetensors", "epoch_001.safetensors"):
        meta = safetensors_metadata(random_run / name)
        prov = json.loads(meta[PROVENANCE_KEY])
        assert prov["calibrated"] is False, name
        assert "random backbone" in prov["note"], name
    bb = json.loads(safetensors_metadata(random_run / "backbone.safetensors")[PROVENANCE_KEY])
    assert bb["source"] == "random" and isinstance(bb["seed"], int)
    latest = json.loads(safetensors_metadata(random_run / "latest.safetensors")[PROVENANCE_KEY])
    assert latest["source"] == "trained" and latest["variant"] == "lin" and latest["synthetic"] is True


def test_python_api_backbone_file_keeps_uncalibrated(random_run):
    m = create_metric("lpips-alex", backbone_weights=str(random_run / "backbone.safetensors"))
    assert m.calibrated is False and "backbone.safetensors" in m.calibration_note
    assert "UNCALIBRATED" in m.label


def test_resolve_backbone_honours_file_metadata_and_foreign_files_stay_calibrated(tmp_path):
    state = dict(random_init_(build_backbone("alex"), 5).state_dict())
    foreign = tmp_path / "foreign.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(foreign))
    assert resolve_backbone("alex", str(foreign))[1] is True
    marked = tmp_path / "marked.safetensors"
    prov = {"source": "random", "calibrated": False, "note": "random (seed 5)"}
    save_file({k: v.contiguous() for k, v in state.items()}, str(marked), metadata={PROVENANCE_KEY: json.dumps(prov)})
    _, calibrated, note = resolve_backbone("alex", str(marked))
    assert calibrated is False and "marked.safetensors" in note and "seed 5" in note
    pth = tmp_path / "w.pth"
    torch.save(state, pth)
    assert file_calibration(pth) == (True, "")


def test_load_metric_from_checkpoint_keeps_label_with_and_without_override(random_run):
    m = load_metric_from_checkpoint(random_run)
    assert m.calibrated is False and "random backbone" in m.calibration_note
    m2 = load_metric_from_checkpoint(random_run / "latest.lin.pth",
                                     backbone_weights=str(random_run / "backbone.safetensors"))
    assert m2.calibrated is False and "backbone.safetensors" in m2.calibration_note


def test_train_tune_on_a_saved_random_backbone_stays_uncalibrated_cli(random_run, subset, tmp_path, capsys):
    out = tmp_path / "tune"
    args = ["train", str(subset), "--variant", "tune", "--out", str(out), "--epochs", "1",
            "--decay-epochs", "1", "--batch-size", "10", "--no-progress",
            "--backbone-weights", f"alex={random_run / 'backbone.safetensors'}"]
    assert main(args) == 0
    card = json.loads((out / "card.json").read_text())
    assert card["calibrated"] is False and "backbone.safetensors" in card["calibration_note"]
    assert "UNCALIBRATED" in capsys.readouterr().out
    assert load_metric_from_checkpoint(out).calibrated is False
    # --resume: make it a run killed after epoch 1, then continue it
    for name in ("epoch_002.safetensors", "epoch_002.optim.safetensors"):
        (out / name).unlink()
    card.update(epochs_done=1, finished=False, history=card["history"][:1])
    (out / "card.json").write_text(json.dumps(card))
    assert main(args + ["--resume"]) == 0
    card = json.loads((out / "card.json").read_text())
    assert card["calibrated"] is False and card["epochs_done"] == 2
    assert load_metric_from_checkpoint(out / "epoch_002.safetensors").calibrated is False


def test_bapps_score_labels_checkpoint_and_backbone_file(random_run, subset, capsys):
    a, b = _pair(subset)
    assert main(["score", str(a), str(b), "--checkpoint", str(random_run)]) == 0
    assert "UNCALIBRATED" in capsys.readouterr().out
    assert main(["score", str(a), str(b), "--metric", "lpips-alex",
                 "--backbone-weights", f"alex={random_run / 'backbone.safetensors'}"]) == 0
    assert "UNCALIBRATED" in capsys.readouterr().out
