"""The report of a judged MAD or gMAD competition: read the judgments, give the verdict.

:func:`competition_report` reads

* a **judged set** — the BAPPS layout with ``judge/`` folders, as ``bapps judge export``
  writes it (``judge/<stem>.npy`` = fraction of kept raters who chose ``p1``), or
* the **study database** itself (SQLite, as ``bapps judge`` keeps it; the votes of the raters
  :func:`bapps_toolkit.judge.tally` keeps, optionally only those whose sentinel accuracy
  reaches ``min_sentinel_accuracy``),

together with the competition's manifest (``competition.json`` of the unjudged set), and
gives the verdict of :mod:`bapps_toolkit.competition.verdict` as tables, text and a figure
(:mod:`.competition_tables`).

Every input is untrusted. Items are matched by ``(set key, stem)``: the set keys come from the
checked manifest and the files from the listing of each set's folder
(:func:`bapps_toolkit.data.layout.scan_set`), the stems of a database from its rows, so no
value read from a file becomes a path. The images are checked against the manifest's pixel
digests: a judged ``p0``/``p1`` that is not the manifest's image (another set, or the sides
swapped) is an error naming the item. Images are decoded with the toolkit's size guards.
"""
from __future__ import annotations

import io
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .._io import PathLike
from ..competition.output import pixel_digest
from ..competition.records import STEM_PATTERN, CompetitionItem, Manifest, read_manifest
from ..competition.verdict import verdict
from ..data.images import MAX_PIXELS, MAX_SIDE, load_judgment, read_rgb
from ..data.layout import scan_set
from ..errors import DataError, UsageError
from .competition_tables import CompetitionReport, report_tables, report_text, write_report

SQLITE_MAGIC = b"SQLite format 3\x00"


def _check_digest(it: CompetitionItem, role: str, arr: np.ndarray, where: str) -> None:
    want = it.digests.get(role)
    if want is not None and pixel_digest(arr) != want:
        raise DataError(f"{where}: {role} of item {it.key}/{it.stem} is not the image the manifest names "
                        "(another set, or p0 and p1 swapped); report on the judged set of this competition")


def _folder_judgments(root: Path, manifest: Manifest) -> dict[tuple[str, str], tuple[float, int]]:
    by_key: dict[str, dict[str, CompetitionItem]] = {}
    for it in manifest.items:
        by_key.setdefault(it.key, {})[it.stem] = it
    out: dict[tuple[str, str], tuple[float, int]] = {}
    for key, items in by_key.items():
        if not (root / key).is_dir():
            continue
        sf = scan_set(root, key)
        if "judge" not in sf.files:
            raise DataError(f"{sf.folder}: no judge/ folder; export the study with `bapps judge export` first")
        for i, stem in enumerate(sf.stems):
            found = items.get(stem)
            if found is None:
                continue
            for role in ("p0", "p1"):
                _check_digest(found, role, read_rgb(sf.files[role][i]), str(sf.folder))
            out[(key, stem)] = (load_judgment(sf.files["judge"][i]), 0)
    return out


