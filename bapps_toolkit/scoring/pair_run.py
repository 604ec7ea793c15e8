"""How :mod:`.pairs` runs: the metrics of one call, batches decoded once and scored by each metric.

Rows are written as they come and resumed from an earlier run (:mod:`.pair_output`).
"""
from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .._distributed import DistContext, current_context, join_process_group, sharded, share_from_main
from .._io import FileLock
from ..errors import DataError, UsageError
from ..metrics import Metric
from ..metrics.resolve import WeightSpecs, metric_label, resolve_metric
from ..metrics.scale import scale_of
from ..metrics.speed import PreparedMetric, check_execution
from . import all_pairs as ap
from .pair_output import (
    Journal,
    PairTable,
    ScoredPairs,
    Table,
    WideTable,
    check_keys,
    journal_path,
    load_done,
    write_table,
)
from .pair_stream import (
    DEFAULT_BATCH_PIXELS,
    DEFAULT_BATCH_SIZE,
    iter_batches,
    plan_batches,
    to_input,
)

Notes = Callable[[str], None]
Chunks = Iterator[tuple[np.ndarray, np.ndarray]]


@dataclasses.dataclass
class Member:
    """One metric of a run: the module, its id, how it runs and its column."""

    metric: Metric
    metric_id: str
    prepared: PreparedMetric
    table: PairTable


@dataclasses.dataclass
class Run:
    """Resolved options of one call (one metric, or several on one decode pass)."""

    members: list[Member]
    table: Table
    opts: ap.RunOptions
    progress: bool
    notes: Notes | None
    ctx: DistContext = dataclasses.field(default_factory=DistContext)

    @property
    def metric(self) -> Metric:
        """The first (for the forms that take one, the only) metric."""
        return self.members[0].metric

    @property
    def metric_id(self) -> str:
        """Id of the first (for the forms that take one, the only) metric."""
        return self.members[0].metric_id

    @property
    def prepared(self) -> PreparedMetric:
        """The first metric with the run's execution settings applied."""
        return self.members[0].prepared

    def result(self, files0: list[Path], files1: list[Path], dist: np.ndarray, resized: np.ndarray,
               by_name: bool, as_similarity: bool) -> list[ScoredPairs]:
        """One :class:`ScoredPairs` per metric, from the ``[n, metrics]`` distances."""
        return [ScoredPairs(files0, files1, dist[:, k].tolist(), resized.tolist(), m.metric_id, m.table.label,
                            bool(m.metric.calibrated), by_name, m.table.scale, as_similarity)
                for k, m in enumerate(self.members)]


def setup_run(metric: Any, backbone_weights: WeightSpecs, lin_weights: WeightSpecs, by_name: bool,
           as_similarity: bool, options: dict[str, Any]) -> Run:
    """Resolve ``metric`` (one spec, or a list of specs scored on one decode pass) and the options."""
    specs = list(metric) if isinstance(metric, (list, tuple)) else [metric]
    if not specs:
        raise UsageError("give at least one metric")
    trust = options.pop("trust_plugin", None)
    per_metric = dict(options.pop("metric_options", None) or {})
    resolved = [resolve_metric(spec, backbone_weights=backbone_weights, lin_weights=lin_weights, trust_plugin=trust,
                               options=per_metric.get(spec) if isinstance(spec, str) else None)
                for spec in specs]
    ids = [mid for mid, _ in resolved]
    if len(set(ids)) != len(ids):
        raise UsageError(f"a metric is given twice: {', '.join(ids)}")
    dev = join_process_group(options.pop("device", None))
    ctx = current_context()
    opts = ap.RunOptions(device=dev, batch_size=int(options.pop("batch_size", DEFAULT_BATCH_SIZE)),
                         max_batch_pixels=int(options.pop("max_batch_pixels", DEFAULT_BATCH_PIXELS)),
                         num_workers=options.pop("num_workers", None),
                         cache_bytes=int(options.pop("cache_bytes", ap.CACHE_BYTES)),
                         block_bytes=int(options.pop("block_bytes", ap.BLOCK_BYTES)))
    progress, notes = bool(options.pop("progress", True)) and ctx.is_main, options.pop("notes", None)
    # the memory layout as evaluate chooses it: channels_last for the deep metrics (faster on CPU,
    # the same distances up to float rounding); fp32 unless asked (a reduced precision is named in
    # the label, as evaluate does); no compile
    ex = check_execution(str(options.pop("precision", "fp32")), False, options.pop("channels_last", None), dev)
    if options:
        raise TypeError(f"unexpected option(s): {', '.join(sorted(options))}")
    plan_batches(np.zeros((0, 2)), [], opts.batch_size, opts.max_batch_pixels)  # checks the two
    members = []
    for mid, m in resolved:
        m = m.to(dev).eval()
        members.append(Member(m, mid, PreparedMetric(m, ex, dev),
                               PairTable(by_name, metric_label(mid, m) + ex.label_suffix, scale_of(m), as_similarity)))
    table: Table = members[0].table if len(members) == 1 else WideTable(by_name, [m.table for m in members])
    return Run(members, table, opts, progress, notes if ctx.is_main else None, ctx)


