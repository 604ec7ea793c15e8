"""Decoding BAPPS patches and judgment files.

Image rule (what :func:`decode_image` does, matching the official BAPPS loader of Zhang et al.,
CVPR 2018 — PIL ``convert('RGB')`` then torchvision ``Resize(64)``):

1. PIL opens the file; its header size is checked first: a side above :data:`MAX_SIDE` or more
   than :data:`MAX_PIXELS` pixels is refused (decompression-bomb guard) with a
   :class:`~bapps_toolkit.errors.DataError` naming the file.
2. ``convert('RGB')``: grayscale is replicated to three channels, palettes are expanded —
   exactly PIL's conversion. (With the ``fast-decode`` extra most PNGs are decoded by libspng
   instead, to the same pixels: :mod:`.fast_png`.) **Alpha rule**: an image with an alpha
   channel (or a transparent palette entry or colour key) is accepted only when every pixel is
   fully opaque (alpha 255), and its alpha is then dropped, which changes nothing; any
   transparency is refused with a :class:`~bapps_toolkit.errors.DataError` naming the file and
   the count of transparent pixels, because the colour a transparent pixel was seen as depends
   on a background the file does not record (composite it on the background you showed and
   save it without alpha). The official loader dropped alpha silently; BAPPS has no such files.
3. A 64×64 image is returned as is. A square image of another size is resized to 64×64 with
   PIL's bilinear filter (which is what ``Resize(64)`` does to a PIL image: shorter side to 64,
   bilinear, antialiased by PIL).
4. A non-square image is **refused**: ``Resize(64)`` keeps the aspect ratio, so the official
   loader would produce a 64×L patch that cannot be batched with the others, and BAPPS holds no
   such patches. Crop your images square before using them.

Output: ``uint8`` array ``[64, 64, 3]`` (HWC, RGB, values 0…255).

Other patch sizes (``bapps pack --size N``, ``size=N``; the researcher's own sets): the same
rule with ``N`` for 64, except that a non-square image is **centre-cropped** to a square of its
shorter side first (the crop's top-left corner at ``((W − s) // 2, (H − s) // 2)``, ``s =
min(W, H)``) and then resized bilinearly to N×N when ``s ≠ N``. An image already N×N is kept
byte for byte. Without ``--size`` a set keeps its images' own size, which must be square and
the same for every image (:mod:`.manifest` for a CSV-defined set,
:func:`~.pack.folder_side` for a folder in the BAPPS layout, whose official patches are 64×64):
``bapps pack`` never resizes unless asked.

Judgment files (``judge/*.npy``, ``same/*.npy``) hold one float: shape ``()``, ``(1,)`` or
``(1, 1)``, a finite value in [0, 1]. Anything else is a DataError naming the file.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from .._io import PathLike
from ..errors import DataError
from .fast_png import decode_png_rgb, fast_png_eligible, png_decoder

PATCH = 64
#: Largest side accepted before decoding (pixels).
MAX_SIDE = 16384
#: Largest pixel count accepted before decoding (64 MPix).
MAX_PIXELS = 64 * 1024 * 1024


_MODES_16BIT = ("I;16", "I;16B", "I;16L", "I;16N")


class ImageFileError(DataError):
    """An image file cannot be used.

    :attr:`path` is the file as the caller named it, so a reader that knows where the name came
    from (a manifest's row and field) can say so. It survives the trip back from a worker process.
    """

    def __init__(self, message: str, path: PathLike) -> None:
        super().__init__(message)
        self.path = os.fspath(path)

    def __reduce__(self) -> tuple[type[ImageFileError], tuple[str, str]]:
        return type(self), (str(self), self.path)


def _named(exc: Exception, path: PathLike, other: str) -> Exception:
    """The :class:`ImageFileError` naming ``path`` for an exception of PIL's reading.

    ``other`` (with ``{path}`` and ``{exc}``) is the message for a corrupt file. Anything else is
    returned unchanged.
    """
    if isinstance(exc, FileNotFoundError):
        return ImageFileError(f"image file {path} does not exist", path)
    if isinstance(exc, IsADirectoryError):
        return ImageFileError(f"image {path} is a folder, not an image file", path)
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return ImageFileError(f"image {path} has absurd dimensions, refusing to decode it "
                              f"(decompression-bomb guard: {exc})", path)
    if isinstance(exc, OSError) and exc.errno is not None:  # the file system's, not PIL's
        return ImageFileError(f"cannot open image {path} ({exc.strerror or exc})", path)
    if isinstance(exc, (OSError, SyntaxError, ValueError)):
        return ImageFileError(other.format(path=path, exc=exc), path)
    return exc


def _fast_png(im: Image.Image, fh: BinaryIO) -> np.ndarray | None:
    """The optional fast decoder's RGB pixels of an opened PNG (:mod:`.fast_png`), or None."""
    size = os.fstat(fh.fileno()).st_size
    if not fast_png_eligible(im.format, im.mode, im.size, size, bool(getattr(im, "is_animated", False))):
        return None
    fh.seek(0)
    return decode_png_rgb(fh.read(size), im.size)  # no more than the size checked, should the file grow


_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def has_alpha(im: Image.Image) -> bool:
    """Whether an opened image carries transparency.

    That is an alpha band, or a transparent palette entry or colour key (``transparency`` in
    its info).

    Args:
        im: an image PIL has opened (the header is enough).

    Returns:
        True when the alpha rule of the module docstring applies to it.
    """
    return im.mode in _ALPHA_MODES or "transparency" in im.info


def _opaque(im: Image.Image, path: PathLike) -> Image.Image:
    """The image without its alpha when every pixel is opaque; an ImageFileError otherwise."""
    alpha = np.asarray(im.convert("RGBA").getchannel("A"))
    clear = int(np.count_nonzero(alpha < 255))
    if clear:
        raise ImageFileError(
            f"image {path} has {clear} transparent pixel(s) (alpha < 255): the colour they were seen "
            "as depends on a background the file does not record, so it is refused rather than "
            "guessed; composite it on the background you showed and save it without alpha", path)
    return im.convert("RGB")


def read_rgb(path: PathLike, *, max_side: int = MAX_SIDE, max_pixels: int = MAX_PIXELS,
             square: bool = False, scale_16bit: bool = False) -> np.ndarray:
    """Decode any image file to ``uint8 [H, W, 3]`` RGB, with the checks every reader shares.

    The header size is checked before decoding (a side over ``max_side`` or more than
    ``max_pixels`` pixels is refused; PIL's decompression-bomb check stays on); ``square=True``
    refuses non-square images before decoding; ``scale_16bit=True`` maps 16-bit grey to 8 bits
    (``value / 257``) instead of PIL's clipping; then PIL's ``convert('RGB')``. Every failure is a
    :class:`DataError` naming the file. A PNG may be decoded by the optional fast decoder
    (:mod:`.fast_png`), which gives the same pixels.
    """
    fast = png_decoder() != "pil"  # outside the try: a bad BAPPS_PNG_DECODER is not the file's fault
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with open(path, "rb") as fh, Image.open(fh) as im:
                w, h = im.size
                if w <= 0 or h <= 0 or w > max_side or h > max_side or w * h > max_pixels:
                    raise ImageFileError(f"image {path} has absurd dimensions {w}x{h} (limit {max_side} "
                                         f"per side, {max_pixels} pixels); refusing to decode it", path)
                if square and w != h:
                    raise ImageFileError(f"image {path} is {w}x{h}, not square: the official loader's "
                                         "Resize(64) would keep the aspect ratio and give a patch that "
                                         "cannot be batched; crop it square first", path)
                alpha = has_alpha(im)
                decoded = _fast_png(im, fh) if fast and not alpha else None
                if decoded is not None:
                    return decoded
                im.load()
                if alpha:
                    im = _opaque(im, path)
                if scale_16bit and im.mode in _MODES_16BIT:
                    grey = np.asarray(im, dtype=np.float64) / 257.0
                    im = Image.fromarray(np.clip(np.rint(grey), 0, 255).astype(np.uint8), mode="L")
                if im.mode != "RGB":
                    im = im.convert("RGB")
                return np.array(im, dtype=np.uint8)
    except DataError:
        raise
    except Exception as exc:
        raise _named(exc, path, "cannot decode image {path}: corrupt or truncated ({exc})") from None


def image_size(path: PathLike, *, max_side: int = MAX_SIDE, max_pixels: int = MAX_PIXELS
               ) -> tuple[int, int]:
    """``(width, height)`` from an image file's header (nothing is decoded).

    The same size limits as :func:`read_rgb` apply. Every failure is a :class:`DataError` naming
    the file.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
    except Exception as exc:
        raise _named(exc, path, "cannot read image {path}: not an image file PIL can open ({exc})") from None
    if w <= 0 or h <= 0 or w > max_side or h > max_side or w * h > max_pixels:
        raise ImageFileError(f"image {path} has absurd dimensions {w}x{h} (limit {max_side} per side, "
                             f"{max_pixels} pixels); refusing to decode it", path)
    return int(w), int(h)


SizedFile = tuple[Path, tuple[int, int]]


def check_shared_square(path: Path, wh: tuple[int, int], first: SizedFile | None, where: str) -> SizedFile:
    """Refuse an image of ``wh`` that is not square or not the size of ``first``; the new ``first``.

    The rule of a set packed at its own size: every image square and of one size; nothing is
    resized unless the user asks (``--size N``).

    Args:
        path: the image file.
        wh: its ``(width, height)`` (:func:`image_size`).
        first: the first image seen and its size, or ``None`` for the first one.
        where: what the message starts with (the set, or the manifest row and field).

    Returns:
        ``first``, or ``(path, wh)`` when ``first`` is ``None``.

    Raises:
        DataError: naming the file and its size (and the first file and its size).
    """
    if wh[0] != wh[1]:
        raise DataError(f"{where}: image {path} is {wh[0]}x{wh[1]}, not square; pass "
                        "--size N (size=N) to centre-crop and resize every image to N x N")
    if first is None:
        return path, wh
    if wh != first[1]:
        raise DataError(f"{where}: images of mixed sizes: {path} is {wh[0]}x{wh[1]} but "
                        f"{first[0]} is {first[1][0]}x{first[1][1]}; nothing is resized unless "
                        "asked: pass --size N (size=N) to bring them all to N x N")
    return first


def centre_crop(arr: np.ndarray) -> np.ndarray:
    """The centred square of side ``min(H, W)`` of an ``[H, W, C]`` image.

    The rule is in the module docstring; a square image is returned as is.
    """
    h, w = arr.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return arr[top:top + s, left:left + s]


def decode_image(path: PathLike, size: int = PATCH, *, crop: bool = False) -> np.ndarray:
    """Decode one patch file to ``uint8 [size, size, 3]`` RGB (rule in the module docstring).

    ``crop=False`` refuses a non-square image (the official rule); ``crop=True`` centre-crops it.
    """
    if int(size) < 1:
        raise DataError(f"patch size must be >= 1, got {size}")
    arr = read_rgb(path, square=not crop)
    arr = centre_crop(arr)
    if arr.shape[0] != size:
        arr = np.array(Image.fromarray(arr).resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)
    return arr


def decode_images(paths: Sequence[PathLike], out: np.ndarray | None = None, size: int = PATCH, *,
                  crop: bool = False) -> np.ndarray:
    """Decode many patches into ``uint8 [len(paths), size, size, 3]`` (optionally into ``out``)."""
    if out is None:
        out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    for i, p in enumerate(paths):
        out[i] = decode_image(p, size, crop=crop)
    return out


def load_judgment(path: PathLike) -> float:
    """Read one ``judge``/``same`` ``.npy`` file: one finite value in [0, 1] (as a float)."""
    try:
        with open(path, "rb") as fh:
            arr = np.load(fh, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"judgment file {path} does not exist") from None
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"cannot read judgment file {path}: not a valid .npy file ({exc})") from None
    if not isinstance(arr, np.ndarray):
        raise DataError(f"judgment file {path} holds an archive, not one array")
    if arr.shape not in ((), (1,), (1, 1)):
        raise DataError(f"judgment file {path} has shape {arr.shape}; expected one value "
                        "(shape (), (1,) or (1, 1))")
    if arr.dtype.kind not in "fiu":
        raise DataError(f"judgment file {path} has dtype {arr.dtype}; expected a real number")
    value = float(arr.reshape(()))
    if not np.isfinite(value) or value < 0.0 or value > 1.0:
        raise DataError(f"judgment file {path} holds {value}, outside [0, 1]")
    return value


def load_judgments(paths: Sequence[PathLike]) -> np.ndarray:
    """``float32 [len(paths)]`` of :func:`load_judgment` values."""
    return np.array([load_judgment(p) for p in paths], dtype=np.float32)

