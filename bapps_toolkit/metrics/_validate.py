"""The one input validator every metric uses (piq-style).

All checks raise :class:`ValueError` whose message names the argument and what is wrong.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

Range = tuple[float, float]

#: Slack allowed on the declared range, so that float round-off (e.g. 1.0000001) is not an error.
RANGE_TOLERANCE = 1e-4


def check_range_option(input_range: Sequence[float], name: str = "input_range") -> Range:
    """Validate an ``input_range`` option and return it as a float pair."""
    try:
        lo, hi = (float(v) for v in input_range)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (low, high), got {input_range!r}") from None
    if not lo < hi:
        raise ValueError(f"{name} must satisfy low < high, got {input_range!r}")
    return lo, hi


def validate_pair(
    x0: torch.Tensor,
    x1: torch.Tensor,
    *,
    metric: str,
    input_range: Range,
    channels: Sequence[int] = (1, 3),
    min_size: int = 1,
    names: tuple[str, str] = ("x0", "x1"),
) -> None:
    """Check a pair of image batches before a metric touches them.

    Requirements: both are floating-point ``torch.Tensor`` s of shape ``[N, C, H, W]`` (N ≥ 1),
    identical shapes, ``C`` in ``channels``, ``min(H, W) >= min_size``, finite values, values
    inside ``input_range`` (± :data:`RANGE_TOLERANCE`).
    """
    for t, n in zip((x0, x1), names, strict=False):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{metric}: {n} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(
                f"{metric}: {n} must be 4-D [N, C, H, W], got {t.dim()}-D shape {tuple(t.shape)}"
            )
        if not t.is_floating_point():
            raise ValueError(
                f"{metric}: {n} must be a floating-point tensor (got {t.dtype}); "
                f"convert uint8 images with x.float() / 255 and pass input_range=(0, 1), "
                f"or scale them to [-1, 1]"
            )
        if t.shape[0] == 0:
            raise ValueError(f"{metric}: {n} is an empty batch (N = 0)")
    if x0.shape != x1.shape:
        raise ValueError(
            f"{metric}: {names[0]} and {names[1]} must have the same shape, "
            f"got {tuple(x0.shape)} and {tuple(x1.shape)}"
        )
    c, h, w = x0.shape[1:]
    if c not in channels:
        allowed = " or ".join(str(v) for v in channels)
        raise ValueError(f"{metric}: expected {allowed} channels, got C = {c} (shape {tuple(x0.shape)})")
    if min(h, w) < min_size:
        raise ValueError(
            f"{metric}: images of {h}×{w} are too small; this metric needs height and width "
            f">= {min_size}"
        )
    lo, hi = input_range
    for t, n in zip((x0, x1), names, strict=False):
        with torch.no_grad():
            # One pass: NaN propagates into min/max and ±Inf lies outside any finite range, so
            # the finiteness count is only computed when something is wrong.
            tmin_t, tmax_t = torch.aminmax(t)
            tmin, tmax = float(tmin_t), float(tmax_t)
            if not (math.isfinite(tmin) and math.isfinite(tmax)):
                bad = int((~torch.isfinite(t)).sum())
                if bad:
                    raise ValueError(f"{metric}: {n} contains {bad} NaN or Inf value(s)")
        if tmin < lo - RANGE_TOLERANCE or tmax > hi + RANGE_TOLERANCE:
            raise ValueError(
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
    names: tuple[str, str] = ("x0", "x1"),
) -> None:
    """:func:`validate_pair` for a functional entry point: values in ``[0, data_range]`` (any
    finite values when ``data_range`` is None), after checking ``data_range > 0``."""
    if data_range is not None and not float(data_range) > 0:
        raise ValueError(f"{metric}: data_range must be > 0, got {data_range!r}")
    bounds = (0.0, float(data_range)) if data_range is not None else (-math.inf, math.inf)
    validate_pair(x0, x1, metric=metric, input_range=bounds, names=names)

