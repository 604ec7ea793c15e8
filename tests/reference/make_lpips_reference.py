"""Record LPIPS reference vectors from the official ``lpips`` package (v0.1.4).

Run with the reference environment (torch 2.5.1 + torchvision 0.20.1 + lpips 0.1.4)::

    /work/refvenv/bin/python tests/reference/make_lpips_reference.py

Writes, next to this file:

* ``torchvision_param_shapes.json`` — torchvision's parameter names and shapes for alexnet,
  vgg16 and squeezenet1_1 (``features`` and ``classifier`` separately, in state-dict order).
* ``lpips.npz`` — inputs and official distances:

  - ``x0_{H}x{W}``, ``x1_{H}x{W}``: uint8 ``[N, 3, H, W]`` image pairs (scikit-image photo
    crops and seeded distortions, generated below); the model input is ``u8 / 127.5 - 1``.
  - ``d_{net}_v{version}_{lin|base}_{H}x{W}``: float64 ``[N]`` distances computed by
    ``lpips.LPIPS`` in float64 on the seeded random backbone of ``random_backbone.py``
    with the package's own official linear weights (``lin``) or ``lpips=False`` (``base``).
  - ``d32_…``: the same in float32 (to show the float32 round-off of the reference itself).
  - ``map_{net}_v{version}_{lin|base}_{H}x{W}``: float64 ``[N, 1, H, W]`` maps from
    ``spatial=True``, for a few cases and the first ``MAP_PAIRS`` pairs.

The backbone itself is not stored: ``random_backbone.py`` regenerates it from numpy seeds.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

NETS = ("alex", "vgg", "squeeze")
SIZES = ((64, 64), (67, 93), (33, 47))
PAIRS_PER_SIZE = 6
MAP_PAIRS = 2  # spatial maps are recorded for the first pairs only (file size)
SPATIAL_CASES = (("alex", "0.1", True, (67, 93)), ("squeeze", "0.0", False, (33, 47)), ("vgg", "0.1", True, (64, 64)))


def record_torchvision_shapes() -> None:
    import torchvision.models as tvm

    builders = {"alex": tvm.alexnet, "vgg": tvm.vgg16, "squeeze": tvm.squeezenet1_1}
    out = {}
    for net, build in builders.items():
        sd = build(weights=None).state_dict()
        out[net] = {
            "torchvision_arch": build.__name__,
            "features": [[k, list(v.shape)] for k, v in sd.items() if k.startswith("features.")],
            "classifier": [[k, list(v.shape)] for k, v in sd.items() if k.startswith("classifier.")],
        }
    # One parameter per line, so diffs stay readable.
    lines = ["{"]
    for i, (net, d) in enumerate(out.items()):
        lines.append(f' {json.dumps(net)}: {{"torchvision_arch": {json.dumps(d["torchvision_arch"])},')
        for part in ("features", "classifier"):
            rows = ",\n".join(f"   {json.dumps(r)}" for r in d[part])
            lines.append(f'  {json.dumps(part)}: [\n{rows}\n  ]' + ("," if part == "features" else ""))
        lines.append(" }" + ("," if i < len(out) - 1 else ""))
    lines.append("}")
    text = "\n".join(lines) + "\n"
    assert json.loads(text) == out
    (HERE / "torchvision_param_shapes.json").write_text(text, encoding="utf-8")


def make_pairs(h: int, w: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Photo crops and distorted versions, uint8 [N, 3, H, W]."""
    from skimage import data, filters, transform

    rng = np.random.default_rng(seed)
    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket(), data.immunohistochemistry()]
    x0, x1 = [], []
    for i in range(PAIRS_PER_SIZE):
        img = photos[i % len(photos)]
        top = int(rng.integers(0, img.shape[0] - h - 4))
        left = int(rng.integers(0, img.shape[1] - w - 4))
        ref = img[top:top + h, left:left + w].astype(np.float64)
        kind = i % 6
        if kind == 0:  # additive Gaussian noise
            dist = ref + rng.normal(0, 12.0, ref.shape)
        elif kind == 1:  # Gaussian blur
            dist = filters.gaussian(ref, sigma=1.5, channel_axis=-1, preserve_range=True)
        elif kind == 2:  # small shift
            dist = img[top + 2:top + 2 + h, left + 3:left + 3 + w].astype(np.float64)
        elif kind == 3:  # contrast / brightness / colour change
            dist = (ref - 128.0) * 0.8 + 128.0 + rng.uniform(-20, 20, size=(1, 1, 3))
        elif kind == 4:  # down-up sampling
            small = transform.resize(ref, (h // 2, w // 2), order=1, anti_aliasing=True, preserve_range=True)
            dist = transform.resize(small, (h, w), order=1, preserve_range=True)
        else:  # a different photo altogether
            other = photos[(i + 2) % len(photos)]
            dist = other[:h, :w].astype(np.float64)
        x0.append(np.clip(np.rint(ref), 0, 255).astype(np.uint8))
        x1.append(np.clip(np.rint(dist), 0, 255).astype(np.uint8))
    to_nchw = lambda a: np.ascontiguousarray(np.stack(a).transpose(0, 3, 1, 2))  # noqa: E731
    return to_nchw(x0), to_nchw(x1)


def official_model(net: str, version: str, lin: bool, spatial: bool = False):
    import lpips
    from random_backbone import random_backbone_state_dict

    m = lpips.LPIPS(pretrained=True, net=net, version=version, lpips=lin, spatial=spatial,
                    pnet_rand=True, verbose=False)
    state = {k: torch.from_numpy(v) for k, v in random_backbone_state_dict(net).items()}
    # The official trunk keeps torchvision's module indices inside its slices:
    # "slice2.3.weight" is torchvision's "features.3.weight".
    own = m.net.state_dict()
    mapped = {name: state["features." + name.split(".", 1)[1]] for name in own}
    m.net.load_state_dict(mapped, strict=True)
    return m.eval()


def to_input(u8: np.ndarray, dtype) -> torch.Tensor:
    return torch.from_numpy((u8.astype(np.float64) / 127.5 - 1.0).astype(dtype))


def main() -> None:
    record_torchvision_shapes()
    torch.set_grad_enabled(False)
    out: dict[str, np.ndarray] = {}
    for si, (h, w) in enumerate(SIZES):
        x0, x1 = make_pairs(h, w, seed=1000 + si)
        out[f"x0_{h}x{w}"], out[f"x1_{h}x{w}"] = x0, x1
    for net in NETS:
        for version in ("0.1", "0.0"):
            for lin in (True, False):
                m = official_model(net, version, lin)
                for h, w in SIZES:
                    key = f"{net}_v{version}_{'lin' if lin else 'base'}_{h}x{w}"
                    a, b = out[f"x0_{h}x{w}"], out[f"x1_{h}x{w}"]
                    d64 = m.double()(to_input(a, np.float64), to_input(b, np.float64))
                    d32 = m.float()(to_input(a, np.float32), to_input(b, np.float32))
                    out["d_" + key] = d64.reshape(-1).numpy()
                    out["d32_" + key] = d32.reshape(-1).numpy()
                    rel = np.max(np.abs(out["d32_" + key] - out["d_" + key]) / np.abs(out["d_" + key]))
                    print(f"{key}: {np.round(out['d_' + key], 5)}  (official f32 vs f64 rel {rel:.2e})")
    for net, version, lin, (h, w) in SPATIAL_CASES:
        m = official_model(net, version, lin, spatial=True).double()
        key = f"{net}_v{version}_{'lin' if lin else 'base'}_{h}x{w}"
        a, b = out[f"x0_{h}x{w}"][:MAP_PAIRS], out[f"x1_{h}x{w}"][:MAP_PAIRS]
        out["map_" + key] = m(to_input(a, np.float64), to_input(b, np.float64)).numpy()
    np.savez_compressed(HERE / "lpips.npz", **out)
    print("wrote", HERE / "lpips.npz", sum(v.nbytes for v in out.values()), "bytes uncompressed")


if __name__ == "__main__":
    main()
