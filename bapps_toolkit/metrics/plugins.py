"""Metrics from outside the toolkit: plugin specs, the ``bapps_toolkit.metrics`` entry points.

A plugin spec names a Python object:

* ``package.module:attr`` -- ``attr`` of an importable module;
* ``path/to/file.py:attr`` -- ``attr`` of a Python file (relative to the working directory);
* an entry-point name of the group :data:`ENTRY_POINT_GROUP` (an installed package declares
  ``my-metric = my_pkg.metrics:MyMetric`` there; :func:`describe_metrics` lists it with its
  distribution).

The object may be a :class:`~.base.Metric` (instance or subclass), a factory returning one, or any
``nn.Module``/callable ``f(x0, x1)`` that maps two NCHW batches to one distance per item. The
latter is wrapped in :class:`CallableMetric`: inputs validated in the declared ``input_range``
(the object's ``input_range`` attribute, default ``(-1, 1)``), output checked to be shape ``[N]``,
lower = more similar unless the object declares ``higher_is_better = True`` (then the value is
negated and the label says ``flipped``).

Factory options (``options_from_strings``) are typed by the factory's signature.

The prefixes ``piq:``, ``pyiqa:`` and ``torchmetrics:`` are not plugin specs: they name metrics of
those libraries through :mod:`.adapters`.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from .._plugin_files import PluginFileError, resolve_spec
from ..errors import UsageError
from . import adapters, base
from .base import Metric
from .plugin_specs import ENTRY_POINT_GROUP, entry_points, is_file_spec, is_plugin_spec  # noqa: F401 (re-exported)

#: Options a wrapped callable (not a factory) accepts.
WRAP_OPTIONS = ("input_range", "higher_is_better")


class PluginError(UsageError):
    """A plugin spec that cannot be turned into a metric; the message names the spec."""


class CallableMetric(Metric):
    """A callable ``f(x0, x1) -> [N]`` wrapped in the metric contract (see module)."""

    def __init__(self, fn: Callable[..., Any], *, name: str, input_range: Sequence[float] = (-1.0, 1.0),
                 higher_is_better: bool = False, origin: str = ""):
        super().__init__(input_range=input_range)
        self.name = name
        self.fn = fn  # an nn.Module is registered as a submodule, so .to(device) moves it
        self.higher_is_better = bool(higher_is_better)
        self.origin = origin

    @property
    def label(self) -> str:
        """The metric's label, marked ``(similarity, flipped)`` for a similarity."""
        text = super().label
        return f"{text} (similarity, flipped)" if self.higher_is_better else text

    def _distance(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        out = self.fn(x0, x1)
        if not isinstance(out, torch.Tensor):
            raise PluginError(f"metric {self.name!r}: returned {type(out).__name__}, expected a "
                              f"torch.Tensor of shape [{x0.shape[0]}] (one distance per item)")
        if tuple(out.shape) != (x0.shape[0],):
            raise PluginError(f"metric {self.name!r}: returned shape {tuple(out.shape)} for a batch of "
                              f"{x0.shape[0]}; expected [{x0.shape[0]}] (one distance per item, not a mean)")
        return -out if self.higher_is_better else out


def _origin(ep: importlib.metadata.EntryPoint) -> str:
    dist = ep.dist
    where = f"{dist.metadata['Name']} {dist.version}" if dist is not None else "an installed package"
    return f"{ep.value} (entry point of {where})"


def load_object(spec: str, what: str = "metric plugin") -> tuple[Any, str]:
    """``(object, origin)`` that ``spec`` names (``module:attr``, ``file.py:attr``, entry point).

    :class:`PluginError` messages begin ``{what} {spec!r}``.
    """
    ep = entry_points().get(spec.lower())
    if ep is not None:
        try:
            return ep.load(), _origin(ep)
        except Exception as exc:
            raise PluginError(f"{what} {spec!r} ({ep.value}): loading failed: "
                              f"{type(exc).__name__}: {exc}") from exc
    try:
        obj = resolve_spec(spec, "_bapps_plugin", expected="module:attr or path/to/file.py:attr")
    except PluginFileError as exc:
        raise PluginError(f"{what} {spec!r}: {exc}") from exc.__cause__
    return obj, spec


def _is_distance_fn(obj: Any) -> bool:
    """A callable taking two required positional arguments (x0, x1) is a distance, not a factory."""
    if isinstance(obj, nn.Module):
        return True
    try:
        params = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                  and p.default is p.empty]
    return len(positional) >= 2


