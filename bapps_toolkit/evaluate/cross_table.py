"""The cross-benchmark table: tidy benchmark rows pivoted into metrics × headline columns."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..data.iqa.registry import headline_part, title_of
from ..scores import HUMAN, MEAN_CATEGORY

#: A cell of :func:`cross_table`: ``(value, ci_low, ci_high)``.
Cell = tuple[float, float, float]


def cross_table(rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[str], dict[tuple[str, str], Cell]]:
    """``(metric labels, column names, cells)`` of the cross-benchmark table.

    The columns: BAPPS 2AFC mean, BAPPS JND mAP (mean of its categories), NIGHTS 2AFC (test total), then SRCC
    per correlation set; a cell is ``(value, ci_low, ci_high)`` (``nan`` bounds where no interval is defined).
    """
    cells: dict[tuple[str, str], Cell] = {}
    labels: list[str] = []
    cols: list[str] = []
    jnd: dict[str, list[float]] = {}

    def put(label: str, col: str, cell: Cell) -> None:
        if label not in labels:
            labels.append(label)
        if col not in cols:
            cols.append(col)
        cells[(label, col)] = cell

    for r in rows:
        lab = r["label"]
        if r["metric"] == HUMAN:
            continue
        cell = (r["value"], r["ci_low"], r["ci_high"])
        if r["benchmark"] == "bapps" and r["kind"] == "jnd":
            jnd.setdefault(lab, []).append(r["value"])
        elif r["benchmark"] == "bapps" and r["kind"] == "2afc" and r["part"].endswith(MEAN_CATEGORY):
            put(lab, "BAPPS 2AFC", cell)
        elif r["kind"] == "2afc" and r["part"] == headline_part(r["benchmark"]):
            put(lab, f"{title_of(r['benchmark'])} 2AFC", cell)
        elif r["kind"] == "correlation" and r["part"] == "all" and r["figure"] == "srcc":
            put(lab, f"{r['benchmark']} SRCC", cell)
    for lab, vals in jnd.items():
        put(lab, "BAPPS JND mAP", (float(np.mean(vals)), np.nan, np.nan))
    order = ["BAPPS 2AFC", "BAPPS JND mAP", "NIGHTS 2AFC"]
    cols = [c for c in order if c in cols] + sorted(c for c in cols if c not in order)
    return labels, cols, cells
