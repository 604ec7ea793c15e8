"""The one input validator every metric uses (piq-style), and the input conventions.

All checks raise :class:`~bapps_toolkit.errors.MetricInputError` (a ``ValueError``) whose message names
the argument and what is wrong.

Conventions (:func:`accept_pair`, applied by every metric module before its checks):

* **Integer images**: ``uint8`` tensors are read as ``value / 255`` and ``uint16`` as
  ``value / 65535`` (as piq, torchmetrics and scikit-image read 8-bit images), i.e. a [0, 1]
  image, then mapped linearly into the metric's ``input_range``; a metric created with an
  explicit ``data_range`` takes the integer values as they are instead (``data_range=255``
  for 8-bit values, as piq). Other integer dtypes and ``bool`` are refused: their scale is
  not known.
* **Channels**: a metric that declares three channels only gets a grey image replicated to
  RGB; a 4-channel image given to a metric that does not compute per channel is RGBA and
  follows the **alpha rule**: accepted only when the alpha channel is fully opaque (every value
  at the top of the range), then dropped; any transparency is refused (the toolkit does not
  guess the background it was shown on: composite it yourself).
* **Loss rule**: when gradients flow through an input (an optimised image), values slightly
  outside ``input_range`` are used as given with a warning instead of an error; NaN and Inf
  are still refused. Without gradients (evaluation) the value check is an error.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch

from ..errors import MetricInputError

Range = tuple[float, float]

#: Slack allowed on the declared range, so that float round-off (e.g. 1.0000001) is not an error.
RANGE_TOLERANCE = 1e-4


def check_range_option(input_range: Sequence[float], name: str = "input_range") -> Range:
    """Validate an ``input_range`` option and return it as a float pair."""
    try:
        lo, hi = (float(v) for v in input_range)
    except (TypeError, ValueError):
        raise MetricInputError(f"{name} must be a pair (low, high), got {input_range!r}") from None
    if not lo < hi:
        raise MetricInputError(f"{name} must satisfy low < high, got {input_range!r}")
    return lo, hi


def _check_batch(t: object, n: str, metric: str) -> None:
    """Refuse ``t`` unless it is a non-empty floating-point ``[N, C, H, W]`` tensor, naming ``n``."""
    if not isinstance(t, torch.Tensor):
        raise MetricInputError(f"{metric}: {n} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != 4:
        raise MetricInputError(
            f"{metric}: {n} must be 4-D [N, C, H, W], got {t.dim()}-D shape {tuple(t.shape)}"
        )
    if not t.is_floating_point():
        raise MetricInputError(
            f"{metric}: {n} must be a floating-point tensor (got {t.dtype}); "
            f"convert uint8 images with x.float() / 255 and pass input_range=(0, 1), "
            f"or scale them to [-1, 1]"
        )
    if t.shape[0] == 0:
        raise MetricInputError(f"{metric}: {n} is an empty batch (N = 0)")


def _finite_bounds(t: torch.Tensor, n: str, metric: str) -> tuple[float, float]:
    """The lowest and highest value of ``t``; refuses NaN or Inf values, naming ``n``."""
    with torch.no_grad():
        # One pass: NaN propagates into min/max and ±Inf lies outside any finite range, so
        # the finiteness count is only computed when something is wrong.
        tmin_t, tmax_t = torch.aminmax(t)
        tmin, tmax = float(tmin_t), float(tmax_t)
        if not (math.isfinite(tmin) and math.isfinite(tmax)):
            bad = int((~torch.isfinite(t)).sum())
            if bad:
                raise MetricInputError(f"{metric}: {n} contains {bad} NaN or Inf value(s)")
    return tmin, tmax


def validate_pair(
    x0: torch.Tensor,
    x1: torch.Tensor,
    *,
    metric: str,
    input_range: Range,
    channels: Sequence[int] = (1, 3),
    min_size: int = 1,
    names: tuple[str, str] = ("x0", "x1"),
    lenient: bool = False,
) -> None:
    """Check a pair of image batches before a metric touches them.

    Requirements: both are floating-point ``torch.Tensor`` s of shape ``[N, C, H, W]`` (N ≥ 1),
    identical shapes, ``C`` in ``channels``, ``min(H, W) >= min_size``, finite values, values
    inside ``input_range`` (± :data:`RANGE_TOLERANCE`). ``lenient=True`` (the loss rule of the
    module docstring) turns values outside ``input_range`` into a warning.

    Raises:
        ValueError: naming the argument and what is wrong.
    """
    for t, n in zip((x0, x1), names, strict=False):
        _check_batch(t, n, metric)
    if x0.shape != x1.shape:
        raise MetricInputError(
            f"{metric}: {names[0]} and {names[1]} must have the same shape, "
            f"got {tuple(x0.shape)} and {tuple(x1.shape)}"
        )
    c, h, w = x0.shape[1:]
    if c not in channels:
        allowed = " or ".join(str(v) for v in channels)
        raise MetricInputError(f"{metric}: expected {allowed} channels, got C = {c} (shape {tuple(x0.shape)})")
    if min(h, w) < min_size:
        raise MetricInputError(
            f"{metric}: images of {h}×{w} are too small; this metric needs height and width "
            f">= {min_size}"
        )
    lo, hi = input_range
    for t, n in zip((x0, x1), names, strict=False):
        tmin, tmax = _finite_bounds(t, n, metric)
        if tmin < lo - RANGE_TOLERANCE or tmax > hi + RANGE_TOLERANCE:
            if lenient:
                warnings.warn(
                    f"{metric}: {n} has values outside the declared input_range ({lo:g}, {hi:g}) "
                    "while gradients flow through it; they are used as given (loss rule: an "
                    "optimised image may drift; without gradients this is an error)",
                    UserWarning, stacklevel=5,
                )
                continue
            raise MetricInputError(
                f"{metric}: {n} has values in [{tmin:.4g}, {tmax:.4g}], outside the declared "
                f"input_range ({lo:g}, {hi:g}); pass input_range=... to match your data"
            )


def to_unit(x: torch.Tensor, input_range: Range) -> torch.Tensor:
    """Map ``x`` from ``input_range`` to [0, 1]."""
    lo, hi = input_range
    if (lo, hi) == (0.0, 1.0):
        return x
    return (x - lo) / (hi - lo)


def to_symmetric(x: torch.Tensor, input_range: Range) -> torch.Tensor:
    """Map ``x`` from ``input_range`` to [-1, 1]."""
    lo, hi = input_range
    if (lo, hi) == (-1.0, 1.0):
        return x
    return (x - lo) * (2.0 / (hi - lo)) - 1.0


def validate_functional(
    x0: torch.Tensor, x1: torch.Tensor, *, metric: str, data_range: float | None,
    names: tuple[str, str] = ("x0", "x1"), channels: Sequence[int] = (1, 2, 3, 4),
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`validate_pair` for a functional entry point.

    Values must lie in ``[0, data_range]`` (any finite values when ``data_range`` is None),
    after checking ``data_range > 0``; every channel count in ``channels`` is computed per
    channel.

    Integer images (``uint8``, ``uint16``) are accepted and taken as their values (so
    ``data_range=255`` for 8-bit values, as piq); half-precision inputs are upcast
    (:func:`work_dtype`). Gradients flowing through an input make the range check a warning.

    Returns:
        The pair as floating tensors of the statistics' dtype.

    Raises:
        ValueError: naming the argument and what is wrong.
    """
    if data_range is not None and not float(data_range) > 0:
        raise MetricInputError(f"{metric}: data_range must be > 0, got {data_range!r}")
    bounds = (0.0, float(data_range)) if data_range is not None else (-math.inf, math.inf)
    for t, n in zip((x0, x1), names, strict=True):
        integer_scale(t, metric, n)
    a = x0.to(work_dtype(x0)) if isinstance(x0, torch.Tensor) else x0
    b = x1.to(work_dtype(x1)) if isinstance(x1, torch.Tensor) else x1
    grad = torch.is_grad_enabled() and any(isinstance(t, torch.Tensor) and t.requires_grad for t in (a, b))
    validate_pair(a, b, metric=metric, input_range=bounds, names=names, channels=channels, lenient=grad)
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype != b.dtype:
        common = torch.promote_types(a.dtype, b.dtype)
        a, b = a.to(common), b.to(common)
    return a, b



