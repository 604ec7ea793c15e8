"""Adapter for piq (PyTorch Image Quality, Kastryulin et al. 2022, https://github.com/photosynthesis-team/piq).

``piq:NAME`` calls piq with inputs in **[0, 1]** (``data_range=1.0``) and ``reduction='none'``
(one value per item), in piq's order ``f(x, y)`` = (distorted, reference):

* weight-free functions (:data:`FUNCTIONS`): ``piq.NAME(x, y, data_range=1.0, reduction='none',
  **options)``; the similarities among them are flipped (``1-ssim``, ``-psnr``, see
  :mod:`._common`);
* networks with downloaded weights (:data:`NETWORKS`): ``piq.CLASS(reduction='none', **options)``
  built once; a failed download is an error naming the metric (no substitute weights).

Options (``--metric-option piq:ssim.kernel_size=7``) go to the piq function or class, checked
against its signature.
"""
from __future__ import annotations

import inspect
import types
from typing import Any, NamedTuple

from ._common import AdapterError, AdapterSpec, Library, guard_weights, unknown_name


class Entry(NamedTuple):
    """A piq metric: its attribute, direction (``None`` = distance, else a flip) and min size."""

    attr: str
    flip: str | None = None
    min_size: int = 1


#: Weight-free piq functions: adapter name -> entry (similarities flipped; SSIM needs 11 px,
#: MS-SSIM 161 px at its defaults). VIF-p can exceed 1 (contrast enhancement), hence ``-x``.
FUNCTIONS: dict[str, Entry] = {
    "ssim": Entry("ssim", "1-x", 11),
    "ms_ssim": Entry("multi_scale_ssim", "1-x", 161),
    "iw_ssim": Entry("information_weighted_ssim", "1-x", 161),
    "psnr": Entry("psnr", "-x"),
    "fsim": Entry("fsim", "1-x"),
    "vsi": Entry("vsi", "1-x"),
    "vif_p": Entry("vif_p", "-x"),
    "haarpsi": Entry("haarpsi", "1-x"),
    "srsim": Entry("srsim", "1-x"),
    "dss": Entry("dss", "1-x"),
    "gmsd": Entry("gmsd"),
    "ms_gmsd": Entry("multi_scale_gmsd"),
    "mdsi": Entry("mdsi"),
}
#: piq's own function names accepted as aliases.
ALIASES = {"multi_scale_ssim": "ms_ssim", "information_weighted_ssim": "iw_ssim", "vif": "vif_p",
           "multi_scale_gmsd": "ms_gmsd"}
#: Networks with weights piq downloads on construction (all distances).
NETWORKS: dict[str, Entry] = {"dists": Entry("DISTS"), "lpips": Entry("LPIPS"), "pieapp": Entry("PieAPP")}


def known_names(module: types.ModuleType) -> list[str]:
    """Adapter names whose piq attribute this piq version has."""
    table = {**FUNCTIONS, **NETWORKS}
    return sorted(n for n, e in table.items() if hasattr(module, e.attr))


def _check_options(fn: Any, spec: str, options: dict[str, Any], fixed: tuple[str, ...]) -> None:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    allowed = [n for n in params if n not in fixed and n not in ("x", "y", "self")]
    bad = sorted(set(options) - set(allowed))
    if bad or set(options) & set(fixed):
        raise AdapterError(f"metric {spec!r} has no option {', '.join(bad or sorted(set(options) & set(fixed)))}; "
                           f"piq's {getattr(fn, '__name__', 'function')} accepts {', '.join(allowed)} "
                           f"({', '.join(fixed)} are set by the adapter)")


def build(module: types.ModuleType, name: str, spec: str, options: dict[str, Any]) -> AdapterSpec:
    """The :class:`AdapterSpec` of ``piq:name`` (see module)."""
    name = ALIASES.get(name, name)
    if name in NETWORKS and hasattr(module, NETWORKS[name].attr):
        cls = getattr(module, NETWORKS[name].attr)
        _check_options(cls, spec, options, ("reduction",))
        net = guard_weights(spec, LIBRARY, cls.__name__, lambda: cls(reduction="none", **options))
        net.eval()
        return AdapterSpec(short=name, call=lambda x, y: net(x, y), modules=(net,))
    entry = FUNCTIONS.get(name)
    if entry is None or not hasattr(module, entry.attr):
        raise unknown_name(LIBRARY, spec, name, known_names(module))
    fn = getattr(module, entry.attr)
    _check_options(fn, spec, options, ("data_range", "reduction"))

    def call(x: Any, y: Any) -> Any:
        return fn(x, y, data_range=1.0, reduction="none", **options)

    return AdapterSpec(short=name, call=call, flip=entry.flip, min_size=entry.min_size)


LIBRARY = Library(name="piq", pip="piq", known_names=known_names, build=build)
