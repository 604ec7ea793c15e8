"""Regenerate ``conventions.npz``: the peers' values behind the input-convention tests.

Run in a throwaway environment that has the peers (never the toolkit's own venv)::

    python -m venv /tmp/refvenv && /tmp/refvenv/bin/pip install torch torchvision piq \\
        torchmetrics pytorch-msssim scikit-image
    /tmp/refvenv/bin/python tests/reference/make_conventions_reference.py

Recorded with piq 0.8.0, torchmetrics 1.9.0, pytorch-msssim 1.0.0, scikit-image 0.26.0,
torch 2.5.1 (the versions are stored in the file as ``versions``). Inputs are crops of
scikit-image's photos with fixed-seed noise, stored beside the values so the test needs no peer.
Every value is per image (``reduction="none"`` or the peers' equivalent), in float64 where the
peer allows it.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).with_name("conventions.npz")


def _inputs() -> dict[str, np.ndarray]:
    """uint8 NCHW pairs: ``u8`` (2×3×40×40), ``big`` (1×3×176×176), and ``c4`` (2×4×40×40)."""
    from skimage import data

    rng = np.random.default_rng(20240607)
    photos = [data.astronaut(), data.coffee(), data.chelsea()]

    def crops(n: int, side: int, c: int) -> np.ndarray:
        out = np.empty((n, c, side, side), np.uint8)
        for i in range(n):
            ph = photos[i % len(photos)]
            y0, x0 = (int(v) for v in rng.integers(0, [ph.shape[0] - side, ph.shape[1] - side]))
            patch = ph[y0:y0 + side, x0:x0 + side].transpose(2, 0, 1)
            extra = patch[:1] // 2 + patch[2:3] // 2  # a 4th plane for 4-channel cases
            out[i] = np.concatenate([patch, extra])[:c]
        return out

    def noisy(x: np.ndarray, sd: float) -> np.ndarray:
        return np.clip(np.rint(x + rng.normal(0, sd, x.shape)), 0, 255).astype(np.uint8)

    u8 = crops(2, 40, 3)
    big = crops(1, 176, 3)
    c4 = crops(2, 40, 4)
    return {"u8_x": u8, "u8_y": noisy(u8, 12.0), "big_x": big, "big_y": noisy(big, 10.0),
            "c4_x": c4, "c4_y": noisy(c4, 15.0)}


def _sk_ssim(x: np.ndarray, y: np.ndarray, **kw: object) -> np.ndarray:
    """scikit-image SSIM per image of NCHW arrays (Wang's Gaussian window, population stats)."""
    from skimage.metrics import structural_similarity

    return np.array([structural_similarity(a, b, channel_axis=0, gaussian_weights=True, sigma=1.5,
                                           use_sample_covariance=False, **kw) for a, b in zip(x, y, strict=True)])


def _sk_psnr(x: np.ndarray, y: np.ndarray, data_range: float) -> np.ndarray:
    from skimage.metrics import peak_signal_noise_ratio

    return np.array([peak_signal_noise_ratio(a, b, data_range=data_range) for a, b in zip(x, y, strict=True)])


def main() -> None:
    import piq
    import pytorch_msssim
    import skimage
    import torchmetrics
    from torchmetrics.functional.image import multiscale_structural_similarity_index_measure as tm_msssim
    from torchmetrics.functional.image import peak_signal_noise_ratio as tm_psnr
    from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

    inp = _inputs()
    out: dict[str, np.ndarray] = dict(inp)
    t = {k: torch.from_numpy(v) for k, v in inp.items()}
    x8, y8 = t["u8_x"], t["u8_y"]
    xf, yf = x8.double() / 255, y8.double() / 255
    # integer images: piq reads uint8 with data_range=255 (value/255); skimage infers 255 from the dtype
    out["piq_ssim_u8"] = piq.ssim(x8, y8, data_range=255, reduction="none", downsample=False).double().numpy()
    out["piq_psnr_u8"] = piq.psnr(x8, y8, data_range=255, reduction="none").double().numpy()
    out["tm_psnr_u8"] = tm_psnr(x8, y8, data_range=255.0, reduction="none", dim=(1, 2, 3)).double().numpy()
    out["sk_ssim_u8"] = _sk_ssim(inp["u8_x"], inp["u8_y"])
    out["sk_psnr_u8"] = _sk_psnr(inp["u8_x"], inp["u8_y"], 255.0)
    # channels: 1, 2 and 4 planes, per channel then averaged (float64 in [0, 1])
    for c in (1, 2, 4):
        a, b = t["c4_x"][:, :c].double() / 255, t["c4_y"][:, :c].double() / 255
        out[f"piq_ssim_c{c}"] = piq.ssim(a, b, data_range=1.0, reduction="none", downsample=False).numpy()
        out[f"tm_ssim_c{c}"] = tm_ssim(a, b, data_range=1.0, reduction="none").numpy()
        out[f"sk_ssim_c{c}"] = _sk_ssim(a.numpy(), b.numpy(), data_range=1.0)
        out[f"tm_psnr_c{c}"] = tm_psnr(a, b, data_range=1.0, reduction="none", dim=(1, 2, 3)).numpy()
        out[f"piq_psnr_c{c}"] = piq.psnr(a, b, data_range=1.0, reduction="none").numpy()
    # data_range as the peers mean it: [-1, 1] values as given, the constants from R = 2
    xs, ys = xf * 2 - 1, yf * 2 - 1
    out["tm_ssim_r2"] = tm_ssim(xs, ys, data_range=2.0, reduction="none").numpy()
    out["sk_ssim_r2"] = _sk_ssim(xs.numpy(), ys.numpy(), data_range=2.0)
    out["tm_psnr_r2"] = tm_psnr(xs, ys, data_range=2.0, reduction="none", dim=(1, 2, 3)).numpy()
    # 8-bit values held as floats with R = 255 (piq: x / data_range)
    out["piq_ssim_r255"] = piq.ssim(x8.double(), y8.double(), data_range=255.0, reduction="none",
                                    downsample=False).numpy()
    # the constants: K1, K2 other than Wang's
    out["sk_ssim_k"] = _sk_ssim(xf.numpy(), yf.numpy(), data_range=1.0, K1=0.05, K2=0.1)
    out["tm_ssim_k"] = tm_ssim(xf, yf, data_range=1.0, k1=0.05, k2=0.1, reduction="none").numpy()
    # reductions
    out["piq_ssim_mean"] = piq.ssim(xf, yf, data_range=1.0, reduction="mean", downsample=False).numpy()
    out["piq_ssim_sum"] = piq.ssim(xf, yf, data_range=1.0, reduction="sum", downsample=False).numpy()
    out["tm_psnr_sum"] = tm_psnr(xf, yf, data_range=1.0, reduction="sum", dim=(1, 2, 3)).numpy()
    # MS-SSIM on 176 px with data_range=255 on 8-bit values held as floats
    bx, by = t["big_x"].double(), t["big_y"].double()
    out["pm_msssim_r255"] = pytorch_msssim.ms_ssim(bx, by, data_range=255, size_average=False,
                                                   win_size=11).numpy()
    out["tm_msssim_r255"] = tm_msssim(bx, by, data_range=255.0, reduction="none").numpy()
    # precision: float64 statistics of the float16-rounded image (what upcasting computes)
    h_x, h_y = xf.half().double().numpy(), yf.half().double().numpy()
    out["sk_psnr_f16"] = _sk_psnr(h_x, h_y, 1.0)
    out["sk_ssim_f16"] = _sk_ssim(h_x, h_y, data_range=1.0)
    out["sk_ssim_f64"] = _sk_ssim(xf.numpy(), yf.numpy(), data_range=1.0)
    versions = {"piq": piq.__version__, "torchmetrics": torchmetrics.__version__,
                "pytorch_msssim": getattr(pytorch_msssim, "__version__", "1.0.0"),
                "scikit-image": skimage.__version__, "torch": torch.__version__}
    out["versions"] = np.array(json.dumps(versions))
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes): {versions}")


if __name__ == "__main__":
    main()
