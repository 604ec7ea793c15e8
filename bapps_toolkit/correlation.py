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
(:func:`per_type_bootstrap`) the same, within the items of the type.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize, stats

from ._bootstrap import percentile_test

__all__ = [
    "FIGURES", "LogisticFit", "logistic5", "fit_logistic", "srcc", "krcc", "plcc_rmse",
    "correlation_figures", "signed_prediction", "bootstrap_correlation", "per_type_figures", "per_type_bootstrap",
    "paired_correlation_difference",
]

#: The figures reported per set, in report order.
FIGURES = ("srcc", "krcc", "plcc", "rmse")


def logistic5(s: Any, b1: float, b2: float, b3: float, b4: float, b5: float) -> np.ndarray:
    """The VQEG 5-parameter logistic ``b1 (1/2 - 1/(1 + exp(b2 (s - b3)))) + b4 s + b5``."""
    s = np.asarray(s, dtype=np.float64)
    with np.errstate(over="ignore"):
        return b1 * (0.5 - 1.0 / (1.0 + np.exp(b2 * (s - b3)))) + b4 * s + b5


def _logistic5_jac(s: np.ndarray, b1: float, b2: float, b3: float, b4: float, b5: float) -> np.ndarray:
    """Analytic Jacobian of :func:`logistic5` with respect to ``(b1, ..., b5)``."""
    with np.errstate(over="ignore"):
        e = np.exp(np.clip(b2 * (s - b3), -700, 700))
    g = 1.0 / (1.0 + e)
    dg = e * g * g  # derivative of -g with respect to the exponent's argument
    return np.stack([0.5 - g, b1 * dg * (s - b3), -b1 * dg * b2, s, np.ones_like(s)], axis=1)


@dataclass(frozen=True)
class LogisticFit:
    """A fitted 5-parameter logistic in the units of the raw prediction ``s``.

    ``params`` = ``(b1, b2, b3, b4, b5)``; ``method`` is ``"logistic"`` or ``"linear-fallback"``.
    """

    params: tuple[float, float, float, float, float]
    method: str
    z_params: tuple[float, ...] = ()
    z_scale: tuple[float, float] = (0.0, 1.0)

    def __call__(self, s: Any) -> np.ndarray:
        return logistic5(s, *self.params)


def _vector(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} holds NaN or Inf values")
    return a


