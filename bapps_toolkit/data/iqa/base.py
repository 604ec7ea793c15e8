"""The shared design of the human-judgment benchmark loaders (one module per data set).

Every loader is a function ``load(root, **options)`` that reads a data set in the layout its
archives unpack to, checks that layout, and returns plain records:

* correlation sets (TID2013, KADID-10k, PIPAL, LIVE, CSIQ, PieAPP test): a
  :class:`CorrelationSet` — one row per distorted image with its reference, its subjective score,
  the score's direction, the distortion type and level;
* 2AFC sets (NIGHTS, PieAPP train/val pairs): :class:`TwoAFCFileSet` — one row per triplet with
  ``judge`` = the fraction of raters who found ``p1`` closer to the reference (the BAPPS
  convention of :mod:`bapps_toolkit.scores`).

Paths are resolved case-insensitively (:class:`CaseResolver`) where the sets are known to mix
cases (TID2013's ``i25.bmp`` next to ``I01.BMP``; CSIQ folders). A tree that does not match a
layout raises :class:`~bapps_toolkit.errors.DataError` naming the missing file or folder.

A folder holding ``SYNTHETIC.txt`` (as the replica sets that the tests build, and the BAPPS mini
set) is marked ``synthetic``; every report built on it says so.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..._io import PathLike
from ...errors import DataError

SYNTHETIC_FILE = "SYNTHETIC.txt"


@dataclass
class CorrelationSet:
    """One correlation benchmark (or one split of it), a row per distorted image.

    ``higher_is_better``: ``True`` for a MOS (quality), ``False`` for a DMOS / error score.
    ``level`` is ``-1`` where a set has no levels. ``score_name`` says which score was read
    (e.g. ``"dmos_new (realigned)"``).
    """

    name: str
    root: Path
    dist: list[Path]
    ref: list[Path]
    ref_id: list[str]
    score: np.ndarray
    dist_type: list[str]
    level: np.ndarray
    higher_is_better: bool
    score_name: str
    synthetic: bool = False
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.dist)

    def check(self) -> CorrelationSet:
        """Check that every per-item array has one entry per image and the set is not empty.

        Returns:
            The set itself.

        Raises:
            DataError: naming the set, its root and the array at fault.
        """
        n = len(self.dist)
        for what, v in (("ref", self.ref), ("ref_id", self.ref_id), ("score", self.score),
                        ("dist_type", self.dist_type), ("level", self.level)):
            if len(v) != n:
                raise DataError(f"{self.name} at {self.root}: {len(v)} {what} entries for {n} images")
        if n == 0:
            raise DataError(f"{self.name} at {self.root}: no labelled images found")
        if not np.all(np.isfinite(self.score)):
            raise DataError(f"{self.name} at {self.root}: non-finite subjective scores")
        return self


@dataclass
class TwoAFCFileSet:
    """One 2AFC split on disk: ``judge[i]`` = fraction preferring ``p1[i]`` as closer to ``ref[i]``."""

    name: str
    split: str
    root: Path
    ref: list[Path]
    p0: list[Path]
    p1: list[Path]
    judge: np.ndarray
    synthetic: bool = False
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ref)


class CaseResolver:
    """Find ``a/b/c`` under ``root`` whatever the case of each part (exact match preferred).

    Folder listings are cached, so resolving thousands of names costs one ``listdir`` per folder.
    """

    def __init__(self, root: PathLike, set_name: str):
        self.root = Path(root)
        self.set_name = set_name
        self._cache: dict[Path, dict[str, str]] = {}

    def _listing(self, folder: Path) -> dict[str, str]:
        if folder not in self._cache:
            try:
                names = os.listdir(folder)
            except OSError:
                names = []
            table: dict[str, str] = {}
            for n in sorted(names):
                table.setdefault(n.lower(), n)
            self._cache[folder] = table
        return self._cache[folder]

    def find(self, *parts: str) -> Path | None:
        """The path ``parts`` below the root, each part matched case-insensitively, or ``None``.

        Raises:
            DataError: a part is absolute, empty, ``.``/``..`` or holds a path separator.
        """
        cur = self.root
        for part in parts:
            if part in ("", ".", "..") or "/" in part or "\\" in part or os.path.isabs(part):
                raise DataError(f"{self.set_name}: refusing path part {part!r} of "
                                f"{'/'.join(parts)!r} (absolute, empty or climbing out of {self.root})")
            if (cur / part).exists():
                cur = cur / part
                continue
            hit = self._listing(cur).get(part.lower())
            if hit is None:
                return None
            cur = cur / hit
        return cur

    def need(self, *parts: str, what: str = "file") -> Path:
        """Like :meth:`find`, but a missing path raises a :class:`DataError` naming it."""
        p = self.find(*parts)
        if p is None:
            raise DataError(f"{self.set_name}: {what} {self.root.joinpath(*parts)} is missing "
                            f"(looked case-insensitively)")
        return p

    def need_dir(self, *parts: str) -> Path:
        """Like :meth:`need`, for a folder.

        Raises:
            DataError: the folder is missing or is not a folder.
        """
        p = self.need(*parts, what="folder")
        if not p.is_dir():
            raise DataError(f"{self.set_name}: {p} should be a folder")
        return p


def is_synthetic(root: PathLike) -> bool:
    """Whether the set folder ``root`` is a synthetic replica (holds the synthetic-data note)."""
    return (Path(root) / SYNTHETIC_FILE).is_file()


def read_lines(path: Path, set_name: str) -> list[str]:
    """Non-blank lines of a text label file (UTF-8, BOM and CR tolerated)."""
    try:
        text = path.read_text(encoding="utf-8-sig", errors="strict")
    except UnicodeDecodeError:
        text = path.read_text(encoding="latin-1")
    except OSError as exc:
        raise DataError(f"{set_name}: cannot read {path}: {exc}") from None
    return [ln.strip() for ln in text.splitlines() if ln.strip()]
