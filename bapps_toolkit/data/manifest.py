"""CSV manifests: the researcher's own 2AFC triplets and JND pairs, packed like BAPPS.

BAPPS (Zhang et al., "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric",
CVPR 2018) stores its judgments as one ``.npy`` file per item; a manifest lists them as rows of
a CSV file instead (read with Python's :mod:`csv` module, UTF-8, an optional byte-order mark)::

    ref,p0,p1,judge                       # 2AFC: judge = fraction of raters preferring p1, [0, 1]
    ref,p0,p1,votes_p0,votes_p1           # 2AFC from vote counts
    p0,p1,same                            # JND: same = fraction of raters who said "same", [0, 1]
    p0,p1,votes_same,votes_different      # JND from vote counts

* Image paths are relative to the CSV's folder (absolute paths are taken as they are). Any
  format PIL reads; converted to RGB as BAPPS's patches are (:mod:`.images`).
* Vote counts are integers (ASCII digits) from 0 to :data:`MAX_VOTES` with at least one vote
  per row. The judgment is computed from
  them (``judge = votes_p1 / (votes_p0 + votes_p1)``, ``same = votes_same / (votes_same +
  votes_different)``) and the total is kept in the packed file as the array ``n_votes``. A CSV
  may give both the fraction and the counts: then they must agree within :data:`AGREE` (a
  fraction written to three decimals) and the packed value is the one computed from the counts.
* Optional columns: ``split`` (2AFC ``val`` or ``train``; JND ``val``; default ``val``),
  ``category`` (default ``own``; a safe name, see
  :func:`~bapps_toolkit.data.layout.valid_category`) and ``id`` (the item's stem: 1-128 of
  ``A-Z a-z 0-9 _ . -`` starting with a letter, digit or ``_``, unique within its set ignoring
  case, see :mod:`.ids`; default the data row number written with six digits, ``000001``).
  Other columns are ignored (keep your own metadata there).
* The CSVs that ``bapps judge export --format csv`` writes are read as they are: their columns
  ``n_p0,n_p1`` / ``n_same,n_different`` are taken as the vote counts, ``stem`` as ``id`` and
  ``set_key`` (``2afc/val/traditional``) as split and category (see :data:`ALIASES`).
* One CSV holds one kind: a ``ref`` column makes it 2AFC, otherwise it is JND. Give several CSVs
  (``bapps pack a.csv b.csv out.h5``) to pack both kinds or more sets; one set (split/category)
  comes from one CSV. Items keep their row order.
* ``judged=False`` (``bapps judge create``: a set still to be judged) reads the image columns
  only: ``ref,p0,p1`` is 2AFC, ``p0,p1`` JND; judgment and vote columns are not required and,
  if present, ignored (the sets' judgments are NaN).
* A ``SYNTHETIC.txt`` file next to a CSV marks its judgments as simulated (as ``bapps
  make-mini`` marks its folder): the packed file and every report then say SYNTHETIC.

Every bad input is a :class:`~bapps_toolkit.errors.DataError` naming the CSV, the data row
(1-based, the header not counted) with its line, and the field: a missing image, an image path
the file system refuses (too long, a link loop, a NUL character), a judgment outside [0, 1], a
negative, non-integer, too large or all-zero vote count, an id that is not a valid item id, a
duplicate row (the same images twice in one set, compared as resolved paths: ``a.png``,
``./a.png`` and a link to it are one image) or id (compared ignoring case), images of mixed or
non-square sizes without ``--size`` (naming two files and their sizes), a CSV without the
required columns (listing those present), a fraction that disagrees with its counts. All rows
and image headers are checked before anything is written; an image that fails to decode later
(cut short after its header) is reported with the row and field that named it
(:meth:`Manifest.blame`, used by ``bapps pack`` and ``bapps judge create``).
"""
from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._io import PathLike
from ..errors import DataError
from .cells import parse_finite
from .ids import check_id, id_key, shown
from .images import ImageFileError, check_shared_square, image_size
from .layout import SPLITS, SetFiles, folders_of, order_keys, valid_category

#: Largest difference allowed between a given fraction and the one its vote counts give.
AGREE = 1e-3
#: Largest vote count accepted in one cell (the packed file keeps counts as int64).
MAX_VOTES = 10**9
_INTEGER = re.compile(r"[+-]?[0-9]+")
DEFAULT_SPLIT = "val"
DEFAULT_CATEGORY = "own"
#: Per kind: (image columns, fraction column, vote columns ``(for the fraction's side last)``).
COLUMNS: dict[str, tuple[tuple[str, ...], str, tuple[str, str]]] = {
    "2afc": (("ref", "p0", "p1"), "judge", ("votes_p0", "votes_p1")),
    "jnd": (("p0", "p1"), "same", ("votes_different", "votes_same")),
}


