"""What a score's number means: the unit and direction of each metric's distance.

Also the usual form of the similarity metrics (PSNR in dB, SSIM, MS-SSIM, FSIM).

Every metric of the toolkit returns a *distance*: lower = more similar, 0 for identical images
(the contract of :mod:`bapps_toolkit.metrics.base`). Some of them are similarity indices turned
into distances; :func:`scale_of` gives the way back:

=================  ===============================================  =================================
metric             distance ``d``                                   usual form (higher = more similar)
=================  ===============================================  =================================
``psnr``           PSNR deficit below ``max_db`` (dB),              PSNR = ``−10 log10(MSE)`` dB with
                   ``10 log10(1 + MSE/ε)``, ``ε = 10^(−max_db/10)``  ``MSE = ε (10^(d/10) − 1)``; ∞ at 0
``ssim*``          DSSIM = ``(1 − SSIM) / 2``                       SSIM = ``1 − 2d``
``ms-ssim``        ``1 − MS-SSIM``                                  MS-SSIM = ``1 − d``
``fsim``/``fsimc`` ``1 − FSIM``                                     FSIM = ``1 − d``
=================  ===============================================  =================================

(Wang et al. 2004 for SSIM, Wang et al. 2003 for MS-SSIM, Zhang et al. 2011 for FSIM; PSNR on
RGB in [0, 1], so ``R = 1``.) The other metrics (L2, LPIPS, PDL, DISTS, plugins) have no similarity
form. The conversions are elementwise and accept floats or numpy arrays.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np

DISTANCE_DIRECTION = "lower = more similar"
SIMILARITY_DIRECTION = "higher = more similar"

Convert = Callable[[Any], Any]


@dataclasses.dataclass(frozen=True)
class Scale:
    """The unit of a metric's distance and, for similarity indices, the usual form."""

    unit: str
    similarity: str | None = None          # the usual form's name, e.g. "PSNR"
    similarity_unit: str = ""
    to_similarity: Convert | None = None
    from_similarity: Convert | None = None

    def describe(self, as_similarity: bool = False) -> tuple[str, str]:
        """``(unit, direction)`` of the numbers written in the chosen form."""
        if as_similarity:
            return f"{self.similarity} ({self.similarity_unit})", SIMILARITY_DIRECTION
        return self.unit, DISTANCE_DIRECTION


def _psnr_scale(max_db: float) -> Scale:
    eps = 10.0 ** (-max_db / 10.0)
    k = math.log(10.0) / 10.0

    def to_sim(d: Any) -> Any:
        mse = eps * np.expm1(np.asarray(d, dtype=np.float64) * k)
        with np.errstate(divide="ignore"):
            out = -10.0 * np.log10(mse)
        return float(out) if np.ndim(out) == 0 else out

    def from_sim(p: Any) -> Any:
        out = np.log1p(10.0 ** ((max_db - np.asarray(p, dtype=np.float64)) / 10.0)) / k
        return float(out) if np.ndim(out) == 0 else out

    return Scale(f"dB of PSNR deficit below {max_db:g} dB", "PSNR", "dB", to_sim, from_sim)


def _affine(unit: str, name: str, a: float, b: float) -> Scale:
    """Similarity ``s = a + b·d`` (and back)."""
    return Scale(unit, name, "unitless", lambda d: a + b * d, lambda s: (s - a) / b)


_FIXED: dict[str, Scale] = {
    "l2": Scale("mean squared error of RGB in [0, 1]"),
    "l2-rgb-official": Scale("mean squared error of RGB in [-1, 1]"),
    "l2-lab": Scale("0.5 * mean squared Lab difference / 100^2"),
    "dists": Scale("DISTS distance, 1 - weighted texture/structure similarity (unitless)"),
    "l2-lab-official": Scale("0.5 * mean squared Lab difference / 100^2"),
    "ms-ssim": _affine("1 - MS-SSIM (unitless)", "MS-SSIM", 1.0, -1.0),
    "fsim": _affine("1 - FSIM (unitless)", "FSIM", 1.0, -1.0),
    "fsimc": _affine("1 - FSIMc (unitless)", "FSIMc", 1.0, -1.0),
}


def scale_of(metric: Any) -> Scale:
    """The :class:`Scale` of a Metric object (by its registry ``name``; ``psnr`` reads ``max_db``)."""
    name = str(getattr(metric, "name", ""))
    if name in _FIXED:
        return _FIXED[name]
    if name == "psnr":
        return _psnr_scale(float(getattr(metric, "max_db", 100.0)))
    if name.startswith("ssim"):
        return _affine("DSSIM = (1 - SSIM) / 2 (unitless)", "SSIM", 1.0, -2.0)
    if name.startswith("lpips"):
        return Scale("LPIPS distance (unitless)")
    return Scale(f"as defined by {name or 'the metric'} (see `bapps metrics`)")


def similarity_names() -> str:
    """The metrics that have a usual similarity form, for error messages."""
    return "psnr, ssim, ssim-lab, ssim-*-official, ms-ssim, fsim, fsimc"
