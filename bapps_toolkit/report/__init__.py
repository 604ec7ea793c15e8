"""Reports of an evaluation: tables, figures, and all of an evaluation's files in one call.

The tables are Table-5-style Markdown / LaTeX / JSON (:mod:`.tables`); the figures are in
:mod:`.plots` (needs the ``plot`` extra; matplotlib is imported only when a figure is drawn); an
evaluation is written to all its files in one call by :mod:`.outputs`.

The names are imported on first use (:mod:`bapps_toolkit._lazy`): ``bapps demo --help`` reads
the docstring of :mod:`.demo` without importing torch or pandas.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names

if TYPE_CHECKING:
    from .outputs import ReportFiles, evaluate_to_reports
    from .tables import to_json, to_latex, to_markdown, write_csv, write_reports

#: Public name -> the module it comes from.
_LAZY = {"ReportFiles": ".outputs", "evaluate_to_reports": ".outputs",
         **dict.fromkeys(["to_json", "to_latex", "to_markdown", "write_csv", "write_reports"], ".tables")}

__all__ = ["to_markdown", "to_latex", "to_json", "write_csv", "write_reports", "ReportFiles", "evaluate_to_reports"]

__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
