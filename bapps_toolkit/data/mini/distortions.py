"""Synthetic distortions of the mini set (float RGB ``[64, 64, 3]`` in [0, 1]).

They are the *traditional* operations, the random *cnn*-like network, and the paired val
flavours (see the package docstring of :mod:`bapps_toolkit.data.mini`). Every operation takes
the image, a strength ``t`` in [0, 1] and the random generator, and returns the distorted image
(which may leave [0, 1]: the callers clip).
"""
from __future__ import annotations

import io
import math
from collections.abc import Callable

import numpy as np
from PIL import Image
from scipy import ndimage

Img = np.ndarray  # float32 [64, 64, 3] in [0, 1]
#: A traditional operation: image, strength in [0, 1], random generator -> distorted image.
Op = Callable[[Img, float, np.random.Generator], Img]
#: A distortion of one image from its random generator.
Distortion = Callable[[Img, np.random.Generator], Img]
#: Two distorted versions of one image from its random generator.
PairMaker = Callable[[Img, np.random.Generator], tuple[Img, Img]]


# --------------------------------------------------------------------------- helpers

def to_float(u8: np.ndarray) -> Img:
    """A uint8 image as float32 in [0, 1]."""
    return u8.astype(np.float32) / 255.0


def to_u8(x: Img) -> np.ndarray:
    """A [0, 1] image as uint8 (rounded, clipped)."""
    return np.asarray(np.clip(np.rint(np.asarray(x, np.float32) * 255.0), 0, 255).astype(np.uint8))


def _pil(x: Img) -> Image.Image:
    return Image.fromarray(to_u8(x))


def _unpil(im: Image.Image) -> Img:
    return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


def _blur(x: Img, sigma: float) -> Img:
    return np.asarray(ndimage.gaussian_filter(x, (sigma, sigma, 0), mode="reflect"))


def _luma(x: Img) -> np.ndarray:
    return x @ np.array([0.299, 0.587, 0.114], np.float32)


def _shift_int(x: Img, dy: int, dx: int) -> Img:
    p = max(abs(dy), abs(dx))
    if p == 0:
        return np.asarray(x.copy())
    padded = np.pad(x, ((p, p), (p, p), (0, 0)), mode="edge")
    return padded[p - dy:p - dy + 64, p - dx:p - dx + 64]


def _shift_sub(x: Img, dy: float, dx: float) -> Img:
    return np.asarray(ndimage.shift(x, (dy, dx, 0), order=1, mode="reflect"))


_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], np.float32)
_YIQ_INV = np.linalg.inv(_YIQ).astype(np.float32)


# --------------------------------------------------------------------------- traditional ops

def op_blur(x: Img, t: float, rng: np.random.Generator) -> Img:
    """Gaussian blur of sigma ``0.4 + 2t``."""
    return _blur(x, 0.4 + 2.0 * t)


def op_noise(x: Img, t: float, rng: np.random.Generator) -> Img:
    """Additive Gaussian noise of standard deviation ``0.01 + 0.1t``."""
    return x + rng.normal(0, 0.01 + 0.10 * t, x.shape).astype(np.float32)


def op_jpeg(x: Img, t: float, rng: np.random.Generator) -> Img:
    """A JPEG round trip at quality ``round(90 - 85t)``."""
    buf = io.BytesIO()
    _pil(x).save(buf, format="JPEG", quality=int(round(90 - 85 * t)))
    buf.seek(0)
    with Image.open(buf) as im:
        return _unpil(im)


def op_color_gain(x: Img, t: float, rng: np.random.Generator) -> Img:
    """Random per-channel gain and offset, spread growing with ``t``."""
    gain = 1 + rng.normal(0, 0.25 * t, 3)
    off = rng.normal(0, 0.06 * t, 3)
    return x * gain.astype(np.float32) + off.astype(np.float32)


def op_contrast(x: Img, t: float, rng: np.random.Generator) -> Img:
    """Contrast scaled about the image mean by a random log-normal factor."""
    c = math.exp(rng.normal(0, 0.5 * t + 0.05))
    m = x.mean()
    return np.asarray((x - m) * c + m)


def op_gamma(x: Img, t: float, rng: np.random.Generator) -> Img:
    """A random gamma curve (log-normal exponent) on the clipped image."""
    return np.asarray(np.clip(x, 0, 1) ** math.exp(rng.normal(0, 0.5 * t + 0.05)))


def op_saturation(x: Img, t: float, rng: np.random.Generator) -> Img:
    """Saturation scaled about the luma by a random non-negative factor."""
    s = max(0.0, 1 + rng.normal(0, 0.8 * t + 0.05))
    y = _luma(x)[..., None]
    return np.asarray(y + (x - y) * s)


def op_hue(x: Img, t: float, rng: np.random.Generator) -> Img:
    """A hue rotation by a random angle in the YIQ chroma plane."""
    a = rng.normal(0, 0.9 * t + 0.05)
    yiq = x @ _YIQ.T
    c, s = math.cos(a), math.sin(a)
    i, q = yiq[..., 1].copy(), yiq[..., 2].copy()
    yiq[..., 1], yiq[..., 2] = c * i - s * q, s * i + c * q
    return np.asarray(yiq @ _YIQ_INV.T)


def op_shift(x: Img, t: float, rng: np.random.Generator) -> Img:
    """An integer shift of ``1 + int(3t)`` pixels in a random direction (edges replicated)."""
    k = 1 + int(3 * t)
    dy, dx = [(k, 0), (-k, 0), (0, k), (0, -k), (k, k), (-k, k)][int(rng.integers(6))]
    return _shift_int(x, dy, dx)


