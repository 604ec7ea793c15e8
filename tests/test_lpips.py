"""LPIPS: parity with the official ``lpips`` package, weights handling, internals.

Reference numbers: ``tests/reference/lpips.npz``, recorded by ``make_lpips_reference.py`` from
``lpips`` 0.1.4 in float64 on the seeded random backbones of ``random_backbone.py`` with the
package's official linear weights.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bapps_toolkit.errors import DownloadError, WeightsError
from bapps_toolkit.metrics import create_metric, hub, list_metrics
from bapps_toolkit.metrics import lpips as lp
from bapps_toolkit.metrics.lpips import (
    LPIPS,
    find_installed_lpips_weights,
    load_official_lin_weights,
    official_lin_state_dict,
    shipped_lin_weights,
)

REF = Path(__file__).parent / "reference"
NETS = ("alex", "vgg", "squeeze")
SIZES = ("64x64", "67x93", "33x47")


@pytest.fixture(scope="module")
def ref():
    return dict(np.load(REF / "lpips.npz"))


def _random_backbone_module():
    spec = importlib.util.spec_from_file_location("random_backbone", REF / "random_backbone.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_STATES: dict = {}


def ref_state(net):
    if net not in _STATES:
        state = _random_backbone_module().random_backbone_state_dict(net)
        _STATES[net] = {k: torch.from_numpy(v) for k, v in state.items()}
    return _STATES[net]


def to_input(u8: np.ndarray, dtype=torch.float32) -> torch.Tensor:
    return torch.from_numpy(u8.astype(np.float64) / 127.5 - 1.0).to(dtype)


def model(net, version="0.1", lin=True, **kw) -> LPIPS:
    return LPIPS(net=net, version=version, lpips=lin, backbone_weights=ref_state(net), **kw).eval()


def _check(key, got, expected, tol):
    rel = np.abs(got.numpy() - expected) / np.abs(expected)
    assert got.shape == expected.shape
    assert rel.max() <= tol, (key, float(rel.max()))


@pytest.mark.parametrize("net", NETS)
@pytest.mark.parametrize("version", ["0.1", "0.0"])
def test_parity_with_official_lpips(ref, net, version):
    """float32 within 1e-5 of the official float64 numbers at every size; float64 within 1e-10
    at the smallest size. Lin and baseline share one backbone pass per input (their features are
    the same); the baseline's forward is checked in test_baseline_forward."""
    m = model(net, version, True)
    base = model(net, version, False)
    base.backbone = m.backbone
    for dtype, sizes, tol in ((torch.float32, SIZES, 1e-5), (torch.float64, ("33x47",), 1e-10)):
        m.to(dtype)
        base.to(dtype)
        for hw in sizes:
            x0, x1 = to_input(ref["x0_" + hw], dtype), to_input(ref["x1_" + hw], dtype)
            with torch.no_grad():
                f0, f1 = m.features(x0), m.features(x1)
                d_lin = m.distance_from_features(f0, f1)
                d_base = base.distance_from_features(f0, f1)
                if hw == "33x47" and dtype == torch.float32:  # the forward path gives the same
                    assert torch.allclose(m(x0, x1), d_lin, rtol=1e-5, atol=0)
            assert d_lin.dtype == dtype
            _check(f"{net} v{version} lin {hw} {dtype}", d_lin, ref[f"d_{net}_v{version}_lin_{hw}"], tol)
            _check(f"{net} v{version} base {hw} {dtype}", d_base, ref[f"d_{net}_v{version}_base_{hw}"], tol)


@pytest.mark.parametrize("case", ["alex_v0.1_lin_67x93", "squeeze_v0.0_base_33x47", "vgg_v0.1_lin_64x64"])
def test_spatial_map_parity(ref, case):
    net, version, kind, hw = case.split("_")
    expected = ref["map_" + case]
    n = expected.shape[0]
    m = model(net, version[1:], kind == "lin", spatial=True).double()
    with torch.no_grad():
        out = m(to_input(ref["x0_" + hw][:n], torch.float64), to_input(ref["x1_" + hw][:n], torch.float64))
    h, w = map(int, hw.split("x"))
    assert out.shape == (n, 1, h, w)
    assert np.max(np.abs(out.numpy() - expected)) <= 1e-10 * np.max(np.abs(expected))


def test_baseline_forward(ref):
    m = model("squeeze", "0.0", False)
    x0, x1 = to_input(ref["x0_33x47"]), to_input(ref["x1_33x47"])
    with torch.no_grad():
        d = m(x0, x1)
    _check("squeeze v0.0 base forward", d, ref["d_squeeze_v0.0_base_33x47"], 1e-5)


