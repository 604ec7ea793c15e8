"""Reference images and start distortions of a MAD competition.

References: the photos of the mini set (scikit-image's, :data:`bapps_toolkit.data.mini.PHOTOS`)
or a folder of the user's images; each is centre-cropped to a square and resized to
``size``×``size`` (PIL bilinear; an image already of that size is kept as it is).

Start images: the reference plus zero-mean white Gaussian noise rescaled to an exact mean
squared error ``noise_mse`` on the [0, 255] scale (as Wang & Simoncelli 2008 start: their
Fig. 8 uses MSE = 1024, the authors' script MSE 8 … 1024), clipped to [0, 255] and rounded to
integers (so the start is an image a PNG can hold; its actual MSE after clipping and rounding
is recorded). The noise of reference ``i`` is drawn from ``SeedSequence([seed, i])``. Or the
user's own distorted images: a folder whose files have the references' stems.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .._io import PathLike
from ..data.images import centre_crop, read_rgb
from ..data.layout import IMAGE_EXTENSIONS
from ..errors import DataError, UsageError

#: Largest accepted reference/start count of one run.
MAX_REFERENCES = 100_000


@dataclass(frozen=True)
class Reference:
    """One reference: its name (file stem or photo name) and ``uint8 [size, size, 3]`` pixels."""

    name: str
    pixels: np.ndarray


def square(arr: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop ``arr`` square and resize it to ``size``×``size`` (bilinear)."""
    sq = centre_crop(arr)
    if sq.shape[0] == size:
        return np.ascontiguousarray(sq)
    return np.asarray(Image.fromarray(sq).resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


def _image_files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise DataError(f"image folder {folder} does not exist or is not a folder")
    files: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or p.suffix.lower() not in IMAGE_EXTENSIONS or not p.is_file():
            continue
        if p.stem in files:
            raise DataError(f"two images with stem {p.stem!r} in {folder}")
        files[p.stem] = p
        if len(files) > MAX_REFERENCES:
            raise DataError(f"{folder} holds more than {MAX_REFERENCES} images")
    if not files:
        raise DataError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {folder}")
    return files


def load_references(folder: PathLike | None, size: int, limit: int | None = None) -> list[Reference]:
    """The references: ``folder``'s images, or the mini set's photos when ``folder`` is None."""
    if size < 16 or size > 4096:
        raise UsageError(f"size must lie in [16, 4096], got {size}")
    if folder is None:
        from ..data.mini import PHOTOS, load_photos

        refs = [Reference(Path(n).stem, square(a, size)) for n, a in zip(PHOTOS, load_photos(), strict=True)]
    else:
        refs = [Reference(stem, square(read_rgb(p), size)) for stem, p in _image_files(Path(folder)).items()]
    return refs[:limit] if limit is not None else refs


def noise_start(ref: np.ndarray, noise_mse: float, seed: int, index: int) -> np.ndarray:
    """The reference plus white Gaussian noise of MSE ``noise_mse`` ([0, 255] scale), rounded."""
    if not 0.0 < noise_mse <= 255.0 ** 2:
        raise UsageError(f"noise_mse must lie in (0, 65025] (MSE on the 0-255 scale), got {noise_mse}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))
    n = rng.standard_normal(ref.shape)
    n -= n.mean()
    n *= np.sqrt(noise_mse / np.mean(n * n))
    return np.clip(np.rint(ref.astype(np.float64) + n), 0, 255).astype(np.uint8)


def user_starts(folder: PathLike, refs: list[Reference], size: int) -> list[np.ndarray]:
    """The user's distorted start images, one per reference, matched by stem."""
    files = _image_files(Path(folder))
    missing = [r.name for r in refs if r.name not in files]
    if missing:
        raise DataError(f"start folder {folder} has no image for reference(s) {missing[:5]} "
                        "(start images are matched to references by file stem)")
    out = []
    for r in refs:
        arr = square(read_rgb(files[r.name]), size)
        if np.array_equal(arr, r.pixels):
            raise DataError(f"start image {files[r.name]} equals its reference; a MAD start must be distorted")
        out.append(arr)
    return out


__all__ = ["Reference", "load_references", "noise_start", "user_starts", "square"]
