"""SSIM (Wang, Bovik, Sheikh, Simoncelli, IEEE TIP 2004) as a batched, differentiable distance.

Functional layer: :func:`ssim` (per-image SSIM or its map), :func:`ssim_components` (per-channel
SSIM and contrast-structure maps, used by MS-SSIM), :func:`gaussian_window`,
:func:`matlab_downsample_factor`, :func:`matlab_downsample`, :func:`symmetric_pad`.
Metric modules: :class:`SSIM`, registered as ``ssim`` (RGB) and ``ssim-lab`` (CIE Lab).

Definition (``ssim_index.m``; scikit-image ``structural_similarity`` with
``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``)::

    S = (2 μx μy + C1)(2 σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2)),
    C1 = (K1 R)², C2 = (K2 R)², K1 = 0.01, K2 = 0.03, R = data range,

with local statistics from an 11×11 Gaussian window (σ = 1.5, taps ``exp(−d²/2σ²)`` normalised
to sum 1) applied separably with *valid* filtering (no padding: the map is
``(H − 10) × (W − 10)``), population (co)variances, and SSIM = mean of the map. Colour images:
SSIM per channel, then the mean over channels (scikit-image's ``channel_axis``).

The distance is **DSSIM = (1 − SSIM) / 2** ∈ [0, 1] (the official LPIPS repository's convention);
identical inputs give exactly 0. ``spatial=True`` gives the map ``(1 − S̄) / 2`` of shape
``[N, 1, H', W']`` with S̄ the channel mean of the SSIM map; its spatial mean is the distance.

Options of the metric (``create_metric("ssim", ...)``):

* ``downsample=True`` — MATLAB ``ssim.m``'s pre-filter: ``f = max(1, round(min(H, W)/256))``
  (MATLAB rounds halves away from zero: 640 px → f = 3, where Python's ``round`` gives 2), an
  ``f × f`` box filter with symmetric padding (MATLAB ``imfilter(…, 'symmetric', 'same')``, whose
  kernel centre is ``floor((f + 1)/2)``), then every f-th pixel starting at the first.
* ``official=True`` (registered as ``ssim-rgb-official`` / ``ssim-lab-official``) — the official
  LPIPS repository's DSSIM (``lpips.dssim``, which called scikit-image's ``compare_ssim`` with its
  defaults): the [-1, 1] input is quantised to uint8 exactly like ``tensor2im`` on the official
  loader's float32 tensor (see :mod:`.functional.color`; float64 input gives the same), then SSIM
  with a 7×7 *uniform* window, *sample*
  covariance (× 49/48), valid cropping, on RGB uint8 values with data range 255 (``ssim``) or on
  ``rgb2lab`` of the uint8 image with data range 100 (``ssim-lab``). The quantisation passes
  gradients straight through (a surrogate; see :mod:`.functional.color`).
* ``gaussian``, ``win_size``, ``sigma``, ``k1``, ``k2``, ``sample_covariance`` override the
  flavour's window settings.

Input range: ``input_range`` (default ``(-1, 1)``); RGB (or one grey channel) is mapped to [0, 1]
and SSIM uses data range 1 (identical to 255 on uint8 values). ``ssim-lab`` converts to Lab
(data range 100); a grey input is replicated to RGB first.

Numerics: local moments are computed on inputs centred by their (detached) per-image,
per-channel mean — mathematically the same statistics, but without the cancellation of
``E[x²] − μ²`` in float32 (this matters for Lab values of order 100).
"""
from __future__ import annotations

import functools
from collections.abc import Sequence

import torch

from ..errors import MetricInputError
from ._validate import check_constants, check_data_range, validate_functional, work_dtype
from .base import Metric, register_metric
from .functional.color import quantize_official, rgb_to_lab
from .functional.padding import check_padding, symmetric_pad, window_pad
from .functional.resize import matlab_box_downsample_symmetric as matlab_downsample
from .functional.resize import matlab_downsample_factor, matlab_round
from .functional.windows import check_window, filter_valid, gaussian_window, uniform_window
from .pixel import triplet_pieces

