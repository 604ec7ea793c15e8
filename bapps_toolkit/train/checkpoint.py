"""Checkpoints of training runs: safe formats only, written atomically, loadable as a metric.

Layout of a run folder ``OUT`` (every file written to a temporary name, then renamed):

* ``epoch_NNN.safetensors`` — weights after epoch ``NNN``: ``lin.{k}.weight`` (``[1, C_k, 1, 1]``),
  ``G.model.{0,2,4}.{weight,bias}``, and ``backbone.<torchvision name>`` when the backbone was
  trained (``tune``/``scratch``) or is a plugin network (``--net file.py:Net``, every variant).
  The safetensors metadata (strings) says what the file is: net, version, variant, epoch,
  channels, where the backbone comes from and whether the metric is calibrated; for a plugin
  network also ``plugin_spec``, ``plugin_options`` (JSON), ``plugin_origin`` (JSON: the SHA-256
  of the code file of a file, module or entry-point spec, a module's or entry point's
  distribution) and ``plugin_kind`` (:mod:`bapps_toolkit.metrics.plugin_net` rebuilds it, only
  for a caller who names the same spec: :mod:`bapps_toolkit.metrics.plugin_trust`).
* ``epoch_NNN.optim.safetensors`` — Adam state (``state.{i}.exp_avg`` …) with the parameter
  groups and parameter names as JSON in the metadata.
* ``epoch_NNN.lin.pth`` — the linear layers alone in the official LPIPS key layout
  (``lin{k}.model.1.weight``), a plain dict of tensors (``torch.load(..., weights_only=True)``
  reads it; the official ``lpips.LPIPS(model_path=...)`` loads it).
* ``latest.safetensors``, ``latest.optim.safetensors``, ``latest.lin.pth`` — copies of the
  newest epoch.
* ``backbone.safetensors`` — for ``lin`` on a random backbone only: the frozen random backbone
  (it cannot be fetched again from anywhere).
* ``card.json`` — the run's card, written last each epoch: it is the commit point a resumed run
  (``resume=True``) reads. ``log.csv`` — one row per finished epoch.

This module is the write side; reading (and refusing anything that is not safetensors or a plain
tensor dict) is :mod:`bapps_toolkit.metrics.trained`, re-exported here.
"""
from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, cast

import torch
from safetensors.torch import save as safetensors_bytes

from .._io import PathLike, atomic_path, atomic_write, write_text_atomic
from ..errors import CheckpointError
from ..metrics.safetensors_io import FLOAT_DTYPES, json_field, read_header, read_tensors
from ..metrics.trained import (
    CARD,
    FORMAT,
    FORMAT_VERSION,
    LATEST,
    load_metric_from_checkpoint,
    read_safetensors,
    read_tensor_dict_pth,
    split_model_tensors,
    weights_path,
)

OPTIM_FORMAT = "bapps-toolkit/adam-state"
CARD_FORMAT = "bapps-toolkit/train-card"

LOG = "log.csv"
BACKBONE_FILE = "backbone.safetensors"

#: Largest JSON file (a run card) :func:`read_json` reads, in bytes.
MAX_JSON_BYTES = 16 << 20

#: Largest JSON metadata value of an optimizer state file (its parameter names and groups).
MAX_OPTIM_JSON_CHARS = 16 << 20

_STATE_KEY = re.compile(r"state\.(0|[1-9][0-9]{0,6})\.([A-Za-z_][A-Za-z0-9_]{0,39})")


def epoch_stem(epoch: int) -> str:
    """File stem of the checkpoint of epoch ``epoch`` (``epoch_001`` …)."""
    return f"epoch_{int(epoch):03d}"


def optim_path(out: PathLike, stem: str) -> Path:
    """Path of the optimizer state file of ``stem`` in the run folder ``out``."""
    return Path(out) / f"{stem}.optim.safetensors"


def official_lin_path(out: PathLike, stem: str) -> Path:
    """Path of the official-layout linear-layer ``.pth`` of ``stem`` in the run folder ``out``."""
    return Path(out) / f"{stem}.lin.pth"


# ------------------------------------------------------------------------------------------
# writers (the readers live in bapps_toolkit.metrics.trained)

