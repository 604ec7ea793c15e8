"""PIPAL public training set (Jinjin et al., ECCV 2020; NTIRE 2021 IQA challenge).

200 references, 23,200 distorted BMP images (116 per reference), Elo scores, **higher = better**.
Only the training labels are public. Layouts accepted (all seen in the wild)::

    Train_Ref/A0001.bmp              or Reference_train/A0001.bmp
    Distortion_1..4/A0001_00_00.bmp  or Distortion/Distortion_k/… or Train_Dist/…
    Train_Label/A0001.txt            or MOS_Scores_train/A0001.txt
                                        (lines "A0001_00_00.bmp,1520.0648", no header)

The middle field of a name (``00``–``06``) is used as the distortion "type"; its meaning is
unpublished ⚠ (PIPAL issue #3), so per-type figures on PIPAL are per *group*.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..._io import PathLike
from ...errors import DataError
from ..cells import parse_finite
from .base import CaseResolver, CorrelationSet, is_synthetic, read_lines
from .defaults import CorrelationBenchmark
from .registry import Remote, register_benchmark

NAME = "pipal"
SIGNATURE = ("Train_Label",)
_DIST = re.compile(r"^(A\d{4})_(\d{2})_(\d{2})\.bmp$", re.IGNORECASE)


def _dist_folders(r: CaseResolver) -> list[Path]:
    found = [p for p in (r.find(f"Distortion_{k}") for k in range(1, 5)) if p is not None]
    nested = r.find("Distortion")
    if nested is not None and nested.is_dir():
        found += sorted(p for p in nested.iterdir() if p.is_dir())
    merged = r.find("Train_Dist")
    if merged is not None:
        found.append(merged)
    if not found:
        raise DataError(f"{NAME}: no distortion folder under {r.root} (looked for Distortion_1..4/, "
                        "Distortion/Distortion_k/ and Train_Dist/)")
    return found


def _index(folders: list[Path]) -> dict[str, Path]:
    index: dict[str, Path] = {}
    for folder in folders:
        for p in folder.iterdir():
            index.setdefault(p.name.lower(), p)
    return index


def load(root: PathLike) -> CorrelationSet:
    """Load the PIPAL training set from the folder ``root`` (layout in the module docstring).

    Raises:
        DataError: a file or folder is missing or a label is malformed, naming it.
    """
    r = CaseResolver(root, NAME)
    labels = r.find("Train_Label") or r.find("MOS_Scores_train")
    if labels is None:
        raise DataError(f"{NAME}: label folder {r.root / 'Train_Label'} is missing (also looked for MOS_Scores_train/)")
    ref_dir = r.find("Train_Ref") or r.find("Reference_train")
    if ref_dir is None:
        raise DataError(f"{NAME}: reference folder {r.root / 'Train_Ref'} is missing "
                        "(also looked for Reference_train/)")
    index = _index(_dist_folders(r))
    refs = CaseResolver(ref_dir, NAME)
    dist, ref, ref_id, score, types, levels = [], [], [], [], [], []
    for txt in sorted(labels.glob("*.txt")):
        for k, line in enumerate(read_lines(txt, NAME), 1):
            where = f"{txt} line {k}"
            parts = [p.strip() for p in line.split(",")]
            m = _DIST.match(parts[0]) if len(parts) == 2 else None
            if not m:
                raise DataError(f"{where}: expected 'A0001_00_00.bmp,1520.06', got {line!r}")
            path = index.get(parts[0].lower())
            if path is None:
                raise DataError(f"{where}: distorted image {parts[0]} is in no distortion folder")
            dist.append(path)
            ref.append(refs.need(f"{m.group(1)}.bmp", what="reference image"))
            ref_id.append(m.group(1))
            score.append(parse_finite(parts[1], where))
            types.append(m.group(2))
            levels.append(int(m.group(3)))
    if not dist:
        raise DataError(f"{NAME}: no label files (*.txt) in {labels}")
    return CorrelationSet(NAME, r.root, dist, ref, ref_id, np.array(score), types, np.array(levels),
                          higher_is_better=True, score_name="Elo (Train_Label)",
                          synthetic=is_synthetic(r.root),
                          notes=["PIPAL: public training labels only; 'type' = name group 00-06 (meaning unpublished)"]
                          ).check()


@register_benchmark
class PIPALBenchmark(CorrelationBenchmark):
    """PIPAL in the benchmark registry (:mod:`.registry`)."""

    name = NAME
    title = "PIPAL"
    description = "public training set, 23,200 distorted images of 200 references, Elo (higher = better)"
    citation = ("Jinjin et al., PIPAL: a large-scale image quality assessment dataset for perceptual image "
                "restoration, ECCV 2020")
    signature = SIGNATURE
    nested: tuple[str, ...] = ()
    sources: tuple[Remote, ...] = ()
    manual = ("PIPAL is distributed through the Google Drive links of https://github.com/HaomingCai/PIPAL-dataset ; "
              "download the training part and put Train_Ref/, Distortion_1..4/ (or Train_Dist/) and "
              "Train_Label/ into {dest}/.")
    after_download = ""

    def load(self, root: Path, options: Mapping[str, str]) -> CorrelationSet:
        """Read the set (:func:`load`)."""
        return load(root)
