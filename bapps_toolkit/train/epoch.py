"""One training epoch over the triplets: the ranking loss of every batch and the optimiser step."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from . import distributed
from .data import FullData
from .fastpath import TripletVectors
from .hinge import Criterion
from .model import (
    MaskSource,
    bce_sum,
    clamp_linear_,
    train_accuracy,
)
from .stream import StreamedData


def run_epoch(wrapped: torch.nn.Module, opt: torch.optim.Optimizer, lins: torch.nn.ModuleList, *,
              perm: torch.Tensor, judge: torch.Tensor,
              batch_size: int, dropout: float, drop_gen: torch.Generator | None, ctx: distributed.DistContext,
              vecs: TripletVectors | None = None, data: FullData | StreamedData | None = None, bar: Any = None,
              hook: Callable[[int], None] | None = None,
              loss_fn: Criterion | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass over ``perm`` in global batches of ``batch_size``.

    Each batch: forward (fast path when ``vecs`` is given, else the full network on ``data``), the loss
    (``loss_fn``, :mod:`.hinge`; default the BCE of G against the judge), Adam step, clamp of the linear layers.
    Returns the summed BCE and summed training accuracy of this rank's items (device tensors; no host sync
    inside the loop).
    """
    dev = perm.device
    loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
    acc_sum = torch.zeros((), dtype=torch.float64, device=dev)
    n = int(perm.shape[0])
    for step, b in enumerate(range(0, n, batch_size), start=1):
        idx = perm[b:b + batch_size]
        gn = int(idx.shape[0])
        lo, hi = distributed.slice_for_rank(gn, ctx.rank, ctx.world)
        local = idx[lo:hi]
        masks = MaskSource(dropout, drop_gen, gn, lo, hi)
        j = judge[local]
        if vecs is not None:
            d0, d1, prob = wrapped("fast", vecs.v0[local], vecs.v1[local], masks)
        else:
            if data is None:
                raise ValueError("run_epoch: give vecs (fast path) or data (full path)")
            ref, p0, p1 = data.batch(local)
            d0, d1, prob = wrapped("full", ref, p0, p1, masks)
        lsum = bce_sum(prob, j) if loss_fn is None else loss_fn(prob, d0, d1, j)
        loss = lsum * (ctx.world / gn)
        opt.zero_grad(set_to_none=True)
        torch.autograd.backward([loss])
        opt.step()
        clamp_linear_(lins)
        with torch.no_grad():
            loss_sum += lsum.detach().double()
            acc_sum += train_accuracy(d0.detach(), d1.detach(), j).double().sum()
        if bar is not None:
            bar.update(gn)
        if hook is not None:
            hook(step)
    return loss_sum, acc_sum
