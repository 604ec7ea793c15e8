"""Bootstrap intervals of the correlation figures: overall, per distortion type, paired differences.

Resamples draw whole groups (reference images) with replacement from
``numpy.random.default_rng(seed)``, one ``integers(0, G, G)`` call per resample; their figures are
computed in batch by :mod:`._engine` (point figures by :mod:`._fit`, unchanged).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._bootstrap import percentile_test
from ._engine import FIT_LOGISTIC, FIT_NONE, FIT_NOT_CONVERGED, SetData, SetSamples, draw_counts, resample_figures
from ._fit import FIGURES, CorrelationFigures, LogisticFit, checked_pair, correlation_figures, krcc, plcc_rmse, srcc

__all__ = ["BootstrapResult", "bootstrap_correlation", "per_type_figures", "per_type_bootstrap",
           "paired_correlation_difference"]


@dataclass
class BootstrapResult:
    """Point figures, percentile intervals and the raw resampled figures of one set.

    How each resample's PLCC/RMSE was obtained is kept in ``fit_outcome`` (one code per resample,
    explained by :data:`bapps_toolkit.correlation.FIT_OUTCOMES`) and counted:

    * ``n_fitted``: resamples with PLCC/RMSE computed (3 items or more);
    * ``n_logistic``: of those, resamples whose logistic fit converged and is used;
    * ``n_not_converged``: resamples whose logistic fit did not meet the convergence rule within
      its iteration budget (or stopped being finite); their PLCC/RMSE use the straight line, as the
      point estimate does when ``curve_fit`` does not converge;
    * ``n_line``: resamples whose PLCC/RMSE use the straight line for any reason (not converged,
      fewer than 6 items, a constant variable, a logistic worse than the line, or a point estimate
      that is itself the line).
    """

    point: dict[str, float]
    low: dict[str, float]
    high: dict[str, float]
    samples: dict[str, np.ndarray] = field(repr=False)
    n_groups: int = 0
    fit_outcome: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int8), repr=False)

    @property
    def n_fitted(self) -> int:
        """Resamples whose prediction was mapped by a fitted curve (logistic or line)."""
        return int(np.count_nonzero(self.fit_outcome != FIT_NONE))

    @property
    def n_logistic(self) -> int:
        """Resamples fitted by the converged 5-parameter logistic."""
        return int(np.count_nonzero(self.fit_outcome == FIT_LOGISTIC))

    @property
    def n_not_converged(self) -> int:
        """Resamples whose logistic fit did not converge (the line was used)."""
        return int(np.count_nonzero(self.fit_outcome == FIT_NOT_CONVERGED))

    @property
    def n_line(self) -> int:
        """Resamples fitted by the line (not converged or refused logistic)."""
        return self.n_fitted - self.n_logistic

    @property
    def not_converged(self) -> np.ndarray:
        """Per resample: whether its logistic fit did not converge (its PLCC/RMSE use the line)."""
        return np.asarray(self.fit_outcome == FIT_NOT_CONVERGED)


def _codes(groups: Any, n: int) -> tuple[np.ndarray, int]:
    g = np.asarray(groups).reshape(-1)
    if g.size != n:
        raise ValueError(f"groups has {g.size} entries for {n} items")
    uniq, inv = np.unique(g, return_inverse=True)
    return inv.reshape(-1).astype(np.int64), int(uniq.size)


def _point(s: np.ndarray, y: np.ndarray, figures: Sequence[str]) -> tuple[dict[str, float], LogisticFit | None]:
    """Point figures as ``scipy`` gives them, and the full-sample fit (``None`` if not needed)."""
    out: dict[str, float] = {}
    if "srcc" in figures:
        out["srcc"] = srcc(s, y)
    if "krcc" in figures:
        out["krcc"] = krcc(s, y)
    fit = None
    if "plcc" in figures or "rmse" in figures:
        out["plcc"], out["rmse"], fit = plcc_rmse(s, y)
    return {k: out[k] for k in figures}, fit


def _result(point: dict[str, float], got: SetSamples, n_groups: int, alpha: float) -> BootstrapResult:
    low, high = {}, {}
    for k, v in got.samples.items():
        fin = v[np.isfinite(v)]
        lo, hi = np.quantile(fin, [alpha / 2, 1 - alpha / 2]) if fin.size else (np.nan, np.nan)
        low[k], high[k] = float(lo), float(hi)
    return BootstrapResult(point, low, high, got.samples, n_groups, got.fit)


def _check(n_boot: int, alpha: float, figures: Sequence[str]) -> tuple[str, ...]:
    if n_boot < 1 or not 0 < alpha < 1:
        raise ValueError(f"need n_boot >= 1 and 0 < alpha < 1, got {n_boot}, {alpha}")
    bad = [f for f in figures if f not in FIGURES]
    if bad:
        raise ValueError(f"figure {bad[0]!r}: use one of {', '.join(FIGURES)}")
    return tuple(figures)


def bootstrap_correlation(s: Any, y: Any, groups: Any, *, n_boot: int = 1000, seed: int = 0,
                          alpha: float = 0.05, figures: Sequence[str] = FIGURES) -> BootstrapResult:
    """Figures with percentile intervals from resampling whole groups (reference images).

    Args:
        s: signed prediction per item.
        y: subjective score per item.
        groups: reference id of each item; ``np.arange(n)`` resamples items.
        n_boot: number of resamples.
        seed: seed of ``numpy.random.default_rng``.
        alpha: the interval is ``1 - alpha``.
        figures: any of ``srcc, krcc, plcc, rmse``.

    Returns:
        :class:`BootstrapResult`. Each resample refits the logistic, warm-started from the
        full-sample fit (package doc); resamples where a figure is undefined (fewer than 3 items,
        a constant variable) are ``nan`` and left out of the interval.

    Raises:
        ValueError: on mismatched lengths, non-finite values, ``n_boot < 1`` or a bad ``alpha``.
    """
    s, y = checked_pair(s, y)
    figs = _check(n_boot, alpha, figures)
    code, n_groups = _codes(groups, s.size)
    point, fit = _point(s, y, figs)
    counts = draw_counts(n_groups, n_boot, seed)
    got = resample_figures([SetData(s, y, code, n_groups, fit)], [counts], figs)[0]
    return _result(point, got, n_groups, alpha)


def per_type_figures(s: Any, y: Any, types: Any) -> dict[str, CorrelationFigures]:
    """:func:`correlation_figures` for each distortion type (types with < 3 items are skipped)."""
    s, y = checked_pair(s, y)
    t = np.asarray(types).reshape(-1)
    if t.size != s.size:
        raise ValueError(f"types has {t.size} entries for {s.size} items")
    out: dict[str, CorrelationFigures] = {}
    for name in sorted({str(v) for v in t}):
        m = np.array([str(v) == name for v in t])
        if int(m.sum()) >= 3:
            out[name] = correlation_figures(s[m], y[m])
    return out


def per_type_bootstrap(s: Any, y: Any, types: Any, groups: Any, *, n_boot: int = 1000, seed: int = 0,
                       alpha: float = 0.05) -> dict[str, tuple[int, BootstrapResult]]:
    """``{type: (n, result)}``: :func:`bootstrap_correlation` on the items of each distortion type.

    Each type resamples its own reference images (types with fewer than 3 items are skipped), every
    type in one batched pass. Each type draws from its own generator, seeded ``(seed, type index)``
    in sorted type order.
    """
    s, y = checked_pair(s, y)
    _check(n_boot, alpha, FIGURES)
    t = np.asarray(types).astype(str).reshape(-1)
    g = np.asarray(groups).reshape(-1)
    if t.size != s.size or g.size != s.size:
        raise ValueError(f"types has {t.size} and groups {g.size} entries for {s.size} items")
    names, sets, counts, points = [], [], [], []
    for k, name in enumerate(sorted(set(t.tolist()))):
        m = t == name
        if int(m.sum()) < 3:
            continue
        code, n_groups = _codes(g[m], int(m.sum()))
        point, fit = _point(s[m], y[m], FIGURES)
        seq = int(np.random.SeedSequence([int(seed), k]).generate_state(1)[0])
        names.append(name)
        sets.append(SetData(s[m], y[m], code, n_groups, fit))
        counts.append(draw_counts(n_groups, n_boot, seq))
        points.append(point)
    got = resample_figures(sets, counts, FIGURES) if sets else []
    return {name: (int(d.s.size), _result(pt, r, d.n_groups, alpha))
            for name, d, pt, r in zip(names, sets, points, got, strict=True)}


def paired_correlation_difference(s_a: Any, s_b: Any, y: Any, groups: Any, *, figure: str = "srcc",
                                  n_boot: int = 1000, seed: int = 0, alpha: float = 0.05
                                  ) -> tuple[float, tuple[float, float], float]:
    """``figure(A) - figure(B)`` on the same items, its interval and a two-sided p-value.

    Both metrics are resampled with the SAME reference images; the interval and the p-value come
    from one method, :func:`bapps_toolkit._bootstrap.percentile_test` (as
    :func:`bapps_toolkit.scores.paired_bootstrap` does for 2AFC), so ``p < alpha`` exactly when
    the ``1 - alpha`` interval excludes 0. Resamples where the figure is undefined are left out.
    A PLCC/RMSE difference refits each resample of each metric from that metric's full-sample fit
    (package doc).
    """
    if figure not in FIGURES:
        raise ValueError(f"figure {figure!r}: use one of {', '.join(FIGURES)}")
    s_a, y = checked_pair(s_a, y)
    s_b, _ = checked_pair(s_b, y)
    code, n_groups = _codes(groups, y.size)
    (pa, fa), (pb, fb) = _point(s_a, y, [figure]), _point(s_b, y, [figure])
    counts = draw_counts(n_groups, n_boot, seed)
    a, b = resample_figures([SetData(s_a, y, code, n_groups, fa), SetData(s_b, y, code, n_groups, fb)],
                            [counts, counts], (figure,))
    diff = pa[figure] - pb[figure]
    lo, hi, p = percentile_test(a.samples[figure] - b.samples[figure], alpha)
    return float(diff), (lo, hi), p
