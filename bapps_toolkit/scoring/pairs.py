"""Distances between your own image files, streamed in bounded memory.

This is what the official lpips_2imgs / lpips_2dirs / lpips_1dir_allpairs scripts do.

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
import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from .._distributed import share_from_main
from .._io import FileLock, PathLike, atomic_write
from ..errors import DataError, UsageError
from ..metrics.resolve import WeightSpecs
from . import all_pairs as ap
from .image_files import list_images, pair_dirs
from .pair_output import (
    DistanceMatrix,
    ScoredPairs,
)
from .pair_run import Chunks, check_min_size, note_resized, one_metric, pair_chunks, run_rows, setup_run
from .pair_stream import (
    Resize,
    header_size,
    pair_targets,
    parse_resize,
)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------
def score_files_many(
    pairs: Sequence[tuple[PathLike, PathLike]], *, metrics: Sequence[Any] = ("lpips-alex",),
    backbone_weights: WeightSpecs = None, lin_weights: WeightSpecs = None, resize: Resize = None,
    as_similarity: bool = False, by_name: bool = False, out: PathLike | None = None,
    echo: IO[str] | None = None, **options: Any,
) -> list[ScoredPairs]:
    """Distances of ``pairs`` under each of ``metrics``, every image decoded once.

    See :func:`score_files`, whose options it takes.

    With one metric the CSV is :func:`score_files`'s; with several it has one column per metric
    (:class:`~.pair_output.WideTable`: ``file``, ``LABEL [UNIT; DIRECTION]`` …, ``resized``),
    resumable the same way.

    Returns:
        One :class:`ScoredPairs` per metric, in the order given.
    """
    items = [(Path(a), Path(b)) for a, b in pairs]
    parse_resize(resize)
    sizes = {p: header_size(p) for p in dict.fromkeys(p for pair in items for p in pair)}
    targets, resized = pair_targets(items, sizes, resize)
    run = setup_run(list(metrics), backbone_weights, lin_weights, by_name, as_similarity, dict(options))
    check_min_size(run, targets, [a for a, _ in items])
    note_resized(run, resized, "pairs")
    keys = [(a.name,) if by_name else (a.name, b.name) for a, b in items]
    dist = run_rows(run, keys, resized, None if out is None else Path(out), echo,
                     lambda have: pair_chunks(run, items, targets, have))
    return run.result([a for a, _ in items], [b for _, b in items], dist, resized, by_name, as_similarity)


def score_folders_many(dir0: PathLike, dir1: PathLike, **options: Any) -> list[ScoredPairs]:
    """Distances between the files of ``dir0`` and ``dir1`` paired by name under each of ``metrics``.

    Every image is decoded once (``options`` as :func:`score_files_many`).
    """
    return score_files_many([(a, b) for _, a, b in pair_dirs(dir0, dir1)], by_name=True, **options)


def score_files(
    pairs: Sequence[tuple[PathLike, PathLike]], *, metric: Any = "lpips-alex", **options: Any,
) -> ScoredPairs:
    """Distances of ``pairs`` of image files, streamed (see the module doc).

    ``metric``: one metric (:func:`score_files_many` takes several). Keywords:
    ``backbone_weights``, ``lin_weights``, ``resize``, ``as_similarity``, ``by_name``, ``out``,
    ``echo`` (see the module doc).

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

    Raises:
        UsageError: ``metric`` is a list (use :func:`score_files_many`).
    """
    if isinstance(metric, (list, tuple)):
        raise UsageError("metric: one metric; score_files_many / score_folders_many take several")
    return score_files_many(pairs, metrics=[metric], **options)[0]


def score_image_pair(img0: PathLike, img1: PathLike, **options: Any) -> ScoredPairs:
    """The distance between two image files (``options`` as :func:`score_files`)."""
    return score_files([(img0, img1)], **options)


def score_folders(dir0: PathLike, dir1: PathLike, **options: Any) -> ScoredPairs:
    """Distances between the files of ``dir0`` and ``dir1`` paired by name.

    ``options`` as :func:`score_files`; an error lists the names missing on either side.
    """
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
    """Distances between every unordered pair of ``folder``'s images (sorted by name), as CSV rows.

    Computed by blocks of the matrix (:mod:`.all_pairs`: each image through the network once for LPIPS). ``out``
    is resumable by blocks: blocks whose pairs are all in ``out`` are skipped (the per-image pass runs again).
    ``options`` as :func:`score_files` plus ``cache_bytes`` and ``block_bytes`` (:mod:`.all_pairs`). The result
    and the resume index hold one row per pair (n²/2): for thousands of images use :func:`all_pairs_matrix`.
    """
    files, targets, resized_img = _folder_targets(folder, resize)
    run = setup_run(metric, backbone_weights, lin_weights, False, as_similarity, dict(options))
    one_metric(run, "all pairs")
    check_min_size(run, targets, files)
    note_resized(run, resized_img, "images")
    n = len(files)
    combos = list(itertools.combinations(range(n), 2))
    keys = [(files[i].name, files[j].name) for i, j in combos]
    resized = np.array([resized_img[i] or resized_img[j] for i, j in combos], dtype=bool)

    def chunks(have: np.ndarray) -> Chunks:
        def skip(i0: int, i1: int, j0: int, j1: int) -> bool:
            return bool(have[ap.block_pair_positions(i0, i1, j0, j1, n)].all())

        return ap.iter_pair_chunks(ap.iter_blocks(run.metric, files, targets, run.opts, skip=skip, ctx=run.ctx,
                                                  progress=run.progress), n)

    dist = run_rows(run, keys, resized, None if out is None else Path(out), echo, chunks)
    return run.result([files[i] for i, _ in combos], [files[j] for _, j in combos], dist, resized, False,
                      as_similarity)[0]


def all_pairs_matrix(folder: PathLike, *, metric: Any = "lpips-alex", backbone_weights: WeightSpecs = None,
                     lin_weights: WeightSpecs = None, resize: Resize = None, as_similarity: bool = False,
                     out: PathLike | None = None, **options: Any) -> DistanceMatrix:
    """The ``[n, n]`` matrix of :func:`score_all_pairs` (float64, symmetric, ``files`` sorted by name).

    With ``out`` (a ``.npy``) it is written block by block and atomically, with ``<out>.json`` beside it (file
    order, metric label, unit, direction, calibrated); the result's ``matrix`` is then memory-mapped from the
    file. Not resumable: a rerun starts over.

    Under ``torchrun`` the per-image pass and the blocks are shared out across ranks
    (:func:`.all_pairs.iter_blocks`); the values equal one process's. Without ``out`` every
    rank returns the whole matrix; with ``out`` rank 0 writes the file and its result holds it,
    the other ranks' result has an empty ``matrix`` and no ``path``.
    """
    if out is not None and Path(out).suffix.lower() != ".npy":
        raise ValueError(f"out must be a .npy file for the matrix, got {out}")
    files, targets, resized_img = _folder_targets(folder, resize)
    run = setup_run(metric, backbone_weights, lin_weights, False, as_similarity, dict(options))
    one_metric(run, "the all-pairs matrix")
    check_min_size(run, targets, files)
    note_resized(run, resized_img, "images")
    n, t = len(files), run.members[0].table
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
