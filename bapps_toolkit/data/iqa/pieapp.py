"""PieAPP (Prashnani et al., CVPR 2018).

200 references (256×256 PNG ⚠), 160 for train + val, 40 for test. Layout (root
``PieAPP_dataset_CVPR_2018/``, or its parent)::

    reference_images/<split>/ref_<n>.png
    distorted_images/<split>/ref_<n>/distort_<n>_<type>_<inter|intra>_<id>.png
    labels/<split>/ref_<n>_pairwise_labels.csv     ref, A, B, raw P(A), [processed P(A)]
    labels/test/ref_<n>_per_image_score.csv        ref, distorted image, score for distorted image

The CSV headers carry leading spaces (`` distorted image A``); names and values are stripped
here. **Test**: :func:`load` returns the per-image scores (Bradley–Terry MAP estimates, reference
= 0, **higher = more different**, so a DMOS-like direction); a distorted image listed twice for
one reference is kept once. A name that is the reference itself is looked up in
``reference_images``. The distortion type is parsed from the file name when it has the
documented form, else ``"unknown"`` (the name pattern is unconfirmed ⚠).

**Train / val**: :func:`load_pairs` returns the labelled pairs as 2AFC triplets with
``p0 = A``, ``p1 = B`` and ``judge = 1 − P(A preferred)`` (the probability that B is closer to the
reference); it uses the processed-probability column when there is one (train/val), else the raw
one (test), and skips blank (unasked) pairs. Column names are matched by substring (``preference``
/ ``processed``) because their exact text is unconfirmed ⚠.
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
from .base import CaseResolver, CorrelationSet, TwoAFCFileSet, is_synthetic
from .defaults import CorrelationBenchmark
from .registry import PackRequest, PackSummary, Remote, register_benchmark

NAME = "pieapp"
SIGNATURE = ("labels", "reference_images", "distorted_images")
_TYPE = re.compile(r"^distort_\d+_(.+)_(inter|intra)_\d+\.png$", re.IGNORECASE)


def _root(root: PathLike) -> CaseResolver:
    root = Path(root)
    if not (root / "labels").is_dir() and (root / "PieAPP_dataset_CVPR_2018").is_dir():
        root = root / "PieAPP_dataset_CVPR_2018"
    r = CaseResolver(root, NAME)
    for sub in SIGNATURE:
        r.need_dir(sub)
    return r


def _csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [[c.strip() for c in row] for row in csv.reader(f)]
    if not rows:
        raise DataError(f"{NAME}: {path} is empty")
    return [h.lower() for h in rows[0]], [r for r in rows[1:] if any(r)]


def _image(r: CaseResolver, split: str, ref: str, name: str) -> Path:
    if name == ref:
        return r.need("reference_images", split, name, what="reference image")
    return r.need("distorted_images", split, Path(ref).stem, name, what="distorted image")


def _col(header: list[str], path: Path, *needles: str) -> int:
    for i, h in enumerate(header):
        if all(n in h for n in needles):
            return i
    raise DataError(f"{NAME}: {path} has no column containing {' '.join(needles)!r} (header: {header})")


def load(root: PathLike) -> CorrelationSet:
    """The test set's per-image scores as a correlation set."""
    r = _root(root)
    folder = r.need_dir("labels", "test")
    files = sorted(folder.glob("*_per_image_score.csv"))
    if not files:
        raise DataError(f"{NAME}: no *_per_image_score.csv files in {folder}")
    dist, ref, ref_id, score, types = [], [], [], [], []
    for path in files:
        header, rows = _csv(path)
        i_name, i_score = _col(header, path, "distorted image"), _col(header, path, "score")
        seen: set[str] = set()
        for k, row in enumerate(rows, 2):
            ref_name, name = row[0], row[i_name]
            if name in seen:
                continue
            seen.add(name)
            dist.append(_image(r, "test", ref_name, name))
            ref.append(r.need("reference_images", "test", ref_name, what="reference image"))
            ref_id.append(Path(ref_name).stem)
            score.append(parse_finite(row[i_score], f"{path} line {k}"))
            m = _TYPE.match(name)
            types.append(m.group(1) if m else "unknown")
    return CorrelationSet(NAME, r.root, dist, ref, ref_id, np.array(score), types, np.full(len(dist), -1),
                          higher_is_better=False, score_name="per-image error score (test)",
                          synthetic=is_synthetic(r.root)).check()


