"""Metrics as the competitions use them: built from a name, fed images in [0, 1], frozen.

A competition works on images with values in [0, 1] (the range of the PNG files it writes) and
hands each metric the same image mapped into that metric's declared ``input_range`` (``[0, 1]``
or ``[-1, 1]`` for the toolkit's metrics, whatever a plugin declares): so the valid pixel range
of every metric is respected by keeping the [0, 1] image inside [0, 1].

Names are those of :func:`bapps_toolkit.metrics.create_metric` (registry names, plugin specs
``module:attr`` / ``file.py:attr``, entry points, ``piq:``/``pyiqa:``/``torchmetrics:``).
Backbone weights follow the toolkit's one syntax (``alex=PATH`` / ``alex=random``, see
:mod:`bapps_toolkit.metrics.weight_specs`); a metric on a random backbone is UNCALIBRATED and
its :attr:`CompetitionMetric.label` says so wherever it goes.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import UsageError
from ..metrics import Metric, create_metric
from ..metrics.nets import NETS
from ..metrics.weight_specs import parse_weight_specs


def _net_of(name: str) -> str | None:
    tokens = name.lower().replace("_", "-").split("-")
    return next((net for net in NETS if net in tokens), None)


@dataclass(frozen=True)
class MetricInfo:
    """What a report needs to know of a metric: its name, report label and calibration."""

    name: str
    label: str
    calibrated: bool


class CompetitionMetric:
    """A frozen metric called on ``[0, 1]`` images: ``metric(ref, y) -> [N]`` distances.

    Args:
        name: the name the competition records (as given by the user).
        metric: the :class:`~bapps_toolkit.metrics.Metric` (its parameters are frozen here).
    """

    def __init__(self, name: str, metric: Metric) -> None:
        self.name = name
        self.metric = metric.eval()
        self.metric.requires_grad_(False)
        lo, hi = metric.input_range
        self._lo, self._scale = float(lo), float(hi) - float(lo)

    @property
    def info(self) -> MetricInfo:
        """Name, label (with its UNCALIBRATED tag where it has one) and calibration."""
        label = self.metric.label
        if self.name != self.metric.name:
            label = f"{self.name} ({label})"
        return MetricInfo(self.name, label, bool(self.metric.calibrated))

    def to(self, device: torch.device) -> CompetitionMetric:
        """Move the metric's networks to ``device``; returns itself."""
        self.metric.to(device)
        return self

    def __call__(self, ref: torch.Tensor, y: torch.Tensor, *, validate: bool = False) -> torch.Tensor:
        """Distances ``[N]`` of ``[N, C, H, W]`` images in [0, 1] (validated when asked)."""
        a, b = ref, y
        if (self._lo, self._scale) != (0.0, 1.0):
            a, b = self._lo + self._scale * ref, self._lo + self._scale * y
        out = self.metric.distance(a, b, validate=validate)
        if tuple(out.shape) != (ref.shape[0],):
            raise UsageError(f"metric {self.name}: returned shape {tuple(out.shape)} for {ref.shape[0]} "
                             "images; a competition needs one distance per image (not a map)")
        return out


def build_metric(name: str, *, backbone_weights: Sequence[str] | Mapping[str, str] | None = None,
                 options: Mapping[str, Any] | None = None) -> CompetitionMetric:
    """The :class:`CompetitionMetric` a name stands for.

    Args:
        name: a metric name (see the module docstring).
        backbone_weights: ``["alex=random", "vgg=PATH"]`` or ``{"alex": "random"}``; applied to
            names that contain the network (``lpips-alex``).
        options: further factory options of the metric (``{"version": "0.0"}``).

    Raises:
        ValueError: unknown metric, bad weight spec or option (the message names it).
    """
    if isinstance(backbone_weights, Mapping):
        weights = dict(parse_weight_specs([f"{k}={v}" for k, v in backbone_weights.items()],
                                          "backbone_weights", allow_random=True))
    else:
        weights = parse_weight_specs(list(backbone_weights or []), "backbone_weights", allow_random=True)
    opts = dict(options or {})
    net = _net_of(name)
    if net is not None and net in weights:
        opts["backbone_weights"] = weights[net]
    try:
        metric = create_metric(name, **opts)
    except TypeError as exc:
        raise UsageError(f"metric {name!r} does not accept the options {sorted(opts)}: {exc}") from None
    if getattr(metric, "spatial", False):
        raise UsageError(f"metric {name!r}: a competition needs one distance per image, not a map")
    return CompetitionMetric(name, metric)


def build_metrics(names: Sequence[str], *, backbone_weights: Sequence[str] | Mapping[str, str] | None = None,
                  options: Mapping[str, Mapping[str, Any]] | None = None) -> list[CompetitionMetric]:
    """:func:`build_metric` for each name (``options`` keyed by name); names must differ."""
    if len(set(names)) != len(names):
        raise UsageError(f"metrics: each metric may be named once, got {list(names)}")
    opts = options or {}
    return [build_metric(n, backbone_weights=backbone_weights, options=opts.get(n)) for n in names]


__all__ = ["CompetitionMetric", "MetricInfo", "build_metric", "build_metrics"]
