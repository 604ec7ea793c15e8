"""Distances between your own image files (what the official lpips_2imgs / lpips_2dirs /
lpips_1dir_allpairs scripts do), streamed in bounded memory.

>>> from bapps_toolkit import score_folders
>>> res = score_folders("d0", "d1", metric="lpips-alex", out="dists.csv")   # doctest: +SKIP
>>> res.distances[0], res.unit, res.direction                               # doctest: +SKIP

* :func:`score_image_pair` — one pair of files.
* :func:`score_folders` — files of two folders paired by name (an error lists the names missing
  on either side).
* :func:`score_all_pairs` — every unordered pair of a folder's images (CSV rows), and
  :func:`all_pairs_matrix` — the same as an ``[n, n]`` matrix (``.npy``), from cached
  per-image features (:mod:`.all_pairs`).

``metric``: a registry name, a Metric object, or a checkpoint (see :mod:`.resolve`);
``backbone_weights`` / ``lin_weights`` as there. Images: decoded by PIL
(:func:`~bapps_toolkit.data.images.read_rgb`: header size checked before decoding, grey / palette
/ RGBA through ``convert("RGB")``, alpha dropped, 16-bit grey scaled by 1/257), inputs mapped to
[-1, 1].

How it runs (:mod:`.pair_stream`): the header sizes of all files are read first (an unreadable
header or a pair of two sizes is an error naming the files, before any network work); pairs are
grouped by size and batched by a pixel budget (``max_batch_pixels``, default
:data:`~.pair_stream.DEFAULT_BATCH_PIXELS` = 256 KPix, at most ``batch_size`` = 64 pairs);
``num_workers`` DataLoader processes (default half the cores, at most 8; 0 = in this process)
decode the next batches while the metric runs. Every size is scored at its native resolution;
``resize`` (``None`` | ``"first"`` | ``"WxH"``) is the only way a size changes (see
:mod:`.pair_stream`). Peak memory does not grow with the number of pairs; only the results do
(one float and two names per pair).

Outputs (:mod:`.pair_output`): CSV rows name the metric, the unit and the direction
(``lower = more similar``); ``as_similarity=True`` writes the usual form of a similarity metric
instead (PSNR in dB, SSIM, MS-SSIM, FSIM; :mod:`.scale`). With ``out`` the rows are appended to
``<out>.partial`` as they come and ``out`` is written atomically at the end; a rerun with the
same ``out`` skips the pairs already there (resume). ``echo``: an open text file (stdout) that
gets the header and each row as it is scored.
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import itertools
import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Union

import numpy as np
import torch
from tqdm.auto import tqdm

from .._distributed import DistContext, current_context, join_process_group, sharded, share_from_main
from .._io import FileLock, atomic_write
from ..errors import DataError
from ..metrics import Metric
from . import all_pairs as ap
from .pair_output import (
    DistanceMatrix,
    Journal,
    PairTable,
    ScoredPairs,
    check_keys,
    journal_path,
    load_done,
    write_table,
)
from .pair_stream import (
    DEFAULT_BATCH_PIXELS,
    DEFAULT_BATCH_SIZE,
    Resize,
    header_size,
    iter_batches,
    pair_targets,
    parse_resize,
    plan_batches,
    to_input,
)
from .resolve import WeightSpecs, metric_label, resolve_metric
from .scale import scale_of
from .speed import PreparedMetric, check_execution

PathLike = Union[str, "os.PathLike[str]"]
Notes = Callable[[str], None]
Chunks = Iterator[tuple[np.ndarray, np.ndarray]]

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif")


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------
def list_images(folder: PathLike) -> dict[str, Path]:
    """``{file name: path}`` of the image files directly in ``folder`` (hidden files skipped)."""
    d = Path(folder)
    if not d.is_dir():
        raise DataError(f"folder {d} does not exist" if not d.exists() else f"{d} is not a folder")
    files = {p.name: p for p in sorted(d.iterdir())
             if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTS}
    if not files:
        raise DataError(f"folder {d} holds no image files ({', '.join(IMAGE_EXTS)})")
    return files


def _name_list(names: set[str], limit: int = 10) -> str:
    ordered = sorted(names)
    more = f" … and {len(ordered) - limit} more" if len(ordered) > limit else ""
    return ", ".join(ordered[:limit]) + more


def pair_dirs(dir0: PathLike, dir1: PathLike) -> list[tuple[str, Path, Path]]:
    """Pairs ``(name, dir0/name, dir1/name)``; an error lists the names missing on either side."""
    a, b = list_images(dir0), list_images(dir1)
    only0, only1 = set(a) - set(b), set(b) - set(a)
    if only0 or only1:
        parts = []
        if only0:
            parts.append(f"{len(only0)} file(s) of {dir0} missing from {dir1}: {_name_list(only0)}")
        if only1:
            parts.append(f"{len(only1)} file(s) of {dir1} missing from {dir0}: {_name_list(only1)}")
        raise DataError("folders do not match (files are paired by name): " + "; ".join(parts))
    return [(n, a[n], b[n]) for n in sorted(a)]


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass
class _Run:
    """Resolved options of one call."""

    metric: Metric
    metric_id: str
    table: PairTable
    opts: dict[str, Any]
    progress: bool
    notes: Notes | None
    prepared: PreparedMetric
    ctx: DistContext = dataclasses.field(default_factory=DistContext)


def _setup(metric: Any, backbone_weights: WeightSpecs, lin_weights: WeightSpecs, by_name: bool,
           as_similarity: bool, options: dict[str, Any]) -> _Run:
    mid, m = resolve_metric(metric, backbone_weights=backbone_weights, lin_weights=lin_weights,
                            trust_plugin=options.pop("trust_plugin", None))
    dev = join_process_group(options.pop("device", None))
    ctx = current_context()
    m = m.to(dev).eval()
    opts = dict(device=dev, batch_size=int(options.pop("batch_size", DEFAULT_BATCH_SIZE)),
                max_batch_pixels=int(options.pop("max_batch_pixels", DEFAULT_BATCH_PIXELS)),
                num_workers=options.pop("num_workers", None),
                cache_bytes=int(options.pop("cache_bytes", ap.CACHE_BYTES)),
                block_bytes=int(options.pop("block_bytes", ap.BLOCK_BYTES)))
    progress, notes = bool(options.pop("progress", True)) and ctx.is_main, options.pop("notes", None)
    # the memory layout as evaluate chooses it: channels_last for the deep metrics (faster on CPU,
    # the same distances up to float rounding); fp32, no compile
    prepared = PreparedMetric(m, check_execution("fp32", False, options.pop("channels_last", None), dev), dev)
    if options:
        raise TypeError(f"unexpected option(s): {', '.join(sorted(options))}")
    plan_batches(np.zeros((0, 2)), [], opts["batch_size"], opts["max_batch_pixels"])  # checks the two
    table = PairTable(by_name, metric_label(mid, m), scale_of(m), as_similarity)
    return _Run(m, mid, table, opts, progress, notes if ctx.is_main else None, prepared, ctx)


def _check_min_size(metric: Metric, targets: np.ndarray, files: Sequence[Path]) -> None:
    need = int(getattr(metric, "min_size", 1))
    small = np.flatnonzero(targets.min(axis=1) < need) if len(targets) else np.zeros(0, dtype=np.int64)
    if len(small):
        h, w = targets[small[0]]
        raise DataError(f"image {files[small[0]]} is scored at {w}x{h}: metric {metric.name} needs both sides "
                        f">= {need} pixels")


def _pair_chunks(run: _Run, items: Sequence[tuple[Path, Path]], targets: np.ndarray, have: np.ndarray) -> Chunks:
    """``(pair indices, distances)`` batch by batch for the pairs not in ``have``."""
    o = run.opts
    batches = plan_batches(targets, np.flatnonzero(~have).tolist(), o["batch_size"], o["max_batch_pixels"])

    def score(mine: Sequence[list[int]]) -> Chunks:
        seen: set[tuple[int, ...]] = set()
        workers = 0 if len(mine) == 1 else o["num_workers"]
        for idx, (a, b) in iter_batches(items, targets, list(mine), num_workers=workers,
                                        pin_memory=o["device"].type == "cuda"):
            x0, x1 = to_input(a, o["device"]), to_input(b, o["device"])
            size = tuple(a.shape[2:4])
            d = run.prepared.distance(x0, x1, validate=size not in seen)
            seen.add(size)
            yield np.asarray(idx), d.reshape(len(idx)).double().cpu().numpy()

    # under torchrun: whole batches round-robin across ranks (see score_files)
    return sharded(run.ctx, batches, score)


def _run_rows(run: _Run, keys: Sequence[tuple[str, ...]], resized: np.ndarray, out: Path | None,
              echo: IO[str] | None, chunks: Callable[[np.ndarray], Chunks]) -> np.ndarray:
    """Score the pairs not found in ``out`` (and its journal), write rows as they come, then the
    whole table atomically; returns every distance in pair order.

    Under ``torchrun`` rank 0 alone takes the lock, reads the earlier rows and writes the journal,
    ``echo`` and ``out``; the pairs it found are skipped on every rank before the rest is shared
    out, and every rank gets every distance."""
    n, table, ctx = len(keys), run.table, run.ctx
    check_keys(keys, out)
    writes = out is not None and ctx.is_main
    echo = echo if ctx.is_main else None
    with contextlib.ExitStack() as stack:
        def load() -> tuple[np.ndarray, np.ndarray]:
            dist, have = np.full(n, np.nan), np.zeros(n, dtype=bool)
            if writes:
                if out is None:
                    raise ValueError("writes without an output file")
                stack.enter_context(FileLock(out, "score output"))
                load_done(out, table, keys, dist, have)
            return dist, have

        dist, have = share_from_main(ctx, load)
        sink = Journal(journal_path(out), table) if writes and out is not None and not have.all() else None
        if echo is not None:
            echo.write(table.header_line())
        with sink or contextlib.nullcontext(), torch.inference_mode(), \
                tqdm(total=n, initial=int(have.sum()), unit="pair", desc="score", leave=False,
                     disable=not run.progress or n < 2) as bar:
            for idx_all, d_all in chunks(have) if not have.all() else iter(()):
                new = ~have[idx_all]
                idx, d = idx_all[new], d_all[new]
                dist[idx], have[idx] = d, True
                rows = [table.row(keys[k], v, bool(resized[k])) for k, v in zip(idx.tolist(), d.tolist(), strict=True)]
                if sink is not None:
                    sink.write(rows)
                if echo is not None:
                    echo.write(table.lines(rows))
                    echo.flush()
                bar.update(len(idx))
        if writes and out is not None:
            share_from_main(ctx, lambda: write_table(out, table, keys, dist, resized, sink))
        else:
            share_from_main(ctx, lambda: None)
    return dist


def _note_resized(run: _Run, resized: np.ndarray, what: str) -> None:
    if resized.any():
        (run.notes or (lambda s: None))(f"{int(resized.sum())} of {len(resized)} {what} resized (bilinear) by "
                                        "the resize option; their rows say resized=1")


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------
def score_files(
    pairs: Sequence[tuple[PathLike, PathLike]], *, metric: Any = "lpips-alex",
    backbone_weights: WeightSpecs = None, lin_weights: WeightSpecs = None, resize: Resize = None,
    as_similarity: bool = False, by_name: bool = False, out: PathLike | None = None,
    echo: IO[str] | None = None, **options: Any,
) -> ScoredPairs:
    """Distances of ``pairs`` of image files, streamed (see the module doc).

    ``options``: ``device``, ``channels_last`` (None: on for the deep metrics, as in evaluate), ``batch_size``,
    ``max_batch_pixels``, ``num_workers``, ``progress``
    (bar on stderr, default True), ``notes`` (callable for notes, default: none), ``trust_plugin``
    (the plugin spec(s) a checkpoint ``metric`` may import, see
    :func:`~bapps_toolkit.metrics.trained.load_metric_from_checkpoint`).

    Under ``torchrun`` (``WORLD_SIZE`` > 1; NCCL with ``cuda:LOCAL_RANK`` per rank on CUDA, gloo
    on CPU) the pairs already in ``out`` are skipped first, the rest are batched by size exactly
    as in one process and whole batches go round-robin to the ranks
    (:func:`~bapps_toolkit._distributed.sharded`): every batch keeps one size and its pixel
    budget, and the load evens out whatever the order of the sizes (contiguous blocks of pairs
    would give one rank all the large images of a folder sorted by size). After each round the
    ranks exchange their distances; rank 0 alone writes the journal, ``echo`` and ``out``, in pair
    order, and every rank returns every distance.
    """
    items = [(Path(a), Path(b)) for a, b in pairs]
    parse_resize(resize)
    sizes = {p: header_size(p) for p in dict.fromkeys(p for pair in items for p in pair)}
    targets, resized = pair_targets(items, sizes, resize)
    run = _setup(metric, backbone_weights, lin_weights, by_name, as_similarity, dict(options))
    _check_min_size(run.metric, targets, [a for a, _ in items])
    _note_resized(run, resized, "pairs")
    keys = [(a.name,) if by_name else (a.name, b.name) for a, b in items]
    dist = _run_rows(run, keys, resized, None if out is None else Path(out), echo,
                     lambda have: _pair_chunks(run, items, targets, have))
    return ScoredPairs([a for a, _ in items], [b for _, b in items], dist.tolist(), resized.tolist(), run.metric_id,
                       run.table.label, bool(run.metric.calibrated), by_name, run.table.scale, as_similarity)


def score_image_pair(img0: PathLike, img1: PathLike, **options: Any) -> ScoredPairs:
    """The distance between two image files (``options`` as :func:`score_files`)."""
    return score_files([(img0, img1)], **options)


def score_folders(dir0: PathLike, dir1: PathLike, **options: Any) -> ScoredPairs:
    """Distances between the files of ``dir0`` and ``dir1`` paired by name (``options`` as
    :func:`score_files`; an error lists the names missing on either side)."""
    return score_files([(a, b) for _, a, b in pair_dirs(dir0, dir1)], by_name=True, **options)


def _folder_targets(folder: PathLike, resize: Resize) -> tuple[list[Path], np.ndarray, np.ndarray]:
    """Sorted image files, the size each is scored at and whether it is resized (one size for all)."""
    files = list(list_images(folder).values())
    if len(files) < 2:
        raise DataError(f"all pairs of {folder}: needs at least two images, found {len(files)}")
    sizes = [header_size(p) for p in files]
    rule = parse_resize(resize)
    target = rule if isinstance(rule, tuple) else sizes[0]
    if rule is None:
        other = next((k for k, hw in enumerate(sizes) if hw != target), None)
        if other is not None:
            raise DataError(
                f"all pairs of {folder}: {files[0]} is {target[1]}x{target[0]} but {files[other]} is "
                f"{sizes[other][1]}x{sizes[other][0]}: every pair is scored at native resolution, so all "
                "images must have one size; pass resize='WxH' (--resize WxH) to resize every image to W x H, "
                f"or resize='first' for the size of {files[0].name} (bilinear)")
    targets = np.tile(np.asarray(target, dtype=np.int64), (len(files), 1))
    return files, targets, np.array([hw != tuple(target) for hw in sizes])


def score_all_pairs(folder: PathLike, *, metric: Any = "lpips-alex", backbone_weights: WeightSpecs = None,
                    lin_weights: WeightSpecs = None, resize: Resize = None, as_similarity: bool = False,
                    out: PathLike | None = None, echo: IO[str] | None = None, **options: Any) -> ScoredPairs:
    """Distances between every unordered pair of ``folder``'s images (sorted by name), as CSV
    rows; computed by blocks of the matrix (:mod:`.all_pairs`: each image through the network
    once for LPIPS). ``out`` is resumable by blocks: blocks whose pairs are all in ``out`` are
    skipped (the per-image pass runs again). ``options`` as :func:`score_files` plus
    ``cache_bytes`` and ``block_bytes`` (:mod:`.all_pairs`). The result and the resume index
    hold one row per pair (n²/2): for thousands of images use :func:`all_pairs_matrix`."""
    files, targets, resized_img = _folder_targets(folder, resize)
    run = _setup(metric, backbone_weights, lin_weights, False, as_similarity, dict(options))
    _check_min_size(run.metric, targets, files)
    _note_resized(run, resized_img, "images")
    n = len(files)
    combos = list(itertools.combinations(range(n), 2))
    keys = [(files[i].name, files[j].name) for i, j in combos]
    resized = np.array([resized_img[i] or resized_img[j] for i, j in combos], dtype=bool)

    def chunks(have: np.ndarray) -> Chunks:
        def skip(i0: int, i1: int, j0: int, j1: int) -> bool:
            return bool(have[ap.block_pair_positions(i0, i1, j0, j1, n)].all())

        return ap.iter_pair_chunks(ap.iter_blocks(run.metric, files, targets, run.opts, skip=skip, ctx=run.ctx,
                                                  progress=run.progress), n)

    dist = _run_rows(run, keys, resized, None if out is None else Path(out), echo, chunks)
    return ScoredPairs([files[i] for i, _ in combos], [files[j] for _, j in combos], dist.tolist(), resized.tolist(),
                       run.metric_id, run.table.label, bool(run.metric.calibrated), False, run.table.scale,
                       as_similarity)


def all_pairs_matrix(folder: PathLike, *, metric: Any = "lpips-alex", backbone_weights: WeightSpecs = None,
                     lin_weights: WeightSpecs = None, resize: Resize = None, as_similarity: bool = False,
                     out: PathLike | None = None, **options: Any) -> DistanceMatrix:
    """The ``[n, n]`` matrix of :func:`score_all_pairs` (float64, symmetric, ``files`` sorted by
    name). With ``out`` (a ``.npy``) it is written block by block and atomically, with
    ``<out>.json`` beside it (file order, metric label, unit, direction, calibrated); the result's
    ``matrix`` is then memory-mapped from the file. Not resumable: a rerun starts over.

    Under ``torchrun`` the per-image pass and the blocks are shared out across ranks
    (:func:`.all_pairs.iter_blocks`); the values equal one process's. Without ``out`` every
    rank returns the whole matrix; with ``out`` rank 0 writes the file and its result holds it,
    the other ranks' result has an empty ``matrix`` and no ``path``."""
    if out is not None and Path(out).suffix.lower() != ".npy":
        raise ValueError(f"out must be a .npy file for the matrix, got {out}")
    files, targets, resized_img = _folder_targets(folder, resize)
    run = _setup(metric, backbone_weights, lin_weights, False, as_similarity, dict(options))
    _check_min_size(run.metric, targets, files)
    _note_resized(run, resized_img, "images")
    n, t = len(files), run.table
    convert = t.scale.to_similarity if as_similarity else None
    blocks = ap.iter_blocks(run.metric, files, targets, run.opts, progress=run.progress, ctx=run.ctx)
    if out is None:
        mat = np.zeros((n, n))
        with torch.inference_mode():
            for i0, j0, d in blocks:
                mat[i0:i0 + d.shape[0], j0:j0 + d.shape[1]] = np.nan_to_num(d, nan=0.0)
        mat = np.triu(mat, 1) + np.triu(mat, 1).T
        return DistanceMatrix(files, convert(mat) if convert else mat, run.metric_id, t.label,
                              bool(run.metric.calibrated), t.unit, t.direction)
    path, ctx = Path(out), run.ctx
    meta = dict(files=[p.name for p in files], folder=str(folder), metric=t.label, unit=t.unit,
                direction=t.direction, calibrated=bool(run.metric.calibrated), shape=[n, n])
    with contextlib.ExitStack() as stack, torch.inference_mode():
        share_from_main(ctx, lambda: (stack.enter_context(FileLock(path, "score output")), None)[1])
        if ctx.is_main:  # rank 0 alone writes; the others compute their share of the blocks
            ap.write_matrix_npy(path, n, blocks, convert)
        else:
            collections.deque(blocks, maxlen=0)
        share_from_main(ctx, lambda: _write_json(path.with_name(path.name + ".json"), meta))
    matrix = np.load(path, mmap_mode="r") if ctx.is_main else np.zeros((0, 0))
    return DistanceMatrix(files, matrix, run.metric_id, t.label, bool(run.metric.calibrated), t.unit, t.direction,
                          path if ctx.is_main else None)


def _write_json(path: Path, meta: dict[str, Any]) -> None:
    with atomic_write(path, "w", encoding="utf-8") as fh:
        json.dump(meta, fh, indent=1)
