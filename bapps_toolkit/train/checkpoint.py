"""Checkpoints of training runs: safe formats only, written atomically, loadable as a metric.

Layout of a run folder ``OUT`` (every file written to a temporary name, then renamed):

* ``epoch_NNN.safetensors`` — weights after epoch ``NNN``: ``lin.{k}.weight`` (``[1, C_k, 1, 1]``),
  ``G.model.{0,2,4}.{weight,bias}``, and ``backbone.<torchvision name>`` when the backbone was
  trained (``tune``/``scratch``). The safetensors metadata (strings) says what the file is: net,
  version, variant, epoch, channels, where the backbone comes from and whether the metric is
  calibrated.
* ``epoch_NNN.optim.safetensors`` — Adam state (``state.{i}.exp_avg`` …) with the parameter
  groups and parameter names as JSON in the metadata.
* ``epoch_NNN.lin.pth`` — the linear layers alone in the official LPIPS key layout
  (``lin{k}.model.1.weight``), a plain dict of tensors (``torch.load(..., weights_only=True)``
  reads it; the official ``lpips.LPIPS(model_path=...)`` loads it).
* ``latest.safetensors``, ``latest.optim.safetensors``, ``latest.lin.pth`` — copies of the
  newest epoch.
* ``backbone.safetensors`` — for ``lin`` on a random backbone only: the frozen random backbone
  (it cannot be fetched again from anywhere).
* ``card.json`` — the run's card, written last each epoch: it is the commit point ``--resume``
  reads. ``log.csv`` — one row per finished epoch.

Nothing here unpickles arbitrary objects: weights are read with ``safetensors`` and ``.pth``
files with ``torch.load(weights_only=True)``; a file that is neither is refused with a
:class:`~bapps_toolkit.errors.CheckpointError` that says so.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

import torch

from .._io import atomic_path, write_text_atomic
from ..errors import CheckpointError

PathLike = Union[str, "os.PathLike[str]"]

FORMAT = "bapps-toolkit/lpips-checkpoint"
OPTIM_FORMAT = "bapps-toolkit/adam-state"
CARD_FORMAT = "bapps-toolkit/train-card"
FORMAT_VERSION = 1

CARD = "card.json"
LOG = "log.csv"
BACKBONE_FILE = "backbone.safetensors"
LATEST = "latest"


def epoch_stem(epoch: int) -> str:
    return f"epoch_{int(epoch):03d}"


def weights_path(out: PathLike, stem: str) -> Path:
    return Path(out) / f"{stem}.safetensors"


def optim_path(out: PathLike, stem: str) -> Path:
    return Path(out) / f"{stem}.optim.safetensors"


def official_lin_path(out: PathLike, stem: str) -> Path:
    return Path(out) / f"{stem}.lin.pth"


# ------------------------------------------------------------------------------------------
# safe readers

_PICKLE_HINT = ("bapps-toolkit never unpickles checkpoints (a pickle can run arbitrary code); "
                "it reads .safetensors files and plain tensor dicts via torch.load(weights_only=True)")


def _sniff(path: Path) -> str:
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head[:2] == b"PK":
        return "zip"  # torch.save's default format (pickle inside a zip)
    if head[:1] == b"\x80":
        return "pickle"
    return "other"


def read_safetensors(path: PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(tensors, metadata)`` of a safetensors file on CPU; :class:`CheckpointError` otherwise."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} does not exist or is not a file")
    kind = _sniff(p)
    if kind in ("zip", "pickle"):
        raise CheckpointError(
            f"{p}: refusing to load — this is a pickle/torch.save file, not safetensors. {_PICKLE_HINT}."
        )
    from safetensors import safe_open

    try:
        with safe_open(str(p), framework="pt", device="cpu") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises SafetensorError / OSError / ValueError
        raise CheckpointError(f"{p}: not a valid safetensors file ({exc}). {_PICKLE_HINT}.") from None
    return tensors, meta


def write_safetensors(path: PathLike, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> None:
    """Write atomically (temporary name, fsync, rename)."""
    from safetensors.torch import save_file

    clean = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(clean, str(tmp), metadata={k: str(v) for k, v in metadata.items()})


def read_tensor_dict_pth(path: PathLike) -> dict[str, torch.Tensor]:
    """A ``.pth`` holding a flat dict of tensors, read with ``weights_only=True``."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p} does not exist or is not a file")
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, AttributeError,
            ImportError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{p}: refused — not a plain dict of tensors loadable with weights_only=True ({first}). "
            f"{_PICKLE_HINT}."
        ) from None
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{p}: expected a dict of tensors, got {type(obj).__name__}")
    return dict(obj)


def write_official_lin(path: PathLike, lin_weights: list[torch.Tensor]) -> None:
    """Linear layers in the official key layout ``lin{k}.model.1.weight`` (a plain tensor dict)."""
    state = {f"lin{k}.model.1.weight": w.detach().to("cpu").clone().contiguous() for k, w in enumerate(lin_weights)}
    with atomic_path(path) as tmp:
        torch.save(state, str(tmp))


