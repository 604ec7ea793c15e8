"""Streaming decode of image files for :mod:`.pairs`.

Header sizes, the size rule, batches by a pixel budget, and a :class:`torch.utils.data.DataLoader` whose worker
processes decode the next batches while the metric runs on the current one.

Memory: at most ``(num_workers · 2 + 1)`` batches of decoded images are alive at once (the
DataLoader's prefetch of 2 per worker plus the batch being scored), each within the pixel budget,
so the peak does not grow with the number of files. What grows is the bookkeeping only: per
pair two paths, a size and one float.

Size rule (``resize``):

* ``None`` (default): the two images of a pair must have the same size; otherwise a
  :class:`~bapps_toolkit.errors.DataError` names both files and their sizes, before any image is
  decoded. Every size is scored at its native resolution.
* ``"first"``: the second image is resized to the first image's size.
* ``"WxH"`` (or ``(H, W)``): every image whose size differs is resized to ``W×H``.

A resize uses PIL's bilinear filter (antialiased when shrinking); the pair's ``resized`` flag
says it happened.
"""
from __future__ import annotations

import ctypes
import functools
import re
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from .._io import PathLike
from .._workers import loader_worker_init
from ..data.decode import usable_cores
from ..data.images import image_size, read_rgb
from ..errors import DataError, UsageError

Resize = str | tuple[int, int] | None

#: Largest side accepted (pixels).
MAX_SIDE = 32768
#: Largest pixel count accepted before decoding (256 MPix).
MAX_PIXELS = 256 * 1024 * 1024
#: Default pixel budget of one batch (sum of H*W over the pairs of a batch): 256 KPix, e.g. 4
#: pairs at 256², 1 at 512², 64 at 64²; a larger pair runs alone. Chosen by measurement (this
#: project's 2-core CPU, load 1–1.6, lpips-alex in the channels_last layout, best of 3–4
#: alternating rounds): 256² scored 79.6 / 83.5 / 72.1 pairs/s at 128 K / 256 K / 512 K, 64²
#: 1164 / 1040 / 1050, 512² 21.4 / 19.9 / 18.2 at 256 K / 512 K / 1 M — the activations of a
#: few images stay in the cache (in the NCHW layout, earlier, 2 MPix had been the faster one).
DEFAULT_BATCH_PIXELS = 256 * 1024
#: Default most pairs per batch.
DEFAULT_BATCH_SIZE = 64


