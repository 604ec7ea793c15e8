"""Record reference vectors for FSIM / FSIMc from piq 0.8.0.

Run with the reference environment (piq 0.8.0, torch 2.5.1)::

    /work/refvenv/bin/python tests/reference/make_fsim_reference.py

Inputs come from ``inputs.py`` (``make_pairs(SIZES, SEED)``: scikit-image photos cropped at every
size in :data:`SIZES`, each with a seeded noise, blur and JPEG distortion); the tests regenerate
them and compare the stored digests before comparing any number. Writes ``fsim.npz`` next to
this file with arrays of length P (pair order):

* ``keys`` / ``sha256``: the pairs' names and input digests.
* ``piq_fsim`` / ``piq_fsimc``: ``piq.fsim(x, y, data_range=1., chromatic=False | True,
  reduction='none')`` on the RGB pair as float64 in [0, 1] (``x`` = reference crop).
* ``piq_fsim_grey``: the same with ``chromatic=False`` on the one-channel images given by the
  green channel alone (piq then uses the channel as luminance directly).

Sizes: min side < 384 gives FeatureSIM.m's downsampling factor F = 1; 400×390 gives F = 2 (even
sides, where piq's ``avg_pool2d`` and MATLAB's zero-padded 'same' average coincide).

``ds_keys`` / ``ds_sha256`` / ``ds_piq_fsim`` / ``ds_piq_fsimc``: the same for
``make_pairs(DS_SIZES, DS_SEED)``, odd sides with F = 2, where piq's block-aligned ``avg_pool2d``
(floor size) and MATLAB's zero-padded 'same' average (ceil size) differ; the tests show the
difference is exactly that one.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from inputs import make_pairs, stack_unit  # noqa: E402

SIZES = ((64, 64), (97, 83), (180, 200), (300, 260), (31, 45), (400, 390))
SEED = 11
DS_SIZES = ((401, 385),)
DS_SEED = 12


def _piq(x: torch.Tensor, y: torch.Tensor, chromatic: bool) -> float:
    import piq

    with torch.no_grad():
        return float(piq.fsim(x, y, data_range=1.0, chromatic=chromatic, reduction="none")[0])


def main() -> None:
    import piq

    pairs = make_pairs(SIZES, SEED)
    fs, fc, fg = [], [], []
    for p in pairs:
        x = torch.from_numpy(stack_unit([p.ref]))
        y = torch.from_numpy(stack_unit([p.dist]))
        fs.append(_piq(x, y, False))
        fc.append(_piq(x, y, True))
        fg.append(_piq(x[:, 1:2], y[:, 1:2], False))
        print(f"{p.key:28s} fsim {fs[-1]:.6f} fsimc {fc[-1]:.6f} grey {fg[-1]:.6f}")
    ds_pairs = make_pairs(DS_SIZES, DS_SEED)
    ds_fs, ds_fc = [], []
    for p in ds_pairs:
        x = torch.from_numpy(stack_unit([p.ref]))
        y = torch.from_numpy(stack_unit([p.dist]))
        ds_fs.append(_piq(x, y, False))
        ds_fc.append(_piq(x, y, True))
        print(f"{p.key:28s} fsim {ds_fs[-1]:.6f} fsimc {ds_fc[-1]:.6f}")
    out = HERE / "fsim.npz"
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez(
        tmp,
        keys=np.array([p.key for p in pairs]),
        sha256=np.array([p.sha256 for p in pairs]),
        piq_fsim=np.array(fs),
        piq_fsimc=np.array(fc),
        piq_fsim_grey=np.array(fg),
        ds_keys=np.array([p.key for p in ds_pairs]),
        ds_sha256=np.array([p.sha256 for p in ds_pairs]),
        ds_piq_fsim=np.array(ds_fs),
        ds_piq_fsimc=np.array(ds_fc),
        piq_version=np.array(piq.__version__),
    )
    tmp.replace(out)
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