#: Other names accepted for a column when the column itself is absent (``bapps judge export``).
ALIASES = {"n_p0": "votes_p0", "n_p1": "votes_p1", "n_same": "votes_same",
           "n_different": "votes_different", "stem": "id"}


@dataclass
class Manifest:
    """The sets of one or more manifests, checked and ready to pack."""

    sets: list[SetFiles]
    size: int
    synthetic: bool
    source: str
    #: Per image path (as in :attr:`sets`): the first row and field naming it.
    used_at: dict[Path, str] = field(default_factory=dict)

    def blame(self, exc: DataError) -> DataError:
        """``exc`` with the manifest row and field that named its image in front.

        This is for an :class:`~bapps_toolkit.data.images.ImageFileError` raised while the sets
        are decoded; any other error is returned as it is.

        Example:
            >>> try:
            ...     decode_set(man.sets[0])
            ... except DataError as exc:
            ...     raise man.blame(exc) from None
        """
        at = self.used_at.get(Path(exc.path)) if isinstance(exc, ImageFileError) else None
        return DataError(f"{at}: {exc}") if at else exc


@dataclass
class _Rows:
    """The rows of one set while a CSV is read."""

    csv: Path
    stems: list[str] = field(default_factory=list)
    files: dict[str, list[Path]] = field(default_factory=dict)
    judgments: list[float] = field(default_factory=list)
    votes: list[int] = field(default_factory=list)
    seen: dict[tuple[str | Path, ...], int] = field(default_factory=dict)
    where: list[str] = field(default_factory=list)


def read_manifests(paths: Sequence[PathLike], *, size: int | None = None, judged: bool = True) -> Manifest:
    """Read and check CSV manifests (format in the module docstring).

    Every image header is read (existence, size) but nothing is decoded. ``size=None``: every image
    must be square and of one size, which becomes the sets' patch side; otherwise the sets get
    ``size`` and the resize/crop rule of :mod:`.images` applies at packing. ``judged=False``: image
    columns only (an unjudged set, see the module docstring).
    """
    sets: dict[str, _Rows] = {}
    synthetic = False
    csvs = [Path(p) for p in paths]
    if not csvs:
        raise DataError("no CSV manifest given")
    for path in csvs:
        for key, rows in _read_csv(path, judged).items():
            if key in sets:
                raise DataError(f"set {key} is defined by two manifests, {sets[key].csv} and {path}; "
                                "give each set (split/category) in one CSV")
            sets[key] = rows
        synthetic = synthetic or (path.parent / "SYNTHETIC.txt").is_file()
    sizes = _check_sizes(sets, size)
    side = size if size is not None else next(iter(sizes.values()))[0]
    out: list[SetFiles] = []
    used_at: dict[Path, str] = {}
    for key in order_keys(sets):
        r = sets[key]
        out.append(SetFiles(key=key, folder=r.csv.parent, stems=r.stems, files=r.files,
                            judgments=np.asarray(r.judgments, dtype=np.float32),
                            n_votes=np.asarray(r.votes, dtype=np.int64) if r.votes else None))
        for col, files in r.files.items():
            for where, f in zip(r.where, files, strict=True):
                used_at.setdefault(f, f"{where}, field {col!r}")
    return Manifest(out, int(side), synthetic, ", ".join(str(p.resolve()) for p in csvs), used_at)


def _open_rows(path: Path) -> tuple[list[str], list[tuple[int, int, dict[str, str]]]]:
    """Header and ``(data row, line, values)`` of a CSV; blank lines are skipped."""
    if not path.is_file():
        raise DataError(f"manifest {path} does not exist" if not path.exists()
                        else f"manifest {path} is not a file")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise DataError(f"manifest {path} is empty (expected a header row such as ref,p0,p1,judge)")
            names = [h.strip() for h in header]
            names = [ALIASES[n] if n in ALIASES and ALIASES[n] not in names else n for n in names]
            dup = sorted({n for n in names if names.count(n) > 1 and n})
            if dup:
                raise DataError(f"manifest {path}: column {dup[0]!r} appears twice in the header")
            rows: list[tuple[int, int, dict[str, str]]] = []
            for rec in reader:
                if not any(c.strip() for c in rec):
                    continue
                if len(rec) != len(names):
                    raise DataError(f"manifest {path}: data row {len(rows) + 1} (line {reader.line_num}) "
                                    f"has {len(rec)} fields, the header {len(names)}")
                rows.append((len(rows) + 1, reader.line_num, dict(zip(names, (c.strip() for c in rec),
                                                                    strict=True))))
    except UnicodeDecodeError as exc:
        raise DataError(f"manifest {path} is not UTF-8 text ({exc})") from None
    except csv.Error as exc:
        raise DataError(f"manifest {path}: not a readable CSV file ({exc})") from None
    return names, rows


