"""LPIPS — Learned Perceptual Image Patch Similarity (Zhang et al., CVPR 2018).

``d(x0, x1) = Σ_l mean_{h,w} Σ_c w_{l,c} (f̂0_{l,c,h,w} − f̂1_{l,c,h,w})²`` where ``f̂`` are the
backbone's tap activations unit-normalised over channels, ``f / (‖f‖₂ + 1e-10)``, and ``w_l``
the non-negative 1×1 "lin" layers (Conv2d(C, 1, 1, bias=False)); the *baseline*
(``lpips=False``) uses ``w = 1`` (a plain channel sum). With ``spatial=True`` each layer's
map is bilinearly upsampled (``align_corners=False``) to the input size and the maps are summed,
as the official code does.

Input: NCHW float in ``input_range`` (default [-1, 1]); one channel is repeated to three.
Version ``"0.1"`` (default) applies the official scaling layer to the [-1, 1] image,
``(x − shift) / scale`` with shift [-.030, -.088, -.188], scale [.458, .448, .450]; version
``"0.0"`` feeds [-1, 1] straight into the backbone (the original release; its linear weights
differ).

Weights:

* backbone (``backbone_weights``): ``None`` → torchvision's ImageNet file from the torch hub
  cache, downloaded with its hash check if missing (:mod:`bapps_toolkit.metrics.hub`); a path
  to a torchvision-layout state dict; or ``"random"`` → the seeded init of
  :func:`~bapps_toolkit.metrics.backbones.random_init_` (seed ``random_seed``, default 0), which
  marks the metric ``UNCALIBRATED`` and warns. Never a silent substitute.
* linear layers (``lin_weights``): ``None`` → the official files shipped in
  ``bapps_toolkit/metrics/weights/v{version}/{net}.pth`` (BSD-2-Clause, see
  ``LICENSE-lpips-weights.txt``), else those of an installed ``lpips`` package; a path → an
  official-layout file (``lin{k}.model.1.weight``, shape [1, C, 1, 1]).

The backbone's parameters are frozen (``requires_grad=False``), the linear layers are not, as in
the official code. There is no dropout on the inference path; training code adds its own.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import MetricInputError, WeightsError
from .backbones import (
    DEFAULT_RANDOM_SEED,
    LPIPS_CHANNELS,
    MIN_SIZE,
    BackboneWeights,
    resolve_backbone,
)
from .base import Metric, register_metric
from .lpips_weights import (  # the weight-file helpers, also importable from here
    VERSIONS,
    WEIGHTS_DIR,
    check_version,
    find_installed_lpips_weights,
    load_official_lin_weights,
    normalise_official,
    official_lin_state_dict,
    shipped_lin_weights,
)
from .nets import NETS, check_net

#: The v0.1 scaling layer constants (applied to [-1, 1] input).
SCALING_SHIFT = (-0.030, -0.088, -0.188)
SCALING_SCALE = (0.458, 0.448, 0.450)
#: Added to the channel norm before dividing, as in the official code.
NORM_EPS = 1e-10

LinWeights = None | str | Path | Mapping[str, torch.Tensor]


class ScalingLayer(nn.Module):
    """LPIPS v0.1 input scaling: ``(x − shift) / scale`` on [-1, 1] RGB."""

    shift: torch.Tensor
    scale: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        # float32 like the official buffers, so a .double() model matches theirs bit for bit.
        self.register_buffer("shift", torch.tensor(SCALING_SHIFT, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALING_SCALE, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(x - shift) / scale`` per channel: [-1, 1] input in the backbone's normalisation."""
        return (x - self.shift) / self.scale


def normalize_channels(f: torch.Tensor, eps: float = NORM_EPS) -> torch.Tensor:
    """``f / (‖f‖₂ over channels + eps)`` for ``f`` of shape [N, C, H, W]."""
    return f / (torch.sqrt(torch.sum(f * f, dim=1, keepdim=True)) + eps)


