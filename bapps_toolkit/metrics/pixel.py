"""Pixel-wise distances: L2 (RGB and CIE Lab) and PSNR, batched and differentiable.

Functional layer (pure functions on tensors ``[N, C, H, W]``): :func:`mse`, :func:`psnr` (dB),
:func:`psnr_deficit` (the ``psnr`` distance), :func:`l2_lab`.
Metric modules (thin wrappers that validate and map the input range): :class:`L2` registered as
``l2`` and ``l2-lab``; :class:`PSNR` registered as ``psnr``.

Conventions (inputs in ``input_range``, default [-1, 1]; mapped to [0, 1] internally):

``l2``
    Mean squared error over channels and pixels of the RGB (or grey) image in **[0, 1]**,
    ``mean((x0 − x1)²)`` → ``[N]``; 0 for identical inputs. ``official=True`` (registered as
    ``l2-rgb-official``) gives the official LPIPS repository's ``--model l2 --colorspace RGB``
    instead: the same mean on the **[-1, 1]** float32 tensors (no uint8 step), i.e. 4 × the
    default up to float32 round-off (same ranking); float64 input is first rounded to the
    official loader's float32 tensor (:func:`~.functional.color.official_float32`).
``l2-lab``
    The formula of the official LPIPS L2 in Lab (Zhang et al. 2018, ``lpips.l2(…, range=100)``),
    ``0.5 · mean(((Lab0 − Lab1) / 100)²)`` with Lab from :func:`~.functional.color.rgb_to_lab`
    (D65) of the float image — not the official code path, which converts through truncated
    uint8 first. ``official=True`` (registered as ``l2-lab-official``) reproduces that path:
    quantisation like the official ``tensor2im`` (straight-through gradient, see
    :mod:`.functional.color`). Grey input is replicated to RGB.
``psnr``
    PSNR = ``10 log10(R² / MSE)`` dB (R = 1 on [0, 1]) grows with similarity and is infinite for
    identical images, so the *distance* reported under ``psnr`` is the **PSNR deficit below a
    cap** ``max_db`` (default 100 dB)::

        d = max_db − 10·log10(R² / (MSE + ε)),   ε = R² · 10^(−max_db/10)
          = 10·log10(1 + MSE / ε)

    It is ≥ 0, exactly 0 for identical inputs, strictly decreasing in PSNR (so it ranks pairs like
    PSNR and like ``l2``) and smooth. When PSNR ≪ max_db, ``d ≈ max_db − PSNR`` in dB (e.g.
    30 dB PSNR → d ≈ 70). The plain PSNR in dB is :func:`psnr`.

Spatial maps: ``l2`` and ``l2-lab`` support ``spatial=True`` (per-pixel squared error averaged
over channels, with the same scaling, ``[N, 1, H, W]``; its spatial mean is the distance).
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from ..errors import MetricInputError
from ._validate import check_data_range, validate_functional, validate_pair, work_dtype
from .base import Metric, register_metric
from .functional.color import LAB_CHUNK_VALUES, official_float32, rgb_to_lab

__all__ = ["mse", "psnr", "psnr_deficit", "l2_lab", "L2", "PSNR"]


def _mse(x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    return (x0 - x1).pow(2).flatten(1).mean(dim=1)


def mse(x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image: ``mean((x0 − x1)²)`` over all but the batch dim → ``[N]``."""
    x0, x1 = validate_functional(x0, x1, metric="mse", data_range=None)
    return _mse(x0, x1)


def psnr(x0: torch.Tensor, x1: torch.Tensor, *, data_range: float = 1.0) -> torch.Tensor:
    """PSNR in dB per image, ``10 log10(data_range² / MSE)`` → ``[N]``; ``+inf`` where identical.

    Matches ``skimage.metrics.peak_signal_noise_ratio`` (which pools over the whole image) and
    piq/torchmetrics with ``reduction="none"``. Inputs: any 1–4 channels (pooled over them),
    floating or ``uint8``/``uint16`` values spanning ``data_range`` (255 for 8-bit values);
    computed in float32 at least (float64 for float64 input).
    """
    x0, x1 = validate_functional(x0, x1, metric="psnr", data_range=data_range)
    return 10.0 * torch.log10(data_range**2 / _mse(x0, x1))


def psnr_deficit(
    x0: torch.Tensor, x1: torch.Tensor, *, data_range: float = 1.0, max_db: float = 100.0
) -> torch.Tensor:
    """The ``psnr`` distance: ``10 log10(1 + MSE / ε)``, ``ε = data_range² · 10^(−max_db/10)``.

    Equals ``max_db − PSNR`` computed with MSE + ε; ≥ 0, 0 for identical inputs, monotone
    decreasing in PSNR. → ``[N]`` in float32 at least (float64 for float64 input): half-precision
    inputs are computed and returned in float32 (ε = 1e-10 underflows in float16, and PSNR in
    float16 is quantised to 1/32 dB).
    """
    x0, x1 = validate_functional(x0, x1, metric="psnr_deficit", data_range=data_range)
    return _psnr_deficit(x0, x1, data_range=data_range, max_db=max_db)


