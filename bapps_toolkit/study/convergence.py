"""Did each network of a loss study converge, and does each loss win its own column?

The training curve of a loss is the mean training loss between checkpoints
(:func:`bapps_toolkit.study.train.train_one`). Its trend is judged on the last half of the curve
(at least :data:`MIN_POINTS` points): a least-squares line of loss against step. The loss is
*still improving* when the line falls by more than twice its standard error, else it has
*levelled off*.

A loss's own column is the evaluation metric of the same name (``ssim`` trained, ``ssim``
evaluated). When a loss does not have the lowest mean of the trained networks in its own
column, the report says by how much it trails and how many more steps it would need: the gap
divided by the fall of the training loss per step (linear extrapolation of the last half of the
curve, taking the held-out value to fall as fast as the training loss). Curves flatten, so this
is a lower bound. When the curve has levelled off, the report says that more steps of the same
schedule are unlikely to close the gap.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

#: Fewest curve points the trend is judged on.
MIN_POINTS = 3

#: A curve point: ``[step, mean training loss since the previous point]``.
CurvePoint = Sequence[float]


@dataclass(frozen=True)
class CurveTrend:
    """The trend of the last half of a training curve.

    Attributes:
        steps: steps trained.
        points: curve points the line was fitted to (0 when too few to judge).
        change_per_100: change of the training loss per 100 steps (negative: falling).
        improving: the fall exceeds twice the slope's standard error.
    """

    steps: int
    points: int
    change_per_100: float
    improving: bool


@dataclass(frozen=True)
class ConvergenceLine:
    """What the report says about one trained loss.

    Attributes:
        loss: the loss specification.
        trend: its curve's trend.
        column: its own evaluation column (``None`` when no metric has its name).
        wins: it has the lowest mean of the trained networks in that column.
        gap: how far it trails the best network there (0 when it wins).
        steps_needed: estimated further steps to close the gap (``None``: no estimate).
        text: the sentence of the report.
    """

    loss: str
    trend: CurveTrend
    column: str | None
    wins: bool | None
    gap: float
    steps_needed: int | None
    text: str

    def to_json(self) -> dict[str, object]:
        """The record as a JSON object.

        Returns:
            Its fields, the trend as a nested object.
        """
        return asdict(self)


def curve_trend(curve: Sequence[CurvePoint]) -> CurveTrend:
    """The trend of a training curve's last half (see the module docstring).

    Args:
        curve: ``[step, mean loss]`` points in step order.

    Returns:
        The fitted trend; ``points`` is 0 when fewer than :data:`MIN_POINTS` points are there.
    """
    steps = int(curve[-1][0]) if curve else 0
    tail = [(float(s), float(v)) for s, v in curve[len(curve) // 2:]]
    if len(tail) < MIN_POINTS:
        return CurveTrend(steps, 0, 0.0, False)
    x = np.array([p[0] for p in tail])
    y = np.array([p[1] for p in tail])
    xc = x - x.mean()
    slope = float((xc * (y - y.mean())).sum() / (xc * xc).sum())
    resid = y - (y.mean() + slope * xc)
    se = math.sqrt(float((resid * resid).sum()) / (len(tail) - 2) / float((xc * xc).sum()))
    return CurveTrend(steps, len(tail), 100.0 * slope, slope < 0 and -slope > 2.0 * se)


def _trend_text(loss: str, trend: CurveTrend) -> str:
    if trend.points == 0:
        return f"`{loss}`: too few checkpoints to judge convergence after {trend.steps} steps"
    if trend.improving:
        return (f"`{loss}`: not converged after {trend.steps} steps: still improving by "
                f"{-trend.change_per_100:.3g} per 100 steps")
    return f"`{loss}`: levelled off after {trend.steps} steps ({trend.change_per_100:+.3g} per 100 steps)"


def convergence_lines(losses: Sequence[str], labels: Mapping[str, str], columns: Sequence[str],
                      means: Mapping[str, Sequence[float]], curves: Mapping[str, Sequence[CurvePoint]],
                      ) -> list[ConvergenceLine]:
    """One line per trained loss: its convergence and, when it loses its own column, the steps it would need.

    Args:
        losses: the loss specifications, in study order.
        labels: each loss's row label in the matrix.
        columns: the evaluation metric names, in column order.
        means: each row label's column means (lower is better).
        curves: each loss's training curve.

    Returns:
        The report's lines, one per loss.
    """
    lines = []
    for loss in losses:
        trend = curve_trend(curves[loss])
        text = _trend_text(loss, trend)
        if loss not in columns:
            lines.append(ConvergenceLine(loss, trend, None, None, 0.0, None, text + "."))
            continue
        j = list(columns).index(loss)
        best = min(losses, key=lambda other: means[labels[other]][j])
        gap = means[labels[loss]][j] - means[labels[best]][j]
        if gap <= 0:
            lines.append(ConvergenceLine(loss, trend, loss, True, 0.0, None, text + f"; wins its own column {loss}."))
            continue
        needed = math.ceil(round(gap / (-trend.change_per_100 / 100.0), 6)) if trend.improving else None
        text += (f"; does NOT win its own column {loss}: {means[labels[loss]][j]:.4g} vs {means[labels[best]][j]:.4g} "
                 f"by `{best}` (gap {gap:.3g})")
        if needed is not None:
            text += (f"; at its current rate it would need about {needed} more steps (at least {trend.steps + needed} "
                     "in all; a lower bound, curves flatten)")
        elif trend.points:
            text += "; its training loss has levelled off, so more steps of this schedule are unlikely to close it"
        lines.append(ConvergenceLine(loss, trend, loss, False, gap, needed, text + "."))
    return lines


__all__ = ["MIN_POINTS", "CurveTrend", "ConvergenceLine", "curve_trend", "convergence_lines"]
