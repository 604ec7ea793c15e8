"""LPIPS on your own network: a plugin backbone under (trained) LPIPS linear layers.

Zhang et al., CVPR 2018 (§3.3) learn 1×1 "lin" layers on the unit-normalised activations of a
fixed set of taps of a backbone; nothing in the method is specific to AlexNet/VGG/SqueezeNet.
This module lets ``bapps train --net SPEC`` (and :class:`~bapps_toolkit.train.TrainConfig`
``net=SPEC``) put those layers on a researcher's own network.

``SPEC`` is a plugin spec as for metrics (:mod:`.plugins`): ``path/to/file.py:attr``,
``package.module:attr`` or an entry-point name of the group ``bapps_toolkit.metrics``. The object
it names is either

(a) an ``nn.Module`` whose ``forward`` maps an NCHW batch to a **list or tuple of feature maps**
    ``[N, C_k, H_k, W_k]`` (the taps), or a class / factory returning one; or
(b) an :class:`~.lpips.LPIPS` (instance, subclass or factory returning one): its backbone, its
    scaling layer and its version are used; its linear layers are not (training makes new ones).

Factory options (``--net-option key=value``) are typed by the factory's signature
(:func:`.plugins.typed_options`); an instance takes none.

Input (case a). The metric takes images in its ``input_range`` (default [-1, 1]) like every
LPIPS. The backbone gets them in the range it declares: the object's ``input_range`` attribute
(looked up on the built module, then on the spec's object), default [-1, 1]. **No v0.1 scaling
layer** is applied to a plugin backbone unless it declares ``lpips_scaling = True``; then the
[-1, 1] image goes through the official scaling layer (``(x − shift) / scale``) first, and
``input_range`` must not be declared. The metric's ``version`` says which: ``"0.1"`` with the
scaling layer, ``"0.0"`` without (the original release also fed [-1, 1] straight in).
``min_size`` (attribute, default 1) is the smallest input side the metric accepts;
``calibrated = False`` / ``calibration_note`` mark the backbone itself as not calibrated.

Channels. The tap widths are found by **one probe forward** of a zero batch ``1×3×S×S``
(``S`` = the declared ``min_size``, else 64) in eval mode without gradients; every tap gets a
``Conv2d(C_k, 1, 1, bias=False)`` linear layer, normalised, dropped out, clamped and fed to G
exactly as for the built-in nets.

Reproducibility and trust. :func:`plugin_origin` records where the network came from, found
without importing it: the SHA-256 of the code file (a file spec's ``.py``, a module's file, an
entry point's module file) and a module's or entry point's distribution and version. A training
checkpoint stores the spec, the options (JSON), the origin and the backbone's state dict.
:func:`plugin_from_checkpoint` rebuilds the network only when the user names the same spec
(``trust_plugin=``) and the code's SHA-256 is the recorded one (:mod:`.plugin_trust`): a file
never decides by itself which code runs.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, WeightsError
from ._validate import check_range_option
from .base import Metric
from .lpips import LPIPS, LinWeights, ScalingLayer
from .plugin_specs import short_plugin_name
from .plugin_trust import PluginNotFound, PluginOrigin, check_plugin_allowed, code_origin
from .plugins import PluginError, call_factory, check_option_types, load_object
from .safetensors_io import json_field

#: Probe side when the object declares no ``min_size``.
PROBE_SIZE = 64


class RangeMap(nn.Module):
    """Maps [-1, 1] images linearly onto ``(lo, hi)``, the range a plugin backbone declares."""

    def __init__(self, lo: float, hi: float):
        super().__init__()
        self.lo, self.hi = float(lo), float(hi)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` mapped linearly from [-1, 1] to ``[lo, hi]``."""
        return self.lo + (x + 1.0) * ((self.hi - self.lo) / 2.0)

    def extra_repr(self) -> str:
        """The mapping, for ``repr``."""
        return f"[-1, 1] -> [{self.lo:g}, {self.hi:g}]"


