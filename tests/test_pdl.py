"""Projected Distribution Loss: per-channel W1 against scipy, the metric against a hand-built
pipeline (backbone taps + scipy), options, gradients, single backbone pass."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import wasserstein_distance

import bapps_toolkit.metrics.pdl as pdl_module
from bapps_toolkit.metrics import create_metric
from bapps_toolkit.metrics.backbones import VGG16_RELUS, Backbone, random_init_
from bapps_toolkit.metrics.functional.sorting import sort_with_order, sorted_values
from bapps_toolkit.metrics.pdl import PDL, projected_distribution_loss, wasserstein_1d

pytestmark = pytest.mark.filterwarnings("ignore:.*UNCALIBRATED:UserWarning")


def test_wasserstein_1d_matches_scipy():
    rng = np.random.default_rng(7)
    a = rng.normal(0, 1, size=(4, 3, 50))
    b = rng.gamma(2.0, 1.5, size=(4, 3, 50))
    b[0, 0, :10] = 0.0  # ties, as after a ReLU
    a[1, 2, :] = 0.0
    got = wasserstein_1d(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    expected = np.array([[wasserstein_distance(a[i, j], b[i, j]) for j in range(3)] for i in range(4)])
    assert got.shape == (4, 3)
    assert np.allclose(got, expected, rtol=1e-12, atol=1e-14)
    # hand case: {0, 1, 2} vs {1, 2, 6}: sorted differences 1, 1, 4 → 2
    assert float(wasserstein_1d(torch.tensor([2.0, 0.0, 1.0]), torch.tensor([6.0, 1.0, 2.0]))) == 2.0


def test_wasserstein_1d_bad_shapes():
    with pytest.raises(ValueError, match="same shape"):
        wasserstein_1d(torch.zeros(3, 4), torch.zeros(3, 5))
    with pytest.raises(ValueError, match="at least one sample"):
        wasserstein_1d(torch.zeros(3, 0), torch.zeros(3, 0))


def test_projected_distribution_loss_is_channel_mean_of_scipy():
    rng = np.random.default_rng(8)
    fx = np.maximum(rng.normal(size=(2, 5, 7, 9)), 0)
    fy = np.maximum(rng.normal(0.3, 1.2, size=(2, 5, 7, 9)), 0)
    got = projected_distribution_loss(torch.from_numpy(fx), torch.from_numpy(fy)).numpy()
    expected = [np.mean([wasserstein_distance(fx[n, c].ravel(), fy[n, c].ravel()) for c in range(5)]) for n in range(2)]
    assert np.allclose(got, expected, rtol=1e-12)
    # a permutation of pixels within each channel does not change the distributions
    perm = rng.permutation(63)
    fz = fx.reshape(2, 5, 63)[:, :, perm].reshape(2, 5, 7, 9)
    assert np.allclose(projected_distribution_loss(torch.from_numpy(fx), torch.from_numpy(fz)).numpy(), 0, atol=1e-15)


def _scipy_pdl(x0, x1, layers, pixel_weight=0.0, seed=0):
    """PDL built by hand: [-1, 1] → [0, 1] → ImageNet normalisation → VGG taps → scipy W1."""
    bb = random_init_(Backbone("vgg", taps=[VGG16_RELUS[i] for i in layers]), seed).double()
    mean = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float64).view(1, 3, 1, 1)
    u0, u1 = (x0 + 1) / 2, (x1 + 1) / 2
    with torch.no_grad():
        f0, f1 = bb((u0 - mean) / std), bb((u1 - mean) / std)
    out = []
    for n in range(x0.shape[0]):
        total = 0.0
        for a, b in zip(f0, f1, strict=False):
            total += np.mean([wasserstein_distance(a[n, c].ravel().numpy(), b[n, c].ravel().numpy())
                              for c in range(a.shape[1])])
        if pixel_weight:
            total += pixel_weight * np.mean([wasserstein_distance(u0[n, c].ravel().numpy(), u1[n, c].ravel().numpy())
                                             for c in range(3)])
        out.append(total)
    return np.array(out)


def _pair(n=2, h=20, w=23, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(n, 3, h, w, generator=g, dtype=torch.float64) * 2 - 1
    x1 = (x0 + 0.3 * torch.randn(n, 3, h, w, generator=g, dtype=torch.float64)).clamp(-1, 1)
    return x0.to(dtype), x1.to(dtype)


def test_pdl_metric_matches_hand_built_pipeline():
    layers = ("relu1_2", "relu2_2", "relu3_3")
    m = PDL(layers=layers, backbone_weights="random", pixel_weight=0.5).double()
    x0, x1 = _pair()
    with torch.no_grad():
        got = m(x0, x1).numpy()
    assert np.allclose(got, _scipy_pdl(x0, x1, layers, pixel_weight=0.5), rtol=1e-10)


def test_pdl_defaults_and_registry():
    with pytest.warns(UserWarning, match="UNCALIBRATED"):
        m = create_metric("pdl-vgg", backbone_weights="random")
    assert m.layers == ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
    assert m.feature_norm == "none" and m.pixel_weight == 0.0 and m.min_size == 16
    assert "UNCALIBRATED" in m.label and m.label.startswith("pdl-vgg")
    x0, x1 = _pair(h=16, w=17, dtype=torch.float32)
    with torch.no_grad():
        d = m(x0, x1)
        assert d.shape == (2,) and bool((d > 0).all())
        assert torch.all(m(x0, x0) == 0)
        assert torch.allclose(m(x1, x0), d, rtol=1e-6)
    with pytest.raises(ValueError, match="too small"):
        m(x0[..., :15, :], x1[..., :15, :])


def test_pdl_options():
    x0, x1 = _pair(h=12, w=12)
    a = PDL(layers=["relu2_2", "relu1_1"], layer_weights=[2.0, 1.0], backbone_weights="random").double()
    assert a.layers == ("relu1_1", "relu2_2") and a.layer_weights == [1.0, 2.0] and a.min_size == 2
    b1 = PDL(layers=["relu1_1"], backbone_weights="random").double()
    b2 = PDL(layers=["relu2_2"], backbone_weights="random").double()
    with torch.no_grad():
        assert torch.allclose(a(x0, x1), b1(x0, x1) + 2 * b2(x0, x1), rtol=1e-12)
        unit = PDL(layers=["relu1_1"], feature_norm="unit", backbone_weights="random").double()
        assert not torch.allclose(unit(x0, x1), b1(x0, x1))
        pix = PDL(layers=["relu1_1"], pixel_weight=1.0, backbone_weights="random").double()
        u0, u1 = (x0 + 1) / 2, (x1 + 1) / 2
        assert torch.allclose(pix(x0, x1) - b1(x0, x1), projected_distribution_loss(u0, u1), rtol=1e-10)
        # one channel is repeated to three; input_range=(0, 1) reads the same images
        assert torch.allclose(b1(x0[:, :1], x1[:, :1]), b1(x0[:, :1].repeat(1, 3, 1, 1), x1[:, :1].repeat(1, 3, 1, 1)))
        b01 = PDL(layers=["relu1_1"], backbone_weights="random", input_range=(0, 1)).double()
        assert torch.allclose(b01(u0, u1), b1(x0, x1), rtol=1e-12)
    for bad in (dict(layers=["relu9_9"]), dict(layers=[]), dict(layers=["relu1_1", "relu1_1"]),
                dict(feature_norm="l1"), dict(pixel_weight=-1), dict(layer_weights=[1.0, 2.0]),
                dict(spatial=True)):
        with pytest.raises(ValueError):
            PDL(backbone_weights="random", **bad)


def test_pdl_gradcheck_and_pair_distances():
    m = PDL(layers=["relu1_2", "relu2_2"], pixel_weight=1.0, backbone_weights="random").double()
    x0, x1 = _pair(n=1, h=6, w=7)
    x0.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: m(a, x1), (x0,), fast_mode=True)

    calls = []
    m.backbone.register_forward_hook(lambda mod, inp, out: calls.append(inp[0].shape[0]))
    r, p0 = _pair(n=3, h=9, w=10, seed=1)
    p1 = torch.flip(p0, dims=[2])
    with torch.no_grad():
        d0, d1 = m.pair_distances(r, p0, p1)
        assert calls == [9]
        assert torch.allclose(d0, m(r, p0), rtol=1e-10) and torch.allclose(d1, m(r, p1), rtol=1e-10)


def _torch_sort_values(t):
    return torch.sort(t, dim=-1).values


@pytest.mark.parametrize("requires_grad", [True, False])
def test_sorted_values_equal_torch_sort(requires_grad):
    g = torch.Generator().manual_seed(3)
    t = torch.rand(3, 5, 257, generator=g).sub_(0.3).clamp_(min=0)  # many exact zeros, as after a ReLU
    t[0, 0, :4] = torch.tensor([-0.0, float("inf"), 0.0, -0.0])
    t[1, 1] = 0.5  # a row of ties
    t.requires_grad_(requires_grad)
    got = sorted_values(t)
    assert torch.equal(got, torch.sort(t, dim=-1).values)
    # with a negative value the sort takes the generic path; the values are still torch.sort's
    neg = (t.detach() - 0.25).requires_grad_(requires_grad)
    assert torch.equal(sorted_values(neg), torch.sort(neg, dim=-1).values)
    assert torch.equal(sorted_values(t.detach().double()), torch.sort(t.detach().double(), dim=-1).values)


@pytest.mark.parametrize("shift", [0.0, -0.5])
def test_sorted_values_gradient_is_torch_sorts(shift):
    g = torch.Generator().manual_seed(4)
    base = torch.rand(4, 6, 333, generator=g) + shift  # distinct values: no tie to order differently
    w = torch.randn(4, 6, 333, generator=g)
    grads, second = [], []
    for fn in (sorted_values, _torch_sort_values):
        t = base.clone().requires_grad_(True)
        (fn(t) * w).sum().backward()
        grads.append(t.grad)
        # double backward (a gradient penalty): the backward's own graph
        t = base.clone().requires_grad_(True)
        (g,) = torch.autograd.grad((fn(t) ** 2 * w).sum(), t, create_graph=True)
        (g * w).sum().backward()
        second.append(t.grad)
    assert torch.equal(grads[0], grads[1])
    assert torch.equal(second[0], second[1])


def test_sort_with_order():
    rng = np.random.default_rng(5)
    x = np.abs(rng.normal(size=(7, 1001))).astype(np.float32)
    x[0, :50] = 0.0
    x[1, :3] = -0.0
    values, order = sort_with_order(x)
    assert np.array_equal(values, np.sort(x, axis=-1))
    assert np.array_equal(np.take_along_axis(x, order.astype(np.int64), axis=-1), values)
    assert all(np.array_equal(np.sort(row), np.arange(1001)) for row in order)
    with pytest.raises(ValueError, match="float32"):
        sort_with_order(x.astype(np.float64))


def test_pdl_float32_value_and_gradient_as_with_torch_sort(monkeypatch):
    """The fast CPU sort changes no bit of PDL or of its gradient against torch.sort."""
    m = PDL(pixel_weight=0.5, backbone_weights="random")
    g = torch.Generator().manual_seed(6)
    # no clamping: tied pixel values could take their gradients in either order
    target = torch.rand(3, 3, 32, 32, generator=g) * 1.8 - 0.9
    start = torch.tanh(target + 0.2 * torch.randn(3, 3, 32, 32, generator=g))
    results = []
    for sort in (None, _torch_sort_values):
        if sort is not None:
            monkeypatch.setattr(pdl_module, "sorted_values", sort)
        for free in ((True, False), (True, True)):
            x0, x1 = start.clone().requires_grad_(free[0]), target.clone().requires_grad_(free[1])
            d = m(x0, x1)
            d.sum().backward()
            results.append((d.detach(), x0.grad, x1.grad))
    for new, ref in zip(results[:2], results[2:], strict=True):
        assert torch.equal(new[0], ref[0]) and torch.equal(new[1], ref[1])
        assert (new[2] is None and ref[2] is None) or torch.equal(new[2], ref[2])