def _psnr_deficit(x0: torch.Tensor, x1: torch.Tensor, *, data_range: float, max_db: float) -> torch.Tensor:
    if not max_db > 0:
        raise MetricInputError(f"psnr_deficit: max_db must be > 0, got {max_db}")
    eps = data_range**2 * 10.0 ** (-max_db / 10.0)
    work = torch.promote_types(x0.dtype, torch.float32)
    err = _mse(x0.to(work), x1.to(work))
    return (10.0 / math.log(10.0)) * torch.log1p(err / eps)


def _l2_from_lab(lab0: torch.Tensor, lab1: torch.Tensor, spatial: bool) -> torch.Tensor:
    """``0.5 · mean(((lab0 − lab1)/100)²)`` per image (or the channel-mean map).

    In the inputs' dtype; accumulated in float32 at least (squared Lab differences overflow float16).
    """
    work = torch.promote_types(lab0.dtype, torch.float32)
    d = lab0.to(work) - lab1.to(work)
    if spatial:
        return d.pow(2).mean(dim=1, keepdim=True).mul_(0.5e-4).to(lab0.dtype)
    flat = d.flatten(1)
    sums: torch.Tensor = torch.linalg.vecdot(flat, flat)
    return (sums * (0.5e-4 / flat.shape[1])).to(lab0.dtype)


def l2_lab(x0: torch.Tensor, x1: torch.Tensor, *, official: bool = False, spatial: bool = False) -> torch.Tensor:
    """Official LPIPS L2 in Lab: ``0.5 · mean(((Lab0 − Lab1)/100)²)`` → ``[N]`` (or a map).

    Inputs are RGB ``[N, 3, H, W]`` in **[0, 1]**, or in **[-1, 1]** when ``official=True``
    (then quantised through uint8 as the official ``tensor2im``; straight-through gradient).
    """
    validate_pair(x0, x1, metric="l2_lab", input_range=(-1.0, 1.0) if official else (0.0, 1.0), channels=(3,))
    return _l2_from_lab(rgb_to_lab(x0, official=official), rgb_to_lab(x1, official=official), spatial)


