"""Which metric a spec names, and with which weights.

A metric spec is a :class:`~bapps_toolkit.metrics.Metric` object, a registry name
(``"lpips-alex"``, see :func:`~bapps_toolkit.metrics.list_metrics`), or a training checkpoint.
A :class:`pathlib.Path` (any non-``str`` ``os.PathLike``) is always a checkpoint; a ``str``
that is not a registry name is a checkpoint when it ends in a checkpoint suffix
(:data:`CHECKPOINT_SUFFIXES`), names a folder, or names an existing file through a ``/``.

A checkpoint of a plugin network names code to import; it is loaded only when ``trust_plugin``
names that spec (:mod:`bapps_toolkit.metrics.plugin_trust`). The plugin specs given as metrics
count as named by the user (:func:`trusted_with_metrics`).

Weight specs map a network (:data:`NETS`) to a weight file, or to ``"random"`` for a backbone.
They are given as a mapping (``{"alex": "w.pth"}``) or as ``"NET=PATH"`` strings
(``["alex=w.pth", "vgg=random"]``); :func:`weight_map` turns either into a checked dict.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import BappsError, OptionError, UsageError
from . import Metric, create_metric, list_metrics
from .base import metric_backbone
from .nets import NETS
from .plugin_specs import is_plugin_spec
from .plugin_trust import TrustArg
from .trained import load_metric_from_checkpoint
from .weight_specs import parse_weight_specs

#: File suffixes read as training checkpoints.
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".safetensors")

#: A weight spec: ``{net: path-or-"random"}`` or ``["net=path", ...]``.
WeightSpecs = Mapping[str, Any] | Sequence[str] | None


def _nets() -> str:
    return ", ".join(NETS)


def weight_map(given: WeightSpecs, option: str, *, allow_random: bool) -> dict[str, Any]:
    """A checked ``{net: weights}`` from a mapping or from ``"NET=PATH"`` strings (see module)."""
    if given is None:
        return {}
    if isinstance(given, Mapping):
        for net in given:
            if net not in NETS:
                raise UsageError(f"{option} {net}=…: unknown network {net}; use one of {_nets()}")
        return dict(given)
    if isinstance(given, str):
        given = [given]
    return parse_weight_specs(given, option, allow_random=allow_random)


def _net_of(name: str) -> str | None:
    declared = metric_backbone(name)  # e.g. dists, on vgg without saying so
    if declared is not None:
        return declared
    tokens = name.lower().replace("_", "-").split("-")
    return next((net for net in NETS if net in tokens), None)


def _is_checkpoint(spec: str | os.PathLike[str]) -> bool:
    if not isinstance(spec, str):
        return True
    if spec.lower() in list_metrics():
        return False
    p = Path(spec)
    return p.suffix.lower() in CHECKPOINT_SUFFIXES or p.is_dir() or (p.is_file() and "/" in spec)


def trusted_with_metrics(specs: Sequence[Any], trust_plugin: TrustArg) -> list[str]:
    """``trust_plugin`` plus the plugin specs among the metric ``specs`` (what the user typed)."""
    given = [trust_plugin] if isinstance(trust_plugin, str) else list(trust_plugin or [])
    typed = [s for s in specs if isinstance(s, str) and not _is_checkpoint(s) and is_plugin_spec(s)]
    return [str(t) for t in given] + typed


def _from_checkpoint(spec: str | os.PathLike[str], trust_plugin: TrustArg) -> tuple[str, Metric]:
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    metric = load_metric_from_checkpoint(path, trust_plugin=trust_plugin)
    where = f"{path.parent.name}/{path.name}" if path.is_file() and path.parent.name else path.name
    return f"{metric.name}[{where}]", metric


def resolve_metric(
    spec: Any, *, backbone_weights: WeightSpecs = None, lin_weights: WeightSpecs = None,
    options: Mapping[str, Any] | None = None, trust_plugin: TrustArg = None,
) -> tuple[str, Metric]:
    """``(metric_id, Metric)`` from a Metric object, a registry name or a checkpoint (see module).

    ``backbone_weights`` apply to registry names that contain the network, e.g. ``lpips-alex``,
    or declare it (``dists``: ``vgg``); ``lin_weights`` to LPIPS names only (``pdl-vgg`` and
    ``dists`` share the ``vgg`` backbone weights but have no linear layers). Checkpoints carry
    their own weights. ``options`` go to the metric's factory (plugin specs ``module:attr`` /
    ``file.py:attr`` included, see :mod:`bapps_toolkit.metrics.plugins`). ``trust_plugin``: the
    plugin spec(s) a checkpoint may import
    (:func:`~bapps_toolkit.metrics.trained.load_metric_from_checkpoint`).
    """
    if isinstance(spec, Metric):
        return spec.name, spec
    if not isinstance(spec, (str, os.PathLike)):
        raise UsageError(f"metric {spec!r}: give a metric name, a Metric object or a checkpoint path")
    backbone = weight_map(backbone_weights, "backbone_weights", allow_random=True)
    lin = weight_map(lin_weights, "lin_weights", allow_random=False)
    if _is_checkpoint(spec):
        return _from_checkpoint(spec, trust_plugin)
    text = os.fspath(spec)
    net = _net_of(text)
    options = dict(options or {})
    if net in backbone:
        options["backbone_weights"] = backbone[net]
    if net in lin and text.lower().startswith("lpips"):  # linear layers exist in LPIPS only
        options["lin_weights"] = lin[net]
    try:
        metric = create_metric(text, **options)
    except TypeError as exc:
        raise OptionError(f"metric {text!r} does not accept the options {sorted(options)}: {exc}", text) from None
    except ValueError as exc:
        if isinstance(exc, BappsError) or not options:
            raise  # a refusal already, or (no options given) a bug
        raise OptionError(f"metric {text!r} with options {options}: {exc}", text) from exc
    return (text if ":" in text else text.lower()), metric


def metric_label(metric_id: str, metric: Metric) -> str:
    """Report label: the metric's ``label`` (with its UNCALIBRATED tag), named by ``metric_id``."""
    if metric_id == metric.name:
        return metric.label
    return metric.label.replace(metric.name, metric_id, 1)
