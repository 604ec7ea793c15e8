"""Per-item metric distances given when a study is created, and the metric disagreement they yield.

Adaptive assignment weighs by that disagreement (no SQL, no HTTP).

The file is what ``bapps evaluate --save-distances`` writes, or the same written by hand:

* ``.csv``, a long table with a header: ``metric``, the set (``set_key`` such as
  ``2afc/val/own``, or ``mode``/``split``/``category``), ``stem``, and ``d0``, ``d1`` (2AFC) or
  ``d`` (JND); other columns are ignored;
* ``.npz`` with arrays ``<metric>|<set key>|stems`` and ``…|d0``, ``…|d1`` (2AFC) or ``…|d`` (JND),
  read without pickle.

Every metric must give a finite distance for every real item of the study (rows for other items
are ignored, so a file of a larger set serves); the disagreement per item is then computed as in
:mod:`.posterior`. The file is untrusted: its size, every row and every value are checked, and an
error names the file, row, column or item.
"""
from __future__ import annotations

import csv
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._io import PathLike
from ..data.cells import parse_finite
from ..errors import DataError
from .posterior import disagreement_2afc, disagreement_jnd

MAX_FILE_BYTES = 512 * 1024 * 1024
MAX_METRICS = 64
MAX_FIELD_CHARS = 300
FIELDS = {"2afc": ("d0", "d1"), "jnd": ("d",)}

ItemKey = tuple[str, str]  # (set key, stem)


@dataclass(frozen=True)
class MetricDistances:
    """Distances read from a file: ``values[metric][(set key, stem)]`` = ``(d0, d1)`` or ``(d,)``."""

    path: Path
    values: dict[str, dict[ItemKey, tuple[float, ...]]]


def _kind(key: str) -> str:
    return key.split("/", 1)[0]


def _add(values: dict[str, dict[ItemKey, tuple[float, ...]]], metric: str, item: ItemKey,
         dist: tuple[float, ...], where: str) -> None:
    if not metric or len(metric) > MAX_FIELD_CHARS:
        raise DataError(f"{where}: metric name empty or over {MAX_FIELD_CHARS} characters")
    per = values.setdefault(metric, {})
    if len(values) > MAX_METRICS:
        raise DataError(f"{where}: more than {MAX_METRICS} metrics")
    if item in per:
        raise DataError(f"{where}: a second row for metric {metric!r}, item {item[0]}/{item[1]}")
    per[item] = dist


def _csv_key(row: dict[str, str], where: str) -> str:
    if row.get("set_key"):
        return row["set_key"]
    parts = [row.get(c) or "" for c in ("mode", "split", "category")]
    if not all(parts):
        raise DataError(f"{where}: needs set_key or mode, split and category")
    return "/".join(parts)


def _read_csv(path: Path) -> dict[str, dict[ItemKey, tuple[float, ...]]]:
    try:
        return _parse_csv(path)
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    except csv.Error as exc:
        raise DataError(f"{path}: not a readable CSV ({exc})") from None


def _parse_csv(path: Path) -> dict[str, dict[ItemKey, tuple[float, ...]]]:
    values: dict[str, dict[ItemKey, tuple[float, ...]]] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        head = set(reader.fieldnames or ())
        if not {"metric", "stem"} <= head:
            raise DataError(f"{path}: a distances CSV needs the columns metric, stem and the set "
                            f"(set_key, or mode/split/category), got {sorted(head)[:10]}")
        for i, row in enumerate(reader, start=2):
            where = f"{path}, row {i}"
            if any(len(v or "") > MAX_FIELD_CHARS for v in row.values() if isinstance(v, str)):
                raise DataError(f"{where}: a field over {MAX_FIELD_CHARS} characters")
            key = _csv_key(row, where)
            kind = _kind(key)
            if kind not in FIELDS:
                raise DataError(f"{where}: set {key[:60]!r} is neither 2afc/... nor jnd/...")
            dist = tuple(parse_finite(row.get(f) or "", f"{where}, column {f}") for f in FIELDS[kind])
            _add(values, row["metric"], (key, row["stem"]), dist, where)
    return values


def _read_npz(path: Path) -> dict[str, dict[ItemKey, tuple[float, ...]]]:
    values: dict[str, dict[ItemKey, tuple[float, ...]]] = {}
    try:
        npz = np.load(path, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None
    with npz:
        groups = sorted({name.rsplit("|", 1)[0] for name in npz.files if name.endswith("|stems")})
        for group in groups:
            metric, _, key = group.partition("|")
            kind = _kind(key)
            if kind not in FIELDS:
                continue
            try:
                stems = [str(s) for s in npz[f"{group}|stems"]]
                arrays = [np.asarray(npz[f"{group}|{f}"], dtype=np.float64).reshape(-1) for f in FIELDS[kind]]
            except (KeyError, ValueError) as exc:
                raise DataError(f"{path}: arrays of {group!r} missing or not numeric ({exc})") from None
            if any(a.shape[0] != len(stems) for a in arrays) or not all(np.isfinite(a).all() for a in arrays):
                raise DataError(f"{path}: arrays of {group!r} differ in length from its stems or are not finite")
            for j, stem in enumerate(stems):
                _add(values, metric, (key, stem), tuple(float(a[j]) for a in arrays), f"{path}, {group}")
    return values


def read_distances(path: PathLike) -> MetricDistances:
    """Read a distances file (``.csv`` or ``.npz``, see the module docstring).

    Raises:
        DataError: missing, too large, malformed, or a value that is not a finite number.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"distances file {p} does not exist")
    if p.stat().st_size > MAX_FILE_BYTES:
        raise DataError(f"distances file {p} is over {MAX_FILE_BYTES // 2**20} MiB")
    suffix = p.suffix.lower()
    if suffix not in (".csv", ".npz"):
        raise DataError(f"distances file {p}: use a .csv or .npz file")
    values = _read_csv(p) if suffix == ".csv" else _read_npz(p)
    if not values:
        raise DataError(f"distances file {p} has no distances")
    return MetricDistances(p, values)


def item_disagreement(items: Iterable[ItemKey], dist: MetricDistances) -> dict[ItemKey, float]:
    """The metric disagreement of every item (2AFC by side votes, JND by spread of ranks).

    Args:
        items: ``(set key, stem)`` of the study's real items.
        dist: the distances read by :func:`read_distances`.

    Returns:
        Disagreement in ``[0, 1]`` per item.

    Raises:
        DataError: a metric lacks an item (names both).
    """
    out: dict[ItemKey, float] = {}
    metrics = sorted(dist.values)
    for kind, fields in FIELDS.items():
        keys = [it for it in items if _kind(it[0]) == kind]
        if not keys:
            continue
        table = np.empty((len(keys), len(metrics), len(fields)))
        for m, metric in enumerate(metrics):
            per = dist.values[metric]
            for i, it in enumerate(keys):
                if it not in per:
                    raise DataError(f"distances file {dist.path}: metric {metric!r} has no distance for item "
                                    f"{it[0]}/{it[1]} of the study")
                table[i, m] = per[it]
        d = disagreement_2afc(table[..., 0], table[..., 1]) if kind == "2afc" else disagreement_jnd(table[..., 0])
        out.update(zip(keys, (float(v) for v in d), strict=True))
    return out
