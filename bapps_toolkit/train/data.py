"""The inputs of a training run: its 2AFC sets, its backbone, its calibration, its triplets.

Which 2AFC sets it trains and validates on, where its backbone comes from, whether the result is calibrated, and
the full path's triplets held whole.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._io import sha256_file
from ..data import find_sets, iter_2afc_chunks, load_2afc, to_model_input
from ..data.datasets import is_h5
from ..data.h5format import open_h5
from ..data.layout import expand_datasets, resolve_root, scan_set
from ..errors import BappsError, DataError
from ..metrics.plugin_net import plugin_origin
from ..metrics.plugin_specs import is_plugin_net
from ..metrics.provenance import file_calibration
from .config import TrainConfig
from .model import STREAM_BACKBONE, derive_seed
from .records import BackboneSource


def select_train_keys(cfg: TrainConfig) -> list[str]:
    """The 2AFC sets the run trains on: ``cfg.datasets``, or every ``2afc/train/*`` set present.

    Raises:
        DataError: the data is missing, holds no sets, or no training set.
    """
    data = Path(cfg.data)
    if not data.exists():
        raise DataError(f"training data {data} does not exist (give a BAPPS folder root or a packed .h5)")
    try:
        present = find_sets(str(data))
    except DataError as exc:
        raise DataError(f"no training data found in {data}: {exc}") from None
    twoafc = [k for k in present if k.startswith("2afc/")]
    if cfg.datasets is None:
        keys = [k for k in twoafc if k.startswith("2afc/train/")]
        if not keys:
            raise DataError(
                f"no training data found in {data}: no 2afc/train/* sets "
                f"(present: {', '.join(present) or 'none'}); download twoafc_train or pass datasets="
            )
        return keys
    return list(expand_datasets(cfg.datasets, present, "2afc", where=str(data)))


def select_val_keys(cfg: TrainConfig) -> list[str]:
    """The 2AFC sets the run validates on: ``cfg.val_datasets``, or every ``2afc/val/*`` set present.

    Raises:
        DataError: no 2afc/val/* set is there to validate on.
    """
    present = find_sets(cfg.data)
    if cfg.val_datasets is not None:
        return list(expand_datasets(cfg.val_datasets, present, "2afc", where=str(cfg.data)))
    keys = [k for k in present if k.startswith("2afc/val/")]
    if not keys:
        raise DataError(f"val_every_epoch=True: no 2afc/val/* sets in {cfg.data} to validate on "
                        f"(present: {', '.join(present)})")
    return keys


def is_synthetic(cfg: TrainConfig, keys: Sequence[str]) -> bool:
    """Whether the first training set ``keys[0]`` is marked synthetic."""
    for part in iter_2afc_chunks(cfg.data, keys[0], 1):
        return bool(part.synthetic)
    return False


def backbone_source(cfg: TrainConfig) -> BackboneSource:
    """Where the run's backbone comes from (the card's ``backbone`` entry).

    Args:
        cfg: the validated settings.

    Returns:
        The record.

    Raises:
        BappsError: a named weights file does not exist.
    """
    if is_plugin_net(cfg.net):
        # the plugin's code and options; its weights are stored in every checkpoint
        origin = plugin_origin(cfg.net)  # a PluginError (ValueError) names the spec
        options = dict(cfg.net_options) if isinstance(cfg.net_options, Mapping) else {}
        return {"source": f"plugin network {cfg.net}", "started_from_scratch": False,
                "trained": cfg.variant != "lin", "plugin": {"spec": cfg.net, "options": options, "origin": origin}}
    if cfg.variant == "scratch":
        return {"source": "random", "seed": derive_seed(cfg.seed, STREAM_BACKBONE) % (2 ** 31),
                "started_from_scratch": True, "trained": True}
    if cfg.backbone_weights == "random":
        return {"source": "random", "seed": derive_seed(cfg.seed, STREAM_BACKBONE) % (2 ** 31),
                "started_from_scratch": False, "trained": cfg.variant != "lin"}
    if cfg.backbone_weights is None:
        return {"source": "torchvision ImageNet weights (torch hub cache)", "started_from_scratch": False,
                "trained": cfg.variant != "lin"}
    p = Path(cfg.backbone_weights)
    if not p.is_file():
        raise BappsError(f"backbone_weights: {p} does not exist or is not a file")
    file_ok, file_note = file_calibration(p)
    return {"source": str(p), "sha256": sha256_file(p), "started_from_scratch": False,
            "trained": cfg.variant != "lin", "file_calibrated": file_ok,
            "file_note": f"backbone from {p.name}: {file_note}" if not file_ok else ""}


def set_shapes(source: str, keys: Sequence[str]) -> list[tuple[str, int, int]]:
    """``(key, triplets, patch side)`` of each set, reading no more than one triplet of each."""
    if is_h5(source):
        f, info = open_h5(source)
        f.close()
        return [(k, int(info["counts"][k]), int(info["sizes"][k])) for k in keys]
    base = resolve_root(source)
    out = []
    for k in keys:
        n = len(scan_set(base, k))
        size = next((p.size for p in iter_2afc_chunks(source, k, 1)), 0)
        out.append((k, n, int(size)))
    return out


def same_size(sizes: dict[str, int]) -> int:
    """The one patch side of the training sets (``{key: side}``); a :class:`DataError` otherwise."""
    if len(set(sizes.values())) > 1:
        raise DataError(f"training sets of different patch sizes cannot share batches: "
                        f"{', '.join(f'{k} {v}x{v}' for k, v in sizes.items())}; train on one "
                        "size (pack them with the same --size)")
    return next(iter(sizes.values()), 64)


def calibration(synthetic: bool, backbone: BackboneSource, model: Any = None) -> tuple[bool, str]:
    """``(calibrated, note)`` of a run: whether its result is calibrated, and why not.

    A run on synthetic data, on a random (not trained) backbone or on a plugin network ``model`` that is itself
    uncalibrated (it declares so, or is an LPIPS on a random backbone) is not.
    """
    notes = []
    if "plugin" in backbone and model is not None and not getattr(model, "calibrated", True):
        notes.append(str(getattr(model, "calibration_note", "") or "uncalibrated backbone"))
    if synthetic:
        notes.append("trained on SYNTHETIC data, not human judgments")
    if backbone["source"] == "random" and not backbone["started_from_scratch"]:
        notes.append("random backbone")
    if backbone.get("file_calibrated") is False:
        notes.append(str(backbone.get("file_note") or "uncalibrated backbone file"))
    return (not notes), "; ".join(notes)


class FullData:
    """Training triplets held whole (uint8), indexed per batch (the full path within the memory budget, :mod:`.stream`).

    On CPU the sets are read one at a time into tensors allocated once (peak: the sets plus the largest one);
    on CUDA they stream into device memory.
    """

    def __init__(self, cfg: TrainConfig, keys: Sequence[str], device: torch.device):
        dev = device if device.type == "cuda" else None
        if dev is None:
            self._load_cpu(cfg, keys)
        else:
            sets = load_2afc(cfg.data, list(keys), device=dev, progress=cfg.progress)
            same_size({s.key: s.size for s in sets})
            self.counts = {s.key: len(s) for s in sets}
            self.ref = torch.cat([torch.as_tensor(s.ref) for s in sets])
            self.p0 = torch.cat([torch.as_tensor(s.p0) for s in sets])
            self.p1 = torch.cat([torch.as_tensor(s.p1) for s in sets])
            self.judge = torch.cat([torch.as_tensor(s.judge, dtype=torch.float32) for s in sets])
        self.judge = self.judge.reshape(-1).to(device)
        self.device = device

    def _load_cpu(self, cfg: TrainConfig, keys: Sequence[str]) -> None:
        shapes = set_shapes(str(cfg.data), keys)
        side = same_size({k: s for k, _, s in shapes})
        n = sum(m for _, m, _ in shapes)
        self.ref, self.p0, self.p1 = (torch.empty((n, side, side, 3), dtype=torch.uint8) for _ in range(3))
        judges, at = [], 0
        self.counts = {}
        for key in keys:
            (s,) = load_2afc(cfg.data, [key], progress=cfg.progress)
            m = len(s)
            for dst, src in ((self.ref, s.ref), (self.p0, s.p0), (self.p1, s.p1)):
                dst[at:at + m] = torch.from_numpy(np.asarray(src))
            judges.append(np.asarray(s.judge, dtype=np.float32).reshape(-1))
            self.counts[key] = m
            at += m
            del s
        self.judge = torch.from_numpy(np.concatenate(judges) if judges else np.zeros(0, np.float32))

    def __len__(self) -> int:
        return int(self.judge.shape[0])

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The triplets ``idx`` as model inputs ``(ref, p0, p1)`` on the run's device."""
        ii = idx.to(self.ref.device)
        return (to_model_input(self.ref[ii], device=self.device), to_model_input(self.p0[ii], device=self.device),
                to_model_input(self.p1[ii], device=self.device))


__all__ = ["select_train_keys", "select_val_keys", "is_synthetic", "backbone_source", "calibration", "FullData",
           "set_shapes", "same_size"]
