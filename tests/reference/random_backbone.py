"""Seeded random backbones in torchvision's layout, shared by the reference script and the tests.

The LPIPS parity test needs a backbone both implementations can load without ImageNet weights
(too big to commit, and not downloadable in CI). This module draws one from
``numpy.random.default_rng(seed)`` — whose stream is stable across numpy versions — in the
parameter order recorded from torchvision in ``torchvision_param_shapes.json``:

* weights ~ Normal(0, sqrt(2 / fan_in)) (He init), so activations neither vanish nor explode
  through VGG16's 13 convolutions;
* biases ~ Uniform(-0.02, 0.05), small and mostly positive, so few spatial positions are dead.

Everything is float32, as torchvision's published files.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHAPES_FILE = HERE / "torchvision_param_shapes.json"

#: Seed per backbone.
SEEDS: dict[str, int] = {"alex": 101, "vgg": 102, "squeeze": 103}


def feature_shapes(net: str) -> list[tuple[str, tuple[int, ...]]]:
    """``[(name, shape), …]`` of torchvision's ``features.*`` parameters, in torchvision's order."""
    with open(SHAPES_FILE, encoding="utf-8") as fh:
        data = json.load(fh)
    return [(name, tuple(shape)) for name, shape in data[net]["features"]]


def random_backbone_state_dict(net: str, seed: int | None = None) -> dict[str, np.ndarray]:
    """Torchvision-layout ``features`` state dict of float32 numpy arrays, drawn from ``seed``."""
    rng = np.random.default_rng(SEEDS[net] if seed is None else seed)
    out: dict[str, np.ndarray] = {}
    for name, shape in feature_shapes(net):
        if name.endswith(".weight"):
            fan_in = int(np.prod(shape[1:]))
            out[name] = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape).astype(np.float32)
        else:
            out[name] = rng.uniform(-0.02, 0.05, size=shape).astype(np.float32)
    return out
