"""Every metric as a training loss: :class:`Loss`, :class:`MetricLoss`, :class:`L1Loss`.

A loss is an ``nn.Module`` called as ``loss(input, target)`` on NCHW float batches; it returns a
scalar (``reduction="mean"`` or ``"sum"`` over the batch) or the per-image values ``[N]``
(``reduction="none"``). What differs from calling the metric:

* **No range check.** An optimiser moves pixels slightly outside ``input_range`` — normal in
  training — so values outside it are used as they are (no clamping: every formula extends
  beyond the range and the gradient keeps pulling them back). Non-tensors, wrong shapes or
  channel counts, images below the metric's ``min_size``, NaN and Inf still raise
  ``ValueError`` (the metric's own validator with an unbounded range).
* **Frozen networks.** Every parameter of the wrapped metric (backbones, LPIPS linear layers)
  has ``requires_grad=False`` and the metric stays in eval mode even inside a model that is put
  in ``train()``: gradients reach the input, never the networks.
* **Direction.** Every registered metric is a distance (lower = more similar), so the loss is
  the metric's distance itself: ``ssim`` → DSSIM = (1 − SSIM)/2, ``ms-ssim`` → 1 − MS-SSIM,
  ``fsim`` → 1 − FSIM, ``psnr`` → the PSNR deficit ``10·log10(1 + MSE/ε)``, ``l2`` → MSE on
  [0, 1], LPIPS, PDL and DISTS as they are. (piq's ``SSIMLoss`` is 1 − SSIM, twice DSSIM.)
* **Target without gradient.** For deep metrics (those with ``features`` /
  ``distance_from_features``: LPIPS, PDL and DISTS) a target that does not require grad goes through
  the network under ``torch.no_grad()``, so the backward pass covers the input half only.

``l1`` is a loss but not a metric: ``mean |x − y|`` over channels and pixels of images mapped
to [0, 1] (so it is on the same scale as ``l2``).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
from torch import nn

from ..errors import MetricInputError
from ..metrics import Metric, check_reduction, create_metric, reduce
from ..metrics._validate import Range, check_range_option, to_unit, validate_pair

#: Range handed to the metrics' validator: every finite value is accepted.
UNBOUNDED: Range = (-math.inf, math.inf)




class Loss(nn.Module):
    """Base class: subclasses implement :meth:`per_image` (checked inputs → ``[N]``)."""

    name: str = "loss"
    channels_in: Sequence[int] = (1, 3)
    min_size: int = 1

    def __init__(self, *, reduction: str = "mean", input_range: Sequence[float] = (-1.0, 1.0)):
        super().__init__()
        self.reduction = check_reduction(reduction, type(self).__name__)
        self.input_range: Range = check_range_option(input_range)

    @property
    def calibrated(self) -> bool:
        """Whether the loss is the published metric (always True for a plain loss)."""
        return True

    @property
    def label(self) -> str:
        """Name for reports (carries the metric's ``[UNCALIBRATED: …]`` tag where it has one)."""
        return self.name

    def check(self, x: torch.Tensor, target: torch.Tensor) -> None:
        """Shape, dtype, channel, size and finiteness checks — no range check."""
        validate_pair(x, target, metric=f"{self.name} loss", input_range=UNBOUNDED,
                      channels=self.channels_in, min_size=self.min_size, names=("input", "target"))

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss of ``x`` against ``target``, reduced by ``reduction``.

        Args:
            x: the images being optimised, ``[N, C, H, W]`` in ``input_range``.
            target: the target images, of the same shape.

        Returns:
            A 0-d tensor (``"mean"``, ``"sum"``) or the per-image values ``[N]`` (``"none"``).

        Raises:
            ValueError: the inputs fail :meth:`check`.
        """
        self.check(x, target)
        return reduce(self.per_image(x, target), self.reduction)

    def per_image(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        """Per-image loss ``[N]`` of checked inputs (implemented by subclasses).

        Args:
            x: the images being optimised.
            target: the target images.

        Returns:
            One value per image.
        """
        raise NotImplementedError

    def extra_repr(self) -> str:
        """The reduction and input range, for ``repr``."""
        return f"reduction={self.reduction!r}, input_range={self.input_range}"


class L1Loss(Loss):
    """Mean absolute error on images mapped to [0, 1] (``l1``; not a registered metric)."""

    name = "l1"

    def per_image(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean absolute difference per image, on values mapped to [0, 1].

        Args:
            x: the images being optimised.
            target: the target images.

        Returns:
            One value per image, ``[N]``.
        """
        a, b = to_unit(x, self.input_range), to_unit(target, self.input_range)
        return (a - b).abs().flatten(1).mean(dim=1)


def _needs_grad(t: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and t.requires_grad


class MetricLoss(Loss):
    """A registered metric (built-in or plugin) as a loss; see the module docstring.

    Args:
        metric: a registered name (``"ms-ssim"``, ``"lpips-vgg"``, a plugin's name) or a
            :class:`~bapps_toolkit.metrics.Metric` instance (taken over and frozen). Subclasses
            set :attr:`metric_name` instead.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
        input_range: value range the data lives in (default ``(-1, 1)``), handed to the metric.
        **options: further metric options (``backbone_weights=``, ``scales=``, …).
    """

    metric_name: str | None = None

    def __init__(self, metric: str | Metric | None = None, *, reduction: str = "mean",
                 input_range: Sequence[float] = (-1.0, 1.0), **options: Any) -> None:
        super().__init__(reduction=reduction, input_range=input_range)
        if options.get("spatial"):
            raise MetricInputError("losses reduce per image; spatial=True is not available for a loss")
        options.pop("spatial", None)
        metric = self.metric_name if metric is None else metric
        if metric is None:
            raise MetricInputError("MetricLoss needs a metric name or instance")
        if isinstance(metric, Metric):
            if options:
                raise MetricInputError(
                    f"options {sorted(options)} given with a metric instance; set them on the metric")
            self.metric = metric
        else:
            self.metric = create_metric(str(metric), input_range=self.input_range, **options)
        self.input_range = self.metric.input_range
        self.metric.requires_grad_(False)
        self.metric.eval()
        self.name = self.metric.name
        self.channels_in = tuple(self.metric.channels_in)
        self.min_size = int(self.metric.min_size)

    def train(self, mode: bool = True) -> MetricLoss:
        """The wrapped metric stays in eval mode whatever ``mode`` is."""
        super().train(mode)
        self.metric.eval()
        return self

    @property
    def calibrated(self) -> bool:
        """Whether the wrapped metric is the published one (its :attr:`calibrated`)."""
        return bool(self.metric.calibrated)

    @property
    def label(self) -> str:
        """The wrapped metric's label (with its ``[UNCALIBRATED: …]`` tag where it has one)."""
        return self.metric.label

    def per_image(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The metric's distance per image, without a second validation.

        Against a fixed target (only ``x`` needs a gradient) a metric with separate features
        computes the target's features under ``no_grad``.

        Args:
            x: the images being optimised.
            target: the target images.

        Returns:
            One distance per image, ``[N]``.
        """
        m = self.metric
        split = hasattr(m, "features") and hasattr(m, "distance_from_features")
        if split and _needs_grad(x) and not _needs_grad(target):
            features = cast(Callable[..., Any], m.features)
            from_features = cast(Callable[..., torch.Tensor], m.distance_from_features)
            with torch.no_grad():
                ft = features(target)
            return from_features(features(x), ft).to(x.dtype)
        return m.distance(x, target, validate=False)

    def extra_repr(self) -> str:
        """The reduction, for ``repr`` (the wrapped metric prints its own options)."""
        return f"reduction={self.reduction!r}"


class L2Loss(MetricLoss):
    """MSE on [0, 1] (metric ``l2``)."""

    metric_name = "l2"


class PSNRLoss(MetricLoss):
    """PSNR deficit ``10·log10(1 + MSE/ε)`` (metric ``psnr``)."""

    metric_name = "psnr"


class SSIMLoss(MetricLoss):
    """DSSIM = (1 − SSIM)/2 (metric ``ssim``; ``official=``, ``win_size=`` … as the metric)."""

    metric_name = "ssim"


class MSSSIMLoss(MetricLoss):
    """1 − MS-SSIM (metric ``ms-ssim``)."""

    metric_name = "ms-ssim"


class FSIMLoss(MetricLoss):
    """1 − FSIM (metric ``fsim``)."""

    metric_name = "fsim"


class PDLLoss(MetricLoss):
    """Projected Distribution Loss on VGG16 (metric ``pdl-vgg``; ``backbone_weights=`` …)."""

    metric_name = "pdl-vgg"


class DISTSLoss(MetricLoss):
    """DISTS on VGG16 with the published α/β (metric ``dists``; ``backbone_weights=`` …)."""

    metric_name = "dists"


class LPIPSLoss(MetricLoss):
    """LPIPS with ``net`` = ``"alex"`` (default), ``"vgg"`` or ``"squeeze"`` (metric ``lpips-<net>``)."""

    def __init__(self, net: str = "alex", **kwargs: Any) -> None:
        super().__init__(f"lpips-{str(net).lower()}", **kwargs)
