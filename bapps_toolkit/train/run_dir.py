"""The run folder of a training run: resume/overwrite checks, its card, weights metadata and ``log.csv``.

The file layout is in :mod:`.checkpoint`.
"""
from __future__ import annotations

import csv
import io
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, cast

from .._io import remove_stale_temps, write_text_atomic
from .._version import __version__
from ..errors import BappsError, CheckpointError
from ..metrics.plugin_specs import is_plugin_net, short_plugin_name
from ..metrics.plugin_trust import TrustArg, check_plugin_allowed, check_spec_text, is_trusted, trusted_specs
from ..metrics.provenance import PROVENANCE_KEY, provenance_json
from . import checkpoint
from .config import RESULT_FIELDS, ConfigError, TrainConfig, config_from_dict
from .hinge import describe as describe_loss
from .records import BackboneSource, RunCard

LIN_INIT_NOTE = ("nn.Conv2d default init, as the official trainer (pretrained=False): "
                 "w ~ U(-1/sqrt(C), 1/sqrt(C)), drawn from a generator seeded from the run seed; "
                 "clamped to >= 0 after every step")
FAST_DROPOUT_NOTE = ("dropout on the per-channel spatial-mean vectors (one mask element per triplet, "
                     "channel and side; same p; equal to the official per-pixel dropout in expectation, "
                     "larger variance)")
LOG_FIELDS = ["epoch", "lr", "loss", "train_2afc", "seconds", "items_per_s", "val_2afc"]


def write_log(out: Path, history: Sequence[Mapping[str, Any]]) -> None:
    """Write ``log.csv``: one row per finished epoch.

    Args:
        out: the run folder.
        history: the card's epochs.
    """
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=LOG_FIELDS, lineterminator="\n")
    w.writeheader()
    for h in history:
        row = {k: h.get(k, "") for k in LOG_FIELDS}
        if row["val_2afc"] is None:
            row["val_2afc"] = ""
        w.writerow(row)
    write_text_atomic(out / checkpoint.LOG, buf.getvalue())


# ------------------------------------------------------------------------------------------
# out-dir state

def _dict_at(card: Mapping[str, Any], path: Path, *keys: str) -> dict[str, Any]:
    """``card[k0][k1]…`` as a dict (``{}`` when absent).

    A :class:`CheckpointError` names the card and the entry when it is something else.
    """
    here: Any = card
    for depth, key in enumerate(keys):
        here = here.get(key) if isinstance(here, Mapping) else None
        if here is None:
            return {}
        if not isinstance(here, dict):
            raise CheckpointError(f"{path}: damaged run card: {'.'.join(keys[:depth + 1])} is a "
                                  f"{type(here).__name__}, not an object")
    return cast(dict[str, Any], here)


