"""Validation 2AFC scores of the metric being trained, per set.

From the fast path's cached vectors, or through the full network.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..data import iter_2afc_chunks, to_model_input
from ..scores import score_2afc
from .config import TrainConfig
from .fastpath import TripletVectors
from .model import TrainModule
from .records import ValScores


def _score(d0: np.ndarray, d1: np.ndarray, judge: np.ndarray) -> float:
    return float(score_2afc(d0, d1, judge))


def mean_score(scores: dict[str, float]) -> float | None:
    """The mean of the per-set scores, or None when there are none."""
    return float(np.mean(list(scores.values()))) if scores else None


@torch.no_grad()
def val_scores_fast(module: TrainModule, vecs: TripletVectors, w: torch.Tensor | None = None) -> dict[str, float]:
    """Scores from the cached vectors; ``w`` replaces the module's linear weights when given."""
    w = module.lin_vector().detach() if w is None else w
    d0 = (vecs.v0 @ w).cpu().numpy()
    d1 = (vecs.v1 @ w).cpu().numpy()
    j = vecs.judge.cpu().numpy()
    return {k: _score(d0[a:b], d1[a:b], j[a:b]) for k, (a, b) in vecs.offsets().items()}


@torch.no_grad()
def val_scores_full(module: TrainModule, cfg: TrainConfig, keys: Sequence[str],
                    device: torch.device) -> dict[str, float]:
    """2AFC scores of ``keys`` through the full network, in eval mode (the training mode is restored)."""
    was = module.training
    module.eval()
    out = {}
    for key in keys:
        d0s, d1s, js = [], [], []
        for part in iter_2afc_chunks(cfg.data, key, cfg.val_batch):
            ref = to_model_input(part.ref, device=device)
            p0 = to_model_input(part.p0, device=device)
            p1 = to_model_input(part.p1, device=device)
            d0, d1, _ = module.forward_full(ref, p0, p1, None)
            d0s.append(d0.cpu())
            d1s.append(d1.cpu())
            js.append(torch.as_tensor(part.judge).reshape(-1))
        out[key] = _score(torch.cat(d0s).numpy(), torch.cat(d1s).numpy(), torch.cat(js).numpy())
    module.train(was)
    return out


class Validator:
    """The run's validation: ``scores()`` on rank 0 (``{}`` elsewhere, or without val sets)."""

    def __init__(self, module: TrainModule, cfg: TrainConfig, keys: Sequence[str],
                 vecs: TripletVectors | None, device: torch.device, is_main: bool):
        self.module, self.cfg, self.keys, self.vecs = module, cfg, list(keys), vecs
        self.device, self.is_main = device, is_main

    def scores(self) -> dict[str, float]:
        """The validation scores by set (``{}`` off rank 0 or without val sets)."""
        if not self.keys or not self.is_main:
            return {}
        if self.vecs is not None:
            return val_scores_fast(self.module, self.vecs)
        return val_scores_full(self.module, self.cfg, self.keys, self.device)

    def initial(self) -> dict[str, ValScores]:
        """Card entries before training: the seeded init, and (fast path) the equal-weight baseline."""
        iv = self.scores()
        out = {"initial_val": ValScores(val_2afc=mean_score(iv), per_set=iv,
                                        note="untrained (seeded init) linear layers, same backbone")}
        if self.vecs is not None:
            ones = torch.ones_like(self.module.lin_vector().detach())
            bv = val_scores_fast(self.module, self.vecs, ones)
            out["baseline_val"] = ValScores(val_2afc=mean_score(bv), per_set=bv,
                                            note="all channels weighted equally (LPIPS baseline), same backbone")
        return out


__all__ = ["Validator", "val_scores_fast", "val_scores_full", "mean_score"]