def write_safetensors(path: PathLike, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> None:
    """Write atomically (temporary name, fsync, rename).

    The file is serialised in memory and written through :func:`atomic_write`: safetensors'
    own ``save_file`` (≥ 0.8) writes through a ``.tmpXXXXXX`` file beside the target, which a
    ``kill -9`` leaves where :func:`~bapps_toolkit._io.remove_stale_temps` does not look.
    """
    clean = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    blob = safetensors_bytes(clean, metadata={k: str(v) for k, v in metadata.items()})
    with atomic_write(path) as fh:
        fh.write(blob)


def write_official_lin(path: PathLike, lin_weights: list[torch.Tensor]) -> None:
    """Linear layers in the official key layout ``lin{k}.model.1.weight`` (a plain tensor dict)."""
    state = {f"lin{k}.model.1.weight": w.detach().to("cpu").clone().contiguous() for k, w in enumerate(lin_weights)}
    with atomic_path(path) as tmp:
        torch.save(state, str(tmp))


def read_json(path: PathLike, what: str = "file") -> dict[str, Any]:
    """A JSON object read from ``path`` (at most :data:`MAX_JSON_BYTES`).

    A :class:`CheckpointError` names ``what`` and the file when it is missing, too large, not JSON, nested too
    deep or not an object.
    """
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            raw = fh.read(MAX_JSON_BYTES + 1)
    except FileNotFoundError:
        raise CheckpointError(f"{what} {p} does not exist") from None
    except OSError as exc:
        raise CheckpointError(f"{what} {p} cannot be read ({exc.strerror or exc})") from None
    if len(raw) > MAX_JSON_BYTES:
        raise CheckpointError(f"{what} {p} is larger than {MAX_JSON_BYTES >> 20} MiB; not a bapps-toolkit file")
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, ValueError) as exc:
        raise CheckpointError(f"{what} {p} is not valid JSON ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{what} {p} holds a JSON {type(obj).__name__}, not an object")
    return obj


