"""Stand-ins for piq, pyiqa and torchmetrics that reproduce each library's calling convention.

The real libraries cannot be installed next to the test venv's torch (torchvision does not
import), so the adapter tests inject these modules into ``sys.modules``. Each stub

* takes arguments in its library's order (piq ``f(x, y)``, pyiqa ``metric(distorted, reference)``,
  torchmetrics ``f(preds, target)``) and checks its library's input range where the library does;
* honours its library's reduction default (piq / torchmetrics: a batch mean unless
  ``reduction='none'``; pyiqa ``as_loss=True``: a mean; torchmetrics PSNR without ``dim``: one
  value over the whole batch; torchmetrics LPIPS: always a batch mean);
* for the recorded inputs of ``reference/adapters.npz`` (distorted, reference in [0, 1]) returns
  the recorded raw outputs (and raises the recorded error where the library failed); given the
  recorded pair swapped, it fails loudly; other inputs get a simple stand-in value
  (``1 - MSE`` for similarities, the mean absolute difference for distances, PSNR in dB);
* for weighted metrics raises ``urllib.error.URLError`` with the recorded offline message.

Every call is appended to :data:`CALLS` as ``(qualified name, first arg, second arg, kwargs)``.
"""
from __future__ import annotations

import sys
import types
import urllib.error
from pathlib import Path

import numpy as np
import torch
from torch import nn

REF_DIR = Path(__file__).resolve().parent / "reference"
if str(REF_DIR) not in sys.path:
    sys.path.insert(0, str(REF_DIR))

from inputs import make_pairs, stack_unit  # noqa: E402

REF = np.load(REF_DIR / "adapters.npz")
CALLS: list[tuple[str, torch.Tensor, torch.Tensor, dict]] = []
VERSIONS = dict(v.split(" ", 1) for v in REF["versions"])
OFFLINE_MESSAGE = str(REF["offline_messages"][0])


