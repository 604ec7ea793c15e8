"""KADID-10k (Lin, Hosu & Saupe, QoMEX 2019).

81 references × 25 distortion types × 5 levels = 10,125 PNG images (512×384 ⚠). The column
``dmos`` is, despite its name, a quality score in [1, 5], **higher = better** (per the official
page). Layout::

    dmos.csv              header dist_img,ref_img,dmos,var   (var: a standard deviation)
    images/I01.png        references
    images/I01_01_01.png  distorted (ref_type_level)

The folder may be the ``kadid10k/`` folder itself or its parent. Extra columns are ignored.
"""
from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..._io import PathLike
from ...errors import DataError
from ..cells import parse_finite
from .base import CaseResolver, CorrelationSet, is_synthetic
from .defaults import CorrelationBenchmark
from .registry import Remote, register_benchmark

NAME = "kadid10k"
SIGNATURE = ("dmos.csv", "images")
_DIST = re.compile(r"^(I\d+)_(\d+)_(\d+)\.png$", re.IGNORECASE)
_COLUMNS = ("dist_img", "ref_img", "dmos")


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        cols = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in _COLUMNS if c not in cols]
        if missing:
            raise DataError(f"{path}: missing column(s) {', '.join(missing)} (header: {cols})")
        return [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]


def load(root: PathLike) -> CorrelationSet:
    """Load KADID-10k from the folder ``root`` (layout in the module docstring). A ``kadid10k/`` subfolder is accepted.

    Raises:
        DataError: a file or folder is missing or a label is malformed, naming it.
    """
    root = Path(root)
    if not (root / "dmos.csv").exists() and (root / "kadid10k").is_dir():
        root = root / "kadid10k"
    r = CaseResolver(root, NAME)
    labels = r.need("dmos.csv")
    r.need_dir("images")
    dist, ref, ref_id, score, types, levels = [], [], [], [], [], []
    for k, row in enumerate(_rows(labels), 2):
        where = f"{labels} line {k}"
        m = _DIST.match(row["dist_img"])
        if not m:
            raise DataError(f"{where}: dist_img {row['dist_img']!r} is not a name like I01_01_01.png")
        dist.append(r.need("images", row["dist_img"], what="distorted image"))
        ref.append(r.need("images", row["ref_img"], what="reference image"))
        ref_id.append(Path(row["ref_img"]).stem)
        score.append(parse_finite(row["dmos"], f"{where} column dmos"))
        types.append(m.group(2))
        levels.append(int(m.group(3)))
    return CorrelationSet(NAME, r.root, dist, ref, ref_id, np.array(score), types, np.array(levels),
                          higher_is_better=True, score_name="dmos column (a quality score, higher = better)",
                          synthetic=is_synthetic(r.root)).check()


@register_benchmark
class KADID10kBenchmark(CorrelationBenchmark):
    """KADID-10k in the benchmark registry (:mod:`.registry`)."""

    name = NAME
    title = "KADID-10k"
    description = "10,125 distorted images of 81 references, DMOS column = quality (higher = better)"
    citation = "Lin, Hosu & Saupe, KADID-10k: a large-scale artificially distorted IQA database, QoMEX 2019"
    signature = SIGNATURE
    nested: tuple[str, ...] = ("kadid10k",)
    sources: tuple[Remote, ...] = (
        Remote("https://datasets.vqa.mmsp-kn.de/archives/kadid10k.zip", "kadid10k.zip", True),)
    manual = ""
    after_download = ""

    def load(self, root: Path, options: Mapping[str, str]) -> CorrelationSet:
        """Read the set (:func:`load`)."""
        return load(root)
