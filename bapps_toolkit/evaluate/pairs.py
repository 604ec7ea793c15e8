"""Distances between your own image files (the official lpips_2imgs / lpips_2dirs /
lpips_1dir_allpairs scripts, batched).

>>> from bapps_toolkit import score_folders
>>> res = score_folders("d0", "d1", metric="lpips-alex", out="dists.csv")   # doctest: +SKIP
>>> res.distances[0], res.rows()[0]["file"]                                 # doctest: +SKIP

* :func:`score_image_pair` — one pair of files.
* :func:`score_folders` — files of two folders paired by name (an error lists the names missing
  on either side).
* :func:`score_all_pairs` — every unordered pair of a folder's images.

Each returns a :class:`ScoredPairs` (distances, resized flags, the metric's id and label) and, given
``out``, writes its CSV atomically. ``metric``: a registry name, a Metric object, or a checkpoint
(see :mod:`.resolve`); ``backbone_weights`` / ``lin_weights`` as there.

Image rule:

* Files are decoded with PIL (:func:`~bapps_toolkit.data.images.read_rgb`). The header size is
  checked before decoding: more than :data:`MAX_PIXELS` pixels (or a side over
  :data:`MAX_SIDE`) is refused, and PIL's decompression-bomb check stays on. An unreadable file
  is an error that names it.
* Colour: grayscale, palette, CMYK, RGBA… go through PIL's ``convert("RGB")`` (grayscale is
  replicated to three channels; an alpha channel is dropped, not composited). 16-bit grayscale
  is scaled to 8 bits (``value / 257``) first.
* Size: the two images of a pair must have the same size; **if they differ, the second image
  is resized to the first image's size** with PIL's bilinear filter (which antialiases when
  shrinking), and a note naming both files goes to ``notes`` (default: a ``UserWarning``). The
  pair's CSV row says ``resized=1``. Images are otherwise used at their own size.
* A metric's smallest accepted size (e.g. MS-SSIM's) is checked first and the error names the
  file. Very large images: memory is metric-specific (a VGG on a 4k image needs several GB);
  pairs are batched by a pixel budget (``max_batch_pixels``), a pair larger than the budget
  runs alone.
* Every image is decoded before the metric is built, so an unreadable file is named before any
  network work. LPIPS-like metrics on pairs that share images (all pairs) send each distinct
  image through the network once (:data:`FEATURE_CACHE_PIXELS` bounds the kept features).
"""
from __future__ import annotations

import csv
import dataclasses
import itertools
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, NamedTuple, Union

import numpy as np
import torch
from PIL import Image

from .._device import pick_device
from .._io import atomic_write
from ..data import to_model_input
from ..data.images import read_rgb
from ..errors import DataError
from ..metrics import Metric
from .resolve import WeightSpecs, metric_label, resolve_metric

PathLike = Union[str, "os.PathLike[str]"]
Notes = Callable[[str], None]

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif")
#: Largest side accepted (pixels).
MAX_SIDE = 32768
#: Largest pixel count accepted before decoding (256 MPix).
MAX_PIXELS = 256 * 1024 * 1024
#: Default pixel budget of one batch (sum of H*W over the pairs of a batch).
DEFAULT_BATCH_PIXELS = 8 * 1024 * 1024
#: Default most pairs per batch.
DEFAULT_BATCH_SIZE = 64
#: Largest total of pixels over the distinct images whose deep features are kept for reuse.
FEATURE_CACHE_PIXELS = 64 * 1024 * 1024


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------
def read_image(path: PathLike) -> np.ndarray:
    """Decode ``path`` to ``uint8 [H, W, 3]`` RGB by the module's rule; errors name the file."""
    return read_rgb(Path(path), max_side=MAX_SIDE, max_pixels=MAX_PIXELS, scale_16bit=True)


