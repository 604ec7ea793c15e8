"""Multi-process training plumbing (torchrun + DistributedDataParallel).

``bapps train`` runs unchanged under ``torchrun --nproc_per_node=N``: the process group is set up
by :mod:`bapps_toolkit._distributed` (shared with evaluation and scoring). Every rank draws the
same shuffled order and the same dropout masks for each *global* batch and keeps a contiguous
slice of it; the loss of a slice is ``Σ BCE / global_batch × world`` so DDP's gradient average
equals the gradient of the mean loss over the global batch — the same update one process makes
with the same batch. Rank 0 alone writes checkpoints, the card and the log.
"""
from __future__ import annotations

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from .._distributed import (
    DistContext,
    all_gather_rows,
    all_reduce_sum,
    barrier,
    broadcast_object,
    setup,
    slice_for_rank,
    teardown,
)


def wrap(module: torch.nn.Module, ctx: DistContext) -> torch.nn.Module:
    """DistributedDataParallel around ``module`` when running distributed, else ``module``."""
    if not ctx.distributed:
        return module
    if ctx.device.type == "cuda":
        return DDP(module, device_ids=[ctx.device.index], output_device=ctx.device.index)
    return DDP(module)


__all__ = ["DistContext", "setup", "teardown", "barrier", "broadcast_object", "all_reduce_sum",
           "slice_for_rank", "all_gather_rows", "wrap"]
