"""Every registered metric as a loss (bapps_toolkit.losses): optimisation from a noisy start in
both input ranges without range errors, gradients to the input only, reductions, combinations."""
from __future__ import annotations

import math

import pytest
import torch

import bapps_toolkit as bt
from bapps_toolkit.losses import (
    CombinedLoss,
    L1Loss,
    LPIPSLoss,
    MetricLoss,
    MSSSIMLoss,
    SSIMLoss,
    list_losses,
    parse_loss_spec,
)
from bapps_toolkit.metrics import Metric, register_metric
from bapps_toolkit.metrics.base import unregister_metric

pytestmark = pytest.mark.filterwarnings("ignore:.*UNCALIBRATED:UserWarning")

NAMES = bt.list_metrics()
DEEP = ("lpips", "pdl", "dists")
RANGES = [(-1.0, 1.0), (0.0, 1.0)]


def make(name: str, **kw):
    if name.startswith(DEEP):
        kw.setdefault("backbone_weights", "random")
    return bt.create_loss(name, **kw)


def _target(n=2, size=32, lo=-1.0, hi=1.0, seed=0) -> torch.Tensor:
    """Smooth-ish images (blurred noise) spanning most of the range."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size // 4, size // 4, generator=g)
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = x + 0.05 * torch.randn(n, 3, size, size, generator=g)
    x = (x - x.amin()) / (x.amax() - x.amin()) * 0.9 + 0.05
    return x * (hi - lo) + lo


SLOW = ("lpips", "pdl", "dists", "fsim")


@pytest.mark.parametrize("rng", RANGES, ids=["sym", "unit"])
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n.startswith(SLOW) else n for n in NAMES])
def test_adam_lowers_every_loss_without_range_errors(name, rng):
    lo, hi = rng
    loss = make(name, input_range=rng)
    target = _target(lo=lo, hi=hi)
    g = torch.Generator().manual_seed(1)
    # noisy start: well outside the declared range in places
    x = (target + 0.25 * (hi - lo) * torch.randn(target.shape, generator=g)).requires_grad_(True)
    assert float(x.detach().amin()) < lo and float(x.detach().amax()) > hi
    with pytest.raises(ValueError, match="outside the declared"):
        loss.metric(x.detach(), target)  # the metric itself still checks its range
    opt = torch.optim.Adam([x], lr=0.01 * (hi - lo))
    first = None
    for _ in range(25 if name.startswith(SLOW) else 50):  # the network losses fall faster per step
        opt.zero_grad()
        v = loss(x, target)
        assert v.dim() == 0 and math.isfinite(float(v.detach()))
        first = float(v.detach()) if first is None else first
        v.backward()
        assert torch.isfinite(x.grad).all()
        opt.step()
    with torch.no_grad():
        last = float(loss(x, target))
    assert last < 0.9 * first, (name, first, last)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_the_input_never_the_networks(name):
    loss = make(name)
    params = list(loss.parameters())
    assert all(not p.requires_grad for p in params)
    loss.train()
    assert not loss.metric.training  # stays in eval mode inside a model put in train()
    target = _target()
    x = (target + 0.1 * torch.randn(target.shape, generator=torch.Generator().manual_seed(2))).requires_grad_(True)
    loss(x, target).backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert all(p.grad is None for p in params)
    # a target that requires grad gets a gradient too (symmetric use)
    t = target.clone().requires_grad_(True)
    loss(x.detach(), t).backward()
    assert t.grad is not None and float(t.grad.abs().sum()) > 0


@pytest.mark.parametrize("rng", RANGES, ids=["sym", "unit"])
@pytest.mark.parametrize("spec", ["l1+0.1*lpips-alex", "0.5*pdl-vgg+ms-ssim"])
def test_combinations_keep_networks_frozen(spec, rng):
    deep = next(t for t in parse_loss_spec(spec) if t.startswith(DEEP))
    loss = bt.create_loss(spec, input_range=rng, per_term={deep: {"backbone_weights": "random"}})
    params = list(loss.parameters())
    assert params and all(not p.requires_grad for p in params)
    loss.train()
    assert all(not m.training for m in loss.modules() if isinstance(m, Metric))
    lo, hi = rng
    target = _target(lo=lo, hi=hi)
    x = (target + 0.3 * (hi - lo) * torch.randn(target.shape, generator=torch.Generator().manual_seed(6)))
    x.requires_grad_(True)  # partly outside the range: no error
    loss(x, target).backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert all(p.grad is None for p in params)


@pytest.mark.parametrize("name", NAMES + ["l1", "l1+0.5*ssim"])
def test_reductions_agree(name):
    target = _target(n=3)
    x = target + 0.1 * torch.randn(target.shape, generator=torch.Generator().manual_seed(3))
    loss = make(name, reduction="none")
    with torch.no_grad():
        none = loss(x, target)
        loss.reduction = "mean"
        mean = loss(x, target)
        loss.reduction = "sum"
        total = loss(x, target)
    assert none.shape == (3,)
    assert torch.allclose(mean, none.mean(), rtol=1e-5) and torch.allclose(total, none.sum(), rtol=1e-5)


@pytest.mark.parametrize("name", ["ssim", "ms-ssim", "lpips-alex", "pdl-vgg", "psnr"])
def test_loss_equals_metric_in_range(name):
    target = _target()
    x = (target + 0.1 * torch.randn(target.shape, generator=torch.Generator().manual_seed(4))).clamp(-1, 1)
    loss = make(name, reduction="none")
    metric = bt.create_metric(name, **({"backbone_weights": "random"} if name.startswith(DEEP) else {}))
    xg = x.clone().requires_grad_(True)
    got = loss(xg, target)  # deep metrics: target pass without autograd
    assert torch.allclose(got.detach(), metric(x, target), rtol=1e-4, atol=1e-7)


def test_bad_inputs_still_raise():
    loss = make("ssim")
    t = _target()
    bad = t.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf"):
        loss(bad, t)
    bad[0, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="NaN or Inf"):
        loss(t, bad)
    with pytest.raises(ValueError, match="same shape"):
        loss(t, t[:, :, :20])
    with pytest.raises(ValueError, match="too small"):
        loss(t[..., :8, :8], t[..., :8, :8])
    with pytest.raises(ValueError, match="4-D"):
        loss(t[0], t[0])
    with pytest.raises(ValueError, match="reduction"):
        bt.create_loss("l2", reduction="avg")
    with pytest.raises(ValueError, match="spatial"):
        bt.create_loss("ssim", spatial=True)


def test_l1_and_named_classes():
    t = _target(lo=0.0, hi=1.0)
    x = t + 0.1
    assert torch.allclose(L1Loss(input_range=(0, 1))(x, t), torch.tensor(0.1), atol=1e-6)
    # same images on [-1, 1]: l1 is measured on [0, 1] in both cases
    assert torch.allclose(L1Loss()(x * 2 - 1, t * 2 - 1), torch.tensor(0.1), atol=1e-6)
    assert isinstance(bt.create_loss("l1"), L1Loss)
    assert SSIMLoss().name == "ssim" and MSSSIMLoss().name == "ms-ssim"
    lp = LPIPSLoss(net="vgg", backbone_weights="random")
    assert lp.name == "lpips-vgg" and not lp.calibrated and "UNCALIBRATED" in lp.label
    assert "l1" in list_losses() and set(NAMES) <= set(list_losses())


def test_spec_parsing_and_combination():
    assert parse_loss_spec("l1+0.1*lpips-vgg") == {"l1": 1.0, "lpips-vgg": 0.1}
    assert parse_loss_spec(" L1 + 2e-1 * ms-ssim ") == {"l1": 1.0, "ms-ssim": 0.2}
    for bad, msg in [("", "non-empty"), ("l1+", "cannot read"), ("0.1*", "cannot read"), ("l1+l1", "twice"),
                     ("nope", "unknown loss"), ("-1*l1", "cannot read"), ("0*l1", "> 0"),
                     ("__import__('os')", "cannot read"), ("1e999*l1", "finite")]:
        with pytest.raises(ValueError, match=msg):
            parse_loss_spec(bad)
    combo = bt.create_loss("l1+0.1*lpips-alex", per_term={"lpips-alex": {"backbone_weights": "random"}})
    assert isinstance(combo, CombinedLoss) and combo.name == "l1+0.1*lpips-alex"
    assert "UNCALIBRATED" in combo.label and not combo.calibrated
    t = _target()
    x = t + 0.1 * torch.randn(t.shape, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        parts = combo.terms(x, t)
        want = parts["l1"] + 0.1 * parts["lpips-alex"]
        assert torch.allclose(combo(x, t), want, rtol=1e-6)
    api = CombinedLoss({"l1": 1.0, "ssim": 0.5})
    with torch.no_grad():
        assert torch.allclose(api(x, t), make("l1")(x, t) + 0.5 * make("ssim")(x, t), rtol=1e-6)
    with pytest.raises(ValueError, match="ambiguous"):
        bt.create_loss("l1+ssim", win_size=7)
    with pytest.raises(ValueError, match="not terms"):
        bt.create_loss("l1+ssim", per_term={"psnr": {}})


class _Plugin(Metric):
    name = "test-plugin-abs"

    def _distance(self, x0, x1):
        return (self.unit(x0) - self.unit(x1)).abs().flatten(1).amax(dim=1)


def test_plugin_metric_is_a_loss_too():
    register_metric("test-plugin-abs", lambda **o: _Plugin(**o), "max abs difference (test plugin)")
    try:
        loss = bt.create_loss("0.5*test-plugin-abs+l2")
        t = _target()
        x = (t + 1.5).requires_grad_(True)  # far outside the range: no error
        v = loss(x, t)
        v.backward()
        assert x.grad is not None and isinstance(loss.losses["test-plugin-abs"], MetricLoss)
    finally:
        unregister_metric("test-plugin-abs")
