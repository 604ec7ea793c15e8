"""bapps-toolkit: train and evaluate perceptual image-similarity metrics against BAPPS.

>>> import bapps_toolkit as bt
>>> bt.list_metrics()                       # doctest: +SKIP
>>> d = bt.create_metric("ssim")(x0, x1)    # NCHW in [-1, 1] -> distance of shape [N]
"""
from ._version import __version__
from .errors import BappsError
from .losses import create_loss
from .metrics import Metric, create_metric, describe_metrics, list_metrics

__all__ = ["__version__", "BappsError", "Metric", "create_metric", "list_metrics", "describe_metrics", "create_loss"]
