"""Cached-feature fast path for training the LPIPS linear layers (variant ``lin``).

Why it is exact
---------------
With a frozen backbone the LPIPS distance is linear in the linear-layer weights:

``d(x, y) = Σ_k mean_hw( w_k · D_k ) = Σ_k w_k · v_k``,  ``v_k[c] = mean_hw D_k[c]``,

where ``D_k = (f̂_k(x) − f̂_k(y))²`` is the squared difference of the unit-normalised features of
tap ``k`` (Zhang et al., CVPR 2018, eq. 1). So each triplet is reduced once, before training, to
two vectors ``v(ref, p0)``, ``v(ref, p1)`` of ``ΣC`` numbers (1152 for AlexNet, 1472 for VGG16,
2224 for SqueezeNet 1.1), the reference patch going through the backbone once; every epoch then
costs one ``[B, ΣC] × [ΣC]`` product per side. Without dropout the distances equal the full
path's up to float rounding and training on identical batches gives the same weights (tested).

Dropout on the fast path (documented deviation)
-----------------------------------------------
The official model applies Dropout(0.5) to every element of ``D_k`` (each channel at each pixel)
before the 1×1 layer. The per-pixel values are gone once averaged, so the fast path applies
Dropout(p) to the per-channel **mean vector** ``v_k`` instead: one Bernoulli mask element per
(triplet, channel, side), scaled by ``1/(1 − p)``. In expectation the distance and its gradient
are the same as with the official dropout; the variance is larger (a channel is dropped at
every pixel at once instead of at about half of them), which acts as a somewhat stronger
regulariser. The tests check that the final validation 2AFC of the fast path is within 0.5 pt of
the full path's on the mini set.

Precompute
----------
Triplets are read in chunks (``iter_2afc_chunks``; bounded host memory), moved to the training
device, pushed through the backbone in batches of ``batch`` triplets (``3·batch`` images in one
forward), and the vectors are kept on the device. In one process they are written into
``[N, ΣC]`` tensors allocated once (no list-then-concatenate copy, so the peak is the vectors plus
one chunk's activations); with several processes, chunk ``i`` is computed by rank ``i mod
world`` and the vectors are all-gathered.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from ..data import TwoAFCDataset, iter_2afc_chunks, to_model_input
from ..metrics.lpips import LPIPS
from .distributed import DistContext, all_gather_rows


@dataclass
class TripletVectors:
    """Per-triplet fast-path inputs: ``v0``/``v1`` ``[N, ΣC]`` and ``judge`` ``[N]``."""

    v0: torch.Tensor
    v1: torch.Tensor
    judge: torch.Tensor
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    images: int = 0

    def __len__(self) -> int:
        return int(self.judge.shape[0])

    def offsets(self) -> dict[str, tuple[int, int]]:
        """``{key: (start, stop)}`` rows of each set."""
        out: dict[str, tuple[int, int]] = {}
        s = 0
        for k, n in self.counts.items():
            out[k] = (s, s + n)
            s += n
        return out


def mean_sq_diff(feats: Sequence[torch.Tensor], n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The vectors ``v0`` and ``v1`` from the features of ``cat([ref, p0, p1])`` (``3n`` rows per tap).

    ``v0 = [mean_hw (f̂_ref − f̂_p0)²]_k`` and ``v1`` likewise, concatenated over taps.
    """
    a, b = [], []
    for f in feats:
        f = f.float()
        fr, f0, f1 = f[:n], f[n:2 * n], f[2 * n:]
        a.append(((fr - f0) ** 2).mean(dim=(2, 3)))
        b.append(((fr - f1) ** 2).mean(dim=(2, 3)))
    return torch.cat(a, dim=1), torch.cat(b, dim=1)


@dataclass
class _Gather:
    """What the chunk walk of :func:`precompute` collects."""

    prealloc: tuple[torch.Tensor, torch.Tensor] | None
    mine_v0: list[torch.Tensor] = field(default_factory=list)
    mine_v1: list[torch.Tensor] = field(default_factory=list)
    judges: list[torch.Tensor] = field(default_factory=list)
    chunk_sizes: list[int] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    rows: int = 0


