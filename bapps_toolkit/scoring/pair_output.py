"""The CSV of :mod:`.pairs`: its columns, rows written as they come, and resuming.

Columns: ``file`` (folders paired by name) or ``file0, file1``, then ``distance`` (or
``similarity`` with ``as_similarity``), ``unit``, ``direction`` (``lower = more similar`` /
``higher = more similar``), ``resized`` (0/1) and ``metric`` (its label, with the
``[UNCALIBRATED: …]`` tag when it applies). Numbers have 8 significant digits. File names and
the label are neutralised against spreadsheet formulas (:func:`~bapps_toolkit._io.csv_cell`: a
cell that begins with ``= + - @ '``, a tab or a carriage return gets a leading ``'``; drop one
leading ``'`` to read the raw value back, as resuming does).

Writing ``out``:

1. Rows go to the journal ``<out>.partial`` (a valid CSV with the same header) as each batch
   finishes, flushed at once: a run that is killed loses at most the batch in flight. A last
   line without its newline (a kill in mid-write) is dropped when the journal is reopened.
2. At the end the complete table is written to ``out`` atomically (temp + rename) in pair
   order, and the journal is deleted. ``out`` is never half-written.

Resuming: a run with the same ``out`` first reads the rows of ``out`` and of its journal, and
scores only the pairs not found there (a pair is identified by its file name(s)). The rows read
must come from the same metric label and the same columns (same form, same value kind):
anything else is an error naming the file and line, so distances of two metrics are never
mixed. (The metric's settings beyond its label, e.g. another linear-weight file under the same
name, cannot be told apart: use a fresh ``out`` when you change them.) Rows of pairs that are
no longer in the input are dropped when ``out`` is rewritten. A lock
(``<out>.lock``, removed at the end) keeps two runs from writing the same output.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from .._io import PathLike, atomic_write, csv_raw, csv_row
from ..errors import DataError, UsageError
from ..metrics.scale import Scale

Key = tuple[str, ...]


def journal_path(out: Path) -> Path:
    """Where the rows of an unfinished run of ``out`` are appended."""
    return out.with_name(out.name + ".partial")


class _CsvText:
    """Header and row text of a CSV table (cells neutralised against spreadsheet formulas)."""

    columns: list[str]

    def header_line(self) -> str:
        """The header row as CSV text."""
        return _csv_line(self.columns)

    def lines(self, rows: Iterable[list[str]]) -> str:
        """CSV text of ``rows``, each cell neutralised (:func:`~bapps_toolkit._io.csv_cell`)."""
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(csv_row(r) for r in rows)
        return buf.getvalue()


class PairTable(_CsvText):
    """Column layout and row text of one run."""

    def __init__(self, by_name: bool, label: str, scale: Scale, as_similarity: bool = False):
        if as_similarity and scale.to_similarity is None:
            from ..metrics.scale import similarity_names

            raise UsageError(f"as_similarity: metric {label} has no similarity form; those that have one: "
                             f"{similarity_names()}")
        self.key_columns = ["file"] if by_name else ["file0", "file1"]
        self.value_column = "similarity" if as_similarity else "distance"
        self.columns = self.key_columns + [self.value_column, "unit", "direction", "resized", "metric"]
        self.label, self.scale, self.as_similarity = label, scale, as_similarity
        self.unit, self.direction = scale.describe(as_similarity)

    def value(self, distance: float) -> float:
        """The number written for ``distance`` (its similarity form with ``as_similarity``)."""
        if self.as_similarity:
            if self.scale.to_similarity is None:
                raise UsageError("as_similarity: this metric has no similarity form")
            return float(self.scale.to_similarity(distance))
        return float(distance)

    def row(self, key: Key, distance: float, resized: bool) -> list[str]:
        """The cells of one pair's row."""
        return [*key, f"{self.value(distance):.8g}", self.unit, self.direction, str(int(resized)), self.label]

    def row_values(self, key: Key, values: Sequence[float], resized: bool) -> list[str]:
        """:meth:`row` of the one value in ``values`` (the interface :class:`WideTable` shares)."""
        return self.row(key, float(values[0]), resized)

    def read_values(self, path: Path, truncate: bool) -> dict[Key, list[float]]:
        """``{key: [distance]}`` of the rows of an earlier run's ``path``."""
        return {k: [d] for k, (d, _) in read_done(path, self, truncate=truncate).items()}

    def distance_of(self, text: str, where: str) -> float:
        """The distance a written value ``text`` stands for (converted back from the similarity form when used).

        Args:
            text: the value cell.
            where: the file and row (for the error).

        Returns:
            The distance.

        Raises:
            DataError: ``text`` is not a number.
            UsageError: the similarity form is asked of a metric without one.
        """
        try:
            v = float(text)
        except ValueError:
            raise DataError(f"{where}: {self.value_column} {text!r} is not a number") from None
        if self.as_similarity:
            if self.scale.from_similarity is None:
                raise UsageError("as_similarity: this metric has no similarity form")
            return float(self.scale.from_similarity(v))
        return v


