"""NIGHTS (Fu, Tamir, Sundaram et al., DreamSim, NeurIPS 2023): a 2AFC set of synthetic images.

Layout (``nights.zip`` or the chunked archives, unpacked)::

    data.csv                    id,left_vote,right_vote,votes,ref_path,left_path,right_path,split,is_imagenet,...
    ref/<000-099>/<000-999>.png
    distort/<000-099>/<n>_0.png, <n>_1.png

Paths in ``data.csv`` are relative to the root. Columns are read by name; a file without those
names is read by DreamSim's positions (0 id, 2 right_vote, 4 ref_path, 5 left_path, 6 right_path)
— the positions past 6 and the header text are unconfirmed ⚠. Rows with ``votes < 6`` are
dropped (DreamSim's rule; the released file may hold none ⚠). ``p0`` = left, ``p1`` = right,
``judge`` = ``right_vote`` (1 = right more similar; a count larger than 1 is divided by
``votes`` ⚠).

Splits: ``train``, ``val``, ``test``, and the test's parts ``test_imagenet`` /
``test_no_imagenet`` (``is_imagenet`` True/False). The JND votes (``jnd_votes.csv``) are not read:
their format is unconfirmed ⚠.
"""
from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..._io import PathLike
from ...errors import DataError
from ..cells import parse_finite
from .base import CaseResolver, TwoAFCFileSet, is_synthetic
from .defaults import TwoAFCBenchmark
from .registry import PackRequest, PackSummary, Remote, register_benchmark

NAME = "nights"
SIGNATURE = ("data.csv", "ref", "distort")
SPLITS = ("train", "val", "test", "test_imagenet", "test_no_imagenet")
MIN_VOTES = 6
_POSITIONS = {"id": 0, "right_vote": 2, "ref_path": 4, "left_path": 5, "right_path": 6}


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [[c.strip() for c in row] for row in csv.reader(f)]
    if not rows:
        raise DataError(f"{NAME}: {path} is empty")
    header = [h.lower() for h in rows[0]]
    if all(c in header for c in ("right_vote", "ref_path", "left_path", "right_path")):
        return [dict(zip(header, r, strict=False)) for r in rows[1:] if any(r)]
    return [{k: r[i] for k, i in _POSITIONS.items()} for r in rows[1:] if len(r) > 6]


def _in_split(row: dict[str, str], split: str, where: str) -> bool:
    if "split" not in row:
        raise DataError(f"{where}: no 'split' column, cannot select {split}")
    base = row["split"].lower()
    if split in ("train", "val", "test"):
        return base == split
    if "is_imagenet" not in row:
        raise DataError(f"{where}: no 'is_imagenet' column, cannot select {split}")
    imagenet = row["is_imagenet"].lower() in ("true", "1")
    return base == "test" and imagenet == (split == "test_imagenet")


def load(root: PathLike, split: str = "test") -> TwoAFCFileSet:
    """Load the NIGHTS ``split`` from the folder ``root`` (layout in the module docstring).

    A ``nights/`` subfolder is accepted.

    Args:
        root: the set folder.
        split: one of :data:`SPLITS`.

    Raises:
        DataError: an unknown ``split``, or a file or folder is missing or malformed.
    """
    if split not in SPLITS:
        raise DataError(f"{NAME}: unknown split {split!r}; use one of {', '.join(SPLITS)}")
    root = Path(root)
    if not (root / "data.csv").exists() and (root / "nights").is_dir():
        root = root / "nights"
    r = CaseResolver(root, NAME)
    labels = r.need("data.csv")
    r.need_dir("ref")
    r.need_dir("distort")
    refs, p0, p1, judge = [], [], [], []
    for k, row in enumerate(_rows(labels), 2):
        where = f"{labels} line {k}"
        if not _in_split(row, split, where):
            continue
        votes = parse_finite(row["votes"], where) if row.get("votes") else None
        if votes is not None and votes < MIN_VOTES:
            continue
        p = parse_finite(row["right_vote"], f"{where} right_vote")
        if p > 1 and votes:
            p = p / votes
        if not 0 <= p <= 1:
            raise DataError(f"{where}: right_vote {row['right_vote']} is not a fraction or a vote count")
        refs.append(r.need(*Path(row["ref_path"]).parts, what="reference image"))
        p0.append(r.need(*Path(row["left_path"]).parts, what="left image"))
        p1.append(r.need(*Path(row["right_path"]).parts, what="right image"))
        judge.append(p)
    if not refs:
        raise DataError(f"{NAME}: no rows of split {split} with votes >= {MIN_VOTES} in {labels}")
    return TwoAFCFileSet(NAME, split, r.root, refs, p0, p1, np.array(judge), synthetic=is_synthetic(r.root))


@register_benchmark
class NIGHTSBenchmark(TwoAFCBenchmark):
    """NIGHTS in the benchmark registry (:mod:`.registry`): val, the two test parts and their total."""

    name = NAME
    title = "NIGHTS"
    description = "2AFC triplets of synthetic images (DreamSim), scored at 224x224"
    citation = ("Fu, Tamir, Sundaram et al., DreamSim: learning new dimensions of human visual "
                "similarity using synthetic data, NeurIPS 2023")
    signature = SIGNATURE
    nested: tuple[str, ...] = ("nights",)
    sources: tuple[Remote, ...] = (Remote("https://data.csail.mit.edu/nights/nights.zip", "nights.zip", True),)
    parts: tuple[str, ...] = ("val", "test_imagenet", "test_no_imagenet")
    joined: Mapping[str, tuple[str, ...]] = {"test": ("test_imagenet", "test_no_imagenet")}

    def load(self, root: Path, options: Mapping[str, str]) -> TwoAFCFileSet:
        """Read the part ``options["split"]`` (default ``test``; :func:`load`)."""
        return load(root, options.get("split", "test"))

    def pack(self, root: Path, out: Path, request: PackRequest) -> PackSummary:
        """Pack every part in the BAPPS format at ``request.size`` (default 224; :mod:`.pack_2afc`)."""
        from .pack_2afc import NIGHTS_SIZE, pack_nights, summary_of

        if request.pairs:
            raise DataError(f"--pairs: only PieAPP has labelled pairs to pack as 2AFC, not {self.name}")
        path, notes = pack_nights(root, out, size=NIGHTS_SIZE if request.size is None else request.size,
                                  force=request.force, workers=request.workers, progress=request.progress)
        return summary_of(self.name, path, notes)
