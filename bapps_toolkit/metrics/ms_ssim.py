"""MS-SSIM (Wang, Simoncelli, Bovik, Asilomar 2003) as the distance ``1 − MS-SSIM``.

Functional: :func:`ms_ssim`, :func:`ms_ssim_scales`, :func:`halve`. Metric: :class:`MSSSIM`,
registered as ``ms-ssim``.

Definition (MATLAB ``msssim.m``, TensorFlow ``tf.image.ssim_multiscale``): at scales
j = 1 … M, compute per channel the mean contrast-structure term ``cs_j`` and, at the last scale,
the mean SSIM ``ssim_M`` (Gaussian 11 taps, σ 1.5, K1 0.01, K2 0.03, valid filtering, population
statistics — see :mod:`.ssim`); between scales halve the image with a 2×2 average, padding an
odd height/width by one *symmetric* row/column at the bottom/right, keeping every 2nd pixel
(``imfilter(…, ones(2)/4, 'symmetric', 'same')`` then ``(1:2:end, 1:2:end)``). Then::

    MS-SSIM = Π_{j<M} relu(cs_j)^{w_j} · relu(ssim_M)^{w_M},
    w = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]

per channel, averaged over channels (as TensorFlow and pytorch-msssim do). The ReLU on cs and
ssim follows TensorFlow and pytorch-msssim (``msssim.m`` has none; it is a no-op unless the
images are anti-correlated). Distance = ``1 − MS-SSIM`` ∈ [0, 1]; 0 for identical inputs.

Pooling (``pooling=``): ``"product"`` (default) is the formula above, Wang et al. 2003's
definition and ``msssim.m``'s default. ``"weighted_sum"`` is ``msssim.m``'s ``'wtd_sum'`` method,
used for some published MATLAB values: the weights are first divided by their sum (the published
five sum to 1.0001), then ``MS-SSIM = Σ_{j<M} w_j cs_j + w_M ssim_M`` per channel, averaged over
channels, on the raw terms (no ReLU: nothing is raised to a fractional power). Both are tested
against ``msssim.m``'s two poolings of recorded per-scale terms
(``tests/reference/msssim_pooling.npz``).

Small images (BAPPS patches are 64×64). Five scales with an 11-tap window need
``min(H, W) ≥ 161`` (sizes 161 → 81 → 41 → 21 → 11). With ``scales=None`` (default) the metric
uses the largest ``M ≤ 5`` whose coarsest scale is still ≥ ``win_size`` and **renormalises the
first M weights to sum to 1** (for M = 5 the published weights are used as they are):
64×64 → M = 3 (64, 32, 16) with weights [0.0448, 0.2856, 0.3001]/0.6305. With ``scales=5`` (or
any explicit M) the exact M-scale definition is used and smaller images raise ``ValueError``.
The smallest accepted image is ``win_size`` (M = 1, where MS-SSIM reduces to SSIM).

Deviations from pytorch-msssim (1.0.0), recorded in the tests: it zero-pads odd sizes on both
sides inside ``avg_pool2d`` (counting the zeros), so it disagrees on any scale with an odd size
(e.g. 180×200 → 45 at the third scale: 1.9e-4 apart on the test photos); it refuses
``min(H, W) ≤ 160``; it builds its Gaussian taps in float32. On sizes divisible by 16 and ≥ 161
the two agree to 7e-6 (1e-14 when its per-scale statistics get float64 taps). piq pads
replicate at top/left: it also drifts on odd sizes.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..errors import MetricInputError
from ._validate import check_constants, check_data_range, validate_functional, work_dtype
from .base import Metric, register_metric
from .functional.padding import symmetric_pad
from .functional.windows import check_window, gaussian_window
from .ssim import ssim_components

__all__ = ["WANG_WEIGHTS", "POOLINGS", "halve", "ms_ssim_scales", "ms_ssim", "MSSSIM"]

#: Wang et al. 2003 scale weights (coarsest last).
WANG_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
#: Poolings of the per-scale terms: Wang 2003's product, ``msssim.m``'s ``'wtd_sum'``.
POOLINGS = ("product", "weighted_sum")


def _check_pooling(pooling: str, fn: str) -> str:
    if pooling not in POOLINGS:
        raise MetricInputError(f"{fn}: pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
    return pooling


def halve(x: torch.Tensor) -> torch.Tensor:
    """2×2 average, odd sizes padded symmetrically at the bottom/right, stride 2 → ``ceil(H/2)``."""
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        x = symmetric_pad(x, 0, h % 2, 0, w % 2)
    return F.avg_pool2d(x, kernel_size=2, stride=2)


def ms_ssim_scales(height: int, width: int, win_size: int = 11, max_scales: int = 5) -> int:
    """How many scales fit.

    The largest M ≤ ``max_scales`` with every scale's min side ≥ ``win_size`` (sides shrink as
    ``ceil(s/2)``); 0 if not even one fits.
    """
    s, m = min(height, width), 0
    while m < max_scales and s >= win_size:
        m += 1
        s = (s + 1) // 2
    return m


def ms_ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    data_range: float,
    win_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    weights: Sequence[float] = WANG_WEIGHTS,
    scales: int | None = None,
    pooling: str = "product",
) -> torch.Tensor:
    """MS-SSIM per image ``[N]`` of batches ``x``, ``y`` [N, C, H, W] spanning ``data_range``.

    ``scales=None``: as many of ``len(weights)`` scales as fit, weights renormalised when fewer
    (see the module docstring); an int forces that many (``ValueError`` if they do not fit).
    ``pooling``: ``"product"`` (Wang 2003) or ``"weighted_sum"`` (``msssim.m``'s ``'wtd_sum'``).
    Differentiable (the gradient is infinite where a cs term is exactly 0, as for every
    implementation using fractional powers).
    """
    x, y = validate_functional(x, y, metric="ms_ssim", data_range=data_range, names=("x", "y"))
    k1, k2 = check_constants(k1, k2, "ms_ssim")
    return _ms_ssim(
        x, y, data_range=data_range, win_size=win_size, sigma=sigma, k1=k1, k2=k2, weights=weights, scales=scales,
        pooling=pooling,
    )


def _ms_ssim(
    x: torch.Tensor, y: torch.Tensor, *, data_range: float, win_size: int, sigma: float, k1: float, k2: float,
    weights: Sequence[float], scales: int | None, pooling: str = "product",
) -> torch.Tensor:
    """:func:`ms_ssim` on inputs already validated (the module validates its own input range)."""
    check_window(win_size)
    _check_pooling(pooling, "ms_ssim")
    weights = [float(w) for w in weights]
    if not weights or any(w < 0 for w in weights):
        raise MetricInputError(f"ms_ssim: weights must be a non-empty list of non-negative numbers, got {weights}")
    h, w = x.shape[-2:]
    fit = ms_ssim_scales(h, w, win_size, len(weights))
    if scales is None:
        if fit == 0:
            raise MetricInputError(f"ms_ssim: images of {h}×{w} are smaller than the {win_size}-tap window")
        m = fit
        used = weights[:m]
        if m < len(weights):
            total = sum(used)
            used = [v / total for v in used]
    else:
        m = int(scales)
        if not 1 <= m <= len(weights):
            raise MetricInputError(f"ms_ssim: scales must be in 1..{len(weights)}, got {scales}")
        if fit < m:
            need = win_size
            for _ in range(m - 1):
                need = 2 * need - 1
            raise MetricInputError(
                f"ms_ssim: images of {h}×{w} are too small for {m} scales with a {win_size}-tap "
                f"window (need min side >= {need}); pass scales=None to use fewer scales"
            )
        used = weights[:m]
    taps = gaussian_window(win_size, sigma, dtype=x.dtype, device=x.device)
    terms = []
    for j in range(m):
        s_map, cs_map = ssim_components(x, y, taps, data_range=data_range, k1=k1, k2=k2)
        if j < m - 1:
            terms.append(cs_map.mean(dim=(-2, -1)))
            x, y = halve(x), halve(y)
        else:
            terms.append(s_map.mean(dim=(-2, -1)))
    stacked = torch.stack(terms, dim=0)  # [M, N, C]
    if pooling == "weighted_sum":
        total = sum(used)
        wt = torch.tensor([v / total for v in used], dtype=x.dtype, device=x.device).view(-1, 1, 1)
        return (stacked * wt).sum(dim=0).mean(dim=1)
    wt = torch.tensor(used, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    return torch.relu(stacked).pow(wt).prod(dim=0).mean(dim=1)


class MSSSIM(Metric):
    """``1 − MS-SSIM`` on RGB (or grey) in [0, 1] with data range 1; see the module docstring.

    Args:
        scales: ``None`` (default, as many as fit with renormalised weights) or a forced count.
        win_size, sigma, k1, k2, weights: the usual constants (defaults: Wang et al. 2003).
        pooling: ``"product"`` (default, Wang 2003) or ``"weighted_sum"`` (``msssim.m``'s
            ``'wtd_sum'``: normalised weights, ``Σ w_j cs_j + w_M ssim_M``).
        data_range: the value span in the constants, in the units of the values passed, as the
            peers mean it (see :class:`~.ssim.SSIM`); ``None``: the span of ``input_range``.
        input_range: value range of the inputs (default ``(-1, 1)``), checked (not rescaled
            when ``data_range`` is given).
        reduction: ``"none"`` (default, ``[N]``), ``"mean"`` or ``"sum"``.

    Per channel for 1–4 channels, averaged; ``uint8`` input read as value/255 (or its values
    with ``data_range``); statistics in float32 at least (float64 for float64 input).

    Raises:
        ValueError: a bad window, pooling, weights or scales, K1/K2 outside (0, 1), or
            ``data_range`` not > 0.
    """

    name = "ms-ssim"
    channels_in = (1, 2, 3, 4)
    min_size = 11
    supports_spatial = False

    def __init__(
        self,
        *,
        scales: int | None = None,
        win_size: int = 11,
        sigma: float = 1.5,
        k1: float = 0.01,
        k2: float = 0.03,
        weights: Sequence[float] = WANG_WEIGHTS,
        pooling: str = "product",
        data_range: float | None = None,
        input_range: Sequence[float] = (-1.0, 1.0),
        spatial: bool = False,
        reduction: str = "none",
    ):
        super().__init__(input_range=input_range, spatial=spatial, reduction=reduction)
        check_window(win_size)
        self.pooling = _check_pooling(pooling, "ms-ssim")
        self.win_size = int(win_size)
        self.sigma = float(sigma)
        self.k1, self.k2 = check_constants(k1, k2, self.name)
        self.data_range = check_data_range(data_range, self.name, True)
        self.weights = tuple(float(v) for v in weights)
        if not self.weights:
            raise MetricInputError("ms-ssim: weights must not be empty")
        if scales is not None and not 1 <= int(scales) <= len(self.weights):
            raise MetricInputError(f"ms-ssim: scales must be None or in 1..{len(self.weights)}, got {scales}")
        self.scales = None if scales is None else int(scales)
        need = self.win_size
        for _ in range((self.scales or 1) - 1):
            need = 2 * need - 1
        self.min_size = need

    def _distance(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        a, b = (self.unit(t) if self.data_range is None else t / self.data_range for t in (x0, x1))
        v = _ms_ssim(
            a.to(work_dtype(a)), b.to(work_dtype(b)), data_range=1.0, win_size=self.win_size, sigma=self.sigma,
            k1=self.k1, k2=self.k2, weights=self.weights, scales=self.scales, pooling=self.pooling,
        )
        return (1.0 - v).clamp_min(0.0)

    def extra_repr(self) -> str:
        """The scales, window and pooling with the metric's options, for ``repr``."""
        return (f"scales={self.scales or 'auto'}, win_size={self.win_size}, pooling={self.pooling}, "
                + super().extra_repr())


register_metric(
    "ms-ssim", MSSSIM,
    "1 - MS-SSIM (Wang 2003, 5 scales, product pooling; pooling='weighted_sum': msssim.m's wtd_sum; "
    "fewer scales with renormalised weights on small images)",
)
