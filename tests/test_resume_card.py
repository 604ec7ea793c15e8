"""Issue 10, first hour: ``bapps train --resume`` takes the settings saved in the run card; options
given explicitly must agree with it, or the error names each one that differs (card vs given).

A tiny run (random backbone, 20 mini-set triplets, 1 + 1 epochs) is interrupted after its first
epoch and resumed with no options but --out; its weights equal those of the same run done in one go.
"""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from test_train import make_subset

from bapps_toolkit.cli.main import main
from bapps_toolkit.errors import CheckpointError
from bapps_toolkit.train import TrainConfig, resume_config, train

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# non-default values everywhere, so a resume that fell back to the defaults could not pass
SETTINGS = dict(backbone_weights="random", epochs=1, decay_epochs=1, batch_size=10, lr=1e-3, dropout=0.25,
                seed=7, datasets=["train/cnn"], deterministic=True, progress=False)


class _Stop(Exception):
    pass


def _stop_in_epoch_2(epoch: int, step: int) -> None:
    if epoch == 2:
        raise _Stop


@pytest.fixture(scope="module")
def runs(mini_root, tmp_path_factory):
    """``(data, interrupted run folder, reference run)``: the same settings, stopped after epoch 1 / done."""
    base = tmp_path_factory.mktemp("resume_card")
    data = make_subset(mini_root, base / "bapps", train_cats=("cnn",), val_cats=("cnn",), n_train=20, n_val=10)
    ref = train(TrainConfig(data=str(data), out=str(base / "ref"), **SETTINGS))
    with pytest.raises(_Stop):
        train(TrainConfig(data=str(data), out=str(base / "cut"), **SETTINGS), on_step=_stop_in_epoch_2)
    card = json.loads((base / "cut" / "card.json").read_text())
    assert card["epochs_done"] == 1 and not card["finished"]
    return data, base / "cut", ref


def _copy(run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(run, out)
    return out


def test_cli_resume_without_options_takes_the_card_settings(runs, tmp_path, capsys):
    from safetensors.torch import load_file

    data, cut, ref = runs
    out = _copy(cut, tmp_path)
    assert main(["train", str(data), "--out", str(out), "--resume", "--no-progress"]) == 0
    card = json.loads((out / "card.json").read_text())
    assert card["finished"] and card["resumed"][0]["from_epoch"] == 1
    for key in ("seed", "lr", "dropout", "batch_size", "datasets", "epochs", "decay_epochs", "deterministic"):
        assert card["config"][key] == ref.card["config"][key], key
    a, b = load_file(str(ref.checkpoint_path)), load_file(str(out / "latest.safetensors"))
    assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert "UNCALIBRATED" in capsys.readouterr().out  # the random backbone's label survives the resume


def test_cli_resume_with_agreeing_options_goes_ahead(runs, tmp_path, capsys):
    data, cut, _ = runs
    out = _copy(cut, tmp_path)
    assert main(["train", str(data), "--out", str(out), "--resume", "--no-progress", "--seed", "7", "--lr",
                 "0.001", "--backbone-weights", "alex=random", "--datasets", "train/cnn", "--val"]) == 0
    card = json.loads((out / "card.json").read_text())
    assert card["finished"] and card["history"][-1]["val_2afc"] is not None  # --val: a run option, may differ


def test_cli_resume_names_each_differing_option_with_both_values(runs, tmp_path, capsys):
    data, cut, _ = runs
    out = _copy(cut, tmp_path)
    before = (out / "card.json").read_text()
    rc = main(["train", str(data), "--out", str(out), "--resume", "--no-progress", "--seed", "8",
               "--lr", "1e-4", "--epochs", "1", "--dropout", "0.25", "--lpips-version", "0.0", "--variant", "tune",
               "--batch-size", "50"])
    err = capsys.readouterr().err
    assert rc == 2
    for part in ("--seed: card 7, given 8", "--lr: card 0.001, given 0.0001", "--lpips-version: card 0.1, given 0.0",
                 "--variant: card lin, given tune", "--batch-size: card 10, given 50"):
        assert part in err, (part, err)
    assert "--epochs:" not in err and "--dropout:" not in err  # given, and equal to the card
    assert (out / "card.json").read_text() == before


def test_python_resume_config(runs, tmp_path):
    data, cut, _ = runs
    cfg = resume_config(cut)
    assert cfg.resume and (cfg.seed, cfg.lr, cfg.dropout, cfg.batch_size) == (7, 1e-3, 0.25, 10)
    assert cfg.datasets == ["train/cnn"] and cfg.deterministic and cfg.data == str(data)
    assert resume_config(cut, seed=7, epochs=None).seed == 7  # None = not given
    differ = r"backbone_weights: card random, given \S*latest\.safetensors; seed: card 7, given 8"
    with pytest.raises(CheckpointError, match=differ):
        resume_config(cut, seed=8, backbone_weights=str(cut / "latest.safetensors"))
    with pytest.raises(CheckpointError, match="nothing to resume"):
        resume_config(tmp_path / "empty")
