"""The metric contract (bapps_toolkit.metrics.base), checked for EVERY registered name.

Parametrised over ``list_metrics()`` at collection time, so metrics added later are covered
without editing this file. Deep metrics (``lpips*``, ``pdl*``, ``dists``) are built on their seeded random
backbone (``backbone_weights="random"``) so the test runs offline; their numbers are then
uncalibrated, which the contract requires them to say.
"""
from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch

from bapps_toolkit import create_metric, list_metrics
from bapps_toolkit.metrics.base import UNCALIBRATED_TAG, Metric

NAMES = list_metrics()
DEEP_PREFIXES = ("lpips", "pdl", "dists")

#: Metrics that do not promise d(x, x) = 0 (none so far); listed here with a reason if added.
NOT_ZERO_ON_IDENTICAL: dict = {}


def make_test_metric(name: str, **options) -> Metric:
    """``create_metric(name, **options)``, adding ``backbone_weights="random"`` for deep metrics."""
    if name.startswith(DEEP_PREFIXES):
        options.setdefault("backbone_weights", "random")
    return create_metric(name, **options)


def _input_channels(m: Metric) -> Sequence[int]:
    # LPIPS keeps its tap channel list in ``channels`` and the accepted input counts in
    # ``channels_in`` (see bapps_toolkit/metrics/lpips.py). Grey is replicated for a metric
    # that takes RGB only (the input conventions of bapps_toolkit/metrics/_validate.py).
    ch = tuple(m.channels_in)
    return ch if 1 in ch or 3 not in ch else (1, *ch)


def _size(m: Metric, floor: int = 16) -> int:
    return max(int(m.min_size), floor)


def _pair(n: int, c: int, s: int, *, seed: int = 0, dtype=torch.float32, lo: float = -1.0, hi: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, c, s, s, generator=g, dtype=torch.float64)
    y = (x + 0.15 * torch.randn(n, c, s, s, generator=g, dtype=torch.float64)).clamp(0, 1)
    scale = hi - lo
    return (x * scale + lo).to(dtype), (y * scale + lo).to(dtype)


@pytest.fixture(scope="module", params=NAMES)
def named(request):
    """``(registered name, metric)``; one instance per name for the whole module."""
    return request.param, make_test_metric(request.param)


@pytest.fixture
def metric(named) -> Metric:
    return named[1]


def test_registry_has_the_issue_names():
    required = {"l2", "l2-lab", "psnr", "ssim", "ssim-lab", "ms-ssim"}
    assert required <= set(NAMES)


def test_class_attributes(metric):
    assert isinstance(metric, Metric)
    assert int(metric.min_size) >= 1
    assert 3 in _input_channels(metric)
    assert isinstance(metric.supports_spatial, bool)
    if metric.calibrated:
        assert metric.label == metric.name
    else:
        assert UNCALIBRATED_TAG in metric.label and metric.calibration_note


def test_shape_nonnegative_and_zero_on_identical(metric):
    s = _size(metric)
    x, y = _pair(3, 3, s)
    with torch.no_grad():
        d = metric(x, y)
        d_same = metric(x, x.clone())
    assert d.shape == (3,)
    assert d.dtype == x.dtype
    assert torch.isfinite(d).all()
    assert (d >= 0).all(), d
    name = metric.name
    if name not in NOT_ZERO_ON_IDENTICAL:
        assert torch.allclose(d_same, torch.zeros(3), atol=1e-6), d_same
    assert (d > d_same).all()


def test_spatial_map(named):
    registered, metric = named
    s = _size(metric)
    x, y = _pair(2, 3, s, seed=1)
    if not metric.supports_spatial:
        with pytest.raises(ValueError, match="spatial"):
            make_test_metric(registered, spatial=True)
        return
    m = make_test_metric(registered, spatial=True)
    with torch.no_grad():
        d_map = m(x, y)
    assert d_map.dim() == 4 and d_map.shape[:2] == (2, 1), d_map.shape
    assert torch.isfinite(d_map).all()


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n.startswith(DEEP_PREFIXES) else n for n in NAMES
             if not n.endswith("-official")]
)
def test_gradcheck_float64(name):
    """Differentiable everywhere: gradcheck in float64 on the smallest accepted input, N = 1
    (``fast_mode``: a random directional derivative, so deep nets stay cheap; deep metrics are
    marked slow all the same)."""
    m = make_test_metric(name).double()
    s = max(int(m.min_size), 4)
    x, y = _pair(1, 3, s, seed=2, dtype=torch.float64, lo=-0.9, hi=0.9)
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: m(t, y), (x,), eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=True)