def check_card(card: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """The card's saved ``config``, after checking the shape of every entry a resumed run uses.

    Nothing is imported; a :class:`CheckpointError` names the card and the entry otherwise.
    """
    if card.get("format") != checkpoint.CARD_FORMAT or not isinstance(card.get("config"), dict):
        raise CheckpointError(f"{path}: not a bapps-toolkit training card")
    saved: dict[str, Any] = card["config"]
    if not isinstance(saved.get("net", "alex"), str):
        raise CheckpointError(f"{path}: damaged run card: config.net is not a string")
    if saved.get("net_options") is not None and not isinstance(saved.get("net_options"), dict):
        raise CheckpointError(f"{path}: damaged run card: config.net_options is not a JSON object")
    done = card.get("epochs_done", 0)
    if isinstance(done, bool) or not isinstance(done, int) or not 0 <= done <= 1_000_000:
        raise CheckpointError(f"{path}: damaged run card: epochs_done {str(done)[:40]!r} is not an epoch count")
    history = card.get("history", [])
    if not isinstance(history, list) or not all(
            isinstance(h, dict) and isinstance(h.get("epoch"), int) and not isinstance(h.get("epoch"), bool)
            for h in history):
        raise CheckpointError(f"{path}: damaged run card: history is not a list of epochs")
    if not isinstance(card.get("resumed", []), list):
        raise CheckpointError(f"{path}: damaged run card: resumed is not a list")
    for keys in (("backbone",), ("backbone", "plugin"), ("backbone", "plugin", "origin"), ("shuffle",)):
        _dict_at(card, path, *keys)
    return saved


def read_card(path: Path) -> RunCard:
    """Read a run card, checking every entry a resumed run uses.

    Args:
        path: the ``card.json`` file.

    Returns:
        The card.

    Raises:
        CheckpointError: naming the file and the entry when it is not a run card or is damaged.
    """
    card = checkpoint.read_json(path, "run card")
    check_card(card, path)
    return cast(RunCard, card)


def _card_config(saved: dict[str, Any], path: Path) -> TrainConfig:
    """The validated config a card saved; a :class:`CheckpointError` naming the card otherwise."""
    try:
        return config_from_dict(saved).validated()
    except (ConfigError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{path}: the run card's config is not valid ({str(exc)[:300]})") from None


def allow_card_plugin(card: Mapping[str, Any], path: Path, given_net: str | None, trust: TrustArg,
                      *, flag: str = "--net") -> None:
    """Refuse to resume a plugin network's run unless the user trusts that plugin and its code is unchanged.

    A card whose run trained a plugin network resumes only when the user names that spec (``net=``/``--net`` or
    ``trust_plugin=``/``--trust-plugin``) and its code's SHA-256 is the one recorded in the card
    (:func:`~bapps_toolkit.metrics.plugin_trust.check_plugin_allowed`); decided before anything is imported.
    Call it with a card :func:`check_card` accepted.
    """
    saved = card["config"]
    net = str(saved.get("net", "alex"))
    if not is_plugin_net(net):
        return
    check_spec_text(str(path), net)
    plugin = _dict_at(card, path, "backbone", "plugin")
    if plugin and plugin.get("spec") != net:
        raise CheckpointError(f"{path}: damaged run card: config.net {net!r} and backbone.plugin.spec "
                              f"{str(plugin.get('spec'))[:200]!r} differ")
    if given_net is not None and not is_trusted(net, trusted_specs(given_net)):
        raise CheckpointError(f"cannot resume the run in {path.parent}: settings differ from its card {path} "
                              f"({flag}: card {net}, given {given_net}); leave it out to take the card's value "
                              "(a plugin spec must then be trusted with --trust-plugin), or start a new run")
    check_plugin_allowed(path, net, _dict_at(card, path, "backbone", "plugin", "origin"),
                         trusted_specs(trust) | trusted_specs(given_net), options=saved.get("net_options"),
                         resume=True)


def check_card_config(card: Mapping[str, Any], cfg: TrainConfig, out: Path) -> None:
    """Refuse to resume from ``card`` unless its net, plugin and result settings match ``cfg``.

    Raises:
        CheckpointError: the card is malformed, for another net or plugin, or trained with other settings.
    """
    path = out / checkpoint.CARD
    saved = check_card(card, path)
    if saved.get("net") != cfg.net:
        raise CheckpointError(
            f"{out}: the checkpoint there is for net {str(saved.get('net'))[:200]!r}, not {cfg.net!r}; "
            "pick another out folder or the same net"
        )
    allow_card_plugin(card, path, cfg.net, None)  # cfg.net is the caller's: the code's digest is checked
    mine = cfg.result_fields()
    theirs = _card_config(saved, path).result_fields()
    diff = [f"{k}: saved {theirs.get(k)!r} vs now {v!r}" for k, v in mine.items() if theirs.get(k) != v]
    if diff:
        raise CheckpointError(
            f"{out}: cannot resume — the run there was started with other settings ({'; '.join(diff)}). "
            "Resume with the same settings, or start over with overwrite=True."
        )


#: Run options a resumed run takes from its card when they are not given (given, they may differ:
#: they change how the run goes, not what it trains).
RESUMED_RUN_OPTIONS = ("val_every_epoch", "val_datasets", "bf16", "deterministic", "memory_budget_mb")


def _shown(value: Any) -> str:
    """A setting as a command-line user writes it: ``on``/``off``, lists space-separated."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value))
    return "unset" if value is None else str(value)


def _normalised(key: str, value: Any, net: str) -> Any:
    """``value`` of result option ``key`` as a validated config (and so the card) holds it."""
    probe = TrainConfig(data=".", **{"net": net, key: value})
    return probe.validated().result_fields()[key]


def resume_config(out: str | Path, *, names: Mapping[str, str] | None = None, trust_plugin: TrustArg = None,
                  **given: Any) -> TrainConfig:
    """The config that continues the run in ``out`` with the settings saved in its card (``card.json``).

    ``given`` are options of :class:`TrainConfig` set explicitly (``None`` counts as not given).
    The options that determine the trained weights (:data:`~.config.RESULT_FIELDS`) must agree
    with the card when given: otherwise a :class:`~bapps_toolkit.errors.CheckpointError` names
    each one that differs with the card's and the given value. Options not given are taken from
    the card, the run options :data:`RESUMED_RUN_OPTIONS` too (given, those may differ); ``data``
    defaults to the card's data source. ``names`` maps option names to what the message calls
    them (the command line passes its flags: ``{"epochs": "--epochs"}``).

    A card is a file, so the plugin network it may name is not imported on its word: the run
    resumes only when ``net`` or ``trust_plugin`` names that spec and the code's SHA-256 is the
    one recorded at the start of the run (a :class:`~bapps_toolkit.errors.CheckpointError` says
    which spec and how to allow it); the card's entries are checked before anything is used.
    """
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(given) - known)
    if unknown:
        raise ConfigError(f"{unknown[0]}: not an option of TrainConfig")
    given = {k: v for k, v in given.items() if v is not None and k not in ("out", "resume")}
    cfg = TrainConfig(data=given.get("data", "."), out=out, resume=True)
    card_path = Path(cfg.validated().out) / checkpoint.CARD
    if not card_path.is_file():
        raise CheckpointError(f"resume: nothing to resume in {card_path.parent} (no {checkpoint.CARD}); "
                              "start a new run without resume")
    card = checkpoint.read_json(card_path, "run card")
    saved = check_card(card, card_path)
    label = dict(names or {})
    allow_card_plugin(card, card_path, given.get("net"), trust_plugin, flag=label.get("net", "net"))
    theirs = _card_config(saved, card_path).result_fields()
    net = str(given.get("net", theirs["net"]))
    diff = []
    for key in RESULT_FIELDS:
        if key in given and (mine := _normalised(key, given[key], net)) != theirs[key]:
            diff.append(f"{label.get(key, key)}: card {_shown(theirs[key])}, given {_shown(mine)}")
    if diff:
        raise CheckpointError(
            f"cannot resume the run in {card_path.parent}: settings differ from its card {card_path} "
            f"({'; '.join(diff)}); leave them out to take the card's values, or start a new run")
    merged = {k: saved[k] for k in RESULT_FIELDS + RESUMED_RUN_OPTIONS + ("data",) if k in saved}
    merged.update(given, out=str(out), resume=True)
    return TrainConfig(**merged)


def prepare_out(cfg: TrainConfig) -> tuple[RunCard | None, int]:
    """Check the out folder against resume/overwrite; return ``(card to resume or None, epochs done)``.

    Called under the run's lock: once the run may go ahead, the temporaries ``.<name>.tmp-*``
    that a killed run left in the folder (every file of a run is written through a temporary
    name and renamed) are removed.
    """
    card, done = check_out(cfg)
    remove_stale_temps(Path(cfg.out))
    return card, done


def check_out(cfg: TrainConfig) -> tuple[RunCard | None, int]:
    """Check ``cfg.out`` against ``resume`` / ``overwrite``.

    Returns:
        ``(card, epochs done)`` of the run to resume, or ``(None, 0)`` for a new run.

    Raises:
        BappsError: ``out`` is not a folder, or holds a run that neither resume nor overwrite was asked for.
        CheckpointError: a resume finds nothing to resume, a different run, or missing epoch files.
    """
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise BappsError(f"out: {out} exists and is not a folder")
    card_path = out / checkpoint.CARD
    card = read_card(card_path) if card_path.exists() else None
    if cfg.resume:
        if card is None:
            raise CheckpointError(
                f"resume=True: nothing to resume in {out} (no {checkpoint.CARD}); start a new run without resume"
            )
        check_card_config(card, cfg, out)
        done = int(card.get("epochs_done", 0))
        if done > 0:
            stem = checkpoint.epoch_stem(done)
            for p in (checkpoint.weights_path(out, stem), checkpoint.optim_path(out, stem)):
                if not p.is_file():
                    raise CheckpointError(f"resume=True: {p} is missing (the card says epoch {done} finished)")
        return card, done
    if card is not None and not cfg.overwrite:
        if card.get("finished"):
            raise BappsError(
                f"out: {out} holds a finished run ({card.get('config', {}).get('net')} "
                f"{card.get('config', {}).get('variant')}, {card.get('epochs_done')} epochs); "
                "refusing to overwrite it — pass overwrite=True, or pick another out folder"
            )
        raise BappsError(
            f"out: {out} holds an unfinished run (epoch {card.get('epochs_done', 0)} of "
            f"{card.get('total_epochs', '?')}); pass resume=True to continue it or overwrite=True to start over"
        )
    return None, 0


def check_meta(meta: dict[str, str], cfg: TrainConfig, path: Path) -> None:
    """Refuse the weights file ``path`` unless its metadata names this toolkit's format and ``cfg``'s net.

    Raises:
        CheckpointError: the metadata does not match.
    """
    if meta.get("format") != checkpoint.FORMAT:
        raise CheckpointError(f"{path}: not a bapps-toolkit LPIPS checkpoint")
    if meta.get("net") != cfg.net:
        raise CheckpointError(f"{path}: checkpoint of net {meta.get('net', '')[:200]!r}, not {cfg.net!r}")
    want = cfg.net if is_plugin_net(cfg.net) else ""
    if meta.get("plugin_spec", want) != want:
        raise CheckpointError(f"{path}: checkpoint of plugin network {meta.get('plugin_spec', '')[:200]!r}, "
                              f"not {cfg.net!r}")


def run_label(cfg: TrainConfig) -> str:
    """The trained metric's name: ``lpips-alex`` …, ``lpips[my_net.py:Net]`` for a plugin network.

    The latter is the name :class:`~bapps_toolkit.metrics.plugin_net.PluginLPIPS` carries.
    """
    return f"lpips[{short_plugin_name(cfg.net)}]" if is_plugin_net(cfg.net) else f"lpips-{cfg.net}"


def start_card(resume_card: RunCard | None, done: int, cfg: TrainConfig, *args: Any) -> RunCard:
    """The card a run starts from: the resumed card, or :func:`new_card` ``(cfg, *args)``.

    A resumed card has its history cut at epoch ``done`` and the resume recorded.
    """
    if resume_card is None:
        return new_card(cfg, *args)
    card = resume_card
    card["history"] = [h for h in card.get("history", []) if int(h["epoch"]) <= done]
    card["resumed"] = card.get("resumed", []) + [{"from_epoch": done, "at": time.strftime("%Y-%m-%dT%H:%M:%S")}]
    return card


def open_out(out: Path, cfg: TrainConfig, lpips: Any, backbone: BackboneSource, train_backbone: bool) -> None:
    """Make the out folder ready on rank 0.

    With ``overwrite``, the old run's files go — only now that the model and data are ready, so a failing run
    does not destroy the old one; a random frozen backbone is written once, next to the weights that need it.
    """
    out.mkdir(parents=True, exist_ok=True)
    if cfg.overwrite:
        for p in checkpoint.run_files(out):
            p.unlink()
    if backbone["source"] == "random" and not train_backbone and not (out / checkpoint.BACKBONE_FILE).is_file():
        checkpoint.write_safetensors(out / checkpoint.BACKBONE_FILE, dict(lpips.backbone.state_dict().items()),
                             {"format": "bapps-toolkit/backbone", "net": cfg.net,
                              "source": "random", "seed": str(backbone.get("seed")),
                              PROVENANCE_KEY: provenance_json(
                                  "random", calibrated=False, seed=backbone.get("seed"),
                                  note=f"random backbone (seed {backbone.get('seed')})")})


def new_card(cfg: TrainConfig, keys: list[str], counts: Mapping[str, int], synthetic: bool,
             backbone: BackboneSource, calibrated: bool, note: str, val_keys: list[str]) -> RunCard:
    """The card of a new run (nothing trained yet).

    Args:
        cfg: the run's settings.
        keys: the training sets.
        counts: triplets per training set.
        synthetic: the data is synthetic.
        backbone: where the backbone comes from.
        calibrated: the trained metric will be a calibrated LPIPS.
        note: why not, when it is not.
        val_keys: the validation sets.

    Returns:
        The card.
    """
    cfgd = asdict(cfg)
    return {
        "format": checkpoint.CARD_FORMAT, "format_version": checkpoint.FORMAT_VERSION,
        "toolkit_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "net": cfg.net, "variant": cfg.variant, "version": cfg.version,
        "calibrated": calibrated, "calibration_note": note,
        "data": {"source": str(Path(cfg.data).resolve()), "synthetic": synthetic,
                 "datasets": dict(counts), "n_train": int(sum(counts.values())), "val_datasets": list(val_keys)},
        "backbone": backbone,
        "schedule": {"optimizer": "Adam", "lr": cfg.lr, "betas": [cfg.beta1, cfg.beta2],
                     "batch_size": cfg.batch_size, "epochs": cfg.epochs, "decay_epochs": cfg.decay_epochs,
                     "lr_per_epoch": cfg.lr_schedule(), "shuffle": True, "dropout": cfg.dropout,
                     "rule": ("official: lr0 for epochs 1..epochs+1, then minus lr0/decay_epochs "
                              "after each later epoch")},
        "seed": cfg.seed,
        "loss": {"name": cfg.loss, "margin": cfg.margin, "formula": describe_loss(cfg.loss, cfg.margin)},
        "fast_path": bool(cfg.fast),
        "fast_path_dropout": FAST_DROPOUT_NOTE if cfg.fast else None,
        "lin_init": LIN_INIT_NOTE,
        "clamp": "LPIPS linear layers only, after every optimizer step",
        "config": cfgd,
        "total_epochs": cfg.total_epochs,
        "epochs_done": 0, "finished": False,
        "history": [],
        "files": {"latest": "latest.safetensors", "official_lin": "latest.lin.pth", "log": checkpoint.LOG},
    }