@torch.no_grad()
def precompute(lpips: LPIPS, source: str, keys: Sequence[str], *, ctx: DistContext,
               batch: int = 512, bf16: bool = False, progress: bool = False,
               desc: str = "precompute") -> TripletVectors:
    """Fast-path vectors of every triplet of the 2AFC sets ``keys`` in ``source``."""
    t0 = time.perf_counter()
    dev = ctx.device
    was_training = lpips.training
    lpips.eval()
    dim = sum(int(c) for c in lpips.channels)
    prealloc = None
    if not ctx.distributed:
        n_total = sum(_set_length(source, key) for key in keys)
        prealloc = (torch.empty((n_total, dim), device=dev), torch.empty((n_total, dim), device=dev))
    got = _Gather(prealloc)
    bar = tqdm(desc=desc, unit="triplet", leave=False) if progress and ctx.is_main else None
    _walk_chunks(lpips, source, keys, ctx, batch, bf16 and dev.type == "cuda", got, bar)
    if bar is not None:
        bar.close()
    lpips.train(was_training)
    if ctx.distributed:
        v0_all, v1_all = _gather_ranks(got, ctx, dim)
    else:
        if got.prealloc is None:
            raise RuntimeError("gathered features without their preallocated buffers")
        if got.rows != got.prealloc[0].shape[0]:
            raise RuntimeError(f"precompute: read {got.rows} triplets of {', '.join(keys)}, "
                               f"expected {got.prealloc[0].shape[0]}")
        v0_all, v1_all = got.prealloc
    judge = torch.cat(got.judges).to(dev) if got.judges else torch.zeros(0, device=dev)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return TripletVectors(v0_all.contiguous(), v1_all.contiguous(), judge, got.counts,
                          time.perf_counter() - t0, 3 * int(judge.shape[0]))


def _walk_chunks(lpips: LPIPS, source: str, keys: Sequence[str], ctx: DistContext, batch: int,
                 autocast_on: bool, got: _Gather, bar: Any) -> None:
    """Read every chunk; chunk ``i`` is pushed through the backbone by rank ``i mod world``."""
    dev = ctx.device
    i = 0
    for key in keys:
        n_key = 0
        for part in iter_2afc_chunks(source, key, batch):
            n = len(part)
            n_key += n
            got.chunk_sizes.append(n)
            got.judges.append(torch.as_tensor(part.judge, dtype=torch.float32).reshape(-1))
            if i % ctx.world == ctx.rank:
                x = torch.cat([to_model_input(part.ref, device=dev), to_model_input(part.p0, device=dev),
                               to_model_input(part.p1, device=dev)], dim=0)
                if autocast_on:
                    with torch.autocast("cuda", dtype=torch.bfloat16):
                        feats = lpips.features(x)
                else:
                    feats = lpips.features(x)
                v0, v1 = mean_sq_diff(feats, n)
                del feats, x
                if got.prealloc is not None:
                    got.prealloc[0][got.rows:got.rows + n] = v0
                    got.prealloc[1][got.rows:got.rows + n] = v1
                else:
                    got.mine_v0.append(v0)
                    got.mine_v1.append(v1)
            got.rows += n
            if bar is not None:
                bar.update(n)
            i += 1
        got.counts[key] = n_key


def _gather_ranks(got: _Gather, ctx: DistContext, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All-gather every rank's vectors and put the chunks back in reading order."""
    dev = ctx.device
    local0 = torch.cat(got.mine_v0) if got.mine_v0 else torch.zeros((0, dim), device=dev)
    local1 = torch.cat(got.mine_v1) if got.mine_v1 else torch.zeros((0, dim), device=dev)
    g0 = all_gather_rows(ctx, local0.contiguous())
    g1 = all_gather_rows(ctx, local1.contiguous())
    pos = [0] * ctx.world
    parts0, parts1 = [], []
    for j, n in enumerate(got.chunk_sizes):
        r = j % ctx.world
        parts0.append(g0[r][pos[r]:pos[r] + n])
        parts1.append(g1[r][pos[r]:pos[r] + n])
        pos[r] += n
    return (torch.cat(parts0) if parts0 else local0), (torch.cat(parts1) if parts1 else local1)


def _set_length(source: str, key: str) -> int:
    """Triplets in one 2AFC set (stems only: no image is read)."""
    ds = TwoAFCDataset(source, [key], in_memory=False)
    try:
        return len(ds)
    finally:
        ds.close()


__all__ = ["TripletVectors", "precompute", "mean_sq_diff"]