def detect_kind(path: PathLike, columns: Sequence[str], judged: bool = True) -> str:
    """``"2afc"`` or ``"jnd"`` from a manifest's header; an error lists the columns present.

    ``judged=False`` needs the image columns only.
    """
    cols = set(columns)
    kind = "2afc" if "ref" in cols else "jnd"
    if not judged:
        absent = [c for c in COLUMNS[kind][0] if c not in cols]
        if absent:
            raise DataError(f"manifest {path}: missing column(s) {', '.join(absent)} (an unjudged set "
                            f"needs ref,p0,p1 for 2AFC or p0,p1 for JND); present columns: "
                            f"{', '.join(columns) or 'none'}")
        return kind
    if kind == "jnd" and not cols & {"same", "votes_same", "votes_different"}:
        raise DataError(
            f"manifest {path}: cannot tell its kind: a 2AFC manifest needs ref,p0,p1 and judge "
            "(or votes_p0,votes_p1), a JND manifest p0,p1 and same (or votes_same,votes_different); "
            f"present columns: {', '.join(columns) or 'none'}")
    images, frac, votes = COLUMNS[kind]
    missing = [c for c in images if c not in cols]
    have = [v for v in votes if v in cols]
    if have and len(have) < len(votes):
        missing += [v for v in votes if v not in cols]
    elif not have and frac not in cols:
        missing.append(f"{frac} (or {','.join(sorted(votes))})")
    if missing:
        raise DataError(f"manifest {path} ({kind.upper()}): missing column(s) {', '.join(missing)}; "
                        f"present columns: {', '.join(columns) or 'none'}")
    return kind


def _read_csv(path: Path, judged: bool = True) -> dict[str, _Rows]:
    names, rows = _open_rows(path)
    kind = detect_kind(path, names, judged)
    if not rows:
        raise DataError(f"manifest {path} has a header but no data rows")
    images, frac, votes = COLUMNS[kind]
    has_frac, has_votes = frac in names, set(votes) <= set(names)
    sets: dict[str, _Rows] = {}
    for i, line, rec in rows:
        where = f"manifest {path}: data row {i} (line {line})"
        split, cat = _split_category(where, kind, rec)
        if split not in SPLITS[kind]:
            raise DataError(f"{where}, field 'split': {split!r} is not a {kind.upper()} split "
                            f"({', '.join(SPLITS[kind])})")
        if not valid_category(cat):
            raise DataError(f"{where}, field 'category': {cat!r} is not a valid category name "
                            "(1-64 of A-Z a-z 0-9 _ -, starting with a letter or digit)")
        key = f"{kind}/{split}/{cat}"
        r = sets.setdefault(key, _Rows(path, files={f: [] for f in folders_of(key)[:-1]}))
        found = [_image_path(path, where, rec, col) for col in images]
        files, same = [f for f, _ in found], tuple(real for _, real in found)
        value, n = (_judgment(where, rec, frac if has_frac else None, votes if has_votes else None)
                    if judged else (math.nan, None))
        stem = check_id(rec["id"], f"{where}, field 'id'") if rec.get("id") else f"{i:06d}"
        dup = r.seen.get(same) or r.seen.get(("id", id_key(stem)))
        if dup is not None:
            what, how = (("the same images", "image paths compared after resolving links") if same in r.seen
                         else (f"the same id {stem!r}", "ids compared ignoring case"))
            raise DataError(f"{where}: duplicate row: {what} as data row {dup} (set {key}; {how})")
        r.seen[same] = r.seen[("id", id_key(stem))] = i
        for col, f in zip(images, files, strict=True):
            r.files[col].append(f)
        r.stems.append(stem)
        r.judgments.append(value)
        r.where.append(where)
        if n is not None:
            r.votes.append(n)
    return sets


def _split_category(where: str, kind: str, rec: dict[str, str]) -> tuple[str, str]:
    """The row's split and category: its columns, else its ``set_key``, else the defaults."""
    key = rec.get("set_key", "")
    if key and not (rec.get("split") or rec.get("category")):
        parts = key.split("/")
        if len(parts) != 3 or parts[0] != kind:
            raise DataError(f"{where}, field 'set_key': {key!r} is not a {kind.upper()} set key "
                            f"such as '{kind}/val/own'")
        return parts[1], parts[2]
    return rec.get("split") or DEFAULT_SPLIT, rec.get("category") or DEFAULT_CATEGORY


