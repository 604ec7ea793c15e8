"""Every pair of a folder's images as a blocked distance matrix (retrieval, duplicate search).

Each image is decoded and sent through the network **once**. For LPIPS metrics (Zhang et al.,
CVPR 2018; not ``spatial``) the distance comes from the cached unit-normalised tap features::

    d(i, j) = Σ_l (1 / H_l W_l) Σ_{c,h,w} w_{l,c} (f̂_i − f̂_j)²
            = n_i + n_j − 2 G_ij,   n_i = Σ_l Σ w_{l,c} f̂_i² / H_l W_l,   G_ij = Σ_l Σ w_{l,c} f̂_i f̂_j / H_l W_l

(the same sum as :meth:`~bapps_toolkit.metrics.lpips.LPIPS.distance_from_features`, rewritten
as a Gram matrix: one matrix product per block instead of a subtraction per pair). The product
and the norms are taken in float64 on the float32 features, so ``n_i + n_j − 2 G_ij`` does not
lose the small distances of near-duplicates to cancellation; results equal pairwise calls up
to float32 noise (tested). Negative round-off is clipped to 0; the diagonal is 0.

Other metrics fall back to pairwise calls in blocks: the decoded images (uint8) are kept
instead of features and every pair ``i < j`` of two blocks is scored in batches by the pixel
budget.

Memory: the cached rows (features or images) stay in memory while they take at most
``cache_bytes`` (default :data:`CACHE_BYTES`); beyond that they go to an unlinked temporary file
(``tempfile``'s folder) and are read back one block at a time, so the peak is two blocks of
``block_bytes`` (default :data:`BLOCK_BYTES`) whatever the number of images. Disk use is the
cache: AlexNet taps of a 256² image are 0.64 M floats (2.5 MB), of a 64² image 32 k (0.13 MB).

All images must share one size (each pair is scored at native resolution); mixed sizes are an
error naming two files of different sizes, unless ``resize="WxH"`` says the common size.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .._distributed import DistContext, sharded
from .._io import atomic_path
from ..errors import DataError
from ..metrics import Metric
from ..metrics.lpips import LPIPS
from .pair_stream import iter_batches, plan_batches, to_input

#: Cached rows (features or decoded images) kept in memory up to this many bytes (1 GiB).
CACHE_BYTES = 1 << 30
#: Memory of the two blocks of rows a block of the matrix is computed from (256 MiB).
BLOCK_BYTES = 256 << 20


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How a scoring run batches and caches (``bapps score`` options; defaults in :mod:`.pair_run`).

    ``batch_size`` and ``max_batch_pixels`` bound a batch; ``num_workers`` decoding processes
    (``None``: chosen from the cores); ``cache_bytes`` bounds the decoded images or features kept
    for all-pairs scoring, ``block_bytes`` one block of its distance matrix.
    """

    device: torch.device
    batch_size: int
    max_batch_pixels: int
    num_workers: int | None
    cache_bytes: int = CACHE_BYTES
    block_bytes: int = BLOCK_BYTES

Skip = Callable[[int, int, int, int], bool]
Block = tuple[int, int, int, int]


class RowStore:
    """``n`` rows of ``k`` values: in memory up to ``cache_bytes``, else in an unlinked temp file."""

    def __init__(self, n: int, k: int, dtype: Any, cache_bytes: int):
        self.n, self.k, self.dtype = n, k, np.dtype(dtype)
        self.row_bytes = k * self.dtype.itemsize
        self.mem: np.ndarray | None = None
        self.fh: Any = None
        if n * self.row_bytes <= cache_bytes:
            self.mem = np.empty((n, k), dtype=self.dtype)
        else:
            self.fh = tempfile.TemporaryFile(prefix="bapps-score-cache-")

    def put(self, i0: int, rows: np.ndarray) -> None:
        """Store ``rows`` as the cached rows from ``i0`` on."""
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if self.mem is not None:
            self.mem[i0:i0 + len(rows)] = rows
        else:
            os.pwrite(self.fh.fileno(), rows.tobytes(), i0 * self.row_bytes)

    def get(self, i0: int, i1: int) -> np.ndarray:
        """The cached rows ``i0`` to ``i1`` (exclusive)."""
        if self.mem is not None:
            return self.mem[i0:i1]
        data = os.pread(self.fh.fileno(), (i1 - i0) * self.row_bytes, i0 * self.row_bytes)
        return np.frombuffer(data, dtype=self.dtype).reshape(i1 - i0, self.k)

    def close(self) -> None:
        """Close the temporary file, if the cache spilled to one."""
        if self.fh is not None:
            self.fh.close()


