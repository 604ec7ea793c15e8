"""Backbones: torchvision's parameter layout, the official LPIPS taps, weight loading errors.

Expected names/shapes come from torchvision itself (recorded by
``tests/reference/make_lpips_reference.py`` into ``torchvision_param_shapes.json``); tap sizes
are worked out by hand from the layer arithmetic.
"""
from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from bapps_toolkit.errors import WeightsError
from bapps_toolkit.metrics.backbones import (
    LPIPS_CHANNELS,
    MIN_SIZE,
    VGG16_RELUS,
    Backbone,
    build_backbone,
    load_backbone_state_dict,
    random_init_,
    resolve_backbone,
)

REF = Path(__file__).parent / "reference"
SHAPES = json.loads((REF / "torchvision_param_shapes.json").read_text())
NETS = ("alex", "vgg", "squeeze")


def _random_backbone_module():
    spec = importlib.util.spec_from_file_location("random_backbone", REF / "random_backbone.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def torchvision_state(net: str, with_classifier: bool = True) -> dict:
    """A torchvision-layout state dict: random features, placeholder classifier entries."""
    sd = {k: torch.from_numpy(v) for k, v in _random_backbone_module().random_backbone_state_dict(net).items()}
    if with_classifier:
        # classifier.* is ignored by the loader whatever it holds (real ones are hundreds of MB)
        sd.update({name: torch.zeros(1) for name, _ in SHAPES[net]["classifier"]})
    return sd


@pytest.mark.parametrize("net", NETS)
def test_parameter_names_and_shapes_match_torchvision(net):
    b = build_backbone(net)
    ours = [[k, list(v.shape)] for k, v in b.state_dict().items()]
    assert ours == SHAPES[net]["features"]


def test_squeezenet_fire_names():
    names = set(build_backbone("squeeze").state_dict())
    for part in ("squeeze", "expand1x1", "expand3x3"):
        assert f"features.3.{part}.weight" in names and f"features.12.{part}.bias" in names


# Tap spatial sizes for a 64×64 input, by hand:
#  alex: conv11/4 p2 → 15; pool3/2 → 7; pool3/2 → 3 (three 3×3 p1 convs keep 3)
#  vgg: 64, 32, 16, 8, 4 (a 2×2 pool before each block)
#  squeeze: conv3/2 → 31; ceil-pool3/2 → 15; → 7; → 3 (the last three Fires keep 3)
TAP_SIZES_64 = {
    "alex": [15, 7, 3, 3, 3],
    "vgg": [64, 32, 16, 8, 4],
    "squeeze": [31, 15, 7, 3, 3, 3, 3],
}


@pytest.mark.parametrize("net", NETS)
def test_taps_channels_and_sizes(net):
    b = build_backbone(net).eval()
    assert b.channels == list(LPIPS_CHANNELS[net])
    with torch.no_grad():
        out = b(torch.zeros(2, 3, 64, 64))
    assert [o.shape[1] for o in out] == list(LPIPS_CHANNELS[net])
    assert [o.shape[2] for o in out] == TAP_SIZES_64[net]
    assert [o.shape[3] for o in out] == TAP_SIZES_64[net]


@pytest.mark.parametrize("net", NETS)
def test_min_size_is_the_smallest_input_with_all_taps(net):
    b = build_backbone(net).eval()
    s = MIN_SIZE[net]
    with torch.no_grad():
        out = b(torch.zeros(1, 3, s, s + 5))
        assert all(o.numel() > 0 for o in out)
        try:
            out = b(torch.zeros(1, 3, s - 1, s + 5))
        except RuntimeError:
            return  # a layer refused the too-small input
        assert any(o.numel() == 0 for o in out)


def test_taps_are_relu_outputs():
    # The tap after a ReLU (or a Fire, whose outputs are ReLUs) is non-negative.
    torch.manual_seed(0)
    for net in NETS:
        b = random_init_(build_backbone(net))
        with torch.no_grad():
            out = b(torch.randn(1, 3, 40, 40))
        assert all(float(o.min()) >= 0 for o in out)
        assert all(float(o.max()) > 0 for o in out)


def test_vgg_relu_names():
    b = build_backbone("vgg")
    for name, idx in VGG16_RELUS.items():
        assert isinstance(b.features[idx], torch.nn.ReLU), name
        assert isinstance(b.features[idx - 1], torch.nn.Conv2d), name
    custom = Backbone("vgg", taps=[VGG16_RELUS["relu1_1"], VGG16_RELUS["relu3_1"]])
    assert custom.channels == [64, 256]
    with pytest.raises(ValueError):
        Backbone("vgg", taps=[8, 3])
    with pytest.raises(ValueError):
        Backbone("vgg", taps=[31])
    with pytest.raises(ValueError):
        Backbone("resnet")


@pytest.mark.parametrize("net", NETS)
def test_torchvision_layout_loads_strictly(net):
    sd = torchvision_state(net)
    b = load_backbone_state_dict(build_backbone(net), sd, source="test")
    for k, v in b.state_dict().items():
        assert torch.equal(v, sd[k]), k


def test_file_of_another_net_is_refused(tmp_path):
    path = tmp_path / "vgg16-weights.pth"
    torch.save(torchvision_state("vgg", with_classifier=False), path)
    with pytest.raises(WeightsError) as exc:
        resolve_backbone("alex", path)
    msg = str(exc.value)
    assert str(path) in msg and "features.0.weight" in msg and "alexnet" in msg
    assert "another network" in msg


def test_missing_key_and_shape_mismatch_are_named():
    sd = torchvision_state("squeeze", with_classifier=False)
    del sd["features.7.expand3x3.bias"]
    with pytest.raises(WeightsError, match=r"missing keys features\.7\.expand3x3\.bias"):
        load_backbone_state_dict(build_backbone("squeeze"), sd, source="my.pth")
    sd = torchvision_state("alex", with_classifier=False)
    sd["features.10.weight"] = torch.zeros(256, 256, 5, 5)
    with pytest.raises(WeightsError, match=r"my\.pth.*features\.10\.weight: file \(256, 256, 5, 5\)"):
        load_backbone_state_dict(build_backbone("alex"), sd, source="my.pth")
    sd = torchvision_state("alex", with_classifier=False)
    sd["module.extra"] = torch.zeros(1)
    with pytest.raises(WeightsError, match="unexpected keys module.extra"):
        load_backbone_state_dict(build_backbone("alex"), sd, source="my.pth")


def test_backbone_from_file_path_and_missing_file(tmp_path):
    path = tmp_path / "alex.pth"
    sd = torchvision_state("alex")
    torch.save(sd, path)
    b, calibrated, note = resolve_backbone("alex", str(path))
    assert calibrated and note == ""
    assert torch.equal(b.features[0].weight, sd["features.0.weight"])
    with pytest.raises(WeightsError, match="nope.pth"):
        resolve_backbone("alex", tmp_path / "nope.pth")


def test_random_init_is_seeded_documented_and_leaves_global_rng():
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = random_init_(build_backbone("alex"), seed=0)
    assert torch.equal(torch.rand(3), expected_next)  # global RNG untouched
    b = random_init_(build_backbone("alex"), seed=0)
    c = random_init_(build_backbone("alex"), seed=1)
    for k in a.state_dict():
        assert torch.equal(a.state_dict()[k], b.state_dict()[k])
    assert not torch.equal(a.features[0].weight, c.features[0].weight)
    w = a.features[3].weight
    # He normal: std sqrt(2 / fan_in), fan_in = 64·5·5
    assert abs(float(w.detach().std()) / np.sqrt(2 / 1600) - 1) < 0.02
    assert float(a.features[3].bias.detach().abs().max()) == 0


def test_random_backbone_warns_and_reports_uncalibrated():
    with pytest.warns(UserWarning, match="UNCALIBRATED"):
        _, calibrated, note = resolve_backbone("squeeze", "random")
    assert not calibrated and note == "random backbone"


def test_bad_backbone_weights_type():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="backbone_weights"):
            resolve_backbone("alex", 3.5)
