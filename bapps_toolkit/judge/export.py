"""Turning a study database into a data set: ``export`` and the ``status`` report.

Export (BAPPS layout): ``2afc/<split>/<cat>/{ref,p0,p1}/<stem>.png`` and ``judge/<stem>.npy`` =
fraction of valid raters who preferred ``p1``; ``jnd/.../{p0,p1}`` and ``same/<stem>.npy`` =
fraction who said "same". Or (``fmt="csv"``) ``images/`` plus ``manifest_2afc.csv``
(``ref,p0,p1,judge,n_p0,n_p1``) / ``manifest_jnd.csv`` (``p0,p1,same,n_same,n_different``).
Both add ``raters.csv`` (answers per kind, median response time, sentinel accuracy, 2AFC and
JND agreement with the other raters, kept or dropped; for raters who came through a crowd
platform's study link its platform, study and session ids and their outcome) and ``summary.json``: the pairwise rater
agreement per kind (the share of pairs of kept raters answering one item alike, over items
with two or more votes), the human 2AFC ceiling of BAPPS, ``mean(p² + (1 − p)²)`` over the
judged items (Zhang et al., CVPR 2018), which is the same agreement counted with replacement,
and what the raters saw: ``image_sizes`` (the images' own ``WxH``, which ``bapps pack`` keeps),
``display_px`` and ``scaling`` (the study's on-screen width and upscaling filter).
``min_sentinel_accuracy`` drops raters below it (and raters who met no sentinel) from votes,
agreement and ceiling. Sentinel
trials are never exported. The whole folder is written under a temporary name and renamed.

The database is read as untrusted data: set keys, stems, rater ids and answers are checked
first (:func:`~bapps_toolkit.judge.store.item_rows`; a :class:`~bapps_toolkit.errors.DataError`
names the table, row and field), every file is written through
:func:`~bapps_toolkit._io.path_inside` (nothing lands outside the output folder), and the CSV
cells are neutralised against spreadsheet formulas (:func:`~bapps_toolkit._io.csv_cell`: a
cell that begins with ``= + - @ '``, a tab or a carriage return gets a leading ``'``; drop it
to read the raw value).
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
from PIL import Image

from .._io import PathLike, csv_row, path_inside
from ..errors import DataError
from .store import open_study
from .store_reports import assigned_counts, config_value, item_images
from .tally import RaterTally, TallyItem, rater_table, read_study, tally


def _images(con: Any, db: PathLike, it: TallyItem) -> list[tuple[str, bytes]]:
    """``(role, PNG bytes)`` of one item, each a blob (a DataError naming the row otherwise)."""
    roles = ("ref", "p0", "p1") if it.kind == "2afc" else ("p0", "p1")
    row = item_images(con, it.id, it.kind)
    for role, blob in zip(roles, row, strict=True):
        if not isinstance(blob, bytes):
            raise DataError(f"study database {db}: items row id={it.id}, field {role!r}: "
                            f"{type(blob).__name__}, not image bytes")
    return list(zip(roles, row, strict=True))


def _write_bapps(out: Path, con: Any, db: PathLike, items: list[TallyItem]) -> None:
    source = f"study database {db}"
    for it in items:
        for role, data in _images(con, db, it):
            target = path_inside(out, it.key, role, f"{it.stem}.png", source=source)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        sub = "judge" if it.kind == "2afc" else "same"
        target = path_inside(out, it.key, sub, f"{it.stem}.npy", source=source)
        target.parent.mkdir(parents=True, exist_ok=True)
        np.save(target, np.asarray([it.fraction], dtype=np.float32))


def _write_csv(out: Path, con: Any, db: PathLike, items: list[TallyItem]) -> None:
    heads = {"2afc": ["ref", "p0", "p1", "judge", "n_p0", "n_p1", "set_key", "stem"],
             "jnd": ["p0", "p1", "same", "n_same", "n_different", "set_key", "stem"]}
    for kind, head in heads.items():
        rows = []
        for it in (i for i in items if i.kind == kind):
            names = []
            for role, blob in _images(con, db, it):
                rel = Path("images") / it.key.replace("/", "_") / role / f"{it.stem}.png"
                target = path_inside(out, *rel.parts, source=f"study database {db}")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(blob)
                names.append(rel.as_posix())
            n1 = sum(v for _, v in it.votes)
            n0 = len(it.votes) - n1
            counts = [n0, n1] if kind == "2afc" else [n1, n0]
            rows.append(csv_row(names + [f"{it.fraction:.6f}"] + counts + [it.key, it.stem]))
        if rows:
            with open(path_inside(out, f"manifest_{kind}.csv"), "w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh)
                w.writerow(head)
                w.writerows(rows)


def export(db: PathLike, out_dir: PathLike, *, fmt: str = "bapps", min_sentinel_accuracy: float | None = None,
           force: bool = False) -> dict[str, object]:
    """Write the judged data set to ``out_dir`` (atomically); returns the summary.

    Args:
        db: the study database.
        out_dir: the folder to write (it must not exist unless ``force``).
        fmt: ``"bapps"`` (the BAPPS layout) or ``"csv"`` (images plus manifests).
        min_sentinel_accuracy: drop raters below this sentinel accuracy (:func:`~.tally.tally`).
        force: replace an existing ``out_dir``.

    Returns:
        What ``summary.json`` holds (NaN written as ``null``).

    Raises:
        DataError: a bad format, no item with a kept answer, or a database that holds something
            the server does not write.
        FileExistsError: ``out_dir`` exists and ``force`` is false.
    """
    if fmt not in ("bapps", "csv"):
        raise DataError(f"export format must be 'bapps' or 'csv', got {fmt!r}")
    out = Path(out_dir)
    if out.exists() and not force:
        raise FileExistsError(f"export folder {out} already exists")
    t = tally(db, min_sentinel_accuracy)
    items = [it for it in t.items.values() if it.votes]
    if not items:
        raise DataError(f"{db}: no item has an answer from a kept rater; nothing to export")
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    con = open_study(db)
    try:
        (_write_bapps if fmt == "bapps" else _write_csv)(tmp, con, db, items)
        _write_raters(tmp / "raters.csv", t.raters)
        shown_as = _display(con, db, items)
        summary = {k: (None if isinstance(v, float) and v != v else v)  # NaN (undefined) -> null
                   for k, v in {**t.summary.as_json(), "items_exported": len(items), "format": fmt, **shown_as}.items()}
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        con.close()
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return summary


class Displayed(TypedDict):
    """What the raters saw, as recorded in an export's ``summary.json``."""

    image_sizes: list[str]
    display_px: int | None
    scaling: str | None


