"""The full path's training triplets: held whole when they fit the memory budget, else streamed in chunks.

The full path serves variants tune and scratch, and lin with ``fast=False``; streaming keeps memory bounded.

Which way (:func:`plan_data`)
-----------------------------
The images of the selected sets take ``N · (3 · S² · 3 + 4)`` bytes (uint8 ``ref``, ``p0``,
``p1`` of side ``S`` plus a float32 judgment; 36 868 bytes per 64² triplet). When that is at most
``memory_budget_mb`` MiB (:data:`DEFAULT_MEMORY_BUDGET_MB` = 2048 MiB by default) the sets are
held whole (:class:`~bapps_toolkit.train.data.FullData`; in host memory on CPU, in device memory
on CUDA) and every epoch ``e`` runs on the **exact** shuffle of the official trainer's shuffled
loader: ``torch.randperm(N)`` from a generator seeded with ``derive_seed(seed, e, STREAM_SHUFFLE)``
— the same order as before streaming existed, so the same weights.

Otherwise the sets are **streamed** (:class:`StreamedData`) with this shuffle
(:func:`epoch_order`), a shuffled order of chunks with a shuffle inside a window of chunks:

1. The sets, in the run's key order, are cut into chunks of consecutive triplets:
   set ``k`` of ``n_k`` triplets into ``ceil(n_k / 1024)`` chunks of ``chunk_rows(n_k)`` rows
   (:func:`bapps_toolkit.data.pack.chunk_rows`: at most 1024, split evenly, the last may be
   shorter) — exactly the HDF5 chunks ``bapps pack`` writes, so one chunk is one contiguous read.
   Chunks never cross sets. Chunk ``c`` covers global indices ``[o_c, o_c + len_c)`` of the sets
   concatenated (the indexing of the whole path).
2. Per epoch ``e``, one generator seeded with ``derive_seed(seed, e, STREAM_SHUFFLE)`` draws
   ``π = randperm(number of chunks)``; the chunks in that order are grouped into windows of
   ``W`` consecutive chunks (the last window may hold fewer).
3. For each window in turn, the same generator draws ``σ = randperm(rows of the window)``; the
   window's global indices (its chunks' ranges concatenated in the order of ``π``) permuted by
   ``σ`` are the next part of the epoch's order.

So each epoch visits every triplet exactly once; a triplet's neighbours in a batch come from the
``W`` chunks of its window (batches straddling two windows excepted). The order depends only on
``(seed, epoch)``, the set sizes and ``W`` — resume after an epoch and ``torchrun`` (every rank
draws the same global order and keeps its slice of each global batch) work as on the in-memory
path. ``W = max(1, floor(budget / (2 · largest chunk bytes)))``: a batch touches at most two
windows when it is no larger than a window, so at most ``2 · W`` chunks are resident (plus the
float copies of one batch); with a budget smaller than two chunks, ``W = 1`` and memory is about
two chunks (≈ 75 MB at 64²) whatever the budget. The card records the way and its parameters
(``card["shuffle"]``); a resumed run must draw the same way (the run's budget is taken from its
card by :func:`~bapps_toolkit.train.resume_config`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..data import to_model_input
from ..data.datasets import is_h5
from ..data.decode import decode_set
from ..data.h5format import open_h5
from ..data.h5safe import read_rows
from ..data.images import load_judgments
from ..data.layout import SetFiles, expand_datasets, resolve_root, scan_set
from ..data.pack import chunk_rows
from ..errors import CheckpointError
from .config import DEFAULT_MEMORY_BUDGET_MB
from .data import same_size, set_shapes
from .model import STREAM_SHUFFLE, derive_seed, make_generator
from .records import EXACT, STREAMED, DataPlan  # noqa: E402


def plan_data(source: str, keys: Sequence[str], budget_mb: int, *, fast: bool) -> DataPlan:
    """The :class:`DataPlan` of a run (the fast path's cached vectors are always :data:`EXACT`).

    Raises :class:`~bapps_toolkit.errors.DataError` when the sets have different patch sizes.
    """
    shapes = set_shapes(source, keys)
    sizes = {k: s for k, _, s in shapes}
    side = next(iter(sizes.values()), 64) if fast else same_size(sizes)
    per = 3 * side * side * 3 + 4
    n = sum(m for _, m, _ in shapes)
    chunks = []
    for k, m, _ in shapes:
        c = chunk_rows(m) if m else 1
        chunks += [(k, s, min(s + c, m)) for s in range(0, m, c)]
    if fast or n * per <= budget_mb * 2 ** 20:
        return DataPlan(EXACT, n, per, budget_mb, tuple(chunks), 0)
    biggest = max(e - s for _, s, e in chunks) * per
    window = max(1, (budget_mb * 2 ** 20) // (2 * biggest))
    return DataPlan(STREAMED, n, per, budget_mb, tuple(chunks), int(window))


def _way(d: Mapping[str, Any]) -> str:
    if d.get("mode") == STREAMED:
        return f"streamed shuffle (chunk_rows {d.get('chunk_rows')}, window_chunks {d.get('window_chunks')})"
    return f"{d.get('mode')} shuffle"


def plan_mismatch(saved: dict[str, Any] | None, plan: DataPlan) -> str:
    """Why a resumed run's ``plan`` would not draw the order its card's ``shuffle`` entry did.

    ``""`` when it would; a card without the entry was trained with the exact shuffle.
    """
    saved = saved or {"mode": EXACT}
    now = plan.card()
    if any(saved.get(k) != now.get(k) for k in ("mode", "chunk_rows", "window_chunks")):
        return (f"the run was trained with the {_way(saved)} (memory budget "
                f"{saved.get('memory_budget_mb', 'not recorded')} MiB); with memory budget {plan.budget_mb} MiB "
                f"it would continue with the {_way(now)}")
    return ""


def check_resume_plan(card: Mapping[str, Any] | None, plan: DataPlan, out: str) -> None:
    """Refuse to resume the run of ``card`` when ``plan`` would draw another order than it did."""
    if card is None:
        return
    saved = card.get("shuffle") or {"mode": EXACT}
    why = plan_mismatch(saved, plan)
    if why:
        budget = saved.get("memory_budget_mb")
        if saved.get("mode") == EXACT:
            budget = max(int(budget or 0), int(plan.data_mb) + 1)
        raise CheckpointError(f"{out}: cannot resume — {why}; resume with memory_budget_mb={budget} "
                              f"(--memory-budget {budget}) to continue the same order")


def epoch_order(plan: DataPlan, seed: int, epoch: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The order of epoch ``epoch`` (int64 ``[N]`` of global indices) and its windows.

    The windows are the chunk ids of each, in order (``[]`` for :data:`EXACT`). See the module docstring for the
    rule.
    """
    g = make_generator(derive_seed(seed, epoch, STREAM_SHUFFLE))
    if plan.mode == EXACT:
        return torch.randperm(plan.n, generator=g), []
    lengths = torch.tensor([e - s for _, s, e in plan.chunks], dtype=torch.int64)
    offsets = torch.cumsum(lengths, 0) - lengths
    pi = torch.randperm(len(plan.chunks), generator=g)
    windows = [pi[w:w + plan.window] for w in range(0, len(pi), plan.window)]
    parts = []
    for ids in windows:
        rows = torch.cat([torch.arange(int(offsets[c]), int(offsets[c] + lengths[c])) for c in ids.tolist()])
        parts.append(rows[torch.randperm(int(rows.shape[0]), generator=g)])
    order = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.int64)
    return order, windows


