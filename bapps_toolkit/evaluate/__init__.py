"""Scoring metrics against the BAPPS human judgments (Zhang et al., CVPR 2018).

* :mod:`.scores` — 2AFC score, JND mAP, human ceiling, bootstrap intervals, paired bootstrap.
* :mod:`.runner` — :func:`evaluate`: every 2AFC and JND set of a folder root or packed ``.h5``.
"""
from ..scores import (
    bootstrap_ci,
    bootstrap_distribution,
    human_ceiling_2afc,
    jnd_map,
    jnd_pr_curve,
    paired_bootstrap,
    per_item_2afc,
    score_2afc,
)
from .runner import EvaluationResult, evaluate, run_evaluation, write_distances

__all__ = [
    "evaluate", "run_evaluation", "EvaluationResult", "write_distances", "score_2afc",
    "per_item_2afc", "jnd_map", "jnd_pr_curve", "human_ceiling_2afc", "bootstrap_ci",
    "bootstrap_distribution", "paired_bootstrap",
]
