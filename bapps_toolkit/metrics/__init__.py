"""Perceptual and classical image metrics, all with one contract (see :mod:`.base`).

Importing this package registers every metric; it never imports torchvision.
"""
# Importing the metric modules registers their names.
from . import dists, fsim, lpips, ms_ssim, official, pdl, pixel, ssim  # noqa: F401
from ._validate import REDUCTIONS, check_reduction, reduce
from .base import Metric, register_metric

# Plugin-aware front ends: registry names, plugin specs (module:attr, file.py:attr), entry points.
from .plugins import create_metric, describe_metrics, list_metrics

__all__ = ["Metric", "create_metric", "list_metrics", "describe_metrics", "register_metric", "REDUCTIONS",
           "check_reduction", "reduce"]