class WideTable(_CsvText):
    """Column layout of a run of several metrics on one decode pass.

    The key column(s), one value column per metric, then ``resized``.

    Each value column is named ``LABEL [UNIT; DIRECTION]`` (the label carries the
    ``[UNCALIBRATED: …]`` tag when it applies), so every number says what it is. Resuming reads
    the rows back only when the columns are the same (same metrics, same order, same value kind).

    Args:
        by_name: pairs of two folders matched by file name (column ``file``; else ``file0, file1``).
        parts: one :class:`PairTable` per metric, in column order.
    """

    def __init__(self, by_name: bool, parts: Sequence[PairTable]) -> None:
        self.parts = list(parts)
        self.key_columns = ["file"] if by_name else ["file0", "file1"]
        self.value_columns = [f"{t.label} [{t.unit}; {t.direction}]" for t in self.parts]
        self.columns = self.key_columns + self.value_columns + ["resized"]

    def row_values(self, key: Key, values: Sequence[float], resized: bool) -> list[str]:
        """The cells of one pair's row: its key, one value per metric, resized."""
        cells = [f"{t.value(float(v)):.8g}" for t, v in zip(self.parts, values, strict=True)]
        return [*key, *cells, str(int(resized))]

    def read_values(self, path: Path, truncate: bool) -> dict[Key, list[float]]:
        """``{key: distances}`` of the rows of an earlier run's ``path``; errors name the line.

        Raises:
            DataError: other columns (other metrics or value kind), a short row, a cell that is
                not a number.
        """
        nk, done = len(self.key_columns), {}
        for where, row in _earlier_rows(path, truncate, self.columns, "other metrics or value kind"):
            done[tuple(row[:nk])] = [t.distance_of(v, where) for t, v in zip(self.parts, row[nk:-1], strict=True)]
        return done


#: A table of either kind: one metric (long rows) or several (one column each).
Table = PairTable | WideTable


