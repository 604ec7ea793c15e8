"""Typed records of a metric's calibration on 2AFC sets (what evaluation stores and reports read).

A metric's ``q = P(p1 closer)`` comes from a *link*: :data:`LINK_G` (the ranking net G stored in a
trained checkpoint) or :data:`LINK_LOGISTIC` (a logistic link on ``d0 − d1``, cross-fitted; see
:mod:`.stats`). One :class:`CalibrationRow` per metric, link and set, and one pooled over the
sets (:data:`POOLED_SPLIT` / :data:`POOLED_CATEGORY`).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .stats import N_BINS, ReliabilityBins

LINK_G = "G"
LINK_LOGISTIC = "logistic"
POOLED_SPLIT = "all"
POOLED_CATEGORY = "pooled"

__all__ = ["LINK_G", "LINK_LOGISTIC", "POOLED_SPLIT", "POOLED_CATEGORY", "CalibrationRow", "ItemProbabilities",
           "CalibrationResult", "link_description"]


@dataclasses.dataclass(frozen=True)
class CalibrationRow:
    """The scores of one metric's link on one 2AFC set (or pooled over the sets)."""

    metric: str
    label: str
    link: str
    #: True for the metric's primary link: G when stored, else the logistic link.
    primary: bool
    split: str
    category: str
    n: int
    log_lik: float
    brier: float
    ece: float
    #: Log-likelihood of ``q = h`` on the same items (the best reachable).
    log_lik_ceiling: float
    calibrated: bool
    synthetic: bool
    bins: ReliabilityBins


@dataclasses.dataclass(frozen=True)
class ItemProbabilities:
    """``q`` (P(p1 closer)) of every item of set ``key`` for one metric's link, in the set's order."""

    metric: str
    link: str
    key: str
    q: np.ndarray


@dataclasses.dataclass
class CalibrationResult:
    """Rows of scores, per-item probabilities, the cross-fitting settings and what was skipped."""

    rows: list[CalibrationRow]
    items: list[ItemProbabilities]
    folds: int
    seed: int
    n_bins: int = N_BINS
    #: One line per metric that could not be calibrated, saying why.
    skipped: list[str] = dataclasses.field(default_factory=list)

    def probabilities(self, metric: str, key: str) -> ItemProbabilities | None:
        """The primary link's per-item ``q`` of ``metric`` on set ``key`` (None when absent)."""
        primary = {r.link for r in self.rows if r.metric == metric and r.primary}
        return next((p for p in self.items if p.metric == metric and p.key == key and p.link in primary), None)


def link_description(folds: int, seed: int) -> str:
    """One sentence saying what the links are (for report notes)."""
    return (f"q = P(p1 closer); link G = the ranking net stored in a trained checkpoint; link logistic = "
            f"sigma(a + b (d0 - d1)/s) fitted per metric on its items pooled over the 2AFC sets by {folds}-fold "
            f"cross-fitting (folds of item groups, seed {seed}), so no item is scored by a link fitted on it")
