"""bapps-toolkit: train and evaluate perceptual image-similarity metrics against BAPPS.

>>> import bapps_toolkit as bt
>>> bt.list_metrics()                       # doctest: +SKIP
>>> d = bt.create_metric("ssim")(x0, x1)    # NCHW in [-1, 1] -> distance of shape [N]
>>> bt.score_folders("d0", "d1", metric="lpips-alex", out="dists.csv")   # doctest: +SKIP

The names below are imported on first use (PEP 562 module ``__getattr__``), so that importing a
submodule — ``bapps_toolkit.cli.main`` for ``bapps --help`` — does not import torch.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import keep_functions, lazy_names
from ._version import __version__
from .errors import BappsError

if TYPE_CHECKING:
    from .evaluate import evaluate, run_evaluation
    from .losses import create_loss
    from .metrics import Metric, create_metric, describe_metrics, list_metrics, register_metric
    from .scoring import ScoredPairs, score_all_pairs, score_folders, score_image_pair

#: Public name -> the subpackage it comes from.
_LAZY = {
    **dict.fromkeys(["evaluate", "run_evaluation"], ".evaluate"),
    **dict.fromkeys(["ScoredPairs", "score_all_pairs", "score_folders", "score_image_pair"], ".scoring"),
    "create_loss": ".losses",
    **dict.fromkeys(["Metric", "create_metric", "describe_metrics", "list_metrics", "register_metric"], ".metrics"),
}

__all__ = [
    "__version__", "BappsError", "Metric", "create_metric", "list_metrics", "describe_metrics",
    "register_metric", "create_loss", "evaluate", "run_evaluation", "score_image_pair", "score_folders",
    "score_all_pairs", "ScoredPairs",
]


__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
keep_functions(__name__, ["evaluate"])  # `bapps_toolkit.evaluate` stays the function when the subpackage loads
