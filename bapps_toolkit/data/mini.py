"""``bapps make-mini``: a small, synthetic, BAPPS-layout data set built deterministically offline.

It imitates the structure of BAPPS (Zhang et al., CVPR 2018) so every command of the toolkit can
run end to end without the 6.6 GB download. **Its judgments are not human**: they come from the
simulated observer described below. Scores on it say nothing about agreement with people.

Photos
    Only photos that scikit-image ships inside its wheel (files in ``skimage/data/``, read
    directly, no network): astronaut.png, chelsea.png, coffee.png, rocket.jpg,
    motorcycle_left.png, hubble_deep_field.jpg, ihc.png (immunohistochemistry), retina.jpg,
    camera.png, brick.png, grass.png, gravel.png, coins.png, moon.png (the grey ones become
    RGB). Train patches are cut from the top half of each photo, val and JND patches from the
    bottom half, so the splits share no pixels. A patch is a square window of 64, 96, 128 or 160
    pixels resized to 64×64 (PIL box filter); near-flat windows (std < 10/255) are redrawn.

Sets and sizes (:data:`MINI_COUNTS`)
    2AFC train traditional/cnn/mix 300 each; 2AFC val traditional 300, cnn 300, superres 280,
    deblur 280, color 260, frameinterp 250; JND val traditional 250, cnn 250.

Distortions (float RGB in [0, 1], strength ``t`` drawn per use)
    *traditional*: a composition of 1–3 distinct operations from Gaussian blur, Gaussian noise,
    JPEG, per-channel colour gain/offset, contrast, gamma, saturation, hue rotation, integer pixel
    shift, pixelation, quantisation, salt-and-pepper noise, motion blur, over-sharpening.
    *cnn*: a random "autoencoder-like" network per image: average-pool by 1, 2 or 4, a random
    3×3 conv mixing the channels (identity plus noise), a leaky nonlinearity, zero-insertion
    upsampling with a random smoothing kernel (checkerboard artefacts), a random 1×1 colour
    mix, and sometimes noise. *mix*: each image traditional or cnn with equal odds.
    Val categories share one degradation per triplet and apply two different "restorations",
    as in BAPPS: *superres* — one down-sampling (factor 2–4, box/bilinear/bicubic/nearest) then
    two up-samplers (nearest/bilinear/bicubic/lanczos, optional sharpening); *deblur* — one blur
    (Gaussian or motion) plus noise, then two restorations (under/over-sharpening with halos,
    iterative sharpening that amplifies noise, mild denoising); *color* — luminance kept, chroma
    re-estimated (desaturation, global cast, smooth blotchy chroma error); *frameinterp* — two
    neighbour frames (ref moved by ±v sub-pixel) and two interpolations (blend of the shifted
    copies, one frame alone, a warp with a flow error, a blurred blend).

Simulated observer (hidden distance, :func:`observer_distance`)
    For uint8 images ``x`` and ``y``: convert both to CIE Lab (sRGB, D65); blur each Lab channel
    with a Gaussian of σ = 1.5 px (a crude contrast-sensitivity low-pass); ``E`` = mean over
    pixels of ``sqrt(ΔL² + Δa² + Δb²)`` of the blurred images; gradient magnitudes ``g`` of the
    *unblurred* L channel (central differences); ``S`` = 1 − mean((2·g_x·g_y + 25)/(g_x² + g_y² + 25));
    ``D = 0.04·E + 1.5·S``. No metric in the toolkit computes this.
    2AFC: ``P(prefer p1) = sigmoid((D(ref,p0) − D(ref,p1)) / 0.12 + ε)``, ε ~ N(0, 1) per
    triplet (observer disagreement); ``judge = Binomial(n, P) / n`` with n = 5 raters for val and
    2 for train. JND (p0 = the clean patch, p1 = a mild distortion of it):
    ``P(same) = sigmoid((0.18 − D(p0,p1)) / 0.05)``, ``same = Binomial(3, P) / 3``.

Determinism
    Each set draws from ``numpy.random.default_rng(SeedSequence([seed, set_index]))``; PNGs are
    written by PIL with fixed parameters (no time stamps), ``.npy`` files by ``numpy.save``. The
    same seed with the same library versions gives byte-identical files, however many worker
    processes build it.
"""
from __future__ import annotations