def list_images(folder: PathLike) -> dict[str, Path]:
    """``{file name: path}`` of the image files directly in ``folder`` (hidden files skipped)."""
    d = Path(folder)
    if not d.is_dir():
        raise DataError(f"folder {d} does not exist" if not d.exists() else f"{d} is not a folder")
    files = {p.name: p for p in sorted(d.iterdir())
             if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTS}
    if not files:
        raise DataError(f"folder {d} holds no image files ({', '.join(IMAGE_EXTS)})")
    return files


def _name_list(names: set[str], limit: int = 10) -> str:
    ordered = sorted(names)
    more = f" … and {len(ordered) - limit} more" if len(ordered) > limit else ""
    return ", ".join(ordered[:limit]) + more


def pair_dirs(dir0: PathLike, dir1: PathLike) -> list[tuple[str, Path, Path]]:
    """Pairs ``(name, dir0/name, dir1/name)``; an error lists the names missing on either side."""
    a, b = list_images(dir0), list_images(dir1)
    only0, only1 = set(a) - set(b), set(b) - set(a)
    if only0 or only1:
        parts = []
        if only0:
            parts.append(f"{len(only0)} file(s) of {dir0} missing from {dir1}: {_name_list(only0)}")
        if only1:
            parts.append(f"{len(only1)} file(s) of {dir1} missing from {dir0}: {_name_list(only1)}")
        raise DataError("folders do not match (files are paired by name): " + "; ".join(parts))
    return [(n, a[n], b[n]) for n in sorted(a)]


def all_pairs(folder: PathLike) -> list[tuple[Path, Path]]:
    """Every unordered pair of the images of ``folder``, by sorted file name."""
    files = list_images(folder)
    if len(files) < 2:
        raise DataError(f"all pairs of {folder}: needs at least two images, found {len(files)}")
    return [(files[a], files[b]) for a, b in itertools.combinations(sorted(files), 2)]


# --------------------------------------------------------------------------------------------
# Decoding and the resize rule
# --------------------------------------------------------------------------------------------
class PreparedPair(NamedTuple):
    """A decoded pair: the files, their ``uint8 [H, W, 3]`` images (``b`` resized to ``a``)."""

    path0: Path
    path1: Path
    a: np.ndarray
    b: np.ndarray
    resized: bool


