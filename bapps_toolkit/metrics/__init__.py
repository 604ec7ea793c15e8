"""Perceptual and classical image metrics, all with one contract (see :mod:`.base`).

Importing this package registers every metric; it never imports torchvision.
"""
# Importing the metric modules registers their names.
from . import fsim, lpips, ms_ssim, official, pdl, pixel, ssim  # noqa: E402,F401
from .base import Metric, create_metric, describe_metrics, list_metrics, register_metric

__all__ = ["Metric", "create_metric", "list_metrics", "describe_metrics", "register_metric"]
