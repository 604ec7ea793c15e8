"""MS-SSIM ``pooling``: Wang 2003's product (default) and ``msssim.m``'s ``'wtd_sum'``, against
per-scale terms and both poolings recorded in ``tests/reference/msssim_pooling.npz``
(``make_msssim_pooling_reference.py``: pytorch-msssim's per-scale statistics with float64 taps,
``msssim.m``'s symmetric 2×2 downsampling)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bapps_toolkit import create_metric
from bapps_toolkit.metrics.ms_ssim import ms_ssim

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "reference"))

from inputs import make_pairs  # noqa: E402
from make_msssim_pooling_reference import SIZES  # noqa: E402

REF = HERE / "reference" / "msssim_pooling.npz"


@pytest.fixture(scope="module")
def recorded():
    with np.load(REF) as z:
        ref = {k: z[k] for k in z.files}
    pairs = make_pairs(SIZES, seed=3)
    assert [p.key for p in pairs] == [str(k) for k in ref["keys"]]
    ok = [p.sha256 == str(d) for p, d in zip(pairs, ref["sha256"], strict=True)]
    if not all(ok):
        bad = [p for p, good in zip(pairs, ok, strict=True) if not good]
        if any(p.distortion != "jpeg" for p in bad):
            raise AssertionError("regenerated MS-SSIM inputs differ from the recording")
        pytest.skip("JPEG inputs differ from the recording (Pillow/libjpeg version)")
    return pairs, ref


def _unit(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img.transpose(2, 0, 1).copy()).double()[None] / 255.0


@pytest.mark.parametrize("pooling, column", [("product", "product"), ("weighted_sum", "wtd_sum")])
def test_pooling_matches_msssim_m(recorded, pooling, column):
    """Tolerance 1e-10: the same float64 statistics, [0, 1] with data range 1 instead of 255."""
    pairs, ref = recorded
    got = np.array([float(ms_ssim(_unit(p.ref), _unit(p.dist), data_range=1.0, scales=5, pooling=pooling))
                    for p in pairs])
    np.testing.assert_allclose(got, ref[column], rtol=0, atol=1e-10)
    m = create_metric("ms-ssim", pooling=pooling, input_range=(0, 1))
    dist = np.array([float(m(_unit(p.ref), _unit(p.dist))) for p in pairs[:2]])
    np.testing.assert_allclose(dist, 1.0 - ref[column][:2], rtol=0, atol=1e-10)


def test_weighted_sum_normalises_the_weights(recorded):
    """The recorded un-normalised sum differs by ~1e-4: the normalisation is visible at 1e-10."""
    pairs, ref = recorded
    p = pairs[0]
    got = float(ms_ssim(_unit(p.ref), _unit(p.dist), data_range=1.0, scales=5, pooling="weighted_sum"))
    assert abs(got - ref["wtd_sum_unnormalised"][0]) > 1e-6
    assert abs(got - ref["wtd_sum"][0]) < 1e-10


def test_pooling_default_is_product_and_checked():
    x = torch.rand(1, 3, 64, 64, dtype=torch.float64)
    y = (x + 0.05 * torch.randn_like(x)).clamp(0, 1)
    assert create_metric("ms-ssim").pooling == "product"
    assert float(ms_ssim(x, y, data_range=1.0)) == float(ms_ssim(x, y, data_range=1.0, pooling="product"))
    # 3 scales on 64x64: both poolings use the renormalised first three weights
    w = np.array([0.0448, 0.2856, 0.3001])
    assert float(ms_ssim(x, x, data_range=1.0, pooling="weighted_sum")) == pytest.approx(1.0, abs=1e-12)
    assert w.sum() < 1
    with pytest.raises(ValueError, match="pooling must be one of product, weighted_sum"):
        create_metric("ms-ssim", pooling="sum")
