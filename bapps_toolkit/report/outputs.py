"""An evaluation written to its report files in one call (what ``bapps evaluate`` does).

:func:`evaluate_to_reports` checks every requested output first (suffixes, the plotting
dependency, the same file named twice), so a bad request fails before any data is read; then it
runs :func:`~bapps_toolkit.evaluate.run_evaluation` and writes each file atomically.
"""
from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._distributed import is_main_process
from .._io import PathLike
from ..errors import BappsError
from ..evaluate import EvaluationResult, run_evaluation
from ..evaluate.distances import check_distances_path
from .browser import check_browser_dir, write_browser
from .plots import save_evaluation_plot
from .tables import write_reports


@dataclasses.dataclass(frozen=True)
class ReportFiles:
    """Where to write each report (None = not written).

    The reports are the tidy ``csv``, Table-5-style
    ``markdown`` / ``latex``, ``json``, the ``plot`` PNG, the per-item ``distances`` and the
    failure browser's folder ``browse`` (:mod:`.browser`).
    """

    csv: PathLike | None = None
    markdown: PathLike | None = None
    latex: PathLike | None = None
    json: PathLike | None = None
    plot: PathLike | None = None
    distances: PathLike | None = None
    browse: PathLike | None = None

    def paths(self) -> list[str]:
        """The requested files, in the order of the fields."""
        return [str(v) for v in dataclasses.astuple(self) if v is not None]

    def check(self) -> None:
        """Fail on a request that cannot be written, before anything is computed."""
        if self.plot is not None:
            if Path(self.plot).suffix.lower() != ".png":
                raise BappsError(f"plot {self.plot}: the figure is written as PNG; use a .png file name")
            if importlib.util.find_spec("matplotlib") is None:
                raise BappsError("the figure needs matplotlib: pip install 'bapps-toolkit[plot]'")
        if self.distances is not None:
            check_distances_path(self.distances)
        if self.browse is not None:
            check_browser_dir(self.browse)
        outs = self.paths()
        dup = {o for o in outs if outs.count(o) > 1}
        if dup:
            raise BappsError(f"the same output file is given twice: {', '.join(sorted(dup))}")


def evaluate_to_reports(source: PathLike, metrics: Sequence[Any], files: ReportFiles,
                        **options: Any) -> EvaluationResult:
    """Evaluate ``metrics`` on ``source`` and write the reports ``files`` asks for; return the result.

    ``options`` are as for :func:`~bapps_toolkit.evaluate.run_evaluation`.
    """
    files.check()
    result = run_evaluation(source, metrics, save_distances=files.distances, **options)
    if not is_main_process():  # under torchrun every rank holds the result; rank 0 writes it
        return result
    write_reports(result.table, csv=files.csv, markdown=files.markdown, latex=files.latex, json_path=files.json)
    if files.plot is not None:
        save_evaluation_plot(result, files.plot)
    if files.browse is not None:
        write_browser(result, source, files.browse)
    return result