def read_json(path: PathLike, what: str = "file") -> dict[str, Any]:
    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{what} {p} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{what} {p} is not valid JSON ({exc})") from None


def write_json(path: PathLike, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


# ------------------------------------------------------------------------------------------
# model / optimizer state

def model_tensors(lins, G, backbone: torch.nn.Module | None) -> dict[str, torch.Tensor]:
    t: dict[str, torch.Tensor] = {}
    for k, lin in enumerate(lins):
        t[f"lin.{k}.weight"] = lin.weight.detach()
    for name, v in G.state_dict().items():
        t[f"G.{name}"] = v.detach()
    if backbone is not None:
        for name, v in backbone.state_dict().items():
            t[f"backbone.{name}"] = v.detach()
    return t


def split_model_tensors(tensors: Mapping[str, torch.Tensor]) -> tuple[list[torch.Tensor], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``(lin weights in order, G state, backbone state)`` from a checkpoint's tensors."""
    lins: dict[int, torch.Tensor] = {}
    G: dict[str, torch.Tensor] = {}
    bb: dict[str, torch.Tensor] = {}
    for k, v in tensors.items():
        if k.startswith("lin.") and k.endswith(".weight"):
            try:
                lins[int(k.split(".")[1])] = v
            except ValueError:
                raise CheckpointError(f"unexpected key {k!r} in checkpoint") from None
        elif k.startswith("G."):
            G[k[2:]] = v
        elif k.startswith("backbone."):
            bb[k[len("backbone."):]] = v
        else:
            raise CheckpointError(f"unexpected key {k!r} in checkpoint")
    if sorted(lins) != list(range(len(lins))):
        raise CheckpointError(f"checkpoint linear layers are not numbered 0..n-1: {sorted(lins)}")
    return [lins[i] for i in range(len(lins))], G, bb


def optimizer_tensors(opt: torch.optim.Optimizer, names: list[str]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
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


def load_optimizer_(opt: torch.optim.Optimizer, names: list[str], path: PathLike) -> None:
    tensors, meta = read_safetensors(path)
    if meta.get("format") != OPTIM_FORMAT:
        raise CheckpointError(f"{path}: not a bapps-toolkit optimizer state (format {meta.get('format')!r})")
    saved_names = json.loads(meta.get("param_names", "[]"))
    if saved_names != names:
        raise CheckpointError(
            f"{path}: optimizer state is for other parameters ({len(saved_names)} saved, {len(names)} now); "
            "was the run started with another net or variant?"
        )
    groups = json.loads(meta["param_groups"])
    scalars = json.loads(meta.get("scalars", "{}"))
    state: dict[int, dict[str, Any]] = {}
    for k, v in tensors.items():
        _, idx, key = k.split(".", 2)
        state.setdefault(int(idx), {})[key] = v
    for idx, d in scalars.items():
        state.setdefault(int(idx), {}).update(d)
    try:
        opt.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: optimizer state does not fit this model ({exc})") from None
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
               optim: tuple[dict[str, torch.Tensor], dict[str, str]], lin_weights: list[torch.Tensor]) -> dict[str, str]:
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


# ------------------------------------------------------------------------------------------
# checkpoint → metric

_UNSET: Any = object()

#: Channels of the official LPIPS taps, to recognise the net of an official-layout ``.pth``.
_CHANNELS = {
    (64, 192, 384, 256, 256): "alex",
    (64, 128, 256, 512, 512): "vgg",
    (64, 128, 256, 384, 384, 512, 512): "squeeze",
}


def _resolve_checkpoint_file(path: PathLike) -> Path:
    p = Path(path)
    if p.is_dir():
        cand = weights_path(p, LATEST)
        if not cand.is_file():
            raise CheckpointError(f"{p}: no {cand.name} in this folder; is it a `bapps train` output folder?")
        return cand
    if p.name == CARD:
        return _resolve_checkpoint_file(p.parent)
    if not p.exists():
        raise CheckpointError(f"checkpoint {p} does not exist")
    return p


def _set_lins(model, lin_w: list[torch.Tensor], where: Path, net: str) -> None:
    chans = [int(c) for c in model.channels]
    got = [tuple(w.shape) for w in lin_w]
    want = [(1, c, 1, 1) for c in chans]
    if got != want:
        raise CheckpointError(
            f"{where}: linear layers of shapes {got} do not fit LPIPS net {net!r} (expects {want}); "
            "is it a checkpoint of another network?"
        )
    with torch.no_grad():
        for lin, w in zip(model.lins, lin_w, strict=False):
            lin.weight.copy_(w.to(lin.weight.dtype))


def load_metric_from_checkpoint(path: PathLike, *, device: str | torch.device | None = None,
                                backbone_weights: Any = _UNSET, version: str | None = None):
    """A ready, eval-mode :class:`~bapps_toolkit.metrics.lpips.LPIPS` from a training checkpoint.

    ``path``: a ``bapps train`` output folder (its ``latest.safetensors``), its ``card.json``, an
    ``epoch_NNN.safetensors``/``latest.safetensors`` file, or a ``.pth`` of linear layers in the
    official layout (``lin{k}.model.1.weight``; the net is recognised from the channel counts,
    ``version`` defaults to ``"0.1"``, the backbone to torchvision's ImageNet weights).

    The backbone comes from the checkpoint when it was trained (tune/scratch), from the run's
    ``backbone.safetensors`` for a random frozen backbone, and otherwise from the source
    recorded at training time (``backbone_weights=`` overrides it; a recorded file whose
    SHA-256 changed is refused). The metric's ``calibrated``/``calibration_note`` are those
    recorded in the checkpoint, so a metric trained on a random backbone or on synthetic data
    carries the ``[UNCALIBRATED: …]`` label. Never unpickles arbitrary objects.
    """
    from .._io import sha256_file
    from .loop import build_lpips

    p = _resolve_checkpoint_file(path)
    if p.suffix == ".pth":
        state = read_tensor_dict_pth(p)
        keys = [f"lin{k}.model.1.weight" for k in range(len(state))]
        if sorted(state) != sorted(keys):
            raise CheckpointError(f"{p}: not an official LPIPS linear-layer file (keys {sorted(state)[:4]} …)")
        lin_w = [state[k] for k in keys]
        chans = tuple(int(w.shape[1]) for w in lin_w)
        net = _CHANNELS.get(chans)
        if net is None:
            raise CheckpointError(f"{p}: linear layers with channels {chans} match no LPIPS net")
        bw = None if backbone_weights is _UNSET else backbone_weights
        model = build_lpips(net, version or "0.1", bw, 0)
        _set_lins(model, lin_w, p, net)
        return model.to(device if device is not None else "cpu").eval()

    tensors, meta = read_safetensors(p)
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{p}: not a bapps-toolkit LPIPS checkpoint (metadata format {meta.get('format')!r}); "
            "expected a file written by `bapps train`"
        )
    net = meta.get("net", "")
    if net not in ("alex", "vgg", "squeeze"):
        raise CheckpointError(f"{p}: unknown net {net!r} in checkpoint metadata")
    ver = meta.get("version", "0.1")
    if version is not None and str(version) != ver:
        raise CheckpointError(f"{p}: checkpoint is LPIPS version {ver}, not {version}")
    lin_w, _g, bb = split_model_tensors(tensors)
    if backbone_weights is not _UNSET:
        model = build_lpips(net, ver, backbone_weights, 0)
    elif meta.get("backbone_in_file") == "1":
        if not bb:
            raise CheckpointError(f"{p}: metadata says the backbone is stored but it is missing")
        model = build_lpips(net, ver, "random", 0)
        _load_backbone(model, bb, p)
    elif meta.get("backbone_file"):
        bfile = p.parent / meta["backbone_file"]
        if not bfile.is_file():
            raise CheckpointError(
                f"{p}: its frozen random backbone {bfile} is missing (keep it beside the checkpoint)"
            )
        bt, _ = read_safetensors(bfile)
        model = build_lpips(net, ver, "random", 0)
        _load_backbone(model, bt, bfile)
    else:
        src = meta.get("backbone_source", "")
        sha = meta.get("backbone_sha256", "")
        if sha:
            bpath = Path(src)
            if not bpath.is_file():
                raise CheckpointError(
                    f"{p}: trained on backbone weights {bpath}, which no longer exist; pass backbone_weights=PATH"
                )
            if sha256_file(bpath) != sha:
                raise CheckpointError(
                    f"{p}: backbone weights {bpath} changed since training (SHA-256 differs); "
                    "pass backbone_weights=PATH explicitly to use them anyway"
                )
            model = build_lpips(net, ver, str(bpath), 0)
        else:
            model = build_lpips(net, ver, None, 0)
    _set_lins(model, lin_w, p, net)
    model.calibrated = meta.get("calibrated") == "1"
    model.calibration_note = "" if model.calibrated else (meta.get("calibration_note") or "uncalibrated training run")
    return model.to(device if device is not None else "cpu").eval()


def _load_backbone(model, state: Mapping[str, torch.Tensor], where: Path) -> None:
    try:
        model.backbone.load_state_dict(dict(state))
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"{where}: backbone weights do not fit this net ({first})") from None


__all__ = [
    "load_metric_from_checkpoint", "FORMAT", "CARD", "LOG", "read_safetensors", "write_safetensors", "read_tensor_dict_pth",
    "write_official_lin", "save_epoch", "run_files", "model_tensors", "split_model_tensors",
    "optimizer_tensors", "load_optimizer_", "epoch_stem", "weights_path", "optim_path",
    "official_lin_path",
]
