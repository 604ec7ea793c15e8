"""Colour conversions in torch: sRGB → linear RGB → XYZ → CIE Lab (D65, 2°), YIQ and grey.

All functions take tensors whose colour channels sit on dimension ``-3`` (``[..., 3, H, W]``,
e.g. NCHW), RGB in **[0, 1]**, any floating dtype and device; they keep dtype and device and are
differentiable with finite gradients everywhere on [0, 1].

The Lab conversion follows scikit-image's ``skimage.color.rgb2lab`` (which follows
http://www.easyrgb.com and the sRGB standard, IEC 61966-2-1):

* sRGB decoding, piecewise: ``c / 12.92`` for ``c <= 0.04045``, else ``((c + 0.055) / 1.055)^2.4``;
* linear RGB → XYZ with the sRGB matrix (scikit-image's ``xyz_from_rgb``);
* XYZ normalised by the D65 2° white ``(0.95047, 1, 1.08883)``;
* ``f(t) = t^(1/3)`` for ``t > 0.008856``, else ``7.787 t + 16/116``;
  ``L = 116 f(Y) − 16``, ``a = 500 (f(X) − f(Y))``, ``b = 200 (f(Y) − f(Z))``.

Both piecewise functions are evaluated with the power branch's argument clamped to its own
domain (``torch.where`` differentiates both branches, and ``t^(1/3)`` has an infinite derivative at
0), so gradients stay finite. Tests check agreement with scikit-image to 1e-4 (float32) and
1e-9 (float64).

The official LPIPS repository (Zhang et al., CVPR 2018, ``lpips/__init__.py``) computes Lab
differently: it first converts the [-1, 1] tensor to ``uint8`` with ``tensor2im``
(``((x + 1) · 127.5)`` in float32, then truncation, not rounding) and runs ``rgb2lab`` on those
integers. :func:`quantize_official` reproduces that step and :func:`rgb_to_lab` applies it when
``official=True``. The truncation depends on the float32 bits of the tensor: on the official
loader's float32 tensors every channel value 1…63 comes back as v − 1; the official code casts a
float64 tensor to float32 inside ``tensor2im``, which truncates 1…95 instead. Here a float64 input
is first rounded to the float32 tensor the official loader holds for the same pixels
(:func:`official_float32`), so float32 and float64 inputs of the same pixels give the same result,
the one of the official evaluation (which always runs on the loader's float32 tensors).
Quantisation has zero derivative almost everywhere; here it uses a
*straight-through estimator* (the forward value is quantised, the backward pass treats it as
the identity ``(x + 1) · 127.5``), so the official flavour returns surrogate gradients, not the
exact (zero) ones. Use the default (``official=False``) flavour as a training loss.

Speed: when no gradient is needed (``torch.no_grad``/``inference_mode``, or an input that does
not require grad), ``rgb_to_lab(x, official=True)`` takes a fast path with the same result up to
float round-off: the uint8 codes index a 256-entry sRGB-decoding table computed in float64 (no
``pow(…, 2.4)``), the white point is folded into the XYZ matrix, the cube root is
``exp(log(t)/3)`` (a few ulp), ``L, a, b`` come from one 3×3 product, and the batch is processed
in pieces of :data:`LAB_CHUNK_VALUES` values so the temporaries stay in the CPU cache.
"""
from __future__ import annotations

import functools
from typing import Any

import torch

from ...errors import MetricInputError

__all__ = [
    "XYZ_FROM_RGB",
    "D65_WHITE",
    "YIQ_FROM_RGB",
    "srgb_to_linear",
    "rgb_to_xyz",
    "xyz_to_lab",
    "rgb_to_lab",
    "official_float32",
    "quantize_official",
    "rgb_to_yiq",
    "rgb_to_gray",
]

#: linear sRGB → CIE XYZ (scikit-image ``xyz_from_rgb``; sRGB primaries, D65).
XYZ_FROM_RGB = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
#: CIE XYZ of the D65 white point, 2° observer (scikit-image ``xyz_tristimulus_values``).
D65_WHITE = (0.95047, 1.0, 1.08883)
#: RGB → YIQ as in Zhang et al.'s ``FeatureSIM.m`` (NTSC, 3-digit coefficients).
YIQ_FROM_RGB = (
    (0.299, 0.587, 0.114),
    (0.596, -0.274, -0.322),
    (0.211, -0.523, 0.312),
)

#: ``(L + 16, a, b) = LAB_FROM_F · (f(X), f(Y), f(Z))`` (CIE 1976 Lab).
LAB_FROM_F = (
    (0.0, 116.0, 0.0),
    (500.0, -500.0, 0.0),
    (0.0, 200.0, -200.0),
)
#: Values (≈ 1.5 MB of float32) per piece on the no-grad fast path of ``rgb_to_lab(official=True)``.
LAB_CHUNK_VALUES = 32 * 3 * 64 * 64

