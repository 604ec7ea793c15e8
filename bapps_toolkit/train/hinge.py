"""DreamSim's 2AFC hinge loss (Fu et al., NeurIPS 2023), for training on NIGHTS-style 2AFC sets.

With ``d0 = D(ref, p0)``, ``d1 = D(ref, p1)`` and ``judge`` = fraction preferring ``p1``, the
target is ``y = 2 round(judge) - 1`` (``+1``: ``p1`` closer, so ``d0 - d1`` should be positive) and

    loss = mean(max(0, margin - y (d0 - d1)))

DreamSim uses ``margin = 0.05`` in its training class (0.01 as its command-line default). This
module provides the loss only: ``bapps train`` does not yet offer it (see the project notes).
"""
from __future__ import annotations

import torch

DEFAULT_MARGIN = 0.05


def hinge_2afc_loss(d0: torch.Tensor, d1: torch.Tensor, judge: torch.Tensor,
                    margin: float = DEFAULT_MARGIN) -> torch.Tensor:
    """Mean hinge loss over triplets (formula in the module docstring)."""
    d0, d1, judge = d0.reshape(-1), d1.reshape(-1), judge.reshape(-1).to(d0.dtype)
    if not (d0.shape == d1.shape == judge.shape):
        raise ValueError(f"d0, d1 and judge need one value per triplet, got {d0.numel()}, {d1.numel()}, "
                         f"{judge.numel()}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    y = 2.0 * torch.round(judge) - 1.0
    return torch.clamp(margin - y * (d0 - d1), min=0).mean()
