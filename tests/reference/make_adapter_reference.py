"""Record per-item outputs of weight-free metrics of piq, pyiqa and torchmetrics, and the errors
their weighted metrics raise when the weights cannot be downloaded.

Run with the reference environment (torch 2.5.1 from the registry, piq 0.8.0, pyiqa,
torchmetrics), with no network access to the weight hosts::

    /tmp/refvenv/bin/python tests/reference/make_adapter_reference.py

Inputs: ``inputs.make_pairs(((64, 64), (64, 64)), seed=5)[:4]`` and
``inputs.make_pairs(((256, 256),), seed=6)[:2]`` as float32 NCHW in [0, 1] (``inputs.stack_unit``),
reference = ``Pair.ref``, distorted = ``Pair.dist``; each size group is one batch.

``adapters.npz`` keys:

* ``keys`` [6], ``sha256`` [6]: the pairs; ``group`` [6]: 0 for 64x64, 1 for 256x256.
* ``LIB:NAME`` [6] float64: the per-item output (NaN where the call failed for that group,
  e.g. MS-SSIM at 64x64); ``LIB:NAME__error`` (string, '' if none) per group [2].
  piq: ``piq.NAME(x, y, data_range=1.0, reduction='none')`` with x = distorted, y = reference.
  pyiqa: ``pyiqa.create_metric(NAME, as_loss=False, device='cpu')(distorted, reference)``,
  defaults otherwise; ``pyiqa:NAME__lower_better`` (bool, 0-d) is the metric's flag.
  torchmetrics: ``torchmetrics.functional`` SSIM / MS-SSIM / PSNR with ``data_range=1.0`` and
  per-item reduction (``reduction='none'``; PSNR with ``dim=(1, 2, 3)``).
* ``offline_names`` [K]: weighted metrics tried; ``offline_types`` [K] / ``offline_messages`` [K]:
  exception type (qualified name) and message when building/running them without network
  (empty caches in a temporary TORCH_HOME / HF_HOME; socket timeout 20 s).
* ``versions``: library versions.
"""
from __future__ import annotations

import os
import socket
import sys
import tempfile
import traceback
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from inputs import make_pairs, stack_unit  # noqa: E402

OUT = HERE / "adapters.npz"
PIQ = ("ssim", "multi_scale_ssim", "psnr", "fsim", "gmsd", "multi_scale_gmsd", "vif_p", "haarpsi", "mdsi",
       "srsim", "dss")
PYIQA = ("psnr", "ssim", "ms_ssim", "fsim", "gmsd", "vif", "nlpd", "mad")
OFFLINE = ("piq:dists", "pyiqa:dists", "pyiqa:lpips", "pyiqa:stlpips", "torchmetrics:lpips")


def _groups():
    import torch

    g64 = make_pairs(((64, 64), (64, 64)), seed=5)[:4]
    g256 = make_pairs(((256, 256),), seed=6)[:2]
    out = []
    for g in (g64, g256):
        ref = torch.from_numpy(stack_unit([p.ref for p in g], dtype=np.float32))
        dist = torch.from_numpy(stack_unit([p.dist for p in g], dtype=np.float32))
        out.append((g, ref, dist))
    return out


def _record(out: dict, name: str, groups, fn) -> None:
    vals, errs = [], []
    for g, ref, dist in groups:
        try:
            v = fn(dist, ref).detach().double().reshape(-1).numpy()
            assert v.shape == (len(g),), f"shape {v.shape}"
            vals.append(v)
            errs.append("")
        except Exception as e:  # recorded, not hidden: the error string goes in the file
            vals.append(np.full(len(g), np.nan))
            errs.append(f"{type(e).__name__}: {e}"[:300])
    out[name] = np.concatenate(vals)
    out[name + "__error"] = np.array(errs)
    print(f"{name:28s} {np.round(out[name], 5)} {[e[:60] for e in errs if e]}")


def weight_free(out: dict, groups) -> None:
    import piq
    import pyiqa
    import torch
    import torchmetrics.functional as tmf

    for n in PIQ:
        f = getattr(piq, n)
        _record(out, f"piq:{n}", groups, lambda x, y, f=f: f(x, y, data_range=1.0, reduction="none"))
    for n in PYIQA:
        try:
            m = pyiqa.create_metric(n, as_loss=False, device=torch.device("cpu"))
            out[f"pyiqa:{n}__lower_better"] = np.array(bool(m.lower_better))
            _record(out, f"pyiqa:{n}", groups, lambda x, y, m=m: m(x, y))
        except Exception as e:
            out[f"pyiqa:{n}"] = np.full(6, np.nan)
            out[f"pyiqa:{n}__error"] = np.array([f"{type(e).__name__}: {e}"[:300]] * 2)
            print(f"pyiqa:{n} failed to build: {e}")
    _record(out, "torchmetrics:structural_similarity_index_measure", groups,
            lambda x, y: tmf.structural_similarity_index_measure(x, y, data_range=1.0, reduction="none"))
    _record(out, "torchmetrics:multiscale_structural_similarity_index_measure", groups,
            lambda x, y: tmf.multiscale_structural_similarity_index_measure(x, y, data_range=1.0, reduction="none"))
    _record(out, "torchmetrics:peak_signal_noise_ratio", groups,
            lambda x, y: tmf.peak_signal_noise_ratio(x, y, data_range=1.0, reduction="none", dim=(1, 2, 3)))


def _offline_one(name: str, ref, dist):
    import torch

    lib, metric = name.split(":")
    if lib == "piq":
        import piq

        return piq.DISTS(reduction="none")(dist, ref)
    if lib == "pyiqa":
        import pyiqa

        return pyiqa.create_metric(metric, as_loss=False, device=torch.device("cpu"))(dist, ref)
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    return LearnedPerceptualImagePatchSimilarity(net_type="alex", normalize=True)(dist, ref)


def offline(out: dict, groups) -> None:
    _, ref, dist = groups[0]
    types, msgs = [], []
    for name in OFFLINE:
        try:
            _offline_one(name, ref, dist)
            types.append("")
            msgs.append("NO ERROR (weights were available)")
        except BaseException as e:  # SystemExit included: some loaders call sys.exit on failure
            types.append(f"{type(e).__module__}.{type(e).__qualname__}")
            msgs.append(str(e)[:500])
            traceback.print_exc(limit=1)
        print(f"{name}: {types[-1]}: {msgs[-1][:200]}")
    out["offline_names"] = np.array(OFFLINE)
    out["offline_types"] = np.array(types)
    out["offline_messages"] = np.array(msgs)


def main() -> None:
    tmp = tempfile.mkdtemp(prefix="adapter-ref-")
    for var in ("TORCH_HOME", "HF_HOME", "XDG_CACHE_HOME"):
        os.environ[var] = os.path.join(tmp, var.lower())
    socket.setdefaulttimeout(20)
    import piq
    import pyiqa
    import torch
    import torchmetrics
    import torchvision

    groups = _groups()
    pairs = [p for g, _, _ in groups for p in g]
    out: dict = {
        "keys": np.array([p.key for p in pairs]),
        "sha256": np.array([p.sha256 for p in pairs]),
        "group": np.array([0, 0, 0, 0, 1, 1]),
    }
    weight_free(out, groups)
    offline(out, groups)
    out["versions"] = np.array([f"piq {piq.__version__}", f"pyiqa {pyiqa.__version__}",
                                f"torchmetrics {torchmetrics.__version__}", f"torch {torch.__version__}",
                                f"torchvision {torchvision.__version__}", f"numpy {np.__version__}"])
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
