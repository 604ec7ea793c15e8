"""Images, patches and degradations of the loss study (``bapps loss-study``).

Images: every image file in a folder (sorted by name), or by default the photos scikit-image
ships (the list make-mini uses, :data:`bapps_toolkit.data.mini.PHOTOS`). They are split into
train and test images by a seeded permutation of their sorted names (``split_seed``), so the
two sets share no image.

Tasks (the network sees the degraded image and is trained to output the clean one; all at
the same size, values in [0, 1]):

* ``denoise`` — additive white Gaussian noise of std ``sigma`` (not clipped);
* ``deblur`` — Gaussian blur of std ``blur_sigma`` px (reflect padding) plus noise ``0.01``;
* ``sr2`` / ``sr4`` — PIL bicubic down-sampling by 2 / 4, then bicubic up-sampling back;
* ``jpeg`` — PIL JPEG compression at ``jpeg_quality``;
* ``autoencode`` — the clean image itself (the network has a bottleneck; Snell et al. 2017).

Every random draw comes from ``numpy.random.default_rng`` seeded by the caller.
"""
from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from scipy import ndimage

from ..data.images import read_rgb
from ..data.layout import IMAGE_EXTENSIONS

if TYPE_CHECKING:
    import torch
from ..data.mini import PHOTOS, load_photos
from ..errors import DataError, UsageError
from .config import TASKS

DEBLUR_NOISE = 0.01


@dataclass(frozen=True)
class ImageSet:
    """Named images of the study (uint8 ``[H, W, 3]`` each)."""

    names: list[str]
    images: list[np.ndarray]  # uint8 [H, W, 3]


def load_images(folder: str | Path | None) -> ImageSet:
    """The study's images: ``folder``'s image files (sorted), or scikit-image's photos."""
    if folder is None:
        return ImageSet(list(PHOTOS), load_photos())
    base = Path(folder)
    if not base.is_dir():
        raise DataError(f"image folder {base} does not exist or is not a folder")
    files = sorted(p for p in base.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if len(files) < 2:
        raise DataError(f"image folder {base} holds {len(files)} image file(s) "
                        f"({', '.join(IMAGE_EXTENSIONS)}); the study needs at least 2 (train and test)")
    return ImageSet([p.name for p in files], [read_rgb(p) for p in files])


def split_images(images: ImageSet, test_fraction: float, seed: int) -> tuple[ImageSet, ImageSet]:
    """Seeded split by name: ``max(1, round(test_fraction · n))`` test images, the rest train."""
    n = len(images.names)
    n_test = min(n - 1, max(1, int(round(test_fraction * n))))
    order = sorted(range(n), key=lambda i: images.names[i])
    perm = np.random.default_rng(seed).permutation(n)
    test = sorted(order[i] for i in perm[:n_test])
    train = sorted(order[i] for i in perm[n_test:])

    def pick(idx: Sequence[int]) -> ImageSet:
        return ImageSet([images.names[i] for i in idx], [images.images[i] for i in idx])

    return pick(train), pick(test)


def check_sizes(images: ImageSet, size: int, what: str) -> None:
    """Refuse images smaller than ``size`` on a side.

    Raises:
        DataError: naming the ``what`` images that are too small.
    """
    small = [n for n, im in zip(images.names, images.images, strict=True) if min(im.shape[:2]) < size]
    if small:
        raise DataError(f"{what} images {', '.join(small)} are smaller than the {size}-pixel crop")


def random_patches(images: ImageSet, count: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` random ``size``×``size`` crops, each from a uniformly drawn image → uint8 [count, s, s, 3]."""
    check_sizes(images, size, "train")
    out = np.empty((count, size, size, 3), np.uint8)
    for k in range(count):
        im = images.images[int(rng.integers(len(images.images)))]
        y = int(rng.integers(im.shape[0] - size + 1))
        x = int(rng.integers(im.shape[1] - size + 1))
        out[k] = im[y:y + size, x:x + size]
    return out


def grid_crops(images: ImageSet, per_image: int, size: int) -> tuple[np.ndarray, list[tuple[str, int, int]]]:
    """Up to ``per_image`` crops per image on a regular grid (deterministic).

    Returns:
        The uint8 crops and ``(image name, top, left)`` for each.
    """
    check_sizes(images, size, "test")
    crops, where = [], []
    for name, im in zip(images.names, images.images, strict=True):
        h, w = im.shape[:2]
        ny, nx = h // size, w // size
        cells = [(r, c) for r in range(ny) for c in range(nx)]
        step = max(1, len(cells) // per_image)
        for r, c in cells[::step][:per_image]:
            top = r * size + (h - ny * size) // 2
            left = c * size + (w - nx * size) // 2
            crops.append(im[top:top + size, left:left + size])
            where.append((name, top, left))
    return np.stack(crops), where


def _resize(u8: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(u8).resize((size, size), Image.Resampling.BICUBIC), dtype=np.uint8)


def degrade(clean: np.ndarray, task: str, *, sigma: float, blur_sigma: float, jpeg_quality: int,
            rng: np.random.Generator) -> np.ndarray:
    """Degraded versions of uint8 patches ``[N, s, s, 3]`` → float32 ``[N, s, s, 3]`` (≈ [0, 1])."""
    x = clean.astype(np.float32) / 255.0
    if task == "denoise":
        noisy: np.ndarray = x + np.float32(sigma) * rng.standard_normal(x.shape, dtype=np.float32)
        return noisy
    if task == "deblur":
        blurred = ndimage.gaussian_filter(x, sigma=(0, blur_sigma, blur_sigma, 0), mode="reflect")
        degraded: np.ndarray = blurred + np.float32(DEBLUR_NOISE) * rng.standard_normal(x.shape, dtype=np.float32)
        return degraded
    if task in ("sr2", "sr4"):
        f = 2 if task == "sr2" else 4
        s = clean.shape[1]
        if s % f:
            raise UsageError(f"{task}: crop size {s} is not divisible by {f}")
        return np.stack([_resize(_resize(p, s // f), s) for p in clean]).astype(np.float32) / 255.0
    if task == "jpeg":
        out = []
        for p in clean:
            buf = io.BytesIO()
            Image.fromarray(p).save(buf, format="JPEG", quality=int(jpeg_quality))
            out.append(np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")))
        return np.stack(out).astype(np.float32) / 255.0
    if task == "autoencode":
        return x
    raise UsageError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")


@dataclass
class StudyData:
    """The degraded/clean patches a loss study trains and tests on, and where the test crops come from."""

    train_in: torch.Tensor  # [P, 3, s, s] float on [0, 1] (degraded)
    train_out: torch.Tensor  # clean
    test_in: torch.Tensor
    test_out: torch.Tensor
    test_where: list[tuple[str, int, int]]
    train_set: ImageSet
    test_set: ImageSet
