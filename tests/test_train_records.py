"""The typed records of a training run: weights-file booleans keep their on-disk form."""
from __future__ import annotations

import pytest

from bapps_toolkit.errors import CheckpointError
from bapps_toolkit.train.records import ModelMeta, read_flag


def test_model_meta_booleans_round_trip_and_old_files_load():
    meta = ModelMeta(backbone_in_file=True, started_from_scratch=False, calibrated=False, text={"net": "alex"})
    written = meta.to_metadata()
    assert written["backbone_in_file"] == "1" and written["calibrated"] == "0" and written["net"] == "alex"
    assert ModelMeta.from_metadata(written, "w.safetensors") == meta
    # metadata as files of earlier versions wrote it ("1"/"0" strings) reads as real booleans
    old = {"format": "bapps-toolkit/lpips", "backbone_in_file": "1", "started_from_scratch": "0", "calibrated": "1"}
    back = ModelMeta.from_metadata(old, "old.safetensors")
    assert back.backbone_in_file is True and back.started_from_scratch is False and back.calibrated is True
    assert read_flag({}, "backbone_in_file", "x") is False


def test_model_meta_refuses_a_malformed_boolean():
    with pytest.raises(CheckpointError, match="bad.safetensors: metadata backbone_in_file 'yes please'"):
        read_flag({"backbone_in_file": "yes please"}, "backbone_in_file", "bad.safetensors")
