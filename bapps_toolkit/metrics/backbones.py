"""ImageNet backbones used by LPIPS and PDL, in plain torch (no torchvision import).

AlexNet (Krizhevsky 2014, torchvision's "one weird trick" variant), VGG16 (Simonyan & Zisserman
2015, without batch-norm) and SqueezeNet 1.1 (Iandola et al. 2016) — only their ``features``
part, built with **exactly torchvision's module layout**, so every parameter carries
torchvision's name (``features.0.weight``, ``features.3.squeeze.weight``,
``features.3.expand1x1.weight``, …) and torchvision's published ``.pth`` files load unchanged
(their ``classifier.*`` keys are ignored).

A backbone's ``forward(x)`` returns the list of its *taps*: the activations after chosen
modules of ``features``. The default taps are those of the official LPIPS code
(Zhang et al., CVPR 2018, ``pretrained_networks.py``):

* ``alex``: after each of the 5 ReLUs of ``features`` (modules 1, 4, 7, 9, 11) —
  64, 192, 384, 256, 256 channels;
* ``vgg``: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 (modules 3, 8, 15, 22, 29) —
  64, 128, 256, 512, 512 channels;
* ``squeeze``: after modules 1, 4, 7, 9, 10, 11, 12 (the first ReLU, then Fire modules) —
  64, 128, 256, 384, 384, 512, 512 channels.

Inputs are whatever the caller feeds (LPIPS feeds its scaled [-1, 1] images, PDL ImageNet-
normalised ones); nothing here rescales. Modules after the last tap are kept (so the names
match torchvision) but never run.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from ..errors import MetricInputError, WeightsError
from . import hub
from .nets import check_net
from .provenance import file_calibration

#: torchvision architecture names, used in messages.
TORCHVISION_NAMES: dict[str, str] = {"alex": "alexnet", "vgg": "vgg16", "squeeze": "squeezenet1_1"}

#: Index (in ``features``) of the module after which each official LPIPS tap is taken.
LPIPS_TAPS: dict[str, tuple[int, ...]] = {
    "alex": (1, 4, 7, 9, 11),
    "vgg": (3, 8, 15, 22, 29),
    "squeeze": (1, 4, 7, 9, 10, 11, 12),
}

#: Channels of the official LPIPS taps.
LPIPS_CHANNELS: dict[str, tuple[int, ...]] = {
    "alex": (64, 192, 384, 256, 256),
    "vgg": (64, 128, 256, 512, 512),
    "squeeze": (64, 128, 256, 384, 384, 512, 512),
}

#: VGG16 ReLU names → index in ``features`` (used by PDL's ``layers`` option).
VGG16_RELUS: dict[str, int] = {
    "relu1_1": 1, "relu1_2": 3,
    "relu2_1": 6, "relu2_2": 8,
    "relu3_1": 11, "relu3_2": 13, "relu3_3": 15,
    "relu4_1": 18, "relu4_2": 20, "relu4_3": 22,
    "relu5_1": 25, "relu5_2": 27, "relu5_3": 29,
}

#: Smallest ``min(H, W)`` for which every official tap is non-empty (checked by the tests
#: against the layer arithmetic): AlexNet's stride-4 11×11 conv and two 3×3/2 max-pools need
#: 31 pixels; VGG16's four 2×2 pools before relu5_3 need 16; SqueezeNet 1.1's stride-2 conv and
#: three 3×3/2 ceil-mode pools need 17 (its input to every pool must be ≥ 3).
MIN_SIZE: dict[str, int] = {"alex": 31, "vgg": 16, "squeeze": 17}

#: Seed of the documented random initialisation used by ``backbone_weights="random"``.
DEFAULT_RANDOM_SEED = 0


class Fire(nn.Module):
    """SqueezeNet Fire module with torchvision's attribute names."""

    def __init__(self, inplanes: int, squeeze: int, expand1x1: int, expand3x3: int):
        super().__init__()
        self.squeeze = nn.Conv2d(inplanes, squeeze, kernel_size=1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze, expand1x1, kernel_size=1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze, expand3x3, kernel_size=3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Squeeze, then the concatenated 1×1 and 3×3 expansions (SqueezeNet's Fire module)."""
        s = self.squeeze_activation(self.squeeze(x))
        return torch.cat(
            [self.expand1x1_activation(self.expand1x1(s)), self.expand3x3_activation(self.expand3x3(s))],
            dim=1,
        )


def _alexnet_features() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )


def _vgg16_features() -> nn.Sequential:
    cfg: list[int | str] = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
    layers: list[nn.Module] = []
    cin = 3
    for v in cfg:
        if isinstance(v, str):  # "M": max pooling
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(cin, v, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            cin = v
    return nn.Sequential(*layers)


def _squeezenet11_features() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=3, stride=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        Fire(64, 16, 64, 64), Fire(128, 16, 64, 64),
        nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        Fire(128, 32, 128, 128), Fire(256, 32, 128, 128),
        nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        Fire(256, 48, 192, 192), Fire(384, 48, 192, 192),
        Fire(384, 64, 256, 256), Fire(512, 64, 256, 256),
    )


_BUILDERS = {"alex": _alexnet_features, "vgg": _vgg16_features, "squeeze": _squeezenet11_features}



def _tap_channels(features: nn.Sequential, taps: Sequence[int]) -> list[int]:
    """Output channels after each tap index (from the last conv/Fire at or before it)."""
    out = []
    for t in taps:
        c = None
        for m in list(features)[: t + 1]:
            if isinstance(m, nn.Conv2d):
                c = m.out_channels
            elif isinstance(m, Fire):
                c = m.expand1x1.out_channels + m.expand3x3.out_channels
        if c is None:
            raise MetricInputError(f"tap {t} comes before any convolution")
        out.append(c)
    return out


class Backbone(nn.Module):
    """``features`` of a torchvision ImageNet net that returns its tap activations.

    ``forward(x)`` with ``x`` of shape ``[N, 3, H, W]`` (already scaled/normalised by the
    caller) returns a list of tensors ``[N, C_k, H_k, W_k]``, one per tap, in tap order. ``x``
    is first cast to the parameters' dtype (:attr:`dtype`), so float64 or float16 input runs
    through a float32 network (and float32 input through a ``.double()`` one); the cast is
    differentiable, gradients reach ``x`` in its own dtype.
    """

    def __init__(self, net: str, taps: Sequence[int] | None = None):
        super().__init__()
        self.net = check_net(net)
        # Built on the meta device and zero-filled: no default init (which would draw from the
        # global RNG and cost time); weights come from a file or random_init_.
        with torch.device("meta"):
            features = _BUILDERS[self.net]()
        self.features = features.to_empty(device="cpu")
        with torch.no_grad():
            for p in self.features.parameters():
                p.zero_()
        taps = LPIPS_TAPS[self.net] if taps is None else tuple(int(t) for t in taps)
        if not taps:
            raise MetricInputError("taps must name at least one module of features")
        if list(taps) != sorted(set(taps)) or taps[0] < 0 or taps[-1] >= len(self.features):
            raise MetricInputError(
                f"taps must be strictly increasing indices in [0, {len(self.features) - 1}], got {taps}"
            )
        self.taps: tuple[int, ...] = taps
        self.channels: list[int] = _tap_channels(self.features, taps)

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the network's parameters (what :meth:`forward` computes in)."""
        return next(self.features.parameters()).dtype

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The activations at the taps, in order, computed in the parameters' dtype.

        Args:
            x: the scaled input batch ``[N, 3, H, W]``.

        Returns:
            One feature map per tap; the network stops after the last tap.
        """
        out: list[torch.Tensor] = []
        k = 0
        h = x.to(self.dtype)
        for i, module in enumerate(self.features):
            h = module(h)
            if i == self.taps[k]:
                out.append(h)
                k += 1
                if k == len(self.taps):
                    break
        return out

    def extra_repr(self) -> str:
        """The network name and taps, for ``repr``."""
        return f"net={self.net!r}, taps={self.taps}"


def build_backbone(net: str, taps: Sequence[int] | None = None) -> Backbone:
    """A backbone whose parameters are all zero.

    Give it weights with :func:`load_backbone_state_dict` or :func:`random_init_` (or use :func:`resolve_backbone`).
    """
    return Backbone(net, taps)


def random_init_(backbone: Backbone, seed: int = DEFAULT_RANDOM_SEED) -> Backbone:
    """Documented seeded random initialisation, in place.

    Every convolution weight ~ Normal(0, sqrt(2 / fan_in)) (He et al. 2015), every bias 0, drawn
    from a private ``torch.Generator`` seeded with ``seed`` in parameter-name order on CPU, so
    the global RNG is untouched and the result is the same on every device.
    """
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for name, p in backbone.named_parameters():
            if name.endswith(".weight"):
                fan_in = p[0].numel()
                w = torch.randn(p.shape, generator=gen, dtype=torch.float64) * math.sqrt(2.0 / fan_in)
                p.copy_(w.to(p.dtype))
            else:
                p.zero_()
    return backbone


def load_backbone_state_dict(
    backbone: Backbone, state_dict: Mapping[str, torch.Tensor], source: str = "state dict"
) -> Backbone:
    """Load a torchvision-layout state dict strictly (``classifier.*`` keys are ignored).

    Raises :class:`WeightsError` naming ``source`` and the offending keys on missing keys,
    unexpected keys or shape mismatches (typically: a checkpoint of another network).
    """
    if not isinstance(state_dict, Mapping):
        raise WeightsError(f"{source}: expected a state dict (mapping name → tensor), got {type(state_dict).__name__}")
    own = backbone.state_dict()
    given = {k: v for k, v in state_dict.items() if not str(k).startswith("classifier.")}
    missing = [k for k in own if k not in given]
    unexpected = [k for k in given if k not in own]
    mismatched = [
        f"{k}: file {tuple(given[k].shape)} vs {TORCHVISION_NAMES[backbone.net]} {tuple(own[k].shape)}"
        for k in own
        if k in given and (not isinstance(given[k], torch.Tensor) or tuple(given[k].shape) != tuple(own[k].shape))
    ]
    if missing or unexpected or mismatched:
        parts = []
        if mismatched:
            parts.append("shape mismatch " + "; ".join(mismatched[:3]) + (" …" if len(mismatched) > 3 else ""))
        if missing:
            parts.append("missing keys " + ", ".join(missing[:4]) + (" …" if len(missing) > 4 else ""))
        if unexpected:
            more = " …" if len(unexpected) > 4 else ""
            parts.append("unexpected keys " + ", ".join(map(str, unexpected[:4])) + more)
        raise WeightsError(
            f"{source}: not torchvision {TORCHVISION_NAMES[backbone.net]} weights for net={backbone.net!r} "
            f"({'; '.join(parts)}). Is it a checkpoint of another network? Pass the file that "
            f"matches the net, e.g. torchvision's {TORCHVISION_NAMES[backbone.net]} ImageNet weights."
        )
    for k, v in given.items():
        if not v.is_floating_point():
            raise WeightsError(f"{source}: {k} has dtype {v.dtype}, expected floating point")
    with torch.no_grad():
        for name, p in backbone.state_dict(keep_vars=True).items():
            p.copy_(given[name].to(p.dtype))
    return backbone


BackboneWeights = None | str | Path | Mapping[str, torch.Tensor]


def resolve_backbone(
    net: str,
    backbone_weights: BackboneWeights = None,
    *,
    taps: Sequence[int] | None = None,
    random_seed: int = DEFAULT_RANDOM_SEED,
    metric: str = "metric",
) -> tuple[Backbone, bool, str]:
    """Build a backbone and give it weights; return ``(backbone, calibrated, note)``.

    ``backbone_weights``:

    * ``None`` — torchvision's ImageNet file from the torch hub cache (``$TORCH_HOME``),
      downloaded with its hash check when missing (:func:`bapps_toolkit.metrics.hub.backbone_weights_file`);
      raises :class:`WeightsError` saying how to get it when that is impossible.
    * a path — a torchvision-layout state dict (``.pth`` read with ``weights_only=True``, or
      ``.safetensors``). A safetensors file whose provenance metadata
      (:mod:`~bapps_toolkit.metrics.provenance`) says it is random or trained on synthetic
      data gives ``calibrated`` False and a note naming the file.
    * a mapping — a state dict already in memory.
    * ``"random"`` — :func:`random_init_` with ``random_seed``; the result is *not* the published
      metric, so ``calibrated`` is False, ``note`` is ``"random backbone"`` and a warning is issued.

    Never substitutes one source for another.
    """
    backbone = build_backbone(net, taps)
    if isinstance(backbone_weights, str) and backbone_weights == "random":
        random_init_(backbone, random_seed)
        warnings.warn(
            f"{metric}: backbone_weights='random' — {backbone.net} backbone randomly initialised "
            f"(seed {random_seed}); distances are UNCALIBRATED, not the published metric",
            UserWarning,
            stacklevel=3,
        )
        return backbone, False, "random backbone"
    if isinstance(backbone_weights, Mapping):
        load_backbone_state_dict(backbone, backbone_weights, source="backbone_weights (state dict)")
        return backbone, True, ""

    if backbone_weights is None:
        path = Path(hub.backbone_weights_file(backbone.net))
    elif isinstance(backbone_weights, (str, Path)):
        path = Path(backbone_weights)
        if not path.is_file():
            raise WeightsError(
                f"backbone_weights: {path} does not exist or is not a file "
                f"(expected torchvision {TORCHVISION_NAMES[backbone.net]} weights, .pth or .safetensors)"
            )
    else:
        raise MetricInputError(
            f"backbone_weights must be None, a path, a state dict or 'random', got {type(backbone_weights).__name__}"
        )
    state = hub.load_state_dict_file(path)
    load_backbone_state_dict(backbone, state, source=str(path))
    calibrated, why = file_calibration(path)
    if not calibrated:
        return backbone, False, f"backbone from {path.name}: {why}"
    return backbone, True, ""