def _needs_grad(*tensors: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def triplet_pieces(n: int, image_values: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` pieces of a batch of ``n`` triplets, each small enough for the CPU cache.

    The Lab temporaries of one piece stay in the CPU cache
    (:data:`~.functional.color.LAB_CHUNK_VALUES` values per image batch).
    """
    step = max(1, LAB_CHUNK_VALUES // max(1, image_values))
    for i in range(0, n, step):
        yield i, min(n, i + step)


class L2(Metric):
    """Mean squared error on RGB in [0, 1] (``l2``) or the official Lab L2 (``l2-lab``).

    Args:
        colorspace: ``"rgb"`` or ``"lab"``.
        official: ``l2``: mean over the float32 [-1, 1] tensors (official
            ``L2(colorspace='RGB')``, 4 × the default); ``l2-lab``: uint8 quantisation first
            (official ``tensor2tensorlab``). See also the ``*-official`` registry names.
        input_range: value range of the inputs (default ``(-1, 1)``).
        spatial: return the per-pixel map ``[N, 1, H, W]``.
        reduction: ``"none"`` (default, ``[N]``), ``"mean"`` or ``"sum"``.

    ``l2`` averages over 1–4 channels (as the peers' MSE); ``l2-lab`` takes grey or RGB (RGBA by
    the alpha rule of :mod:`._validate`). ``uint8`` input is read as value/255. Computed in
    float32 at least (float64 for float64 input) and returned in that dtype.
    """

    name = "l2"
    channels_in: tuple[int, ...] = (1, 3)
    min_size = 1
    supports_spatial = True

    def __init__(
        self, *, colorspace: str = "rgb", official: bool = False, input_range: Sequence[float] = (-1.0, 1.0),
        spatial: bool = False, reduction: str = "none",
    ) -> None:
        super().__init__(input_range=input_range, spatial=spatial, reduction=reduction)
        if colorspace not in ("rgb", "lab"):
            raise MetricInputError(f"l2: colorspace must be 'rgb' or 'lab', got {colorspace!r}")
        self.colorspace = colorspace
        self.channels_in = (1, 2, 3, 4) if colorspace == "rgb" else (1, 3)
        self.name = "l2" if colorspace == "rgb" else "l2-lab"
        self.official = bool(official)

    def _lab(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.official:
            return rgb_to_lab(self.symmetric(x), official=True)
        return rgb_to_lab(self.unit(x))

    def _distance(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        if self.colorspace == "lab":
            return _l2_from_lab(self._lab(x0), self._lab(x1), self.spatial)
        if self.official:  # lpips.L2 in RGB: float32 [-1, 1] tensors of the official loader
            a, b = official_float32(self.symmetric(x0)), official_float32(self.symmetric(x1))
        else:
            a, b = self.unit(x0), self.unit(x1)
        a, b = a.to(work_dtype(a)), b.to(work_dtype(b))
        if self.spatial:
            return (a - b).pow(2).mean(dim=1, keepdim=True)
        return _mse(a, b)

    def _pair_distances(
        self, ref: torch.Tensor, p0: torch.Tensor, p1: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(d(ref, p0), d(ref, p1))``; ``l2-lab`` converts the reference to Lab once per triplet.

        Without gradients the batch is processed in cache-sized pieces of triplets.
        """
        if self.colorspace != "lab":
            return super()._pair_distances(ref, p0, p1)
        n = ref.shape[0]
        if _needs_grad(ref, p0, p1):
            lab = self._lab(torch.cat([ref, p0, p1], dim=0))
            return _l2_from_lab(lab[:n], lab[n:2 * n], self.spatial), _l2_from_lab(lab[:n], lab[2 * n:], self.spatial)
        d0s, d1s = [], []
        for i, j in triplet_pieces(n, 3 * ref[0, 0].numel()):
            lab_r = self._lab(ref[i:j])
            d0s.append(_l2_from_lab(lab_r, self._lab(p0[i:j]), self.spatial))
            d1s.append(_l2_from_lab(lab_r, self._lab(p1[i:j]), self.spatial))
        if len(d0s) == 1:
            return d0s[0], d1s[0]
        return torch.cat(d0s), torch.cat(d1s)

    def extra_repr(self) -> str:
        """The colour space and flavour with the metric's options, for ``repr``."""
        return f"colorspace={self.colorspace}, official={self.official}, " + super().extra_repr()


class PSNR(Metric):
    """PSNR deficit below ``max_db`` (see the module docstring) on RGB/grey in [0, 1].

    Args:
        max_db: the cap (default 100 dB); the distance is ``max_db − PSNR`` with MSE + ε.
        data_range: the peak ``R`` of PSNR in the units of the values passed (255 for ``uint8``
            values), as piq, torchmetrics and scikit-image mean it; ``None`` (default): the
            span of ``input_range``. Separate from ``input_range``, which only checks values.
        input_range: value range of the inputs (default ``(-1, 1)``).
        reduction: ``"none"`` (default, ``[N]``), ``"mean"`` or ``"sum"``.

    Pooled over 1–4 channels; ``uint8`` input is read as value/255 (or as its values with
    ``data_range``); computed in float32 at least (float64 for float64 input).

    Raises:
        ValueError: ``max_db`` or ``data_range`` not > 0.
    """

    name = "psnr"
    channels_in = (1, 2, 3, 4)
    min_size = 1
    supports_spatial = False

    def __init__(self, *, max_db: float = 100.0, data_range: float | None = None,
                 input_range: Sequence[float] = (-1.0, 1.0), spatial: bool = False, reduction: str = "none") -> None:
        super().__init__(input_range=input_range, spatial=spatial, reduction=reduction)
        if not max_db > 0:
            raise MetricInputError(f"psnr: max_db must be > 0, got {max_db}")
        self.max_db = float(max_db)
        self.data_range = check_data_range(data_range, "psnr", True)

    def _distance(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        if self.data_range is not None:
            return _psnr_deficit(x0, x1, data_range=self.data_range, max_db=self.max_db)
        return _psnr_deficit(self.unit(x0), self.unit(x1), data_range=1.0, max_db=self.max_db)

    def extra_repr(self) -> str:
        """The cap ``max_db`` with the metric's options, for ``repr``."""
        return f"max_db={self.max_db:g}, " + super().extra_repr()


def _make_l2(**opts: Any) -> L2:
    return L2(colorspace="rgb", **opts)


def _make_l2_lab(**opts: Any) -> L2:
    return L2(colorspace="lab", **opts)


register_metric("l2", _make_l2, "mean squared error on RGB in [0, 1] (l2-rgb-official: the LPIPS repo's RGB L2)",
                options_of=L2)
register_metric("l2-lab", _make_l2_lab,
                "0.5*mean(((Lab0-Lab1)/100)^2) on Lab of the float image (l2-lab-official: the LPIPS "
                "repo's code path, via truncated uint8)", options_of=L2)
register_metric("psnr", PSNR, "PSNR deficit below max_db (100 dB): 10*log10(1 + MSE/eps), 0 when identical")
