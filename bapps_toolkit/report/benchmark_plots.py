"""Figures of a cross-benchmark evaluation: metric vs subjective score, and per-type SRCC bars.

The scatter plots carry the fitted logistic; matplotlib is imported lazily (:mod:`bapps_toolkit._plot`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .._io import PathLike
from .._plot import pyplot, save_figure
from ..errors import UsageError
from ..evaluate.benchmark_records import BenchmarkResult, ScatterData
from .plots import short_label


def plot_scatter(data: ScatterData, benchmark: str, ax: Any) -> Any:
    """Prediction (signed distance) against the subjective score, coloured by type, with the logistic.

    The fitted logistic has 5 parameters; the title names the fit method.
    """
    s, y, fit = data["s"], data["y"], data["fit"]
    types = np.array(data["types"])
    for t in sorted(set(types.tolist())):
        m = types == t
        ax.scatter(s[m], y[m], s=8, alpha=0.7, label=t)
    xs = np.linspace(float(s.min()), float(s.max()), 200)
    ax.plot(xs, fit(xs), color="black", lw=1.5, label=f"{fit.method} fit")
    ax.set_xlabel("prediction (−distance for MOS sets, distance for DMOS sets)", fontsize=7)
    ax.set_ylabel(data["score_name"], fontsize=7)
    syn = " (SYNTHETIC)" if data["synthetic"] else ""
    ax.set_title(f"{benchmark}{syn}: {short_label(data['label'], 36)}", fontsize=8)
    ax.legend(fontsize=6, markerscale=1.5)
    return ax


def plot_type_bars(result: BenchmarkResult, benchmark: str, ax: Any) -> Any:
    """SRCC per distortion type (one bar per metric)."""
    rows = [r for r in result.rows if r["benchmark"] == benchmark and r["figure"] == "srcc"
            and r["part"].startswith("type:")]
    labels = list(dict.fromkeys(r["label"] for r in rows))
    types = list(dict.fromkeys(r["part"].removeprefix("type:") for r in rows))
    width = 0.8 / max(1, len(labels))
    for k, lab in enumerate(labels):
        vals = {r["part"].removeprefix("type:"): r["value"] for r in rows if r["label"] == lab}
        ax.bar(np.arange(len(types)) + k * width, [vals.get(t, np.nan) for t in types], width,
               label=short_label(lab, 30))
    ax.set_xticks(np.arange(len(types)) + width * (len(labels) - 1) / 2)
    ax.set_xticklabels(types, fontsize=7, rotation=30)
    ax.set_ylabel("SRCC")
    ax.axhline(0, color="grey", lw=0.5)
    syn = " (SYNTHETIC)" if any(r["synthetic"] for r in rows) else ""
    ax.set_title(f"{benchmark}{syn}: SRCC per distortion type", fontsize=8)
    ax.legend(fontsize=6)
    return ax


def save_benchmark_plot(result: BenchmarkResult, path: PathLike) -> Path:
    """One PNG: per correlation set, the scatter of its first metric and the per-type bars."""
    out = Path(path)
    if out.suffix.lower() != ".png":
        raise UsageError(f"{out}: the figure is written as PNG; use a .png file name")
    sets = list(dict.fromkeys(b for (_, b) in result.scatter))
    if not sets:
        raise UsageError("no correlation sets in this result: nothing to plot")
    plt = pyplot()
    fig, axes = plt.subplots(len(sets), 2, figsize=(10, 3.6 * len(sets)), squeeze=False)
    for i, bench in enumerate(sets):
        first = next(v for (m, b), v in result.scatter.items() if b == bench)
        plot_scatter(first, bench, axes[i, 0])
        plot_type_bars(result, bench, axes[i, 1])
    head = "Cross-benchmark evaluation"
    if result.synthetic:
        head += " — SYNTHETIC DATA (replica sets, simulated scores)"
    fig.suptitle(head, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.25 / (3.6 * len(sets))))
    return save_figure(fig, out, dpi=100)
