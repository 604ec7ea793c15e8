"""Training configuration and the official learning-rate schedule.

The defaults reproduce the official LPIPS trainer (Zhang et al., CVPR 2018; ``train.py`` of
richzhang/PerceptualSimilarity): Adam, lr 1e-4, betas (0.5, 0.999), batch 50, shuffled, ``nepoch``
5 epochs at the base rate then ``nepoch_decay`` 5 decay epochs, linear layers behind
Dropout(0.5).

Learning-rate schedule (exactly the official one)
-------------------------------------------------
The official loop runs epochs ``1 … nepoch + nepoch_decay`` and, *after* each epoch ``e`` with
``e > nepoch``, lowers the rate by ``lr0 / nepoch_decay``. So epochs ``1 … nepoch + 1`` run at
``lr0`` and epoch ``e > nepoch + 1`` runs at ``lr0 · (1 − (e − nepoch − 1) / nepoch_decay)``; the
rate would reach 0 only after the last epoch. With the defaults: epochs 1–6 at 1e-4, then 8e-5,
6e-5, 4e-5, 2e-5 for epochs 7–10. :func:`lr_for_epoch` implements this and the tests check it
epoch by epoch.

This module imports no torch (the network list and the weight-spec parser are imported when a
config is validated): ``bapps train --help`` shows the defaults of :class:`TrainConfig` from here.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from .._io import PathLike
from ..errors import BappsError, UsageError

VARIANTS = ("lin", "tune", "scratch")
#: Training objectives (:mod:`.hinge`): the official ranking BCE, DreamSim's hinge.
LOSSES = ("ranking", "hinge")
#: The hinge margin by default (DreamSim's, Fu et al., NeurIPS 2023).
DEFAULT_MARGIN = 0.05
VERSIONS = ("0.0", "0.1")


#: The default ``memory_budget_mb`` (MiB): full-path training sets up to this size are held whole.
DEFAULT_MEMORY_BUDGET_MB = 2048

#: The options that determine the trained weights: recorded in the card, compared on resume.
RESULT_FIELDS = ("net", "net_options", "variant", "version", "datasets", "backbone_weights", "epochs", "decay_epochs",
                 "lr", "beta1", "beta2", "batch_size", "dropout", "seed", "fast", "loss", "margin")


class ConfigError(BappsError, ValueError):
    """A training option is invalid (the message names it)."""


@dataclass
class TrainConfig:
    """Everything that defines a training run.

    Fields that change the result (net, variant, version, data, datasets, backbone, seed,
    schedule, dropout, fast) are recorded in the run's card; ``resume=True`` refuses to continue a run
    with different values. ``device``, ``progress``, ``val_every_epoch`` only change how it runs.

    * ``data`` — a BAPPS folder root or a packed ``.h5`` file.
    * ``net`` — ``alex``, ``vgg``, ``squeeze``, or a plugin spec naming your own LPIPS-style network
      (``path/to/file.py:attr``, ``package.module:attr``, an entry-point name; see
      :mod:`bapps_toolkit.metrics.plugin_net`; a file's path is made absolute). A plugin net
      trains ``lin`` or ``tune`` (not ``scratch``: the toolkit has no init for your network),
      brings its own weights (no ``backbone_weights``) and its own input scaling (``version``
      stays the default; the checkpoint records the plugin's). ``net_options`` — options of the
      plugin's factory: a mapping of typed values, or ``"key=value"`` strings typed by the
      factory's signature (:func:`~bapps_toolkit.metrics.plugins.typed_options`); recorded as JSON.
    * ``datasets`` — 2AFC training keys or short forms (``"train/mix"``, ``"train"``); ``None`` =
      every ``2afc/train/*`` set present.
    * ``backbone_weights`` — as for the LPIPS metric: a path to torchvision-layout weights,
      ``"random"`` (seeded random backbone: results are UNCALIBRATED), or ``None`` (torchvision's
      ImageNet weights from the torch hub cache). ``scratch`` always starts from a random backbone.
    * ``fast`` — ``None`` = automatic (the cached-feature fast path for ``lin``, the full path
      otherwise). ``True`` is only valid for ``lin``.
    * ``memory_budget_mb`` — the full path (tune, scratch, ``fast=False``) holds the training
      sets whole when their images fit this many MiB (default 2048), with the exact shuffle;
      larger sets are streamed in chunks with a windowed shuffle (:mod:`.stream` states it).
      It changes the result only by choosing between the two; the card records the choice.
    * ``deterministic`` — call ``torch.use_deterministic_algorithms(True)`` for the run.
    * ``loss`` — ``"ranking"`` (the official BCE of the ranking network G) or ``"hinge"``
      (DreamSim's hinge on ``d0 - d1``, :mod:`.hinge`); ``margin`` — the hinge margin (default
      0.05; only with ``loss="hinge"``).
    """

    data: PathLike
    net: str = "alex"
    net_options: Mapping[str, Any] | Sequence[str] | None = None
    variant: str = "lin"
    out: PathLike = "runs/lpips"
    datasets: Sequence[str] | None = None
    backbone_weights: PathLike | None = None
    version: str = "0.1"
    epochs: int = 5
    decay_epochs: int = 5
    lr: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.999
    batch_size: int = 50
    dropout: float = 0.5
    seed: int = 0
    fast: bool | None = None
    resume: bool = False
    overwrite: bool = False
    val_every_epoch: bool = False
    val_datasets: Sequence[str] | None = None
    device: str | None = None
    bf16: bool = False
    progress: bool = True
    deterministic: bool = False
    precompute_batch: int = 512
    val_batch: int = 256
    loss: str = "ranking"
    margin: float | None = None
    memory_budget_mb: int = DEFAULT_MEMORY_BUDGET_MB

    # ---------------------------------------------------------------------------------------
    def validated(self) -> TrainConfig:
        """Return a normalised copy; raise :class:`ConfigError` naming the bad option."""
        c = TrainConfig(**{f.name: getattr(self, f.name) for f in fields(self)})
        _check_choices(c, self)
        _check_integers(c)
        _check_numbers(c)
        _check_path(c, self)
        _check_lists(c)
        _check_loss(c)
        c.data = str(Path(c.data).expanduser())
        c.out = str(Path(c.out).expanduser())
        c.bf16 = bool(c.bf16)
        return c

    @property
    def total_epochs(self) -> int:
        """Epochs at the base rate plus decay epochs."""
        return int(self.epochs) + int(self.decay_epochs)

    def lr_schedule(self) -> list[float]:
        """Learning rate of every epoch ``1 … total_epochs`` (see the module docstring)."""
        return [lr_for_epoch(e, self.lr, self.epochs, self.decay_epochs) for e in range(1, self.total_epochs + 1)]

    def result_fields(self) -> dict[str, Any]:
        """The options that determine the trained weights (:data:`RESULT_FIELDS`, compared on ``resume=True``)."""
        d = asdict(self)
        out = {k: d[k] for k in RESULT_FIELDS}
        if out["datasets"] is not None:
            out["datasets"] = list(out["datasets"])
        return out



# ------------------------------------------------------------------------------------------
# the checks of TrainConfig.validated, by group: each normalises ``c`` in place and names the
# option at fault (``orig`` is the config as given, for the messages)

def _check_choices(c: TrainConfig, orig: TrainConfig) -> None:
    # imported here, not at the top: `bapps train --help` reads this module without torch
    from ..metrics.nets import NETS
    from ..metrics.plugin_specs import is_plugin_net

    c.variant = str(c.variant).lower()
    if c.variant not in VARIANTS:
        raise ConfigError(f"variant: unknown variant {orig.variant!r}; choose one of {', '.join(VARIANTS)}")
    c.version = str(c.version)
    if c.version not in VERSIONS:
        raise ConfigError(f"version: LPIPS version must be one of {', '.join(VERSIONS)}, got {orig.version!r}")
    if is_plugin_net(str(c.net)):
        _check_plugin_net(c, orig)
        return
    c.net = str(c.net).lower()
    if c.net == "vgg16":
        c.net = "vgg"
    if c.net not in NETS:
        raise ConfigError(f"net: unknown network {orig.net!r}; choose one of {', '.join(NETS)}, or name your own "
                          "network with a plugin spec path/to/file.py:attr or package.module:attr")
    if c.net_options:
        raise ConfigError(f"net_options: {sorted(_raw_options(c.net_options))} given, but net {c.net} takes no "
                          "options (they are for a plugin network)")
    c.net_options = None


def _raw_options(given: Any) -> dict[str, Any]:
    """``net_options`` as a dict: a mapping as is, ``["key=value", ...]`` split (values strings)."""
    if isinstance(given, Mapping):
        return {str(k): v for k, v in given.items()}
    items = [given] if isinstance(given, str) else list(given)
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"net_options: {item!r} is not key=value")
        if key.strip() in out:
            raise ConfigError(f"net_options: {key.strip()} given twice")
        out[key.strip()] = value
    return out


def _check_plugin_net(c: TrainConfig, orig: TrainConfig) -> None:
    """A plugin network (:mod:`bapps_toolkit.metrics.plugin_net`), its spec and options checked and normalised.

    The spec is normalised, the options typed (strings by the factory's signature, which imports the plugin) and
    made JSON, and the variant, weights and version checked against what a plugin can do.
    """
    from ..metrics.plugin_specs import normalise_plugin_net

    c.net = normalise_plugin_net(str(c.net))
    if c.variant == "scratch":
        raise ConfigError(f"variant: scratch trains a randomly initialised backbone, but the toolkit has no init "
                          f"for the plugin network {orig.net!r}; train variant lin or tune (start it from your "
                          "own random weights in the plugin if you want that)")
    if c.backbone_weights is not None:
        raise ConfigError(f"backbone_weights: the plugin network {orig.net!r} brings its own weights; load them in "
                          f"the plugin (a factory option, --net-option) instead of passing {orig.backbone_weights!r}")
    if c.version != "0.1":
        raise ConfigError(f"version: the plugin network {orig.net!r} has its own input scaling (its lpips_scaling "
                          "attribute, see bapps_toolkit.metrics.plugin_net); do not set version")
    raw = _raw_options(c.net_options) if c.net_options else {}
    if raw and not isinstance(c.net_options, Mapping):
        from ..metrics.plugins import PluginError, typed_options  # imports the plugin (and torch)

        try:
            raw = typed_options(c.net, raw, "net")
        except PluginError as exc:
            raise ConfigError(f"net_options: {exc}") from None
    try:
        c.net_options = json.loads(json.dumps(raw, sort_keys=True)) if raw else None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"net_options: the run card records them as JSON, and {raw!r} is not ({exc})") from None


def _check_integers(c: TrainConfig) -> None:
    for name in ("epochs", "decay_epochs", "batch_size", "seed", "precompute_batch", "val_batch", "memory_budget_mb"):
        v = getattr(c, name)
        if isinstance(v, bool) or not isinstance(v, (int,)) and not (isinstance(v, float) and v.is_integer()):
            raise ConfigError(f"{name}: expected an integer, got {v!r}")
        setattr(c, name, int(v))
    if c.epochs < 0:
        raise ConfigError(f"epochs: must be >= 0, got {c.epochs}")
    if c.decay_epochs < 0:
        raise ConfigError(f"decay_epochs: must be >= 0, got {c.decay_epochs}")
    if c.epochs + c.decay_epochs < 1:
        raise ConfigError("epochs + decay_epochs must be at least 1 (nothing to train)")
    if c.batch_size < 1:
        raise ConfigError(f"batch_size: must be >= 1, got {c.batch_size}")
    if c.memory_budget_mb < 1:
        raise ConfigError(f"memory_budget_mb: must be >= 1 (MiB), got {c.memory_budget_mb}")
    if c.precompute_batch < 1 or c.val_batch < 1:
        raise ConfigError("precompute_batch and val_batch must be >= 1")
    if c.seed < 0:
        raise ConfigError(f"seed: must be >= 0, got {c.seed}")


def _check_numbers(c: TrainConfig) -> None:
    for name in ("lr", "beta1", "beta2", "dropout"):
        v = getattr(c, name)
        try:
            v = float(v)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: expected a number, got {getattr(c, name)!r}") from None
        if not math.isfinite(v):
            raise ConfigError(f"{name}: must be finite, got {v}")
        setattr(c, name, v)
    if c.lr <= 0:
        raise ConfigError(f"lr: must be > 0, got {c.lr}")
    for name in ("beta1", "beta2", "dropout"):
        if not 0.0 <= getattr(c, name) < 1.0:
            raise ConfigError(f"{name}: must be in [0, 1), got {getattr(c, name)}")


def _one_backbone(given: Any, net: str) -> Any:
    """``backbone_weights`` as a path, ``"random"`` or ``None``.

    ``NET=PATH``/``NET=random`` specs (a string or a list) are parsed and must name ``net`` only.
    """
    specs = [given] if isinstance(given, str) else given
    if not isinstance(specs, (list, tuple)) or not specs or given == "random":
        return given
    if isinstance(given, str) and ("=" not in given or Path(given).is_file()):
        return given  # a plain path
    try:
        from ..metrics.weight_specs import parse_weight_specs

        parsed = parse_weight_specs([str(s) for s in specs], "backbone_weights", allow_random=True)
    except (ValueError, FileNotFoundError) as exc:
        raise ConfigError(str(exc)) from None
    others = sorted(set(parsed) - {net})
    if others:
        raise ConfigError(f"backbone_weights: weights for {', '.join(others)} given, but the run trains net {net}")
    return parsed.get(net)


def _check_path(c: TrainConfig, orig: TrainConfig) -> None:
    """The fast path, the backbone weights and resume/overwrite, against the variant."""
    if c.fast and c.variant != "lin":
        raise ConfigError(
            f"fast: the cached-feature fast path needs a frozen backbone (variant lin), "
            f"not variant {c.variant!r}; drop fast=True"
        )
    if c.fast is None:
        c.fast = c.variant == "lin"
    c.fast = bool(c.fast)
    c.backbone_weights = _one_backbone(c.backbone_weights, c.net)
    if c.variant == "scratch":
        if c.backbone_weights not in (None, "random"):
            raise ConfigError(
                f"backbone_weights: variant scratch starts from a random backbone; "
                f"do not pass backbone weights ({orig.backbone_weights!r}), or use variant='tune'"
            )
        c.backbone_weights = "random"
    elif c.variant == "tune" and c.backbone_weights == "random":
        raise ConfigError(
            "backbone_weights='random' with variant tune is training from a random backbone: "
            "use variant='scratch' for that"
        )
    if c.backbone_weights is not None and c.backbone_weights != "random":
        c.backbone_weights = str(Path(c.backbone_weights).expanduser().resolve())
    if c.resume and c.overwrite:
        raise ConfigError("resume and overwrite exclude each other: pick one")


def _check_lists(c: TrainConfig) -> None:
    if c.datasets is not None:
        if isinstance(c.datasets, str):
            c.datasets = [c.datasets]
        c.datasets = [str(d) for d in c.datasets]
        if not c.datasets:
            raise ConfigError("datasets: empty list; omit it to use every 2afc/train/* set")
    if c.val_datasets is not None:
        if isinstance(c.val_datasets, str):
            c.val_datasets = [c.val_datasets]
        c.val_datasets = [str(d) for d in c.val_datasets]


def _check_loss(c: TrainConfig) -> None:
    c.loss = str(c.loss).lower()
    if c.loss not in LOSSES:
        raise ConfigError(f"loss: unknown loss {c.loss!r}; choose one of {', '.join(LOSSES)}")
    if c.loss == "ranking":
        if c.margin is not None:
            raise ConfigError(f"margin: {c.margin} is a hinge-loss margin; the ranking loss has none "
                              "(give loss='hinge' / --loss hinge, or drop the margin)")
        return
    m = DEFAULT_MARGIN if c.margin is None else c.margin
    try:
        m = float(m)
    except (TypeError, ValueError):
        raise ConfigError(f"margin: expected a number, got {c.margin!r}") from None
    if not math.isfinite(m) or m < 0:
        raise ConfigError(f"margin: must be a finite number >= 0, got {c.margin!r}")
    c.margin = m


def lr_for_epoch(epoch: int, lr0: float, epochs: int, decay_epochs: int) -> float:
    """Official learning rate of 1-based ``epoch``.

    ``lr0`` for ``epoch <= epochs + 1``, then ``lr0 − (epoch − epochs − 1) · lr0 / decay_epochs``.
    (The official ``update_learning_rate`` subtracts ``lr0 / nepoch_decay`` after every epoch past
    ``nepoch``; the first subtraction happens after epoch ``nepoch + 1``.)
    """
    if epoch < 1:
        raise UsageError(f"epoch is 1-based, got {epoch}")
    if decay_epochs <= 0 or epoch <= epochs + 1:
        return float(lr0)
    # Subtract step by step, as the official trainer does, so the floats match it exactly.
    lrd = lr0 / decay_epochs
    lr = float(lr0)
    for _ in range(epoch - epochs - 1):
        lr = lr - lrd
    return lr


def config_from_dict(d: dict[str, Any]) -> TrainConfig:
    """Rebuild a config from a card's ``config`` entry (unknown keys are ignored)."""
    names = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in d.items() if k in names})


__all__ = ["DEFAULT_MEMORY_BUDGET_MB", "DEFAULT_MARGIN",
           "TrainConfig", "ConfigError", "lr_for_epoch", "config_from_dict", "VARIANTS", "VERSIONS", "LOSSES",
           "RESULT_FIELDS"]
