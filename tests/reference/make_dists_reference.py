"""Record DISTS reference vectors from the official ``dists-pytorch`` 0.1 package (and piq 0.8.0).

Run with a reference environment outside the repository (torchvision does not import next to
the development torch)::

    python3 -m venv /tmp/refvenv-dists
    env -u PIP_FIND_LINKS /tmp/refvenv-dists/bin/pip install torch==2.5.1 torchvision==0.20.1 \\
        dists-pytorch==0.1 piq==0.8.0 scikit-image scipy pillow "numpy<2.3"
    /tmp/refvenv-dists/bin/python tests/reference/make_dists_reference.py

No ImageNet weights can be downloaded here, so both implementations get the same seeded random
VGG16 of ``random_backbone.py`` (torchvision parameter names, seed 102 — the one the LPIPS
reference uses): torchvision's ``vgg16`` constructor is replaced, in the two packages'
namespaces only, by one that returns ``vgg16(weights=None)`` with that state dict loaded
strictly. The α/β weights are the package's own ``weights.pt`` (read by its own code); piq, which would
download its copy, is handed the same file.

Inputs: ``inputs.make_pairs`` (scikit-image photo crops with a seeded noise, blur and JPEG
distortion); the tests regenerate them and compare the stored digests first. The model input is
``uint8 / 255`` (the official range [0, 1]), ``x`` = reference crop, ``y`` = distorted.

Writes ``dists.npz`` next to this file. For each set ``S`` in :data:`SETS`:

* ``S_keys`` / ``S_sha256``: pair names and input digests, in order;
* ``S_official``: float64 ``[P]``, ``DISTS_pytorch.DISTS().double()(x, y)`` — the official
  forward, which never resizes;
* ``S_official32``: the same in float32 (the reference's own float32 round-off);
* ``S_piq``: float64 ``[P]``, ``piq.DISTS(reduction='none').double()(x, y)`` on the same backbone
  and α/β: piq resizes bilinearly to 256 on the short side when that side exceeds 256.

``piq512_official_box2``: the official forward on the ``piq512`` pairs average-pooled 2×2
first — the same numbers piq computes there (its bilinear resize by exactly 1/2 is that average),
which is all the difference between the two implementations.

``grad_x`` / ``grad_keys``: float64 gradient of ``Σ_P DISTS(x, y)`` (official forward with
``require_grad=True``) with respect to the reference crops ``x`` of the ``small`` pairs of size
:data:`GRAD_SIZE`, shape ``[P, 3, H, W]``.

``alpha`` / ``beta``: the package's ``weights.pt`` tensors as they are (float32 ``[1475]``), and
``weights_sha256``: that file's SHA-256.
"""
from __future__ import annotations

import hashlib
import os
import sys
import types
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from inputs import make_pairs, stack_unit  # noqa: E402
from random_backbone import random_backbone_state_dict  # noqa: E402

#: name: (sizes, seed, distortions)
SETS: dict[str, tuple[tuple[tuple[int, int], ...], int, tuple[str, ...]]] = {
    "small": (((64, 64), (97, 83), (23, 37)), 21, ("noise", "blur", "jpeg")),
    "large": (((256, 256),), 22, ("noise", "blur", "jpeg")),
    "piq512": (((512, 512),), 23, ("blur",)),
}
GRAD_SIZE = (23, 37)


def _random_vgg16(**_kwargs):
    import torchvision

    model = torchvision.models.vgg16(weights=None)
    state = {k: torch.from_numpy(v) for k, v in random_backbone_state_dict("vgg").items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all(k.startswith("classifier.") for k in missing), (missing, unexpected)
    return model


def official_model():
    import DISTS_pytorch.DISTS_pt as official

    official.models = types.SimpleNamespace(vgg16=_random_vgg16)  # this module's name only
    return official.DISTS().eval()


def official_weights_file() -> Path:
    return Path(sys.prefix) / "weights.pt"


def piq_model():
    import piq.perceptual as perceptual

    perceptual.vgg16 = _random_vgg16
    weights = torch.load(official_weights_file(), map_location="cpu", weights_only=True)
    real = torch.hub.load_state_dict_from_url
    torch.hub.load_state_dict_from_url = lambda *a, **k: weights
    try:
        return perceptual.DISTS(reduction="none").eval()
    finally:
        torch.hub.load_state_dict_from_url = real


def unit(imgs, dtype=torch.float64) -> torch.Tensor:
    return torch.from_numpy(stack_unit(imgs)).to(dtype)


def record_set(name: str, out: dict, official, piq) -> None:
    sizes, seed, distortions = SETS[name]
    pairs = make_pairs(sizes, seed, distortions)
    out[f"{name}_keys"] = np.array([p.key for p in pairs])
    out[f"{name}_sha256"] = np.array([p.sha256 for p in pairs])
    d64, d32, dpiq, box = [], [], [], []
    with torch.no_grad():
        for p in pairs:  # one pair at a time: sizes differ within a set
            x, y = unit([p.ref]), unit([p.dist])
            d64.append(float(official.double()(x, y)))
            d32.append(float(official.float()(x.float(), y.float())))
            dpiq.append(float(piq.double()(x, y)[0]))
            if name == "piq512":
                pool = torch.nn.functional.avg_pool2d
                box.append(float(official.double()(pool(x, 2), pool(y, 2))))
    out[f"{name}_official"] = np.array(d64)
    out[f"{name}_official32"] = np.array(d32, dtype=np.float32)
    out[f"{name}_piq"] = np.array(dpiq)
    if box:
        out["piq512_official_box2"] = np.array(box)
    for p, a, b, c in zip(pairs, d64, d32, dpiq, strict=True):
        print(f"{p.key:28s} official {a:.8f}  f32 {b:.8f}  piq {c:.8f}")


def record_gradients(out: dict, official) -> None:
    sizes, seed, distortions = SETS["small"]
    pairs = [p for p in make_pairs(sizes, seed, distortions) if p.ref.shape[:2] == GRAD_SIZE]
    x = unit([p.ref for p in pairs]).requires_grad_(True)
    y = unit([p.dist for p in pairs])
    official.double()(x, y, require_grad=True).sum().backward()
    out["grad_keys"] = np.array([p.key for p in pairs])
    out["grad_x"] = x.grad.numpy()


def main() -> None:
    path = official_weights_file()
    weights = torch.load(path, map_location="cpu", weights_only=True)
    out: dict[str, np.ndarray] = {
        "alpha": weights["alpha"].reshape(-1).numpy(),
        "beta": weights["beta"].reshape(-1).numpy(),
        "weights_sha256": np.array(hashlib.sha256(path.read_bytes()).hexdigest()),
    }
    official, piq = official_model(), piq_model()
    for name in SETS:
        record_set(name, out, official, piq)
    record_gradients(out, official)
    np.savez_compressed(HERE / "dists.npz", **out)
    print("wrote", HERE / "dists.npz", os.path.getsize(HERE / "dists.npz"), "bytes")


if __name__ == "__main__":
    main()