def _decode_blob(blob: Any, where: str) -> np.ndarray:
    """PNG bytes of a study database -> ``uint8 [H, W, 3]``, with the toolkit's size guards."""
    if not isinstance(blob, (bytes, memoryview)):
        raise DataError(f"{where}: image is not stored as bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(bytes(blob))) as im:
                w, h = im.size
                if w > MAX_SIDE or h > MAX_SIDE or w * h > MAX_PIXELS:
                    raise DataError(f"{where}: image claims {w}x{h} pixels; refusing to decode it")
                return np.array(im.convert("RGB"), dtype=np.uint8)
    except DataError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(f"{where}: image has absurd dimensions; refusing to decode it ({str(exc)[:120]})") from None
    except Exception as exc:
        raise DataError(f"{where}: cannot decode the stored image ({str(exc)[:120]})") from None


def _db_judgments(db: Path, manifest: Manifest, min_sentinel_accuracy: float | None,
                  ) -> dict[tuple[str, str], tuple[float, int]]:
    from ..judge import tally
    from ..judge.store import open_study
    from ..judge.store_reports import item_images

    wanted = {(it.key, it.stem): it for it in manifest.items}
    t = tally(db, min_sentinel_accuracy)
    out: dict[tuple[str, str], tuple[float, int]] = {}
    con = open_study(db)
    try:
        for row in t.items.values():
            key, stem, votes = row.key, row.stem, row.votes
            if not isinstance(key, str) or not isinstance(stem, str) or STEM_PATTERN.fullmatch(stem) is None:
                continue
            it = wanted.get((key, stem))
            if it is None or row.kind != "2afc" or not votes:
                continue
            blobs = item_images(con, row.id, "2afc")[1:]  # (ref, p0, p1) -> (p0, p1)
            for role, blob in zip(("p0", "p1"), blobs, strict=True):
                _check_digest(it, role, _decode_blob(blob, f"{db} item {row.id}"), str(db))
            answers = [int(v) for _, v in votes]
            if any(v not in (0, 1) for v in answers):
                raise DataError(f"{db} item {row.id}: answers must be 0 or 1")
            out[(key, stem)] = (float(np.mean(answers)), len(answers))
    finally:
        con.close()
    return out


def is_study_db(path: PathLike) -> bool:
    """Whether ``path`` is a file that starts like an SQLite database."""
    p = Path(path)
    if not p.is_file():
        return False
    with open(p, "rb") as fh:
        return fh.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC


def read_judgments(judged: PathLike, manifest: Manifest, *, min_sentinel_accuracy: float | None = None,
                   ) -> dict[tuple[str, str], tuple[float, int]]:
    """``{(key, stem): (fraction choosing p1, raters)}`` from a judged folder or a study database."""
    p = Path(judged)
    if not p.exists():
        raise DataError(f"judged set {p} does not exist")
    if p.is_dir():
        if min_sentinel_accuracy is not None:
            raise UsageError("min_sentinel_accuracy applies to a study database; an exported set was filtered "
                             "when it was exported")
        return _folder_judgments(p, manifest)
    if not is_study_db(p):
        raise DataError(f"{p} is neither a judged folder (BAPPS layout with judge/) nor a study database (SQLite)")
    return _db_judgments(p, manifest, min_sentinel_accuracy)


def competition_report(judged: PathLike, manifest: PathLike, *, out: PathLike | None = None, n_boot: int = 2000,
                       alpha: float = 0.05, seed: int = 0, min_sentinel_accuracy: float | None = None,
                       figure: bool = True) -> CompetitionReport:
    """Read the judgments and the manifest, give the verdict, and write it to ``out`` if given.

    Args:
        judged: the judged folder (``bapps judge export``) or the study database.
        manifest: the competition's ``competition.json`` (or the unjudged set's folder).
        out: folder for ``verdict.md``, ``verdict.json``, ``pairs.csv``, ``items.csv`` and, for
            gMAD, ``aggressiveness.csv``, ``resistance.csv`` and ``matrices.png`` (each atomic).
        n_boot: bootstrap resamples (see :mod:`bapps_toolkit.competition.verdict`).
        alpha: the test's level (interval ``1 − alpha``).
        seed: seed of the resampling.
        min_sentinel_accuracy: keep only raters at or above it (study database only).
        figure: draw the matrices' figure (gMAD; needs matplotlib).

    Example:
        >>> rep = competition_report("judged", "mad-l2-ssim/competition.json", out="verdict")  # doctest: +SKIP
        >>> print(rep.text)                                                                    # doctest: +SKIP

    Raises:
        DataError: a malformed manifest, judged set or database (the message names it).
    """
    man = read_manifest(manifest)
    judgments = read_judgments(judged, man, min_sentinel_accuracy=min_sentinel_accuracy)
    v = verdict(man, judgments, n_boot=n_boot, alpha=alpha, seed=seed)
    tables = report_tables(v, man)
    rep = CompetitionReport(v, man, tables, report_text(v, man, tables))
    if out is not None:
        rep.files = write_report(rep, Path(out), figure=figure)
    return rep


def judgments_from(mapping: Mapping[tuple[str, str], float]) -> dict[tuple[str, str], tuple[float, int]]:
    """``{(key, stem): fraction}`` -> the form :func:`~bapps_toolkit.competition.verdict.verdict` takes."""
    return {k: (float(v), 0) for k, v in mapping.items()}


__all__ = ["competition_report", "read_judgments", "CompetitionReport", "is_study_db", "judgments_from"]