def _pair(s: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    s, y = _vector(s, "prediction"), _vector(y, "subjective score")
    if s.shape != y.shape:
        raise ValueError(f"prediction has {s.size} items but the subjective scores {y.size}")
    if s.size < 3:
        raise ValueError(f"correlation needs at least 3 items, got {s.size}")
    return s, y


def _to_raw(p: np.ndarray, mu: float, sd: float) -> tuple[float, float, float, float, float]:
    """Parameters in ``z = (s - mu)/sd`` units -> parameters in ``s`` units (same curve)."""
    b1, b2, b3, b4, b5 = (float(v) for v in p)
    return b1, b2 / sd, b3 * sd + mu, b4 / sd, b5 - b4 * mu / sd


def _linear(s: np.ndarray, y: np.ndarray) -> LogisticFit:
    if np.ptp(s) == 0:
        return LogisticFit((0.0, 0.0, 0.0, 0.0, float(np.mean(y))), "linear-fallback")
    slope, intercept = np.polyfit(s, y, 1)
    return LogisticFit((0.0, 0.0, 0.0, float(slope), float(intercept)), "linear-fallback")


def _fit_z(z: np.ndarray, y: np.ndarray, starts, maxfev: int) -> tuple[float, np.ndarray] | None:
    """Best ``(sse, params)`` over ``starts`` in standardised units, ``None`` if every start fails."""
    best: tuple[float, np.ndarray] | None = None
    for p0 in starts:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                p, _ = optimize.curve_fit(logistic5, z, y, p0=p0, maxfev=maxfev, jac=_logistic5_jac)
        except (RuntimeError, ValueError, TypeError, optimize.OptimizeWarning):
            continue
        if not np.all(np.isfinite(p)):
            continue
        sse = float(np.sum((logistic5(z, *p) - y) ** 2))
        if np.isfinite(sse) and (best is None or sse < best[0]):
            best = (sse, p)
    return best


def fit_logistic(s: Any, y: Any, *, maxfev: int = 2000, start: Sequence[float] | None = None,
                 scale: tuple[float, float] | None = None) -> LogisticFit:
    """Least-squares 5-parameter logistic from prediction ``s`` to subjective ``y`` (module doc).

    ``start`` / ``scale``: a single start in the units of ``z = (s - scale[0]) / scale[1]`` (the
    bootstrap warm-starts each resample from the full-data fit this way). Fewer than 6 items
    always give the straight line (5 parameters need more points than that).
    """
    s, y = _pair(s, y)
    line = _linear(s, y)
    mu, sd = scale if scale is not None else (float(np.mean(s)), float(np.std(s)))
    if sd == 0 or np.ptp(s) == 0 or np.ptp(y) == 0 or s.size < 6:
        return line
    z = (s - mu) / sd
    r = float(np.corrcoef(s, y)[0, 1])
    starts = [list(start)] if start is not None else [
        [float(np.ptp(y)), 1.0 if r >= 0 else -1.0, 0.0, 0.0, float(np.mean(y))],
        [float(np.max(y)), float(np.min(y)), float(np.mean(z)), 0.1, 0.1]]
    best = _fit_z(z, y, starts, maxfev)
    line_sse = float(np.sum((line(s) - y) ** 2))
    if best is None or best[0] > line_sse * (1 + 1e-9):
        return line
    return LogisticFit(_to_raw(best[1], mu, sd), "logistic", tuple(float(v) for v in best[1]), (mu, sd))


def srcc(s: Any, y: Any) -> float:
    """Spearman rank correlation (``nan`` when either variable is constant)."""
    s, y = _pair(s, y)
    if np.ptp(s) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(stats.spearmanr(s, y).statistic)


def krcc(s: Any, y: Any) -> float:
    """Kendall's τ-b (``nan`` when either variable is constant)."""
    s, y = _pair(s, y)
    if np.ptp(s) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(stats.kendalltau(s, y, variant="b").statistic)


def plcc_rmse(s: Any, y: Any, fit: LogisticFit | None = None) -> tuple[float, float, LogisticFit]:
    """``(PLCC, RMSE, fit)`` after the logistic fit (fitted here unless ``fit`` is given)."""
    s, y = _pair(s, y)
    fit = fit if fit is not None else fit_logistic(s, y)
    q = fit(s)
    rmse = float(np.sqrt(np.mean((q - y) ** 2)))
    if np.ptp(q) == 0 or np.ptp(y) == 0:
        return float("nan"), rmse, fit
    return float(np.corrcoef(q, y)[0, 1]), rmse, fit


def correlation_figures(s: Any, y: Any) -> dict[str, Any]:
    """``{"srcc", "krcc", "plcc", "rmse", "n", "fit"}`` for prediction ``s`` and scores ``y``."""
    s, y = _pair(s, y)
    plcc, rmse, fit = plcc_rmse(s, y)
    return {"srcc": srcc(s, y), "krcc": krcc(s, y), "plcc": plcc, "rmse": rmse, "n": int(s.size),
            "fit": fit}


def signed_prediction(distance: Any, higher_is_better: bool) -> np.ndarray:
    """``-d`` for MOS sets (``higher_is_better``), ``d`` for DMOS / error sets (module doc)."""
    d = _vector(distance, "distance")
    return -d if higher_is_better else d


def _group_index(groups: Any, n: int) -> tuple[np.ndarray, list[np.ndarray]]:
    g = np.asarray(groups).reshape(-1)
    if g.size != n:
        raise ValueError(f"groups has {g.size} entries for {n} items")
    uniq, inv = np.unique(g, return_inverse=True)
    members = [np.flatnonzero(inv == k) for k in range(uniq.size)]
    return uniq, members


@dataclass
class BootstrapResult:
    """Point figures, percentile intervals and the raw resampled figures of one set."""

    point: dict[str, float]
    low: dict[str, float]
    high: dict[str, float]
    samples: dict[str, np.ndarray] = field(repr=False)
    n_groups: int = 0


def _resample(members: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    pick = rng.integers(0, len(members), size=len(members))
    return np.concatenate([members[k] for k in pick])


def _figures_only(s: np.ndarray, y: np.ndarray, figures: Sequence[str],
                  warm: LogisticFit | None = None) -> dict[str, float]:
    out: dict[str, float] = {}
    if "srcc" in figures:
        out["srcc"] = srcc(s, y)
    if "krcc" in figures:
        out["krcc"] = krcc(s, y)
    if "plcc" in figures or "rmse" in figures:
        fit = None
        if warm is not None and warm.method == "logistic":
            fit = fit_logistic(s, y, start=warm.z_params, scale=warm.z_scale)
        plcc, rmse, _ = plcc_rmse(s, y, fit)
        out["plcc"], out["rmse"] = plcc, rmse
    return {k: out[k] for k in figures}


def bootstrap_correlation(s: Any, y: Any, groups: Any, *, n_boot: int = 1000, seed: int = 0,
                          alpha: float = 0.05, figures: Sequence[str] = FIGURES) -> BootstrapResult:
    """Figures with percentile intervals from resampling whole groups (reference images).

    ``groups[i]`` is the reference id of item ``i``; pass ``np.arange(n)`` to resample items.
    Each resample refits the logistic for PLCC/RMSE, warm-started from the full-data fit (one
    start; the straight line when that fit fails or is worse than the line). Resamples where a figure is undefined
    (fewer than 3 items, constant values) are ``nan`` and left out of the interval.
    """
    s, y = _pair(s, y)
    if n_boot < 1 or not 0 < alpha < 1:
        raise ValueError(f"need n_boot >= 1 and 0 < alpha < 1, got {n_boot}, {alpha}")
    _, members = _group_index(groups, s.size)
    point = _figures_only(s, y, figures)
    warm = fit_logistic(s, y) if ("plcc" in figures or "rmse" in figures) else None
    rng = np.random.default_rng(seed)
    samples = {k: np.full(n_boot, np.nan) for k in figures}
    for b in range(n_boot):
        idx = _resample(members, rng)
        if idx.size < 3:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            vals = _figures_only(s[idx], y[idx], figures, warm)
        for k, v in vals.items():
            samples[k][b] = v
    low, high = {}, {}
    for k in figures:
        fin = samples[k][np.isfinite(samples[k])]
        lo, hi = np.quantile(fin, [alpha / 2, 1 - alpha / 2]) if fin.size else (np.nan, np.nan)
        low[k], high[k] = float(lo), float(hi)
    return BootstrapResult(point, low, high, samples, len(members))


def per_type_figures(s: Any, y: Any, types: Any) -> dict[str, dict[str, Any]]:
    """:func:`correlation_figures` for each distortion type (types with < 3 items are skipped)."""
    s, y = _pair(s, y)
    t = np.asarray(types).reshape(-1)
    if t.size != s.size:
        raise ValueError(f"types has {t.size} entries for {s.size} items")
    out: dict[str, dict[str, Any]] = {}
    for name in sorted({str(v) for v in t}):
        m = np.array([str(v) == name for v in t])
        if int(m.sum()) >= 3:
            out[name] = correlation_figures(s[m], y[m])
    return out


def per_type_bootstrap(s: Any, y: Any, types: Any, groups: Any, *, n_boot: int = 1000, seed: int = 0,
                       alpha: float = 0.05) -> dict[str, tuple[int, BootstrapResult]]:
    """``{type: (n, result)}``: :func:`bootstrap_correlation` on the items of each distortion type,
    resampling that type's reference images (types with fewer than 3 items are skipped). Each
    type draws from its own generator, seeded ``(seed, type index)`` in sorted type order."""
    s, y = _pair(s, y)
    t = np.asarray(types).astype(str).reshape(-1)
    g = np.asarray(groups).reshape(-1)
    if t.size != s.size or g.size != s.size:
        raise ValueError(f"types has {t.size} and groups {g.size} entries for {s.size} items")
    out: dict[str, tuple[int, BootstrapResult]] = {}
    for k, name in enumerate(sorted(set(t.tolist()))):
        m = t == name
        if int(m.sum()) >= 3:
            seq = int(np.random.SeedSequence([int(seed), k]).generate_state(1)[0])
            out[name] = (int(m.sum()), bootstrap_correlation(s[m], y[m], g[m], n_boot=n_boot, seed=seq,
                                                             alpha=alpha))
    return out


def paired_correlation_difference(s_a: Any, s_b: Any, y: Any, groups: Any, *, figure: str = "srcc",
                                  n_boot: int = 1000, seed: int = 0, alpha: float = 0.05
                                  ) -> tuple[float, tuple[float, float], float]:
    """``figure(A) - figure(B)`` on the same items, its interval and a two-sided p-value.

    Both metrics are resampled with the SAME reference images; the interval and the p-value come
    from one method, :func:`bapps_toolkit._bootstrap.percentile_test` (as
    :func:`bapps_toolkit.scores.paired_bootstrap` does for 2AFC), so ``p < alpha`` exactly when
    the ``1 - alpha`` interval excludes 0. Resamples where the figure is undefined are left out.
    """
    if figure not in FIGURES:
        raise ValueError(f"figure {figure!r}: use one of {', '.join(FIGURES)}")
    s_a, y = _pair(s_a, y)
    s_b, _ = _pair(s_b, y)
    _, members = _group_index(groups, y.size)
    diff = _figures_only(s_a, y, [figure])[figure] - _figures_only(s_b, y, [figure])[figure]
    rng = np.random.default_rng(seed)
    boot = np.full(n_boot, np.nan)
    for b in range(n_boot):
        idx = _resample(members, rng)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            boot[b] = (_figures_only(s_a[idx], y[idx], [figure])[figure]
                       - _figures_only(s_b[idx], y[idx], [figure])[figure])
    lo, hi, p = percentile_test(boot, alpha)
    return float(diff), (lo, hi), p
