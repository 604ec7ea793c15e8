"""Phase congruency as FeatureSIM.m computes it.

``phasecong2``, P. Kovesi, "Image features from phase congruency", Videre 1(3), 1999: log-Gabor
filters, 4 scales × 4 orientations, noise threshold from the median of the smallest scale's squared
amplitude. The building block of :mod:`bapps_toolkit.metrics.fsim` (its module docstring lists the
constants and the conventions where MATLAB is undefined). Input: luminance on the 0..255 scale.

Speed: the FFTs run over the complex responses; everything after them runs on contiguous real
tensors of the even and odd responses (:func:`pc_from_responses`), which is also the part that
``torch.compile`` can fuse (it generates no code for complex operators).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch

# -- constants of phasecong2 as FeatureSIM.m calls it ---------------------------------------
N_SCALES = 4
N_ORIENT = 4
MIN_WAVELENGTH = 6.0
MULT = 2.0
SIGMA_ONF = 0.55
D_THETA_ON_SIGMA = 1.2
K_NOISE = 2.0
EPSILON = 1e-4
LOWPASS_CUTOFF = 0.45
LOWPASS_ORDER = 15

def safe_sqrt(v: torch.Tensor) -> torch.Tensor:
    """``sqrt(v)`` for ``v >= 0`` with a zero gradient (instead of inf/NaN) at ``v == 0``."""
    pos = v > 0
    return torch.where(pos, torch.where(pos, v, torch.ones_like(v)).sqrt(), torch.zeros_like(v))


def safe_div(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den`` where ``den > 0``, else 0, with finite gradients."""
    pos = den > 0
    return torch.where(pos, num / torch.where(pos, den, torch.ones_like(den)), torch.zeros_like(num))


def _matlab_range(n: int) -> np.ndarray:
    """The normalised frequency coordinates phasecong2/lowpassfilter build for ``n`` samples."""
    if n % 2:
        return np.arange(-(n - 1) / 2, (n - 1) / 2 + 1) / (n - 1)
    return np.arange(-n / 2, n / 2) / n