def _display(con: Any, db: PathLike, items: list[TallyItem]) -> Displayed:
    """What the raters saw, for the export's summary.

    ``image_sizes``: the distinct ``WxH`` of the exported images, read from their headers;
    ``display_px`` and ``scaling``: the study's settings (each image was shown ``display_px``
    wide, scaled by ``scaling``; None where the stored setting is not valid).

    Raises:
        DataError: an image blob PIL cannot read, naming the row and field.
    """
    sizes: set[str] = set()
    for it in items:
        for role, blob in _images(con, db, it):
            try:
                with Image.open(io.BytesIO(blob)) as im:
                    sizes.add(f"{im.size[0]}x{im.size[1]}")
            except Exception as exc:  # PIL raises many kinds for a bad blob
                raise DataError(f"study database {db}: items row id={it.id}, field {role!r}: "
                                f"not an image PIL can read ({type(exc).__name__})") from None
    px, scaling = _setting(con, "display_px"), _setting(con, "scaling")
    return Displayed(image_sizes=sorted(sizes), display_px=px if type(px) is int and px > 0 else None,
                     scaling=scaling if scaling in ("nearest", "bilinear") else None)


def _setting(con: Any, name: str) -> object:
    """A study setting as stored (JSON), or None when it is missing or not JSON."""
    row = config_value(con, name)
    try:
        return json.loads(row[0]) if row and isinstance(row[0], str) else None
    except ValueError:  # not JSON: recorded as unknown, the export itself does not need it
        return None


def _write_raters(path: Path, raters: dict[str, RaterTally]) -> None:
    cols = ["rater", "answers", "answers_2afc", "answers_jnd", "median_rt_ms", "sentinels", "sentinels_right",
            "sentinel_accuracy", "agreement_2afc", "agreement_jnd", "kept", "platform", "study_id", "session_id",
            "outcome"]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for r in raters.values():
            row = {**asdict(r), **asdict(r.origin)}
            w.writerow(csv_row(row[c] for c in cols))


def status_text(db: PathLike) -> str:
    """Progress per rater and per item, as plain text.

    Per rater: answered of assigned, sentinels answered right; per item: answers of the wanted judgments.
    """
    con = open_study(db)
    try:
        row = config_value(con, "judgments_per_item")
        want = json.loads(row[0]) if row else None
        if type(want) is not int or want < 1:
            raise DataError(f"study database {db}: config row 'judgments_per_item' is "
                            f"{repr(row[0] if row else None)[:60]}, not a positive integer")
        study = read_study(con, db)
        assigned = assigned_counts(con)
    finally:
        con.close()
    table = rater_table(study)
    lines = ["rater                 answered / assigned  sentinels right"]
    for rid, t in table.items():
        sent = f"{t.sentinels_right} of {t.sentinels}" if t.sentinels else "none yet"
        lines.append(f"{rid:<20}  {t.answers:>8} / {assigned.get(rid, 0):<8}  {sent}")
    per_item: dict[int, int] = defaultdict(int)
    for _, item, _, _ in study.answers:
        per_item[item] += 1
    rows = [(i, it.key, it.stem, per_item[i]) for i, it in study.items.items() if it.expected is None]
    full = sum(1 for r in rows if r[3] >= want)
    lines += ["", f"items: {full} of {len(rows)} have {want} judgments",
              "item  set                   stem  answers"]
    lines += [f"{i:>4}  {k:<20}  {s}  {n}/{want}" for i, k, s, n in rows]
    return "\n".join(lines)