def _image_path(csv_path: Path, where: str, rec: dict[str, str], col: str) -> tuple[Path, Path]:
    """The image a row's field names (as written, joined to the CSV's folder) and its resolved form.

    The resolved form (symbolic links followed) is what duplicates are compared by.
    """
    text = rec.get(col, "")
    if not text:
        raise DataError(f"{where}, field {col!r}: empty (an image path is required)")
    if "\0" in text:
        raise DataError(f"{where}, field {col!r}: {shown(text)} holds a NUL character (not a path)")
    p = Path(text)
    full = p if p.is_absolute() else csv_path.parent / p
    try:
        if not full.is_file():
            name = str(full) if len(str(full)) <= 200 else shown(str(full), 200)
            raise DataError(f"{where}, field {col!r}: image {name} does not exist"
                            + (" (it is a folder)" if full.is_dir() else ""))
        return full, full.resolve(strict=True)
    except (OSError, RuntimeError) as exc:  # a name too long for the file system, a link loop, no access
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise DataError(f"{where}, field {col!r}: cannot use image path {shown(text, 200)} ({reason}; "
                        f"{len(os.fsencode(text))} bytes)") from None


def _fraction(where: str, rec: dict[str, str], col: str) -> float:
    text = rec.get(col, "")
    v = parse_finite(text, f"{where}, field {col!r}")
    if v < 0.0 or v > 1.0:
        raise DataError(f"{where}, field {col!r}: {text} is outside [0, 1] (a fraction of raters)")
    return v


def _plain(text: str) -> str:
    """A cell as written when it is short, else cut (:func:`~bapps_toolkit.data.ids.shown`)."""
    return text if len(text) <= 60 and text.isprintable() else shown(text)


def _count(where: str, rec: dict[str, str], col: str) -> int:
    text = rec.get(col, "")
    if not _INTEGER.fullmatch(text):
        try:
            float(text)
        except ValueError:
            raise DataError(f"{where}, field {col!r}: {shown(text)} is not a number") from None
        raise DataError(f"{where}, field {col!r}: {_plain(text)} is not an integer vote count") from None
    if text.startswith("-") and text.strip("-0"):
        raise DataError(f"{where}, field {col!r}: {text} is negative (a vote count is >= 0)")
    digits = text.lstrip("+-").lstrip("0")
    if len(digits) > len(str(MAX_VOTES)) or int(digits or 0) > MAX_VOTES:
        raise DataError(f"{where}, field {col!r}: {_plain(text)} is too large (a vote count is at most "
                        f"{MAX_VOTES})")
    return int(text)


def _judgment(where: str, rec: dict[str, str], frac: str | None,
              votes: tuple[str, str] | None) -> tuple[float, int | None]:
    """``(fraction, total votes or None)`` of one row (rules in the module docstring)."""
    value = _fraction(where, rec, frac) if frac is not None else None
    if votes is None:
        if value is None:
            raise DataError(f"{where}: neither a judge fraction nor votes")
        return value, None
    other, side = (_count(where, rec, c) for c in votes)
    total = other + side
    if total == 0:
        raise DataError(f"{where}, fields {votes[0]!r},{votes[1]!r}: no votes (both 0); a row "
                        "needs at least one rater")
    computed = side / total
    if value is not None and abs(value - computed) > AGREE:
        raise DataError(f"{where}: field {frac!r} = {rec.get(frac or '')} disagrees with the vote counts "
                        f"({votes[1]} {side} of {total} = {computed:.4f}); give one or make them agree")
    return computed, total


def _check_sizes(sets: dict[str, _Rows], size: int | None) -> dict[Path, tuple[int, int]]:
    """Read every image's header; without ``size`` all must be square and of one size."""
    sizes: dict[Path, tuple[int, int]] = {}
    first: tuple[Path, tuple[int, int]] | None = None
    for key in order_keys(sets):
        r = sets[key]
        for j in range(len(r.stems)):
            for col, files in r.files.items():
                f = files[j]
                if f in sizes:
                    continue
                try:
                    wh = sizes[f] = image_size(f)
                except DataError as exc:
                    raise DataError(f"{r.where[j]}, field {col!r}: {exc}") from None
                if size is None:
                    first = check_shared_square(f, wh, first, f"{r.where[j]}, field {col!r}")
    return sizes
