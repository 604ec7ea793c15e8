"""MATLAB rounding and the two MATLAB box pre-downsamplings.

``ssim.m`` filters with ``imfilter(..., 'symmetric', 'same')`` (symmetric padding) and
FeatureSIM.m with ``conv2(..., 'same')`` (zero padding); both then keep every f-th pixel
starting at the first, with ``f = max(1, round(min(H, W) / 256))`` in MATLAB rounding.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .padding import symmetric_pad

__all__ = [
    "matlab_round",
    "matlab_downsample_factor",
    "matlab_box_downsample_symmetric",
    "matlab_box_downsample_zero",
]


def matlab_round(v: float) -> int:
    """MATLAB ``round`` for non-negative scalars: halves go away from zero (2.5 → 3)."""
    return int(math.floor(v + 0.5)) if v >= 0 else -int(math.floor(-v + 0.5))


def matlab_downsample_factor(height: int, width: int) -> int:
    """``ssim.m``: ``f = max(1, round(min(M, N) / 256))`` with MATLAB rounding."""
    return max(1, matlab_round(min(height, width) / 256.0))


def matlab_box_downsample_symmetric(x: torch.Tensor, f: int) -> torch.Tensor:
    """``imfilter(x, ones(f)/f², 'symmetric', 'same')`` then ``x(1:f:end, 1:f:end)``.

    Output size ``ceil(H/f) × ceil(W/f)``. ``f = 1`` returns ``x`` unchanged.
    """
    if f <= 1:
        return x
    centre = (f + 1) // 2  # MATLAB's kernel centre (1-based)
    before, after = centre - 1, f - centre
    xp = symmetric_pad(x, before, after, before, after)
    return F.avg_pool2d(xp, kernel_size=f, stride=f)




def matlab_box_downsample_zero(x: torch.Tensor, factor: int) -> torch.Tensor:
    """``conv2(x, fspecial('average', F), 'same')`` then ``x(1:F:end, 1:F:end)``, batched.

    This is FeatureSIM.m's pre-filter.

    Zero padding of ``floor((F-1)/2)`` before and ``floor(F/2)`` after each spatial axis, F×F
    mean, stride F; output ``ceil(H/F) × ceil(W/F)``. ``factor == 1`` returns ``x`` unchanged.
    """
    if factor == 1:
        return x
    lo, hi = (factor - 1) // 2, factor // 2
    return F.avg_pool2d(F.pad(x, (lo, hi, lo, hi)), kernel_size=factor, stride=factor)
