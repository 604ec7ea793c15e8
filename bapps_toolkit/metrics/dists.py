"""DISTS — Deep Image Structure and Texture Similarity, registered as ``dists``.

Ding, Ma, Wang & Simoncelli, "Image quality assessment: unifying structure and texture
similarity", IEEE TPAMI 44(5):2567–2581, published online 2020; arXiv:2004.07728.

The network is torchvision's ImageNet VGG16 ``features`` (the same backbone and weight machinery
as LPIPS-VGG, :mod:`.backbones`) with its first four max-pooling layers replaced by L2 pooling
(:func:`~.functional.dists.l2_pool`: a 3×3 Hann window on the squared map, stride 2, zero padding
1). Six stages are compared: the input image itself (stage 0, RGB in [0, 1]) and relu1_2,
relu2_2, relu3_3, relu4_3, relu5_3 (3, 64, 128, 256, 512, 512 channels). Per stage and channel the
texture term compares the global means and the structure term the global (co)variances
(``c1 = c2 = 1e-6``); ``D = 1 − Σ (α·texture + β·structure)`` with the published per-channel
weights α, β (1475 each) divided by ``Σα + Σβ`` (:mod:`.functional.dists` gives the formulas).

Input: NCHW float in ``input_range`` (default [-1, 1] like every toolkit metric; pass
``input_range=(0, 1)`` for the official [0, 1] convention), 1 or 3 channels (1 is repeated). The
image is mapped to [0, 1] (stage 0) and ImageNet-normalised (mean [0.485, 0.456, 0.406], std
[0.229, 0.224, 0.225]) for VGG16. Output: ``[N]`` distances, ≥ 0, exactly 0 for identical
images, symmetric. Any size works (each L2 pooling halves a side, rounding up).

Matches the official ``DISTS_pytorch`` package (``dists-pytorch`` 0.1): its ``DISTS.forward``
never resizes, and neither does this metric — a researcher's stimuli are scored as given. piq's
``DISTS`` (and the authors' IQA-optimization code) first shrink images whose short side exceeds
256 pixels, which is why they report 0.195 where the official forward gives 0.164 on the same
512 × 512 pair (piq issue 371, DISTS issue 11). To reproduce those numbers, downsample first
(e.g. ``torch.nn.functional.avg_pool2d(x, 2)`` for a 512-pixel short side). The repository's
command-line demo resizes to 256 on the short side in its image loader (``prepare_image``:
``resize=True`` on GitHub, ``False`` in the 0.1 wheel), never in the metric.

Weights:

* backbone (``backbone_weights``): ``None`` → torchvision's ImageNet VGG16 file from the torch
  hub cache, downloaded with its hash check if missing (an offline machine gets an error saying
  how to provide it); a path to a torchvision-layout state dict; or ``"random"`` → the seeded
  init of :func:`~.backbones.random_init_`, which marks the metric ``UNCALIBRATED`` and warns.
* α/β: shipped as ``weights/dists/alpha_beta.safetensors`` (MIT, see
  ``weights/LICENSE-dists-weights.txt``), read without pickle after its SHA-256 is checked.

The backbone is frozen (``requires_grad=False``); α and β are buffers. Differentiable: usable as
a loss (``create_loss("dists")``).

Example:
    >>> m = create_metric("dists", backbone_weights="random", input_range=(0, 1))  # doctest: +SKIP
    >>> m(x, y)                                   # [N] distances               # doctest: +SKIP
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from .._io import sha256_file
from ..errors import MetricInputError, WeightsError
from . import hub
from .backbones import DEFAULT_RANDOM_SEED, LPIPS_CHANNELS, LPIPS_TAPS, BackboneWeights, resolve_backbone
from .base import Metric, features_apart, register_metric
from .functional.dists import dists_from_stages, l2_pool, normalise_weights
from .lpips_weights import WEIGHTS_DIR

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Channels of the six stages (the image itself, then the VGG16 taps).
STAGE_CHANNELS: tuple[int, ...] = (3, *LPIPS_CHANNELS["vgg"])
#: Indices in VGG16's ``features`` of the max-pooling layers replaced by L2 pooling (the fifth,
#: module 30, comes after the last tap and never runs).
L2_POOLED: tuple[int, ...] = (4, 9, 16, 23)
#: The α/β file shipped with the toolkit and its SHA-256.
WEIGHTS_FILE = WEIGHTS_DIR / "dists" / "alpha_beta.safetensors"
WEIGHTS_SHA256 = "de03a267305cc0cc9403e5293a48e6a3ab5ac0d2bac7f198b1ea88dfac717e0a"


class L2Pool(nn.Module):
    """:func:`~.functional.dists.l2_pool` as a module (no parameters or buffers)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """L2 pooling of ``x`` (:func:`~.functional.dists.l2_pool`)."""
        return l2_pool(x)

    def extra_repr(self) -> str:
        """The pooling window, for ``repr``."""
        return "hann 3x3, stride 2, padding 1"