def test_distances_basic_properties(ref):
    m = model("alex")
    x0, x1 = to_input(ref["x0_33x47"]), to_input(ref["x1_33x47"])
    with torch.no_grad():
        assert torch.all(m(x0, x0) == 0)
        assert torch.allclose(m(x0, x1), m(x1, x0), rtol=1e-6, atol=0)
        d_train = m.train()(x0, x1)
        d_eval = m.eval()(x0, x1)
    assert torch.equal(d_train, d_eval)  # no dropout on the inference path


def test_pair_distances_single_backbone_pass(ref):
    m = model("squeeze")
    calls = []
    m.backbone.register_forward_hook(lambda mod, inp, out: calls.append(inp[0].shape[0]))
    r, p0, p1 = (to_input(ref[k + "_33x47"][:4]) for k in ("x0", "x1", "x0"))
    p1 = torch.flip(p1, dims=[3])
    with torch.no_grad():
        d0, d1 = m.pair_distances(r, p0, p1)
        assert calls == [12]
        e0, e1 = m(r, p0), m(r, p1)
    assert torch.allclose(d0, e0, rtol=1e-5, atol=0) and torch.allclose(d1, e1, rtol=1e-5, atol=0)
    with pytest.raises(ValueError, match="same shape"):
        m.pair_distances(r, p0[:2], p1)


def test_features_and_distance_from_features(ref):
    m = model("vgg", "0.0")
    x0, x1 = to_input(ref["x0_33x47"]), to_input(ref["x1_33x47"])
    with torch.no_grad():
        f0, f1 = m.features(x0), m.features(x1)
        assert [f.shape[1] for f in f0] == m.channels == [64, 128, 256, 512, 512]
        for f in f0:  # unit norm over channels wherever the activation is not all zero
            norms = f.pow(2).sum(1).sqrt()
            alive = norms > 0
            assert torch.allclose(norms[alive], torch.ones_like(norms[alive]), atol=1e-5)
        d = m.distance_from_features(f0, f1)
        assert torch.allclose(d, m(x0, x1), rtol=1e-5, atol=0)
        mp = m.distance_from_features(f0, f1, size=(33, 47))
        assert mp.shape == (x0.shape[0], 1, 33, 47)
    assert isinstance(m.lins, torch.nn.ModuleList) and len(m.lins) == 5
    for lin, c in zip(m.lins, m.channels, strict=False):
        assert isinstance(lin, torch.nn.Conv2d) and lin.bias is None and lin.weight.shape == (1, c, 1, 1)
    assert isinstance(m.scaling, torch.nn.Identity)
    assert isinstance(model("alex").scaling, lp.ScalingLayer)
    assert not any(p.requires_grad for p in m.backbone.parameters())
    assert all(p.requires_grad for p in m.lins.parameters())


def test_one_channel_and_input_range(ref):
    m = model("alex")
    x0, x1 = to_input(ref["x0_64x64"][:3]), to_input(ref["x1_64x64"][:3])
    g0, g1 = x0[:, :1], x1[:, :1]
    with torch.no_grad():
        assert torch.allclose(m(g0, g1), m(g0.repeat(1, 3, 1, 1), g1.repeat(1, 3, 1, 1)), rtol=1e-6)
        m01 = model("alex", input_range=(0, 1))
        assert torch.allclose(m01((x0 + 1) / 2, (x1 + 1) / 2), m(x0, x1), rtol=1e-5)
    with pytest.raises(ValueError, match="outside the declared"):
        m01(x0, x1)


def test_bad_input_and_min_size():
    m = model("alex")
    with pytest.raises(ValueError, match="too small"):
        m(torch.zeros(1, 3, 30, 64), torch.zeros(1, 3, 30, 64))
    assert m(torch.zeros(1, 3, 31, 31), torch.zeros(1, 3, 31, 31)).shape == (1,)
    with pytest.raises(ValueError, match="channels"):
        m(torch.zeros(1, 2, 64, 64), torch.zeros(1, 2, 64, 64))
    assert model("vgg").min_size == 16 and model("squeeze").min_size == 17