def op_pixelate(x: Img, t: float, rng: np.random.Generator) -> Img:
    """Box downsampling by ``2 + round(6t)`` and nearest-neighbour upsampling."""
    f = 2 + int(round(6 * t))
    small = _pil(x).resize((max(1, 64 // f), max(1, 64 // f)), Image.Resampling.BOX)
    return _unpil(small.resize((64, 64), Image.Resampling.NEAREST))


def op_quantize(x: Img, t: float, rng: np.random.Generator) -> Img:
    """Quantisation to ``max(3, round(32 - 29t))`` levels per channel."""
    levels = max(3, int(round(32 - 29 * t)))
    return np.asarray(np.round(np.clip(x, 0, 1) * (levels - 1)) / (levels - 1))


def op_salt_pepper(x: Img, t: float, rng: np.random.Generator) -> Img:
    """Salt-and-pepper noise on a fraction ``0.002 + 0.05t`` of the pixels."""
    frac = 0.002 + 0.05 * t
    m = rng.random(x.shape[:2])
    y = x.copy()
    y[m < frac / 2] = 0.0
    y[m > 1 - frac / 2] = 1.0
    return np.asarray(y)


def op_motion_blur(x: Img, t: float, rng: np.random.Generator) -> Img:
    """Linear motion blur of length ``3 + int(8t)``, horizontal, vertical or diagonal at random."""
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
    return np.asarray(ndimage.correlate(x, k[..., None], mode="reflect"))


def op_sharpen(x: Img, t: float, rng: np.random.Generator) -> Img:
    """Unsharp masking of amount ``1 + 3t``."""
    return np.asarray(x + (1.0 + 3.0 * t) * (x - _blur(x, 1.0)))


TRADITIONAL_OPS: tuple[Op, ...] = (
    op_blur, op_noise, op_jpeg, op_color_gain, op_contrast, op_gamma, op_saturation, op_hue,
    op_shift, op_pixelate, op_quantize, op_salt_pepper, op_motion_blur, op_sharpen,
)


def traditional(x: Img, rng: np.random.Generator, tmax: float = 1.0) -> Img:
    """One to three distinct traditional operations of random strength up to ``tmax``, clipped.

    Args:
        x: float RGB ``[64, 64, 3]`` in [0, 1].
        rng: the random generator.
        tmax: the largest strength ``t`` drawn.

    Returns:
        The distorted image, float32 in [0, 1].
    """
    k = int(rng.choice([1, 2, 3], p=[0.4, 0.4, 0.2]))
    for i in rng.choice(len(TRADITIONAL_OPS), size=k, replace=False):
        x = np.clip(TRADITIONAL_OPS[int(i)](x, float(rng.uniform(0, tmax)), rng), 0, 1)
    return x.astype(np.float32)


# --------------------------------------------------------------------------- cnn-like

def cnn_like(x: Img, rng: np.random.Generator, tmax: float = 1.0) -> Img:
    """A random "autoencoder" applied to ``x``; returns float32 in [0, 1].

    Its stages: pool, random 3×3 channel-mixing conv, leaky ReLU, zero-insertion upsampling with
    a random kernel, random 1×1 colour mix, optional noise.
    """
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
    return np.asarray(np.clip(y, 0, 1).astype(np.float32))


# --------------------------------------------------------------------------- val flavours

_KERNELS = (Image.Resampling.BOX, Image.Resampling.BILINEAR, Image.Resampling.BICUBIC, Image.Resampling.NEAREST)
_UPS = (Image.Resampling.NEAREST, Image.Resampling.BILINEAR, Image.Resampling.BICUBIC, Image.Resampling.LANCZOS)


def superres_pair(x: Img, rng: np.random.Generator) -> tuple[Img, Img]:
    """Two super-resolution-like outputs of one downsampled ``x`` (val flavour ``superres``)."""
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


def deblur_pair(x: Img, rng: np.random.Generator) -> tuple[Img, Img]:
    """Two deblurring-like restorations of one blurred ``x`` (val flavour ``deblur``)."""
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


def _smooth_field(rng: np.random.Generator, scale: float) -> np.ndarray:
    f = rng.normal(0, 1, (8, 8, 2)).astype(np.float32)
    f = np.asarray(ndimage.zoom(f, (8, 8, 1), order=3), np.float32)
    return f * scale


def color_pair(x: Img, rng: np.random.Generator) -> tuple[Img, Img]:
    """Two colourisation-like versions of ``x``: chroma rescaled and shifted (val flavour ``color``)."""
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


def frameinterp_pair(x: Img, rng: np.random.Generator) -> tuple[Img, Img]:
    """Two frame-interpolation-like frames between shifted copies of ``x`` (val flavour ``frameinterp``)."""
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


def _independent(fn: Distortion) -> PairMaker:
    def pair(x: Img, rng: np.random.Generator) -> tuple[Img, Img]:
        return fn(x, rng), fn(x, rng)
    return pair


def _mix(x: Img, rng: np.random.Generator) -> Img:
    return traditional(x, rng) if rng.random() < 0.5 else cnn_like(x, rng)


PAIR_MAKERS: dict[str, PairMaker] = {
    "traditional": _independent(traditional), "cnn": _independent(cnn_like),
    "mix": _independent(_mix), "superres": superres_pair, "deblur": deblur_pair,
    "color": color_pair, "frameinterp": frameinterp_pair,
}
