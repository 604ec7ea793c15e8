"""The training objectives of ``bapps train``: the official ranking loss and DreamSim's hinge loss.

With ``d0 = D(ref, p0)``, ``d1 = D(ref, p1)`` and ``judge`` = fraction of raters preferring ``p1``:

* ``ranking`` (default; Zhang et al., CVPR 2018, §3.3): the ranking network G maps ``(d0, d1)``
  to a predicted fraction, trained with binary cross-entropy against ``judge``
  (:func:`~bapps_toolkit.train.model.bce_sum`).
* ``hinge`` (Fu et al., DreamSim, NeurIPS 2023): the target is ``y = 2 round(judge) - 1``
  (``+1``: ``p1`` closer, so ``d0 - d1`` should be positive; a judge of exactly 0.5 rounds to 0,
  ``y = -1``, as ``torch.round`` rounds half to even) and

      loss = mean(max(0, margin - y (d0 - d1)))

  DreamSim uses ``margin = 0.05`` in its training class (0.01 as its command-line default); the
  default here is 0.05 (``--margin``). G is not used: it stays in the model (and the
  checkpoint) at its initial weights — the loss adds ``0 · Σ G(d0, d1)`` so that a distributed
  run's gradient reduction sees every parameter, which gives G a zero gradient (Adam leaves a
  parameter with zero gradients and zero moments unchanged).

The loop sums the loss over a rank's items and divides by the global batch (see
:mod:`.distributed`), so :func:`criterion` returns per-batch **sums**.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from .config import DEFAULT_MARGIN, LOSSES
from .model import bce_sum

#: ``criterion(prob, d0, d1, judge) -> summed loss`` of one batch.
Criterion = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _hinge_terms(d0: torch.Tensor, d1: torch.Tensor, judge: torch.Tensor, margin: float) -> torch.Tensor:
    d0, d1, judge = d0.reshape(-1), d1.reshape(-1), judge.reshape(-1).to(d0.dtype)
    if not (d0.shape == d1.shape == judge.shape):
        raise ValueError(f"d0, d1 and judge need one value per triplet, got {d0.numel()}, {d1.numel()}, "
                         f"{judge.numel()}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    y = 2.0 * torch.round(judge) - 1.0
    return torch.clamp(margin - y * (d0 - d1), min=0)


def hinge_2afc_loss(d0: torch.Tensor, d1: torch.Tensor, judge: torch.Tensor,
                    margin: float = DEFAULT_MARGIN) -> torch.Tensor:
    """Mean hinge loss over triplets (formula in the module docstring)."""
    return _hinge_terms(d0, d1, judge, margin).mean()


def hinge_2afc_sum(d0: torch.Tensor, d1: torch.Tensor, judge: torch.Tensor,
                   margin: float = DEFAULT_MARGIN) -> torch.Tensor:
    """Summed hinge loss over triplets (what the training loop normalises)."""
    return _hinge_terms(d0, d1, judge, margin).sum()


def criterion(loss: str = "ranking", margin: float | None = None) -> Criterion:
    """The summed per-batch loss ``f(prob, d0, d1, judge)`` of ``loss`` (``"ranking"`` or ``"hinge"``)."""
    if loss == "ranking":
        return lambda prob, d0, d1, judge: bce_sum(prob, judge)
    if loss == "hinge":
        m = DEFAULT_MARGIN if margin is None else float(margin)
        return lambda prob, d0, d1, judge: hinge_2afc_sum(d0.float(), d1.float(), judge, m) + 0.0 * prob.sum()
    raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")


def describe(loss: str, margin: float | None) -> str:
    """One line for the run card."""
    if loss == "hinge":
        return (f"hinge (DreamSim): mean(max(0, {margin} - y (d0 - d1))), y = 2 round(judge) - 1; "
                "G unused (kept at its init)")
    return "ranking (official): BCE of G(d0, d1) against the judge fraction"