def one_metric(run: Run, form: str) -> None:
    """Refuse a run of several metrics for ``form``, which takes one.

    Raises:
        UsageError: the run has more than one metric.
    """
    if len(run.members) > 1:
        raise UsageError(f"{form} takes one metric, got {len(run.members)}: "
                         f"{', '.join(m.metric_id for m in run.members)}")


def check_min_size(run: Run, targets: np.ndarray, files: Sequence[Path]) -> None:
    """Refuse a run where an image is scored below a metric's ``min_size``, naming the file.

    Raises:
        DataError: an image of ``files`` is smaller than a metric needs.
    """
    for metric in (m.metric for m in run.members):
        need = int(getattr(metric, "min_size", 1))
        small = np.flatnonzero(targets.min(axis=1) < need) if len(targets) else np.zeros(0, dtype=np.int64)
        if len(small):
            h, w = targets[small[0]]
            raise DataError(f"image {files[small[0]]} is scored at {w}x{h}: metric {metric.name} needs both sides "
                            f">= {need} pixels")


def pair_chunks(run: Run, items: Sequence[tuple[Path, Path]], targets: np.ndarray, have: np.ndarray) -> Chunks:
    """``(pair indices, distances)`` batch by batch for the pairs not in ``have``."""
    o = run.opts
    batches = plan_batches(targets, np.flatnonzero(~have).tolist(), o.batch_size, o.max_batch_pixels)

    def score(mine: Sequence[list[int]]) -> Chunks:
        seen: set[tuple[int, ...]] = set()
        workers = 0 if len(mine) == 1 else o.num_workers
        for idx, (a, b) in iter_batches(items, targets, list(mine), num_workers=workers,
                                        pin_memory=o.device.type == "cuda"):
            x0, x1 = to_input(a, o.device), to_input(b, o.device)
            size = tuple(a.shape[2:4])
            d = [m.prepared.distance(x0, x1, validate=size not in seen).reshape(len(idx)).double().cpu().numpy()
                 for m in run.members]  # every metric on the batch decoded once
            seen.add(size)
            yield np.asarray(idx), np.stack(d, axis=1)

    # under torchrun: whole batches round-robin across ranks (see score_files)
    return sharded(run.ctx, batches, score)


def run_rows(run: Run, keys: Sequence[tuple[str, ...]], resized: np.ndarray, out: Path | None,
              echo: IO[str] | None, chunks: Callable[[np.ndarray], Chunks]) -> np.ndarray:
    """Score the pairs not found in ``out`` (and its journal); return every distance in pair order.

    Rows are written as they come, then the whole table atomically; the result is ``[n, metrics]``.

    Under ``torchrun`` rank 0 alone takes the lock, reads the earlier rows and writes the journal,
    ``echo`` and ``out``; the pairs it found are skipped on every rank before the rest is shared
    out, and every rank gets every distance.
    """
    n, table, ctx = len(keys), run.table, run.ctx
    check_keys(keys, out)
    writes = out is not None and ctx.is_main
    echo = echo if ctx.is_main else None
    with contextlib.ExitStack() as stack:
        def load() -> tuple[np.ndarray, np.ndarray]:
            dist, have = np.full((n, len(run.members)), np.nan), np.zeros(n, dtype=bool)
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
                idx, d = idx_all[new], d_all.reshape(len(idx_all), -1)[new]
                dist[idx], have[idx] = d, True
                rows = [table.row_values(keys[k], v, bool(resized[k]))
                        for k, v in zip(idx.tolist(), d.tolist(), strict=True)]
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


def note_resized(run: Run, resized: np.ndarray, what: str) -> None:
    """Tell the run's notes how many of the ``what`` were resized (nothing when none was)."""
    if resized.any():
        (run.notes or (lambda s: None))(f"{int(resized.sum())} of {len(resized)} {what} resized (bilinear) by "
                                        "the resize option; their rows say resized=1")
