"""Training calibrated LPIPS metrics from the BAPPS 2AFC judgments (Zhang et al., CVPR 2018).

>>> from bapps_toolkit.train import TrainConfig, train, load_metric_from_checkpoint
>>> res = train(TrainConfig(data="bapps.h5", net="alex", variant="lin", out="runs/alex-lin"))  # doctest: +SKIP
>>> metric = load_metric_from_checkpoint(res.checkpoint_path)                                  # doctest: +SKIP

Variants: ``lin`` (frozen backbone, linear layers only; cached-feature fast path by default),
``tune`` (backbone trained from the given weights), ``scratch`` (random backbone, trained).
``net="my_net.py:Net"`` (any plugin spec) trains the linear layers on your own network
(:mod:`bapps_toolkit.metrics.plugin_net`; lin and tune).
The official schedule is the default (see :mod:`.config`); checkpoints are safetensors plus an
official-layout ``.pth`` of the linear layers and a JSON card (see :mod:`.checkpoint`).
``train(resume_config("runs/alex-lin"))`` continues a run with the settings saved in its card.

The names are imported on first use (:mod:`bapps_toolkit._lazy`): ``bapps train --help`` reads
:mod:`.config` (torch-free) without importing torch.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names

if TYPE_CHECKING:
    from .checkpoint import load_metric_from_checkpoint
    from .config import ConfigError, TrainConfig, lr_for_epoch
    from .loop import TrainResult, train
    from .run_dir import resume_config

#: Public name -> the module it comes from.
_LAZY = {"load_metric_from_checkpoint": ".checkpoint", "ConfigError": ".config", "TrainConfig": ".config",
         "lr_for_epoch": ".config", "TrainResult": ".loop", "train": ".loop", "resume_config": ".run_dir"}

__all__ = ["TrainConfig", "TrainResult", "train", "load_metric_from_checkpoint", "lr_for_epoch", "ConfigError",
           "resume_config"]

__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
