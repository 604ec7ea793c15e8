"""Scoring metrics against the BAPPS human judgments.

The human judgments are those of Zhang et al., CVPR 2018.

* :mod:`.runner` — :func:`evaluate` / :func:`run_evaluation`: every 2AFC and JND set of a folder
  root or packed ``.h5``, as a tidy table with bootstrap intervals.
* :mod:`bapps_toolkit.metrics.resolve` — which metric a spec names (registry name, Metric object,
  checkpoint) and the backbone / linear-layer weight specs (re-exported here).
* :mod:`.distances` — per-item distances on whole or streamed sets, and their files.
* Distances between your own image files (one pair, folders, all pairs) are
  :mod:`bapps_toolkit.scoring`.
* The score functions (``score_2afc``, ``jnd_map``, bootstrap…) live in :mod:`bapps_toolkit.scores`
  and are re-exported here.
"""
from ..metrics.resolve import metric_label, resolve_metric
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
from .distances import SetDistances, write_distances
from .notes import Note, Selection
from .runner import COLUMNS, EvaluationResult, SelectionNote, choose_sets, evaluate, run_evaluation, select_sets

__all__ = [
    "evaluate", "run_evaluation", "EvaluationResult", "SetDistances", "COLUMNS", "select_sets", "SelectionNote",
    "choose_sets", "Note", "Selection",
    "write_distances", "resolve_metric", "metric_label",
    "score_2afc", "per_item_2afc", "jnd_map", "jnd_pr_curve", "human_ceiling_2afc", "bootstrap_ci",
    "bootstrap_distribution", "paired_bootstrap",
]
