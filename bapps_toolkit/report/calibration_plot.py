"""Reliability diagrams of an evaluation's calibration (needs the ``plot`` extra).

One column per metric, from its rows pooled over the 2AFC sets: on top, the mean judge fraction
``h`` against the mean predicted ``q = P(p1 closer)`` in each of the equal-width bins of ``q``
(one line per link, the diagonal is perfect calibration); below, the number of items per bin.
The legend gives each link's log-likelihood, Brier score and ECE. A figure of synthetic sets or
of an UNCALIBRATED metric says so in its title and in the metric's panel title.
"""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from .._io import PathLike
from .._plot import pyplot, save_figure
from ..calibration import POOLED_CATEGORY, CalibrationResult, CalibrationRow

__all__ = ["plot_reliability", "save_calibration_plot", "figure_title"]


def plot_reliability(rows: list[CalibrationRow], ax: Any, counts_ax: Any = None) -> Any:
    """Draw the reliability curves of ``rows`` (one per link) on ``ax``; return ``ax``.

    Their bin counts go on ``counts_ax`` when it is given.
    """
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle=":", label="perfect calibration")
    width = 1.0 / max(len(rows[0].bins.count), 1) if rows else 0.1
    for i, r in enumerate(rows):
        mq, mh = np.asarray(r.bins.mean_q), np.asarray(r.bins.mean_h)
        keep = np.asarray(r.bins.count) > 0
        ax.plot(mq[keep], mh[keep], marker="o", markersize=4,
                label=f"{r.link}: log-lik {r.log_lik:.3f}, Brier {r.brier:.3f}, ECE {r.ece:.3f}")
        if counts_ax is not None:
            left = np.asarray(r.bins.edges[:-1]) + i * width / max(len(rows), 1)
            counts_ax.bar(left, r.bins.count, width=width / max(len(rows), 1), align="edge", label=r.link)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mean predicted q = P(p1 closer)")
    ax.set_ylabel("mean judge fraction h")
    ax.legend(fontsize=6, loc="upper left")
    if counts_ax is not None:
        counts_ax.set_xlim(0, 1)
        counts_ax.set_xlabel("q (bins)")
        counts_ax.set_ylabel("items")
    return ax


def figure_title(cal: CalibrationResult, title: str | None = None) -> str:
    """The figure's title: ``title`` (or a default), then SYNTHETIC / UNCALIBRATED warnings."""
    head = title or "Calibration on the BAPPS 2AFC sets (pooled)"
    if any(r.synthetic for r in cal.rows):
        head = "SYNTHETIC DATA (mini set, not human judgments) — " + head
    if not all(r.calibrated for r in cal.rows):
        head += " — includes UNCALIBRATED metrics"
    return head


def _panel_title(row: CalibrationRow) -> str:
    text = row.label + (" — SYNTHETIC" if row.synthetic else "")
    return "\n".join(textwrap.wrap(text, 44)[:3])


def save_calibration_plot(cal: CalibrationResult, path: PathLike, *, title: str | None = None) -> Path:
    """Write the reliability diagrams of ``cal`` (pooled rows, one column per metric) to a PNG, atomically.

    Raises:
        ValueError: ``path`` is not a ``.png`` file, or ``cal`` has no pooled rows.
        BappsError: matplotlib is missing.
    """
    out = Path(path)
    if out.suffix.lower() != ".png":
        raise ValueError(f"figure file {out}: the figure is written as PNG; use a .png file name")
    pooled = [r for r in cal.rows if r.category == POOLED_CATEGORY]
    metrics = list(dict.fromkeys(r.metric for r in pooled))
    if not metrics:
        raise ValueError("no calibration rows to plot (no metric was scored on a 2AFC set)")
    plt = pyplot()
    fig = plt.figure(figsize=(4.2 * len(metrics), 5.6))
    grid = fig.add_gridspec(2, len(metrics), height_ratios=(3, 1))
    for j, mid in enumerate(metrics):
        rows = [r for r in pooled if r.metric == mid]
        ax = fig.add_subplot(grid[0, j])
        plot_reliability(rows, ax, fig.add_subplot(grid[1, j]))
        ax.set_title(_panel_title(rows[0]), fontsize=8)
    fig.suptitle("\n".join(textwrap.wrap(figure_title(cal, title), 110)), fontsize=9)
    fig.tight_layout()
    return save_figure(fig, out, dpi=110)
