"""Common base class and registry for every metric.

Contract (tested for every registered name):

* ``metric(x0, x1)`` takes NCHW floating tensors in ``input_range`` (default ``(-1, 1)``) and
  returns a distance of shape ``[N]`` (lower = more similar), or a map ``[N, 1, H', W']`` when the
  metric was created with ``spatial=True`` and supports it; ``reduction="mean"``/``"sum"``
  (an option, or the attribute) reduces that to a 0-d tensor. ``pair_distances`` never reduces.
* Inputs go through the conventions of :func:`~bapps_toolkit.metrics._validate.accept_pair`
  (``uint8``/``uint16`` images read as value/255 or value/65535, grey replicated for
  three-channel metrics, RGBA only with an opaque alpha) and then
  :func:`~bapps_toolkit.metrics._validate.validate_pair` (values outside ``input_range`` are an
  error without gradients, a warning when gradients flow: the loss rule).
* The result never depends on ``train()``/``eval()``: metrics contain no dropout or batch-norm
  on their inference path.
* ``metric.calibrated`` is ``False`` when the result is not the published metric (for instance
  LPIPS on a randomly initialised backbone); ``metric.label`` then says so, loudly, and every
  report printed or written by the toolkit carries that label.
"""
from __future__ import annotations

import difflib
import inspect
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import MetricOptionError, UnknownMetricError, UsageError
from ._validate import (
    Range,
    accept_pair,
    check_range_option,
    check_reduction,
    reduce,
    to_symmetric,
    to_unit,
    validate_pair,
)

UNCALIBRATED_TAG = "UNCALIBRATED"


def features_apart(features: Callable[[torch.Tensor], Any], x0: torch.Tensor, x1: torch.Tensor
                   ) -> tuple[Any, Any] | None:
    """``(features(x0), features(x1))`` computed apart when exactly one side needs a gradient.

    This is a loss against a fixed target: the target's pass runs under ``no_grad``, so it builds
    no autograd graph. ``None`` otherwise, when one batched pass over both is cheaper.

    Args:
        features: the network's feature extractor.
        x0: first images.
        x1: second images.

    Returns:
        The two feature sets, or ``None``.
    """
    grads = [torch.is_grad_enabled() and t.requires_grad for t in (x0, x1)]
    if grads[0] == grads[1]:
        return None
    fixed = 1 if grads[0] else 0
    with torch.no_grad():
        f_fixed = features((x0, x1)[fixed])
    f_free = features((x0, x1)[1 - fixed])
    return (f_free, f_fixed) if fixed == 1 else (f_fixed, f_free)


