"""Record reference vectors for the classic metrics (Lab, L2, PSNR, SSIM, MS-SSIM).

Run with the reference environment (scikit-image 0.26, lpips 0.1.4, pytorch-msssim 1.0.0)::

    /work/refvenv/bin/python tests/reference/make_classic_reference.py

Inputs come from ``inputs.py`` (the tests regenerate them and compare the stored digests).
Writes ``classic.npz`` next to this file with, for the pairs ``make_pairs(MAIN_SIZES, 0)``
(arrays of length P, in pair order; ``keys``/``sha256`` identify the pairs):

* ``mse``: ``skimage.metrics.mean_squared_error`` on [0, 1] floats.
* ``psnr``: ``skimage.metrics.peak_signal_noise_ratio(data_range=255)`` on uint8.
* ``ssim_rgb`` / ``ssim_lab``: ``structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=255 | 100, channel_axis=-1)`` on uint8 RGB (as
  float64) / on ``rgb2lab`` of it.
* ``official_dssim_rgb`` / ``official_dssim_lab`` / ``official_l2_lab`` / ``official_l2_rgb``:
  the official LPIPS repository's DSSIM and L2 (``lpips`` 0.1.4): inputs built like the
  official loader (float32 [-1, 1]), converted with ``lpips.tensor2im`` /
  ``lpips.tensor2tensorlab``; DSSIM = (1 − SSIM)/2 with ``structural_similarity`` at its
  defaults (the modern spelling of the ``compare_ssim`` call the repository makes); L2 via
  ``lpips.lpips.L2``.
* ``msssim_pm``: ``pytorch_msssim.ms_ssim(data_range=255)`` (float64) where it applies
  (min side > 160), NaN elsewhere.
* ``msssim_sym``: MS-SSIM with MATLAB/TF symmetric bottom/right padding, built from
  pytorch-msssim's per-scale statistics (``_ssim``, given float64 Gaussian taps) and a numpy
  downsampler; scale count = as many as fit (≤ 5, 11 taps), weights renormalised when fewer
  than 5.
* ``ssim_map_0``: channel mean of scikit-image's SSIM map (``full=True``), cropped by 5, pair 0.

For ``make_pairs(DS_SIZES, 1, ("blur",))``: ``ds_keys``, ``ds_sha256``, ``ds_factor`` (MATLAB
``round``) and ``ds_ssim``: scikit-image Gaussian SSIM after a numpy implementation of
``ssim.m``'s ``imfilter(…, 'symmetric', 'same')`` + ``(1:f:end)`` downsampling.

Lab: ``lab_rgb`` [K, 3] float64 test colours (a 17³ grid, the 256 grey levels, values around the
sRGB and Lab thresholds) and ``lab_ref`` = ``rgb2lab``; ``lab_photo_rgb_key`` names the pair whose
reference crop gave ``lab_photo`` (float64 [H, W, 3]).
Quantisation: ``quant_ramp`` = ``lpips.tensor2im`` of the official loader's tensor for the 256
grey levels (shows where the float32 truncation gives p − 1).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from inputs import make_pairs, official_loader_float32  # noqa: E402

MAIN_SIZES = ((64, 64), (97, 83), (180, 200), (256, 256), (176, 192), (33, 40))
DS_SIZES = ((383, 400), (400, 500), (640, 650))
WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def n_scales(h: int, w: int, win: int = 11, max_scales: int = 5) -> int:
    s, m = min(h, w), 0
    while m < max_scales and s >= win:
        m += 1
        s = (s + 1) // 2
    return m


def np_halve(a: np.ndarray) -> np.ndarray:
    """[H, W, C] → 2×2 mean with symmetric bottom/right padding of odd sizes (msssim.m)."""
    h, w = a.shape[:2]
    a = np.pad(a, ((0, h % 2), (0, w % 2), (0, 0)), mode="symmetric")
    return 0.25 * (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2])


def msssim_sym(a: np.ndarray, b: np.ndarray) -> float:
    from pytorch_msssim.ssim import _ssim

    m = n_scales(*a.shape[:2])
    w = list(WEIGHTS[:m])
    if m < 5:
        w = [v / sum(w) for v in w]
    d = np.arange(11, dtype=np.float64) - 5.0  # float64 taps (pytorch-msssim builds them in float32)
    g = np.exp(-(d**2) / (2 * 1.5**2))
    win = torch.from_numpy(g / g.sum()).view(1, 1, 1, 11).repeat(3, 1, 1, 1)
    vals = []
    for j in range(m):
        X = torch.from_numpy(a.transpose(2, 0, 1)[None].copy())
        Y = torch.from_numpy(b.transpose(2, 0, 1)[None].copy())
        s, cs = _ssim(X, Y, data_range=255.0, win=win, size_average=False)
        vals.append(torch.relu(cs if j < m - 1 else s))
        a, b = np_halve(a), np_halve(b)
    stacked = torch.stack(vals, 0)  # [M, 1, C]
    out = torch.prod(stacked ** torch.tensor(w, dtype=torch.float64).view(-1, 1, 1), 0).mean()
    return float(out)


def matlab_round(v: float) -> int:
    return int(np.floor(v + 0.5))


def np_matlab_downsample(a: np.ndarray, f: int) -> np.ndarray:
    """imfilter(a, ones(f)/f^2, 'symmetric', 'same') then a(1:f:end, 1:f:end)."""
    if f == 1:
        return a
    c = (f + 1) // 2  # kernel centre, 1-based
    p = np.pad(a, ((c - 1, f - c), (c - 1, f - c), (0, 0)), mode="symmetric")
    H, W = a.shape[:2]
    out = np.zeros_like(a, dtype=np.float64)
    for i in range(f):
        for j in range(f):
            out += p[i : i + H, j : j + W]
    out /= f * f
    return out[::f, ::f]


def lab_colours(rng: np.random.Generator) -> np.ndarray:
    g = np.linspace(0.0, 1.0, 17)
    grid = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    greys = np.repeat((np.arange(256) / 255.0)[:, None], 3, axis=1)
    t_srgb = 0.04045 + np.array([-1e-3, -1e-6, 0.0, 1e-6, 1e-3])
    # grey level whose luminance is at the Lab threshold 0.008856
    g_lab = 1.055 * 0.008856 ** (1 / 2.4) - 0.055
    t_lab = g_lab + np.array([-1e-3, -1e-6, 0.0, 1e-6, 1e-3])
    near = np.concatenate([t_srgb, t_lab])
    edge = np.stack([near, near, near], 1)
    mixed = np.stack([near, np.zeros_like(near), np.ones_like(near)], 1)
    rand = rng.uniform(0, 1, size=(200, 3))
    dark = rng.uniform(0, 0.12, size=(200, 3))
    return np.concatenate([grid, greys, edge, mixed, rand, dark])


def main() -> None:
    import lpips
    import lpips.lpips as lpips_mod
    import pytorch_msssim
    import skimage
    from skimage.color import rgb2lab
    from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

    pairs = make_pairs(MAIN_SIZES, seed=0)
    out = {
        "keys": np.array([p.key for p in pairs]),
        "sha256": np.array([p.sha256 for p in pairs]),
        "versions": np.array(
            [f"scikit-image {skimage.__version__}", f"lpips {getattr(lpips, '__version__', '?')}",
             f"pytorch-msssim {getattr(pytorch_msssim, '__version__', '?')}", f"torch {torch.__version__}"]
        ),
    }
    cols = {k: [] for k in ("mse", "psnr", "ssim_rgb", "ssim_lab", "official_dssim_rgb", "official_dssim_lab",
                            "official_l2_lab", "official_l2_rgb", "msssim_pm", "msssim_sym")}
    l2_rgb = lpips_mod.L2(use_gpu=False, colorspace="RGB")
    l2_lab = lpips_mod.L2(use_gpu=False, colorspace="Lab")
    for i, p in enumerate(pairs):
        a, b = p.ref, p.dist
        af, bf = a.astype(np.float64), b.astype(np.float64)
        cols["mse"].append(mean_squared_error(af / 255.0, bf / 255.0))
        cols["psnr"].append(peak_signal_noise_ratio(a, b, data_range=255))
        kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, channel_axis=-1)
        cols["ssim_rgb"].append(structural_similarity(af, bf, data_range=255, **kw))
        la, lb = rgb2lab(a), rgb2lab(b)
        cols["ssim_lab"].append(structural_similarity(la, lb, data_range=100, **kw))
        if i == 0:
            _, S = structural_similarity(af, bf, data_range=255, full=True, **kw)
            out["ssim_map_0"] = S[5:-5, 5:-5].mean(axis=-1)
        # the official repository's path: loader tensor (float32, [-1, 1]) -> tensor2im / tensor2tensorlab
        t0 = torch.from_numpy(official_loader_float32(a))[None]
        t1 = torch.from_numpy(official_loader_float32(b))[None]
        i0, i1 = 1.0 * lpips.tensor2im(t0), 1.0 * lpips.tensor2im(t1)
        cols["official_dssim_rgb"].append((1 - structural_similarity(i0, i1, data_range=255.0, channel_axis=-1)) / 2.0)
        m0 = lpips.tensor2np(lpips.tensor2tensorlab(t0, to_norm=False))
        m1 = lpips.tensor2np(lpips.tensor2tensorlab(t1, to_norm=False))
        cols["official_dssim_lab"].append((1 - structural_similarity(m0, m1, data_range=100.0, channel_axis=-1)) / 2.0)
        cols["official_l2_lab"].append(float(l2_lab(t0, t1)))
        cols["official_l2_rgb"].append(float(l2_rgb(t0, t1)))
        X = torch.from_numpy(af.transpose(2, 0, 1)[None].copy())
        Y = torch.from_numpy(bf.transpose(2, 0, 1)[None].copy())
        if min(a.shape[:2]) > 160:
            cols["msssim_pm"].append(float(pytorch_msssim.ms_ssim(X, Y, data_range=255.0, size_average=False)))
        else:
            cols["msssim_pm"].append(np.nan)
        cols["msssim_sym"].append(msssim_sym(af, bf))
        print(f"{p.key:28s} ssim {cols['ssim_rgb'][-1]:.6f} msssim_sym {cols['msssim_sym'][-1]:.6f} "
              f"pm {cols['msssim_pm'][-1]:.6f}")
    for k, v in cols.items():
        out[k] = np.asarray(v, dtype=np.float64)

    ds = make_pairs(DS_SIZES, seed=1, distortions=("blur",))
    out["ds_keys"] = np.array([p.key for p in ds])
    out["ds_sha256"] = np.array([p.sha256 for p in ds])
    facs, vals = [], []
    for p in ds:
        f = max(1, matlab_round(min(p.ref.shape[:2]) / 256.0))
        a = np_matlab_downsample(p.ref.astype(np.float64), f)
        b = np_matlab_downsample(p.dist.astype(np.float64), f)
        facs.append(f)
        vals.append(structural_similarity(a, b, data_range=255, gaussian_weights=True, sigma=1.5,
                                          use_sample_covariance=False, channel_axis=-1))
        print(f"{p.key:28s} f={f} ssim_ds {vals[-1]:.6f}")
    out["ds_factor"] = np.asarray(facs, dtype=np.int64)
    out["ds_ssim"] = np.asarray(vals, dtype=np.float64)

    rng = np.random.default_rng(7)
    rgb = lab_colours(rng)
    out["lab_rgb"] = rgb
    out["lab_ref"] = rgb2lab(rgb[None])[0]
    out["lab_photo_key"] = np.array(pairs[3].key)
    out["lab_photo"] = rgb2lab(pairs[3].ref)

    levels = np.arange(256, dtype=np.uint8)
    ramp = np.stack([np.tile(levels[None, :], (2, 1))] * 3, -1)  # [2, 256, 3]
    out["quant_ramp"] = lpips.tensor2im(torch.from_numpy(official_loader_float32(ramp))[None])[0, :, 0]

    target = HERE / "classic.npz"
    tmp = target.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **out)
    tmp.replace(target)
    print(f"wrote {target} ({target.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
