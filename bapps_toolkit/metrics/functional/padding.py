"""MATLAB/numpy ``'symmetric'`` padding (mirror including the edge pixel), and SSIM's border rules."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ...errors import MetricInputError

__all__ = ["symmetric_pad", "PADDINGS", "check_padding", "window_pad"]

#: Border rules of SSIM's local statistics: ``valid`` (no padding) or ``reflect`` (torchmetrics).
PADDINGS = ("valid", "reflect")


def check_padding(padding: str, metric: str) -> str:
    """``padding`` if it is one of :data:`PADDINGS`.

    Raises:
        ValueError: any other value, naming ``metric``.
    """
    if padding not in PADDINGS:
        raise MetricInputError(f"{metric}: padding must be one of {', '.join(PADDINGS)}, got {padding!r}")
    return padding


def window_pad(ts: Sequence[torch.Tensor], padding: str, win_size: int) -> list[torch.Tensor]:
    """The images padded for SSIM's border rule ``padding``.

    ``"reflect"``: reflect-padded by ``(win_size − 1)/2`` on each side (torch ``'reflect'``, as
    torchmetrics pads); ``"valid"``: as given.
    """
    if padding == "valid":
        return list(ts)
    p = (win_size - 1) // 2
    return [F.pad(t, (p, p, p, p), mode="reflect") for t in ts]


def _symmetric_index(size: int, before: int, after: int, device: torch.device) -> torch.Tensor:
    if before > size or after > size:
        raise MetricInputError(f"symmetric padding of {before}/{after} exceeds the size {size}")
    idx = torch.arange(-before, size + after, device=device)
    idx = torch.where(idx < 0, -idx - 1, idx)
    return torch.where(idx >= size, 2 * size - idx - 1, idx)


def symmetric_pad(x: torch.Tensor, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
    """Pad the last two dims by mirroring *including* the edge pixel.

    This is MATLAB/numpy ``'symmetric'`` (``a b c | c b a``); torch's ``'reflect'`` mode excludes the edge.
    """
    h, w = x.shape[-2:]
    if top or bottom:
        x = x.index_select(-2, _symmetric_index(h, top, bottom, x.device))
    if left or right:
        x = x.index_select(-1, _symmetric_index(w, left, right, x.device))
    return x
