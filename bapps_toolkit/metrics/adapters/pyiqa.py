"""Adapter for pyiqa (IQA-PyTorch, Chen & Mo, https://github.com/chaofengc/IQA-PyTorch).

``pyiqa:NAME`` builds ``pyiqa.create_metric(NAME, as_loss=False, device=..., **options)`` once
(pyiqa downloads the weights of deep metrics such as ``dists``, ``lpips`` or ``stlpips`` then; a
failed download is an error naming the metric, never a substitute) and calls it as pyiqa wants:
**distorted first**, ``metric(distorted, reference)``, inputs in **[0, 1]**; ``as_loss=False``
gives one value per item. Only full-reference names (``pyiqa.list_models(metric_mode='FR')``)
are accepted.

pyiqa computes without gradients when ``as_loss=False`` (``torch.set_grad_enabled(as_loss)``), so
these adapters evaluate; they are not training losses.

Direction comes from the metric's own ``lower_better`` flag: a similarity (``lower_better``
False) is flipped into ``1 - s`` when it is bounded by 1 (:data:`BOUNDED_SIMILARITIES`) and into
``-s`` otherwise (``-psnr``, ``-vif``), and the label says so.
"""
from __future__ import annotations

import types
from typing import Any

import torch

from ._common import AdapterError, AdapterSpec, Library, guard_weights, unknown_name

#: pyiqa similarities with values <= 1 (flipped by ``1 - s``); other similarities use ``-s``.
BOUNDED_SIMILARITIES = frozenset({"ssim", "ssimc", "ms_ssim", "cw_ssim", "fsim"})


def known_names(module: types.ModuleType) -> list[str]:
    """Full-reference metric names of pyiqa."""
    return sorted(module.list_models(metric_mode="FR"))


def _move(model: Any, device: torch.device) -> None:
    """Put the pyiqa model on ``device``: its weights, and the ``device`` it moves inputs to."""
    if getattr(model, "device", device) != device:
        model.to(device)
        model.device = device


def build(module: types.ModuleType, name: str, spec: str, options: dict[str, Any]) -> AdapterSpec:
    """The :class:`AdapterSpec` of ``pyiqa:name`` (see module)."""
    if name not in module.list_models():
        raise unknown_name(LIBRARY, spec, name, known_names(module))
    if name not in known_names(module):
        raise AdapterError(f"metric {spec!r}: pyiqa's {name!r} is a no-reference metric (it scores one "
                           f"image); the toolkit compares pairs, so use one of pyiqa's full-reference "
                           f"names: {', '.join(known_names(module))}")
    for fixed in ("as_loss", "device"):
        if fixed in options:
            raise AdapterError(f"metric {spec!r}: option {fixed} is set by the adapter")
    model = guard_weights(spec, LIBRARY, name, lambda: module.create_metric(
        name, as_loss=False, device=torch.device("cpu"), **options))
    if isinstance(model, torch.nn.Module):
        model.eval()
    lower_better = getattr(model, "lower_better", None)
    if lower_better is None:
        raise AdapterError(f"metric {spec!r}: pyiqa's {name!r} does not say whether lower is better "
                           "(no lower_better attribute), so its direction is unknown")
    flip = None if lower_better else ("1-x" if name in BOUNDED_SIMILARITIES else "-x")

    def call(distorted: torch.Tensor, reference: torch.Tensor) -> Any:
        _move(model, distorted.device)
        return model(distorted, reference)

    modules = (model,) if isinstance(model, torch.nn.Module) else ()
    return AdapterSpec(short=name, call=call, flip=flip, modules=modules)


LIBRARY = Library(name="pyiqa", pip="pyiqa", known_names=known_names, build=build)
