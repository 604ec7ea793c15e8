"""The trainable pieces: LPIPS linear layers with dropout, the ranking network G, seeded init.

Model (Zhang et al., CVPR 2018, §3.3 and the official ``lpips/lpips.py`` / ``trainer.py``)
-----------------------------------------------------------------------------------------
Per tap ``k`` the unit-normalised features of the two images give a squared-difference map
``D_k = (f̂_k(x) − f̂_k(y))²``; in training it goes through Dropout(p = 0.5) and then the 1×1
linear layer ``w_k`` (no bias), is averaged over space, and the layers are summed:
``d = Σ_k mean_hw(w_k · drop(D_k))``. Inputs to the metric are images in [-1, 1].
After every optimiser step the linear weights are clamped to ``≥ 0`` (:func:`clamp_linear_`)
— only the linear layers: the official trainer clamps every 1×1 convolution of the network,
which for SqueezeNet also clamps its own ``squeeze``/``expand1x1`` convolutions (a defect).

**G** (:class:`RankingNet`, the official ``Dist2LogitLayer``) maps a pair of distances to the
predicted fraction of humans preferring ``p1``: input channels
``[d0, d1, d0 − d1, d0/(d1 + 0.1), d1/(d0 + 0.1)]``, 1×1 conv 5→32, LeakyReLU(0.2), 32→32,
LeakyReLU(0.2), 32→1, sigmoid; trained with binary cross-entropy against the judge fraction.
G is used only in training.

Initialisation (documented, seeded)
-----------------------------------
The official trainer builds the network with ``pretrained=False``, so its linear layers and G
start from ``nn.Conv2d``'s default initialisation: weights ``U(−1/√fan_in, 1/√fan_in)``
(``kaiming_uniform_(a=√5)``), biases ``U(−1/√fan_in, 1/√fan_in)``. :func:`init_linear_` and
:func:`init_ranking_net_` draw exactly these distributions from a private ``torch.Generator``
seeded from the run's seed (in module order, on CPU), so a run is reproducible and the global
RNG is untouched. Initial linear weights may be negative; the first clamp after step 1 removes
that, as in the official code.

Dropout
-------
Masks are not drawn by ``nn.Dropout`` but from explicit generators seeded per epoch (see
:mod:`.loop`), so that a resumed run needs no RNG state and every rank of a distributed run can
draw the mask of the *global* batch and keep its own slice (1 process ≡ N processes). A mask
element keeps its input with probability ``1 − p`` and scales it by ``1 / (1 − p)``, as
``nn.Dropout`` does.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Sequence
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..metrics.lpips import LPIPS
from ..metrics.trained import build_lpips  # re-exported: the one LPIPS builder

#: G's epsilon in the ratio features, as in the official ``Dist2LogitLayer``.
G_EPS = 0.1


class RankingNet(nn.Module):
    """G: distances ``(d0, d1)`` → predicted fraction of raters preferring ``p1`` (in (0, 1)).

    The official ``Dist2LogitLayer`` (layer names ``model.0/2/4`` are kept, so its state dict
    matches the official one).
    """

    def __init__(self, chn_mid: int = 32):
        super().__init__()
        self.model = nn.Sequential(
            nn.Conv2d(5, chn_mid, 1, bias=True),
            nn.LeakyReLU(0.2),
            nn.Conv2d(chn_mid, chn_mid, 1, bias=True),
            nn.LeakyReLU(0.2),
            nn.Conv2d(chn_mid, 1, 1, bias=True),
            nn.Sigmoid(),
        )

    def forward(self, d0: torch.Tensor, d1: torch.Tensor) -> torch.Tensor:
        """``d0``, ``d1`` of shape ``[N]`` → probabilities ``[N]``."""
        d0 = d0.reshape(-1, 1, 1, 1)
        d1 = d1.reshape(-1, 1, 1, 1)
        x = torch.cat((d0, d1, d0 - d1, d0 / (d1 + G_EPS), d1 / (d0 + G_EPS)), dim=1)
        out: torch.Tensor = self.model(x)
        return out.reshape(-1)


def bce_sum(prob: torch.Tensor, judge: torch.Tensor) -> torch.Tensor:
    """Sum over items of the binary cross-entropy of G's output against the judge fraction.

    (The official loss is ``nn.BCELoss()``, i.e. the mean; the loop divides by the *global* batch
    size so the distributed gradient equals the single-process one.)
    """
    return F.binary_cross_entropy(prob.float(), judge.float(), reduction="sum")


def train_accuracy(d0: torch.Tensor, d1: torch.Tensor, judge: torch.Tensor) -> torch.Tensor:
    """Per-triplet training accuracy of the official trainer (``compute_accuracy``).

    ``(d1 < d0)·g + (1 − (d1 < d0))·(1 − g)`` — a tie counts as ``d0`` closer; the 2AFC *score*
    used for validation gives ties 0.5 (:func:`bapps_toolkit.scores.score_2afc`).
    """
    lt = (d1 < d0).to(judge.dtype)
    return lt * judge + (1.0 - lt) * (1.0 - judge)


def _uniform_(t: torch.Tensor, bound: float, gen: torch.Generator) -> None:
    w = torch.rand(t.shape, generator=gen, dtype=torch.float64) * (2.0 * bound) - bound
    t.copy_(w.to(t.dtype))


@torch.no_grad()
def init_linear_(lins: Iterable[Any], gen: torch.Generator) -> None:
    """``nn.Conv2d``'s default init of the 1×1 linear layers: ``w ~ U(−1/√C, 1/√C)``."""
    for lin in lins:
        fan_in = lin.weight[0].numel()
        _uniform_(lin.weight, 1.0 / math.sqrt(fan_in), gen)
        if lin.bias is not None:
            _uniform_(lin.bias, 1.0 / math.sqrt(fan_in), gen)