def uses_features(metric: Metric) -> bool:
    """Whether the matrix comes from cached features (LPIPS, not spatial) or pairwise calls."""
    return isinstance(metric, LPIPS) and not metric.spatial


def _layer_weights(metric: LPIPS, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Per tap ``w_c / (H W)`` as ``[1, C, 1, 1]`` float64 (baseline: ``w = 1``)."""
    lins = metric.lin_weights() if metric.lpips else [torch.ones(f.shape[1]) for f in feats]
    return [w.detach().reshape(1, -1, 1, 1).double().cpu() / (f.shape[2] * f.shape[3])
            for w, f in zip(lins, feats, strict=True)]


def _feature_batches(metric: LPIPS, files: Sequence[Path], targets: np.ndarray,
                     opts: RunOptions) -> Callable[[Sequence[list[int]]], Iterator[Any]]:
    """Per batch of images ``(indices, feature rows float32, norms n_i, flat weights or None)``."""
    dev, items = opts.device, [(p,) for p in files]

    def run(mine: Sequence[list[int]]) -> Iterator[Any]:
        first = True
        for idx, (imgs,) in iter_batches(items, targets, list(mine), num_workers=opts.num_workers,
                                         pin_memory=dev.type == "cuda"):
            x = to_input(imgs, dev)
            if first:
                metric.validate(x, x)
            feats = metric.features(x)
            weights = _layer_weights(metric, feats)
            wflat = np.concatenate([w.expand(1, -1, f.shape[2], f.shape[3]).reshape(-1).numpy()
                                    for w, f in zip(weights, feats, strict=True)]) if first else None
            norms = torch.stack([(f.double().cpu() ** 2 * w).sum(dim=(1, 2, 3))
                                 for f, w in zip(feats, weights, strict=True)]).sum(dim=0).numpy()
            yield idx, torch.cat([f.reshape(len(idx), -1) for f in feats], dim=1).float().cpu().numpy(), norms, wflat
            first = False

    return run


def _feature_store(metric: LPIPS, files: Sequence[Path], targets: np.ndarray, opts: RunOptions,
                   bar: Any, ctx: DistContext) -> tuple[RowStore, np.ndarray, np.ndarray]:
    """Features of every image (one pass): the store, the norms ``n_i`` and the flat weights."""
    n = len(files)
    store: RowStore | None = None
    norms = np.zeros(n, dtype=np.float64)
    wflat: np.ndarray | None = None
    batches = plan_batches(targets, range(n), 2 * opts.batch_size, 2 * opts.max_batch_pixels)
    for idx, rows, part, w in sharded(ctx, batches, _feature_batches(metric, files, targets, opts)):
        if store is None:
            store = RowStore(n, rows.shape[1], np.float32, opts.cache_bytes)
        wflat = w if wflat is None else wflat
        norms[idx] = part
        store.put(idx[0], rows)
        bar.update(len(idx))
    if store is None or wflat is None:
        raise DataError("no images to store features of")
    return store, norms, wflat


def _image_store(files: Sequence[Path], targets: np.ndarray, opts: RunOptions, bar: Any,
                 ctx: DistContext) -> RowStore:
    h, w = int(targets[0, 0]), int(targets[0, 1])
    store = RowStore(len(files), h * w * 3, np.uint8, opts.cache_bytes)
    batches = plan_batches(targets, range(len(files)), 2 * opts.batch_size, 2 * opts.max_batch_pixels)
    items = [(p,) for p in files]

    def run(mine: Sequence[list[int]]) -> Iterator[tuple[list[int], np.ndarray]]:
        for idx, (imgs,) in iter_batches(items, targets, list(mine), num_workers=opts.num_workers):
            yield idx, imgs.reshape(len(idx), -1).numpy()

    for idx, rows in sharded(ctx, batches, run):
        store.put(idx[0], rows)
        bar.update(len(idx))
    return store


def _pairs_in_block(i0: int, i1: int, j0: int, j1: int) -> tuple[np.ndarray, np.ndarray]:
    """Local ``(row, col)`` indices of the pairs ``i < j`` of a block."""
    ii, jj = np.meshgrid(np.arange(i0, i1), np.arange(j0, j1), indexing="ij")
    keep = ii < jj
    return ii[keep] - i0, jj[keep] - j0


def _pairwise_block(metric: Metric, rows_i: np.ndarray, rows_j: np.ndarray, ii: np.ndarray, jj: np.ndarray,
                    hw: tuple[int, int], opts: RunOptions, first: bool) -> np.ndarray:
    dev, out = opts.device, np.full((len(rows_i), len(rows_j)), np.nan)
    per = max(1, min(opts.batch_size, opts.max_batch_pixels // (hw[0] * hw[1])))
    for s in range(0, len(ii), per):
        a, b = ii[s:s + per], jj[s:s + per]
        x0 = to_input(torch.from_numpy(rows_i[a].reshape(-1, 3, hw[0], hw[1])), dev)
        x1 = to_input(torch.from_numpy(rows_j[b].reshape(-1, 3, hw[0], hw[1])), dev)
        d = metric.distance(x0, x1, validate=first and s == 0)
        out[a, b] = d.reshape(len(a)).double().cpu().numpy()
    return out


def iter_blocks(metric: Metric, files: Sequence[Path], targets: np.ndarray, opts: RunOptions, *,
                skip: Skip | None = None, progress: bool = False,
                ctx: DistContext | None = None) -> Iterator[tuple[int, int, np.ndarray]]:
    """Blocks ``(i0, j0, D)`` of the upper triangle (``j0 >= i0``) of the distance matrix.

    ``D[r, c]`` is ``d(files[i0 + r], files[j0 + c])`` for ``i0 + r < j0 + c`` (NaN elsewhere in a
    diagonal block). ``opts``: device, batch_size, max_batch_pixels, num_workers, cache_bytes,
    block_bytes. ``skip(i0, i1, j0, j1)`` → True leaves a block out (already computed).

    ``ctx`` (under ``torchrun``): the batches of images of the per-image pass go round-robin
    across ranks (each image through the network once in all), every rank receives every
    rank's rows, then the blocks go round-robin across ranks and every rank yields every block,
    in the order of one process (:func:`~bapps_toolkit._distributed.sharded`). Each rank holds
    the whole cache (``cache_bytes`` each, spilled to its own temporary file beyond).
    """
    ctx = ctx or DistContext()
    n = len(files)
    feat = uses_features(metric)
    with tqdm(total=n, desc="features" if feat else "decoding", unit="image", disable=not progress,
              leave=False) as bar:
        if feat:
            if not isinstance(metric, LPIPS):
                raise TypeError(f"feature reuse needs an LPIPS metric, got {type(metric).__name__}")
            store, norms, wflat = _feature_store(metric, files, targets, opts, bar, ctx)
        else:
            store, norms, wflat = _image_store(files, targets, opts, bar, ctx), np.zeros(0), np.zeros(0)
    r = int(max(1, min(n, opts.block_bytes // (2 * store.k * (8 if feat else 1)))))
    coords = [(i0, min(n, i0 + r), j0, min(n, j0 + r)) for i0 in range(0, n, r) for j0 in range(i0, n, r)]
    coords = [c for c in coords if skip is None or not skip(*c)]
    try:
        yield from sharded(ctx, coords, _block_runner(metric, store, norms, wflat, feat,
                                                      (int(targets[0, 0]), int(targets[0, 1])), opts))
    finally:
        store.close()


def _block_runner(metric: Metric, store: RowStore, norms: np.ndarray, wflat: np.ndarray, feat: bool,
                  hw: tuple[int, int], opts: RunOptions) -> Callable[[Sequence[Block]], Iterator[Any]]:
    """The blocks ``(i0, j0, D)`` of a list of block coordinates ``(i0, i1, j0, j1)``."""
    def run(mine: Sequence[Block]) -> Iterator[tuple[int, int, np.ndarray]]:
        first, last_i0, rows_i = True, -1, np.zeros(0)
        for i0, i1, j0, j1 in mine:
            if i0 != last_i0:
                rows_i, last_i0 = store.get(i0, i1), i0
                if feat:
                    rows_i = rows_i.astype(np.float64) * wflat
            rows_j = rows_i if (j0 == i0 and not feat) else store.get(j0, j1)
            if feat:
                g = torch.from_numpy(rows_i) @ torch.from_numpy(rows_j.astype(np.float64)).T
                d = (norms[i0:i1, None] + norms[None, j0:j1] - 2.0 * g.numpy()).clip(min=0.0)
            else:
                ii, jj = _pairs_in_block(i0, i1, j0, j1)
                d = _pairwise_block(metric, rows_i, rows_j, ii, jj, hw, opts, first)
                first = False
            yield i0, j0, d

    return run


def pair_index(i: np.ndarray, j: np.ndarray, n: int) -> np.ndarray:
    """Position of pair ``(i, j)``, ``i < j``, in ``itertools.combinations(range(n), 2)`` order."""
    pos: np.ndarray = i * n - i * (i + 1) // 2 + (j - i - 1)
    return pos


def block_pair_positions(i0: int, i1: int, j0: int, j1: int, n: int) -> np.ndarray:
    """Positions (:func:`pair_index`) of the pairs ``i < j`` of block ``[i0, i1) × [j0, j1)``."""
    ii, jj = _pairs_in_block(i0, i1, j0, j1)
    return pair_index(ii + i0, jj + j0, n)


def iter_pair_chunks(blocks: Iterator[tuple[int, int, np.ndarray]], n: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The blocks as ``(pair positions, distances)`` of their pairs ``i < j``."""
    for i0, j0, d in blocks:
        ii, jj = _pairs_in_block(i0, i0 + d.shape[0], j0, j0 + d.shape[1])
        yield pair_index(ii + i0, jj + j0, n), d[ii, jj]


def write_matrix_npy(path: Path, n: int, blocks: Iterator[tuple[int, int, np.ndarray]],
                     convert: Callable[[Any], Any] | None = None) -> None:
    """Write the symmetric ``[n, n]`` float64 matrix to ``path`` block by block, atomically.

    ``path`` is a .npy that ``np.load`` opens; the blocks go in with positioned writes (no n² array in memory)
    into a temp file that is then renamed. ``convert`` maps the values (e.g. to the similarity form; the
    diagonal is ``convert(0)``).
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False, "shape": (n, n)})
        head = fh.tell()
        fh.truncate(head + n * n * 8)
        fd = fh.fileno()

        def put(r0: int, c0: int, block: np.ndarray) -> None:
            for r in range(block.shape[0]):
                os.pwrite(fd, np.ascontiguousarray(block[r], dtype="<f8").tobytes(), head + ((r0 + r) * n + c0) * 8)

        for i0, j0, d in blocks:
            d = d.copy()
            if i0 == j0:
                d = np.triu(np.nan_to_num(d, nan=0.0), 1)
                d = d + d.T
                np.fill_diagonal(d, 0.0)
            v = convert(d) if convert is not None else d
            put(i0, j0, v)
            if i0 != j0:
                put(j0, i0, v.T)
        with contextlib.suppress(OSError):
            os.fsync(fd)