def recorded_groups() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``[(reference, distorted)]`` float32 [0, 1] per recorded group; SHA-256 checked first."""
    g64 = make_pairs(((64, 64), (64, 64)), seed=5)[:4]
    g256 = make_pairs(((256, 256),), seed=6)[:2]
    pairs = [*g64, *g256]
    assert [p.sha256 for p in pairs] == list(REF["sha256"]), "recorded inputs changed (not a metric mismatch)"
    return [(torch.from_numpy(stack_unit([p.ref for p in g], dtype=np.float32)),
             torch.from_numpy(stack_unit([p.dist for p in g], dtype=np.float32))) for g in (g64, g256)]


GROUPS = recorded_groups()


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a.detach().double().cpu(), b.double(), atol=2e-6))


def recorded(key: str, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor | None:
    """The recorded output of ``key`` for (distorted, reference) = (first, second), else None."""
    for gi, (ref, dist) in enumerate(GROUPS):
        if _same(first, ref) and _same(second, dist):
            raise AssertionError(f"{key}: got (reference, distorted); the library takes (distorted, reference)")
        if _same(first, dist) and _same(second, ref):
            err = str(REF[key + "__error"][gi])
            if err:
                raise ValueError(err)
            return torch.tensor(REF[key][REF["group"] == gi], dtype=first.dtype)
    return None


def stand_in(first: torch.Tensor, second: torch.Tensor, kind: str) -> torch.Tensor:
    """A value per item for inputs that were not recorded (see module)."""
    diff = (first - second).flatten(1)
    if kind == "psnr":
        return 10 * torch.log10(1.0 / diff.pow(2).mean(1).clamp_min(1e-10))
    if kind == "similarity":
        return 1 - diff.pow(2).mean(1)
    return diff.abs().mean(1)


def _kind(name: str, lower_better: bool) -> str:
    return "psnr" if "psnr" in name or "peak" in name else ("distance" if lower_better else "similarity")


def _reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    return values if reduction in ("none", None) else values.mean()


def _offline(*args, **kwargs):
    raise urllib.error.URLError(OFFLINE_MESSAGE.removeprefix("<urlopen error ").removesuffix(">"))


# -- piq ------------------------------------------------------------------------------------------
PIQ_DISTANCES = ("gmsd", "multi_scale_gmsd", "mdsi")


def _piq_function(name: str):
    def fn(x, y, data_range=1.0, reduction="mean", **kwargs):
        CALLS.append((f"piq.{name}", x, y, {"data_range": data_range, "reduction": reduction, **kwargs}))
        for t in (x, y):  # piq's _validate_input
            if float(t.detach().min()) < 0 or float(t.detach().max()) > data_range:
                raise ValueError(f"Expected values to be in range [0, {data_range}], got "
                                 f"[{float(t.detach().min())}, {float(t.detach().max())}]")
        values = recorded(f"piq:{name}", x, y)
        if values is None:
            values = stand_in(x, y, _kind(name, name in PIQ_DISTANCES))
        return _reduce(values, reduction)

    fn.__name__ = name
    return fn


def make_piq() -> types.ModuleType:
    mod = types.ModuleType("piq")
    mod.__version__ = VERSIONS["piq"]
    for key in REF.files:
        if key.startswith("piq:") and "__" not in key:
            setattr(mod, key[4:], _piq_function(key[4:]))
    generic_ssim = mod.ssim

    def ssim(x, y, kernel_size=11, kernel_sigma=1.5, data_range=1.0, reduction="mean", full=False,
             downsample=True, k1=0.01, k2=0.03):  # piq 0.8.0's signature (no **kwargs)
        given = {"kernel_size": kernel_size, "kernel_sigma": kernel_sigma, "full": full, "downsample": downsample,
                 "k1": k1, "k2": k2}
        defaults = {"kernel_size": 11, "kernel_sigma": 1.5, "full": False, "downsample": True, "k1": 0.01, "k2": 0.03}
        return generic_ssim(x, y, data_range=data_range, reduction=reduction,
                            **{k: v for k, v in given.items() if v != defaults[k]})

    mod.ssim = ssim

    class DISTS(nn.Module):
        def __init__(self, reduction="mean", mean=None, std=None):
            super().__init__()
            _offline()

    class LPIPS(nn.Module):
        def __init__(self, replace_pooling=False, distance="mse", reduction="mean", mean=None, std=None):
            super().__init__()
            _offline()

    mod.DISTS, mod.LPIPS = DISTS, LPIPS
    return mod


# -- pyiqa ----------------------------------------------------------------------------------------
PYIQA_WEIGHTED = {"dists": True, "lpips": True, "stlpips": True}
PYIQA_NR = ("niqe", "brisque")


class PyiqaModel(nn.Module):
    """pyiqa's InferenceModel: ``forward(target, ref)``, distorted first; ``lower_better``; ``device``."""

    def __init__(self, name: str, as_loss: bool, device):
        super().__init__()
        self.name, self.as_loss, self.device = name, as_loss, device
        self.lower_better = bool(REF[f"pyiqa:{name}__lower_better"])

    def forward(self, target, ref):
        CALLS.append((f"pyiqa.{self.name}", target, ref, {"as_loss": self.as_loss}))
        for x in (target, ref):  # pyiqa's is_valid_input (eps = 1e-6)
            assert x.min() > -1e-6 and x.max() < 1 + 1e-6, (
                f"Input must be normalized to [0, 1], but got min={x.min():.4f}, max={x.max():.4f}")
        if target.device != torch.device(self.device):
            raise RuntimeError(f"pyiqa stub: input on {target.device}, model on {self.device}")
        values = recorded(f"pyiqa:{self.name}", target, ref)
        if values is None:
            values = stand_in(target, ref, _kind(self.name, self.lower_better))
        return values.mean() if self.as_loss else values


