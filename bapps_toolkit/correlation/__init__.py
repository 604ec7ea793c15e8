"""Correlation of a metric with subjective scores (MOS / DMOS): SRCC, KRCC, PLCC, RMSE.

The protocol of the full-reference IQA literature (VQEG FR-TV Phase I; Sheikh, Sabir & Bovik,
IEEE TIP 2006):

* **SRCC** — Spearman's rank correlation (average ranks for ties), as ``scipy.stats.spearmanr``.
* **KRCC** — Kendall's τ-b (ties in either variable corrected), as ``scipy.stats.kendalltau``.
* **PLCC / RMSE** — Pearson correlation and root-mean-square error between the subjective score
  ``y`` and the prediction ``q(s)`` of the *5-parameter logistic* fitted to ``(s, y)`` by least
  squares::

      q(s) = b1 * (1/2 - 1 / (1 + exp(b2 * (s - b3)))) + b4 * s + b5

  RMSE is in the units of the subjective score.

**Fit.** ``s`` is standardised first (``z = (s - mean s) / std s``; the curve family is the same,
only its parameters are re-expressed, so the fitted curve is unchanged) — distances span from
1e-4 (LPIPS) to 1e2 (PSNR) and an unscaled fit often does not converge. Two starts are tried
with ``scipy.optimize.curve_fit`` (Levenberg–Marquardt, analytic Jacobian, ``maxfev=2000``), in
``z`` units:
``[ptp(y), sign(r), 0, 0, mean(y)]`` (``r`` = Pearson of ``s``, ``y``) and the start used by many
Python ports of the VQEG code, ``[max y, min y, mean z, 0.1, 0.1]``; the one with the smaller
squared error wins. **Fallback**: when both starts fail (no convergence, non-finite parameters)
or the logistic fits worse than a straight line, the straight least-squares line is used
(``b1 = 0``) and :class:`LogisticFit` says ``method == "linear-fallback"``; the PLCC is then the
absolute value of the unfitted Pearson correlation. (A fitted PLCC is never negative: the fit
absorbs the sign; SRCC and KRCC carry it.)

**Sign convention.** Metrics here are distances (lower = more similar). A distance correlates
*negatively* with a MOS (higher = better: TID2013, KADID-10k, PIPAL) and *positively* with a DMOS
or error score (higher = worse: LIVE, CSIQ, PieAPP). :func:`signed_prediction` turns a distance
into ``s = -d`` for MOS sets and ``s = d`` for DMOS sets, so that a metric that agrees with people
gets **positive** SRCC/KRCC/PLCC, and a negative figure means it disagrees (no ``abs()`` is
taken, unlike pyiqa and piq, which would hide a metric that ranks backwards).

**Intervals.** :func:`bootstrap_correlation` resamples *reference images* with replacement (all
distorted versions of a drawn reference come along): the distorted images of one reference share
its content and are not independent items, so resampling items would give intervals that are too
narrow. Percentile intervals, seeded (``numpy.random.default_rng(seed)``). Per distortion type
(:func:`per_type_bootstrap`) the same, within the items of the type, all types in one pass.

**Resampled figures in batch** (:mod:`._engine`): a resample is a vector of group counts, never a
copied sample; only the items of drawn references are visited (:mod:`._rows`). SRCC and KRCC of
every resample come from rank tables and group quadratic forms (average ranks for ties, tau-b with
ties, as scipy computes them on the expanded sample; :mod:`._ranks`). Each resample's logistic is
fitted by variable projection (:mod:`._varpro`: the three linear parameters in closed form,
Levenberg–Marquardt on ``b2, b3``), for all resamples of all sets at once, started from the
full-sample fit in its standardised units.

**One rule for point and resamples.** The point figures are those of :func:`fit_logistic`
(``scipy.optimize.curve_fit``) and ``scipy.stats``, unchanged. A resample's fit is used when it
meets the convergence test (MINPACK's tolerances, as ``curve_fit``) within its iteration budget;
otherwise its PLCC/RMSE use the straight line, as the point estimate does when ``curve_fit`` does
not converge. Where the point estimate is the line, so is every resample. How each resample went is
recorded (:attr:`BootstrapResult.fit_outcome`, :data:`FIT_OUTCOMES`) and the non-converged ones are
counted (:attr:`BootstrapResult.n_not_converged`); reports carry the counts.
"""
from __future__ import annotations

from ._engine import FIT_OUTCOMES
from ._fit import (
    FIGURES,
    CorrelationFigures,
    LogisticFit,
    correlation_figures,
    fit_logistic,
    krcc,
    logistic5,
    logistic5_jac,
    plcc_rmse,
    signed_prediction,
    srcc,
    to_raw,
)
from .resampling import (
    BootstrapResult,
    bootstrap_correlation,
    paired_correlation_difference,
    per_type_bootstrap,
    per_type_figures,
)

__all__ = [
    "FIGURES", "LogisticFit", "logistic5", "fit_logistic", "srcc", "krcc", "plcc_rmse",
    "CorrelationFigures", "correlation_figures", "signed_prediction", "BootstrapResult", "bootstrap_correlation",
    "per_type_figures", "per_type_bootstrap", "paired_correlation_difference", "FIT_OUTCOMES", "logistic5_jac",
    "to_raw",
]