def _csv_line(cells: Sequence[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(cells)
    return buf.getvalue()


def _complete_text(path: Path, truncate: bool) -> str:
    """The file's text up to its last newline.

    A torn last line is cut off, on disk too when ``truncate``.
    """
    data = path.read_bytes()
    cut = data.rfind(b"\n") + 1
    if cut < len(data) and truncate:
        with open(path, "rb+") as fh:
            fh.truncate(cut)
    try:
        return data[:cut].decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path} is not a CSV written by bapps score (not UTF-8 text)") from None


def _earlier_rows(path: Path, truncate: bool, columns: list[str], other: str) -> Iterator[tuple[str, list[str]]]:
    """``(where, cells)`` of each data row of an earlier run's ``path`` (cells un-neutralised).

    The header must be ``columns`` (``other`` says what a different header means) and each row's length is
    checked; a torn last line is dropped (:func:`_complete_text`).
    """
    text = _complete_text(path, truncate)
    if not text:
        return
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    if header != columns:
        raise DataError(f"{path}: columns {','.join(header)}, but this run writes {','.join(columns)} "
                        f"({other}): pass another output file or delete {path}")
    for line_no, cells in enumerate(reader, start=2):
        where = f"{path} line {line_no}"
        row = [csv_raw(c) for c in cells]
        if len(row) != len(columns):
            raise DataError(f"{where}: {len(row)} fields, expected {len(columns)}")
        yield where, row


def read_done(path: Path, table: PairTable, *, truncate: bool = False) -> dict[Key, tuple[float, bool]]:
    """``{key: (distance, resized)}`` of the rows of an earlier run's ``path``; errors name the line."""
    nk, done = len(table.key_columns), {}
    for where, row in _earlier_rows(path, truncate, table.columns, "another form or value kind"):
        if row[-1] != table.label:
            raise DataError(f"{where}: distances of metric {row[-1]!r}, but this run computes {table.label!r}: "
                            f"pass another output file or delete {path}")
        done[tuple(row[:nk])] = (table.distance_of(row[nk], where), row[-2] == "1")
    return done


class Journal:
    """Append-only rows of an unfinished run, flushed after every batch."""

    def __init__(self, path: Path, table: Table):
        self.path, self.table = path, table
        self.fh: IO[str] | None = None

    def __enter__(self) -> Journal:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        self.fh = open(self.path, "a", encoding="utf-8", newline="")
        if fresh:
            self.fh.write(self.table.header_line())
            self.fh.flush()
        return self

    def write(self, rows: Iterable[list[str]]) -> None:
        """Append ``rows`` to the file and flush."""
        if self.fh is None:
            raise RuntimeError("write() outside the writer's with-block")
        self.fh.write(self.table.lines(rows))
        self.fh.flush()

    def __exit__(self, *exc: object) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None

    def remove(self) -> None:
        """Delete the file, if it exists."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


@dataclasses.dataclass
class ScoredPairs:
    """Distances of pairs of image files, in pair order, with the metric that made them.

    ``by_name``: pairs of two folders matched by file name (CSV column ``file``; else ``file0,
    file1``). ``label`` carries the metric's ``[UNCALIBRATED: …]`` tag when ``calibrated`` is
    False. ``distances`` are always distances (lower = more similar, in :attr:`unit`);
    :meth:`rows` / the CSV hold the similarity form when ``as_similarity``.
    """

    files0: list[Path]
    files1: list[Path]
    distances: list[float]
    resized: list[bool]
    metric_id: str
    label: str
    calibrated: bool
    by_name: bool = False
    scale: Scale = dataclasses.field(default_factory=lambda: Scale("as defined by the metric"))
    as_similarity: bool = False

    @property
    def unit(self) -> str:
        """Unit of :attr:`distances`."""
        return self.scale.unit

    @property
    def direction(self) -> str:
        """Direction of the values (which way is more similar)."""
        return self.scale.describe(False)[1]

    def table(self) -> PairTable:
        """The :class:`PairTable` that lays out this result's CSV rows."""
        return PairTable(self.by_name, self.label, self.scale, self.as_similarity)

    @property
    def columns(self) -> list[str]:
        """The CSV column names."""
        return self.table().columns

    def rows(self) -> list[dict[str, Any]]:
        """One CSV row per pair (file names, value to 8 significant digits, unit, direction, …)."""
        t = self.table()
        out = []
        for p0, p1, d, resized in zip(self.files0, self.files1, self.distances, self.resized, strict=True):
            key = (p0.name,) if self.by_name else (p0.name, p1.name)
            out.append(dict(zip(t.columns, t.row(key, d, resized), strict=True)))
        return out

    def summary(self) -> str:
        """``<value>  <metric label>: <unit>, <direction>`` per pair (names first when several)."""
        t = self.table()
        lines = []
        for p0, p1, d in zip(self.files0, self.files1, self.distances, strict=True):
            names = "" if len(self.distances) == 1 else f"{p0.name} {p1.name}  "
            lines.append(f"{names}{t.value(d):.6g}  {t.label}: {t.unit}, {t.direction}")
        return "\n".join(lines)

    def to_csv(self, fh: IO[str]) -> None:
        """Write the CSV (header and :meth:`rows`) to an open text file."""
        t = self.table()
        fh.write(t.header_line())
        fh.write(t.lines([list(r.values()) for r in self.rows()]))

    def write_csv(self, path: PathLike) -> Path:
        """Write the CSV to ``path`` atomically."""
        with atomic_write(path, "w", encoding="utf-8", newline="") as fh:
            self.to_csv(fh)
        return Path(path)


@dataclasses.dataclass
class DistanceMatrix:
    """Symmetric ``[n, n]`` matrix of a folder's images (``files`` order).

    ``matrix`` is memory-mapped from ``path`` when written to a file. ``unit`` / ``direction`` describe its
    values.
    """

    files: list[Path]
    matrix: np.ndarray
    metric_id: str
    label: str
    calibrated: bool
    unit: str
    direction: str
    path: Path | None = None


def check_keys(keys: Sequence[tuple[str, ...]], out: Path | None) -> None:
    """Refuse two pairs of one key when ``out`` identifies pairs by their file names."""
    if out is not None and len(set(keys)) != len(keys):
        seen: set[tuple[str, ...]] = set()
        dup = next(k for k in keys if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise DataError(f"pairs are identified by file name in {out} (for resuming), but {'/'.join(dup)} "
                        "occurs twice: rename the files or score without an output file")


def load_done(out: Path, table: Table, keys: Sequence[tuple[str, ...]], dist: np.ndarray,
              have: np.ndarray) -> None:
    """Fill ``dist`` (``[n, metrics]``) / ``have`` from the rows of an earlier run.

    The rows come from ``out``, then from its journal.
    """
    index = {k: i for i, k in enumerate(keys)}
    for f, journal in ((out, False), (journal_path(out), True)):
        if f.exists():
            for key, values in table.read_values(f, journal).items():
                if key in index:
                    dist[index[key]], have[index[key]] = values, True


def write_table(out: Path, table: Table, keys: Sequence[tuple[str, ...]], dist: np.ndarray,
                resized: np.ndarray, sink: Journal | None) -> None:
    """The whole table to ``out`` atomically, in pair order; then the journal goes."""
    with atomic_write(out, "w", encoding="utf-8", newline="") as fh:
        fh.write(table.header_line())
        for s in range(0, len(keys), 4096):
            part = range(s, min(len(keys), s + 4096))
            fh.write(table.lines(table.row_values(keys[k], dist[k].tolist(), bool(resized[k])) for k in part))
    if sink is not None:
        sink.remove()
