"""The official LPIPS repository's L2 and SSIM under their own names.

``--model l2`` / ``--model ssim`` with ``--colorspace Lab`` / ``RGB`` of the official code
(Zhang et al. 2018, ``lpips.L2`` / ``lpips.DSSIM``) as registry names, so every command and
:func:`~bapps_toolkit.metrics.create_metric` can ask for them:

==================  ============================================================================
name                what differs from the default of the same metric
==================  ============================================================================
l2-lab-official     Lab of the image after the official ``tensor2im`` (float32, then truncation
                    to uint8: channel values 1…63 of the loader's tensors come back as v − 1)
ssim-lab-official   that truncated-uint8 Lab, scikit-image's default SSIM (7×7 uniform window,
                    sample covariance, data range 100) instead of Wang 2004's Gaussian window
l2-rgb-official     mean squared difference of the [-1, 1] float32 tensors, not of [0, 1]
                    (4 × ``l2``, same ranking; the official RGB L2 has no uint8 step)
ssim-rgb-official   truncated uint8 RGB, 7×7 uniform window, sample covariance, data range 255
==================  ============================================================================

They are :class:`~.pixel.L2` / :class:`~.ssim.SSIM` with ``official=True``. Float64 input is first
rounded to the float32 tensor the official loader holds for the same pixels
(:func:`~.functional.color.official_float32`), so both dtypes give the official evaluation's
distances (the official code itself truncates float64 tensors differently: levels 1…95).
Tests compare per-item distances and 2AFC / JND scores with numbers recorded from the official
code (``tests/reference/official.npz``). The official path is for reproducing numbers; its
gradients through the quantisation are straight-through surrogates, so train with the defaults.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import MetricInputError
from .base import Metric, register_metric
from .pixel import L2
from .ssim import SSIM

__all__ = ["OFFICIAL_METRICS"]

#: ``name: (class, colorspace, one-line description)``.
OFFICIAL_METRICS: dict[str, tuple[type[L2] | type[SSIM], str, str]] = {
    "l2-lab-official": (
        L2, "lab", "the LPIPS repo's --model l2 (Lab): like l2-lab, but on truncated-uint8 pixels (tensor2im)"),
    "ssim-lab-official": (
        SSIM, "lab", "the LPIPS repo's --model ssim (Lab): truncated uint8, 7x7 uniform window, "
                     "sample covariance (ssim-lab: float Lab, Gaussian 11/1.5)"),
    "l2-rgb-official": (
        L2, "rgb", "the LPIPS repo's --model l2 --colorspace RGB: MSE of the [-1, 1] float32 tensors "
                   "(4x l2, same ranking)"),
    "ssim-rgb-official": (
        SSIM, "rgb", "the LPIPS repo's --model ssim --colorspace RGB: truncated uint8, 7x7 uniform "
                     "window, sample covariance (ssim: float RGB, Gaussian 11/1.5)"),
}


def _factory(name: str, cls: type[L2] | type[SSIM], colorspace: str) -> Callable[..., Metric]:
    def make(**options: Any) -> Metric:
        for fixed in ("official", "colorspace"):
            if fixed in options:
                raise MetricInputError(f"{name}: {fixed}= is fixed by the metric name; use "
                                 f"{name.replace('-official', '').replace('-rgb', '')} to choose it")
        metric = cls(colorspace=colorspace, official=True, **options)
        metric.name = name
        return metric

    return make


for _name, (_cls, _space, _text) in OFFICIAL_METRICS.items():
    register_metric(_name, _factory(_name, _cls, _space), _text, options_of=_cls)
