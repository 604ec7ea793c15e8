"""Process-group plumbing shared by training, evaluation and scoring under ``torchrun``.

A command launched by ``torchrun --nproc_per_node=N`` (or with ``WORLD_SIZE`` > 1 in its
environment) joins the process group from torchrun's variables (``WORLD_SIZE``, ``RANK``,
``LOCAL_RANK``, ``MASTER_ADDR``/``PORT``), with NCCL on CUDA and gloo on CPU. One process
(``WORLD_SIZE`` unset or 1) never touches ``torch.distributed``.
"""
from __future__ import annotations

import atexit
import os
import pickle
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import torch
import torch.distributed as dist

from ._device import pick_device

T = TypeVar("T")
W = TypeVar("W")


def is_main_process() -> bool:
    """Whether this process is rank 0 (always true outside ``torchrun``); only it writes files."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0") or 0) == 0


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
    """The device for this rank: :func:`~bapps_toolkit._device.pick_device`, pinned to the rank's GPU.

    A bare ``cuda`` (or the automatic choice) is pinned to this rank's GPU, and CUDA asked for
    where there is none is refused.
    """
    dev = pick_device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device: {device!r} requested but CUDA is not available")
        if dev.index is None and (world > 1 or device is None or str(device) == "auto"):
            dev = torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
    return dev


def _import_dynamo_first() -> None:
    """Import ``torch._dynamo`` before the process group exists.

    With torch 2.13, importing it *after* ``init_process_group`` (which the first optimizer or
    DDP wrapper does lazily) leaves references to the default group that
    ``destroy_process_group()`` does not drop; the group then outlives teardown and is destroyed
    during interpreter shutdown, where gloo can abort the process ("terminate called without an
    active exception", exit -6, after a finished run). Imported first, the group is freed by
    :func:`teardown` (``tests/test_distributed_teardown.py``).
    """
    import torch._dynamo  # noqa: F401


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
        _import_dynamo_first()
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
        here = True
    return DistContext(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=local_rank,
                       device=dev, backend=str(dist.get_backend()), initialized_here=here)


def teardown(ctx: DistContext, *, sync: bool = True) -> None:
    """Leave the process group set up by :func:`setup`.

    ``sync`` waits for every rank first (a rank that destroys gloo's group while another still talks
    to it can abort the process); pass ``sync=False`` on an error path, where another rank may never
    arrive.
    """
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


def join_process_group(device: Any = None) -> torch.device:
    """This process's device, after joining torchrun's process group when there is one.

    Outside ``torchrun`` (``WORLD_SIZE`` unset or 1) this is :func:`bapps_toolkit._device.pick_device`
    and nothing else happens. Under ``torchrun`` every rank joins once (NCCL on CUDA, gloo on
    CPU), takes ``cuda:LOCAL_RANK`` for a bare ``cuda``/``auto`` and leaves the group at exit.
    """
    ctx = setup(device)
    if ctx.initialized_here:
        atexit.register(_leave)
    return ctx.device


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def current_context() -> DistContext:
    """Rank and world size of the process group this process is in (rank 0 of 1 when none)."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistContext()
    backend = str(dist.get_backend())
    dev = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
    return DistContext(rank=dist.get_rank(), world=dist.get_world_size(), device=dev, backend=backend)


def gather_rows(ctx: DistContext, t: torch.Tensor) -> torch.Tensor:
    """Every rank's rows of ``t`` concatenated in rank order, on the device of ``t``.

    In one process this is ``t`` itself.
    """
    if not ctx.distributed:
        return t
    return torch.cat(all_gather_rows(ctx, t.to(ctx.device))).to(t.device)


class _Failed:
    """An exception raised on one rank, sent to the others (a picklable stand-in if it is not)."""

    def __init__(self, rank: int, exc: BaseException):
        try:
            pickle.dumps(exc)
            self.exc: BaseException = exc
        except Exception:
            self.exc = RuntimeError(f"rank {rank}: {type(exc).__name__}: {exc}")


def all_gather_objects(ctx: DistContext, obj: Any) -> list[Any]:
    """Every rank's picklable ``obj``, in rank order (``[obj]`` in one process)."""
    if not ctx.distributed:
        return [obj]
    box: list[Any] = [None] * ctx.world
    dist.all_gather_object(box, obj)
    return box


def share_from_main(ctx: DistContext, fn: Callable[[], T]) -> T:
    """Run ``fn()`` on rank 0 alone and give its result (or its exception) to every rank.

    For a step that only rank 0 may do (take the output's lock, read or write the output) without leaving the
    other ranks waiting on a rank that failed. Also a barrier.
    """
    if not ctx.distributed:
        return fn()
    outcome: Any = None
    own: BaseException | None = None
    if ctx.is_main:
        try:
            outcome = ("ok", fn())
        except Exception as exc:
            own, outcome = exc, ("err", _Failed(0, exc))
    kind, value = broadcast_object(ctx, outcome)
    if kind == "err":
        raise own if own is not None else value.exc
    return cast(T, value)


def sharded(ctx: DistContext, work: Sequence[W], run: Callable[[Sequence[W]], Iterator[T]]) -> Iterator[T]:
    """The results of ``run`` over ``work``, in ``work`` order, computed round-robin across ranks.

    ``run(items)`` must yield exactly one picklable result per item, in order. Rank ``r`` runs
    items ``r, r + world, r + 2·world, …``; after every step the ranks exchange their results
    (:func:`all_gather_objects`), so every rank yields every result, in ``work`` order, and
    memory holds one step's results of all ranks at a time. One process: ``run(work)`` itself.
    An exception in one rank's ``run`` is raised on every rank (none waits for a failed one).
    """
    if not ctx.distributed:
        yield from run(work)
        return
    mine = iter(run(work[ctx.rank::ctx.world]))
    for _ in range(-(-len(work) // ctx.world)):
        item: Any
        try:
            item = next(mine, None)
        except Exception as exc:
            item = _Failed(ctx.rank, exc)
        got = all_gather_objects(ctx, item)
        failed = next((g for g in got if isinstance(g, _Failed)), None)
        if failed is not None:
            if isinstance(item, _Failed):
                raise item.exc
            raise failed.exc
        yield from (g for g in got if g is not None)


__all__ = ["DistContext", "setup", "teardown", "barrier", "broadcast_object", "all_reduce_sum",
           "slice_for_rank", "all_gather_rows", "is_main_process",
           "join_process_group", "current_context", "gather_rows", "all_gather_objects", "share_from_main", "sharded"]