def _wrap(obj: Any, spec: str, origin: str, options: Mapping[str, Any]) -> Metric:
    unknown = sorted(set(options) - set(WRAP_OPTIONS))
    if unknown:
        raise PluginError(f"metric plugin {spec!r}: unknown options {unknown}; a wrapped callable "
                          f"accepts only {list(WRAP_OPTIONS)}")
    return CallableMetric(
        obj, name=spec, origin=origin,
        input_range=options.get("input_range", getattr(obj, "input_range", (-1.0, 1.0))),
        higher_is_better=options.get("higher_is_better", getattr(obj, "higher_is_better", False)),
    )


def metric_from_object(obj: Any, spec: str, origin: str, options: Mapping[str, Any]) -> Metric:
    """The Metric that ``obj`` gives (see module); :class:`PluginError` if it is not a metric."""
    if isinstance(obj, Metric):
        if options:
            raise PluginError(f"metric plugin {spec!r} is a Metric instance; it takes no options "
                              f"(got {sorted(options)})")
        return obj
    if not callable(obj):
        raise PluginError(f"metric plugin {spec!r} is a {type(obj).__name__}, not a metric: give a "
                          "Metric subclass, a factory returning one, or a callable f(x0, x1) -> [N]")
    if isinstance(obj, type) and issubclass(obj, nn.Module) and not issubclass(obj, Metric):
        obj = call_factory(obj, spec, options)
        return _wrap(obj, spec, origin, {})
    if _is_distance_fn(obj) and not (isinstance(obj, type) and issubclass(obj, Metric)):
        return _wrap(obj, spec, origin, options)
    made = call_factory(obj, spec, options)
    if isinstance(made, Metric):
        return made
    if callable(made):
        return _wrap(made, spec, origin, {})
    raise PluginError(f"metric plugin {spec!r}: the factory returned a {type(made).__name__}, not a "
                      "Metric or a callable f(x0, x1) -> [N]")


def call_factory(factory: Callable[..., Any], spec: str, options: Mapping[str, Any],
                 what: str = "metric plugin") -> Any:
    """Call ``factory(**options)`` after checking that its signature takes them.

    Args:
        factory: A plugin's factory.
        spec: The plugin spec, for messages.
        options: Keyword options.
        what: What the plugin is, for messages (``"metric plugin"``, ``"net plugin"``).

    Returns:
        Whatever the factory returns.

    Raises:
        PluginError: the options do not fit the factory's signature.
    """
    try:
        inspect.signature(factory).bind(**options)
    except TypeError as exc:
        raise PluginError(f"{what} {spec!r}: options {sorted(options)} do not fit "
                          f"{getattr(factory, '__name__', 'the factory')}{_signature(factory)}: {exc}") from None
    except ValueError:  # no signature to check (builtin): let the call say
        pass
    return factory(**options)


_PLAIN = (bool, int, float, str)


def _fits(value: Any, kind: Any) -> bool:
    """``value`` is of the plain annotated ``kind`` (``Optional`` of one too); other kinds pass."""
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if typing.get_origin(kind) in (typing.Union, types.UnionType) and len(args) == 1:
        return value is None or _fits(value, args[0])
    if kind not in _PLAIN:
        return True
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, kind) and (kind is bool or not isinstance(value, bool))


def check_option_types(factory: Any, spec: str, options: Mapping[str, Any], what: str = "metric plugin") -> None:
    """Check that each option has the type ``factory`` annotates for it.

    Checked where that type is ``bool``/``int``/``float``/``str`` (or ``Optional`` of one);
    :class:`PluginError` naming the spec and the option otherwise. For options read from a file,
    before the factory sees them.
    """
    if isinstance(factory, nn.Module) or not callable(factory):
        return
    target = factory
    if isinstance(factory, type):
        target = next((vars(c)["__init__"] for c in factory.__mro__ if "__init__" in vars(c)), factory)
    try:
        hints = typing.get_type_hints(target)
    except Exception:
        return
    for key, value in options.items():
        if key in hints and not _fits(value, hints[key]):
            raise PluginError(f"{what} {spec!r}: option {key}={value!r} is a {type(value).__name__}, "
                              f"the factory takes {getattr(hints[key], '__name__', hints[key])}")


def _signature(obj: Any) -> str:
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return "(...)"


def create_plugin_metric(spec: str, **options: Any) -> Metric:
    """The metric a plugin spec names, built with ``options`` (see module)."""
    obj, origin = load_object(spec)
    metric = metric_from_object(obj, spec, origin, options)
    if metric.name != spec and not isinstance(metric, CallableMetric):
        metric.name = spec if ":" in spec else metric.name
    return metric.eval()