class _ChunkReader:
    """Random access to chunks ``(key, start, stop)`` of a packed file or of a folder root.

    A packed file is read through one open handle; a folder root's chunk PNGs are decoded in this process.
    """

    def __init__(self, source: str, keys: Sequence[str]):
        self.source = source
        self.h5 = is_h5(source)
        self.f: Any = None
        self.files: dict[str, SetFiles] = {}
        if self.h5:
            self.f, info = open_h5(source)
            expand_datasets(list(keys), info["keys"], "2afc", where=source)
        else:
            base = resolve_root(source)
            self.files = {k: scan_set(base, k) for k in keys}

    def judges(self, key: str) -> np.ndarray:
        if self.h5:
            return np.asarray(read_rows(self.f[key]["judge"], self.source), dtype=np.float32).reshape(-1)
        sf = self.files[key]
        if sf.judgments is not None:
            return np.asarray(sf.judgments, dtype=np.float32).reshape(-1)
        return load_judgments(sf.files["judge"])

    def read_into(self, key: str, start: int, stop: int, out: list[np.ndarray], at: int) -> None:
        """Rows ``start:stop`` of set ``key``'s ``ref``, ``p0``, ``p1`` into ``out[i][at:at + stop - start]``."""
        n = stop - start
        if self.h5:
            g = self.f[key]
            for arr, name in zip(out, ("ref", "p0", "p1"), strict=True):
                read_rows(g[name], self.source, start, stop, arr[at:at + n])
            return
        sf = self.files[key]
        part = SetFiles(key, sf.folder, sf.stems[start:stop], {k: v[start:stop] for k, v in sf.files.items()},
                        None if sf.judgments is None else sf.judgments[start:stop])
        dec = decode_set(part)
        for arr, name in zip(out, ("ref", "p0", "p1"), strict=True):
            arr[at:at + n] = dec[name]

    def close(self) -> None:
        if self.f is not None:
            self.f.close()
            self.f = None