def load_dists_weights(path: str | Path = WEIGHTS_FILE,
                       sha256: str | None = WEIGHTS_SHA256) -> tuple[torch.Tensor, torch.Tensor]:
    """The published ``(alpha, beta)``, float32 ``[1475]`` each, from the shipped file.

    Args:
        path: the safetensors file (default: the one shipped with the toolkit).
        sha256: its expected SHA-256 (``None`` skips the check, for a file of one's own).

    Raises:
        WeightsError: naming the file — missing, a different SHA-256, not a safetensors /
            ``weights_only`` state dict, or not two non-negative finite float vectors of 1475.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"dists: the α/β weight file {path} is missing from this install; reinstall bapps-toolkit")
    if sha256 is not None:
        digest = sha256_file(path)
        if digest != sha256:
            raise WeightsError(f"dists: {path} has SHA-256 {digest}, expected {sha256} (the published "
                               f"DISTS weights); the file is damaged or was replaced — reinstall bapps-toolkit")
    state = hub.load_state_dict_file(path)
    if sorted(state) != ["alpha", "beta"]:
        raise WeightsError(f"dists: {path} holds {sorted(state)}, expected exactly alpha and beta")
    n = sum(STAGE_CHANNELS)
    out = []
    for key in ("alpha", "beta"):
        t = state[key]
        if not t.is_floating_point() or t.numel() != n or not bool(torch.isfinite(t).all()) or bool((t < 0).any()):
            raise WeightsError(f"dists: {path}: {key} must be {n} finite non-negative floats, "
                               f"got {t.dtype} of shape {tuple(t.shape)}")
        out.append(t.reshape(n).to(torch.float32))
    return out[0], out[1]


class DISTS(Metric):
    """DISTS (Ding et al., TPAMI 2020) on VGG16 with L2 pooling; see the module docstring.

    ``metric(x0, x1)`` → ``[N]``, inputs NCHW in ``input_range`` (default [-1, 1]).

    Args:
        backbone_weights: ``None`` (torchvision's ImageNet VGG16 from the torch hub cache or its
            download), a path to a torchvision-layout state dict, a state dict, or ``"random"``.
        input_range: the value range of the inputs (mapped to [0, 1] internally).
        random_seed: seed of ``backbone_weights="random"``.
        spatial: must be False (DISTS compares global statistics; it has no map).
    """

    alpha: torch.Tensor
    beta: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    name = "dists"
    channels_in: Sequence[int] = (1, 3)
    min_size = 1
    supports_spatial = False

    def __init__(
        self,
        backbone_weights: BackboneWeights = None,
        input_range: Sequence[float] = (-1.0, 1.0),
        random_seed: int = DEFAULT_RANDOM_SEED,
        spatial: bool = False,
    ):
        super().__init__(input_range=input_range, spatial=spatial)
        alpha, beta = load_dists_weights()
        backbone, calibrated, note = resolve_backbone(
            "vgg", backbone_weights, taps=LPIPS_TAPS["vgg"], random_seed=random_seed, metric=self.name
        )
        for i in L2_POOLED:
            if not isinstance(backbone.features[i], nn.MaxPool2d):  # pragma: no cover - layout guard
                raise RuntimeError(f"VGG16 features[{i}] is {type(backbone.features[i]).__name__}, not max-pooling")
            backbone.features[i] = L2Pool()
        self.backbone = backbone.requires_grad_(False)
        self.register_buffer("alpha", alpha)
        self.register_buffer("beta", beta)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1))
        if not calibrated:
            self.calibrated = False
            self.calibration_note = note

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The six stage features of ``x`` (NCHW in ``input_range``), no validation.

        Stage 0 is the image in [0, 1] (3 channels), the others the VGG16 taps after L2 pooling,
        in the network's dtype (float32 under autocast).
        """
        u = self.unit(x)
        if u.shape[1] == 1:
            u = u.expand(-1, 3, -1, -1)
        taps = self.backbone((u - self.mean) / self.std)
        if torch.is_autocast_enabled(x.device.type):
            taps = [f.float() for f in taps]  # statistics in float32 at least
        return [u, *taps]

    def distance_from_features(self, f0: Sequence[torch.Tensor], f1: Sequence[torch.Tensor]) -> torch.Tensor:
        """DISTS ``[N]`` from two :meth:`features` results."""
        if len(f0) != len(STAGE_CHANNELS) or len(f1) != len(STAGE_CHANNELS):
            raise MetricInputError(f"{self.name}: expected {len(STAGE_CHANNELS)} stages, got {len(f0)} and {len(f1)}")
        alpha, beta = normalise_weights(self.alpha, self.beta, STAGE_CHANNELS)
        with torch.autocast(f0[0].device.type, enabled=False):
            return dists_from_stages(f0, f1, alpha, beta)

    def _distance(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        pair = features_apart(self.features, x0, x1)
        if pair is not None:
            return self.distance_from_features(*pair).to(x0.dtype)
        n = x0.shape[0]
        feats = self.features(torch.cat([x0, x1], dim=0))
        return self.distance_from_features([f[:n] for f in feats], [f[n:] for f in feats]).to(x0.dtype)

    def _pair_distances(
        self, ref: torch.Tensor, p0: torch.Tensor, p1: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(d(ref, p0), d(ref, p1))`` with one backbone pass over ``[ref; p0; p1]``."""
        n = ref.shape[0]
        feats = self.features(torch.cat([ref, p0, p1], dim=0))
        fr = [f[:n] for f in feats]
        d0 = self.distance_from_features(fr, [f[n:2 * n] for f in feats])
        d1 = self.distance_from_features(fr, [f[2 * n:] for f in feats])
        return d0.to(ref.dtype), d1.to(ref.dtype)


register_metric(
    "dists",
    DISTS,
    "DISTS (Ding et al. 2020): structure and texture similarity of VGG16 features (L2 pooling), published α/β",
    backbone="vgg",
)

__all__ = ["DISTS", "L2Pool", "load_dists_weights", "STAGE_CHANNELS", "WEIGHTS_FILE", "WEIGHTS_SHA256"]
