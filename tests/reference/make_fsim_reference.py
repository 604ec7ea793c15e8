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


def main() -> None:
    import piq

    pairs = make_pairs(SIZES, SEED)
    fs, fc, fg = [], [], []
    for p in pairs:
        x = torch.from_numpy(stack_unit([p.ref]))
        y = torch.from_numpy(stack_unit([p.dist]))
        with torch.no_grad():
            fs.append(float(piq.fsim(x, y, data_range=1.0, chromatic=False, reduction="none")[0]))
            fc.append(float(piq.fsim(x, y, data_range=1.0, chromatic=True, reduction="none")[0]))
            fg.append(float(piq.fsim(x[:, 1:2], y[:, 1:2], data_range=1.0, chromatic=False,
                                     reduction="none")[0]))
        print(f"{p.key:28s} fsim {fs[-1]:.6f} fsimc {fc[-1]:.6f} grey {fg[-1]:.6f}")
    out = HERE / "fsim.npz"
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez(
        tmp,
        keys=np.array([p.key for p in pairs]),
        sha256=np.array([p.sha256 for p in pairs]),
        piq_fsim=np.array(fs),
        piq_fsimc=np.array(fc),
        piq_fsim_grey=np.array(fg),
        piq_version=np.array(piq.__version__),
    )
    tmp.replace(out)
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