class StreamedData:
    """The streamed full path's triplets: judgments held whole, images read a window of chunks at a time.

    The judgments take 4 bytes a triplet; the images are read as the epoch's order reaches them (see the module
    docstring). Call :meth:`start_epoch` with the windows of :func:`epoch_order` first.
    """

    def __init__(self, source: str, keys: Sequence[str], plan: DataPlan, device: torch.device):
        self.plan, self.device = plan, device
        self.side = int(round(((plan.triplet_bytes - 4) / 9) ** 0.5))
        self.reader = _ChunkReader(source, keys)
        judges = [self.reader.judges(k) for k in keys]
        self.counts = {k: int(len(j)) for k, j in zip(keys, judges, strict=True)}
        self.judge = torch.from_numpy(np.concatenate(judges) if judges else np.zeros(0, np.float32)).to(device)
        lengths = [e - s for _, s, e in plan.chunks]
        self.starts = torch.tensor(np.cumsum([0] + lengths[:-1]), dtype=torch.int64)
        self.window_of = torch.zeros(len(plan.chunks), dtype=torch.int64)
        self.row_in_window = torch.zeros(len(plan.chunks), dtype=torch.int64)
        self.windows: list[torch.Tensor] = []
        self.resident: dict[int, list[torch.Tensor]] = {}
        #: windows read so far in this run (what the tests and the log look at)
        self.windows_read = 0

    def __len__(self) -> int:
        return int(self.judge.shape[0])

    def start_epoch(self, windows: list[torch.Tensor]) -> None:
        """Take the windows of this epoch's order; nothing of the previous epoch stays resident."""
        self.resident.clear()
        self.windows = windows
        for w, ids in enumerate(windows):
            at = 0
            for c in ids.tolist():
                self.window_of[c] = w
                self.row_in_window[c] = at
                _, s, e = self.plan.chunks[c]
                at += e - s

    def end_epoch(self) -> None:
        """Drop the resident windows at the end of an epoch."""
        self.resident.clear()

    def _load(self, w: int) -> list[torch.Tensor]:
        """Window ``w``'s images, its chunks read straight into one array per image kind."""
        ids = self.windows[w].tolist()
        rows = sum(self.plan.chunks[c][2] - self.plan.chunks[c][1] for c in ids)
        out = [np.empty((rows, self.side, self.side, 3), np.uint8) for _ in range(3)]
        for c in ids:
            key, s, e = self.plan.chunks[c]
            self.reader.read_into(key, s, e, out, int(self.row_in_window[c]))
        self.windows_read += 1
        return [torch.from_numpy(a).to(self.device) for a in out]

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``ref, p0, p1`` of global indices ``idx`` as model input (NCHW float in [-1, 1])."""
        ii = idx.cpu()
        chunk = torch.searchsorted(self.starts, ii, right=True) - 1
        win = self.window_of[chunk]
        rows = self.row_in_window[chunk] + (ii - self.starts[chunk])
        needed = sorted(set(win.tolist()))
        for w in [w for w in self.resident if needed and w < needed[0]]:
            del self.resident[w]
        for w in needed:
            if w not in self.resident:
                self.resident[w] = self._load(w)
        shape = (len(ii), self.side, self.side, 3)
        out = [torch.empty(shape, dtype=torch.uint8, device=self.device) for _ in range(3)]
        for w in needed:
            sel = (win == w).nonzero().reshape(-1)
            src = rows[sel].to(self.device)
            dst = sel.to(self.device)
            for i in range(3):
                out[i][dst] = self.resident[w][i][src]
        return (to_model_input(out[0], device=self.device), to_model_input(out[1], device=self.device),
                to_model_input(out[2], device=self.device))

    def close(self) -> None:
        """Drop the resident windows and close the reader."""
        self.resident.clear()
        self.reader.close()


__all__ = ["DataPlan", "plan_data", "plan_mismatch", "check_resume_plan", "epoch_order", "StreamedData",
           "DEFAULT_MEMORY_BUDGET_MB", "EXACT", "STREAMED"]