def _resize_to(arr: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    h, w = size_hw
    return np.asarray(Image.fromarray(arr).resize((w, h), Image.Resampling.BILINEAR), dtype=np.uint8)


def _warn(message: str) -> None:
    warnings.warn(message, UserWarning, stacklevel=3)


def prepare_pairs(pairs: Sequence[tuple[PathLike, PathLike]], *, notes: Notes | None = None) -> list[PreparedPair]:
    """Decode every image once and apply the resize rule; resizes are reported to ``notes``."""
    cache: dict[Path, np.ndarray] = {}
    note = notes or _warn

    def img(p: Path) -> np.ndarray:
        if p not in cache:
            cache[p] = read_image(p)
        return cache[p]

    prepared = []
    for p0, p1 in pairs:
        path0, path1 = Path(p0), Path(p1)
        a, b = img(path0), img(path1)
        resized = a.shape[:2] != b.shape[:2]
        if resized:
            note(f"{path1} is {b.shape[1]}x{b.shape[0]}, {path0} is {a.shape[1]}x{a.shape[0]}: "
                 f"resizing {path1} to {a.shape[1]}x{a.shape[0]} (bilinear)")
            b = _resize_to(b, a.shape[:2])
        prepared.append(PreparedPair(path0, path1, a, b, resized))
    return prepared


# --------------------------------------------------------------------------------------------
# Distances
# --------------------------------------------------------------------------------------------
def _batches(shapes: Sequence[tuple[int, ...]], batch_size: int, max_batch_pixels: int) -> Iterator[list[int]]:
    """Indices of ``shapes`` in batches of one ``H x W``: at most ``batch_size`` and, unless a single
    item is larger, at most ``max_batch_pixels`` pixels."""
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for k, shape in enumerate(shapes):
        by_shape.setdefault(tuple(shape[:2]), []).append(k)
    for (h, w), idx in by_shape.items():
        per_batch = max(1, min(int(batch_size), int(max_batch_pixels) // max(1, h * w)))
        for s in range(0, len(idx), per_batch):
            yield idx[s:s + per_batch]


def _can_reuse_features(metric: Metric, prepared: Sequence[PreparedPair]) -> bool:
    """LPIPS-like metrics (``features`` + ``distance_from_features``) on pairs that share images."""
    if not (hasattr(metric, "features") and hasattr(metric, "distance_from_features")):
        return False
    if getattr(metric, "spatial", False):
        return False
    distinct = {(p.path0, p.a.shape) for p in prepared} | {(p.path1, p.b.shape) for p in prepared}
    pixels = sum(shape[0] * shape[1] for _, shape in distinct)
    return len(distinct) < 2 * len(prepared) and pixels <= FEATURE_CACHE_PIXELS


def _direct(metric: Metric, prepared: Sequence[PreparedPair], dist: list[float], dev: torch.device,
            batch_size: int, max_batch_pixels: int) -> None:
    for chunk in _batches([p.a.shape for p in prepared], batch_size, max_batch_pixels):
        x0 = to_model_input(np.stack([prepared[k].a for k in chunk]), device=dev)
        x1 = to_model_input(np.stack([prepared[k].b for k in chunk]), device=dev)
        d = metric(x0, x1).reshape(len(chunk)).double().cpu().numpy()
        for k, v in zip(chunk, d, strict=True):
            dist[k] = float(v)


def _with_feature_cache(metric: Any, prepared: Sequence[PreparedPair], dist: list[float], dev: torch.device,
                        batch_size: int, max_batch_pixels: int) -> None:
    """Each distinct image through the network once, then the distances from the kept features."""
    index: dict[tuple, int] = {}
    images: list[np.ndarray] = []
    for p in prepared:
        for key, arr in (((p.path0, p.a.shape), p.a), ((p.path1, p.b.shape), p.b)):
            if key not in index:
                index[key] = len(images)
                images.append(arr)
    feats: list[Any] = [None] * len(images)
    for chunk in _batches([a.shape for a in images], batch_size, max_batch_pixels):
        x = to_model_input(np.stack([images[k] for k in chunk]), device=dev)
        metric.validate(x, x)
        fs = metric.features(x)
        for j, k in enumerate(chunk):
            feats[k] = [f[j:j + 1] for f in fs]
    for chunk in _batches([p.a.shape for p in prepared], batch_size, 1 << 62):
        i0 = [index[(prepared[k].path0, prepared[k].a.shape)] for k in chunk]
        i1 = [index[(prepared[k].path1, prepared[k].b.shape)] for k in chunk]
        n_layers = len(feats[i0[0]])
        f0 = [torch.cat([feats[i][layer] for i in i0], dim=0) for layer in range(n_layers)]
        f1 = [torch.cat([feats[j][layer] for j in i1], dim=0) for layer in range(n_layers)]
        d = metric.distance_from_features(f0, f1).reshape(len(chunk)).double().cpu().numpy()
        for k, v in zip(chunk, d, strict=True):
            dist[k] = float(v)


def _check_batching(batch_size: int, max_batch_pixels: int) -> None:
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if int(max_batch_pixels) < 1:
        raise ValueError(f"max_batch_pixels must be >= 1, got {max_batch_pixels}")


def score_prepared(metric: Metric, prepared: Sequence[PreparedPair], *, device: Any = None,
                   batch_size: int = DEFAULT_BATCH_SIZE, max_batch_pixels: int = DEFAULT_BATCH_PIXELS) -> list[float]:
    """Distances of prepared pairs, in order; pairs of equal size are batched by a pixel budget."""
    _check_batching(batch_size, max_batch_pixels)
    dev = pick_device(device)
    metric = metric.to(dev).eval()
    min_size = int(getattr(metric, "min_size", 1))
    for p in prepared:
        if min(p.a.shape[:2]) < min_size:
            raise DataError(f"image {p.path0} is {p.a.shape[1]}x{p.a.shape[0]}: metric {metric.name} needs "
                            f"both sides >= {min_size} pixels")
    dist = [float("nan")] * len(prepared)
    score = _with_feature_cache if _can_reuse_features(metric, prepared) else _direct
    with torch.inference_mode():
        score(metric, prepared, dist, dev, batch_size, max_batch_pixels)
    return dist


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass
class ScoredPairs:
    """Distances of pairs of image files, in order, with the metric that made them.

    ``by_name``: the pairs come from two folders matched by file name (CSV columns
    ``file, distance, resized, metric``); otherwise ``file0, file1, distance, resized, metric``.
    ``label`` carries the metric's ``[UNCALIBRATED: …]`` tag when ``calibrated`` is False.
    """

    files0: list[Path]
    files1: list[Path]
    distances: list[float]
    resized: list[bool]
    metric_id: str
    label: str
    calibrated: bool
    by_name: bool = False

    @property
    def columns(self) -> list[str]:
        return (["file"] if self.by_name else ["file0", "file1"]) + ["distance", "resized", "metric"]

    def rows(self) -> list[dict[str, Any]]:
        """One CSV row per pair (file names, distance to 8 significant digits, resized 0/1, label)."""
        out = []
        for p0, p1, d, resized in zip(self.files0, self.files1, self.distances, self.resized, strict=True):
            names = {"file": p0.name} if self.by_name else {"file0": p0.name, "file1": p1.name}
            out.append({**names, "distance": f"{d:.8g}", "resized": int(resized), "metric": self.label})
        return out

    def to_csv(self, fh: IO[str]) -> None:
        """Write the CSV (header and :meth:`rows`) to an open text file."""
        w = csv.DictWriter(fh, fieldnames=self.columns, lineterminator="\n")
        w.writeheader()
        w.writerows(self.rows())

    def write_csv(self, path: PathLike) -> Path:
        """Write the CSV to ``path`` atomically."""
        with atomic_write(path, "w", encoding="utf-8", newline="") as fh:
            self.to_csv(fh)
        return Path(path)


def score_files(
    pairs: Sequence[tuple[PathLike, PathLike]], *, metric: Any = "lpips-alex",
    backbone_weights: WeightSpecs = None, lin_weights: WeightSpecs = None, device: Any = None,
    batch_size: int = DEFAULT_BATCH_SIZE, max_batch_pixels: int = DEFAULT_BATCH_PIXELS,
    notes: Notes | None = None, by_name: bool = False, out: PathLike | None = None,
) -> ScoredPairs:
    """Distances of ``pairs`` of image files by the module's rule; ``out``: CSV written atomically."""
    _check_batching(batch_size, max_batch_pixels)
    prepared = prepare_pairs(pairs, notes=notes)  # unreadable files are named before any network work
    mid, m = resolve_metric(metric, backbone_weights=backbone_weights, lin_weights=lin_weights)
    dist = score_prepared(m, prepared, device=device, batch_size=batch_size, max_batch_pixels=max_batch_pixels)
    result = ScoredPairs([p.path0 for p in prepared], [p.path1 for p in prepared], dist,
                         [p.resized for p in prepared], mid, metric_label(mid, m), bool(m.calibrated), by_name)
    if out is not None:
        result.write_csv(out)
    return result


def score_image_pair(img0: PathLike, img1: PathLike, **options: Any) -> ScoredPairs:
    """The distance between two image files (``options`` as :func:`score_files`)."""
    return score_files([(img0, img1)], **options)


def score_folders(dir0: PathLike, dir1: PathLike, **options: Any) -> ScoredPairs:
    """Distances between the files of ``dir0`` and ``dir1`` paired by name (``options`` as
    :func:`score_files`; an error lists the names missing on either side)."""
    return score_files([(a, b) for _, a, b in pair_dirs(dir0, dir1)], by_name=True, **options)


def score_all_pairs(folder: PathLike, **options: Any) -> ScoredPairs:
    """Distances between every unordered pair of the images of ``folder`` (``options`` as
    :func:`score_files`)."""
    return score_files(all_pairs(folder), **options)