def create_metric(name: str, **options: Any) -> Metric:
    """Build a metric by name, e.g. ``create_metric("lpips-alex", backbone_weights=path)``.

    Registry names go to :func:`~.base.create_registered_metric`, ``piq:``/``pyiqa:``/
    ``torchmetrics:`` names to :func:`~.adapters.create_adapter_metric`, plugin specs to
    :func:`create_plugin_metric`.

    Args:
        name: A registry name, an adapter name or a plugin spec.
        **options: Keyword options of the metric's factory.

    Returns:
        The metric, in eval mode.

    Raises:
        UnknownMetricError: ``name`` is none of these (the message lists the known names).
        MetricOptionError: a registered metric does not take one of ``options``.
        PluginError: a plugin spec that does not give a metric.
    """
    if adapters.is_adapter_spec(str(name)):
        return adapters.create_adapter_metric(str(name), **options)
    if base.registered_entry(name) is not None or not is_plugin_spec(str(name)):
        return base.create_registered_metric(name, **options)
    return create_plugin_metric(str(name), **options)


def list_metrics() -> list[str]:
    """Registry names and entry-point names, sorted."""
    return sorted(set(base.list_metrics()) | set(entry_points()))


def describe_metrics() -> dict[str, str]:
    """``{name: description}`` of every metric that can be asked for, sorted.

    The registry, the entry points with where each came from, and
    one ``LIB:<name>`` line per adapter library (its version and names, or how to install it).
    """
    out = base.describe_metrics()
    for name, ep in sorted(entry_points().items()):
        out.setdefault(name, f"plugin {_origin(ep)}")
    for name, text in adapters.describe_adapters().items():
        out.setdefault(name, text)
    return dict(sorted(out.items()))


# -- options typed by the factory's signature -----------------------------------------------------
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _convert(text: str, kind: Any, what: str) -> Any:
    """``text`` converted to ``kind`` (bool, int, float, str, a sequence of floats, Optional)."""
    origin = typing.get_origin(kind)
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if origin in (typing.Union, types.UnionType) and args:
        if text.lower() == "none":
            return None
        return _convert(text, args[0], what)
    if kind is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise PluginError(f"{what}: expected true/false, got {text!r}")
    if kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            raise PluginError(f"{what}: expected {kind.__name__}, got {text!r}") from None
    if origin in (tuple, list, Sequence) or kind in (tuple, list):
        item = args[0] if args else float
        return tuple(_convert(t.strip(), item, what) for t in text.split(","))
    return text


def _param_types(factory: Any) -> dict[str, Any]:
    target = factory
    if isinstance(factory, type):  # the hints of the __init__ that the class actually uses
        target = next((vars(c)["__init__"] for c in factory.__mro__ if "__init__" in vars(c)), factory)
    try:
        hints = typing.get_type_hints(target)
    except Exception:
        hints = {}
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return {}
    out: dict[str, Any] = {}
    for p in params.values():
        if p.name in hints:
            out[p.name] = hints[p.name]
        elif p.default is not p.empty and p.default is not None:
            out[p.name] = type(p.default)
        else:
            out[p.name] = str
    return out


def typed_options(spec: str, raw: Mapping[str, str], kind: str = "metric") -> dict[str, Any]:
    """String options for ``spec`` typed by its factory's signature (wrap options for callables).

    ``kind`` names the plugin in messages (``"net"`` for :mod:`.plugin_net`).
    """
    if not raw:
        return {}
    if adapters.is_adapter_spec(spec):
        return adapters.typed_adapter_options(raw)
    if not is_plugin_spec(spec):
        entry = base.registered_entry(spec)
        factory: Any = None if entry is None else entry.signature_of
    else:
        factory, _ = load_object(spec, f"{kind} plugin")
        if isinstance(factory, Metric) or _is_distance_fn(factory):
            factory = None
    types = _param_types(factory) if factory is not None else {
        "input_range": tuple[float, float], "higher_is_better": bool}
    return {k: _convert(v, types.get(k, str), f"{kind} option {spec}.{k}") for k, v in raw.items()}


def parse_metric_options(items: Sequence[str], names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``["NAME.key=value", ...]`` -> ``{NAME: {key: typed value}}`` for the metrics ``names``."""
    raw: dict[str, dict[str, str]] = {}
    for item in items or []:
        lhs, sep, value = str(item).partition("=")
        name, dot, key = lhs.rpartition(".")
        if not sep or not dot or not name or not key:
            raise PluginError(f"metric option {item!r}: expected NAME.key=value")
        if name not in names:
            raise PluginError(f"metric option {item!r}: {name!r} is not one of the metrics given "
                              f"({', '.join(names)})")
        if key in raw.setdefault(name, {}):
            raise PluginError(f"metric option {item!r}: {name}.{key} given twice")
        raw[name][key] = value
    return {name: typed_options(name, opts) for name, opts in raw.items()}