def default_workers() -> int:
    """Decoding worker processes by default: half the usable cores, at most 8.

    None (decoding in this process, between batches) on one or two cores, where a worker only takes CPU time
    from the metric's threads (measured faster in-process on 2 cores at 256²).
    """
    cores = usable_cores()
    return 0 if cores <= 2 else min(8, cores // 2)


def read_image(path: PathLike) -> np.ndarray:
    """Decode ``path`` to ``uint8 [H, W, 3]`` RGB (16-bit grey scaled by 1/257); errors name the file."""
    return read_rgb(Path(path), max_side=MAX_SIDE, max_pixels=MAX_PIXELS, scale_16bit=True)


def header_size(path: Path) -> tuple[int, int]:
    """``(H, W)`` from the file's header, without decoding; an unreadable file is named.

    The size limits of :func:`read_image` apply.
    """
    w, h = image_size(path, max_side=MAX_SIDE, max_pixels=MAX_PIXELS)
    return h, w


def parse_resize(resize: Resize) -> None | str | tuple[int, int]:
    """``None``, ``"first"`` or ``(H, W)`` from the option's forms (``"WxH"``, ``(H, W)``)."""
    if resize is None or resize == "first":
        return resize
    if isinstance(resize, str):
        m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", resize)
        if not m:
            raise UsageError(f"resize must be 'first' or WxH (e.g. 256x256), got {resize!r}")
        w, h = int(m.group(1)), int(m.group(2))
    else:
        h, w = (int(v) for v in resize)
    if not (0 < h <= MAX_SIDE and 0 < w <= MAX_SIDE):
        raise UsageError(f"resize {w}x{h}: each side must be 1…{MAX_SIDE}")
    return h, w


def _fmt(hw: tuple[int, int]) -> str:
    return f"{hw[1]}x{hw[0]}"


def pair_targets(pairs: Sequence[tuple[Path, ...]], sizes: dict[Path, tuple[int, int]],
                 resize: Resize) -> tuple[np.ndarray, np.ndarray]:
    """Per pair the size it is scored at ``[N, 2]`` (H, W) and whether a resize happens ``[N]``."""
    rule = parse_resize(resize)
    targets = np.empty((len(pairs), 2), dtype=np.int64)
    resized = np.zeros(len(pairs), dtype=bool)
    for k, pair in enumerate(pairs):
        hws = [sizes[p] for p in pair]
        if isinstance(rule, tuple):
            target = rule
        elif rule == "first" or all(hw == hws[0] for hw in hws):
            target = hws[0]
        else:
            raise DataError(
                f"{pair[0]} is {_fmt(hws[0])} but {pair[1]} is {_fmt(hws[1])}: the images of a pair must "
                "have the same size (each pair is scored at its native resolution); pass resize='first' "
                "(--resize first) to resize the second image to the first's size, or resize='WxH' "
                "(--resize WxH) to resize every image to W x H (bilinear)")
        targets[k] = target
        resized[k] = any(hw != tuple(target) for hw in hws)
    return targets, resized


def plan_batches(targets: np.ndarray, todo: Sequence[int], batch_size: int, max_batch_pixels: int) -> list[list[int]]:
    """Indices ``todo`` in batches of one size each, sizes in order of first appearance.

    A batch holds at most ``batch_size`` items and, unless one item is larger, ``max_batch_pixels`` pixels
    (H*W).
    """
    if int(batch_size) < 1:
        raise UsageError(f"batch_size must be >= 1, got {batch_size}")
    if int(max_batch_pixels) < 1:
        raise UsageError(f"max_batch_pixels must be >= 1, got {max_batch_pixels}")
    by_size: dict[tuple[int, int], list[int]] = {}
    for k in todo:
        by_size.setdefault((int(targets[k, 0]), int(targets[k, 1])), []).append(int(k))
    batches = []
    for (h, w), idx in by_size.items():
        per = max(1, min(int(batch_size), int(max_batch_pixels) // (h * w)))
        batches += [idx[s:s + per] for s in range(0, len(idx), per)]
    return batches


def _resize(arr: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    if arr.shape[:2] == hw:
        return arr
    return np.asarray(Image.fromarray(arr).resize((hw[1], hw[0]), Image.Resampling.BILINEAR), dtype=np.uint8)


class ImageTuples(Dataset[tuple[int, list[np.ndarray], str]]):
    """Item ``k``: ``(k, [uint8 [H, W, 3] per file of tuple k], error message or "")``.

    Decoding runs in the DataLoader's worker processes; a file that fails is reported as a
    message (raised in the main process by :func:`iter_batches`), not as a worker traceback.
    """

    def __init__(self, items: Sequence[tuple[Path, ...]], targets: np.ndarray):
        self.items = items
        self.targets = targets

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k: int) -> tuple[int, list[np.ndarray], str]:
        hw = (int(self.targets[k, 0]), int(self.targets[k, 1]))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return k, [_resize(read_image(p), hw) for p in self.items[k]], ""
        except DataError as exc:
            return k, [], str(exc)


def _collate(batch: list[tuple[int, list[np.ndarray], str]]) -> tuple[list[int], list[torch.Tensor], str]:
    errors = [err for _, _, err in batch if err]
    if errors:
        return [], [], errors[0]
    idx = [k for k, _, _ in batch]
    n_files = len(batch[0][1])
    # NCHW already here (in the worker), so the main process allocates only the float input
    return idx, [torch.from_numpy(np.stack([arrs[f] for _, arrs, _ in batch])).permute(0, 3, 1, 2).contiguous()
                 for f in range(n_files)], ""


def to_input(x: torch.Tensor, device: Any = None) -> torch.Tensor:
    """uint8 NCHW batch → float32 in [-1, 1]: ``(x / 255 − 0.5) / 0.5``.

    The same operations as :func:`~bapps_toolkit.data.to_model_input` (which takes NHWC), so the values are
    identical.
    """
    return x.to(device).to(torch.float32).div_(255).sub_(0.5).div_(0.5)


def iter_batches(items: Sequence[tuple[Path, ...]], targets: np.ndarray, batches: list[list[int]], *,
                 num_workers: int | None = None, pin_memory: bool = False
                 ) -> Iterator[tuple[list[int], list[torch.Tensor]]]:
    """Decoded batches ``(indices, [uint8 NCHW tensor per file position])`` in ``batches`` order.

    ``num_workers``: decoding processes (``None``: :func:`default_workers`; 0: in this process).
    """
    nw = default_workers() if num_workers is None else int(num_workers)
    if nw < 0:
        raise UsageError(f"num_workers must be >= 0, got {num_workers}")
    if not batches:
        return
    nw = min(nw, len(batches))
    extra: dict[str, Any] = {"prefetch_factor": 2} if nw else {}
    extra.update({"worker_init_fn": loader_worker_init()} if nw else {})
    loader = DataLoader(ImageTuples(items, targets), batch_sampler=batches, num_workers=nw,
                        collate_fn=_collate, pin_memory=pin_memory, **extra)
    trim = _malloc_trim() if nw else None
    for idx, tensors, err in loader:
        if err:
            raise DataError(err)
        yield idx, tensors
        del tensors
        if trim is not None:
            trim(0)


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    """Glibc's ``malloc_trim`` (None elsewhere, e.g. musl or macOS).

    With decode workers, the main process's freed batch-sized blocks (under glibc's mmap
    threshold: inputs, temporaries) were kept by the allocator instead of being reused, and it
    grew by about the size of a batch's inputs per batch (150 MB after 800 pairs of 128² at 8
    pairs per batch); trimming after each batch keeps it flat (``tests/test_score_stream.py``).
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_size_t]
    return cast(Callable[[int], int], fn)
