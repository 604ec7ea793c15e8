"""Distances between your own images: one pair, two folders of pairs, or all pairs of a folder.

No human judgments are involved (that is :mod:`bapps_toolkit.evaluate`); any registered metric,
plugin or trained checkpoint scores image files.

* :mod:`.pairs` — :func:`score_image_pair`, :func:`score_folders`, :func:`score_folders_many`,
  :func:`score_files_many`, :func:`score_all_pairs`, :func:`all_pairs_matrix`.
* :mod:`.pair_stream` — images decoded in worker processes and batched by size, in bounded memory.
* :mod:`.pair_output` — resumable CSV output (a journal renamed into place at the end) and the
  ``.npy`` distance matrix.
* :mod:`.all_pairs` — all pairs of a folder from features computed once per image.
* :mod:`.pair_run` — one run over the pairs, also sharded over ``torchrun`` processes.
* :mod:`.image_files` — which files of a folder are images.

Which metric a spec names, its execution settings and the unit of its distance are shared with
:mod:`bapps_toolkit.evaluate` and live in :mod:`bapps_toolkit.metrics.resolve`,
:mod:`bapps_toolkit.metrics.speed` and :mod:`bapps_toolkit.metrics.scale`.
"""
from .pair_output import DistanceMatrix, ScoredPairs
from .pairs import (
    all_pairs_matrix,
    score_all_pairs,
    score_files_many,
    score_folders,
    score_folders_many,
    score_image_pair,
)

__all__ = [
    "score_image_pair", "score_folders", "score_files_many", "score_folders_many", "score_all_pairs",
    "ScoredPairs", "all_pairs_matrix", "DistanceMatrix",
]
