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
"""
from .checkpoint import load_metric_from_checkpoint
from .config import ConfigError, TrainConfig, lr_for_epoch
from .loop import TrainResult, train
from .run_dir import resume_config

__all__ = ["TrainConfig", "TrainResult", "train", "load_metric_from_checkpoint", "lr_for_epoch", "ConfigError",
           "resume_config"]
