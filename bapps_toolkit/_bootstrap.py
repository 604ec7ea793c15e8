"""One test for a bootstrapped difference: the percentile-bootstrap interval and its inverted test.

Used by every paired comparison of the toolkit (:func:`bapps_toolkit.scores.paired_bootstrap`,
:func:`bapps_toolkit.correlation.paired_correlation_difference`), so that the interval and the
p-value of a difference always say the same thing: ``p < alpha`` exactly when the ``1 - alpha``
interval excludes 0.

Method: percentile bootstrap with the test read off the same order statistics (test inversion of
the percentile interval; Efron & Tibshirani, *An Introduction to the Bootstrap*, 1993, §13.3 and
§16.2; Davison & Hinkley, *Bootstrap Methods and their Application*, 1997, §4.4.1).
Input: any real numbers (the resampled differences); non-finite values are left out.
"""
from __future__ import annotations

import math

import numpy as np

from .errors import UsageError

__all__ = ["percentile_test", "interval_rank", "TIE_TOL"]


def interval_rank(n: int, alpha: float) -> int:
    """``k`` = the smallest integer with ``2k/n >= alpha`` (``n`` resamples, ``0 < alpha < 1``).

    Computed with the same float expression ``2 * k / n`` as the p-value of
    :func:`percentile_test`, so the equivalence proved there holds in floating point too.
    Mathematically ``k = ceil(alpha · n / 2)``; ``1 <= k <= (n + 1) / 2``.
    """
    if n < 1:
        raise UsageError(f"need at least one resample, got {n}")
    if not 0.0 < alpha < 1.0:
        raise UsageError(f"alpha must lie in (0, 1), got {alpha}")
    k = max(1, math.ceil(alpha * n / 2.0))
    while k > 1 and 2 * (k - 1) / n >= alpha:
        k -= 1
    while 2 * k / n < alpha:
        k += 1
    return k


#: Resampled differences within this distance of 0 are ties at 0 (see :func:`percentile_test`).
TIE_TOL = 1e-8


def percentile_test(boot: np.ndarray, alpha: float, tie_tol: float = TIE_TOL) -> tuple[float, float, float]:
    """``(low, high, p)`` of the resampled differences ``boot`` (one value per resample).

    First every value with ``|d*| <= tie_tol`` is set to exactly 0: a difference of two scores
    that is 0 in exact arithmetic can come out as ±1e-10 in floating point (BAPPS stores the judge
    fractions as float32, so ``1 - 0.6`` and ``0.4`` differ by 3e-8), and such a value must count
    as a tie, not as a sign. The default suits scores in [0, 1] or [-1, 1] (2AFC, mAP, SRCC): a
    genuine 2AFC difference on ``n`` val triplets is a multiple of ``0.1 / n``. Pass 0 to keep
    every value as it is. Then, with the ``n`` finite values sorted, ``d(1) <= … <= d(n)``:

    * ``m = min(#{d* <= 0}, #{d* >= 0})`` (a resample equal to 0 counts on both sides) and
      ``p = min(1, 2m / n)``: the two-sided percentile-bootstrap p-value for "no difference";
    * ``k`` = the smallest integer with ``2k / n >= alpha`` (:func:`interval_rank`), and the
      ``1 - alpha`` interval is ``[d(k), d(n + 1 - k)]`` — the order statistics at the
      ``alpha/2`` and ``1 - alpha/2`` ranks (``k <= n + 1 - k`` because ``alpha < 1``).

    Claim: ``p < alpha`` if and only if ``0 ∉ [low, high]``.

    Proof. ``d(k) > 0`` holds iff fewer than ``k`` values are ``<= 0``, i.e. ``#{d* <= 0} <= k - 1``;
    ``d(n+1-k) < 0`` holds iff at least ``n + 1 - k`` values are ``< 0``, i.e.
    ``#{d* >= 0} = n - #{d* < 0} <= k - 1``. So ``0 ∉ [d(k), d(n+1-k)]`` iff ``m <= k - 1``, i.e.
    ``m < k``. On the other side, ``p < alpha`` iff ``2m/n < alpha`` (the clip at 1 changes
    nothing, as ``alpha < 1``). ``2j/n`` is non-decreasing in the integer ``j`` (also after float
    rounding, which is monotone), and ``k`` is the first integer where it reaches ``alpha``, so
    ``2m/n < alpha`` iff ``m < k``. Both conditions equal ``m < k``. ∎

    Ties at 0 are handled by counting them on both sides (an all-zero distribution gives
    ``p = 1`` and the interval ``[0, 0]``), discreteness by choosing ``k`` as above; nothing is
    interpolated. The smallest non-zero p-value is ``2/n``; ``p = 0`` means that no resample
    reached 0 (read it as ``p < 2/n``). An empty or all-non-finite ``boot`` gives ``nan`` thrice.
    """
    if not tie_tol >= 0.0:
        raise UsageError(f"tie_tol must be >= 0, got {tie_tol}")
    values = np.asarray(boot, dtype=np.float64).reshape(-1)
    finite = np.sort(values[np.isfinite(values)])
    finite[np.abs(finite) <= tie_tol] = 0.0
    n = int(finite.size)
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    k = interval_rank(n, float(alpha))
    low, high = float(finite[k - 1]), float(finite[n - k])
    m = min(int(np.sum(finite <= 0.0)), int(np.sum(finite >= 0.0)))
    p = min(1.0, 2 * m / n)
    return low, high, float(p)
