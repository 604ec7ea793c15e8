"""Projected Distribution Loss (PDL).

Delbracio, Talebi & Milanfar, 2020, "Projected Distribution Loss for Image Enhancement".

For every channel of a feature map, PDL compares the *empirical distribution* of its H·W spatial
activations in the two images with the 1-D Wasserstein-1 distance. For two samples of equal size
``n`` that distance is ``mean_i |sort(a)_i − sort(b)_i|`` (the quantile functions' L1 distance) —
the same number ``scipy.stats.wasserstein_distance(a, b)`` returns. Sorting is differentiable
(the gradient routes back to the sorted positions), so PDL is a usable loss; on CPU the sort is
:func:`~bapps_toolkit.metrics.functional.sorting.sorted_values` (the values of ``torch.sort``,
computed faster).

No official code exists; this module's choices, every one an option of :class:`PDL`
(registered as ``pdl-vgg``):

* network: torchvision's ImageNet VGG16 (``features`` only, shared with LPIPS in
  :mod:`.backbones`), input mapped to [0, 1] and ImageNet-normalised
  (mean [0.485, 0.456, 0.406], std [0.229, 0.224, 0.225]);
* ``layers``: VGG16 ReLU names, default the LPIPS VGG taps
  ``("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")``;
* ``feature_norm``: ``"none"`` (default — the raw ReLU activations) or ``"unit"`` (LPIPS's
  per-position unit normalisation over channels, ``f / (‖f‖₂ + 1e-10)``);
* per layer: the mean over channels of the per-channel W1; over layers: the weighted sum with
  ``layer_weights`` (default all 1);
* ``pixel_weight`` (default 0, i.e. off): adds ``pixel_weight ×`` the channel-mean W1 between the
  RGB pixel values in [0, 1] themselves (the paper's image-domain term);
* ``backbone_weights``: as LPIPS — ``None`` (torch hub cache / download), a path, or
  ``"random"`` (seeded, marks the metric UNCALIBRATED).

Input: NCHW float in ``input_range`` (default [-1, 1]), 1 or 3 channels (1 is repeated).
Output: ``[N]`` distances (0 for identical images, symmetric, ≥ 0).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..errors import MetricInputError
from .backbones import DEFAULT_RANDOM_SEED, VGG16_RELUS, BackboneWeights, resolve_backbone
from .base import Metric, features_apart, register_metric
from .functional.sorting import sorted_values
from .lpips import normalize_channels

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_LAYERS: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
#: Indices of VGG16's max-pool modules in ``features``.
_VGG_POOLS = (4, 9, 16, 23, 30)


def wasserstein_1d(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """W1 between the empirical distributions along the last axis: ``mean |sort(a) − sort(b)|``.

    ``a`` and ``b`` have the same shape ``[..., n]`` (equal sample counts, uniform weights);
    returns shape ``[...]``. Equals ``scipy.stats.wasserstein_distance`` on each row.
    """
    if a.shape != b.shape:
        raise MetricInputError(
            f"wasserstein_1d: a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.dim() == 0 or a.shape[-1] == 0:
        raise MetricInputError(
            f"wasserstein_1d: need at least one sample along the last axis, got shape {tuple(a.shape)}")
    return (sorted_values(a) - sorted_values(b)).abs().mean(dim=-1)


def projected_distribution_loss(fx: torch.Tensor, fy: torch.Tensor) -> torch.Tensor:
    """Per-channel W1 between the spatial activations of ``fx`` and ``fy``, averaged over channels.

    ``[N, C, H, W]`` features → ``[N]``.
    """
    if fx.dim() != 4 or fx.shape != fy.shape:
        raise MetricInputError(
            f"projected_distribution_loss: need two [N, C, H, W] tensors of one shape, got "
            f"{tuple(fx.shape)} and {tuple(fy.shape)}"
        )
    return wasserstein_1d(fx.flatten(2), fy.flatten(2)).mean(dim=1)


class PDL(Metric):
    """Projected Distribution Loss on VGG16 activations (see the module docstring)."""

    mean: torch.Tensor
    std: torch.Tensor

    name = "pdl-vgg"
    channels_in: Sequence[int] = (1, 3)
    supports_spatial = False

    def __init__(
        self,
        layers: Sequence[str] = DEFAULT_LAYERS,
        feature_norm: str = "none",
        pixel_weight: float = 0.0,
        layer_weights: Sequence[float] | None = None,
        backbone_weights: BackboneWeights = None,
        input_range: Sequence[float] = (-1.0, 1.0),
        random_seed: int = DEFAULT_RANDOM_SEED,
        spatial: bool = False,
    ):
        super().__init__(input_range=input_range, spatial=spatial)
        if isinstance(layers, str):
            layers = (layers,)
        layers = tuple(str(name).lower() for name in layers)
        unknown = [name for name in layers if name not in VGG16_RELUS]
        if not layers or unknown:
            raise MetricInputError(
                f"{self.name}: layers must be VGG16 ReLU names from {', '.join(VGG16_RELUS)}; "
                f"got {list(layers) if not unknown else unknown}"
            )
        if len(set(layers)) != len(layers):
            raise MetricInputError(f"{self.name}: layers contains duplicates: {list(layers)}")
        order = sorted(range(len(layers)), key=lambda i: VGG16_RELUS[layers[i]])
        self.layers: tuple[str, ...] = tuple(layers[i] for i in order)
        if feature_norm not in ("none", "unit"):
            raise MetricInputError(f"{self.name}: feature_norm must be 'none' or 'unit', got {feature_norm!r}")
        self.feature_norm = feature_norm
        self.pixel_weight = float(pixel_weight)
        if not self.pixel_weight >= 0:
            raise MetricInputError(f"{self.name}: pixel_weight must be >= 0, got {pixel_weight!r}")
        if layer_weights is None:
            weights = [1.0] * len(self.layers)
        else:
            weights = [float(w) for w in layer_weights]
            if len(weights) != len(layers):
                raise MetricInputError(f"{self.name}: {len(weights)} layer_weights for {len(layers)} layers")
            weights = [weights[i] for i in order]
        self.layer_weights: list[float] = weights

        taps = [VGG16_RELUS[name] for name in self.layers]
        self.min_size = 2 ** sum(1 for p in _VGG_POOLS if p < taps[-1])
        backbone, calibrated, note = resolve_backbone(
            "vgg", backbone_weights, taps=taps, random_seed=random_seed, metric=self.name
        )
        self.backbone = backbone.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1))
        if not calibrated:
            self.calibrated = False
            self.calibration_note = note

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``(x mapped to [0, 1], VGG tap activations)`` — no validation (for the loss path)."""
        u = self.unit(x)
        if u.shape[1] == 1:
            u = u.expand(-1, 3, -1, -1)
        feats = self.backbone((u - self.mean) / self.std)
        if self.feature_norm == "unit":
            feats = [normalize_channels(f) for f in feats]
        return u, feats

    def distance_from_features(self, feats0: Any, feats1: Any) -> torch.Tensor:
        """PDL ``[N]`` from two :meth:`features` results (in the network's dtype)."""
        return self._from_features(*feats0, *feats1)

    def _from_features(
        self, u0: torch.Tensor, f0: list[torch.Tensor], u1: torch.Tensor, f1: list[torch.Tensor]
    ) -> torch.Tensor:
        terms = [w * projected_distribution_loss(a, b) for w, a, b in zip(self.layer_weights, f0, f1, strict=False)]
        if self.pixel_weight:
            terms.append(self.pixel_weight * projected_distribution_loss(u0, u1))
        total = terms[0]
        for term in terms[1:]:
            total = total + term
        return total

    def _distance(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        pair = features_apart(self.features, x0, x1)
        if pair is not None:
            return self.distance_from_features(*pair).to(x0.dtype)
        n = x0.shape[0]
        u, feats = self.features(torch.cat([x0, x1], dim=0))
        d = self._from_features(u[:n], [f[:n] for f in feats], u[n:], [f[n:] for f in feats])
        return d.to(x0.dtype)

    def _pair_distances(
        self, ref: torch.Tensor, p0: torch.Tensor, p1: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(d(ref, p0), d(ref, p1))`` with one backbone pass over ``[ref; p0; p1]``."""
        n = ref.shape[0]
        u, feats = self.features(torch.cat([ref, p0, p1], dim=0))
        fr = [f[:n] for f in feats]
        d0 = self._from_features(u[:n], fr, u[n:2 * n], [f[n:2 * n] for f in feats])
        d1 = self._from_features(u[:n], fr, u[2 * n:], [f[2 * n:] for f in feats])
        return d0.to(ref.dtype), d1.to(ref.dtype)

    def extra_repr(self) -> str:
        """The layers, feature normalisation and pixel weight with the metric's options, for ``repr``."""
        return (f"layers={self.layers}, feature_norm={self.feature_norm!r}, "
                f"pixel_weight={self.pixel_weight}, " + super().extra_repr())


register_metric(
    "pdl-vgg",
    PDL,
    "Projected Distribution Loss: per-channel 1-D Wasserstein-1 of VGG16 activations (Delbracio et al. 2020)",
)
