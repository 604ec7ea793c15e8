"""Loading BAPPS sets (Zhang et al., CVPR 2018) from a folder root or a packed ``.h5`` file.

A *source* is either a folder in the official layout (see :mod:`.layout`; PNGs are decoded by
the rule in :mod:`.images`) or a file written by ``bapps pack`` (checked to be ours — format
marker and schema — before use). Images are held as ``uint8 [N, S, S, 3]`` (NHWC, RGB; ``S`` =
64 for BAPPS and every folder source, the set's own patch side for a packed user set);
:func:`to_model_input` turns them into NCHW float in [-1, 1] exactly as the official loader does
(``ToTensor`` then ``Normalize(0.5, 0.5)``: ``(x / 255 - 0.5) / 0.5``).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._io import PathLike
from ..errors import DataError
from .decode import decode_pool, decode_set, make_bar
from .h5format import open_h5, read_stems
from .h5safe import read_rows
from .layout import (
    SetFiles,
    discover,
    expand_datasets,
    folders_of,
    is_synthetic_root,
    resolve_root,
    scan_set,
    split_key,
)

Array = np.ndarray | torch.Tensor
DeviceLike = None | str | torch.device
Datasets = None | str | Sequence[str]


@dataclass
class TwoAFCSet:
    """One 2AFC split/category of triplets with their human judgments.

    ``ref``, ``p0``, ``p1`` are uint8 ``[N, S, S, 3]`` (numpy, or torch on a device; ``S`` =
    :attr:`size`), ``judge`` float32 ``[N]`` = fraction of raters who preferred ``p1``;
    ``n_votes`` int64 ``[N]`` raters per triplet where the set was packed from vote counts, else
    ``None``.
    """

    split: str
    category: str
    ref: Array
    p0: Array
    p1: Array
    judge: Array
    stems: list[str]
    synthetic: bool = False
    n_votes: Array | None = None

    @property
    def key(self) -> str:
        """The set's key, ``"2afc/<split>/<category>"``."""
        return f"2afc/{self.split}/{self.category}"

    @property
    def size(self) -> int:
        """The patch side ``S`` in pixels (64 for BAPPS)."""
        return int(self.ref.shape[1])

    def __len__(self) -> int:
        return len(self.stems)


@dataclass
class JNDSet:
    """One JND split/category of patch pairs with their human judgments.

    ``p0``, ``p1`` are uint8 ``[N, S, S, 3]``, ``same`` float32 ``[N]`` = fraction of raters who
    said the two patches look the same; ``n_votes`` as in :class:`TwoAFCSet`.
    """

    split: str
    category: str
    p0: Array
    p1: Array
    same: Array
    stems: list[str]
    synthetic: bool = False
    n_votes: Array | None = None

    @property
    def key(self) -> str:
        """The set's key, ``"jnd/<split>/<category>"``."""
        return f"jnd/{self.split}/{self.category}"

    @property
    def size(self) -> int:
        """The patch side ``S`` in pixels (64 for BAPPS)."""
        return int(self.p0.shape[1])

    def __len__(self) -> int:
        return len(self.stems)


# --------------------------------------------------------------------------- sources

def is_h5(source: PathLike) -> bool:
    """Whether ``source`` is a packed file (a file) rather than a dataset folder.

    Raises:
        DataError: ``source`` does not exist.
    """
    p = Path(source)
    if not p.exists():
        raise DataError(f"BAPPS source {p} does not exist (give a dataset folder or a packed .h5)")
    return p.is_file()


def find_sets(source: PathLike) -> list[str]:
    """Set keys present in a folder root or a packed file, in canonical order."""
    if is_h5(source):
        f, info = open_h5(source)
        f.close()
        return list(info["keys"])
    return discover(source)


def _device(device: DeviceLike) -> torch.device | None:
    return None if device is None else torch.device(device)