import io
import math
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image
from scipy import ndimage

from .._io import FileLock, write_text_atomic
from ..errors import DataError
from .layout import ALL_KEYS, folders_of, split_key

PathLike = Union[str, "os.PathLike[str]"]

#: Bump when the generator changes what it writes (recorded in SYNTHETIC.txt).
GENERATOR_VERSION = 1

MINI_COUNTS: dict[str, int] = {
    "2afc/train/traditional": 300, "2afc/train/cnn": 300, "2afc/train/mix": 300,
    "2afc/val/traditional": 300, "2afc/val/cnn": 300, "2afc/val/superres": 280,
    "2afc/val/deblur": 280, "2afc/val/color": 260, "2afc/val/frameinterp": 250,
    "jnd/val/traditional": 250, "jnd/val/cnn": 250,
}

PHOTOS: tuple[str, ...] = (
    "astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
    "hubble_deep_field.jpg", "ihc.png", "retina.jpg", "camera.png", "brick.png", "grass.png",
    "gravel.png", "coins.png", "moon.png",
)

RATERS = {"train": 2, "val": 5}
JND_RATERS = 3
# Observer constants (documented in the module docstring).
OBS_SIGMA = 1.5
OBS_C = 25.0
OBS_W_COLOR = 0.04
OBS_W_STRUCT = 1.5
OBS_TAU = 0.12
OBS_NOISE = 1.0
JND_THETA = 0.18
JND_TAU = 0.05

Img = np.ndarray  # float32 [64, 64, 3] in [0, 1]


# --------------------------------------------------------------------------- photos & patches

def _photo_dir() -> Path:
    import skimage.data
    return Path(skimage.data.__file__).resolve().parent