class LPIPS(Metric):
    """LPIPS distance (Zhang et al. 2018) on AlexNet, VGG16 or SqueezeNet 1.1; see module doc.

    ``metric(x0, x1)`` → ``[N]`` (or ``[N, 1, H, W]`` with ``spatial=True``), inputs NCHW in
    ``input_range``.

    Public internals (used by the training code): ``backbone`` (returns the list of taps),
    ``scaling`` (v0.1 scaling layer or identity), ``lins`` (``nn.ModuleList`` of
    ``Conv2d(C, 1, 1, bias=False)``; empty for the baseline), ``channels`` (tap channels),
    :meth:`features`, :meth:`distance_from_features`.
    """

    name = "lpips"
    channels_in: Sequence[int] = (1, 3)
    supports_spatial = True
    #: The ranking net G's tensors (``model.0.weight`` …) of a ``bapps train`` checkpoint, on
    #: the CPU, when the metric was loaded from one that stores G; None otherwise. Not part of
    #: the distance; :mod:`bapps_toolkit.calibration` turns it into ``P(p1 closer)``.
    ranking_net: dict[str, torch.Tensor] | None = None

    def __init__(
        self,
        net: str = "alex",
        version: str = "0.1",
        lpips: bool = True,
        backbone_weights: BackboneWeights = None,
        lin_weights: LinWeights = None,
        spatial: bool = False,
        input_range: Sequence[float] = (-1.0, 1.0),
        random_seed: int = DEFAULT_RANDOM_SEED,
    ):
        super().__init__(input_range=input_range, spatial=spatial)
        net = check_net(net)
        version = check_version(version)
        self.net = net
        self.version = version
        self.lpips = bool(lpips)
        self.name = f"lpips-{net}" + ("" if self.lpips else "-baseline") + ("" if version == "0.1" else "-v0.0")
        self.min_size = MIN_SIZE[net]
        self.channels = list(LPIPS_CHANNELS[net])

        backbone, calibrated, note = resolve_backbone(
            net, backbone_weights, random_seed=random_seed, metric=self.name
        )
        self.backbone = backbone.requires_grad_(False)
        self.scaling: nn.Module = ScalingLayer() if version == "0.1" else nn.Identity()
        self.lins = nn.ModuleList(
            [nn.Conv2d(c, 1, kernel_size=1, stride=1, padding=0, bias=False) for c in self.channels]
            if self.lpips else []
        )
        if self.lpips:
            self.load_lin_weights(lin_weights)
        elif lin_weights is not None:
            raise MetricInputError(
                f"{self.name}: lin_weights given but lpips=False (the baseline has no linear layers)")
        if not calibrated:
            self.calibrated = False
            self.calibration_note = note

    # -- weights ------------------------------------------------------------------------------
    def load_lin_weights(self, lin_weights: LinWeights = None) -> None:
        """Load official-layout linear weights.

        The source is ``None`` (shipped official file, else an installed ``lpips`` package's), a
        path, or a mapping ``lin{k}.model.1.weight → [1, C, 1, 1]``.
        """
        if not self.lpips:
            raise MetricInputError(f"{self.name}: the baseline has no linear layers")
        if lin_weights is None:
            path = shipped_lin_weights(self.net, self.version)
            if not path.is_file():
                found = find_installed_lpips_weights(self.net, self.version)
                if found is None:
                    raise WeightsError(
                        f"{self.name}: the official v{self.version} linear weights are missing from this "
                        f"install ({path}) and no installed lpips package has them; reinstall "
                        f"bapps-toolkit or pass lin_weights=PATH"
                    )
                path = found
            state, source = load_official_lin_weights(path), str(path)
        elif isinstance(lin_weights, Mapping):
            state, source = normalise_official(lin_weights, "lin_weights (state dict)"), "lin_weights (state dict)"
        elif isinstance(lin_weights, (str, Path)):
            state, source = load_official_lin_weights(lin_weights), str(lin_weights)
        else:
            raise MetricInputError(
                f"lin_weights must be None, a path or a state dict, got {type(lin_weights).__name__}")
        if len(state) != len(self.lins):
            raise WeightsError(
                f"{source}: {len(state)} linear layers, but LPIPS-{self.net} has {len(self.lins)} "
                f"(channels {self.channels}) — linear weights of another net?"
            )
        for k, w_model in enumerate(self.lin_weights()):
            w = state[f"lin{k}.model.1.weight"]
            if tuple(w.shape) != tuple(w_model.shape):
                raise WeightsError(
                    f"{source}: lin{k}.model.1.weight has shape {tuple(w.shape)} but LPIPS-{self.net} "
                    f"needs {tuple(w_model.shape)} — linear weights of another net?"
                )
        self.copy_lin_weights([state[f"lin{k}.model.1.weight"] for k in range(len(self.lins))])

    def lin_weights(self) -> list[torch.Tensor]:
        """The linear layers' weights ``[1, C_k, 1, 1]`` (the parameters themselves, not copies)."""
        return [lin.weight for lin in self._convs()]

    def copy_lin_weights(self, weights: Sequence[torch.Tensor]) -> None:
        """Copy ``weights`` (shapes already checked by the caller) into the linear layers."""
        with torch.no_grad():
            for w_model, w in zip(self.lin_weights(), weights, strict=True):
                w_model.copy_(w.to(w_model.dtype))

    def _convs(self) -> list[nn.Conv2d]:
        return [lin for lin in self.lins if isinstance(lin, nn.Conv2d)]

    # -- computation --------------------------------------------------------------------------
    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Unit-normalised tap features of ``x`` (NCHW in ``input_range``, 1 or 3 channels).

        No validation (callers on the hot path validate once); returns one
        ``[N, C_k, H_k, W_k]`` tensor per tap, in the network's dtype (the backbone casts its
        input to its parameters' dtype; the distances are cast back to the input's dtype).
        """
        return [normalize_channels(f) for f in self._taps(x)]

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.symmetric(x)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        taps = self.backbone(self.scaling(x))
        if torch.is_autocast_enabled(x.device.type):
            # autocast (evaluate's precision="bf16"/"fp16") speeds up the convolutions; the taps are
            # normalised, and the distances taken, in float32 (see distance_from_features), which
            # keeps the small distances of near-identical patches from cancelling out in bf16
            taps = [f.float() for f in taps]
        return list(taps)

    def distance_from_features(
        self,
        f0: Sequence[torch.Tensor],
        f1: Sequence[torch.Tensor],
        size: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """Distance ``[N]`` from two lists of :meth:`features`.

        With ``size=(H, W)`` it is the map ``[N, 1, H, W]`` (each layer's map bilinearly upsampled,
        ``align_corners=False``).
        """
        if len(f0) != len(self.channels) or len(f1) != len(self.channels):
            raise MetricInputError(
                f"{self.name}: expected {len(self.channels)} feature maps, got {len(f0)} and {len(f1)}")
        with torch.autocast(f0[0].device.type, enabled=False):  # the head runs in the features' dtype
            return self._head(f0, f1, size)

    def _head(self, f0: Sequence[torch.Tensor], f1: Sequence[torch.Tensor],
              size: tuple[int, int] | None) -> torch.Tensor:
        total: torch.Tensor | None = None
        weights = self.lin_weights()
        for k, (a, b) in enumerate(zip(f0, f1, strict=False)):
            diff = (a - b) ** 2
            if size is None:
                layer = self._layer(diff.mean(dim=(2, 3)), weights, k)
            else:
                m = self.lins[k](diff) if self.lpips else diff.sum(dim=1, keepdim=True)
                layer = F.interpolate(m, size=size, mode="bilinear", align_corners=False)
            total = layer if total is None else total + layer
        if total is None:
            raise ValueError("LPIPS needs at least one layer")
        return total

    def _layer(self, per_channel: torch.Tensor, weights: Sequence[torch.Tensor], k: int) -> torch.Tensor:
        """Tap ``k``'s distance ``[N]`` from its spatial means ``[N, C_k]`` of ``(f̂0 − f̂1)²``.

        The mean over positions commutes with the 1×1 linear layer (the baseline sums the channels).
        """
        if self.lpips:
            return per_channel @ weights[k].view(-1).to(per_channel.dtype)
        return per_channel.sum(dim=1)

    def _distance(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        n = x0.shape[0]
        feats = self.features(torch.cat([x0, x1], dim=0))
        size = (x0.shape[-2], x0.shape[-1]) if self.spatial else None
        d = self.distance_from_features([f[:n] for f in feats], [f[n:] for f in feats], size=size)
        return d.to(x0.dtype)

    def _pair_distances(
        self, ref: torch.Tensor, p0: torch.Tensor, p1: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(d(ref, p0), d(ref, p1))`` with one backbone pass over ``[ref; p0; p1]``."""
        n = ref.shape[0]
        feats = self.features(torch.cat([ref, p0, p1], dim=0))
        size = (ref.shape[-2], ref.shape[-1]) if self.spatial else None
        fr = [f[:n] for f in feats]
        d0 = self.distance_from_features(fr, [f[n:2 * n] for f in feats], size=size)
        d1 = self.distance_from_features(fr, [f[2 * n:] for f in feats], size=size)
        return d0.to(ref.dtype), d1.to(ref.dtype)

    def extra_repr(self) -> str:
        """The network, version and LPIPS flag with the metric's options, for ``repr``."""
        return f"net={self.net!r}, version={self.version!r}, lpips={self.lpips}, " + super().extra_repr()


