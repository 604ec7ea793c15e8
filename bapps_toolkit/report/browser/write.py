"""Writing the failure browser's folder, all at once.

The folder is built under a hidden temporary name beside ``out`` and renamed into place when
complete, so a failure (or a kill) never leaves a half-written browser under ``out``. An existing
``out`` is replaced only when it is empty or was written by this function (it holds the
:data:`MARKER` file); any other folder is refused. Layout::

    out/index.html        the page (see :mod:`.page`)
    out/browser.js        sorting and filtering
    out/browser.css
    out/calibration.png   reliability diagrams (when matplotlib is installed)
    out/img/iNNNNN-ref.png, -p0.png, -p1.png   the triplets (NNNNN an index, never a stem)
    out/img/mNNNNN-0.png, -1.png               a metric's spatial maps of d(ref, p0), d(ref, p1)
"""
from __future__ import annotations

import contextlib
import importlib.resources
import importlib.util
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..._io import PathLike, temp_name_for
from ...calibration import POOLED_CATEGORY, CalibrationResult, link_description
from ...errors import BappsError
from ...evaluate import EvaluationResult
from ...metrics import Metric
from ...scores import HUMAN, MEAN_CATEGORY
from .images import Triplet, heatmap_png, image_png, load_triplets, map_caption, spatial_maps
from .page import MetricInfo, PageData, ShownItem, render_page
from .select import DEFAULT_CONFIDENCE, DEFAULT_PER_GROUP, Disagreement, Selection, select_disagreements

#: File that marks a folder written by :func:`write_browser` (so a later call may replace it).
MARKER = ".bapps-browser"
ASSETS = ("browser.js", "browser.css")
FIGURE = "calibration.png"

__all__ = ["write_browser", "check_browser_dir", "MARKER"]


def check_browser_dir(path: PathLike) -> Path:
    """``path`` as a Path when a browser may be written there (absent, empty, or an earlier browser).

    Raises:
        BappsError: ``path`` is a file or a link, or a folder holding other files.
    """
    out = Path(path)
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise BappsError(f"browse folder {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise BappsError(f"browse folder {out} holds other files; give a new or empty folder, "
                         "or one written by an earlier --browse")
    return out


def _metric_infos(table: Any) -> list[MetricInfo]:
    seen: dict[str, MetricInfo] = {}
    for r in table.itertuples():
        if r.metric != HUMAN and r.metric not in seen:
            seen[r.metric] = MetricInfo(str(r.metric), str(r.label), bool(r.calibrated))
    return list(seen.values())


def _set_flags(table: Any) -> dict[str, bool]:
    flags: dict[str, bool] = {}
    for r in table.itertuples():
        if r.mode == "2afc" and r.category != MEAN_CATEGORY:
            key = f"2afc/{r.split}/{r.category}"
            flags[key] = flags.get(key, False) or bool(r.synthetic)
    return flags


def _write_triplets(img: Path, triplets: Mapping[tuple[str, int], Triplet]) -> dict[tuple[str, int], tuple[str, ...]]:
    names: dict[tuple[str, int], tuple[str, ...]] = {}
    for n, (where, t) in enumerate(triplets.items()):
        files = tuple(f"img/i{n:05d}-{part}.png" for part in ("ref", "p0", "p1"))
        for name, arr in zip(files, (t.ref, t.p0, t.p1), strict=True):
            (img.parent / name).write_bytes(image_png(arr))
        names[where] = files
    return names


def _shown(img: Path, items: Sequence[Disagreement], triplets: Mapping[tuple[str, int], Triplet],
           metrics: Mapping[str, Metric]) -> list[ShownItem]:
    """Write every image and map; the page's rows in the selection's order."""
    files = _write_triplets(img, triplets)
    maps: dict[int, tuple[tuple[str, str], float, str]] = {}
    n = 0
    for mid in dict.fromkeys(it.metric for it in items):
        metric = metrics.get(mid)
        mine = [i for i, it in enumerate(items) if it.metric == mid]
        got = spatial_maps(metric, [triplets[(items[i].key, items[i].index)] for i in mine]) if metric else None
        if got is None or metric is None:
            continue
        for i, (m0, m1) in zip(mine, got, strict=True):
            vmax = float(max(m0.max(), m1.max(), 0.0))
            names = (f"img/m{n:05d}-0.png", f"img/m{n:05d}-1.png")
            for name, m in zip(names, (m0, m1), strict=True):
                (img.parent / name).write_bytes(heatmap_png(m, vmax))
            maps[i] = (names, vmax, map_caption(metric))
            n += 1
    out = []
    for i, it in enumerate(items):
        ref, p0, p1 = files[(it.key, it.index)]
        drawn = maps.get(i)
        out.append(ShownItem(it, (ref, p0, p1), *(drawn if drawn else (None, None, None))))
    return out


