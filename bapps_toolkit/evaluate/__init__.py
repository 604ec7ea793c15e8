"""Scoring metrics against the BAPPS human judgments, and distances between your own images.

The human judgments are those of Zhang et al., CVPR 2018.

* :mod:`.runner` — :func:`evaluate` / :func:`run_evaluation`: every 2AFC and JND set of a folder
  root or packed ``.h5``, as a tidy table with bootstrap intervals.
* :mod:`.resolve` — which metric a spec names (registry name, Metric object, checkpoint) and the
  backbone / linear-layer weight specs.
* :mod:`.distances` — per-item distances on whole or streamed sets, and their files.
* :mod:`.pairs` — :func:`score_image_pair`, :func:`score_folders`, :func:`score_all_pairs`,
  :func:`all_pairs_matrix`: distances between image files, streamed (:mod:`.pair_stream`),
  resumable (:mod:`.pair_output`), all pairs from cached features (:mod:`.all_pairs`), units and
  similarity forms (:mod:`.scale`).
* The score functions (``score_2afc``, ``jnd_map``, bootstrap…) live in :mod:`bapps_toolkit.scores`
  and are re-exported here.
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
from .distances import SetDistances, write_distances
from .notes import Note, Selection
from .pair_output import DistanceMatrix, ScoredPairs
from .pairs import (
    all_pairs_matrix,
    score_all_pairs,
    score_files_many,
    score_folders,
    score_folders_many,
    score_image_pair,
)
from .resolve import metric_label, resolve_metric
from .runner import COLUMNS, EvaluationResult, SelectionNote, choose_sets, evaluate, run_evaluation, select_sets

__all__ = [
    "evaluate", "run_evaluation", "EvaluationResult", "SetDistances", "COLUMNS", "select_sets", "SelectionNote",
    "choose_sets", "Note", "Selection",
    "write_distances", "resolve_metric", "metric_label",
    "score_image_pair", "score_folders",
    "score_files_many", "score_folders_many", "score_all_pairs", "ScoredPairs", "all_pairs_matrix", "DistanceMatrix",
    "score_2afc", "per_item_2afc", "jnd_map", "jnd_pr_curve", "human_ceiling_2afc", "bootstrap_ci",
    "bootstrap_distribution", "paired_bootstrap",
]