class Metric(nn.Module):
    """Base class: subclasses implement :meth:`_distance` on validated inputs.

    Class attributes subclasses set:
      ``name`` (registry name), ``channels_in`` (accepted input channel counts C), ``min_size``
      (smallest ``min(H, W)``), ``supports_spatial``. (``channels_in``, not ``channels``: LPIPS
      uses ``channels`` for its tap widths.)
    """

    name: str = "metric"
    channels_in: Sequence[int] = (1, 3)
    min_size: int = 1
    supports_spatial: bool = False

    def __init__(self, *, input_range: Sequence[float] = (-1.0, 1.0), spatial: bool = False,
                 reduction: str = "none"):
        super().__init__()
        self.input_range: Range = check_range_option(input_range)
        self.reduction = reduction
        if spatial and not self.supports_spatial:
            raise UsageError(f"{self.name}: spatial=True is not supported (this metric has no map)")
        self.spatial = bool(spatial)
        #: False when the numbers are not the published metric (e.g. random backbone).
        self.calibrated: bool = True
        #: Why the metric is uncalibrated (empty when calibrated).
        self.calibration_note: str = ""

    # -- helpers for subclasses -------------------------------------------------------------
    def unit(self, x: torch.Tensor) -> torch.Tensor:
        """Input mapped to [0, 1]."""
        return to_unit(x, self.input_range)

    def symmetric(self, x: torch.Tensor) -> torch.Tensor:
        """Input mapped to [-1, 1]."""
        return to_symmetric(x, self.input_range)

    @property
    def label(self) -> str:
        """Name for reports; carries an ``[UNCALIBRATED: …]`` tag when :attr:`calibrated` is False."""
        if self.calibrated:
            return self.name
        return f"{self.name} [{UNCALIBRATED_TAG}: {self.calibration_note}]"

    @property
    def reduction(self) -> str:
        """``"none"`` (default: ``[N]``), ``"mean"`` or ``"sum"`` over the output of :meth:`distance`."""
        return self._reduction

    @reduction.setter
    def reduction(self, value: str) -> None:
        self._reduction = check_reduction(value, self.name)

    def validate(self, x0: torch.Tensor, x1: torch.Tensor) -> None:
        """Raise a ValueError naming what is wrong with the pair (see the module docstring)."""
        self._inputs(x0, x1, True)

    def _inputs(self, x0: torch.Tensor, x1: torch.Tensor, check: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The pair after the input conventions, checked when ``check``."""
        raw = getattr(self, "data_range", None) is not None
        a, b, integer = accept_pair(x0, x1, metric=self.name, input_range=self.input_range,
                                    channels=self.channels_in, raw_integers=raw, check=check)
        if check:
            grad = torch.is_grad_enabled() and any(isinstance(t, torch.Tensor) and t.requires_grad for t in (a, b))
            validate_pair(
                a, b, metric=self.name, input_range=(-math.inf, math.inf) if integer else self.input_range,
                channels=self.channels_in, min_size=self.min_size, lenient=grad,
            )
            if not integer and self.input_range == (-1.0, 1.0) and not getattr(self, "_unit_range_warned", False):
                self._warn_if_unit_range(a, b)
        return a, b

    def _warn_if_unit_range(self, x0: torch.Tensor, x1: torch.Tensor) -> None:
        """Warn once per metric when a whole batch lies in [0, 1] although [-1, 1] is expected."""
        with torch.no_grad():
            lo = min(float(x0.min()), float(x1.min()))
            hi = max(float(x0.max()), float(x1.max()))
        if lo >= 0.0 and hi <= 1.0 and hi > lo:
            self._unit_range_warned = True
            warnings.warn(
                f"{self.name}: every input value lies in [0, 1] but the metric expects [-1, 1] "
                "(input_range=(-1, 1)); if your images are in [0, 1], pass input_range=(0, 1), "
                "otherwise the distances are wrong",
                UserWarning, stacklevel=4,
            )

    # -- public API ---------------------------------------------------------------------------
    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        """The checked distance between ``x0`` and ``x1``: :meth:`distance` with validation."""
        return self.distance(x0, x1)

    def distance(self, x0: torch.Tensor, x1: torch.Tensor, *, validate: bool = True) -> torch.Tensor:
        """The distance; ``validate=False`` skips the input checks.

        Skip them only for inputs that are valid by construction (e.g. batches made from uint8
        patches by :func:`bapps_toolkit.data.to_model_input` after the first batch of a set was
        checked): the checks are full scans of the batch.
        """
        a, b = self._inputs(x0, x1, validate)
        return reduce(self._distance(a, b), self._reduction)

    def _distance(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def pair_distances(
        self, ref: torch.Tensor, p0: torch.Tensor, p1: torch.Tensor, *, validate: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(d(ref, p0), d(ref, p1))`` for 2AFC triplets (``validate`` as in :meth:`distance`).

        Metrics that can share work across a triplet (the reference through a network, or
        converted, once) override :meth:`_pair_distances`.
        """
        r, a = self._inputs(ref, p0, validate)
        _, b = self._inputs(ref, p1, validate)
        return self._pair_distances(r, a, b)

    def _pair_distances(
        self, ref: torch.Tensor, p0: torch.Tensor, p1: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self._distance(ref, p0), self._distance(ref, p1)

    def compiled_calls(self) -> tuple[Callable[..., Any], Callable[..., Any]]:
        """``(pair_distances, distance)`` without validation, through :func:`torch.compile`.

        Like :meth:`_pair_distances` and :meth:`_distance` (evaluate's ``compile``). A metric that
        torch.compile handles badly as a whole overrides this and compiles a part of it.
        """
        return torch.compile(self._pair_distances), torch.compile(self._distance)

    def extra_repr(self) -> str:
        """The input range, output options and calibration note, for ``repr``."""
        s = f"input_range={self.input_range}"
        if self.spatial:
            s += ", spatial=True"
        if self._reduction != "none":
            s += f", reduction={self._reduction}"
        if not self.calibrated:
            s += f", {UNCALIBRATED_TAG}: {self.calibration_note}"
        return s


@dataclass(frozen=True)
class MetricEntry:
    """One registered metric.

    Attributes:
        factory: ``factory(**options) -> Metric``.
        description: One line for listings.
        backbone: The ImageNet network the metric is built on when its name does not say it.
        signature_of: The callable whose signature lists the options: the factory, or the class
            that a ``**options`` factory forwards them to.
        options: The options that signature lists, or ``None`` when it does not say (it takes
            ``**kwargs``).
    """

    factory: Callable[..., Metric]
    description: str
    backbone: str | None
    signature_of: Callable[..., Any]
    options: tuple[str, ...] | None


_REGISTRY: dict[str, MetricEntry] = {}


def _signature_options(target: Callable[..., Any]) -> tuple[str, ...] | None:
    """The keyword options ``target`` accepts, or ``None`` when it takes ``**kwargs``."""
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):  # no signature (a builtin): cannot tell
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return tuple(p.name for p in params
                 if p.name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))