def make_pyiqa() -> types.ModuleType:
    mod = types.ModuleType("pyiqa")
    mod.__version__ = VERSIONS["pyiqa"]
    fr = sorted({k[6:-14] for k in REF.files if k.endswith("__lower_better")} | set(PYIQA_WEIGHTED))

    def list_models(metric_mode=None):
        return {"FR": fr, "NR": list(PYIQA_NR)}.get(metric_mode, sorted([*fr, *PYIQA_NR]))

    def create_metric(metric_name, as_loss=False, device=None, **kwargs):
        assert metric_name in list_models(), f"Metric {metric_name} not implemented yet."
        if metric_name in PYIQA_WEIGHTED:
            _offline()
        return PyiqaModel(metric_name, as_loss, device)

    mod.list_models, mod.create_metric = list_models, create_metric
    return mod


# -- torchmetrics ---------------------------------------------------------------------------------
def _tm_function(name: str):
    def fn(preds, target, data_range=None, reduction="elementwise_mean", dim=None, **kwargs):
        CALLS.append((f"torchmetrics.{name}", preds, target,
                      {"data_range": data_range, "reduction": reduction, "dim": dim, **kwargs}))
        values = recorded(f"torchmetrics:{name}", preds, target)
        if values is None:
            values = stand_in(preds, target, _kind(name, False))
        if name == "peak_signal_noise_ratio" and dim is None:  # one PSNR over the whole batch
            values = stand_in(preds.reshape(1, -1), target.reshape(1, -1), "psnr")[0]
        return _reduce(values, reduction)

    fn.__name__ = name
    return fn


class StubLPIPS(nn.Module):
    """torchmetrics' LearnedPerceptualImagePatchSimilarity: a batch mean, [-1, 1] unless normalize."""

    online = False

    def __init__(self, net_type="alex", reduction="mean", normalize=False):
        super().__init__()
        if not self.online:
            _offline()
        self.net_type, self.normalize, self.reduction = net_type, normalize, reduction
        self.updates = 0

    def forward(self, img1, img2):
        CALLS.append(("torchmetrics.lpips", img1, img2, {"normalize": self.normalize}))
        lo = 0.0 if self.normalize else -1.0
        for t in (img1, img2):
            if float(t.min()) < lo or float(t.max()) > 1.0:
                raise ValueError(f"Expected both input arguments to be normalized tensors with shape "
                                 f"[N, 3, H, W] in [{lo}, 1]")
        self.updates += 1
        return stand_in(img1, img2, "distance").mean()

    def reset(self):
        self.updates = 0


def make_torchmetrics() -> dict[str, types.ModuleType]:
    root = types.ModuleType("torchmetrics")
    root.__version__ = VERSIONS["torchmetrics"]
    functional = types.ModuleType("torchmetrics.functional")
    functional.__path__ = []  # a package, like the real one
    functional_image = types.ModuleType("torchmetrics.functional.image")
    for key in REF.files:
        if key.startswith("torchmetrics:") and "__" not in key:
            setattr(functional_image, key[13:], _tm_function(key[13:]))
    image = types.ModuleType("torchmetrics.image")
    lpip = types.ModuleType("torchmetrics.image.lpip")
    lpip.LearnedPerceptualImagePatchSimilarity = StubLPIPS
    root.functional, root.image, image.lpip, functional.image = functional, image, lpip, functional_image
    return {"torchmetrics": root, "torchmetrics.functional": functional,
            "torchmetrics.functional.image": functional_image, "torchmetrics.image": image,
            "torchmetrics.image.lpip": lpip}


def install(monkeypatch, *libraries: str) -> None:
    """Put the stubs of ``libraries`` (default: all three) into ``sys.modules`` for one test."""
    CALLS.clear()
    for lib in libraries or ("piq", "pyiqa", "torchmetrics"):
        mods = {"piq": lambda: {"piq": make_piq()}, "pyiqa": lambda: {"pyiqa": make_pyiqa()},
                "torchmetrics": make_torchmetrics}[lib]()
        for name, mod in mods.items():
            monkeypatch.setitem(sys.modules, name, mod)
