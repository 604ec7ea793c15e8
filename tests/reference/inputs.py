"""Deterministic test images shared by the reference scripts and the tests.

Only numpy, Pillow and ``skimage.data`` photos that ship with scikit-image (no download), so the
reference environment (``/work/refvenv``) and the test environment regenerate byte-identical
inputs. Each :class:`Pair` carries a SHA-256 digest; the reference files store it and the tests
compare it before comparing any number, so a changed input (e.g. a different libjpeg inside
Pillow) is reported as such instead of as a metric mismatch.

>>> pairs = make_pairs(((64, 64), (97, 83)), seed=0)
>>> pairs[0].key, pairs[0].ref.shape, pairs[0].ref.dtype
('64x64-astronaut-noise', (64, 64, 3), dtype('uint8'))
"""
from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Photos tried in turn (the first one large enough for the crop is used).
PHOTOS: tuple[str, ...] = ("astronaut", "chelsea", "coffee", "retina")
DISTORTIONS: tuple[str, ...] = ("noise", "blur", "jpeg")
DEFAULT_SIZES: tuple[tuple[int, int], ...] = ((64, 64), (97, 83), (180, 200), (256, 256))


@dataclass(frozen=True)
class Pair:
    """A reference crop and a distorted version, both uint8 ``[H, W, 3]``."""

    key: str
    ref: np.ndarray
    dist: np.ndarray
    distortion: str
    photo: str

    @property
    def sha256(self) -> str:
        h = hashlib.sha256()
        for a in (self.ref, self.dist):
            h.update(str(a.shape).encode())
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()


_PHOTO_CACHE: dict = {}


def load_photo(name: str) -> np.ndarray:
    """A scikit-image sample photo as uint8 ``[H, W, 3]`` (bundled with scikit-image)."""
    if name not in _PHOTO_CACHE:
        import skimage.data

        img = np.asarray(getattr(skimage.data, name)())
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"skimage.data.{name}() is not an RGB uint8 image")
        _PHOTO_CACHE[name] = img
    return _PHOTO_CACHE[name]


def crop(img: np.ndarray, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    H, W = img.shape[:2]
    if h > H or w > W:
        raise ValueError(f"cannot crop {h}x{w} from a {H}x{W} image")
    top = int(rng.integers(0, H - h + 1))
    left = int(rng.integers(0, W - w + 1))
    return np.ascontiguousarray(img[top : top + h, left : left + w])


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def add_noise(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Additive white Gaussian noise (σ in grey levels), rounded and clipped."""
    return _to_uint8(img.astype(np.float64) + sigma * rng.standard_normal(img.shape))


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur, radius ceil(3σ), symmetric padding, rounded (pure numpy)."""
    r = int(np.ceil(3 * sigma))
    d = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-(d**2) / (2 * sigma**2))
    k /= k.sum()
    x = img.astype(np.float64)
    H, W = x.shape[:2]
    p = np.pad(x, ((r, r), (0, 0), (0, 0)), mode="symmetric")
    x = sum(k[i] * p[i : i + H] for i in range(2 * r + 1))
    p = np.pad(x, ((0, 0), (r, r), (0, 0)), mode="symmetric")
    x = sum(k[i] * p[:, i : i + W] for i in range(2 * r + 1))
    return _to_uint8(x)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """JPEG round trip through Pillow (4:2:0 chroma subsampling, the Pillow default)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB")).copy()


def distort(img: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Apply ``kind`` ∈ :data:`DISTORTIONS` with a strength drawn from ``rng``."""
    if kind == "noise":
        return add_noise(img, float(rng.uniform(4.0, 25.0)), rng)
    if kind == "blur":
        return gaussian_blur(img, float(rng.uniform(0.6, 2.0)))
    if kind == "jpeg":
        return jpeg(img, int(rng.integers(10, 60)))
    raise ValueError(f"unknown distortion {kind!r}; known: {DISTORTIONS}")


def make_pairs(
    sizes: Sequence[tuple[int, int]] = DEFAULT_SIZES,
    seed: int = 0,
    distortions: Sequence[str] = DISTORTIONS,
    photos: Sequence[str] = PHOTOS,
) -> list[Pair]:
    """One crop per size (photos rotate with the size index; a photo too small is skipped),
    each paired with every distortion. Deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    pairs: list[Pair] = []
    for i, (h, w) in enumerate(sizes):
        for k in range(len(photos)):
            name = photos[(i + k) % len(photos)]
            img = load_photo(name)
            if img.shape[0] >= h and img.shape[1] >= w:
                break
        else:
            raise ValueError(f"no photo in {photos} is at least {h}x{w}")
        ref = crop(img, h, w, rng)
        for kind in distortions:
            pairs.append(Pair(f"{h}x{w}-{name}-{kind}", ref, distort(ref, kind, rng), kind, name))
    return pairs


def official_loader_float32(img: np.ndarray) -> np.ndarray:
    """uint8 ``[H, W, 3]`` → float32 ``[3, H, W]`` in [-1, 1] exactly as the official BAPPS
    loader (``ToTensor`` then ``Normalize(0.5, 0.5)``, all in float32)."""
    x = img.astype(np.float32).transpose(2, 0, 1) / np.float32(255.0)
    return (x - np.float32(0.5)) / np.float32(0.5)


def stack_unit(imgs: Sequence[np.ndarray], dtype=np.float64) -> np.ndarray:
    """uint8 ``[H, W, 3]`` images → ``[N, 3, H, W]`` in [0, 1]."""
    return np.stack([np.asarray(a, dtype=dtype).transpose(2, 0, 1) / 255.0 for a in imgs])
