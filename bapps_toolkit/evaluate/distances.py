"""Per-item distances of a metric on the 2AFC and JND sets, and their files on disk.

Every set is an :class:`EvalSet`: its metadata (``key``, ``split``, ``category``, ``len()``) and
:meth:`EvalSet.pieces`, the parts its images are read in. A set loaded whole
(:func:`open_sets` with ``stream=False``) is one piece resident on the device; a streamed set
reads ``chunk_size`` items per piece from disk (``iter_2afc_chunks`` / ``iter_jnd_chunks``), so
its images are never held whole. :func:`set_distances` walks the pieces the same way for both.

Batches are made by ``to_model_input`` from uint8 patches: finite, inside [-1, 1] and of one
shape for a whole set, so the metric's validation (:meth:`Metric.validate`) runs on the first
batch of each set only. 2AFC goes through :meth:`Metric.pair_distances`, which deep metrics
override so that ``[ref; p0; p1]`` crosses the network in one pass.
"""
from __future__ import annotations

import dataclasses
import types
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .._distributed import current_context, gather_rows, slice_for_rank
from .._io import PathLike, atomic_path, atomic_write, csv_frame
from ..data import (
    JNDDataset,
    TwoAFCDataset,
    iter_2afc_chunks,
    iter_jnd_chunks,
    load_2afc,
    load_jnd,
    to_model_input,
)
from ..errors import UsageError
from ..metrics import Metric
from ..metrics.speed import PreparedMetric

DISTANCE_SUFFIXES = (".npz", ".csv")
_FIELDS = ("d0", "d1", "judge", "d", "same")


@dataclasses.dataclass
class SetDistances:
    """Per-item distances of one metric on one set (2AFC: ``d0``, ``d1``, ``judge``; JND: ``d``, ``same``)."""

    metric: str
    label: str
    key: str
    stems: list[str]
    d0: np.ndarray | None = None
    d1: np.ndarray | None = None
    judge: np.ndarray | None = None
    d: np.ndarray | None = None
    same: np.ndarray | None = None

    @property
    def mode(self) -> str:
        """The judgment mode of the set: ``2afc`` or ``jnd``."""
        return self.key.split("/")[0]


def as_numpy(x: Any) -> np.ndarray:
    """``x`` (numpy or torch, any device) as a numpy array."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _labels(piece: Any) -> np.ndarray:
    """The human data of a piece: 2AFC ``judge`` or JND ``same``, float64 ``[N]``."""
    value = piece.judge if hasattr(piece, "judge") else piece.same
    return as_numpy(value).astype(np.float64).reshape(-1)


class EvalSet:
    """One 2AFC or JND set to score: metadata up front, images through :meth:`pieces`.

    ``stems``, ``labels`` (2AFC ``judge`` / JND ``same``) and ``synthetic`` are known after the
    first full pass of :meth:`pieces` (at once for a set loaded whole).
    """

    def __init__(self, key: str, n: int, pieces: Any, *, loaded: Any = None):
        self.key = key
        self.mode, self.split, self.category = key.split("/")
        self._n = int(n)
        self._pieces = pieces
        self.stems: list[str] | None = None
        self.labels: np.ndarray | None = None
        self.synthetic = False
        if loaded is not None:
            self.stems, self.labels, self.synthetic = list(loaded.stems), _labels(loaded), bool(loaded.synthetic)

    def __len__(self) -> int:
        return self._n

    def pieces(self) -> Iterator[Any]:
        """Yield the set's pieces, recording ``stems``, ``labels`` and ``synthetic`` after a full pass."""
        stems: list[str] = []
        values: list[np.ndarray] = []
        for piece in self._pieces():
            stems.extend(piece.stems)
            values.append(_labels(piece))
            self.synthetic = bool(piece.synthetic)
            yield piece
        if self.stems is None:
            self.stems = stems
            self.labels = np.concatenate(values) if values else np.zeros(0)


def _streamed(source: Path, key: str, chunk_size: int, device: torch.device) -> EvalSet:
    """A set read ``chunk_size`` items at a time; its length comes from the stems alone."""
    twoafc = key.startswith("2afc/")
    ds = (TwoAFCDataset if twoafc else JNDDataset)(source, [key], in_memory=False)
    try:
        n = len(ds)
    finally:
        ds.close()
    reader = iter_2afc_chunks if twoafc else iter_jnd_chunks
    return EvalSet(key, n, lambda: reader(source, key, chunk_size, device=device))


def open_sets(source: Path, keys: Sequence[str], *, stream: bool, chunk_size: int,
              device: torch.device) -> list[EvalSet]:
    """The sets ``keys`` of ``source``, in that order: loaded whole onto ``device``, or streamed."""
    if stream:
        return [_streamed(source, k, chunk_size, device) for k in keys]
    keys_2afc = [k for k in keys if k.startswith("2afc/")]
    keys_jnd = [k for k in keys if k.startswith("jnd/")]
    loaded = (load_2afc(source, keys_2afc, device=device) if keys_2afc else []) + (
        load_jnd(source, keys_jnd, device=device) if keys_jnd else [])
    by_key = {s.key: s for s in loaded}
    return [EvalSet(k, len(by_key[k]), (lambda s=by_key[k]: iter([s])), loaded=by_key[k]) for k in keys]