@torch.no_grad()
def init_ranking_net_(g: RankingNet, gen: torch.Generator) -> None:
    """``nn.Conv2d``'s default init of G (weights and biases ``U(−1/√fan_in, 1/√fan_in)``)."""
    for m in g.model:
        if isinstance(m, nn.Conv2d):
            fan_in = m.weight[0].numel()
            _uniform_(m.weight, 1.0 / math.sqrt(fan_in), gen)
            if m.bias is not None:
                _uniform_(m.bias, 1.0 / math.sqrt(fan_in), gen)


@torch.no_grad()
def clamp_linear_(lins: Iterable[Any]) -> None:
    """Clamp the LPIPS linear layers (and nothing else) to non-negative weights."""
    weights = [lin.weight for lin in lins]
    if weights:
        torch._foreach_clamp_min_(weights, 0.0)


def dropout_mask(shape: Sequence[int], p: float, gen: torch.Generator, device: torch.device,
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """An ``nn.Dropout``-style mask: ``1/(1−p)`` with probability ``1 − p``, else 0."""
    keep = torch.rand(tuple(shape), generator=gen, device=device) >= p
    return keep.to(dtype) * (1.0 / (1.0 - p))


class MaskSource:
    """Draws dropout masks for the *global* batch and returns this rank's slice.

    ``lo:hi`` is this rank's slice of the global batch of ``global_n`` items. Every rank draws the
    same global masks in the same order, so the union of the slices is what one process draws.
    ``p == 0`` (or ``gen is None``) means no dropout.
    """

    def __init__(self, p: float, gen: torch.Generator | None, global_n: int, lo: int, hi: int):
        self.p = float(p)
        self.gen = gen
        self.global_n = int(global_n)
        self.lo, self.hi = int(lo), int(hi)

    @property
    def active(self) -> bool:
        """Whether dropout masks are drawn (a generator and ``p > 0``)."""
        return self.gen is not None and self.p > 0.0

    def __call__(self, item_shape: Sequence[int], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """This rank's rows of a dropout mask for items of shape ``item_shape``."""
        if self.gen is None:
            raise RuntimeError("no dropout: check MaskSource.active first")
        m = dropout_mask((self.global_n, *item_shape), self.p, self.gen, device, dtype)
        return m[self.lo:self.hi]


class TrainModule(nn.Module):
    """Everything with trainable parameters, behind one ``forward`` (so DDP can wrap it).

    ``lpips`` is a :class:`bapps_toolkit.metrics.lpips.LPIPS`; ``G`` a :class:`RankingNet`.

    * ``forward_full(ref, p0, p1, masks)`` — images in [-1, 1], the whole network.
    * ``forward_fast(v0, v1, masks)`` — per-triplet vectors ``[B, ΣC]`` of per-channel spatial
      means of the squared normalised differences (see :mod:`.fastpath`).

    Both return ``(d0, d1, prob)`` with shape ``[B]``.
    """

    def __init__(self, lpips: LPIPS, G: RankingNet, *, train_backbone: bool, bf16: bool = False):
        super().__init__()
        self.lpips: LPIPS = lpips
        self.G = G
        self.train_backbone = bool(train_backbone)
        self.bf16 = bool(bf16)

    @property
    def lins(self) -> nn.ModuleList:
        """The LPIPS linear layers, one per tap."""
        return self.lpips.lins

    def forward(self, mode: str, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run the full path (``mode="full"``) or the fast path (``mode="fast"``).

        Returns:
            ``(d0, d1, G(d0, d1))``.

        Raises:
            ValueError: ``mode`` is neither.
        """
        if mode == "full":
            return self.forward_full(*args, **kwargs)
        if mode == "fast":
            return self.forward_fast(*args, **kwargs)
        raise ValueError(f"mode must be 'full' or 'fast', got {mode!r}")

    # -- full path ---------------------------------------------------------------------------
    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if (self.bf16 and x.is_cuda)
                    else contextlib.nullcontext())
        with autocast:
            if self.train_backbone:
                feats = self.lpips.features(x)
            else:
                with torch.no_grad():
                    feats = self.lpips.features(x)
        return [f.float() for f in feats]

    def forward_full(self, ref: torch.Tensor, p0: torch.Tensor, p1: torch.Tensor,
                     masks: MaskSource | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The full path: distances ``d0``, ``d1`` through the backbone, and G's output.

        Dropout (``masks``) applies to the squared-difference maps before the linear layers.
        """
        n = ref.shape[0]
        feats = self._features(torch.cat([ref, p0, p1], dim=0))
        d0 = ref.new_zeros(n, dtype=torch.float32)
        d1 = ref.new_zeros(n, dtype=torch.float32)
        use_masks = masks is not None and masks.active
        for k, f in enumerate(feats):
            fr, f0, f1 = f[:n], f[n:2 * n], f[2 * n:]
            diff0 = (fr - f0) ** 2
            diff1 = (fr - f1) ** 2
            if use_masks and masks is not None:
                # official order: dropout on the squared-difference map, then the 1×1 conv;
                # two independent masks (the official trainer runs the net twice).
                diff0 = diff0 * masks(diff0.shape[1:], diff0.device, diff0.dtype)
                diff1 = diff1 * masks(diff1.shape[1:], diff1.device, diff1.dtype)
            lin = self.lins[k]
            d0 = d0 + lin(diff0).mean(dim=(2, 3)).reshape(n)
            d1 = d1 + lin(diff1).mean(dim=(2, 3)).reshape(n)
        return d0, d1, self.G(d0, d1)

    # -- fast path ---------------------------------------------------------------------------
    def lin_vector(self) -> torch.Tensor:
        """All linear weights concatenated in tap order: ``[ΣC]``."""
        return torch.cat([cast(nn.Conv2d, lin).weight.reshape(-1) for lin in self.lins])

    def forward_fast(self, v0: torch.Tensor, v1: torch.Tensor,
                     masks: MaskSource | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The fast path: distances ``d0``, ``d1`` from the cached vectors, and G's output.

        Dropout (``masks``) applies to the per-channel mean vectors.
        """
        w = self.lin_vector()
        v0 = v0.float()
        v1 = v1.float()
        if masks is not None and masks.active:
            # Fast-path dropout: one mask element per (item, channel) on the per-channel mean
            # vector — equal to the full path's dropout in expectation, larger variance (see
            # the fastpath module docstring).
            v0 = v0 * masks(v0.shape[1:], v0.device, v0.dtype)
            v1 = v1 * masks(v1.shape[1:], v1.device, v1.dtype)
        d0 = v0 @ w
        d1 = v1 @ w
        return d0, d1, self.G(d0, d1)


def make_generator(seed: int, device: torch.device | None = None) -> torch.Generator:
    """A ``torch.Generator`` on ``device`` (default CPU) seeded with ``seed``."""
    dev = torch.device("cpu") if device is None else torch.device(device)
    g = torch.Generator(device=dev)
    g.manual_seed(int(seed))
    return g


def derive_seed(seed: int, *parts: int) -> int:
    """A 63-bit seed from the run's seed and integer parts (epoch, stream), via SeedSequence."""
    state = np.random.SeedSequence([int(seed), *[int(p) for p in parts]]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & ((1 << 63) - 1)


#: Streams of derived seeds.
STREAM_INIT = 1
STREAM_SHUFFLE = 2
STREAM_DROPOUT = 3
STREAM_BACKBONE = 4


__all__ = [
    "RankingNet", "TrainModule", "MaskSource", "bce_sum", "train_accuracy", "init_linear_",
    "init_ranking_net_", "clamp_linear_", "build_lpips", "dropout_mask", "make_generator", "derive_seed",
]
