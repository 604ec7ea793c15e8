"""MATLAB/numpy ``'symmetric'`` padding (mirror including the edge pixel)."""
from __future__ import annotations

import torch

__all__ = ["symmetric_pad"]


def _symmetric_index(size: int, before: int, after: int, device) -> torch.Tensor:
    if before > size or after > size:
        raise ValueError(f"symmetric padding of {before}/{after} exceeds the size {size}")
    idx = torch.arange(-before, size + after, device=device)
    idx = torch.where(idx < 0, -idx - 1, idx)
    return torch.where(idx >= size, 2 * size - idx - 1, idx)


def symmetric_pad(x: torch.Tensor, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
    """Pad the last two dims by mirroring *including* the edge pixel (MATLAB/numpy
    ``'symmetric'``: ``a b c | c b a``); torch's ``'reflect'`` mode excludes the edge."""
    h, w = x.shape[-2:]
    if top or bottom:
        x = x.index_select(-2, _symmetric_index(h, top, bottom, x.device))
    if left or right:
        x = x.index_select(-1, _symmetric_index(w, left, right, x.device))
    return x
