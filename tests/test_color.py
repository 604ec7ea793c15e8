"""Colour conversions against scikit-image's rgb2lab (recorded in tests/reference/classic.npz)
and hand-computed values."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bapps_toolkit.metrics.functional.color import (
    quantize_official,
    rgb_to_gray,
    rgb_to_lab,
    rgb_to_xyz,
    rgb_to_yiq,
    srgb_to_linear,
)

REF = Path(__file__).resolve().parent / "reference" / "classic.npz"


@pytest.fixture(scope="module")
def ref():
    with np.load(REF) as z:
        return {k: z[k] for k in z.files}


def _as_image(rgb_k3: np.ndarray, dtype) -> torch.Tensor:
    """[K, 3] → [1, 3, K, 1]."""
    return torch.from_numpy(rgb_k3.T.copy()).to(dtype)[None, :, :, None]


@pytest.mark.parametrize("dtype,atol", [(torch.float64, 1e-9), (torch.float32, 1e-4)])
def test_lab_matches_skimage_on_test_colours(ref, dtype, atol):
    lab = rgb_to_lab(_as_image(ref["lab_rgb"], dtype))[0, :, :, 0].T.double().numpy()
    err = np.abs(lab - ref["lab_ref"]).max()
    assert err < atol, f"max |Lab - skimage| = {err:.3g}"


@pytest.mark.parametrize("dtype,atol", [(torch.float64, 1e-9), (torch.float32, 1e-4)])
def test_lab_matches_skimage_on_photo(ref, dtype, atol):
    import sys

    sys.path.insert(0, str(REF.parent))
    from inputs import make_pairs

    pairs = make_pairs(((64, 64), (97, 83)), seed=0)
    photo = pairs[3]
    assert photo.key == str(ref["lab_photo_key"])
    x = torch.from_numpy(photo.ref.transpose(2, 0, 1).copy()).to(dtype)[None] / 255.0
    lab = rgb_to_lab(x)[0].permute(1, 2, 0).double().numpy()
    assert np.abs(lab - ref["lab_photo"]).max() < atol


def test_lab_hand_values():
    # white → L = 100, a = b = 0 (up to the matrix rows' sums vs the D65 white)
    white = rgb_to_lab(torch.ones(1, 3, 1, 1, dtype=torch.float64)).flatten()
    assert abs(white[0].item() - 100.0) < 1e-3 and abs(white[1].item()) < 0.01 and abs(white[2].item()) < 0.01
    black = rgb_to_lab(torch.zeros(1, 3, 1, 1, dtype=torch.float64)).flatten()
    assert torch.allclose(black, torch.zeros(3, dtype=torch.float64), atol=1e-12)
    # sRGB decoding: 0.5 → ((0.555)/1.055)^2.4; 0.02 → 0.02/12.92
    v = srgb_to_linear(torch.tensor([0.5, 0.02], dtype=torch.float64))
    assert torch.allclose(v, torch.tensor([(0.555 / 1.055) ** 2.4, 0.02 / 12.92], dtype=torch.float64))
    # XYZ of pure red is the first column of the sRGB matrix
    red = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64).view(1, 3, 1, 1)
    assert torch.allclose(rgb_to_xyz(red).flatten(), torch.tensor([0.412453, 0.212671, 0.019334], dtype=torch.float64))


def test_lab_gradients_finite_at_zero_and_thresholds():
    g_lab = 1.055 * 0.008856 ** (1 / 2.4) - 0.055
    vals = torch.tensor([0.0, 1e-12, 0.04045, 0.0404501, g_lab, 1.0], dtype=torch.float64)
    x = vals.view(1, 1, -1, 1).expand(1, 3, -1, 1).clone().requires_grad_(True)
    rgb_to_lab(x).sum().backward()
    assert torch.isfinite(x.grad).all()
    # black: the linear branches are used, gradient = 1/12.92 · 7.787 · 116 / 1 for L w.r.t. grey
    y = torch.zeros(1, 3, 1, 1, dtype=torch.float64, requires_grad=True)
    rgb_to_lab(y)[0, 0].sum().backward()
    expected = 116 * 7.787 / 12.92 * torch.tensor([0.212671, 0.715160, 0.072169], dtype=torch.float64)
    assert torch.allclose(y.grad.flatten(), expected)


def test_lab_gradcheck():
    torch.manual_seed(0)
    x = (torch.rand(1, 3, 4, 4, dtype=torch.float64) * 0.98 + 0.01).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: rgb_to_lab(t), (x,))


def test_yiq_and_gray_hand_values():
    eye = torch.eye(3, dtype=torch.float64).view(3, 3, 1, 1)  # pure R, G, B as a batch
    yiq = rgb_to_yiq(eye)[:, :, 0, 0]
    expected = torch.tensor(
        [[0.299, 0.596, 0.211], [0.587, -0.274, -0.523], [0.114, -0.322, 0.312]], dtype=torch.float64
    )
    assert torch.allclose(yiq, expected)
    g = rgb_to_gray(eye)
    assert g.shape == (3, 1, 1, 1)
    assert torch.allclose(g.flatten(), torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64))


def test_official_quantisation_matches_tensor2im(ref):
    import sys

    sys.path.insert(0, str(REF.parent))
    from inputs import official_loader_float32

    levels = np.arange(256, dtype=np.uint8)
    ramp = np.stack([levels[None, :]] * 3, -1)  # [1, 256, 3]
    x = torch.from_numpy(official_loader_float32(ramp))[None]
    q = quantize_official(x)[0, 0, 0].numpy()
    np.testing.assert_array_equal(q.astype(np.uint8), ref["quant_ramp"])
    # the official truncation is not the identity on every level (float32 round-off)
    assert (ref["quant_ramp"] != levels).any()


def test_official_quantisation_straight_through_gradient():
    x = torch.tensor([[-1.0, -0.3, 0.2, 1.0]], dtype=torch.float64).view(1, 1, 1, 4).requires_grad_(True)
    q = quantize_official(x)
    assert torch.equal(q.detach().flatten(), torch.tensor([0.0, 89.0, 153.0, 255.0], dtype=torch.float64))
    q.sum().backward()
    assert torch.allclose(x.grad, torch.full_like(x, 127.5))


def test_bad_shapes():
    with pytest.raises(ValueError, match="channels"):
        rgb_to_lab(torch.rand(1, 4, 2, 2))
    with pytest.raises(ValueError, match="floating"):
        rgb_to_yiq(torch.zeros(1, 3, 2, 2, dtype=torch.uint8))


@pytest.mark.parametrize("dtype,atol", [(torch.float64, 1e-9), (torch.float32, 1e-4)])
def test_official_lab_fast_path_matches_skimage(monkeypatch, dtype, atol):
    """The no-grad official path (uint8 lookup table, pieces) against scikit-image's rgb2lab of the
    official uint8 codes, on dark, odd-sized and grey (expanded, non-contiguous) batches."""
    from skimage.color import rgb2lab

    from bapps_toolkit.metrics.functional import color

    monkeypatch.setattr(color, "LAB_CHUNK_VALUES", 2 * 3 * 13 * 11)  # 2 images per piece
    rng = np.random.default_rng(3)
    u8 = rng.integers(0, 256, size=(5, 13, 11, 3), dtype=np.uint8)
    u8[1] //= 16  # mostly below the Lab linear-branch threshold
    u8[2] = 0
    x32 = (torch.from_numpy(u8).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.5  # official loader
    codes = np.floor(np.clip((x32.numpy() + np.float32(1)) * np.float32(127.5), 0, 255)).astype(np.uint8)
    expected = np.stack([rgb2lab(c.transpose(1, 2, 0)).transpose(2, 0, 1) for c in codes])
    x = x32.to(dtype)
    with torch.no_grad():
        got = rgb_to_lab(x, official=True).double().numpy()
    assert np.abs(got - expected).max() < atol
    # the straight-through (grad) path gives the same values
    xg = x.clone().requires_grad_(True)
    assert np.abs(rgb_to_lab(xg, official=True).detach().double().numpy() - expected).max() < atol
    # a grey batch expanded to RGB (a non-contiguous view) and a single image without batch dim
    grey = x[:, :1].expand(-1, 3, -1, -1)
    g_codes = np.repeat(codes[:, :1], 3, axis=1)
    g_expected = np.stack([rgb2lab(c.transpose(1, 2, 0)).transpose(2, 0, 1) for c in g_codes])
    with torch.no_grad():
        assert np.abs(rgb_to_lab(grey, official=True).double().numpy() - g_expected).max() < atol
        assert np.abs(rgb_to_lab(x[3], official=True).double().numpy() - expected[3]).max() < atol