def _factory(net: str, lpips: bool) -> Callable[..., LPIPS]:
    def make(**options: Any) -> LPIPS:
        for fixed in ("net", "lpips"):
            if fixed in options:
                raise MetricInputError(
                    f"{fixed}= is fixed by the metric name lpips-{net}{'' if lpips else '-baseline'}; "
                    f"pick another name instead"
                )
        return LPIPS(net=net, lpips=lpips, **options)

    return make


_TRUNK = {"alex": "AlexNet", "vgg": "VGG16", "squeeze": "SqueezeNet 1.1"}
for _net in NETS:
    register_metric(f"lpips-{_net}", _factory(_net, True),
                    f"LPIPS on {_TRUNK[_net]} with the official linear layers (version='0.1'|'0.0')",
                    options_of=LPIPS)
    register_metric(f"lpips-{_net}-baseline", _factory(_net, False),
                    f"LPIPS baseline on {_TRUNK[_net]}: all channels weighted equally, no linear layer",
                    options_of=LPIPS)


__all__ = ["LPIPS", "ScalingLayer", "normalize_channels", "NORM_EPS", "SCALING_SHIFT", "SCALING_SCALE", "VERSIONS",
           "WEIGHTS_DIR", "LinWeights", "check_version", "shipped_lin_weights", "find_installed_lpips_weights",
           "load_official_lin_weights", "official_lin_state_dict"]
