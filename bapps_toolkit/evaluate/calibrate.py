"""Calibration of every evaluated metric on the 2AFC sets: a probability that ``p1`` is closer.

For each metric, ``q = P(p1 closer)`` per triplet comes from one or two *links*
(:mod:`bapps_toolkit.calibration` has the statistics):

* ``G`` — the ranking network stored in a ``bapps train`` checkpoint (trained with cross-entropy
  against the judge fractions on the training set), when the metric was loaded from one;
* ``logistic`` — for every metric, a logistic link on ``d0 − d1`` fitted by cross-fitting over the
  metric's items pooled across the evaluated 2AFC sets (one link per metric): ``k`` folds of item
  groups (group = set key + stem; one reference per triplet in BAPPS), dealt by a seeded shuffle,
  each fold scored by the link fitted on the others.

Each link is scored per set and over all the sets (``split = "all"``, ``category = "pooled"``)
by log-likelihood, Brier score and ECE. The *primary* link of a metric is G when there is one,
else the logistic link; the tidy CSV carries the primary link's scores.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..calibration import (
    LINK_G,
    LINK_LOGISTIC,
    N_BINS,
    N_FOLDS,
    POOLED_CATEGORY,
    POOLED_SPLIT,
    CalibrationResult,
    CalibrationRow,
    ItemProbabilities,
    calibration_scores,
    cross_fit_logistic,
)
from ..calibration import ranking_net_probability as _g_probability
from .distances import SetDistances

__all__ = ["calibrate_distances"]


def _row(metric: str, label: str, link: str, primary: bool, split: str, category: str, q: np.ndarray,
         h: np.ndarray, calibrated: bool, synthetic: bool, n_bins: int) -> CalibrationRow:
    s = calibration_scores(q, h, n_bins)
    return CalibrationRow(metric=metric, label=label, link=link, primary=primary, split=split, category=category,
                          n=s.n, log_lik=s.log_lik, brier=s.brier, ece=s.ece, log_lik_ceiling=s.log_lik_ceiling,
                          calibrated=calibrated, synthetic=synthetic, bins=s.bins)


def _links(sds: Sequence[SetDistances], g_state: Mapping[str, Any] | None, folds: int,
           seed: int) -> list[tuple[str, list[np.ndarray]]]:
    """``(link, [q per set])`` for G (when stored) and the cross-fitted logistic link."""
    d0 = [np.asarray(sd.d0, dtype=np.float64) for sd in sds]
    d1 = [np.asarray(sd.d1, dtype=np.float64) for sd in sds]
    sizes = np.cumsum([0] + [len(a) for a in d0])
    out: list[tuple[str, list[np.ndarray]]] = []
    if g_state:
        out.append((LINK_G, [_g_probability(g_state, a, b) for a, b in zip(d0, d1, strict=True)]))
    groups = [f"{sd.key}/{stem}" for sd in sds for stem in sd.stems]
    fit = cross_fit_logistic(np.concatenate(d0) - np.concatenate(d1), np.concatenate([sd.judge for sd in sds]),
                             groups, k=folds, seed=seed)
    out.append((LINK_LOGISTIC, [fit.q[sizes[i]:sizes[i + 1]] for i in range(len(sds))]))
    return out


def calibrate_distances(distances: Sequence[SetDistances], metrics: Mapping[str, Any], *,
                        synthetic: Mapping[str, bool], folds: int = N_FOLDS, seed: int = 0,
                        n_bins: int = N_BINS) -> CalibrationResult:
    """Calibrate every metric of ``distances`` on its 2AFC sets (see the module docstring).

    Args:
        distances: per-item distances of an evaluation (JND sets are ignored).
        metrics: metric id -> the Metric (its ``calibrated`` flag and, for a trained checkpoint,
            its ``ranking_net`` tensors).
        synthetic: set key -> whether the set is simulated.
        folds: folds of the cross-fitted logistic link.
        seed: seed of the fold assignment.
        n_bins: bins of the ECE and the reliability diagram.

    Returns:
        The rows (per metric, link and set, then pooled) and the per-item probabilities.
    """
    result = CalibrationResult(rows=[], items=[], folds=int(folds), seed=int(seed), n_bins=int(n_bins))
    order = list(dict.fromkeys(sd.metric for sd in distances))
    for mid in order:
        sds = [sd for sd in distances if sd.metric == mid and sd.mode == "2afc" and len(sd.stems)]
        if not sds:
            continue
        metric = metrics.get(mid)
        cal = bool(getattr(metric, "calibrated", True))
        n_items = sum(len(sd.stems) for sd in sds)
        if n_items < 2:
            result.skipped.append(f"{mid}: {n_items} 2AFC item(s); cross-fitting needs at least two")
            continue
        links = _links(sds, getattr(metric, "ranking_net", None), int(folds), int(seed))
        for k, (link, qs) in enumerate(links):
            for sd, q in zip(sds, qs, strict=True):
                _, split, category = sd.key.split("/")
                result.items.append(ItemProbabilities(mid, link, sd.key, q))
                result.rows.append(_row(mid, sd.label, link, k == 0, split, category, q, np.asarray(sd.judge),
                                        cal, bool(synthetic.get(sd.key, False)), int(n_bins)))
            result.rows.append(_row(mid, sds[0].label, link, k == 0, POOLED_SPLIT, POOLED_CATEGORY,
                                    np.concatenate(qs), np.concatenate([np.asarray(sd.judge) for sd in sds]),
                                    cal, any(synthetic.get(sd.key, False) for sd in sds), int(n_bins)))
    return result
