"""Adapter for torchmetrics (Lightning AI, https://github.com/Lightning-AI/torchmetrics).

``torchmetrics:NAME`` calls torchmetrics in its order ``f(preds, target)`` = (distorted,
reference):

* ``ssim``, ``ms_ssim``, ``psnr`` (:data:`FUNCTIONS`): the functional
  ``torchmetrics.functional.image.*`` with inputs in **[0, 1]**, ``data_range=1.0`` and
  ``reduction='none'`` (PSNR with ``dim=(1, 2, 3)``), i.e. one value per item; similarities,
  flipped into ``1-ssim``, ``1-ms_ssim``, ``-psnr``;
* ``lpips`` (AlexNet), ``lpips-vgg``, ``lpips-squeeze``:
  ``LearnedPerceptualImagePatchSimilarity(net_type=..., normalize=False)`` with inputs in
  **[-1, 1]** (its default range; ``normalize=True`` would mean [0, 1]). That class only returns
  a batch mean or sum, so the adapter calls it once per item. Its weights are downloaded on
  construction; a failed download is an error naming the metric (no substitute).

Options (``--metric-option torchmetrics:ssim.kernel_size=7``) go to the function or class.
"""
from __future__ import annotations

import importlib
import types
from typing import Any, NamedTuple

import torch

from ._common import AdapterError, AdapterSpec, Library, guard_weights, unknown_name


class Entry(NamedTuple):
    """A torchmetrics function: its name, extra fixed keywords, flip and minimum size."""

    attr: str
    fixed: dict[str, Any]
    flip: str
    min_size: int


FUNCTIONS: dict[str, Entry] = {
    "ssim": Entry("structural_similarity_index_measure", {}, "1-x", 11),
    "ms_ssim": Entry("multiscale_structural_similarity_index_measure", {}, "1-x", 161),
    "psnr": Entry("peak_signal_noise_ratio", {"dim": (1, 2, 3)}, "-x", 1),
}
#: torchmetrics' own function names accepted as aliases.
ALIASES = {e.attr: n for n, e in FUNCTIONS.items()}
#: LPIPS names -> ``net_type``.
LPIPS_NETS = {"lpips": "alex", "lpips-alex": "alex", "lpips-vgg": "vgg", "lpips-squeeze": "squeeze"}
LPIPS_MODULE = "torchmetrics.image.lpip"


def known_names(module: types.ModuleType) -> list[str]:
    """The adapter's torchmetrics names."""
    return sorted([*FUNCTIONS, *LPIPS_NETS])


def _lpips(module: types.ModuleType, name: str, spec: str, options: dict[str, Any]) -> AdapterSpec:
    for fixed in ("net_type", "normalize", "reduction"):
        if fixed in options:
            raise AdapterError(f"metric {spec!r}: option {fixed} is set by the adapter")
    lpip = importlib.import_module(LPIPS_MODULE)
    cls = lpip.LearnedPerceptualImagePatchSimilarity
    net = guard_weights(spec, LIBRARY, f"LPIPS ({LPIPS_NETS[name]})", lambda: cls(
        net_type=LPIPS_NETS[name], normalize=False, **options))
    net.eval()

    def call(distorted: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        values = [net(distorted[i:i + 1], reference[i:i + 1]).reshape(()) for i in range(distorted.shape[0])]
        net.reset()  # forward() also accumulates a running mean; the adapter does not use it
        return torch.stack(values)

    return AdapterSpec(short=name, call=call, library_range=(-1.0, 1.0), modules=(net,))


def _function(attr: str) -> Any:
    """``torchmetrics.functional.image.ATTR`` (its place since 1.x), else ``torchmetrics.functional.ATTR``."""
    for where in ("torchmetrics.functional.image", "torchmetrics.functional"):
        try:
            functional = importlib.import_module(where)
        except ImportError:
            continue
        if hasattr(functional, attr):
            return getattr(functional, attr)
    raise AdapterError(f"this torchmetrics has no function {attr} (looked in torchmetrics.functional.image "
                       "and torchmetrics.functional)")


def build(module: types.ModuleType, name: str, spec: str, options: dict[str, Any]) -> AdapterSpec:
    """The :class:`AdapterSpec` of ``torchmetrics:name`` (see module)."""
    name = ALIASES.get(name, name)
    if name in LPIPS_NETS:
        return _lpips(module, name, spec, options)
    entry = FUNCTIONS.get(name)
    if entry is None:
        raise unknown_name(LIBRARY, spec, name, known_names(module))
    for fixed in ("data_range", "reduction", *entry.fixed):
        if fixed in options:
            raise AdapterError(f"metric {spec!r}: option {fixed} is set by the adapter")
    fn = _function(entry.attr)

    def call(distorted: torch.Tensor, reference: torch.Tensor) -> Any:
        return fn(distorted, reference, data_range=1.0, reduction="none", **entry.fixed, **options)

    return AdapterSpec(short=name, call=call, flip=entry.flip, min_size=entry.min_size)


LIBRARY = Library(name="torchmetrics", pip="torchmetrics", known_names=known_names, build=build)
