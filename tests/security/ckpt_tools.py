"""Building hostile checkpoints, run cards and plugin files for the security tests.

Every plugin file here writes a marker file when it is imported, so a test can tell whether the
toolkit imported it; every shell command touches a marker, so a test can tell whether it ran.
"""
from __future__ import annotations

import json
import shlex
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from bapps_toolkit.metrics.trained import FORMAT
from bapps_toolkit.train.checkpoint import CARD_FORMAT
from bapps_toolkit.train.config import TrainConfig

#: A module whose import writes MARKER (format with marker=...); its ``Net`` is no network.
SIDE_EFFECT = "import pathlib\npathlib.Path({marker!r}).write_text('imported')\nclass Net:\n    pass\n"

#: A tiny two-tap network (channels 4 and 8 with width 4), seeded: every import gives the same weights.
TINY_NET = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, width: int = 4):
        super().__init__()
        self.c1 = nn.Conv2d(3, width, 3, stride=2, padding=1)
        self.c2 = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)

    def forward(self, x):
        a = torch.relu(self.c1(x))
        return [a, torch.relu(self.c2(a))]
'''


def touch_command(marker: Path) -> str:
    """The shell command a hostile file asks ``os.system`` to run: it creates ``marker``."""
    return f"touch {shlex.quote(str(marker))}"


def write_side_effect_module(folder: Path, name: str, marker: Path) -> Path:
    """``folder/name.py`` writing ``marker`` on import (a package when ``name`` is dotted:
    every level's ``__init__`` writes ``marker`` too)."""
    parts = name.split(".")
    here = folder
    here.mkdir(parents=True, exist_ok=True)
    for part in parts[:-1]:
        here = here / part
        here.mkdir(parents=True, exist_ok=True)
        (here / "__init__.py").write_text(SIDE_EFFECT.format(marker=str(marker)))
    path = here / f"{parts[-1]}.py"
    path.write_text(SIDE_EFFECT.format(marker=str(marker)))
    return path


def plugin_meta(spec: str, options: dict[str, Any] | None = None, origin: dict[str, Any] | None = None,
                **extra: str) -> dict[str, str]:
    """Checkpoint metadata naming the plugin network ``spec``."""
    meta = {"net": spec, "plugin_spec": spec, "plugin_options": json.dumps(options or {}),
            "backbone_in_file": "1"}
    if origin is not None:
        meta["plugin_origin"] = json.dumps(origin)
    meta.update(extra)
    return meta


def write_checkpoint(path: Path, meta: dict[str, str], tensors: dict[str, torch.Tensor] | None = None) -> Path:
    """A safetensors checkpoint with the bapps-toolkit format marker and ``meta``; by default one
    linear layer and one backbone tensor (enough to reach the plugin decision)."""
    if tensors is None:
        tensors = {"lin.0.weight": torch.zeros(1, 4, 1, 1), "backbone.x": torch.zeros(1)}
    full = {"format": FORMAT, "format_version": "1", "version": "0.1", **meta}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=full)
    return path


def write_card(out: Path, data: Path, net: str, net_options: Any = None,
               plugin_origin: dict[str, Any] | None = None, plugin_spec: str | None = None) -> Path:
    """A run folder ``out`` holding only a ``card.json`` of an unfinished run on ``net``."""
    cfg = asdict(TrainConfig(data=str(data), out=str(out), datasets=["train/cnn"], epochs=1,
                             decay_epochs=0, batch_size=2, progress=False).validated())
    cfg["net"], cfg["net_options"] = net, net_options
    card = {"format": CARD_FORMAT, "format_version": 1, "config": cfg, "epochs_done": 0, "total_epochs": 1,
            "finished": False, "history": [],
            "backbone": {"source": f"plugin network {net}", "started_from_scratch": False, "trained": False,
                         "plugin": {"spec": plugin_spec or net, "options": net_options or {},
                                    "origin": plugin_origin or {}}}}
    out.mkdir(parents=True, exist_ok=True)
    (out / "card.json").write_text(json.dumps(card))
    return out