def load_photos() -> list[np.ndarray]:
    """The wheel's photos as uint8 RGB arrays (grey replicated; very large ones halved)."""
    folder = _photo_dir()
    out = []
    for name in PHOTOS:
        path = folder / name
        if not path.is_file():
            raise DataError(f"scikit-image photo {path} is missing; make-mini needs the photos "
                            "shipped in the scikit-image wheel")
        with Image.open(path) as im:
            im = im.convert("RGB")
            if min(im.size) > 800:
                im = im.resize((im.size[0] // 2, im.size[1] // 2), Image.Resampling.BOX)
            out.append(np.asarray(im, dtype=np.uint8).copy())
    return out


def _patch(rng: np.random.Generator, photos: list[np.ndarray], half: str) -> np.ndarray:
    """A 64×64 uint8 patch from the ``"top"`` (train) or ``"bottom"`` (val) half of a photo."""
    for _ in range(100):
        img = photos[int(rng.integers(len(photos)))]
        h, w = img.shape[:2]
        rows = (0, h // 2) if half == "top" else (h - h // 2, h)
        side = int(rng.choice([64, 96, 128, 160]))
        side = min(side, rows[1] - rows[0], w)
        y = int(rng.integers(rows[0], rows[1] - side + 1))
        x = int(rng.integers(0, w - side + 1))
        win = img[y:y + side, x:x + side]
        if side != 64:
            win = np.asarray(Image.fromarray(win).resize((64, 64), Image.Resampling.BOX))
        if win.std() >= 10:
            return np.ascontiguousarray(win)
    return np.ascontiguousarray(win)  # pragma: no cover - every photo has textured areas


# --------------------------------------------------------------------------- helpers

def _f(u8: np.ndarray) -> Img:
    return u8.astype(np.float32) / 255.0


def _u8(x: Img) -> np.ndarray:
    return np.clip(np.rint(np.asarray(x, np.float32) * 255.0), 0, 255).astype(np.uint8)


def _pil(x: Img) -> Image.Image:
    return Image.fromarray(_u8(x))


def _unpil(im: Image.Image) -> Img:
    return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


def _blur(x: Img, sigma: float) -> Img:
    return ndimage.gaussian_filter(x, (sigma, sigma, 0), mode="reflect")


def _luma(x: Img) -> np.ndarray:
    return x @ np.array([0.299, 0.587, 0.114], np.float32)


def _shift_int(x: Img, dy: int, dx: int) -> Img:
    p = max(abs(dy), abs(dx))
    if p == 0:
        return x.copy()
    padded = np.pad(x, ((p, p), (p, p), (0, 0)), mode="edge")
    return padded[p - dy:p - dy + 64, p - dx:p - dx + 64]


def _shift_sub(x: Img, dy: float, dx: float) -> Img:
    return ndimage.shift(x, (dy, dx, 0), order=1, mode="reflect")


_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], np.float32)
_YIQ_INV = np.linalg.inv(_YIQ).astype(np.float32)


# --------------------------------------------------------------------------- traditional ops

def op_blur(x, t, rng):
    return _blur(x, 0.4 + 2.0 * t)


def op_noise(x, t, rng):
    return x + rng.normal(0, 0.01 + 0.10 * t, x.shape).astype(np.float32)


def op_jpeg(x, t, rng):
    buf = io.BytesIO()
    _pil(x).save(buf, format="JPEG", quality=int(round(90 - 85 * t)))
    buf.seek(0)
    with Image.open(buf) as im:
        return _unpil(im)


def op_color_gain(x, t, rng):
    gain = 1 + rng.normal(0, 0.25 * t, 3)
    off = rng.normal(0, 0.06 * t, 3)
    return x * gain.astype(np.float32) + off.astype(np.float32)


def op_contrast(x, t, rng):
    c = math.exp(rng.normal(0, 0.5 * t + 0.05))
    m = x.mean()
    return (x - m) * c + m


def op_gamma(x, t, rng):
    return np.clip(x, 0, 1) ** math.exp(rng.normal(0, 0.5 * t + 0.05))


def op_saturation(x, t, rng):
    s = max(0.0, 1 + rng.normal(0, 0.8 * t + 0.05))
    y = _luma(x)[..., None]
    return y + (x - y) * s


def op_hue(x, t, rng):
    a = rng.normal(0, 0.9 * t + 0.05)
    yiq = x @ _YIQ.T
    c, s = math.cos(a), math.sin(a)
    i, q = yiq[..., 1].copy(), yiq[..., 2].copy()
    yiq[..., 1], yiq[..., 2] = c * i - s * q, s * i + c * q
    return yiq @ _YIQ_INV.T


def op_shift(x, t, rng):
    k = 1 + int(3 * t)
    dy, dx = [(k, 0), (-k, 0), (0, k), (0, -k), (k, k), (-k, k)][int(rng.integers(6))]
    return _shift_int(x, dy, dx)


def op_pixelate(x, t, rng):
    f = 2 + int(round(6 * t))
    small = _pil(x).resize((max(1, 64 // f), max(1, 64 // f)), Image.Resampling.BOX)
    return _unpil(small.resize((64, 64), Image.Resampling.NEAREST))


def op_quantize(x, t, rng):
    levels = max(3, int(round(32 - 29 * t)))
    return np.round(np.clip(x, 0, 1) * (levels - 1)) / (levels - 1)


def op_salt_pepper(x, t, rng):
    frac = 0.002 + 0.05 * t
    m = rng.random(x.shape[:2])
    y = x.copy()
    y[m < frac / 2] = 0.0
    y[m > 1 - frac / 2] = 1.0
    return y


def op_motion_blur(x, t, rng):
    n = 3 + int(8 * t)
    k = np.zeros((n, n), np.float32)
    kind = int(rng.integers(4))
    if kind == 0:
        k[n // 2, :] = 1
    elif kind == 1:
        k[:, n // 2] = 1
    elif kind == 2:
        k[np.arange(n), np.arange(n)] = 1
    else:
        k[np.arange(n), np.arange(n)[::-1]] = 1
    k /= k.sum()
    return ndimage.correlate(x, k[..., None], mode="reflect")


def op_sharpen(x, t, rng):
    return x + (1.0 + 3.0 * t) * (x - _blur(x, 1.0))


TRADITIONAL_OPS: tuple[Callable, ...] = (
    op_blur, op_noise, op_jpeg, op_color_gain, op_contrast, op_gamma, op_saturation, op_hue,
    op_shift, op_pixelate, op_quantize, op_salt_pepper, op_motion_blur, op_sharpen,
)


def traditional(x: Img, rng: np.random.Generator, tmax: float = 1.0) -> Img:
    k = int(rng.choice([1, 2, 3], p=[0.4, 0.4, 0.2]))
    for i in rng.choice(len(TRADITIONAL_OPS), size=k, replace=False):
        x = np.clip(TRADITIONAL_OPS[int(i)](x, float(rng.uniform(0, tmax)), rng), 0, 1)
    return x.astype(np.float32)


# --------------------------------------------------------------------------- cnn-like

def cnn_like(x: Img, rng: np.random.Generator, tmax: float = 1.0) -> Img:
    """A random "autoencoder": pool, random 3×3 channel-mixing conv, leaky ReLU, zero-insertion
    upsampling with a random kernel, random 1×1 colour mix, optional noise."""
    t = float(rng.uniform(0.1 * tmax, tmax))
    f = int(rng.choice([1, 2, 4], p=[0.3, 0.5, 0.2] if tmax > 0.5 else [0.6, 0.4, 0.0]))
    h = x.reshape(64 // f, f, 64 // f, f, 3).mean(axis=(1, 3)) if f > 1 else x.copy()
    k = np.zeros((3, 3, 3, 3), np.float32)  # out, in, ky, kx
    for c in range(3):
        k[c, c, 1, 1] = 1.0
    noise = rng.normal(0, 0.12 * t, k.shape).astype(np.float32)
    k += noise - noise.mean(axis=(2, 3), keepdims=True)  # changes structure, keeps the DC gain
    y = np.empty_like(h)
    for o in range(3):
        acc = np.zeros(h.shape[:2], np.float32)
        for i in range(3):
            acc += ndimage.correlate(h[..., i], k[o, i], mode="reflect")
        y[..., o] = acc
    bias = float(rng.uniform(0.0, 0.15 * t))
    y = np.where(y > bias, y, bias + (y - bias) * float(rng.uniform(0.4, 1.0)))
    if f > 1:
        up = np.zeros((64, 64, 3), np.float32)
        up[::f, ::f] = y
        ker = np.outer(*(np.convolve(np.ones(f), np.ones(f)),) * 2).astype(np.float32)
        ker += rng.uniform(0, 0.5 * t, ker.shape).astype(np.float32) * ker.max()
        ker *= (f * f) / ker.sum()
        y = ndimage.correlate(up, ker[..., None], mode="reflect")
    mix = np.eye(3, dtype=np.float32) + rng.normal(0, 0.05 * t, (3, 3)).astype(np.float32)
    y = y @ mix.T
    if rng.random() < 0.4:
        y = y + rng.normal(0, 0.03 * t, y.shape).astype(np.float32)
    return np.clip(y, 0, 1).astype(np.float32)


# --------------------------------------------------------------------------- val flavours

_KERNELS = (Image.Resampling.BOX, Image.Resampling.BILINEAR, Image.Resampling.BICUBIC, Image.Resampling.NEAREST)
_UPS = (Image.Resampling.NEAREST, Image.Resampling.BILINEAR, Image.Resampling.BICUBIC, Image.Resampling.LANCZOS)


def superres_pair(x: Img, rng) -> tuple[Img, Img]:
    f = float(rng.choice([2, 3, 4]))
    small = _pil(x).resize((int(64 / f), int(64 / f)), _KERNELS[int(rng.integers(4))])
    outs = []
    for up in rng.choice(4, size=2, replace=rng.random() < 0.3):
        y = _unpil(small.resize((64, 64), _UPS[int(up)]))
        post = rng.random()
        if post < 0.45:  # over-sharpening, as many SR methods do
            y = y + float(rng.uniform(0.3, 2.5)) * (y - _blur(y, 1.0))
        elif post < 0.65:  # a lossy save of the result
            y = op_jpeg(np.clip(y, 0, 1), float(rng.uniform(0.2, 0.8)), rng)
        elif post < 0.8:  # a smoothing prior
            y = _blur(y, float(rng.uniform(0.5, 1.2)))
        outs.append(np.clip(y, 0, 1).astype(np.float32))
    return outs[0], outs[1]


def deblur_pair(x: Img, rng) -> tuple[Img, Img]:
    t = float(rng.uniform(0.2, 1.0))
    blurred = op_motion_blur(x, t, rng) if rng.random() < 0.4 else _blur(x, 0.8 + 1.7 * t)
    blurred = blurred + rng.normal(0, float(rng.uniform(0.0, 0.02)), x.shape).astype(np.float32)
    outs = []
    for _ in range(2):
        m = int(rng.integers(4))
        if m == 0:  # unsharp, under or over
            y = blurred + float(rng.uniform(0.2, 4.0)) * (blurred - _blur(blurred, float(rng.uniform(0.7, 2.0))))
        elif m == 1:  # iterative sharpening, amplifies noise, rings
            y = blurred.copy()
            for _ in range(int(rng.integers(2, 6))):
                y = y + 0.8 * (y - _blur(y, 1.2))
                y = np.clip(y, -0.2, 1.2)
        elif m == 2:  # denoise only, leaves the blur
            y = _blur(blurred, float(rng.uniform(0.3, 1.0)))
        else:  # sharpen then quantise (restoration with banding)
            y = op_quantize(blurred + 1.5 * (blurred - _blur(blurred, 1.5)), float(rng.uniform(0.3, 0.9)), rng)
        outs.append(np.clip(y, 0, 1).astype(np.float32))
    return outs[0], outs[1]


def _smooth_field(rng, scale: float) -> np.ndarray:
    f = rng.normal(0, 1, (8, 8, 2)).astype(np.float32)
    f = np.asarray(ndimage.zoom(f, (8, 8, 1), order=3), np.float32)
    return f * scale


def color_pair(x: Img, rng) -> tuple[Img, Img]:
    yiq = x @ _YIQ.T
    outs = []
    for _ in range(2):
        c = yiq.copy()
        desat = float(rng.choice([0.0, rng.uniform(0.3, 1.2)], p=[0.1, 0.9]))
        c[..., 1:] *= desat
        c[..., 1:] += rng.normal(0, 0.025, 2).astype(np.float32)
        c[..., 1:] += _smooth_field(rng, float(rng.uniform(0.0, 0.04)))
        outs.append(np.clip(c @ _YIQ_INV.T, 0, 1).astype(np.float32))
    return outs[0], outs[1]


def frameinterp_pair(x: Img, rng) -> tuple[Img, Img]:
    vy, vx = rng.uniform(-3.5, 3.5, 2)
    a = _shift_sub(x, -vy, -vx) + rng.normal(0, 0.005, x.shape).astype(np.float32)
    b = _shift_sub(x, vy, vx) + rng.normal(0, 0.005, x.shape).astype(np.float32)
    outs = []
    for m in rng.choice(4, size=2, replace=rng.random() < 0.3):
        if m == 0:
            y = 0.5 * a + 0.5 * b
        elif m == 1:
            y = a if rng.random() < 0.5 else b
        elif m == 2:
            ey, ex = rng.normal(0, 0.7, 2)
            y = 0.5 * _shift_sub(a, vy + ey, vx + ex) + 0.5 * _shift_sub(b, -vy + ex, -vx + ey)
        else:
            w = float(rng.uniform(0.3, 0.7))
            y = _blur(w * a + (1 - w) * b, float(rng.uniform(0.5, 1.2)))
        outs.append(np.clip(y, 0, 1).astype(np.float32))
    return outs[0], outs[1]


def _independent(fn: Callable) -> Callable:
    def pair(x: Img, rng) -> tuple[Img, Img]:
        return fn(x, rng), fn(x, rng)
    return pair


def _mix(x: Img, rng) -> Img:
    return traditional(x, rng) if rng.random() < 0.5 else cnn_like(x, rng)


PAIR_MAKERS: dict[str, Callable] = {
    "traditional": _independent(traditional), "cnn": _independent(cnn_like),
    "mix": _independent(_mix), "superres": superres_pair, "deblur": deblur_pair,
    "color": color_pair, "frameinterp": frameinterp_pair,
}


# --------------------------------------------------------------------------- observer

_SRGB_LINEAR = np.array([c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
                         for c in np.arange(256) / 255.0], np.float32)
_RGB_TO_XYZ_D65 = (np.array([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169],
                             [0.019334, 0.119193, 0.950227]]) / np.array([[0.95047], [1.0], [1.08883]])
                   ).astype(np.float32)


def _srgb_to_lab(u8: np.ndarray) -> np.ndarray:
    """uint8 sRGB ``[..., 3]`` -> CIE Lab (D65 white), float32."""
    xyz = _SRGB_LINEAR[u8] @ _RGB_TO_XYZ_D65.T
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16.0 / 116.0)
    lab = np.empty_like(f)
    lab[..., 0] = 116.0 * f[..., 1] - 16.0
    lab[..., 1] = 500.0 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200.0 * (f[..., 1] - f[..., 2])
    return lab


def _observer_features(u8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Blurred Lab and L-gradient magnitude of a uint8 batch (the observer's internal view)."""
    lab = _srgb_to_lab(u8)
    blurred = ndimage.gaussian_filter(lab, (0, OBS_SIGMA, OBS_SIGMA, 0), mode="reflect")
    gy, gx = np.gradient(lab[..., 0], axis=(1, 2))
    return blurred, np.sqrt(gx * gx + gy * gy)


def _observer_from_features(fx, fy) -> np.ndarray:
    (bx, gx), (by, gy) = fx, fy
    e = np.sqrt(((bx - by) ** 2).sum(-1)).mean(axis=(1, 2), dtype=np.float64)
    gms = (2 * gx * gy + OBS_C) / (gx * gx + gy * gy + OBS_C)
    s = 1.0 - gms.mean(axis=(1, 2), dtype=np.float64)
    return OBS_W_COLOR * e + OBS_W_STRUCT * s


def observer_distance(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Hidden distance of the simulated observer for uint8 ``[N, 64, 64, 3]`` batches -> ``[N]``.

    ``D = 0.04·E + 1.5·S`` with ``E`` the mean Lab distance after a σ = 1.5 Gaussian blur and
    ``S`` = 1 − mean gradient-magnitude similarity of the L channel (constant 25); see the module
    docstring.
    """
    return _observer_from_features(_observer_features(x), _observer_features(y))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


# --------------------------------------------------------------------------- set builders

def _save_png(arr: np.ndarray, path: Path) -> None:
    Image.fromarray(arr).save(path, format="PNG", compress_level=1, optimize=False)


def _save_npy(value: float, path: Path) -> None:
    with open(path, "wb") as fh:
        np.save(fh, np.array([value], dtype=np.float32), allow_pickle=False)


def _build_set(args: tuple[str, str, int, int]) -> str:
    """Generate and write one set (module level so a worker process can run it)."""
    root, key, seed, n = args
    photos = _PHOTOS_CACHE or load_photos()
    kind, split, cat = split_key(key)
    index = ALL_KEYS.index(key)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), index]))
    half = "top" if split == "train" else "bottom"
    set_dir = Path(root) / key
    for sub in folders_of(key):
        (set_dir / sub).mkdir(parents=True, exist_ok=True)
    stems = [f"{i:06d}" for i in range(n)]
    if kind == "2afc":
        make = PAIR_MAKERS[cat]
        ref = np.empty((n, 64, 64, 3), np.uint8)
        p0 = np.empty_like(ref)
        p1 = np.empty_like(ref)
        for i in range(n):
            r = _patch(rng, photos, half)
            a, b = make(_f(r), rng)
            ref[i], p0[i], p1[i] = r, _u8(a), _u8(b)
        fr = _observer_features(ref)
        d0 = _observer_from_features(fr, _observer_features(p0))
        d1 = _observer_from_features(fr, _observer_features(p1))
        eps = rng.normal(0, OBS_NOISE, n)
        prob = _sigmoid((d0 - d1) / OBS_TAU + eps)
        raters = RATERS[split]
        judge = rng.binomial(raters, prob) / raters
        for i, s in enumerate(stems):
            _save_png(ref[i], set_dir / "ref" / f"{s}.png")
            _save_png(p0[i], set_dir / "p0" / f"{s}.png")
            _save_png(p1[i], set_dir / "p1" / f"{s}.png")
            _save_npy(float(judge[i]), set_dir / "judge" / f"{s}.npy")
    else:
        p0 = np.empty((n, 64, 64, 3), np.uint8)
        p1 = np.empty_like(p0)
        for i in range(n):
            r = _patch(rng, photos, half)
            tmax = float(rng.uniform(0.05, 0.6))
            y = traditional(_f(r), rng, tmax) if cat == "traditional" else cnn_like(_f(r), rng, tmax)
            p0[i], p1[i] = r, _u8(y)
        d = observer_distance(p0, p1)
        prob = _sigmoid((JND_THETA - d) / JND_TAU)
        same = rng.binomial(JND_RATERS, prob) / JND_RATERS
        for i, s in enumerate(stems):
            _save_png(p0[i], set_dir / "p0" / f"{s}.png")
            _save_png(p1[i], set_dir / "p1" / f"{s}.png")
            _save_npy(float(same[i]), set_dir / "same" / f"{s}.npy")
    return key


_PHOTOS_CACHE: list[np.ndarray] = []


def synthetic_note(seed: int) -> str:
    """Text of ``SYNTHETIC.txt`` (depends only on the seed and the generator version)."""
    counts = "\n".join(f"  {k}: {v}" for k, v in MINI_COUNTS.items())
    return (
        "SYNTHETIC DATA - NOT BAPPS, NOT HUMAN JUDGMENTS\n\n"
        "Built by `bapps make-mini` (bapps-toolkit) in the folder layout of BAPPS (Zhang et al.,\n"
        "CVPR 2018). Patches are cut from photos shipped in the scikit-image wheel:\n"
        f"  {', '.join(PHOTOS)}\n"
        "Distortions are synthetic; the judge/same values come from a simulated observer\n"
        "(hidden distance D = 0.04*E + 1.5*S: E = mean Lab distance after a Gaussian blur of\n"
        "sigma 1.5, S = 1 - mean gradient-magnitude similarity of L), turned into rater votes\n"
        "(5 per val triplet, 2 per train triplet, 3 per JND pair). Scores on this set say\n"
        "nothing about agreement with people. See bapps_toolkit/data/mini.py for the details.\n\n"
        f"seed: {int(seed)}\ngenerator version: {GENERATOR_VERSION}\nsets:\n{counts}\n"
    )


def make_mini(out_dir: PathLike, seed: int = 0, *, force: bool = False,
              workers: int | None = None, progress: bool = True) -> Path:
    """Build the synthetic mini set into ``out_dir`` and return its path.

    The set is generated in a temporary folder beside ``out_dir`` and renamed into place only
    when complete, under a lock on ``out_dir``. If ``out_dir`` already holds the mini set of the
    same seed and generator version it is returned untouched; any other non-empty ``out_dir``
    is refused unless ``force=True`` (then it is replaced). ``workers`` processes build the
    sets in parallel (default: every usable core); the files do not depend on it.
    """
    import concurrent.futures as cf
    import multiprocessing as mp

    from .decode import default_workers, make_bar

    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    out = Path(out_dir)
    note = synthetic_note(int(seed))
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder")
    with FileLock(out, "mini set"):
        if out.is_dir() and any(out.iterdir()):
            marker = out / "SYNTHETIC.txt"
            if not force and marker.is_file() and marker.read_text(encoding="utf-8") == note:
                return out
            if not force:
                raise FileExistsError(f"{out} is not empty; pass --force (force=True) to replace it "
                                      "with a freshly built mini set")
        for stale in out.parent.glob(f".{out.name}.build-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = out.parent / f".{out.name}.build-{os.getpid()}-{secrets.token_hex(4)}"
        tmp.mkdir(parents=True)
        try:
            _PHOTOS_CACHE[:] = load_photos()
            jobs = [(str(tmp), key, int(seed), n) for key, n in MINI_COUNTS.items()]
            w = default_workers() if workers is None else int(workers)
            if w < 1:
                raise ValueError(f"workers must be >= 1, got {workers}")
            bar = make_bar(len(jobs), f"make-mini {out.name}", progress, unit="set")
            try:
                if w == 1:
                    for job in jobs:
                        _build_set(job)
                        bar.update(1)
                else:
                    methods = mp.get_all_start_methods()
                    ctx = mp.get_context("fork" if "fork" in methods else "spawn")
                    # Largest sets first so the last worker is not left with a long job.
                    order = sorted(jobs, key=lambda j: -j[3])
                    with cf.ProcessPoolExecutor(max_workers=min(w, len(jobs)), mp_context=ctx) as ex:
                        for _ in ex.map(_build_set, order):
                            bar.update(1)
            finally:
                bar.close()
            write_text_atomic(tmp / "SYNTHETIC.txt", note)
            old = None
            if out.exists():
                old = out.parent / f".{out.name}.build-old-{secrets.token_hex(4)}"
                os.replace(out, old)
            os.replace(tmp, out)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            _PHOTOS_CACHE[:] = []
    return out
