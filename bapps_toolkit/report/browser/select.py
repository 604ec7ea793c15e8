"""Which items the failure browser shows: where a metric and a confident human majority disagree.

Definitions (per metric and 2AFC set):

* **confident majority** — judge fraction ``h ≥ c`` (the raters chose ``p1``) or ``h ≤ 1 − c``
  (they chose ``p0``), ``c = confidence`` (default 0.8: at least four of five BAPPS val raters);
* **disagreement** — the metric prefers the other image: ``d1 > d0`` where the raters chose
  ``p1``, ``d0 > d1`` where they chose ``p0`` (a tie ``d0 = d1`` prefers neither and is no
  disagreement);
* **rank** — by the *normalised margin* ``|d0 − d1| / s``, ``s`` the median of the nonzero
  ``|d0 − d1|`` of that metric over all its 2AFC items (1 when every item is a tie): how many
  "typical" margins the metric is sure of its wrong answer, comparable across metrics. Ties in
  the margin keep the set's order. At most ``per_group`` items per metric and set are kept.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from ...calibration import CalibrationResult
from ...evaluate.distances import SetDistances

#: Default judge-fraction threshold of a confident majority.
DEFAULT_CONFIDENCE = 0.8
#: Default number of items kept per metric and set.
DEFAULT_PER_GROUP = 20

__all__ = ["Disagreement", "GroupSummary", "Selection", "select_disagreements", "margin_scale",
           "DEFAULT_CONFIDENCE", "DEFAULT_PER_GROUP"]


@dataclasses.dataclass(frozen=True)
class Disagreement:
    """One item where ``metric`` and a confident majority disagree (see the module docstring)."""

    metric: str
    label: str
    key: str
    #: Position of the item in its set (what reads its images back).
    index: int
    stem: str
    h: float
    d0: float
    d1: float
    #: The image the raters chose (0 = p0, 1 = p1).
    human_choice: int
    margin: float
    #: The metric's calibrated P(p1 closer) (its primary link), None without calibration.
    q: float | None
    link: str | None


@dataclasses.dataclass(frozen=True)
class GroupSummary:
    """Counts of one metric on one set: items, confident items, disagreements, items shown."""

    metric: str
    label: str
    key: str
    n_items: int
    n_confident: int
    n_disagree: int
    shown: int


@dataclasses.dataclass(frozen=True)
class Selection:
    """The chosen items and the per-group counts."""

    items: list[Disagreement]
    groups: list[GroupSummary]
    confidence: float
    per_group: int


def margin_scale(sds: Sequence[SetDistances]) -> float:
    """Median nonzero ``|d0 − d1|`` over ``sds`` (1.0 when there is none)."""
    parts = [np.abs(np.asarray(sd.d0, dtype=np.float64) - np.asarray(sd.d1, dtype=np.float64)) for sd in sds]
    gaps = np.concatenate(parts) if parts else np.zeros(0)
    gaps = gaps[np.isfinite(gaps) & (gaps > 0)]
    return float(np.median(gaps)) if len(gaps) else 1.0


def _check(confidence: float, per_group: int) -> None:
    if not 0.5 < float(confidence) <= 1.0:
        raise ValueError(f"confidence must lie in (0.5, 1], got {confidence}")
    if int(per_group) < 1:
        raise ValueError(f"per_group must be >= 1, got {per_group}")


def _group(sd: SetDistances, scale: float, confidence: float, per_group: int,
           q: np.ndarray | None, link: str | None) -> tuple[list[Disagreement], GroupSummary]:
    d0, d1 = np.asarray(sd.d0, dtype=np.float64), np.asarray(sd.d1, dtype=np.float64)
    h = np.asarray(sd.judge, dtype=np.float64)
    chose_p1, chose_p0 = h >= confidence, h <= 1.0 - confidence
    wrong = (chose_p1 & (d1 > d0)) | (chose_p0 & (d0 > d1))
    margin = np.abs(d0 - d1) / scale
    idx = np.flatnonzero(wrong)
    order = idx[np.argsort(-margin[idx], kind="stable")][:per_group]
    items = [Disagreement(metric=sd.metric, label=sd.label, key=sd.key, index=int(i), stem=str(sd.stems[i]),
                          h=float(h[i]), d0=float(d0[i]), d1=float(d1[i]), human_choice=int(chose_p1[i]),
                          margin=float(margin[i]), q=None if q is None else float(q[i]), link=link)
             for i in order]
    summary = GroupSummary(sd.metric, sd.label, sd.key, len(h), int((chose_p1 | chose_p0).sum()), len(idx),
                           len(items))
    return items, summary


def select_disagreements(distances: Sequence[SetDistances], calibration: CalibrationResult | None = None, *,
                         confidence: float = DEFAULT_CONFIDENCE,
                         per_group: int = DEFAULT_PER_GROUP) -> Selection:
    """The items to show, per metric (evaluation order) and 2AFC set (see the module docstring).

    Args:
        distances: per-item distances of an evaluation (JND sets are ignored).
        calibration: the evaluation's calibration, for each item's ``q`` (optional).
        confidence: threshold ``c`` of a confident majority, in (0.5, 1].
        per_group: most items kept per metric and set.

    Raises:
        ValueError: ``confidence`` or ``per_group`` out of range.
    """
    _check(confidence, per_group)
    items: list[Disagreement] = []
    groups: list[GroupSummary] = []
    twoafc = [sd for sd in distances if sd.mode == "2afc" and sd.judge is not None]
    for mid in dict.fromkeys(sd.metric for sd in twoafc):
        sds = [sd for sd in twoafc if sd.metric == mid]
        scale = margin_scale(sds)
        for sd in sds:
            probs = calibration.probabilities(mid, sd.key) if calibration is not None else None
            got, summary = _group(sd, scale, float(confidence), int(per_group),
                                  None if probs is None else probs.q, None if probs is None else probs.link)
            items += got
            groups.append(summary)
    return Selection(items=items, groups=groups, confidence=float(confidence), per_group=int(per_group))