def _h5_array(ds: Any, device: torch.device | None, start: int = 0, stop: int | None = None) -> Array:
    """Read ``ds[start:stop]`` whole (one contiguous read) to numpy, or onto ``device``.

    ``ds`` belongs to a file checked by :func:`~.h5format.open_h5`, so its rows are stored in
    the file and the buffer is no larger than what the file holds. On a non-CPU device the
    rows stream through a bounded host buffer, so host memory stays small however large the
    set.
    """
    stop = ds.shape[0] if stop is None else stop
    n = stop - start
    shape = (n,) + tuple(ds.shape[1:])
    if device is None or device.type == "cpu":
        arr = np.empty(shape, dtype=ds.dtype)
        if n:
            read_rows(ds, ds.file.filename, start, stop, arr)
        return arr if device is None else torch.from_numpy(arr)
    tdtype = torch.from_numpy(np.empty(0, ds.dtype)).dtype
    out = torch.empty(shape, dtype=tdtype, device=device)
    step = max(1, (64 << 20) // max(1, int(np.prod(shape[1:])) * ds.dtype.itemsize))
    host = torch.empty((min(step, n),) + shape[1:], dtype=tdtype, pin_memory=device.type == "cuda")
    for s in range(0, n, step):
        e = min(s + step, n)
        view = host[: e - s]
        read_rows(ds, ds.file.filename, start + s, start + e, view.numpy())
        out[s:e].copy_(view, non_blocking=False)
    return out


def _to_device(arr: np.ndarray, device: torch.device | None) -> Array:
    if device is None:
        return arr
    t = torch.from_numpy(arr)
    return t if device.type == "cpu" else t.to(device)


def _build(key: str, arrays: dict[str, Array], stems: list[str], synthetic: bool) -> Any:
    kind, split, cat = split_key(key)
    if kind == "2afc":
        return TwoAFCSet(split, cat, arrays["ref"], arrays["p0"], arrays["p1"], arrays["judge"],
                         stems, synthetic, arrays.get("n_votes"))
    return JNDSet(split, cat, arrays["p0"], arrays["p1"], arrays["same"], stems, synthetic,
                  arrays.get("n_votes"))


def _names(g: Any, key: str) -> tuple[str, ...]:
    """The arrays of a packed set to read: its folders, and ``n_votes`` where present."""
    return (*folders_of(key), *(("n_votes",) if "n_votes" in g else ()))


def load_sets(source: PathLike, datasets: Datasets, kind: str, device: DeviceLike,
          workers: int | None, progress: bool) -> list[Any]:
    """Load the ``kind`` (``"2afc"`` or ``"jnd"``) sets named by ``datasets`` whole into memory.

    Args:
        source: a packed file or a dataset folder.
        datasets: which sets (as for :func:`load_2afc`).
        kind: ``"2afc"`` (returns :class:`TwoAFCSet`) or ``"jnd"`` (returns :class:`JNDSet`).
        device: ``None`` for numpy arrays, else the torch device of the tensors.
        workers: decoding processes for a folder source.
        progress: show a progress bar.

    Returns:
        The sets, in the order the keys expand to.
    """
    dev = _device(device)
    if is_h5(source):
        f, info = open_h5(source)
        try:
            keys = expand_datasets(datasets, info["keys"], kind, where=str(source))
            out = []
            for key in keys:
                g = f[key]
                arrays = {name: _h5_array(g[name], dev) for name in _names(g, key)}
                out.append(_build(key, arrays, read_stems(g["stems"]), info["synthetic"]))
            return out
        finally:
            f.close()
    keys = expand_datasets(datasets, discover(source), kind, where=str(source))
    base = resolve_root(source)
    synthetic = is_synthetic_root(base)
    sets = [scan_set(base, k) for k in keys]
    n_images = sum(len(sf) * (len(folders_of(sf.key)) - 1) for sf in sets)
    bar = make_bar(n_images, f"decode {kind}", progress)
    out = []
    try:
        with decode_pool(workers, n_images) as pool:
            for sf in sets:
                decoded = decode_set(sf, pool, bar)
                out.append(_build(sf.key, {k: _to_device(v, dev) for k, v in decoded.items()},
                                  list(sf.stems), synthetic))
    finally:
        bar.close()
    return out


def load_2afc(source: PathLike, datasets: Datasets = None, *, device: DeviceLike = None,
              workers: int | None = None, progress: bool = False) -> list[TwoAFCSet]:
    """Load 2AFC sets whole into memory.

    ``datasets``: ``None`` (all present), keys (``"2afc/val/cnn"``) or short forms
    (``"val/cnn"``, ``"val"``, ``"train"``). ``device=None`` gives numpy arrays; otherwise torch
    tensors (uint8 images, float32 judgments) on that device. From a packed file each array is
    read whole in one pass; from a folder the PNGs are decoded by ``workers`` processes.
    """
    return load_sets(source, datasets, "2afc", device, workers, progress)


def load_jnd(source: PathLike, datasets: Datasets = None, *, device: DeviceLike = None,
             workers: int | None = None, progress: bool = False) -> list[JNDSet]:
    """Load JND sets whole into memory (arguments as :func:`load_2afc`)."""
    return load_sets(source, datasets, "jnd", device, workers, progress)


def _iter_chunks(source: PathLike, key: str, chunk_size: int, kind: str,
                 device: DeviceLike) -> Iterator[Any]:
    if int(chunk_size) < 1:
        raise DataError(f"chunk_size must be >= 1, got {chunk_size}")
    chunk_size = int(chunk_size)
    dev = _device(device)
    if is_h5(source):
        f, info = open_h5(source)
        try:
            keys = expand_datasets(key, info["keys"], kind, where=str(source))
            full = _single(keys, key)
            g = f[full]
            stems = read_stems(g["stems"])
            for s in range(0, len(stems), chunk_size):
                e = min(s + chunk_size, len(stems))
                arrays = {name: _h5_array(g[name], dev, s, e) for name in _names(g, full)}
                yield _build(full, arrays, stems[s:e], info["synthetic"])
        finally:
            f.close()
        return
    keys = expand_datasets(key, discover(source), kind, where=str(source))
    full = _single(keys, key)
    base = resolve_root(source)
    synthetic = is_synthetic_root(base)
    sf = scan_set(base, full)
    folders = folders_of(full)
    for s in range(0, len(sf), chunk_size):
        e = min(s + chunk_size, len(sf))
        part = SetFiles(full, sf.folder, sf.stems[s:e], {k: v[s:e] for k, v in sf.files.items()})
        decoded = decode_set(part)
        yield _build(full, {k: _to_device(decoded[k], dev) for k in folders}, part.stems, synthetic)


def _single(keys: list[str], asked: str) -> str:
    if len(keys) != 1:
        raise DataError(f"{asked!r} names {len(keys)} sets ({', '.join(keys)}); give one, e.g. {keys[0]!r}")
    return keys[0]


def iter_2afc_chunks(source: PathLike, key: str, chunk_size: int = 1024, *,
                     device: DeviceLike = None) -> Iterator[TwoAFCSet]:
    """Yield consecutive pieces (at most ``chunk_size`` triplets) of one 2AFC set.

    Memory stays bounded by the chunk size. ``key``: ``"2afc/val/cnn"`` or ``"val/cnn"``.
    """
    return _iter_chunks(source, key, chunk_size, "2afc", device)


def iter_jnd_chunks(source: PathLike, key: str, chunk_size: int = 1024, *,
                    device: DeviceLike = None) -> Iterator[JNDSet]:
    """Yield consecutive pieces (at most ``chunk_size`` pairs) of one JND set."""
    return _iter_chunks(source, key, chunk_size, "jnd", device)


def to_model_input(x_uint8_nhwc: Array, *, device: DeviceLike = None,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 NHWC images (numpy or torch) -> NCHW ``dtype`` tensor in [-1, 1].

    Computes ``(x / 255 - 0.5) / 0.5`` — the official ``ToTensor`` + ``Normalize(0.5, 0.5)``
    — after moving the uint8 data to ``device`` (a quarter of the bytes of a float copy).
    """
    x = x_uint8_nhwc
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"to_model_input expects a numpy array or torch tensor, got {type(x).__name__}")
    if x.dtype != torch.uint8:
        raise DataError(f"to_model_input expects uint8 images, got {x.dtype}")
    if x.ndim != 4 or x.shape[-1] != 3:
        raise DataError(f"to_model_input expects NHWC images with 3 channels, got shape {tuple(x.shape)}")
    if not dtype.is_floating_point:
        raise DataError(f"dtype must be a floating type, got {dtype}")
    if device is not None:
        x = x.to(device)
    # Re-layout while still uint8 (a quarter of the bytes), then convert and scale in place.
    y = x.permute(0, 3, 1, 2).contiguous().to(dtype)
    return y.div_(255).sub_(0.5).div_(0.5)


# --------------------------------------------------------------------------- torch datasets
