"""Point figures of one set: the 5-parameter logistic fit (scipy), SRCC, KRCC, PLCC, RMSE (package doc)."""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

import numpy as np
from scipy import optimize, stats

__all__ = [
    "FIGURES", "LogisticFit", "logistic5", "fit_logistic", "srcc", "krcc", "plcc_rmse",
    "CorrelationFigures", "correlation_figures", "signed_prediction",
]

#: The figures reported per set, in report order.
FIGURES = ("srcc", "krcc", "plcc", "rmse")


def logistic5(s: Any, b1: float, b2: float, b3: float, b4: float, b5: float) -> np.ndarray:
    """The VQEG 5-parameter logistic ``b1 (1/2 - 1/(1 + exp(b2 (s - b3)))) + b4 s + b5``."""
    s = np.asarray(s, dtype=np.float64)
    with np.errstate(over="ignore"):
        return np.asarray(b1 * (0.5 - 1.0 / (1.0 + np.exp(b2 * (s - b3)))) + b4 * s + b5)


def logistic5_jac(s: np.ndarray, b1: float, b2: float, b3: float, b4: float, b5: float) -> np.ndarray:
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


def checked_pair(s: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    s, y = _vector(s, "prediction"), _vector(y, "subjective score")
    if s.shape != y.shape:
        raise ValueError(f"prediction has {s.size} items but the subjective scores {y.size}")
    if s.size < 3:
        raise ValueError(f"correlation needs at least 3 items, got {s.size}")
    return s, y


def to_raw(p: np.ndarray, mu: float, sd: float) -> tuple[float, float, float, float, float]:
    """Parameters in ``z = (s - mu)/sd`` units -> parameters in ``s`` units (same curve)."""
    b1, b2, b3, b4, b5 = (float(v) for v in p)
    return b1, b2 / sd, b3 * sd + mu, b4 / sd, b5 - b4 * mu / sd


def _linear(s: np.ndarray, y: np.ndarray) -> LogisticFit:
    if np.ptp(s) == 0:
        return LogisticFit((0.0, 0.0, 0.0, 0.0, float(np.mean(y))), "linear-fallback")
    slope, intercept = np.polyfit(s, y, 1)
    return LogisticFit((0.0, 0.0, 0.0, float(slope), float(intercept)), "linear-fallback")


def _model(s: np.ndarray, b1: float, b2: float, b3: float, b4: float, b5: float) -> np.ndarray:
    """:func:`logistic5` for ``curve_fit`` inside :func:`_fit_z`, without its per-call set-up.

    The same operations run in the same order (the same numbers); warnings are silenced by the
    caller.
    """
    return b1 * (0.5 - 1.0 / (1.0 + np.exp(b2 * (s - b3)))) + b4 * s + b5


def _model_jac(s: np.ndarray, b1: float, b2: float, b3: float, b4: float, b5: float) -> np.ndarray:
    """:func:`logistic5_jac` for ``curve_fit`` inside :func:`_fit_z` (the same numbers, filled in place)."""
    e = np.exp(np.clip(b2 * (s - b3), -700, 700))
    g = 1.0 / (1.0 + e)
    dg = e * g * g
    out = np.empty((5, s.size))
    np.subtract(0.5, g, out=out[0])
    np.multiply(b1 * dg, s - b3, out=out[1])
    np.multiply(-b1 * dg, b2, out=out[2])
    out[3], out[4] = s, 1.0
    return np.asarray(out.T)


def _fit_z(z: np.ndarray, y: np.ndarray, starts: Sequence[Sequence[float]], maxfev: int
           ) -> tuple[float, np.ndarray] | None:
    """Best ``(sse, params)`` over ``starts`` in standardised units, ``None`` if every start fails."""
    best: tuple[float, np.ndarray] | None = None
    for p0 in starts:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                p, _ = optimize.curve_fit(_model, z, y, p0=p0, maxfev=maxfev, jac=_model_jac)
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
    s, y = checked_pair(s, y)
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
    return LogisticFit(to_raw(best[1], mu, sd), "logistic", tuple(float(v) for v in best[1]), (mu, sd))


def srcc(s: Any, y: Any) -> float:
    """Spearman rank correlation (``nan`` when either variable is constant)."""
    s, y = checked_pair(s, y)
    if np.ptp(s) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(stats.spearmanr(s, y).statistic)


def krcc(s: Any, y: Any) -> float:
    """Kendall's τ-b (``nan`` when either variable is constant)."""
    s, y = checked_pair(s, y)
    if np.ptp(s) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(stats.kendalltau(s, y, variant="b").statistic)


def plcc_rmse(s: Any, y: Any, fit: LogisticFit | None = None) -> tuple[float, float, LogisticFit]:
    """``(PLCC, RMSE, fit)`` after the logistic fit (fitted here unless ``fit`` is given)."""
    s, y = checked_pair(s, y)
    fit = fit if fit is not None else fit_logistic(s, y)
    q = fit(s)
    rmse = float(np.sqrt(np.mean((q - y) ** 2)))
    if np.ptp(q) == 0 or np.ptp(y) == 0:
        return float("nan"), rmse, fit
    return float(np.corrcoef(q, y)[0, 1]), rmse, fit


class CorrelationFigures(TypedDict):
    """The point figures of one set (:func:`correlation_figures`)."""

    srcc: float
    krcc: float
    plcc: float
    rmse: float
    n: int                    #: number of items
    fit: LogisticFit          #: the logistic fit behind PLCC and RMSE


def correlation_figures(s: Any, y: Any) -> CorrelationFigures:
    """``{"srcc", "krcc", "plcc", "rmse", "n", "fit"}`` for prediction ``s`` and scores ``y``."""
    s, y = checked_pair(s, y)
    plcc, rmse, fit = plcc_rmse(s, y)
    return CorrelationFigures(srcc=srcc(s, y), krcc=krcc(s, y), plcc=plcc, rmse=rmse, n=int(s.size),
                              fit=fit)


def signed_prediction(distance: Any, higher_is_better: bool) -> np.ndarray:
    """``-d`` for MOS sets (``higher_is_better``), ``d`` for DMOS / error sets (module doc)."""
    d = _vector(distance, "distance")
    return -d if higher_is_better else d