__all__ = [
    "gaussian_window",
    "uniform_window",
    "filter_valid",
    "symmetric_pad",
    "matlab_round",
    "matlab_downsample_factor",
    "matlab_downsample",
    "ssim_components",
    "ssim_triplet",
    "ssim",
    "SSIM",
]


# ---------------------------------------------------------------------------------------------
# SSIM
# ---------------------------------------------------------------------------------------------
def _window(gaussian: bool, win_size: int, sigma: float, x: torch.Tensor) -> torch.Tensor:
    if gaussian:
        return gaussian_window(win_size, sigma, dtype=x.dtype, device=x.device)
    return uniform_window(win_size, dtype=x.dtype, device=x.device)


def _ssim_maps(
    ref: torch.Tensor,
    others: Sequence[torch.Tensor],
    taps: torch.Tensor,
    *,
    data_range: float,
    k1: float,
    k2: float,
    sample_covariance: bool,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The one SSIM statistics implementation: ``(ssim_map, cs_map)`` of ``ref`` against ``others``.

    One pair for each of ``others``, ``[N, C, H − k + 1, W − k + 1]`` each, the reference's local
    moments computed once. Inputs are centred by their detached per-image, per-channel means before
    filtering (exact in real arithmetic, it keeps float32 variances from cancelling); one separable
    filtering of the planes ``r, x…, r², x²…, r·x…``.
    """
    k = taps.numel()
    if min(ref.shape[-2:]) < k:
        raise MetricInputError(f"images of {tuple(ref.shape[-2:])} are smaller than the {k}-tap window")
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    means = [t.detach().mean(dim=(-2, -1), keepdim=True) for t in (ref, *others)]
    r, *xs = (t - c for t, c in zip((ref, *others), means, strict=True))
    planes = [r, *xs, r * r, *(x * x for x in xs), *(r * x for x in xs)]
    stats = torch.split(filter_valid(torch.cat(planes, dim=1), taps), ref.shape[1], dim=1)
    n = len(xs)
    mr, ms, mrr, mss, mrs = stats[0], stats[1:1 + n], stats[1 + n], stats[2 + n:2 + 2 * n], stats[2 + 2 * n:]
    # cs = (2 σrx + C2) / (σr² + σx² + C2) with σ = norm · (E[··] − E[·]E[·]): numerator and
    # denominator divided by norm, so the factor only scales C2
    c2n = c2 / ((k * k) / (k * k - 1.0) if sample_covariance else 1.0)
    vr_c2 = torch.addcmul(mrr, mr, mr, value=-1.0).add_(c2n)
    ur = mr + means[0]
    ur2 = 2.0 * ur
    lum_den_r = torch.addcmul(torch.full_like(ur, c1), ur, ur)
    out = []
    for m, mm, mrx, c in zip(ms, mss, mrs, means[1:], strict=True):
        cs = (torch.addcmul(mrx, mr, m, value=-1.0) * 2.0 + c2n) / (torch.addcmul(mm, m, m, value=-1.0) + vr_c2)
        u = m + c
        lum = torch.addcmul(torch.full_like(u, c1), ur2, u) / torch.addcmul(lum_den_r, u, u)
        out.append((lum * cs, cs))
    return out


def ssim_components(
    x: torch.Tensor,
    y: torch.Tensor,
    taps: torch.Tensor,
    *,
    data_range: float,
    k1: float = 0.01,
    k2: float = 0.03,
    sample_covariance: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel SSIM map and contrast-structure map, both ``[N, C, H − k + 1, W − k + 1]``.

    ``cs = (2 σxy + C2) / (σx² + σy² + C2)`` and ``ssim = l · cs`` with
    ``l = (2 μx μy + C1) / (μx² + μy² + C1)``. ``sample_covariance`` multiplies the (co)variances
    by ``k²/(k² − 1)`` (scikit-image's default), otherwise population statistics (Wang 2004).
    """
    return _ssim_maps(x, [y], taps, data_range=data_range, k1=k1, k2=k2, sample_covariance=sample_covariance)[0]


def ssim_triplet(
    ref: torch.Tensor,
    p0: torch.Tensor,
    p1: torch.Tensor,
    taps: torch.Tensor,
    *,
    data_range: float,
    k1: float = 0.01,
    k2: float = 0.03,
    sample_covariance: bool = False,
    spatial: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(SSIM(ref, p0), SSIM(ref, p1))`` with the reference's local moments computed once.

    Statistics of :func:`ssim_components`; per-image SSIM ``[N]`` each, or (``spatial``) maps ``[N, 1, H', W']``.
    """
    maps = _ssim_maps(ref, [p0, p1], taps, data_range=data_range, k1=k1, k2=k2, sample_covariance=sample_covariance)
    out = [s.mean(dim=1, keepdim=True) if spatial else s.mean(dim=(-2, -1)).mean(dim=1) for s, _cs in maps]
    return out[0], out[1]


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    data_range: float,
    gaussian: bool = True,
    win_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    sample_covariance: bool = False,
    downsample: bool = False,
    spatial: bool = False,
    padding: str = "valid",
) -> torch.Tensor:
    """SSIM of image batches ``x``, ``y`` [N, C, H, W] with values spanning ``data_range``.

    Returns the per-image SSIM ``[N]`` (mean over the valid map and over channels), or with
    ``spatial=True`` the channel-averaged SSIM map ``[N, 1, H', W']``. Defaults are Wang et al.'s
    (``ssim_index.m``): Gaussian 11 taps, σ 1.5, K1 0.01, K2 0.03, population statistics.
    ``gaussian=False`` uses a uniform ``win_size`` box; ``downsample=True`` applies MATLAB
    ``ssim.m``'s ``f × f`` pre-filter (see the module docstring); ``padding="reflect"``
    reflect-pads the images by ``(win_size − 1)/2`` first, so the map covers the whole image
    (torchmetrics' border rule; ``"valid"``, the default, is Wang's, scikit-image's and piq's).
    Differentiable.

    Conventions (as piq, torchmetrics and scikit-image): any 1–4 channels, SSIM per channel then
    the channel mean; ``uint8``/``uint16`` tensors taken as their values (``data_range=255``
    for 8-bit values); statistics in float32 at least, float64 for float64 input (half
    precision is upcast, and the result is in that dtype); ``0 < k1, k2 < 1``.

    Raises:
        ValueError: bad inputs (named), ``data_range <= 0``, or K1/K2 outside (0, 1).
    """
    x, y = validate_functional(x, y, metric="ssim", data_range=data_range, names=("x", "y"))
    k1, k2 = check_constants(k1, k2, "ssim")
    return _ssim(
        x, y, data_range=data_range, gaussian=gaussian, win_size=win_size, sigma=sigma, k1=k1, k2=k2,
        sample_covariance=sample_covariance, downsample=downsample, spatial=spatial,
        padding=check_padding(padding, "ssim"),
    )


def _ssim(
    x: torch.Tensor, y: torch.Tensor, *, data_range: float, gaussian: bool, win_size: int, sigma: float,
    k1: float, k2: float, sample_covariance: bool, downsample: bool, spatial: bool, padding: str = "valid",
) -> torch.Tensor:
    """:func:`ssim` on inputs already validated (the module validates its own input range)."""
    if downsample:
        f = matlab_downsample_factor(*x.shape[-2:])
        x, y = matlab_downsample(x, f), matlab_downsample(y, f)
    x, y = window_pad((x, y), padding, win_size)
    taps = _window(gaussian, win_size, sigma, x)
    s_map, _ = ssim_components(
        x, y, taps, data_range=data_range, k1=k1, k2=k2, sample_covariance=sample_covariance
    )
    if spatial:
        return s_map.mean(dim=1, keepdim=True)
    return s_map.mean(dim=(-2, -1)).mean(dim=1)


# ---------------------------------------------------------------------------------------------
# Metric module
# ---------------------------------------------------------------------------------------------
class SSIM(Metric):
    """DSSIM = (1 − SSIM)/2 on RGB (``ssim``) or CIE Lab (``ssim-lab``); see the module docstring.

    Args:
        colorspace: ``"rgb"`` (data range 1 on [0, 1]; official: 255 on uint8 values) or
            ``"lab"`` (data range 100).
        official: reproduce the official LPIPS repository's DSSIM (uint8 quantisation, 7×7
            uniform window, sample covariance). Gradients through the quantisation are
            straight-through surrogates.
        gaussian, win_size, sigma, k1, k2, sample_covariance: window/constant overrides
            (``None`` = the flavour's default).
        downsample: MATLAB ``ssim.m`` pre-downsampling (default False: BAPPS patches are 64 px,
            where it is a no-op anyway).
        data_range: the value span ``R`` of the constants ``C1 = (K1 R)²``, ``C2 = (K2 R)²``, in
            the units of the values passed (255 for ``uint8`` values), as piq, torchmetrics and
            scikit-image mean it: SSIM is then computed on the values as given (no shift). ``None``
            (default): the span of ``input_range``, on the image mapped to [0, 1]. RGB only, not
            with ``official`` (whose data range is fixed). Separate from ``input_range``, which
            only checks the values.
        padding: ``"valid"`` (default: Wang, scikit-image, piq; the map is ``win_size − 1``
            smaller) or ``"reflect"`` (torchmetrics: reflect-padded, a map of the image's size).
        input_range: value range of the inputs (default ``(-1, 1)``), checked on every call
            without gradients (the loss rule of :mod:`._validate` with gradients).
        spatial: return the DSSIM map ``[N, 1, H', W']`` instead of ``[N]``.
        reduction: ``"none"`` (default, ``[N]``), ``"mean"`` or ``"sum"``.

    Channels: ``ssim`` computes per channel for 1–4 channels (as the peers do) and averages;
    ``ssim-lab`` and the official flavours take grey or RGB (RGBA by the alpha rule of
    :mod:`._validate`). ``uint8`` input is read as value/255 (or as its values with
    ``data_range``). Statistics are accumulated in float32 at least (float64 for float64
    input); the distance is returned in that dtype. Wang et al., IEEE TIP 2004.

    Raises:
        ValueError: an unknown colorspace, a bad window, K1/K2 outside (0, 1), ``data_range``
            not > 0 or given with Lab/official.
    """

    name = "ssim"
    channels_in: tuple[int, ...] = (1, 3)
    min_size = 11
    supports_spatial = True

    def __init__(
        self,
        *,
        colorspace: str = "rgb",
        official: bool = False,
        gaussian: bool | None = None,
        win_size: int | None = None,
        sigma: float = 1.5,
        k1: float = 0.01,
        k2: float = 0.03,
        sample_covariance: bool | None = None,
        downsample: bool = False,
        data_range: float | None = None,
        padding: str = "valid",
        input_range: Sequence[float] = (-1.0, 1.0),
        spatial: bool = False,
        reduction: str = "none",
    ):
        super().__init__(input_range=input_range, spatial=spatial, reduction=reduction)
        self.padding = check_padding(padding, "ssim")
        if colorspace not in ("rgb", "lab"):
            raise MetricInputError(f"ssim: colorspace must be 'rgb' or 'lab', got {colorspace!r}")
        self.colorspace = colorspace
        self.name = "ssim" if colorspace == "rgb" else "ssim-lab"
        self.official = bool(official)
        self.gaussian = (not self.official) if gaussian is None else bool(gaussian)
        if win_size is None:
            win_size = 11 if self.gaussian else 7
        check_window(win_size)
        self.win_size = int(win_size)
        if not sigma > 0:
            raise MetricInputError(f"ssim: sigma must be > 0, got {sigma}")
        self.sigma = float(sigma)
        self.k1, self.k2 = check_constants(k1, k2, self.name)
        self.sample_covariance = self.official if sample_covariance is None else bool(sample_covariance)
        self.downsample = bool(downsample)
        self.min_size = self.win_size if self.padding == "valid" else (self.win_size + 1) // 2
        self.data_range = check_data_range(data_range, self.name, colorspace == "rgb" and not self.official)
        self.channels_in = (1, 2, 3, 4) if colorspace == "rgb" and not self.official else (1, 3)

    def _prepare(self, x: torch.Tensor) -> tuple[torch.Tensor, float]:
        if x.shape[1] == 1 and self.colorspace == "lab":
            x = x.expand(-1, 3, -1, -1)
        if self.official:
            sym = self.symmetric(x)
            if self.colorspace == "lab":
                return rgb_to_lab(sym, official=True), 100.0
            return quantize_official(sym), 255.0
        u = self.unit(x) if self.data_range is None else x / self.data_range
        u = u.to(work_dtype(u))
        if self.colorspace == "lab":
            return rgb_to_lab(u), 100.0
        return u, 1.0

    def _pair_distances(
        self, ref: torch.Tensor, p0: torch.Tensor, p1: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(d(ref, p0), d(ref, p1))`` with the reference prepared once per triplet.

        The reference is converted (Lab / quantised) and its local moments filtered once per triplet
        (:func:`ssim_triplet`). Without gradients the batch is processed in cache-sized pieces of
        triplets.
        """
        if torch.is_grad_enabled() and any(t.requires_grad for t in (ref, p0, p1)):
            return self._triplet(ref, p0, p1)
        d0s, d1s = [], []
        for i, j in triplet_pieces(ref.shape[0], 3 * ref[0, 0].numel()):
            d0, d1 = self._triplet(ref[i:j], p0[i:j], p1[i:j])
            d0s.append(d0)
            d1s.append(d1)
        if len(d0s) == 1:
            return d0s[0], d1s[0]
        return torch.cat(d0s), torch.cat(d1s)

    def _triplet(self, ref: torch.Tensor, p0: torch.Tensor, p1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r, data_range = self._prepare(ref)
        a, _ = self._prepare(p0)
        b, _ = self._prepare(p1)
        if self.downsample:
            f = matlab_downsample_factor(*r.shape[-2:])
            r, a, b = (matlab_downsample(t, f) for t in (r, a, b))
        r, a, b = window_pad((r, a, b), self.padding, self.win_size)
        s0, s1 = ssim_triplet(
            r, a, b, _window(self.gaussian, self.win_size, self.sigma, r), data_range=data_range,
            k1=self.k1, k2=self.k2, sample_covariance=self.sample_covariance, spatial=self.spatial,
        )
        return ((1.0 - s0) / 2.0).clamp_min(0.0), ((1.0 - s1) / 2.0).clamp_min(0.0)

    def _distance(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        a, data_range = self._prepare(x0)
        b, _ = self._prepare(x1)
        s = _ssim(
            a, b, data_range=data_range, gaussian=self.gaussian, win_size=self.win_size,
            sigma=self.sigma, k1=self.k1, k2=self.k2, sample_covariance=self.sample_covariance,
            downsample=self.downsample, spatial=self.spatial, padding=self.padding,
        )
        return ((1.0 - s) / 2.0).clamp_min(0.0)

    def extra_repr(self) -> str:
        """The colour space, flavour, window and options, for ``repr``."""
        win = f"gaussian {self.win_size} σ={self.sigma:g}" if self.gaussian else f"uniform {self.win_size}"
        return (
            f"colorspace={self.colorspace}, official={self.official}, window={win}, "
            f"sample_covariance={self.sample_covariance}, downsample={self.downsample}, "
            + (f"padding={self.padding}, " if self.padding != "valid" else "")
            + (f"data_range={self.data_range:g}, " if self.data_range is not None else "")
            + super().extra_repr()
        )


register_metric(
    "ssim", functools.partial(SSIM, colorspace="rgb"),
    "DSSIM = (1 - SSIM)/2 on RGB; Wang 2004 Gaussian 11/1.5, valid, population stats "
    "(ssim-rgb-official: the LPIPS repo's DSSIM)",
    options_of=SSIM,
)
register_metric(
    "ssim-lab", functools.partial(SSIM, colorspace="lab"),
    "DSSIM = (1 - SSIM)/2 on Lab of the float image, Wang 2004 window (ssim-lab-official: the "
    "LPIPS repo's DSSIM-Lab)",
    options_of=SSIM,
)
