"""Figures of an evaluation (needs the ``plot`` extra: ``pip install bapps-toolkit[plot]``).

* :func:`plot_2afc_bars` — per-category 2AFC scores with their bootstrap intervals, one bar per
  metric, the human ceiling as a black tick per category (like Fig. 4 of Zhang et al. 2018).
* :func:`plot_jnd_pr` — JND precision–recall curves (pairs sorted by increasing distance), one
  panel per JND set, one curve per metric, mAP in the legend.
* :func:`save_evaluation_plot` — both in one PNG, written atomically.

Labels are the metrics' report labels, so UNCALIBRATED metrics are tagged in the legend; a figure
of synthetic data carries that in its title. matplotlib is imported lazily (Agg backend).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._io import PathLike
from .._plot import pyplot, save_figure
from ..data.layout import ALL_KEYS
from ..errors import UsageError
from ..scores import HUMAN, MEAN_CATEGORY, jnd_map, jnd_pr_curve
from .tables import column_title, report_columns, report_rows

if TYPE_CHECKING:
    import pandas as pd


def short_label(label: str, width: int = 48) -> str:
    """``label`` cut to ``width`` characters; an UNCALIBRATED tag is never cut off."""
    if len(label) <= width:
        return label
    tag = " [UNCALIBRATED]"
    if "UNCALIBRATED" in label:
        head = label.split(" [UNCALIBRATED")[0]
        room = max(8, width - len(tag))
        return (head if len(head) <= room else head[: room - 1] + "…") + tag
    return label[: width - 1] + "…"


def plot_2afc_bars(table: pd.DataFrame, ax: Any = None) -> Any:
    """Grouped bars (x = 2AFC sets, one bar per metric) with interval whiskers; returns the axes."""
    plt = pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 4))
    cols = [c for c in report_columns(table) if c[0] == "2afc"]
    metrics = [(m, label) for m, label in report_rows(table) if m != HUMAN]
    if not cols or not metrics:
        ax.text(0.5, 0.5, "no 2AFC sets", ha="center", va="center", transform=ax.transAxes)
        return ax
    x = np.arange(len(cols))
    width = 0.8 / len(metrics)
    for i, (metric, label) in enumerate(metrics):
        vals, lo, hi = [], [], []
        for c in cols:
            hit = table[(table.metric == metric) & (table["mode"] == c[0]) & (table.split == c[1])
                        & (table.category == c[2])]
            if hit.empty:
                vals.append(np.nan)
                lo.append(0.0)
                hi.append(0.0)
            else:
                r = hit.iloc[0]
                vals.append(100 * r.score)
                lo.append(100 * (r.score - r.ci_low))
                hi.append(100 * (r.ci_high - r.score))
        ax.bar(x - 0.4 + (i + 0.5) * width, vals, width, yerr=[lo, hi], capsize=2,
               label=short_label(label))
    for k, c in enumerate(cols):
        hit = table[(table.metric == HUMAN) & (table["mode"] == c[0]) & (table.split == c[1])
                    & (table.category == c[2])]
        if not hit.empty:
            ax.hlines(100 * hit.iloc[0].score, k - 0.45, k + 0.45, colors="k", linewidth=2,
                      label="human (ceiling)" if k == 0 else None)
    ax.set_xticks(x)
    ax.set_xticklabels([column_title(*c).replace("2AFC ", "") for c in cols], rotation=20)
    ax.set_ylabel("2AFC score (%)")
    ax.set_ylim(40, 100)
    ax.axhline(50, color="grey", linewidth=0.5, linestyle=":")
    ax.legend(fontsize=7, ncol=2, loc="upper left")
    return ax


def plot_jnd_pr(distances: Sequence[Any], key: str, ax: Any = None,
                table: pd.DataFrame | None = None) -> Any:
    """Precision–recall curves of every metric on the JND set ``key`` (e.g. ``jnd/val/cnn``)."""
    plt = pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    for sd in distances:
        if sd.key != key or sd.d is None:
            continue
        prec, rec = jnd_pr_curve(sd.d, sd.same)
        ax.plot(rec, prec, label=f"{short_label(sd.label, 36)} ({100 * jnd_map(sd.d, sd.same):.1f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title(f"JND {key.split('/', 1)[1]} (mAP %)", fontsize=9)
    ax.legend(fontsize=6, loc="lower left")
    return ax


def save_evaluation_plot(result: Any, path: PathLike, *, title: str | None = None) -> Path:
    """Write the bars and the JND precision–recall panels of an ``EvaluationResult`` to a PNG."""
    plt = pyplot()
    table = result.table
    out = Path(path)
    if out.suffix.lower() != ".png":
        raise UsageError(f"figure file {out}: the figure is written as PNG; use a .png file name")
    present = {sd.key for sd in result.distances if sd.key.startswith("jnd/")}
    jnd_keys = [k for k in ALL_KEYS if k in present] + sorted(present - set(ALL_KEYS))  # table order
    ncols = max(1, len(jnd_keys))
    fig = plt.figure(figsize=(max(10, 4 * ncols), 8 if jnd_keys else 4.5))
    grid = fig.add_gridspec(2 if jnd_keys else 1, ncols)
    plot_2afc_bars(table, fig.add_subplot(grid[0, :]))
    for i, key in enumerate(jnd_keys):
        plot_jnd_pr(result.distances, key, fig.add_subplot(grid[1, i]))
    head = title or "BAPPS evaluation"
    if bool(table.synthetic.any()):
        head += " — SYNTHETIC DATA (mini set, not BAPPS)"
    if not bool(table.calibrated.all()):
        head += " — includes UNCALIBRATED metrics"
    fig.suptitle(head, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out, dpi=110)


__all__ = ["plot_2afc_bars", "plot_jnd_pr", "save_evaluation_plot", "MEAN_CATEGORY"]
