"""Property-based tests (hypothesis) of the metric input checks, for EVERY registered metric.

Each example draws a pair of inputs from a wide space — tensors or not, 3/4/5-D, batch 0–2,
1–5 channels, sizes around the metric's ``min_size``, float32 or integer/bool dtypes,
mismatched shapes, values inside or outside the declared ``input_range``, NaN and ±Inf at
random places — and decides *independently of the validator* whether the pair is valid
(the contract in ``bapps_toolkit/metrics/base.py``: floating or uint8 ``[N, C, H, W]``, N ≥ 1,
equal shapes, C accepted (grey also where RGB is; four channels where only RGB is are RGBA and
valid only with an opaque alpha, never the case for random values), ``min(H, W) >= min_size``,
finite, inside ``input_range`` ± 1e-4).

* invalid → ``ValueError`` (never another exception type);
* valid → a finite distance of shape ``[N]``, ≥ 0, and 0 (|d| ≤ 1e-5) for identical inputs.

Other floating dtypes (float64, float16, bfloat16) pass the validator, so each metric must
either compute a sound distance from them or refuse them with a ``ValueError``
(:func:`test_other_float_dtypes`); a combination that fails another way is listed in
:data:`KNOWN` (``xfail(strict=True)``) with the fix it needs.

Deep metrics (``lpips*``, ``pdl*``) run on their seeded random backbone
(``backbone_weights="random"``: UNCALIBRATED numbers, which is all the checks need).
"""
from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bapps_toolkit import create_metric, list_metrics
from bapps_toolkit.metrics.base import Metric

NAMES = list_metrics()
DEEP = ("lpips", "pdl", "dists")
#: Metrics that do not promise d(x, x) = 0 (none at present), with the reason.
NOT_ZERO_ON_IDENTICAL: dict[str, str] = {}
RANGE_TOL = 1e-4

_CACHE: dict[str, Metric] = {}