class PluginLPIPS(LPIPS):
    """LPIPS on a plugin backbone (see module).

    Same computation and public internals as
    :class:`~.lpips.LPIPS` (``backbone``, ``scaling``, ``lins``, ``channels``, :meth:`features`);
    ``net`` is the plugin spec, ``name`` ``lpips[<short spec>]``; ``spec``, ``options``,
    ``origin`` (dict) and ``kind`` (``"module"`` or ``"lpips"``) say where it came from. The
    linear layers start at zero: train them, or load them from a checkpoint.
    """

    def __init__(self, spec: str, backbone: nn.Module, *, channels: Sequence[int], scaling: nn.Module,
                 version: str, min_size: int = 1, options: Mapping[str, Any] | None = None,
                 origin: Mapping[str, Any] | None = None, kind: str = "module",
                 input_range: Sequence[float] = (-1.0, 1.0), spatial: bool = False):
        Metric.__init__(self, input_range=input_range, spatial=spatial)
        self.net = str(spec)
        self.spec = str(spec)
        self.version = version
        self.lpips = True
        self.name = f"lpips[{short_plugin_name(spec)}]"
        self.min_size = int(min_size)
        self.channels = [int(c) for c in channels]
        self.options = dict(options or {})
        self.origin = dict(origin or {})
        self.kind = kind
        # any module returning a list of taps, not the torchvision trunk LPIPS declares
        self.backbone = backbone.requires_grad_(False)  # type: ignore[assignment]
        self.scaling = scaling
        self.lins = nn.ModuleList([nn.Conv2d(c, 1, kernel_size=1, stride=1, padding=0, bias=False)
                                   for c in self.channels])
        with torch.no_grad():
            for lin in self._convs():
                lin.weight.zero_()

    def load_lin_weights(self, lin_weights: LinWeights = None) -> None:
        """Load linear weights from a path or mapping (see :meth:`.LPIPS.load_lin_weights`).

        Args:
            lin_weights: a path or a mapping in the official layout; ``None`` is refused.

        Raises:
            WeightsError: ``None``: a plugin network has no official linear weights.
        """
        if lin_weights is None:
            raise WeightsError(f"{self.name}: a plugin network has no official linear weights; train them "
                               f"(bapps train --net {self.spec}) and load the run's checkpoint")
        super().load_lin_weights(lin_weights)


def _attr(made: Any, obj: Any, name: str, default: Any) -> Any:
    return getattr(made, name, getattr(obj, name, default))


def _instantiate(obj: Any, spec: str, options: Mapping[str, Any]) -> Any:
    """The network ``obj`` gives: itself (an instance) or what its class/factory returns."""
    if isinstance(obj, nn.Module):
        if options:
            raise PluginError(f"net plugin {spec!r} is an nn.Module instance; it takes no options "
                              f"(got {sorted(options)})")
        return copy.deepcopy(obj)  # a module-level instance is not shared between the metrics built from it
    if not callable(obj):
        raise PluginError(f"net plugin {spec!r} is a {type(obj).__name__}, not a network: give an nn.Module "
                          "whose forward returns a list of feature maps, a class or factory returning one, "
                          "or an LPIPS")
    try:
        return call_factory(obj, spec, options, "net plugin")
    except PluginError:
        raise
    except Exception as exc:
        raise PluginError(f"net plugin {spec!r}: building the network failed: "
                          f"{type(exc).__name__}: {exc}") from exc


