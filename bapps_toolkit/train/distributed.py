"""Multi-process training plumbing (torchrun + DistributedDataParallel).

``bapps train`` runs unchanged under ``torchrun --nproc_per_node=N``: the process group is set up
from torchrun's environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``/``PORT``),
with NCCL on CUDA and gloo on CPU. Every rank draws the same shuffled order and the same
dropout masks for each *global* batch and keeps a contiguous slice of it; the loss of a slice is
``Σ BCE / global_batch × world`` so DDP's gradient average equals the gradient of the mean
loss over the global batch — the same update one process makes with the same batch. Rank 0
alone writes checkpoints, the card and the log.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP


@dataclass
class DistContext:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str = ""
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def _pick_device(device: str | None, local_rank: int, world: int) -> torch.device:
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device: {device!r} requested but CUDA is not available")
        if world > 1 and dev.index is None:
            dev = torch.device("cuda", local_rank % torch.cuda.device_count())
    return dev


def setup(device: str | None = None) -> DistContext:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1 and not (dist.is_available() and dist.is_initialized()):
        return DistContext(device=_pick_device(device, 0, 1))
    local_rank = int(os.environ.get("LOCAL_RANK", "0") or 0)
    dev = _pick_device(device, local_rank, world)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    here = False
    if not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
        here = True
    return DistContext(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=local_rank,
                       device=dev, backend=str(dist.get_backend()), initialized_here=here)


def teardown(ctx: DistContext, *, sync: bool = True) -> None:
    """Leave the process group set up by :func:`setup`. ``sync`` waits for every rank first
    (a rank that destroys gloo's group while another still talks to it can abort the process);
    pass ``sync=False`` on an error path, where another rank may never arrive."""
    if ctx.initialized_here and dist.is_initialized():
        if sync:
            barrier(ctx)
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        if ctx.device.type == "cuda":
            dist.barrier(device_ids=[ctx.device.index])
        else:
            dist.barrier()


def broadcast_object(ctx: DistContext, obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not ctx.distributed:
        return obj
    box = [obj if ctx.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_reduce_sum(ctx: DistContext, t: torch.Tensor) -> torch.Tensor:
    if ctx.distributed:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def slice_for_rank(n: int, rank: int, world: int) -> tuple[int, int]:
    """Contiguous slice ``[lo, hi)`` of a global batch of ``n`` items for ``rank``."""
    base, extra = divmod(int(n), int(world))
    lo = rank * base + min(rank, extra)
    hi = lo + base + (1 if rank < extra else 0)
    return lo, hi


def all_gather_rows(ctx: DistContext, t: torch.Tensor) -> list[torch.Tensor]:
    """Every rank's ``t`` (same trailing shape, any number of rows), in rank order."""
    if not ctx.distributed:
        return [t]
    n = torch.tensor([t.shape[0]], device=t.device, dtype=torch.long)
    sizes = [torch.zeros_like(n) for _ in range(ctx.world)]
    dist.all_gather(sizes, n)
    sizes_i = [int(s.item()) for s in sizes]
    m = max(sizes_i)
    pad = t.new_zeros((m,) + tuple(t.shape[1:]))
    pad[: t.shape[0]] = t
    bufs = [torch.empty_like(pad) for _ in range(ctx.world)]
    dist.all_gather(bufs, pad)
    return [b[:s] for b, s in zip(bufs, sizes_i, strict=False)]


def wrap(module: torch.nn.Module, ctx: DistContext) -> torch.nn.Module:
    """DistributedDataParallel around ``module`` when running distributed, else ``module``."""
    if not ctx.distributed:
        return module
    if ctx.device.type == "cuda":
        return DDP(module, device_ids=[ctx.device.index], output_device=ctx.device.index)
    return DDP(module)


__all__ = ["DistContext", "setup", "teardown", "barrier", "broadcast_object", "all_reduce_sum",
           "slice_for_rank", "all_gather_rows", "wrap"]
