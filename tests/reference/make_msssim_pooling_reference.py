"""Record MS-SSIM per-scale terms and both poolings of Wang's ``msssim.m``.

Run with the reference environment (pytorch-msssim 1.0.0)::

    /tmp/refvenv/bin/python tests/reference/make_msssim_pooling_reference.py

``msssim.m`` (Wang, Simoncelli, Bovik 2003) has two poolings of the per-scale terms (cs_j: mean
contrast-structure term at scale j, ssim_5: mean SSIM at the coarsest scale, weights w =
[0.0448, 0.2856, 0.3001, 0.2363, 0.1333]):

* ``product`` (default): prod_{j<5} cs_j^w_j * ssim_5^w_5;
* ``wtd_sum``: the weights are first divided by their sum, then
  sum_{j<5} w_j cs_j + w_5 ssim_5.

The per-scale terms come from pytorch-msssim's ``_ssim`` (float64 Gaussian taps, 11 taps,
sigma 1.5, K = (0.01, 0.03), data range 255, valid filtering) per RGB channel, with the scales
built by ``msssim.m``'s 2x2 average (symmetric padding of an odd bottom/right edge, keep every
2nd pixel). ``msssim.m`` works on one channel; for RGB each channel is pooled and the channel
results averaged (as pytorch-msssim does). Before recording, the product pooling of these terms
is checked against ``pytorch_msssim.ms_ssim`` on the pairs whose halvings never meet an odd
size (where both downsamplers agree).

``msssim_pooling.npz`` keys (P pairs, from ``inputs.make_pairs(SIZES, seed=3)``):

* ``keys`` [P], ``sha256`` [P]: pair identifiers (``inputs.Pair.key`` / ``.sha256``).
* ``weights`` [5]: the weights as given (not normalised).
* ``cs`` [P, 5, 3]: cs_j per scale and channel (raw, no ReLU); ``ssim`` [P, 5, 3]: mean SSIM
  per scale and channel.
* ``product`` [P]: channel mean of the product pooling (raw terms; none is negative here).
* ``wtd_sum`` [P]: channel mean of the weighted-sum pooling (normalised weights).
* ``wtd_sum_unnormalised`` [P]: the same with the weights as given (sum 1.0001), to show the
  size of the normalisation (~1e-4 relative).
* ``pm_ms_ssim`` [P]: ``pytorch_msssim.ms_ssim(data_range=255, size_average=False)`` (its own
  zero-padded downsampling and float32 taps); ``pm_checked`` [P] bool: where the product was
  asserted equal to it (rtol 1e-6).
* ``versions``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from inputs import make_pairs  # noqa: E402

OUT = HERE / "msssim_pooling.npz"
SIZES = ((256, 256), (176, 192), (161, 170), (200, 183))
WEIGHTS = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])


def halve(a: np.ndarray) -> np.ndarray:
    """[H, W, C] -> msssim.m's imfilter(ones(2)/4, 'symmetric', 'same') then (1:2:end)."""
    h, w = a.shape[:2]
    a = np.pad(a, ((0, h % 2), (0, w % 2), (0, 0)), mode="symmetric")
    return 0.25 * (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2])


def all_even(h: int, w: int) -> bool:
    for _ in range(4):
        if h % 2 or w % 2:
            return False
        h, w = h // 2, w // 2
    return True


def terms(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from pytorch_msssim.ssim import _ssim

    d = np.arange(11, dtype=np.float64) - 5.0
    g = np.exp(-(d**2) / (2 * 1.5**2))
    win = torch.from_numpy(g / g.sum()).view(1, 1, 1, 11).repeat(3, 1, 1, 1)
    cs, ss = [], []
    for _ in range(5):
        X = torch.from_numpy(a.transpose(2, 0, 1)[None].copy())
        Y = torch.from_numpy(b.transpose(2, 0, 1)[None].copy())
        s, c = _ssim(X, Y, data_range=255.0, win=win, size_average=False)
        ss.append(s[0].numpy())
        cs.append(c[0].numpy())
        a, b = halve(a), halve(b)
    return np.stack(cs), np.stack(ss)  # [5, 3]


def main() -> None:
    import pytorch_msssim
    import skimage

    pairs = make_pairs(SIZES, seed=3)
    cs_all, ss_all, prod, wsum, wsum_u, pm, checked = [], [], [], [], [], [], []
    wn = WEIGHTS / WEIGHTS.sum()
    for p in pairs:
        a, b = p.ref.astype(np.float64), p.dist.astype(np.float64)
        cs, ss = terms(a, b)
        pr = np.prod(cs[:4] ** WEIGHTS[:4, None], 0) * ss[4] ** WEIGHTS[4]
        ws = (wn[:4, None] * cs[:4]).sum(0) + wn[4] * ss[4]
        wu = (WEIGHTS[:4, None] * cs[:4]).sum(0) + WEIGHTS[4] * ss[4]
        X = torch.from_numpy(a.transpose(2, 0, 1)[None].copy())
        Y = torch.from_numpy(b.transpose(2, 0, 1)[None].copy())
        ref = float(pytorch_msssim.ms_ssim(X, Y, data_range=255.0, size_average=False)[0])
        ok = all_even(*a.shape[:2])
        if ok:
            np.testing.assert_allclose(pr.mean(), ref, rtol=1e-6)
        cs_all.append(cs)
        ss_all.append(ss)
        prod.append(pr.mean())
        wsum.append(ws.mean())
        wsum_u.append(wu.mean())
        pm.append(ref)
        checked.append(ok)
        print(f"{p.key:28s} product {pr.mean():.6f} wtd_sum {ws.mean():.6f} pm {ref:.6f} checked {ok}")
    np.savez_compressed(
        OUT, keys=np.array([p.key for p in pairs]), sha256=np.array([p.sha256 for p in pairs]),
        weights=WEIGHTS, cs=np.stack(cs_all), ssim=np.stack(ss_all), product=np.array(prod),
        wtd_sum=np.array(wsum), wtd_sum_unnormalised=np.array(wsum_u), pm_ms_ssim=np.array(pm),
        pm_checked=np.array(checked),
        versions=np.array([f"pytorch-msssim {getattr(pytorch_msssim, '__version__', '1.0.0')}",
                           f"torch {torch.__version__}", f"scikit-image {skimage.__version__}",
                           f"numpy {np.__version__}"]),
    )
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