@torch.no_grad()
def probe_channels(backbone: nn.Module, scaling: nn.Module, size: int, spec: str) -> list[int]:
    """Tap widths from one forward of a zero ``1×3×size×size`` batch (eval mode, no gradients)."""
    param = next(iter(backbone.parameters()), None)
    x = torch.zeros(1, 3, size, size, dtype=param.dtype if param is not None else torch.float32,
                    device=param.device if param is not None else None)
    was_training = backbone.training
    backbone.eval()
    try:
        taps = backbone(scaling(x))
    except Exception as exc:
        raise PluginError(f"net plugin {spec!r}: the probe forward on a 1x3x{size}x{size} batch failed: "
                          f"{type(exc).__name__}: {exc}") from exc
    finally:
        backbone.train(was_training)
    if not isinstance(taps, (list, tuple)):
        raise PluginError(f"net plugin {spec!r}: forward returned a {type(taps).__name__}; an LPIPS backbone "
                          "must return a list or tuple of feature maps [N, C, H, W] (one per tap)")
    if not taps:
        raise PluginError(f"net plugin {spec!r}: forward returned no feature maps")
    for k, f in enumerate(taps):
        if not isinstance(f, torch.Tensor) or f.dim() != 4 or f.shape[0] != 1 or not f.is_floating_point():
            what = f"shape {tuple(f.shape)}" if isinstance(f, torch.Tensor) else type(f).__name__
            raise PluginError(f"net plugin {spec!r}: tap {k} of the probe forward is {what}; expected a float "
                              f"feature map [1, C, H, W] for a 1x3x{size}x{size} input")
    return [int(f.shape[1]) for f in taps]


@dataclass(frozen=True)
class _NetParts:
    """What a plugin network gives :class:`PluginLPIPS`, before its channels are probed."""

    backbone: nn.Module
    scaling: nn.Module
    version: str
    min_size: int
    probe: int
    kind: str
    calibrated: bool
    note: str


def _from_module(made: nn.Module, obj: Any, spec: str) -> _NetParts:
    scaled = bool(_attr(made, obj, "lpips_scaling", False))
    declared = _attr(made, obj, "input_range", None)
    if scaled and declared is not None:
        raise PluginError(f"net plugin {spec!r}: declares both lpips_scaling=True and input_range={declared!r}; "
                          "the scaling layer takes [-1, 1] images: drop one of them")
    lo, hi = check_range_option(declared if declared is not None else (-1.0, 1.0))
    scaling: nn.Module = (ScalingLayer() if scaled else
                          nn.Identity() if (lo, hi) == (-1.0, 1.0) else RangeMap(lo, hi))
    min_size = int(_attr(made, obj, "min_size", 0) or 0)
    return _NetParts(backbone=made, scaling=scaling, version="0.1" if scaled else "0.0",
                     min_size=max(1, min_size), probe=min_size or PROBE_SIZE, kind="module",
                     calibrated=bool(_attr(made, obj, "calibrated", True)),
                     note=str(_attr(made, obj, "calibration_note", "") or "backbone declared uncalibrated"))


def _a_metric(spec: str, cls: type) -> PluginError:
    return PluginError(f"net plugin {spec!r} is a metric ({cls.__name__}), not a network: give an nn.Module "
                       "whose forward returns a list of feature maps (LPIPS puts its linear layers on those), "
                       "or an LPIPS")


