"""Common base class and registry for every metric.

Contract (tested for every registered name):

* ``metric(x0, x1)`` takes NCHW floating tensors in ``input_range`` (default ``(-1, 1)``) and
  returns a distance of shape ``[N]`` (lower = more similar), or a map ``[N, 1, H', W']`` when the
  metric was created with ``spatial=True`` and supports it.
* Inputs go through :func:`~bapps_toolkit.metrics._validate.validate_pair` first.
* The result never depends on ``train()``/``eval()``: metrics contain no dropout or batch-norm
  on their inference path.
* ``metric.calibrated`` is ``False`` when the result is not the published metric (for instance
  LPIPS on a randomly initialised backbone); ``metric.label`` then says so, loudly, and every
  report printed or written by the toolkit carries that label.
"""
from __future__ import annotations

import difflib
import inspect
import re
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ..errors import UsageError
from ._validate import Range, check_range_option, to_symmetric, to_unit, validate_pair

UNCALIBRATED_TAG = "UNCALIBRATED"


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

    def __init__(self, *, input_range: Sequence[float] = (-1.0, 1.0), spatial: bool = False):
        super().__init__()
        self.input_range: Range = check_range_option(input_range)
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

    def validate(self, x0: torch.Tensor, x1: torch.Tensor) -> None:
        validate_pair(
            x0, x1, metric=self.name, input_range=self.input_range,
            channels=self.channels_in, min_size=self.min_size,
        )
        if self.input_range == (-1.0, 1.0) and not getattr(self, "_unit_range_warned", False):
            self._warn_if_unit_range(x0, x1)

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
        return self.distance(x0, x1)

    def distance(self, x0: torch.Tensor, x1: torch.Tensor, *, validate: bool = True) -> torch.Tensor:
        """The distance; ``validate=False`` skips the input checks.

        Skip them only for inputs that are valid by construction (e.g. batches made from uint8
        patches by :func:`bapps_toolkit.data.to_model_input` after the first batch of a set was
        checked): the checks are full scans of the batch.
        """
        if validate:
            self.validate(x0, x1)
        return self._distance(x0, x1)

    def _distance(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def pair_distances(
        self, ref: torch.Tensor, p0: torch.Tensor, p1: torch.Tensor, *, validate: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(d(ref, p0), d(ref, p1))`` for 2AFC triplets (``validate`` as in :meth:`distance`).

        Metrics that can share work across a triplet (the reference through a network, or
        converted, once) override :meth:`_pair_distances`.
        """
        if validate:
            self.validate(ref, p0)
            self.validate(ref, p1)
        return self._pair_distances(ref, p0, p1)

    def _pair_distances(
        self, ref: torch.Tensor, p0: torch.Tensor, p1: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self._distance(ref, p0), self._distance(ref, p1)

    def compiled_calls(self) -> tuple[Callable[..., Any], Callable[..., Any]]:
        """``(pair_distances, distance)`` without validation, like :meth:`_pair_distances` and
        :meth:`_distance`, through :func:`torch.compile` (evaluate's ``compile``). A metric that
        torch.compile handles badly as a whole overrides this and compiles a part of it."""
        return torch.compile(self._pair_distances), torch.compile(self._distance)

    def extra_repr(self) -> str:
        s = f"input_range={self.input_range}"
        if self.spatial:
            s += ", spatial=True"
        if not self.calibrated:
            s += f", {UNCALIBRATED_TAG}: {self.calibration_note}"
        return s


_REGISTRY: dict[str, tuple[Callable[..., Metric], str]] = {}
_BACKBONES: dict[str, str] = {}


def register_metric(name: str, factory: Callable[..., Metric], description: str, *,
                    backbone: str | None = None) -> None:
    """Register ``factory(**options) -> Metric`` under ``name`` (lower-case, unique).

    ``backbone`` declares the ImageNet network (``alex``, ``vgg``, ``squeeze``) the metric is built
    on when its name does not say it (``dists`` is on ``vgg``), so that weight specs such as
    ``vgg=PATH`` reach it (see :func:`metric_backbone`).
    """
    if name in _REGISTRY:
        raise UsageError(f"metric {name!r} is already registered")
    _REGISTRY[name] = (factory, description)
    if backbone is not None:
        _BACKBONES[name] = backbone


def metric_backbone(name: str) -> str | None:
    """The backbone a registered metric declared with ``register_metric(..., backbone=)``, else None."""
    return _BACKBONES.get(str(name).lower())


def list_metrics() -> list[str]:
    """Names accepted by :func:`create_metric`, sorted."""
    return sorted(_REGISTRY)


def describe_metrics() -> dict[str, str]:
    """``{name: one-line description}`` for every registered metric."""
    return {k: v[1] for k, v in sorted(_REGISTRY.items())}


def create_metric(name: str, **options) -> Metric:
    """Build a registered metric, e.g. ``create_metric("lpips-alex", backbone_weights=path)``.

    Raises ``ValueError`` for an unknown name (listing the known ones).
    """
    key = str(name).lower()
    if key not in _REGISTRY:
        close = difflib.get_close_matches(key, list(_REGISTRY), n=3)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        raise UsageError(f"unknown metric {name!r}; {hint}known metrics: {', '.join(list_metrics())}")
    factory = _REGISTRY[key][0]
    try:
        metric = factory(**options)
    except TypeError as exc:
        m = re.search(r"(\w+)\.__init__\(\) got an unexpected keyword argument '(\w+)'", str(exc))
        if m is None or m.group(2) not in options:
            raise
        raise UsageError(_unknown_option(key, factory, m.group(1), m.group(2))) from None
    return metric.eval()


def _unknown_option(key: str, factory: Callable[..., Metric], cls_name: str, opt: str) -> str:
    """The message for an unknown keyword option ``opt``, with a "did you mean"."""
    cls = getattr(factory, "__globals__", {}).get(cls_name)
    known: list[str] = []
    if isinstance(cls, type):
        params = inspect.signature(cls).parameters
        known = [n for n, p in params.items() if n != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    close = difflib.get_close_matches(opt, known, n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    listing = f" Its options: {', '.join(known)}." if known else ""
    return f"metric {key} has no option {opt}{hint}{listing}"
