"""Decoding a BAPPS set's files (PNGs and judgment ``.npy`` files) into arrays.

Decoding runs optionally in worker processes; the module is shared by the packer (:mod:`.pack`)
and the folder loaders (:mod:`.datasets`).

The image and judgment rules are in :mod:`.images`; this module only slices a set into tasks,
runs them in order (in-process or in a process pool) and assembles the results.
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .._workers import process_pool
from ..errors import DataError
from .images import PATCH, decode_images, load_judgments
from .layout import SetFiles, folders_of

#: Items per decode task handed to a worker process.
TASK_ITEMS = 256
#: Below this many images the decode runs in-process (a pool costs more than it saves).
POOL_MIN_IMAGES = 2048


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def default_workers() -> int:
    """Decode processes of a pack by default: one per usable core."""
    return usable_cores()


def _progress_enabled(progress: bool) -> bool:
    return bool(progress) and sys.stderr.isatty()


def make_bar(total: int, desc: str, progress: bool, unit: str = "img") -> tqdm[Any]:
    """A transient tqdm progress bar of ``total`` ``unit`` (disabled unless ``progress`` applies)."""
    return tqdm(total=total, desc=desc, unit=unit, disable=not _progress_enabled(progress),
                dynamic_ncols=True, leave=False)


def _decode_task(image_lists: tuple[tuple[str, ...], ...], judgment_list: tuple[str, ...],
                 size: int = PATCH, crop: bool = False) -> tuple[list[np.ndarray], np.ndarray]:
    """Worker: decode one slice of a set (module level so it pickles)."""
    return ([decode_images(paths, size=size, crop=crop) for paths in image_lists],
            load_judgments(judgment_list))


def _tasks(sf: SetFiles) -> Iterator[tuple[int, tuple[tuple[str, ...], ...], tuple[str, ...]]]:
    """Slices of a set, each with its image files and judgment files.

    The judgment files of a slice are empty when ``sf.judgments`` holds the values already (a
    CSV-defined set).
    """
    folders = folders_of(sf.key)
    img_folders, jfolder = folders[:-1], folders[-1]
    for start in range(0, len(sf), TASK_ITEMS):
        stop = min(start + TASK_ITEMS, len(sf))
        images = tuple(tuple(str(p) for p in sf.files[f][start:stop]) for f in img_folders)
        judg = () if sf.judgments is not None else tuple(str(p) for p in sf.files[jfolder][start:stop])
        yield start, images, judg


@contextlib.contextmanager
def decode_pool(workers: int | None, n_images: int) -> Iterator[cf.Executor | None]:
    """A process pool for decoding, or ``None`` when one worker (or a small job) suffices.

    Its workers end with this process, even when it is killed
    (:func:`~bapps_toolkit._workers.process_pool`).
    """
    w = default_workers() if workers is None else int(workers)
    if w < 1:
        raise DataError(f"workers must be >= 1, got {workers}")
    if w == 1 or n_images < POOL_MIN_IMAGES:
        yield None
        return
    ex = process_pool(w)
    try:
        yield ex
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


def iter_decoded(sf: SetFiles, pool: cf.Executor | None, bar: Any = None, size: int = PATCH,
                 crop: bool = False) -> Iterator[tuple[int, list[np.ndarray], np.ndarray]]:
    """Yield ``(start, [images per image folder], judgments)`` for consecutive slices, in order.

    Images are decoded to ``size`` by the rule of :mod:`.images` (``crop``: centre-crop a
    non-square image instead of refusing it).
    """
    for start, arrays, j in _iter_raw(sf, pool, bar, size, crop):
        if sf.judgments is not None:
            j = np.asarray(sf.judgments[start:start + len(arrays[0])], dtype=np.float32)
        yield start, arrays, j


def _iter_raw(sf: SetFiles, pool: cf.Executor | None, bar: Any, size: int, crop: bool
              ) -> Iterator[tuple[int, list[np.ndarray], np.ndarray]]:
    n_img_folders = len(folders_of(sf.key)) - 1
    if pool is None:
        for start, images, judg in _tasks(sf):
            arrays, j = _decode_task(images, judg, size, crop)
            if bar is not None:
                bar.update(len(images[0]) * n_img_folders)
            yield start, arrays, j
        return
    window = 2 * (getattr(pool, "_max_workers", 2) or 2)
    pending: collections.deque[tuple[int, int, cf.Future[tuple[list[np.ndarray], np.ndarray]]]] = collections.deque()
    tasks = _tasks(sf)
    try:
        for start, images, judg in tasks:
            pending.append((start, len(images[0]), pool.submit(_decode_task, images, judg, size, crop)))
            if len(pending) >= window:
                s, n, fut = pending.popleft()
                arrays, j = fut.result()
                if bar is not None:
                    bar.update(n * n_img_folders)
                yield s, arrays, j
        while pending:
            s, n, fut = pending.popleft()
            arrays, j = fut.result()
            if bar is not None:
                bar.update(n * n_img_folders)
            yield s, arrays, j
    finally:
        for _, _, fut in pending:
            fut.cancel()


def decode_set(sf: SetFiles, pool: cf.Executor | None = None, bar: Any = None, size: int = PATCH,
               crop: bool = False) -> dict[str, np.ndarray]:
    """Decode a whole set into memory: ``{"ref": ..., "p0": ..., "judge": ...}``."""
    folders = folders_of(sf.key)
    n = len(sf)
    out = {f: np.empty((n, size, size, 3), np.uint8) for f in folders[:-1]}
    out[folders[-1]] = np.empty((n,), np.float32)
    for start, arrays, j in iter_decoded(sf, pool, bar, size, crop):
        stop = start + len(j)
        for f, a in zip(folders[:-1], arrays, strict=False):
            out[f][start:stop] = a
        out[folders[-1]][start:stop] = j
    return out
