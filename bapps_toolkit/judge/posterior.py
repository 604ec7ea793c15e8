"""Beta–binomial posteriors of per-item judge fractions, and the priorities of adaptive assignment.

No SQL, no HTTP.

For an item with ``n`` answers of which ``k`` chose ``p1`` (2AFC) or said "same" (JND), and a
``Beta(a, b)`` prior on the fraction ``h`` of raters who would answer so, the posterior is
``Beta(a + k, b + n − k)`` (conjugacy). Its central credible interval at level ``L`` runs from
the ``(1 − L)/2`` to the ``(1 + L)/2`` quantile; its *width* is what adaptive assignment spends
raters on: an item stops receiving raters once its width is below the study's ``target_width``,
and among the others raters go where the width is largest.

Answers not yet given (an item assigned to an active rater who has not answered it) are counted
as *virtual answers* at the posterior mean: ``m`` of them add ``m·mean`` to ``a + k`` and
``m·(1 − mean)`` to ``b + n − k``. So concurrent raters are not all sent to the same item, and
the width falls as if those answers came in as expected.

Metric disagreement (optional, per item in ``[0, 1]``, :func:`disagreement_2afc` and
:func:`disagreement_jnd`) multiplies the width by ``1 + weight · disagreement``: among items of
equal uncertainty, those on which the study's metrics disagree are judged first.
"""
from __future__ import annotations

import numpy as np
from scipy import special, stats


def posterior_params(k: np.ndarray, n: np.ndarray, prior: tuple[float, float],
                     virtual: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Parameters ``(alpha, beta)`` of the posterior Beta of each item.

    Args:
        k: answers "p1" (2AFC) or "same" (JND) per item.
        n: answers per item (``k <= n``).
        prior: ``(a, b)`` of the Beta prior, both > 0 (``(1, 1)`` uniform, ``(0.5, 0.5)`` Jeffreys).
        virtual: answers still expected per item, counted at the posterior mean (default none).

    Returns:
        Two float arrays of the shape of ``k``.
    """
    a = prior[0] + np.asarray(k, dtype=np.float64)
    b = prior[1] + np.asarray(n, dtype=np.float64) - np.asarray(k, dtype=np.float64)
    if virtual is not None:
        m = np.asarray(virtual, dtype=np.float64)
        mean = a / (a + b)
        a, b = a + m * mean, b + m * (1.0 - mean)
    return a, b


def credible_width(alpha: np.ndarray, beta: np.ndarray, level: float) -> np.ndarray:
    """Width of the central ``level`` credible interval of ``Beta(alpha, beta)``, elementwise.

    Example:
        >>> float(credible_width(np.array([1.0]), np.array([1.0]), 0.9)[0])  # uniform: 0.95 - 0.05
        0.9
    """
    lo = special.betaincinv(alpha, beta, (1.0 - level) / 2.0)
    hi = special.betaincinv(alpha, beta, (1.0 + level) / 2.0)
    return np.round(np.asarray(hi - lo, dtype=np.float64), 12)


def posterior_mean(k: np.ndarray, n: np.ndarray, prior: tuple[float, float]) -> np.ndarray:
    """Posterior mean ``(a + k) / (a + b + n)`` of each item's judge fraction."""
    a, b = posterior_params(k, n, prior)
    return np.asarray(a / (a + b))


def _ranks(x: np.ndarray) -> np.ndarray:
    """Percentile ranks in ``[0, 1]`` along axis 0 (ties share their mean rank); 0.5 for one item."""
    if x.shape[0] < 2:
        return np.full(x.shape, 0.5)
    return np.asarray((stats.rankdata(x, axis=0) - 1.0) / (x.shape[0] - 1.0))


def disagreement_2afc(d0: np.ndarray, d1: np.ndarray) -> np.ndarray:
    """How much metrics disagree on which side of a 2AFC item is closer, in ``[0, 1]``.

    Each metric votes for ``p1`` when ``d1 < d0``, for ``p0`` when ``d0 < d1`` and half each on a
    tie; with ``v`` the share of votes for ``p1``, the disagreement is ``1 − |2v − 1|``: 0 when
    the metrics agree, 1 when they split evenly.

    Args:
        d0: ``[items, metrics]`` distances to ``p0``.
        d1: ``[items, metrics]`` distances to ``p1``.
    """
    votes = np.where(d1 < d0, 1.0, np.where(d0 < d1, 0.0, 0.5))
    return np.asarray(1.0 - np.abs(2.0 * votes.mean(axis=1) - 1.0))


def disagreement_jnd(d: np.ndarray) -> np.ndarray:
    """How much metrics disagree on how different a JND pair is, in ``[0, 1]``.

    A distance alone says neither "same" nor "different", so each metric's distances are turned
    into percentile ranks among the study's JND items; the disagreement is the spread (largest
    minus smallest rank) of an item's ranks across metrics.

    Args:
        d: ``[items, metrics]`` distances between ``p0`` and ``p1``.
    """
    r = _ranks(np.asarray(d, dtype=np.float64))
    return np.asarray(r.max(axis=1) - r.min(axis=1))
