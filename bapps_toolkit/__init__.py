"""bapps-toolkit: train and evaluate perceptual image-similarity metrics against BAPPS.

>>> import bapps_toolkit as bt
>>> bt.list_metrics()                       # doctest: +SKIP
>>> d = bt.create_metric("ssim")(x0, x1)    # NCHW in [-1, 1] -> distance of shape [N]
>>> bt.score_folders("d0", "d1", metric="lpips-alex", out="dists.csv")   # doctest: +SKIP
"""
from ._version import __version__
from .errors import BappsError
from .evaluate import ScoredPairs, evaluate, run_evaluation, score_all_pairs, score_folders, score_image_pair
from .losses import create_loss
from .metrics import Metric, create_metric, describe_metrics, list_metrics, register_metric

__all__ = [
    "__version__", "BappsError", "Metric", "create_metric", "list_metrics", "describe_metrics",
    "register_metric", "create_loss", "evaluate", "run_evaluation", "score_image_pair", "score_folders",
    "score_all_pairs", "ScoredPairs",
]
