"""1-D filter windows and separable valid filtering (SSIM, MS-SSIM)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ...errors import MetricInputError

__all__ = ["gaussian_window", "uniform_window", "check_window", "filter_valid", "MATMUL_MAX_SIDE"]


def gaussian_window(win_size: int, sigma: float, *, dtype: torch.dtype = torch.float64,
                    device: torch.device | str | None = None) -> torch.Tensor:
    """1-D Gaussian taps ``exp(−d²/(2σ²))``, ``d = −(n−1)/2 … (n−1)/2``, normalised to sum 1."""
    check_window(win_size)
    if not sigma > 0:
        raise MetricInputError(f"sigma must be > 0, got {sigma}")
    d = torch.arange(win_size, dtype=torch.float64) - (win_size - 1) / 2.0
    g = torch.exp(-(d**2) / (2.0 * sigma**2))
    return (g / g.sum()).to(dtype=dtype, device=device)


def uniform_window(win_size: int, *, dtype: torch.dtype = torch.float64,
                    device: torch.device | str | None = None) -> torch.Tensor:
    """1-D box taps ``1/n`` (scikit-image's default ``uniform_filter`` window)."""
    check_window(win_size)
    return torch.full((win_size,), 1.0 / win_size, dtype=dtype, device=device)


def check_window(win_size: int) -> None:
    """Refuse a window size that is not a positive odd integer.

    Args:
        win_size: the side of the window in pixels.

    Raises:
        ValueError: naming the value.
    """
    if int(win_size) != win_size or win_size < 1 or win_size % 2 == 0:
        raise MetricInputError(f"win_size must be a positive odd integer, got {win_size!r}")


#: Sides up to this length are filtered with a banded (Toeplitz) matrix product, longer ones with
#: a depthwise convolution (BLAS beats the convolution kernels for short rows; both are exact).
#: On the gradient path of float32 inputs the depthwise convolution is used at every size: its
#: backward is 2-10x cheaper on CPU than the band products' (measured by
#: ``benchmarks/bench_losses.py``; the values differ from the band product by float32 rounding).
MATMUL_MAX_SIDE = 256


def _use_conv(x: torch.Tensor, side: int) -> bool:
    if side > MATMUL_MAX_SIDE:
        return True
    return x.dtype == torch.float32 and x.requires_grad and torch.is_grad_enabled()


def _band_matrix(taps: torch.Tensor, size: int) -> torch.Tensor:
    """``[size, size − k + 1]`` matrix ``B`` with ``B[i + t, i] = taps[t]`` (valid correlation)."""
    k = taps.numel()
    out = size - k + 1
    band = torch.zeros(size, out, dtype=taps.dtype, device=taps.device)
    cols = torch.arange(out, device=taps.device).expand(k, out)
    rows = cols + torch.arange(k, device=taps.device).view(k, 1)
    band[rows, cols] = taps.view(k, 1).expand(k, out)
    return band


def filter_valid(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Separable 2-D correlation of every channel of ``x`` [N, C, H, W] with ``taps`` (1-D).

    Valid region only → ``[N, C, H − k + 1, W − k + 1]``.
    """
    n, c, h, w = x.shape
    k = taps.numel()
    t = taps.to(dtype=x.dtype, device=x.device)
    if _use_conv(x, w):
        x = F.conv2d(x, t.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)
    else:
        x = torch.matmul(x, _band_matrix(t, w))
    if _use_conv(x, h):
        x = F.conv2d(x, t.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)
    else:
        x = torch.matmul(_band_matrix(t, h).transpose(0, 1), x)
    return x