def _figure(folder: Path, calibration: CalibrationResult | None) -> tuple[str | None, str]:
    if calibration is None or not any(r.category == POOLED_CATEGORY for r in calibration.rows):
        return None, "No calibration: no metric was scored on a 2AFC set."
    if importlib.util.find_spec("matplotlib") is None:
        return None, "The reliability diagrams need matplotlib: pip install 'bapps-toolkit[plot]'."
    from ..calibration_plot import save_calibration_plot

    save_calibration_plot(calibration, folder / FIGURE)
    return FIGURE, ""


def _swap(tmp: Path, out: Path) -> None:
    """Put the finished ``tmp`` at ``out``, replacing an earlier browser there."""
    if not out.exists():
        os.replace(tmp, out)
        return
    old = temp_name_for(out)
    os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _page(result: EvaluationResult, selection: Selection, shown: list[ShownItem], figure: tuple[str | None, str],
          title: str | None) -> PageData:
    sets = _set_flags(result.table)
    cal = result.calibration
    head = title or "Failure browser: where the metrics and confident raters disagree"
    if any(sets.values()):
        head += " (SYNTHETIC DATA)"
    return PageData(title=head, metrics=_metric_infos(result.table), sets=sets, selection=selection, shown=shown,
                    calibration=[r for r in (cal.rows if cal else []) if r.category == POOLED_CATEGORY],
                    calibration_note=(link_description(cal.folds, cal.seed) + ", pooled over the 2AFC sets.")
                    if cal else "", figure=figure[0], figure_note=figure[1])


def write_browser(result: EvaluationResult, source: PathLike, out: PathLike, *,
                  per_group: int = DEFAULT_PER_GROUP, confidence: float = DEFAULT_CONFIDENCE,
                  title: str | None = None) -> Path:
    """Write the failure browser of an evaluation to the folder ``out`` (see the module docstring).

    Args:
        result: what :func:`~bapps_toolkit.evaluate.run_evaluation` returned on ``source``.
        source: the BAPPS folder root or packed ``.h5`` file that was evaluated (the images are
            read back from it).
        out: the folder to write (absent, empty, or an earlier browser).
        per_group: most rows per metric and 2AFC set.
        confidence: judge-fraction threshold of a confident majority, in (0.5, 1].
        title: the page's title (default: a description; SYNTHETIC DATA is appended when it applies).

    Returns:
        ``out`` as a Path; open ``out/index.html`` in a browser (no server needed).

    Raises:
        BappsError: ``out`` cannot be written (see :func:`check_browser_dir`).
        DataError: the images of a chosen item cannot be read, or the data changed since the evaluation.
        ValueError: ``per_group`` or ``confidence`` out of range.

    Example:
        >>> res = run_evaluation("bapps.h5", ["lpips-alex", "ssim"])            # doctest: +SKIP
        >>> write_browser(res, "bapps.h5", "failures")                         # doctest: +SKIP
    """
    dest = check_browser_dir(out)
    selection = select_disagreements(result.distances, result.calibration, confidence=confidence,
                                     per_group=per_group)
    triplets = load_triplets(source, [(it.key, it.index, it.stem) for it in selection.items])
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name_for(dest)
    (tmp / "img").mkdir(parents=True)
    try:
        shown = _shown(tmp / "img", selection.items, triplets, result.metrics)
        page = _page(result, selection, shown, _figure(tmp, result.calibration), title)
        (tmp / "index.html").write_text(render_page(page), encoding="utf-8")
        assets = importlib.resources.files(__package__).joinpath("assets")
        for name in ASSETS:
            (tmp / name).write_bytes(assets.joinpath(name).read_bytes())
        (tmp / MARKER).write_text("written by bapps_toolkit.report.browser.write_browser\n", encoding="utf-8")
        _swap(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(tmp)
    return dest