@pytest.mark.parametrize("name", [n for n in NAMES if n.endswith("-official")])
def test_official_metrics_have_finite_surrogate_gradients(name):
    """The ``*-official`` metrics quantise to uint8 (or round to float32): their gradients are
    straight-through surrogates (gradcheck would fail by design), finite and not all zero."""
    m = make_test_metric(name).double()
    x, y = _pair(1, 3, max(int(m.min_size), 4), seed=2, dtype=torch.float64, lo=-0.9, hi=0.9)
    x.requires_grad_(True)
    m(x, y).sum().backward()
    assert torch.isfinite(x.grad).all() and bool(x.grad.abs().sum() > 0)


def _set(t: torch.Tensor, index: tuple, value: float) -> torch.Tensor:
    t = t.clone()
    t[index] = value
    return t


_BAD_INPUTS = {
    "3d": lambda x, y: (x[0], y[0]),
    "shapes": lambda x, y: (x, torch.cat([y, y])),
    "channels2": lambda x, y: (x[:, :2], y[:, :2]),
    "channels4": lambda x, y: (torch.cat([x, x[:, :1]], 1), torch.cat([y, y[:, :1]], 1)),
    "nan": lambda x, y: (_set(x, (0, 0, 0, 0), float("nan")), y),
    "inf": lambda x, y: (x, _set(y, (0, 1, 1, 1), float("inf"))),
    "range": lambda x, y: (x * 2.0, y),  # [-2, 2] outside the default (-1, 1)
    # integer images other than uint8/uint16 have no known scale
    "int64": lambda x, y: (((x + 1) * 127.5).to(torch.int64), ((y + 1) * 127.5).to(torch.int64)),
    "empty": lambda x, y: (x[:0], y[:0]),
}


@pytest.mark.parametrize(
    "case",
    ["3d", "shapes", "channels2", "channels4", "nan", "inf", "range", "int64", "small", "empty"],
)
def test_bad_inputs_raise_value_error(metric, case):
    s = _size(metric)
    x, y = _pair(1, 3, s)
    if case.startswith("channels") and int(case[-1]) in _input_channels(metric):
        pytest.skip(f"{metric.name} computes per channel on {case[-1]} channels")
    if case == "small":
        if metric.min_size <= 1:
            pytest.skip(f"{metric.name} accepts 1×1 images")
        t = metric.min_size - 1
        x, y = x[..., :t, :t], y[..., :t, :t]
    else:
        x, y = _BAD_INPUTS[case](x, y)
    with pytest.raises(ValueError):
        metric(x, y)


def test_uint8_input_reads_value_over_255(metric):
    """uint8 images are read as value/255 and mapped into ``input_range`` (piq, torchmetrics and
    scikit-image read 8-bit images so), for every metric."""
    s = _size(metric)
    x, y = _pair(2, 3, s, seed=4)
    x8, y8 = ((x + 1) * 127.5).round().to(torch.uint8), ((y + 1) * 127.5).round().to(torch.uint8)
    with torch.no_grad():
        d8 = metric(x8, y8)
        df = metric(x8.float() / 255 * 2 - 1, y8.float() / 255 * 2 - 1)
    torch.testing.assert_close(d8, df, rtol=1e-5, atol=1e-6)


def test_one_channel_input(metric):
    s = _size(metric)
    x, y = _pair(2, 1, s, seed=3)
    if 1 in _input_channels(metric):
        with torch.no_grad():
            d = metric(x, y)
        assert d.shape == (2,) and torch.isfinite(d).all() and (d >= 0).all()
    else:
        with pytest.raises(ValueError, match="channel"):
            metric(x, y)


def test_deterministic_in_train_mode(metric):
    s = _size(metric)
    x, y = _pair(2, 3, s, seed=4)
    with torch.no_grad():
        metric.train()
        try:
            d_train = metric(x, y)
        finally:
            metric.eval()
        d_eval = metric(x, y)
        d_again = metric(x, y)
    assert torch.equal(d_eval, d_again)
    assert torch.allclose(d_train, d_eval, rtol=1e-6, atol=0)


def test_input_range_zero_one_equivalent(named):
    name, metric = named
    m01 = make_test_metric(name, input_range=(0, 1))
    s = _size(metric)
    x, y = _pair(2, 3, s, seed=5, dtype=torch.float64)
    m64 = metric.double()
    try:
        with torch.no_grad():
            d = m64(x, y)
            d01 = m01.double()((x + 1) / 2, (y + 1) / 2)
    finally:
        metric.float()
    assert torch.allclose(d, d01, rtol=1e-6, atol=1e-9), (d, d01)
    with pytest.raises(ValueError, match="input_range"):
        m01.double()(x, y)  # [-1, 1] data is out of range for (0, 1)
