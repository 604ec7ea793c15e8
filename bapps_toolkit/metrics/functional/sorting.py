"""Differentiable sorting along the last axis, fast on CPU.

:func:`sorted_values` returns the same numbers as ``torch.sort(t, dim=-1).values`` and, when
``t`` requires a gradient, routes the gradient back to the sorted positions (what
``torch.sort``'s backward does).

On CPU, a float32 tensor with no negative value (ReLU activations, pixels in [0, 1]) that needs
a gradient is sorted as 64-bit integer keys: the upper 32 bits are the float's bits (for
non-negative floats their order as signed integers is the floats' order, ``-0.0`` coming first),
the lower 32 bits the element's position. One ``np.sort`` of these keys (numpy's vectorised
integer sort) gives both the sorted values (the upper halves, bit for bit) and the permutation
(the lower halves), several times faster than ``np.argsort`` followed by a gather. The backward
pass scatters the incoming gradient to the recorded positions (``np.put_along_axis``; torch's
``scatter`` when the backward itself is to be differentiated). Tied values may come out in
another order than ``torch.sort`` gives them, which changes neither the sorted values nor, for
a function of the sorted values alone, the gradient of any element that has no tie.

Without a gradient to track, CPU float32 / float64 tensors are sorted by ``np.sort``; with one
and a negative value (or NaN) or float64, by ``np.argsort`` and a gather; on other devices by
``torch.sort``.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ...errors import MetricInputError


def sort_with_order(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort the rows of a non-negative float32 array and say where each value came from.

    Args:
        x: ``float32 [..., n]`` with no value below 0 (``-0.0`` is allowed) and no NaN,
            ``n < 2**32``, on a little-endian machine.

    Returns:
        ``(values, order)``: ``values`` equal to ``np.sort(x, axis=-1)`` (``-0.0`` before
        ``0.0``), ``order`` the ``uint32`` positions in ``x`` they came from (both strided
        views of one key array).

    Raises:
        ValueError: for another dtype, rows too long, or a big-endian machine.
    """
    if x.dtype != np.float32 or x.ndim == 0 or x.shape[-1] >= 2**32 or sys.byteorder != "little":
        raise MetricInputError(f"sort_with_order needs float32 rows shorter than 2**32 on a little-endian "
                         f"machine, got {x.dtype} of shape {x.shape} ({sys.byteorder}-endian)")
    keys = np.empty(x.shape, dtype=np.int64)
    halves = keys.view(np.uint32).reshape(*x.shape, 2)  # [..., 0]: low half, [..., 1]: high half
    halves[..., 1] = x.view(np.uint32)
    halves[..., 0] = np.arange(x.shape[-1], dtype=np.uint32)
    keys.sort(axis=-1)
    return halves.view(np.float32)[..., 1], halves[..., 0]


class _SortByKey(torch.autograd.Function):
    """Sorted values of a non-negative CPU float32 tensor; backward scatters to the positions."""

    @staticmethod
    def forward(ctx: Any, t: torch.Tensor) -> torch.Tensor:
        values, order = sort_with_order(t.detach().numpy())
        ctx.order = order
        return torch.from_numpy(values)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        if grad.requires_grad:  # a graph of the backward is wanted (double backward): torch's scatter
            order = torch.from_numpy(ctx.order.astype(np.int64))
            return grad.new_empty(grad.shape).scatter(-1, order, grad)
        out = np.empty(grad.shape, dtype=np.float32)
        np.put_along_axis(out, ctx.order, grad.detach().numpy(), axis=-1)
        return torch.from_numpy(out)


def _key_sortable(t: torch.Tensor) -> bool:
    """CPU float32, little-endian, rows shorter than 2**32, no negative value and no NaN."""
    if t.device.type != "cpu" or t.dtype != torch.float32 or sys.byteorder != "little":
        return False
    if t.dim() == 0 or t.numel() == 0 or t.shape[-1] >= 2**32:
        return False
    return bool(t.detach().numpy().min() >= 0)  # numpy's reduction: far cheaper here than torch's


def sorted_values(t: torch.Tensor) -> torch.Tensor:
    """``torch.sort(t, dim=-1).values``, differentiable (the gradient reaches the sorted positions).

    Args:
        t: a tensor ``[..., n]``.

    Returns:
        The values of each row in ascending order, in the shape of ``t``: the same numbers as
        ``torch.sort`` gives (how CPU tensors are sorted: the module docstring).

    Example:
        >>> sorted_values(torch.tensor([[2.0, 0.0, 0.5]]))
        tensor([[0.0000, 0.5000, 2.0000]])
    """
    tracked = torch.is_grad_enabled() and t.requires_grad
    cpu_float = t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64)
    if cpu_float and not tracked:
        return torch.from_numpy(np.sort(t.detach().numpy(), axis=-1))
    if tracked and _key_sortable(t):
        sort_by_key: Callable[[torch.Tensor], torch.Tensor] = _SortByKey.apply
        return sort_by_key(t)
    if cpu_float:
        order = torch.from_numpy(np.argsort(t.detach().numpy(), axis=-1))
        return torch.take_along_dim(t, order, dim=-1)
    return torch.sort(t, dim=-1).values