#: Integer dtypes read as images, with the value that stands for 1.0.
INTEGER_SCALES: dict[torch.dtype, float] = {torch.uint8: 255.0, torch.uint16: 65535.0}
#: The ``reduction`` options of the metric modules (``"none"``: one value per image).
REDUCTIONS = ("none", "mean", "sum")


def check_reduction(reduction: str, metric: str = "metric") -> str:
    """``reduction`` if it is one of :data:`REDUCTIONS`, else a ValueError naming it."""
    if reduction not in REDUCTIONS:
        raise MetricInputError(f"{metric}: reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
    return reduction


def reduce(d: torch.Tensor, reduction: str) -> torch.Tensor:
    """``d`` unchanged (``"none"``), or its mean or sum over everything (a 0-d tensor)."""
    if reduction == "mean":
        return d.mean()
    if reduction == "sum":
        return d.sum()
    return d


def check_constants(k1: float, k2: float, metric: str) -> tuple[float, float]:
    """SSIM's ``K1``, ``K2`` as floats, each in (0, 1) (else a ValueError naming it)."""
    out = []
    for name, k in (("k1", k1), ("k2", k2)):
        v = float(k)
        if not 0.0 < v < 1.0:
            raise MetricInputError(f"{metric}: {name} must satisfy 0 < {name} < 1, got {k!r}")
        out.append(v)
    return out[0], out[1]


def check_data_range(data_range: float | None, metric: str, allowed: bool) -> float | None:
    """A metric's ``data_range`` option: None, or a positive number where ``allowed``.

    Raises:
        ValueError: a number that is not > 0 (or a bool), or any value where not ``allowed``.
    """
    if data_range is None:
        return None
    if not allowed:
        raise MetricInputError(f"{metric}: data_range applies to RGB values only, not to Lab or the official flavour")
    if isinstance(data_range, bool) or not float(data_range) > 0:
        raise MetricInputError(f"{metric}: data_range must be a number > 0, got {data_range!r}")
    return float(data_range)


def work_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype statistics are accumulated in: float32 at least, float64 for float64 input."""
    return torch.promote_types(x.dtype, torch.float32) if x.is_floating_point() else torch.float32


def integer_scale(t: object, metric: str, name: str) -> float | None:
    """The scale of an integer image tensor (:data:`INTEGER_SCALES`).

    Returns:
        The value standing for 1.0, or None for a floating tensor or a non-tensor.

    Raises:
        ValueError: an integer (or bool) dtype of unknown scale, naming the argument.
    """
    if not isinstance(t, torch.Tensor) or t.is_floating_point():
        return None
    scale = INTEGER_SCALES.get(t.dtype)
    if scale is None:
        raise MetricInputError(
            f"{metric}: {name} has dtype {t.dtype}; integer images must be uint8 (read as value/255) "
            "or uint16 (value/65535); convert other dtypes to a floating tensor in input_range"
        )
    return scale


def _alpha_dropped(t: torch.Tensor, hi: float, metric: str, name: str, check: bool) -> torch.Tensor:
    """RGB of an RGBA batch by the alpha rule (module docstring): opaque alpha dropped."""
    if check:
        with torch.no_grad():
            alpha_min = float(t[:, 3].min())
        if not alpha_min >= hi - RANGE_TOLERANCE:
            raise MetricInputError(
                f"{metric}: {name} has 4 channels, read as RGBA, and its alpha channel is not fully "
                f"opaque (lowest alpha {alpha_min:.4g}, opaque = {hi:g}); composite the image on the "
                "background it is meant to be seen on and pass RGB"
            )
    return t[:, :3]


def accept_pair(
    x0: torch.Tensor, x1: torch.Tensor, *, metric: str, input_range: Range, channels: Sequence[int],
    raw_integers: bool = False, check: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Apply the input conventions of the module docstring to a pair.

    Args:
        x0: the first input as the user gave it.
        x1: the second input.
        metric: name used in messages.
        input_range: the metric's declared value range (integer images are mapped into it).
        channels: the channel counts the metric computes on.
        raw_integers: keep integer values as they are (the metric has an explicit data range).
        check: check the alpha rule (False for inputs valid by construction).

    Returns:
        ``(x0, x1, integer)``: floating tensors and whether the inputs were integer images.

    Raises:
        ValueError: an integer dtype of unknown scale, or RGBA input with transparent pixels.
    """
    lo, hi = input_range
    out: list[torch.Tensor] = []
    integer = False
    for t, n in zip((x0, x1), ("x0", "x1"), strict=True):
        scale = integer_scale(t, metric, n)
        if scale is not None:
            integer = True
            # value / scale first, then the affine map: for (-1, 1) this is bit-identical to the
            # official loader's (v / 255 − 0.5) / 0.5, so the *-official flavours re-quantise exactly
            t = t.to(torch.float32) if raw_integers else t.to(torch.float32) / scale * (hi - lo) + lo
            top = scale if raw_integers else hi
        else:
            top = hi
        if isinstance(t, torch.Tensor) and t.dim() == 4 and 3 in channels:
            c = t.shape[1]
            if c == 4 and 4 not in channels:
                t = _alpha_dropped(t, top, metric, n, check)
            elif c == 1 and 1 not in channels:
                t = t.expand(-1, 3, -1, -1)
        out.append(t)
    return out[0], out[1], integer
