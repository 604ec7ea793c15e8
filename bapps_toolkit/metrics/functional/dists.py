"""DISTS building blocks: L2 pooling and the per-stage terms.

Ding, Ma, Wang & Simoncelli, "Image quality assessment: unifying structure and texture
similarity", IEEE TPAMI 2022, online 2020.

Pure tensor functions, no weights and no input validation; :mod:`bapps_toolkit.metrics.dists`
builds the metric from them.

* :func:`l2_pool` — the paper's replacement of VGG16's max-pooling:
  ``sqrt(g ∗ x² + 1e-12)`` subsampled by 2, where ``g`` is the separable 3×3 Hann window
  ``[1, 2, 1] ⊗ [1, 2, 1] / 16`` (a 5-point Hann window without its zero end points, normalised
  to sum 1), zero padding 1 and stride 2, so an ``H × W`` map becomes ``⌈H/2⌉ × ⌈W/2⌉``.
* :func:`stage_terms` — per channel, over the spatial positions of one stage (population
  statistics): the texture term's complement ``1 − l = (μx − μy)² / (μx² + μy² + c1)`` (with
  ``μx − μy`` taken as the mean of ``x − y``) and the structure term's complement
  ``1 − s = var(x − y) / (σx² + σy² + c2)``, which are the paper's
  ``l = (2 μx μy + c1) / (μx² + μy² + c1)`` and ``s = (2 σxy + c2) / (σx² + σy² + c2)``
  rewritten without the cancellation of ``1 − (…)``: both are ≥ 0 and exactly 0 for identical
  maps, in any precision.
* :func:`dists_from_stages` — ``D = Σ_k Σ_c α_kc (1 − l_kc) + β_kc (1 − s_kc)``, which equals the
  paper's ``1 − Σ (α l + β s)`` because the weights sum to 1 (:func:`normalise_weights`).

>>> import torch
>>> x = torch.rand(2, 4, 9, 7)
>>> l2_pool(x).shape
torch.Size([2, 4, 5, 4])
>>> t, s = stage_terms(x, x)
>>> bool((t == 0).all() and (s == 0).all())
True
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ...errors import MetricInputError

__all__ = ["C1", "C2", "L2_POOL_EPS", "HANN_TAPS", "l2_pool", "stage_terms", "normalise_weights",
           "dists_from_stages"]

#: Stabilising constants of the texture and structure terms (the paper's and the official code's).
C1 = 1e-6
C2 = 1e-6
#: Added under the square root of :func:`l2_pool` (the official code's constant).
L2_POOL_EPS = 1e-12
#: ``numpy.hanning(5)[1:-1]``: the 1-D taps of the L2-pooling window before normalisation.
HANN_TAPS = (0.5, 1.0, 0.5)


def _hann_kernel(channels: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Depthwise weight ``[channels, 1, 3, 3]`` of the normalised 2-D Hann window."""
    taps = torch.tensor(HANN_TAPS, dtype=dtype, device=device)
    window = torch.outer(taps, taps)
    return (window / window.sum()).expand(channels, 1, 3, 3)


def l2_pool(x: torch.Tensor) -> torch.Tensor:
    """L2 pooling of every channel of ``x`` ``[N, C, H, W]`` → ``[N, C, ⌈H/2⌉, ⌈W/2⌉]``.

    Args:
        x: feature maps (any real values; they are squared).

    Returns:
        ``sqrt(hann3x3 ∗ x² + 1e-12)`` at stride 2 with zero padding 1 (see module).
    """
    c = x.shape[1]
    out = F.conv2d(x * x, _hann_kernel(c, x.dtype, x.device), stride=2, padding=1, groups=c)
    return torch.sqrt(out + L2_POOL_EPS)


def stage_terms(f0: torch.Tensor, f1: torch.Tensor, c1: float = C1,
                c2: float = C2) -> tuple[torch.Tensor, torch.Tensor]:
    """``(1 − texture similarity, 1 − structure similarity)`` per channel, each ``[N, C]``.

    Args:
        f0: ``[N, C, H, W]`` features of the first image.
        f1: features of the second image, same shape.
        c1: constant of the texture (mean) term.
        c2: constant of the structure (covariance) term.

    Returns:
        ``(μ0 − μ1)² / (μ0² + μ1² + c1)`` and ``var(f0 − f1) / (σ0² + σ1² + c2)``, with means and
        (population) variances over the spatial positions.

    Raises:
        ValueError: the shapes differ or are not 4-D.
    """
    if f0.dim() != 4 or f0.shape != f1.shape:
        raise MetricInputError(f"stage_terms: need two [N, C, H, W] tensors of one shape, got "
                         f"{tuple(f0.shape)} and {tuple(f1.shape)}")
    v0, m0 = torch.var_mean(f0, dim=(2, 3), correction=0)
    v1, m1 = torch.var_mean(f1, dim=(2, 3), correction=0)
    v_diff, m_diff = torch.var_mean(f0 - f1, dim=(2, 3), correction=0)
    texture = m_diff.square() / (m0.square() + m1.square() + c1)
    structure = v_diff / (v0 + v1 + c2)
    return texture, structure


def normalise_weights(alpha: torch.Tensor, beta: torch.Tensor,
                      channels: Sequence[int]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Split flat ``alpha``/``beta`` (one entry per channel of every stage) into per-stage weights.

    All are divided by ``Σα + Σβ`` so that they sum to 1.

    Raises:
        ValueError: the lengths do not match ``sum(channels)``.
    """
    a, b = alpha.reshape(-1), beta.reshape(-1)
    if a.numel() != sum(channels) or b.numel() != sum(channels):
        raise MetricInputError(f"alpha/beta: expected {sum(channels)} weights each (channels {list(channels)}), "
                         f"got {a.numel()} and {b.numel()}")
    total = a.sum() + b.sum()
    return list(torch.split(a / total, list(channels))), list(torch.split(b / total, list(channels)))


def dists_from_stages(f0: Sequence[torch.Tensor], f1: Sequence[torch.Tensor],
                      alpha: Sequence[torch.Tensor], beta: Sequence[torch.Tensor]) -> torch.Tensor:
    """DISTS ``[N]`` from the stage features of two images and the per-stage normalised weights.

    Args:
        f0: per-stage features ``[N, C_k, H_k, W_k]`` of the first images.
        f1: the same for the second images.
        alpha: per-stage texture weights ``[C_k]`` (from :func:`normalise_weights`).
        beta: per-stage structure weights ``[C_k]``.

    Returns:
        ``Σ_k (1 − l_k) · α_k + (1 − s_k) · β_k`` (see module), in the features' dtype.
    """
    if not f0 or not len(f0) == len(f1) == len(alpha) == len(beta):
        raise MetricInputError(f"dists_from_stages: {len(f0)} and {len(f1)} stages for {len(alpha)} weight groups")
    total: torch.Tensor | None = None
    for a, b, wa, wb in zip(f0, f1, alpha, beta, strict=True):
        texture, structure = stage_terms(a, b)
        term = texture @ wa.to(texture.dtype) + structure @ wb.to(structure.dtype)
        total = term if total is None else total + term
    if total is None:
        raise ValueError("DISTS needs at least one feature stage")
    return total