def write_json(path: PathLike, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


# ------------------------------------------------------------------------------------------
# model / optimizer state

def model_tensors(lins: Iterable[torch.nn.Module], G: torch.nn.Module,
                  backbone: torch.nn.Module | None) -> dict[str, torch.Tensor]:
    """The tensors of an epoch's weights file: the linear layers, G and (when given) the backbone.

    Args:
        lins: the LPIPS linear layers.
        G: the ranking network.
        backbone: the backbone when the file holds it.

    Returns:
        ``{name: tensor}`` in the file's key layout.
    """
    t: dict[str, torch.Tensor] = {}
    for k, lin in enumerate(lins):
        t[f"lin.{k}.weight"] = cast(torch.Tensor, lin.weight).detach()
    for name, v in G.state_dict().items():
        t[f"G.{name}"] = v.detach()
    if backbone is not None:
        for name, v in backbone.state_dict().items():
            t[f"backbone.{name}"] = v.detach()
    return t


def optimizer_tensors(opt: torch.optim.Optimizer, names: list[str]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and metadata of an optimizer state file for ``opt``.

    Args:
        opt: the optimizer.
        names: the names of its parameters, in order.

    Returns:
        ``(tensors, metadata)``: the per-parameter state tensors by name, and the format, parameter
        groups, parameter names and non-tensor state as JSON strings.
    """
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, st in sd["state"].items():
        for key, val in st.items():
            if isinstance(val, torch.Tensor):
                tensors[f"state.{idx}.{key}"] = val.detach()
            else:
                scalars.setdefault(str(idx), {})[key] = val
    meta = {
        "format": OPTIM_FORMAT,
        "format_version": str(FORMAT_VERSION),
        "param_groups": json.dumps(sd["param_groups"]),
        "param_names": json.dumps(names),
        "scalars": json.dumps(scalars),
    }
    return tensors, meta


def _optimizer_state(path: PathLike, opt: torch.optim.Optimizer) -> dict[int, dict[str, Any]]:
    """The per-parameter state of an optimizer file, each declared tensor checked before any is read.

    Each tensor is checked against the parameter it belongs to (a scalar or the parameter's shape, floating
    point).
    """
    head = read_header(path)
    params = [p for group in opt.param_groups for p in group["params"]]
    for k, info in head.tensors.items():
        m = _STATE_KEY.fullmatch(k)
        idx = int(m.group(1)) if m else -1
        if not 0 <= idx < len(params) or info.dtype not in FLOAT_DTYPES or \
                info.shape not in ((), tuple(params[idx].shape)):
            raise CheckpointError(f"{path}: optimizer tensor {k[:80]!r} ({info.dtype} {list(info.shape)[:6]}) does "
                                  "not fit this model's parameters")
    state: dict[int, dict[str, Any]] = {}
    for k, v in read_tensors(head, head.tensors).items():
        _, idx_text, key = k.split(".", 2)
        state.setdefault(int(idx_text), {})[key] = v
    scalars = json_field(head.metadata, "scalars", Path(path), {}, dict, limit=MAX_OPTIM_JSON_CHARS)
    for idx_text, d in scalars.items():
        if not (idx_text.isdigit() and int(idx_text) < len(params)) or not isinstance(d, dict):
            raise CheckpointError(f"{path}: optimizer scalars entry {idx_text[:40]!r} does not fit this model")
        state.setdefault(int(idx_text), {}).update(d)
    return state


def load_optimizer_(opt: torch.optim.Optimizer, names: list[str], path: PathLike) -> None:
    """Load the Adam state of ``path`` into ``opt`` (whose parameters are ``names``).

    A :class:`CheckpointError` names the file when it is not one, is for other parameters or does not fit.
    """
    meta = read_header(path).metadata
    if meta.get("format") != OPTIM_FORMAT:
        raise CheckpointError(f"{path}: not a bapps-toolkit optimizer state (format {meta.get('format', '')[:80]!r})")
    where = Path(path)
    saved_names = json_field(meta, "param_names", where, [], list, limit=MAX_OPTIM_JSON_CHARS)
    if saved_names != names:
        raise CheckpointError(
            f"{path}: optimizer state is for other parameters ({len(saved_names)} saved, {len(names)} now); "
            "was the run started with another net or variant?"
        )
    groups = json_field(meta, "param_groups", where, None, list, limit=MAX_OPTIM_JSON_CHARS)
    if groups is None:
        raise CheckpointError(f"{path}: the optimizer's parameter groups are missing from its metadata")
    state = _optimizer_state(path, opt)
    try:
        opt.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError, RuntimeError, TypeError, IndexError, AttributeError) as exc:
        raise CheckpointError(f"{path}: optimizer state does not fit this model ({str(exc)[:200]})") from None
    # Adam keeps state on the parameters' device
    for group in opt.param_groups:
        for p in group["params"]:
            st = opt.state.get(p, {})
            for key, val in st.items():
                if isinstance(val, torch.Tensor) and key != "step" and val.device != p.device:
                    st[key] = val.to(p.device)


# ------------------------------------------------------------------------------------------
# epoch files

def save_epoch(out: PathLike, epoch: int, *, model: dict[str, torch.Tensor], meta: dict[str, str],
               optim: tuple[dict[str, torch.Tensor], dict[str, str]],
               lin_weights: list[torch.Tensor]) -> dict[str, str]:
    """Write epoch ``epoch`` and refresh ``latest.*``; return the file names (relative to ``out``)."""
    out = Path(out)
    stem = epoch_stem(epoch)
    meta = dict(meta, epoch=str(int(epoch)))
    write_safetensors(weights_path(out, stem), model, meta)
    write_safetensors(optim_path(out, stem), optim[0], dict(optim[1], epoch=str(int(epoch))))
    write_official_lin(official_lin_path(out, stem), lin_weights)
    for src, dst in ((weights_path(out, stem), weights_path(out, LATEST)),
                     (optim_path(out, stem), optim_path(out, LATEST)),
                     (official_lin_path(out, stem), official_lin_path(out, LATEST))):
        with atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)
    return {
        "weights": weights_path(out, stem).name,
        "optimizer": optim_path(out, stem).name,
        "official_lin": official_lin_path(out, stem).name,
    }


def run_files(out: PathLike) -> list[Path]:
    """Files a run writes in ``out`` (what ``overwrite`` removes)."""
    out = Path(out)
    if not out.is_dir():
        return []
    found = []
    for p in out.iterdir():
        n = p.name
        if (n.startswith("epoch_") and (n.endswith(".safetensors") or n.endswith(".lin.pth"))) or \
                n.startswith("latest.") or n in (CARD, LOG, BACKBONE_FILE):
            found.append(p)
    return sorted(found)


__all__ = [
    "load_metric_from_checkpoint", "FORMAT", "FORMAT_VERSION", "CARD", "LOG", "LATEST", "read_safetensors",
    "write_safetensors", "read_tensor_dict_pth",
    "write_official_lin", "save_epoch", "run_files", "model_tensors", "split_model_tensors",
    "optimizer_tensors", "load_optimizer_", "epoch_stem", "weights_path", "optim_path",
    "official_lin_path",
]
