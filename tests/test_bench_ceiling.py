"""benchmarks/ceiling.py (``bench_eval.py --ceiling``): its conv stack is the LPIPS AlexNet up to
the last tap, and its tiled set is a valid packed file of the asked sizes with unique stems."""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import ceiling  # noqa: E402

from bapps_toolkit.data import find_sets, load_2afc, load_jnd  # noqa: E402
from bapps_toolkit.metrics import create_metric  # noqa: E402


def test_conv_stack_is_the_lpips_alexnet_up_to_its_last_tap():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metric = create_metric("lpips-alex", backbone_weights="random")
    x = torch.randn(2, 3, 64, 64)
    net = ceiling.alexnet_to_relu5()
    convs = [m for m in metric.backbone.modules() if isinstance(m, torch.nn.Conv2d)]
    mine = [m for m in net if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        for a, b in zip(mine, convs, strict=True):
            a.weight.copy_(b.weight)
            a.bias.copy_(b.bias)
        torch.testing.assert_close(net(x), metric.backbone(x)[-1])


def test_tiled_set_has_the_sizes_and_unique_stems(mini_h5, tmp_path):
    sizes = {"2afc/val/cnn": 650, "jnd/val/cnn": 7}
    out = ceiling.tile_h5(mini_h5, tmp_path / "tiled.h5", sizes)
    assert find_sets(out) == list(sizes)
    two = load_2afc(out, ["2afc/val/cnn"])[0]
    orig = load_2afc(mini_h5, ["2afc/val/cnn"])[0]
    m = len(orig.stems)
    assert len(two.stems) == 650 and len(set(two.stems)) == 650 and two.synthetic
    np.testing.assert_array_equal(np.asarray(two.ref[m:2 * m]), np.asarray(orig.ref))
    np.testing.assert_array_equal(np.asarray(two.judge[:m]), np.asarray(orig.judge))
    assert len(load_jnd(out, ["jnd/val/cnn"])[0].stems) == 7
    assert ceiling.tile_h5(mini_h5, out, sizes) == out  # kept when the sizes match