def register_metric(name: str, factory: Callable[..., Metric], description: str, *,
                    backbone: str | None = None, options_of: Callable[..., Any] | None = None) -> None:
    """Register ``factory(**options) -> Metric`` under ``name`` (lower-case, unique).

    Args:
        name: The registry name.
        factory: Builds the metric from keyword options (a :class:`Metric` subclass or a function).
        description: One line for :func:`describe_metrics`.
        backbone: The ImageNet network (``alex``, ``vgg``, ``squeeze``) the metric is built on when
            its name does not say it (``dists`` is on ``vgg``), so that weight specs such as
            ``vgg=PATH`` reach it (see :func:`metric_backbone`).
        options_of: For a factory that forwards ``**options`` to a class, that class: its
            signature lists the options the metric takes (default: the factory's own).

    Raises:
        ValueError: ``name`` is already registered.
    """
    if name in _REGISTRY:
        raise UsageError(f"metric {name!r} is already registered")
    target = factory if options_of is None else options_of
    _REGISTRY[name] = MetricEntry(factory, description, backbone, target, _signature_options(target))


def unregister_metric(name: str) -> None:
    """Remove ``name`` from the registry (for plug-ins and tests that register temporarily).

    Args:
        name: A registered name.

    Raises:
        KeyError: ``name`` is not registered.
    """
    del _REGISTRY[name]


def registered_entry(name: str) -> MetricEntry | None:
    """The registry entry of ``name`` (any case), or ``None`` when it is not registered.

    Args:
        name: A metric name.

    Returns:
        The entry, or ``None``.
    """
    return _REGISTRY.get(str(name).lower())


def metric_backbone(name: str) -> str | None:
    """The backbone a registered metric declared with ``register_metric(..., backbone=)``.

    Args:
        name: A metric name (any case).

    Returns:
        The backbone's name, or ``None`` when the metric declared none or is not registered.
    """
    entry = registered_entry(name)
    return None if entry is None else entry.backbone


def list_metrics() -> list[str]:
    """Names of the registered metrics, sorted.

    Returns:
        The names.
    """
    return sorted(_REGISTRY)


def describe_metrics() -> dict[str, str]:
    """One-line descriptions of the registered metrics.

    Returns:
        ``{name: description}``, sorted by name.
    """
    return {k: v.description for k, v in sorted(_REGISTRY.items())}


def unknown_metric(name: str) -> UnknownMetricError:
    """The error for a name that is not registered, with "did you mean" and the known names.

    Args:
        name: The name as given.

    Returns:
        The error to raise.
    """
    known = list_metrics()
    close = difflib.get_close_matches(str(name).lower(), known, n=3)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    return UnknownMetricError(f"unknown metric {name!r}; {hint}known metrics: {', '.join(known)}")


def create_registered_metric(name: str, **options: Any) -> Metric:
    """Build a registered metric in eval mode, its options checked against its signature first.

    Args:
        name: A registered name (any case), e.g. ``"lpips-alex"``.
        **options: The factory's keyword options, e.g. ``backbone_weights=path``.

    Returns:
        The metric.

    Raises:
        UnknownMetricError: ``name`` is not registered.
        MetricOptionError: an option the metric's signature does not list.
    """
    key = str(name).lower()
    entry = _REGISTRY.get(key)
    if entry is None:
        raise unknown_metric(name)
    reduction = options.pop("reduction", None)
    if entry.options is not None:
        for option in options:
            if option not in entry.options:
                raise MetricOptionError(key, option, entry.options)
    metric = entry.factory(**options)
    if reduction is not None:
        metric.reduction = reduction
    return metric.eval()
