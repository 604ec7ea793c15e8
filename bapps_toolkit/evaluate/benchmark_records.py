"""Typed records of a cross-benchmark evaluation (:func:`~.benchmarks.evaluate_benchmarks`).

Rows and comparisons are typed dictionaries (:class:`~typing.TypedDict`): they stay plain dicts
for :class:`pandas.DataFrame`, CSV and JSON output, while their fields are named and typed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypedDict

import numpy as np

from ..correlation import LogisticFit

ROW_KEYS = ("metric", "label", "calibrated", "benchmark", "kind", "part", "figure", "n", "value",
            "ci_low", "ci_high", "synthetic", "direction")


class BenchmarkRow(TypedDict):
    """One figure of one metric on one part of one benchmark (the fields of :data:`ROW_KEYS`).

    ``kind`` is ``correlation``, ``2afc`` or ``jnd``; ``part`` ``all``, ``type:<distortion>``
    or a split/category; ``figure`` ``srcc``, ``krcc``, ``plcc``, ``rmse``, ``2afc`` or ``map``;
    ``ci_low``/``ci_high`` the bootstrap interval; ``direction`` how to read ``value``.
    """

    metric: str
    label: str
    calibrated: bool
    benchmark: str
    kind: str
    part: str
    figure: str
    n: int
    value: float
    ci_low: float
    ci_high: float
    synthetic: bool
    direction: str


class ScatterData(TypedDict):
    """What a correlation set's scatter plot needs.

    Signed predictions ``s``, subjective scores ``y``, the fitted logistic, the distortion type of
    each item, the score's name, the metric's label and whether the set is synthetic.
    """

    s: np.ndarray
    y: np.ndarray
    fit: LogisticFit
    types: list[str]
    score_name: str
    label: str
    synthetic: bool


class ComparisonRow(TypedDict):
    """A paired difference ``A - B`` on one set, with its bootstrap interval and two-sided p-value.

    ``figure`` is ``2afc``, ``map`` or ``srcc``.
    """

    a: str
    b: str
    set: str
    figure: str
    diff: float
    ci_low: float
    ci_high: float
    p_value: float


@dataclass(frozen=True)
class FitNote:
    """Resamples of one set whose logistic fit (PLCC/RMSE) did not converge within its budget.

    ``parts`` lists ``part non-converged/fitted`` for each part (``all``, ``type:…``) that had any.
    """

    metric: str
    benchmark: str
    parts: str

    def __str__(self) -> str:
        return (f"{self.benchmark} / {self.metric}: resamples whose logistic fit did not converge "
                f"(their PLCC/RMSE use the straight line, as a point estimate does when its fit fails): "
                f"{self.parts}")


@dataclass
class BenchmarkResult:
    """Tidy :attr:`rows`, the per-set predictions for the figures, paired comparisons, notes."""

    rows: list[BenchmarkRow]
    scatter: dict[tuple[str, str], ScatterData] = field(default_factory=dict)
    comparisons: list[ComparisonRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    fit_notes: list[FitNote] = field(default_factory=list)

    @property
    def synthetic(self) -> bool:
        """Whether any row comes from a synthetic replica (then every report says so)."""
        return any(r["synthetic"] for r in self.rows)


__all__ = ["ROW_KEYS", "BenchmarkResult", "BenchmarkRow", "ComparisonRow", "FitNote", "ScatterData"]