def build_plugin_lpips(spec: str, options: Mapping[str, Any] | None = None, *,
                       recorded: bool = False) -> PluginLPIPS:
    """The :class:`PluginLPIPS` (linear layers zero) of ``spec`` built with ``options``.

    This imports and runs the code ``spec`` names: call it with specs the user gave (a file's
    spec goes through :func:`plugin_from_checkpoint`). ``recorded=True``: the options come from
    a file, so each must also have the type the factory annotates (``int``, ``float``, ``bool``,
    ``str``) before the factory sees it.

    Raises:
        PluginError: naming the spec when it does not give an LPIPS-style network.
    """
    options = dict(options or {})
    origin = plugin_origin(spec)  # found and hashed before the import
    obj, _ = load_object(spec, "net plugin")
    cls = obj if isinstance(obj, type) else type(obj)
    if issubclass(cls, Metric) and not issubclass(cls, LPIPS):
        raise _a_metric(spec, cls)
    if recorded:
        check_option_types(obj, spec, options, "net plugin")
    made = _instantiate(obj, spec, options)
    if isinstance(made, Metric) and not isinstance(made, LPIPS):
        raise _a_metric(spec, type(made))
    if isinstance(made, LPIPS):
        parts = _NetParts(backbone=made.backbone, scaling=made.scaling, version=made.version,
                          min_size=made.min_size, probe=max(made.min_size, PROBE_SIZE), kind="lpips",
                          calibrated=made.calibrated, note=made.calibration_note)
    elif not isinstance(made, nn.Module):
        raise PluginError(f"net plugin {spec!r} gave a {type(made).__name__}, not a network: give an nn.Module "
                          "whose forward returns a list of feature maps, a class or factory returning one, "
                          "or an LPIPS")
    else:
        parts = _from_module(made, obj, spec)
    channels = probe_channels(parts.backbone, parts.scaling, parts.probe, spec)
    model = PluginLPIPS(spec, parts.backbone, channels=channels, scaling=parts.scaling,
                        version=parts.version, min_size=parts.min_size, options=options, origin=origin,
                        kind=parts.kind)
    if not parts.calibrated:
        model.calibrated, model.calibration_note = False, parts.note
    return model


def plugin_origin(spec: str) -> PluginOrigin:
    """Where ``spec``'s code comes from, for the checkpoint (nothing imported).

    From :func:`.plugin_trust.code_origin`: ``{"kind": "file", "path", "sha256"}``, ``{"kind": "module", "module",
    "file", "sha256", "distribution", "version"}`` or ``{"kind": "entry-point", "value", "module",
    "file", "sha256", "distribution", "version"}`` (what is known). :class:`~.plugins.PluginError`
    naming the spec when its code cannot be found.
    """
    try:
        return code_origin(spec)
    except PluginNotFound as exc:
        raise PluginError(f"net plugin {spec!r}: {exc}") from None


def check_recorded_options(where: Path, spec: str, options: Mapping[str, Any]) -> None:
    """Options a file records for a factory, checked.

    Identifier keys, JSON scalars or flat lists of them; a :class:`CheckpointError` naming the file,
    the spec and the option otherwise.
    """
    for key, value in options.items():
        items = value if isinstance(value, list) else [value]
        if not str(key).isidentifier() or any(isinstance(v, (dict, list)) for v in items):
            raise CheckpointError(f"{where}: the recorded option {str(key)[:60]!r} of plugin network {spec!r} is not "
                                  "an identifier with a number, string, boolean or flat list as value")


def plugin_from_checkpoint(where: Path, meta: Mapping[str, str], trusted: frozenset[str] = frozenset()) -> PluginLPIPS:
    """The plugin network a checkpoint was trained on, rebuilt from its recorded spec and options.

    The linear layers are zero and the stored backbone is not loaded yet. It is rebuilt only when
    the user trusted that spec and its code is what it was at training time
    (:func:`.plugin_trust.check_plugin_allowed`, decided before anything is imported). ``trusted``:
    :func:`.plugin_trust.trusted_specs`.

    Raises:
        CheckpointError: naming the checkpoint and the spec: not trusted (the message says how to
            allow it), code changed or gone, unreadable metadata, or the network no longer builds.
    """
    spec = meta.get("plugin_spec", "")
    options = json_field(meta, "plugin_options", where, {}, dict)
    origin = json_field(meta, "plugin_origin", where, {}, dict)
    check_recorded_options(where, spec, options)
    check_plugin_allowed(where, spec, origin, trusted, options=options)
    try:
        return build_plugin_lpips(spec, options, recorded=True)
    except PluginError as exc:
        raise CheckpointError(f"{where}: the plugin network {spec!r} it was trained on no longer builds: "
                              f"{exc}") from None


__all__ = ["PluginLPIPS", "RangeMap", "build_plugin_lpips", "plugin_origin", "plugin_from_checkpoint",
           "check_recorded_options", "probe_channels", "PROBE_SIZE"]
