"""Metrics of piq, pyiqa and torchmetrics in the toolkit's metric contract (see :mod:`._common`).

Their names are ``piq:NAME``, ``pyiqa:NAME`` and ``torchmetrics:NAME``.

Each library is imported only when one of its names is asked for; a missing library is an error
that names it and the ``pip install`` line, an unknown name an error listing the library's names
(with a "did you mean"). :func:`create_adapter_metric` is what
:func:`bapps_toolkit.metrics.create_metric` calls for these prefixes, so every command that takes
metric names (``evaluate``, ``score``, the Python API) accepts them, with options typed by
:func:`typed_adapter_options`.

Per library: :mod:`.piq`, :mod:`.pyiqa`, :mod:`.torchmetrics` (input ranges, argument order,
reduction, direction of each).
"""
from __future__ import annotations

import importlib.util
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from ..base import Metric
from . import piq, pyiqa, torchmetrics
from ._common import (
    AdapterError,
    AdapterMetric,
    AdapterSpec,
    Library,
    WeightsUnavailableError,
    import_library,
    library_version,
)

#: Adapter prefix -> library.
LIBRARIES: dict[str, Library] = {lib.name: lib for lib in (piq.LIBRARY, pyiqa.LIBRARY, torchmetrics.LIBRARY)}


def split_spec(spec: str) -> tuple[Library, str] | None:
    """``(library, name)`` for ``"LIB:NAME"`` with a known ``LIB`` (any case); else ``None``."""
    prefix, sep, name = str(spec).partition(":")
    lib = LIBRARIES.get(prefix.lower())
    if not sep or lib is None:
        return None
    return lib, name.strip().lower()


def is_adapter_spec(spec: str) -> bool:
    """True for ``piq:…``, ``pyiqa:…``, ``torchmetrics:…``."""
    return split_spec(spec) is not None


def create_adapter_metric(spec: str, *, input_range: Sequence[float] = (-1.0, 1.0), **options: Any) -> Metric:
    """The library metric ``spec`` names, in the toolkit's contract.

    ``input_range`` is the toolkit-side range of the inputs (default ``(-1, 1)``; the adapter maps
    it to the library's). Other ``options`` go to the library's function or class.
    Raises :class:`AdapterError` (a ``ValueError``) for a missing library, an unknown name or an
    option the library does not take, :class:`WeightsUnavailableError` when the weights cannot
    be downloaded.
    """
    found = split_spec(spec)
    if found is None:
        raise AdapterError(f"{spec!r} is not an adapter spec; use one of "
                           f"{', '.join(f'{p}:NAME' for p in LIBRARIES)}")
    lib, name = found
    if not name:
        raise AdapterError(f"metric {spec!r}: give a {lib.name} metric name after '{lib.name}:'")
    module = import_library(lib, spec)
    canonical = f"{lib.name}:{name}"
    adapter = lib.build(module, name, canonical, dict(options))
    metric = AdapterMetric(adapter, name=canonical, library=f"{lib.name} {library_version(module, lib.name)}",
                           input_range=input_range)
    return metric.eval()


def installed(lib: Library) -> bool:
    """Whether ``lib`` is imported already or can be found (without importing it)."""
    if sys.modules.get(lib.name) is not None:
        return True
    try:
        return importlib.util.find_spec(lib.name) is not None
    except (ImportError, ValueError):
        return False


def describe_adapters() -> dict[str, str]:
    """``{"LIB:<name>": one line}`` per library: its version and names, or how to install it.

    Installed libraries are imported to list their names; one that is installed but does not
    import says so.
    """
    out: dict[str, str] = {}
    for prefix, lib in LIBRARIES.items():
        key = f"{prefix}:<name>"
        if not installed(lib):
            out[key] = f"adapter for {lib.name} metrics: not installed (pip install {lib.pip})"
            continue
        try:
            module = import_library(lib, key)
        except AdapterError as exc:
            out[key] = f"adapter for {lib.name} metrics: installed but does not import ({exc.__cause__})"
            continue
        names = ", ".join(lib.known_names(module))
        out[key] = f"adapter for {lib.name} {library_version(module, lib.name)} metrics: {names}"
    return out


_TRUE = ("true", "yes", "on")
_FALSE = ("false", "no", "off")


def _guess(text: str) -> Any:
    """A command-line option value: bool, int, float, a comma list of those, or the string."""
    if "," in text:
        return tuple(_guess(t.strip()) for t in text.split(","))
    low = text.lower()
    if low in _TRUE or low in _FALSE:
        return low in _TRUE
    if low == "none":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def typed_adapter_options(raw: Mapping[str, str]) -> dict[str, Any]:
    """String options of an adapter spec typed from their text (the libraries' signatures vary)."""
    out = {k: _guess(v) for k, v in raw.items()}
    if "input_range" in out and not isinstance(out["input_range"], tuple):
        raise AdapterError(f"metric option input_range: expected LOW,HIGH, got {raw['input_range']!r}")
    return out


__all__ = ["AdapterError", "AdapterMetric", "AdapterSpec", "Library", "LIBRARIES", "WeightsUnavailableError",
           "create_adapter_metric", "describe_adapters", "is_adapter_spec", "split_spec", "typed_adapter_options"]