_SRGB_THRESHOLD = 0.04045
_LAB_EPSILON = 0.008856
_LAB_KAPPA = 7.787


def _check_rgb(x: torch.Tensor, fn: str) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise MetricInputError(f"{fn}: expected a floating-point torch.Tensor, got {type(x).__name__}")
    if x.dim() < 3 or x.shape[-3] != 3:
        raise MetricInputError(f"{fn}: expected colour channels (3) on dim -3, got shape {tuple(x.shape)}")


def _matmul_channels(matrix: Any, x: torch.Tensor) -> torch.Tensor:
    m = torch.tensor(matrix, dtype=x.dtype, device=x.device)
    return torch.einsum("ij,...jhw->...ihw", m, x)


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    """Decode sRGB values in [0, 1] to linear light (IEC 61966-2-1, scikit-image thresholds)."""
    power = ((x.clamp_min(_SRGB_THRESHOLD) + 0.055) / 1.055) ** 2.4
    return torch.where(x > _SRGB_THRESHOLD, power, x / 12.92)


def rgb_to_xyz(x: torch.Tensor) -> torch.Tensor:
    """Convert sRGB in [0, 1] (channels on dim -3) to CIE XYZ (D65), like ``skimage.color.rgb2xyz``."""
    _check_rgb(x, "rgb_to_xyz")
    return _matmul_channels(XYZ_FROM_RGB, srgb_to_linear(x))


def xyz_to_lab(xyz: torch.Tensor) -> torch.Tensor:
    """CIE XYZ → CIE Lab relative to the D65 2° white, like ``skimage.color.xyz2lab``."""
    _check_rgb(xyz, "xyz_to_lab")
    white = torch.tensor(D65_WHITE, dtype=xyz.dtype, device=xyz.device).view(3, 1, 1)
    t = xyz / white
    cube_root = t.clamp_min(_LAB_EPSILON) ** (1.0 / 3.0)
    f = torch.where(t > _LAB_EPSILON, cube_root, _LAB_KAPPA * t + 16.0 / 116.0)
    fx, fy, fz = f.unbind(dim=-3)
    return torch.stack((116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)), dim=-3)


def _loader_float32(x64: torch.Tensor) -> torch.Tensor:
    """The official loader's float32 ``(v/255 − 0.5)/0.5`` for ``v = (x + 1)·127.5`` rounded to float32."""
    v = x64.add(1.0).mul_(127.5).to(torch.float32)
    return v.div_(255.0).sub_(0.5).div_(0.5)


def official_float32(x_sym: torch.Tensor) -> torch.Tensor:
    """``x_sym`` (in [-1, 1]) as the float32 tensor the official loader holds for the same pixels.

    float32 input is returned as it is; float16/bfloat16 input is cast (exact). For float64 input,
    a value that is exactly a float32 number is cast (so a float32 tensor cast up keeps its
    result); any other value is rounded the way the official loader (``ToTensor`` then
    ``Normalize(0.5, 0.5)``, in float32) produces it: ``v = (x + 1)·127.5`` rounded to float32,
    then ``(v/255 − 0.5)/0.5`` in float32. A float64 tensor ``(u/255 − 0.5)/0.5`` of uint8
    pixels ``u`` thus becomes exactly the loader's float32 tensor of ``u``. Straight-through
    gradient (the backward pass of the cast).
    """
    if x_sym.dtype == torch.float32:
        return x_sym
    x32 = x_sym.to(torch.float32)
    if x_sym.dtype != torch.float64:
        return x32
    with torch.no_grad():
        exact = x32.to(torch.float64) == x_sym
        rounded = torch.where(exact, x32, _loader_float32(x_sym.detach()))
    return x32 + (rounded - x32).detach()


def quantize_official(x_sym: torch.Tensor) -> torch.Tensor:
    """The official LPIPS ``tensor2im`` step: [-1, 1] → integer values 0…255 (as floats).

    Computes ``(x + 1) · 127.5`` in float32 and truncates toward zero, exactly as
    ``((x + 1) * 255/2).astype(np.uint8)`` does in ``lpips/__init__.py`` (values are clamped to
    [0, 255] first, where numpy's cast would wrap), on :func:`official_float32` of the input (so
    float64 input gives the result of the loader's float32 tensor). Returned in ``x_sym``'s dtype.

    Gradient: straight-through — the backward pass is that of ``(x + 1) · 127.5`` (see the
    module docstring); the true derivative is zero almost everywhere.
    """
    scaled = (x_sym + 1.0) * 127.5
    with torch.no_grad():
        q = torch.floor(((official_float32(x_sym.detach()) + 1.0) * 127.5).clamp(0.0, 255.0)).to(x_sym.dtype)
    return scaled + (q - scaled).detach()


