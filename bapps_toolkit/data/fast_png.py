"""Optional fast PNG decoding for :func:`~bapps_toolkit.data.images.read_rgb`.

With the ``fast-decode`` extra installed (``pip install bapps-toolkit[fast-decode]``, which
brings `imagecodecs <https://pypi.org/project/imagecodecs/>`_), PNG files are decoded by
libspng through ``imagecodecs.spng_decode`` instead of PIL, which is faster (figures:
``benchmarks/bench_score.py`` and the README); decoding is what limits folder scoring
(``bapps score``) on a few cores. The pixels are the same: what :func:`decode_png_rgb` returns is bit for bit what PIL's
``Image.open(f).convert("RGB")`` gives, or it returns ``None`` and PIL decodes the file:

* only PNGs whose PIL mode is ``1``, ``L``, ``P``, ``RGB`` or ``RGBA`` and whose samples have 8
  bits or fewer are decoded here (a 16-bit file, grey + alpha, an animated PNG: PIL);
* grey is replicated to three channels and alpha is dropped, as ``convert("RGB")`` does;
  palettes are expanded without their transparency, and gamma, colour profiles and EXIF
  orientation are ignored, as PIL ignores them;
* a file libspng refuses goes to PIL, which accepts or refuses it as it always did; libspng
  verifies the zlib checksum of the image data and refuses missing rows, so a corrupt or
  truncated file that PIL refuses is not decoded into wrong pixels here.

The size limits and the decompression-bomb check run on PIL's reading of the header before
either decoder sees the data (:func:`~bapps_toolkit.data.images.read_rgb`).

The environment variable ``BAPPS_PNG_DECODER=pil`` makes PIL decode every file even where the
extra is installed (``auto``, the default, uses the fast decoder when it imports).
"""
from __future__ import annotations

import functools
import os
from collections.abc import Callable

import numpy as np

#: PIL modes of the PNGs the fast decoder handles (with 8 bits per sample or fewer).
FAST_MODES = frozenset({"1", "L", "P", "RGB", "RGBA"})
#: Environment variable choosing the PNG decoder: ``auto`` (default) or ``pil``.
DECODER_ENV = "BAPPS_PNG_DECODER"
#: Extra bytes a PNG may hold beyond its raw pixel rows and still be read whole into memory for
#: the fast decoder (metadata chunks); a larger file is streamed by PIL.
_SLACK_BYTES = 1 << 20

Decoder = Callable[[bytes], np.ndarray]


@functools.lru_cache(maxsize=1)
def _spng_decode() -> Decoder | None:
    try:
        import imagecodecs  # optional: the fast-decode extra
    except ImportError:
        return None
    fn = getattr(imagecodecs, "spng_decode", None)
    return fn if callable(fn) else None


def png_decoder() -> str:
    """The decoder :func:`decode_png_rgb` uses now: ``"imagecodecs"`` or ``"pil"``.

    Raises:
        ValueError: when ``BAPPS_PNG_DECODER`` holds something other than ``auto`` or ``pil``.
    """
    choice = os.environ.get(DECODER_ENV, "auto").strip().lower() or "auto"
    if choice not in ("auto", "pil"):
        raise ValueError(f"{DECODER_ENV} must be 'auto' or 'pil', got {choice!r}")
    if choice == "pil" or _spng_decode() is None:
        return "pil"
    return "imagecodecs"


def fast_png_eligible(fmt: str | None, mode: str, size: tuple[int, int], file_bytes: int,
                      animated: bool = False) -> bool:
    """Whether a file PIL opened as ``fmt``/``mode``, ``size`` (W, H), ``file_bytes`` long goes fast.

    The fast decoder may still hand it back to PIL (:func:`decode_png_rgb`).
    """
    if fmt != "PNG" or mode not in FAST_MODES or animated:
        return False
    w, h = size
    return file_bytes <= 2 * h * (1 + 4 * w) + _SLACK_BYTES


def _to_rgb(arr: np.ndarray) -> np.ndarray | None:
    """``uint8 [H, W, 3]`` from a decoded grey, RGB or RGBA array (None for anything else)."""
    if arr.dtype != np.uint8:
        return None
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim == 3 and arr.shape[2] == 3:
        return arr
    if arr.ndim == 3 and arr.shape[2] == 4:
        return np.ascontiguousarray(arr[:, :, :3])
    return None


def decode_png_rgb(data: bytes, size: tuple[int, int]) -> np.ndarray | None:
    """Decode PNG bytes to ``uint8 [H, W, 3]`` RGB with the fast decoder, or ``None``.

    Args:
        data: the whole file, already opened by PIL and found within the size limits.
        size: ``(W, H)`` from PIL's reading of the header.

    Returns:
        The pixels PIL's ``convert("RGB")`` gives, or ``None`` where the fast decoder is not
        installed (or ``BAPPS_PNG_DECODER=pil``), cannot give those pixels, or refuses the file:
        the caller then decodes it with PIL.
    """
    decode = _spng_decode() if png_decoder() != "pil" else None
    if decode is None:
        return None
    try:
        arr = decode(data)
    except Exception:  # libspng's refusal: PIL decides about this file
        return None
    rgb = _to_rgb(arr)
    if rgb is None or rgb.shape[:2] != (size[1], size[0]):
        return None
    return rgb