def metric_for(name: str) -> Metric:
    if name not in _CACHE:
        opts = {"backbone_weights": "random"} if name.startswith(DEEP) else {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _CACHE[name] = create_metric(name, **opts)
    return _CACHE[name]


def accepted_channels(m: Metric):
    ch = tuple(getattr(m, "channels_in", None) or m.channels)
    return ch if 1 in ch or 3 not in ch else (1, *ch)  # grey is replicated where RGB is taken


OTHER_DTYPES = [torch.uint8, torch.int64, torch.bool]


def _poison(draw, kind: str, t: torch.Tensor, lo: float, hi: float) -> None:
    """Put one NaN, one infinity or one out-of-range value into ``t`` (in place)."""
    flat = t.view(-1)
    i = draw(st.integers(0, flat.numel() - 1))
    if kind == "nan":
        flat[i] = float("nan")
    elif kind == "inf":
        flat[i] = draw(st.sampled_from([float("inf"), float("-inf")]))
    else:
        off = draw(st.floats(10 * RANGE_TOL, 1e3))
        flat[i] = draw(st.sampled_from([hi + off, lo - off]))


def _as_dtype(x: torch.Tensor, dtype: torch.dtype, lo: float, hi: float) -> torch.Tensor:
    if dtype.is_floating_point:
        return x.to(dtype)
    if dtype == torch.bool:
        return x > (lo + hi) / 2
    return x.round().to(dtype)


@st.composite
def cases(draw, m: Metric):
    """``(x0, x1, valid)`` where ``valid`` is decided from the contract, not the validator."""
    lo, hi = m.input_range
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    kind = draw(st.sampled_from(["valid"] * 5 + ["dtype", "ndim", "batch0", "channels", "small",
                                                  "mismatch", "nan", "inf", "range", "not tensor"]))
    n = draw(st.integers(1, 2))
    c = draw(st.sampled_from(accepted_channels(m)))
    s_min = max(int(m.min_size), 1)
    h = draw(st.integers(s_min, s_min + 6))
    w = draw(st.integers(s_min, s_min + 6))
    dtype = torch.float32
    shape = [n, c, h, w]
    valid = True
    if kind == "dtype":
        dtype = draw(st.sampled_from(OTHER_DTYPES))
        valid = dtype == torch.uint8  # read as value/255; other integer dtypes have no known scale
    elif kind == "ndim":
        shape = draw(st.sampled_from([shape[1:], [1] + shape, shape[:2] + [h * w]]))
        valid = False
    elif kind == "batch0":
        shape[0] = 0
        valid = False
    elif kind == "channels":
        shape[1] = draw(st.sampled_from([k for k in (1, 2, 3, 4, 5) if k not in accepted_channels(m)]))
        valid = False
    elif kind == "small":
        if s_min > 1:
            shape[draw(st.sampled_from([2, 3]))] = draw(st.integers(1, s_min - 1))
            valid = False
    x0 = (torch.rand(shape, generator=g, dtype=torch.float64) * (hi - lo) + lo)
    x1 = (x0 + 0.2 * (hi - lo) * torch.randn(shape, generator=g, dtype=torch.float64)).clamp(lo, hi)
    if kind == "mismatch":
        grow = draw(st.sampled_from([0, 2, 3]))
        extra = list(shape)
        extra[grow] += 1
        x1 = torch.rand(extra, generator=g, dtype=torch.float64) * (hi - lo) + lo
        valid = False
    if kind in ("nan", "inf", "range"):
        _poison(draw, kind, x0 if draw(st.sampled_from(["x0", "x1"])) == "x0" else x1, lo, hi)
        valid = False
    x0, x1 = _as_dtype(x0, dtype, lo, hi), _as_dtype(x1, dtype, lo, hi)
    if kind == "not tensor":
        x0 = draw(st.sampled_from([x0.numpy(), x0.tolist(), None, 0.5]))
        valid = False
    return x0, x1, valid


def _check(m: Metric, x0, x1, valid: bool) -> None:
    if not valid:
        with pytest.raises(ValueError):
            with torch.no_grad():
                m(x0, x1)
        return
    with torch.no_grad():
        d = m(x0, x1)
        d_same = m(x0, x0.clone())
    n = x0.shape[0]
    assert isinstance(d, torch.Tensor) and tuple(d.shape) == (n,), (tuple(d.shape), n)
    assert torch.isfinite(d).all(), d
    assert (d >= 0).all(), d
    if m.name not in NOT_ZERO_ON_IDENTICAL:
        tol = 1e-5 if x0.dtype in (torch.float32, torch.float64) else 1e-2
        assert torch.isfinite(d_same).all() and (d_same.abs() <= tol).all(), d_same


@pytest.mark.parametrize("name", NAMES)
def test_fuzzed_inputs(name):
    m = metric_for(name)
    examples = 8 if name.startswith(DEEP) or name.startswith("fsim") else 30

    @settings(max_examples=examples, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(cases(m))
    def run(case):
        _check(m, *case)

    run()


#: (metric, dtype) pairs known to fail the dtype check, with the fix they need (none at present;
#: the fuzz test found float64 into lpips/pdl and float16 into psnr/l2-lab, all since fixed).
KNOWN: dict[tuple, str] = {}


def _dtype_cases():
    for name in NAMES:
        for dt in ("float64", "float16", "bfloat16"):
            marks = [pytest.mark.xfail(strict=True, reason=KNOWN[(name, dt)])] if (name, dt) in KNOWN else []
            yield pytest.param(name, dt, marks=marks, id=f"{name}-{dt}")


@pytest.mark.parametrize("name,dtype", list(_dtype_cases()))
def test_other_float_dtypes(name, dtype):
    """Sound distance or ValueError for float64/float16/bfloat16 input, never another error."""
    m = metric_for(name)
    s = max(int(m.min_size), 16)
    g = torch.Generator().manual_seed(5)
    x0 = torch.rand(2, 3, s, s, generator=g) * 2 - 1
    x1 = (x0 + 0.3 * torch.randn(2, 3, s, s, generator=g)).clamp(-1, 1)
    dt = getattr(torch, dtype)
    try:
        with torch.no_grad():
            d = m(x0.to(dt), x1.to(dt))
            d_same = m(x0.to(dt), x0.to(dt))
    except ValueError:
        return
    assert tuple(d.shape) == (2,)
    assert torch.isfinite(d).all() and (d >= 0).all(), d
    assert torch.isfinite(d_same).all() and (d_same.abs() <= 1e-2).all(), d_same