@lru_cache(maxsize=16)
def _filter_bank(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Log-Gabor bank ``[O, S, rows, cols]`` (0 frequency at the corner) and its noise factors.

    Per orientation, the factor ``c_o`` is such that phasecong2's noise threshold is
    ``T_o = c_o * sqrt(median_o)``.

    Built in float64 numpy exactly as phasecong2 does (meshgrid, ifftshift, radius(1,1) = 1).
    """
    x, y = np.meshgrid(_matlab_range(cols), _matlab_range(rows))
    radius = np.sqrt(x ** 2 + y ** 2)
    theta = np.arctan2(-y, x)
    lowpass = np.fft.ifftshift(1.0 / (1.0 + (radius / LOWPASS_CUTOFF) ** (2 * LOWPASS_ORDER)))
    radius = np.fft.ifftshift(radius)
    theta = np.fft.ifftshift(theta)
    radius[0, 0] = 1.0
    sintheta, costheta = np.sin(theta), np.cos(theta)

    log_gabor = []
    for s in range(N_SCALES):
        fo = 1.0 / (MIN_WAVELENGTH * MULT ** s)
        lg = np.exp(-(np.log(radius / fo) ** 2) / (2 * math.log(SIGMA_ONF) ** 2)) * lowpass
        lg[0, 0] = 0.0
        log_gabor.append(lg)

    theta_sigma = math.pi / N_ORIENT / D_THETA_ON_SIGMA
    bank = np.empty((N_ORIENT, N_SCALES, rows, cols))
    coef = np.empty(N_ORIENT)
    rayleigh = (math.sqrt(math.pi / 2) + K_NOISE * math.sqrt(2 - math.pi / 2)) / 1.7
    for o in range(N_ORIENT):
        angl = o * math.pi / N_ORIENT
        ds = sintheta * math.cos(angl) - costheta * math.sin(angl)
        dc = costheta * math.cos(angl) + sintheta * math.sin(angl)
        spread = np.exp(-(np.abs(np.arctan2(ds, dc)) ** 2) / (2 * theta_sigma ** 2))
        for s in range(N_SCALES):
            bank[o, s] = log_gabor[s] * spread
        em_n = float((bank[o, 0] ** 2).sum())
        spatial = np.real(np.fft.ifft2(bank[o], axes=(-2, -1))) * math.sqrt(rows * cols)
        sum_an2 = float((spatial ** 2).sum())
        sum_aiaj = sum(
            float((spatial[i] * spatial[j]).sum())
            for i in range(N_SCALES - 1) for j in range(i + 1, N_SCALES)
        )
        # meanE2n = median / ln 2; noisePower = meanE2n / EM_n;
        # tau = sqrt((2 noisePower ΣAn² + 4 noisePower ΣAiAj) / 2);
        # T = (tau sqrt(pi/2) + k sqrt(2 - pi/2) tau) / 1.7
        coef[o] = rayleigh * math.sqrt((2 * sum_an2 + 4 * sum_aiaj) / (2 * math.log(2) * em_n))
    return bank, coef


@lru_cache(maxsize=16)
def _filter_bank_tensors(
    rows: int, cols: int, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """The bank as a complex tensor and the noise factors in ``dtype``.

    The spectrum the bank multiplies is complex: a real bank would be converted on every call.
    """
    bank, coef = _filter_bank(rows, cols)
    return (torch.tensor(bank, dtype=dtype, device=device).to(torch.complex128 if dtype == torch.float64
                                                                else torch.complex64),
            torch.tensor(coef, dtype=dtype, device=device))


def _median_lastdim(v: torch.Tensor) -> torch.Tensor:
    """MATLAB ``median`` along the last dimension (mean of the two middle values for even n).

    One selection: the ``n//2 + 1`` smallest values (unordered); their largest is the upper middle
    value and, for even ``n``, their second largest the lower one (a third of the time of two
    ``torch.median`` calls, and ties are handled as values, like MATLAB's sort).
    """
    n = v.shape[-1]
    small = torch.topk(v, n // 2 + 1, dim=-1, largest=False, sorted=False).values
    if n % 2:
        return small.max(dim=-1).values
    two = torch.topk(small, 2, dim=-1).values
    return 0.5 * (two[..., 0] + two[..., 1])


#: On CPU, phase congruency runs over sub-batches of about this many complex filter responses
#: (images × 16 × H × W) so the intermediates stay in cache. Measured on 64² FSIM (items/s, best
#: of 3 rounds, 2 threads): an Intel Xeon with 2 MiB L2 per core gave 524 / 598 / 599 / 573 / 276
#: at 2^18 / 2^19 / 2^20 / 2^21 / 2^24 (one batch); an AMD EPYC earlier had 2^18 about 2× faster
#: than one batch. 2^19 (8 images at 64²) is within 1 % of the best on the first.
_CPU_CHUNK_ELEMENTS = 1 << 19

PCKernel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def phase_congruency(y: torch.Tensor, kernel: PCKernel | None = None) -> torch.Tensor:
    """phasecong2 as used by FeatureSIM.m: ``[N, 1, H, W]`` luminance (0..255) → PC ``[N, 1, H, W]``.

    ``kernel`` replaces :func:`pc_from_responses` (the real-valued part), e.g. by its
    ``torch.compile`` form (:meth:`FSIM.compiled_calls`); the FFTs always run eagerly.
    """
    n, _, rows, cols = y.shape
    bank, coef = _filter_bank_tensors(rows, cols, y.dtype, y.device)      # [O, S, H, W], [O]
    fn = kernel or pc_from_responses
    # Eager steps run several times faster on contiguous even/odd planes than on the interleaved
    # complex tensor; a compiled kernel reads the interleaved one directly (no copy).
    contiguous = kernel is None
    step = n
    if y.device.type == "cpu":
        step = max(1, _CPU_CHUNK_ELEMENTS // (N_ORIENT * N_SCALES * rows * cols))
    if n <= step:
        return fn(_responses(y, bank, contiguous), coef)
    return torch.cat([fn(_responses(y[i:i + step], bank, contiguous), coef) for i in range(0, n, step)])


def _responses(y: torch.Tensor, bank: torch.Tensor, contiguous: bool = True) -> torch.Tensor:
    """Log-Gabor responses ``[2, N, O, S, H, W]``.

    Even (E, real part) and odd (O, imaginary part) filter outputs; each a contiguous copy with
    ``contiguous``, else views of the complex result.
    """
    eo = torch.fft.ifft2(torch.fft.fft2(y).unsqueeze(2) * bank)           # [N, O, S, H, W] complex
    planes = torch.view_as_real(eo).movedim(-1, 0)
    return planes.contiguous() if contiguous else planes


def _sqrt(v: torch.Tensor, grad: bool) -> torch.Tensor:
    return safe_sqrt(v) if grad else v.sqrt()


def pc_from_responses(eo: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
    """Phase congruency ``[N, 1, H, W]`` from :func:`_responses` and the noise factors ``coef``.

    ``coef`` holds one factor per orientation; the steps are phasecong2's energy, noise threshold
    and normalisation.

    With Z = Σ_s (E_s + i·O_s) and mean = Z / (|Z| + ε): Σ_s (E_s·MeanE + O_s·MeanO) = |Z|² / (|Z| + ε)
    and Σ_s |E_s·MeanO − O_s·MeanE| = Σ_s |O_s·Re Z − E_s·Im Z| / (|Z| + ε), so
    Energy = (|Z|² − Σ_s |O_s·Re Z − E_s·Im Z|) / (|Z| + ε).
    """
    grad = torch.is_grad_enabled() and eo.requires_grad
    e, o = eo[0], eo[1]
    n, _, _, rows, cols = e.shape
    sq = torch.addcmul(e * e, o, o)                                       # |EO|² per scale
    amp_sum = _sqrt(sq, grad).sum(dim=(1, 2)).unsqueeze(1)                # ΣAn over o, s
    ze, zo = e.sum(dim=2, keepdim=True), o.sum(dim=2, keepdim=True)       # sumE, sumO
    cross = torch.addcmul(o * ze, e, zo, value=-1)
    cross = (cross.abs() if grad else cross.abs_()).sum(dim=2)
    ze, zo = ze.squeeze(2), zo.squeeze(2)
    nsq = torch.addcmul(ze * ze, zo, zo)
    energy = (nsq - cross) / (_sqrt(nsq, grad) + EPSILON)
    median = _median_lastdim(sq[:, :, 0].reshape(n, N_ORIENT, rows * cols))   # |EO{1,o}|²
    threshold = coef * _sqrt(median, grad)
    energy = torch.relu(energy - threshold[:, :, None, None])
    return safe_div(energy.sum(dim=1, keepdim=True), amp_sum)


__all__ = ["phase_congruency", "pc_from_responses", "PCKernel", "N_SCALES", "N_ORIENT", "EPSILON"]