def test_gradients_flow_to_input():
    m = model("squeeze").double()
    x0 = (torch.rand(1, 3, 17, 18, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    x1 = torch.rand(1, 3, 17, 18, dtype=torch.float64) * 2 - 1
    assert torch.autograd.gradcheck(lambda a: m(a, x1), (x0,), fast_mode=True)


def test_random_backbone_is_labelled_and_warns():
    with pytest.warns(UserWarning, match="UNCALIBRATED"):
        m = create_metric("lpips-vgg", backbone_weights="random")
    assert not m.calibrated
    assert "UNCALIBRATED" in m.label and "random backbone" in m.label
    assert m.label.startswith("lpips-vgg")
    with pytest.warns(UserWarning):
        again = create_metric("lpips-vgg", backbone_weights="random")
    assert torch.equal(m.backbone.features[0].weight, again.backbone.features[0].weight)
    assert model("vgg").calibrated and model("vgg").label == "lpips-vgg"


def test_no_weights_and_no_cache_explains(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("BAPPS_WEIGHTS_BASE_URL", raising=False)

    def offline(*args, **kwargs):
        raise DownloadError("network unreachable (test)")

    monkeypatch.setattr(hub, "download_file", offline)
    with pytest.raises(WeightsError) as exc:
        create_metric("lpips-alex")
    msg = str(exc.value)
    assert "alexnet-owt-7be5be79.pth" in msg and str(tmp_path / "torch") in msg
    assert "backbone_weights" in msg and "random" in msg


def test_backbone_from_hub_cache(tmp_path, monkeypatch):
    # A file in the cache is used (its name's hash prefix is checked by hub; we fake a matching name)
    monkeypatch.setattr(hub, "backbone_weights_file", lambda net, **kw: _saved(tmp_path, net))
    m = create_metric("lpips-squeeze")
    assert m.calibrated
    assert torch.equal(m.backbone.features[0].weight, ref_state("squeeze")["features.0.weight"])


def _saved(tmp_path, net):
    p = tmp_path / f"{net}.pth"
    torch.save(ref_state(net), p)
    return p


def test_registry_names_and_fixed_options():
    names = set(list_metrics())
    for net in NETS:
        assert {f"lpips-{net}", f"lpips-{net}-baseline"} <= names
    m = create_metric("lpips-squeeze-baseline", backbone_weights=ref_state("squeeze"), version="0.0")
    assert not m.lpips and len(m.lins) == 0 and m.version == "0.0"
    assert m.name == "lpips-squeeze-baseline-v0.0"
    with pytest.raises(ValueError, match="fixed by the metric name"):
        create_metric("lpips-alex", net="vgg", backbone_weights="random")
    with pytest.raises(ValueError, match="version"):
        LPIPS(net="alex", version="0.2", backbone_weights=ref_state("alex"))
    with pytest.raises(ValueError, match="lin_weights"):
        LPIPS(net="alex", lpips=False, lin_weights="x.pth", backbone_weights=ref_state("alex"))


@pytest.mark.parametrize("version", ["0.1", "0.0"])
@pytest.mark.parametrize("net", NETS)
def test_shipped_official_lin_weights(net, version):
    path = shipped_lin_weights(net, version)
    assert path.is_file()
    state = load_official_lin_weights(path)
    channels = LPIPS(net=net, version=version, backbone_weights=ref_state(net)).channels
    assert list(state) == [f"lin{k}.model.1.weight" for k in range(len(channels))]
    assert [tuple(v.shape) for v in state.values()] == [(1, c, 1, 1) for c in channels]
    assert all(float(v.min()) >= 0 for v in state.values())  # trained with the clamp


def test_official_layout_round_trip(tmp_path):
    m = model("alex")
    sd = official_lin_state_dict(m)
    assert list(sd) == [f"lin{k}.model.1.weight" for k in range(5)]
    sd = {k: v * 2 for k, v in sd.items()}
    torch.save(sd, tmp_path / "mine.pth")
    m2 = model("alex", lin_weights=tmp_path / "mine.pth")
    for a, b in zip(m.lins, m2.lins, strict=False):
        assert torch.equal(a.weight * 2, b.weight)
    # no-dropout layout (lin{k}.model.0.weight) is accepted too
    torch.save({k.replace("model.1", "model.0"): v for k, v in sd.items()}, tmp_path / "nodrop.pth")
    m3 = model("alex", lin_weights=str(tmp_path / "nodrop.pth"))
    assert torch.equal(m3.lins[4].weight, m2.lins[4].weight)


def test_lin_weights_errors(tmp_path):
    with pytest.raises(WeightsError, match="another net"):
        model("alex", lin_weights=shipped_lin_weights("vgg"))
    with pytest.raises(WeightsError, match="another net"):
        model("alex", lin_weights=shipped_lin_weights("squeeze"))
    bad = tmp_path / "full.pth"
    torch.save({**load_official_lin_weights(shipped_lin_weights("alex")),
                "net.slice1.0.weight": torch.zeros(64, 3, 11, 11)}, bad)
    with pytest.raises(WeightsError, match=r"full\.pth.*backbone weights"):
        model("alex", lin_weights=bad)
    with pytest.raises(WeightsError, match="absent.pth"):
        model("alex", lin_weights=tmp_path / "absent.pth")


def _fake_lpips_package(root: Path) -> Path:
    pkg = root / "lpips"
    (pkg / "weights" / "v0.1").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('the lpips package must not be imported')\n")
    weights = pkg / "weights" / "v0.1" / "alex.pth"
    torch.save({k: v * 3 for k, v in load_official_lin_weights(shipped_lin_weights("alex")).items()}, weights)
    return weights


def test_find_installed_lpips_weights_without_importing(tmp_path, monkeypatch):
    monkeypatch.delitem(sys.modules, "lpips", raising=False)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "lpips" else real_find_spec(name, *a))
    assert find_installed_lpips_weights("alex", "0.1") is None
    monkeypatch.setattr(importlib.util, "find_spec", real_find_spec)

    weights = _fake_lpips_package(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    assert find_installed_lpips_weights("alex", "0.1") == weights
    assert find_installed_lpips_weights("alex", "0.0") is None
    assert "lpips" not in sys.modules

    # With the shipped files gone, the installed package's weights are used; with neither, an error.
    from bapps_toolkit.metrics import lpips_weights
    monkeypatch.setattr(lpips_weights, "WEIGHTS_DIR", tmp_path / "trimmed")
    m = model("alex")
    assert torch.equal(m.lins[0].weight, load_official_lin_weights(weights)["lin0.model.1.weight"])
    with pytest.raises(WeightsError, match="reinstall"):
        model("alex", version="0.0")
    assert "lpips" not in sys.modules


@pytest.mark.parametrize("net", NETS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_inference_path_equals_features_and_head(net, dtype):
    """Without autograd the distances come from the fused inference path; they equal the
    features() + distance_from_features() composition (the path with gradients) up to rounding."""
    m = create_metric(f"lpips-{net}", backbone_weights="random").to(dtype)
    g = torch.Generator().manual_seed(1)
    ref, p0, p1 = (torch.rand(3, 3, 48, 40, generator=g, dtype=dtype) * 2 - 1 for _ in range(3))
    p0[0] = ref[0]                                   # one identical pair: distance exactly 0 on both paths
    with torch.no_grad():
        f = m.features(torch.cat([ref, p0, p1]))
        want0 = m.distance_from_features([t[:3] for t in f], [t[3:6] for t in f])
        want1 = m.distance_from_features([t[:3] for t in f], [t[6:] for t in f])
        got0, got1 = m.pair_distances(ref, p0, p1)
        one = m(ref, p1)
    tol = dict(rtol=1e-5, atol=1e-9) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-15)
    for got, want in ((got0, want0), (got1, want1), (one, want1)):
        torch.testing.assert_close(got, want.to(dtype), **tol)
    assert float(got0[0]) == 0.0
    x = ref.clone().requires_grad_(True)             # with gradients: the plain path, finite gradients
    m(x, p1).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


class _SharedTaps(torch.nn.Module):
    """A researcher's backbone whose taps share storage: the scaled input itself, and one tensor
    returned twice (views of one another)."""

    def forward(self, x):
        t = torch.nn.functional.avg_pool2d(x, 2)
        return [x, t, t[:, :2]]


class _CopiedTaps(_SharedTaps):
    """The taps of :class:`_SharedTaps`, each in its own storage."""

    def forward(self, x):
        return [t.clone() for t in super().forward(x)]


def test_shared_taps_give_the_distances_of_copied_taps():
    """Taps that are views (of the input or of each other) are not written to: the distances equal
    those of the same taps copied, and the input is left as it was."""
    m = create_metric("lpips-alex-baseline", backbone_weights="random")
    m.backbone = _SharedTaps()
    m.channels = [3, 3, 2]
    g = torch.Generator().manual_seed(2)
    ref, p0, p1 = (torch.rand(2, 3, 32, 32, generator=g) * 2 - 1 for _ in range(3))
    with torch.no_grad():
        f = m.features(torch.cat([ref, p0, p1]))
        want = [m.distance_from_features([t[:2] for t in f], [t[k:k + 2] for t in f]) for k in (2, 4)]
        got = m.pair_distances(ref, p0, p1)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-9)
    copy = ref.clone()
    with torch.no_grad():
        one = m(ref, p0)
        m.backbone = _CopiedTaps()
        torch.testing.assert_close(m(ref, p0), one, rtol=0, atol=0)
    assert torch.equal(ref, copy)