def _as_tensor(x: Any, device: torch.device) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x if x.device == device else x.to(device)
    return torch.from_numpy(np.ascontiguousarray(x)).to(device)


def _piece_distances(metric: Metric | PreparedMetric, piece: Any, device: torch.device, batch_size: int,
                     first: bool) -> list[torch.Tensor]:
    """``[d0, d1]`` (2AFC) or ``[d]`` (JND) of one piece; validation on the set's first batch only."""
    twoafc = hasattr(piece, "ref")
    arrays = [_as_tensor(a, device) for a in ((piece.ref, piece.p0, piece.p1) if twoafc else (piece.p0, piece.p1))]
    n = len(piece.stems)
    out: list[list[torch.Tensor]] = [[], []] if twoafc else [[]]
    for i in range(0, n, batch_size):
        j = min(n, i + batch_size)
        x = to_model_input(torch.cat([a[i:j] for a in arrays], dim=0), device=device)
        parts = [x[k * (j - i):(k + 1) * (j - i)] for k in range(len(arrays))]
        validate = first and i == 0
        got: tuple[torch.Tensor, ...]
        if twoafc:
            got = metric.pair_distances(*parts, validate=validate)
        else:
            got = (metric.distance(*parts, validate=validate),)
        for acc, d in zip(out, got, strict=True):
            acc.append(d.reshape(j - i).double().cpu())
    return [torch.cat(acc) if acc else torch.zeros(0, dtype=torch.float64) for acc in out]


def _rank_slice(piece: Any, lo: int, hi: int) -> Any:
    """Items ``[lo, hi)`` of a piece (the arrays :func:`_piece_distances` reads)."""
    names = ("ref", "p0", "p1") if hasattr(piece, "ref") else ("p0", "p1")
    return types.SimpleNamespace(stems=list(piece.stems)[lo:hi], **{k: getattr(piece, k)[lo:hi] for k in names})


def set_distances(metric: Metric | PreparedMetric, s: EvalSet, device: torch.device, batch_size: int,
                  bar: Any) -> list[np.ndarray]:
    """Distances of every item of ``s``: ``[d0, d1]`` for 2AFC, ``[d]`` for JND (float64).

    Under ``torchrun`` every rank computes a contiguous slice of each piece and the slices are
    gathered in rank order, so every rank returns the whole set's distances, item for item those
    of one process (up to the float noise of a different batch composition).
    """
    ctx = current_context()
    parts: list[list[torch.Tensor]] = []
    with torch.inference_mode():
        for k, piece in enumerate(s.pieces()):
            n = len(piece.stems)
            mine = piece
            if ctx.distributed:
                mine = _rank_slice(piece, *slice_for_rank(n, ctx.rank, ctx.world))
            got = _piece_distances(metric, mine, device, batch_size, first=(k == 0))
            parts.append([gather_rows(ctx, d) for d in got])
            bar.update(n)
    width = 2 if s.mode == "2afc" else 1
    return [np.concatenate([p[f].numpy() for p in parts]) if parts else np.zeros(0) for f in range(width)]


# --------------------------------------------------------------------------------------------
# Per-item distances on disk
# --------------------------------------------------------------------------------------------
def check_distances_path(path: PathLike, what: str = "save_distances") -> Path:
    """``path`` as a Path when its suffix is ``.npz`` or ``.csv``; otherwise an error naming ``what``."""
    out = Path(path)
    if out.suffix.lower() not in DISTANCE_SUFFIXES:
        raise UsageError(f"{what} {out}: use a .npz or .csv file name")
    return out


def distances_frame(distances: Sequence[SetDistances]) -> pd.DataFrame:
    """Long table: one row per metric and item.

    The columns: metric, label, mode, split, category, stem, d0, d1, judge for 2AFC; d, same for JND; empty
    where not applicable.
    """
    parts = []
    for sd in distances:
        mode, split, category = sd.key.split("/")
        nan = np.full(len(sd.stems), np.nan)
        columns = {f: (getattr(sd, f) if getattr(sd, f) is not None else nan) for f in _FIELDS}
        parts.append(pd.DataFrame({"metric": sd.metric, "label": sd.label, "mode": mode, "split": split,
                                   "category": category, "stem": sd.stems, **columns}))
    cols = ["metric", "label", "mode", "split", "category", "stem", *_FIELDS]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)


def write_distances(distances: Sequence[SetDistances], path: PathLike) -> Path:
    """Write per-item distances to ``.csv`` (long table) or ``.npz``, atomically.

    The ``.npz`` arrays are named ``<metric>|<mode>/<split>/<category>|<field>``.
    """
    out = check_distances_path(path, "distances file")
    if out.suffix.lower() == ".csv":
        frame = distances_frame(distances)
        with atomic_write(out, "w", encoding="utf-8", newline="") as fh:
            csv_frame(frame).to_csv(fh, index=False, float_format="%.8g")  # as the score CSVs
        return out
    arrays: dict[str, Any] = {}
    for sd in distances:
        for field in _FIELDS:
            value = getattr(sd, field)
            if value is not None:
                arrays[f"{sd.metric}|{sd.key}|{field}"] = value
        arrays[f"{sd.metric}|{sd.key}|stems"] = np.asarray(sd.stems, dtype=str)
        arrays[f"{sd.metric}|{sd.key}|label"] = np.asarray(sd.label)
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    return out