@functools.lru_cache(maxsize=16)
def _official_tables(dtype: torch.dtype, device: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(256-entry sRGB→linear table, white-normalised XYZ matrix, Lab matrix), built in float64."""
    codes = torch.arange(256, dtype=torch.float64) / 255.0
    lut = srgb_to_linear(codes)
    white = torch.tensor(D65_WHITE, dtype=torch.float64).view(3, 1)
    xyz_n = torch.tensor(XYZ_FROM_RGB, dtype=torch.float64) / white
    lab = torch.tensor(LAB_FROM_F, dtype=torch.float64)
    return lut.to(dtype=dtype, device=device), xyz_n.to(dtype=dtype, device=device), lab.to(dtype=dtype, device=device)


def _official_lab_piece(x: torch.Tensor, out: torch.Tensor, tables: Any) -> None:
    """Lab of one piece ``x`` [n, 3, H, W] in [-1, 1] (no grad) into ``out`` (same shape)."""
    lut, xyz_n, lab_m = tables
    n = x.shape[0]
    q = official_float32(x).add(1.0).mul_(127.5).clamp_(0.0, 255.0)  # tensor2im, then truncation
    lin = lut.index_select(0, q.to(torch.int32).reshape(-1)).view(n, 3, -1)
    t = torch.matmul(xyz_n, lin)  # X/Xn, Y/Yn, Z/Zn
    f = t.log().div_(3.0).exp_()  # t^(1/3); log(0) = -inf gives 0, replaced below
    dark = t <= _LAB_EPSILON
    if bool(dark.any()):
        f = torch.where(dark, t.mul(_LAB_KAPPA).add_(16.0 / 116.0), f)
    o = out.view(n, 3, -1)
    torch.matmul(lab_m, f, out=o)
    o[:, 0].sub_(16.0)


def _official_lab_fast(x: torch.Tensor) -> torch.Tensor:
    """No-grad ``rgb2lab(tensor2im(x))`` for ``x`` [..., 3, H, W] in [-1, 1] (see module docstring)."""
    shape = x.shape
    flat = x.reshape(-1, *shape[-3:])
    out = torch.empty(flat.shape, dtype=x.dtype, device=x.device)
    tables = _official_tables(x.dtype, str(x.device))
    step = max(1, LAB_CHUNK_VALUES // max(1, flat[0].numel()))
    for i in range(0, flat.shape[0], step):
        _official_lab_piece(flat[i:i + step], out[i:i + step], tables)
    return out.view(shape)


def rgb_to_lab(x: torch.Tensor, *, official: bool = False) -> torch.Tensor:
    """Convert sRGB to CIE Lab (D65, 2°): L in [0, 100], a and b roughly in [-128, 128].

    Args:
        x: RGB with channels on dim -3. With ``official=False`` (default) values in **[0, 1]**;
            matches ``skimage.color.rgb2lab`` on the same floats.
        official: if True, ``x`` is in **[-1, 1]** and is first quantised to uint8 values the way
            the official LPIPS repository does (:func:`quantize_official`), reproducing
            ``rgb2lab(tensor2im(x))``. Gradients are then straight-through surrogates.
    """
    _check_rgb(x, "rgb_to_lab")
    if official:
        if not (torch.is_grad_enabled() and x.requires_grad) and x.numel() > 0:
            return _official_lab_fast(x)
        x = quantize_official(x) / 255.0
    return xyz_to_lab(rgb_to_xyz(x))


def rgb_to_yiq(x: torch.Tensor) -> torch.Tensor:
    """RGB → YIQ with the coefficients of ``FeatureSIM.m`` (Zhang et al. 2011).

    Y = .299 R + .587 G + .114 B; I = .596 R − .274 G − .322 B; Q = .211 R − .523 G + .312 B.
    Linear, so any input scale works (FSIM uses RGB in [0, 255]).
    """
    _check_rgb(x, "rgb_to_yiq")
    return _matmul_channels(YIQ_FROM_RGB, x)


def rgb_to_gray(x: torch.Tensor) -> torch.Tensor:
    """Luma ``.299 R + .587 G + .114 B`` (the Y of YIQ; MATLAB ``rgb2gray`` up to its rounding).

    Returns ``[..., 1, H, W]``. Not scikit-image's ``rgb2gray`` (which uses Rec. 709 weights on
    linear-looking values).
    """
    _check_rgb(x, "rgb_to_gray")
    w = torch.tensor(YIQ_FROM_RGB[0], dtype=x.dtype, device=x.device).view(3, 1, 1)
    return (x * w).sum(dim=-3, keepdim=True)