def load_pairs(root: PathLike, split: str) -> TwoAFCFileSet:
    """The labelled pairs of ``split`` (``train``, ``val`` or ``test``) as 2AFC triplets."""
    r = _root(root)
    folder = r.need_dir("labels", split)
    files = sorted(folder.glob("*_pairwise_labels.csv"))
    if not files:
        raise DataError(f"{NAME}: no *_pairwise_labels.csv files in {folder}")
    refs, p0, p1, judge = [], [], [], []
    for path in files:
        header, rows = _csv(path)
        try:
            i_p = _col(header, path, "processed")
        except DataError:
            i_p = _col(header, path, "preference")
        for k, row in enumerate(rows, 2):
            if len(row) <= i_p or row[i_p] == "":
                continue
            prob = parse_finite(row[i_p], f"{path} line {k}")
            if not 0 <= prob <= 1:
                raise DataError(f"{path} line {k}: preference {prob} is not in [0, 1]")
            refs.append(r.need("reference_images", split, row[0], what="reference image"))
            p0.append(_image(r, split, row[0], row[1]))
            p1.append(_image(r, split, row[0], row[2]))
            judge.append(1.0 - prob)
    return TwoAFCFileSet(NAME, split, r.root, refs, p0, p1, np.array(judge), synthetic=is_synthetic(r.root))


#: PieAPP split -> set key of a packed file of its labelled pairs.
PIEAPP_KEYS = {"train": "2afc/train/pieapp", "val": "2afc/val/pieapp", "test": "2afc/val/pieapp-test"}


def pack_pieapp_pairs(root: PathLike, out_h5: PathLike, *, size: int | None = None, force: bool = False,
                      workers: int | None = None, progress: bool = True) -> tuple[Path, list[str]]:
    """Pack PieAPP's labelled pairs of every split present as 2AFC sets in the BAPPS format.

    The pairs are those of :func:`.pieapp.load_pairs` (``p0 = A``, ``p1 = B``, ``judge =
    1 - P(A preferred)``); the keys are :data:`PIEAPP_KEYS` (the test pairs as a ``val``-split
    category named *test*). ``size``: the module's bicubic rule; ``None`` keeps
    the images' own size, which must then be square and shared (PieAPP: 256×256 ⚠).
    """
    from ..images import image_size
    from .pack_2afc import write_2afc_file_sets

    sets, notes = {}, []
    for split, key in PIEAPP_KEYS.items():
        try:
            sets[key] = load_pairs(root, split)
        except DataError as exc:
            notes.append(f"pieapp: {split} pairs left out ({exc})")
    if not sets:
        raise DataError(f"pieapp: no labelled pairs in {root}: " + "; ".join(notes))
    if size is None:
        sizes = {p: image_size(p) for s in sets.values() for p in (s.ref[0], s.p0[0], s.p1[0])}
        if len(set(sizes.values())) != 1 or next(iter(sizes.values()))[0] != next(iter(sizes.values()))[1]:
            shown = ", ".join(f"{p.name} {w}x{h}" for p, (w, h) in list(sizes.items())[:3])
            raise DataError(f"pieapp: images are not of one square size ({shown}); give --size N")
        size = next(iter(sizes.values()))[0]
    out = write_2afc_file_sets(out_h5, sets, size=size, force=force, workers=workers, progress=progress,
                               attrs={"benchmark": "pieapp-pairs"})
    return out, notes


@register_benchmark
class PieAPPBenchmark(CorrelationBenchmark):
    """PieAPP in the benchmark registry (:mod:`.registry`)."""

    name = NAME
    title = "PieAPP"
    description = "test set, per-image preference scores (higher = worse), and labelled pairs"
    citation = "Prashnani et al., PieAPP: perceptual image-error assessment through pairwise preference, CVPR 2018"
    signature = SIGNATURE
    nested: tuple[str, ...] = ("PieAPP_dataset_CVPR_2018",)
    sources: tuple[Remote, ...] = ()
    manual = ("PieAPP may be used for non-commercial, educational purposes only (TERMS_OF_USE.pdf). After "
              "reading the terms, download all_data_PieAPP_dataset_CVPR_2018.zip from "
              "https://web.ece.ucsb.edu/~ekta/projects/PieAPPv0.1/ and unpack it so that "
              "{dest}/PieAPP_dataset_CVPR_2018/ holds reference_images/ distorted_images/ labels/.")
    after_download = ""

    def load(self, root: Path, options: Mapping[str, str]) -> CorrelationSet:
        """Read the set (:func:`load`)."""
        return load(root)

    def pack(self, root: Path, out: Path, request: PackRequest) -> PackSummary:
        """Pack the test set's scores (as any correlation set), or with ``request.pairs`` the pairs.

        With ``request.pairs`` the labelled pairs are packed as 2AFC sets in the BAPPS format
        (:func:`pack_pieapp_pairs`).
        """
        if not request.pairs:
            return super().pack(root, out, request)
        from .pack_2afc import summary_of

        path, notes = pack_pieapp_pairs(root, out, size=request.size, force=request.force,
                                        workers=request.workers, progress=request.progress)
        return summary_of(self.name, path, notes)
