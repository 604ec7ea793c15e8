"""Reading a trained LPIPS metric back from a ``bapps train`` run folder or checkpoint file.

The read side of the checkpoint format that :mod:`bapps_toolkit.train.checkpoint` writes
(layout documented there): ``latest.safetensors`` / ``epoch_NNN.safetensors`` (linear layers
``lin.{k}.weight``, the ranking net ``G.*``, a trained backbone ``backbone.*``, and metadata
strings saying what the file is), a run's ``backbone.safetensors`` for a frozen random backbone,
and ``.pth`` files of linear layers in the official LPIPS layout.

Nothing here unpickles arbitrary objects: weights are read with ``safetensors`` and ``.pth``
files with ``torch.load(weights_only=True)``; a file that is neither is refused with a
:class:`~bapps_toolkit.errors.CheckpointError` that says so.
"""
from __future__ import annotations

import os
import pickle
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

import torch
from safetensors import safe_open

from .._io import sha256_file
from ..errors import CheckpointError
from .backbones import LPIPS_CHANNELS
from .lpips import LPIPS
from .nets import NETS
from .plugin_net import plugin_from_checkpoint
from .provenance import calibration_from_metadata, merge_notes

PathLike = Union[str, "os.PathLike[str]"]

FORMAT = "bapps-toolkit/lpips-checkpoint"
FORMAT_VERSION = 1
CARD = "card.json"
LATEST = "latest"

#: Channels of the official LPIPS taps, to recognise the net of an official-layout ``.pth``.
_CHANNELS = {
    (64, 192, 384, 256, 256): "alex",
    (64, 128, 256, 512, 512): "vgg",
    (64, 128, 256, 384, 384, 512, 512): "squeeze",
}

_UNSET: Any = object()

_PICKLE_HINT = ("bapps-toolkit never unpickles checkpoints (a pickle can run arbitrary code); "
                "it reads .safetensors files and plain tensor dicts via torch.load(weights_only=True)")


def weights_path(out: PathLike, stem: str) -> Path:
    return Path(out) / f"{stem}.safetensors"


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
    try:
        with safe_open(str(p), framework="pt", device="cpu") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 — safe_open has no iterator
    except Exception as exc:  # safetensors raises SafetensorError / OSError / ValueError
        raise CheckpointError(f"{p}: not a valid safetensors file ({exc}). {_PICKLE_HINT}.") from None
    return tensors, meta


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


def split_model_tensors(
    tensors: Mapping[str, torch.Tensor],
) -> tuple[list[torch.Tensor], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
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


def build_lpips(net: str, version: str, backbone_weights: Any, random_seed: int, *,
                quiet_random: bool = False) -> LPIPS:
    """An LPIPS metric (linear layers on, all zero until loaded or initialised) with the given
    backbone; a ``"random"`` backbone is the seeded init of ``random_seed``. The official
    linear-weight files are not needed (nothing is silently taken from them).

    ``quiet_random`` silences the random-backbone warning of
    :func:`~bapps_toolkit.metrics.backbones.resolve_backbone` (for callers that issue their own,
    as training does); no other warning is touched."""
    zeros = {f"lin{k}.model.1.weight": torch.zeros(1, c, 1, 1) for k, c in enumerate(LPIPS_CHANNELS[net])}
    with warnings.catch_warnings():
        if quiet_random:
            warnings.filterwarnings("ignore", message=r".*backbone_weights='random'", category=UserWarning)
        return LPIPS(net=net, version=version, lpips=True, backbone_weights=backbone_weights,
                     lin_weights=zeros, random_seed=int(random_seed))


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


def _set_lins(model: LPIPS, lin_w: list[torch.Tensor], where: Path, net: str) -> None:
    chans = [int(c) for c in model.channels]
    got = [tuple(w.shape) for w in lin_w]
    want = [(1, c, 1, 1) for c in chans]
    if got != want:
        raise CheckpointError(
            f"{where}: linear layers of shapes {got} do not fit LPIPS net {net!r} (expects {want}); "
            "is it a checkpoint of another network?"
        )
    model.copy_lin_weights(lin_w)


def _load_backbone(model: LPIPS, state: Mapping[str, torch.Tensor], where: Path) -> None:
    try:
        model.backbone.load_state_dict(dict(state))
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"{where}: backbone weights do not fit this net ({first})") from None


def _from_official_pth(p: Path, backbone_weights: Any, version: str | None) -> LPIPS:
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
    model = build_lpips(net, version or "0.1", bw, 0, quiet_random=True)
    _set_lins(model, lin_w, p, net)
    return model


def _recorded_backbone(p: Path, meta: Mapping[str, str], net: str, ver: str) -> LPIPS:
    """The model on the backbone recorded at training time (a file checked by SHA-256, or the
    torchvision ImageNet weights)."""
    src = meta.get("backbone_source", "")
    sha = meta.get("backbone_sha256", "")
    if not sha:
        return build_lpips(net, ver, None, 0, quiet_random=True)
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
    return build_lpips(net, ver, str(bpath), 0, quiet_random=True)


def _label(model: LPIPS, calibration: tuple[bool, str]) -> LPIPS:
    model.calibrated, model.calibration_note = calibration[0], ("" if calibration[0] else calibration[1])
    return model


def _model_for_checkpoint(p: Path, meta: Mapping[str, str], bb: Mapping[str, torch.Tensor], net: str, ver: str,
                          backbone_weights: Any) -> LPIPS:
    if backbone_weights is not _UNSET:
        return build_lpips(net, ver, backbone_weights, 0, quiet_random=True)
    if meta.get("backbone_in_file") == "1":
        if not bb:
            raise CheckpointError(f"{p}: metadata says the backbone is stored but it is missing")
        model = build_lpips(net, ver, "random", 0, quiet_random=True)
        _load_backbone(model, bb, p)
        return _label(model, (True, ""))  # the checkpoint's own metadata decides
    if meta.get("backbone_file"):
        bfile = p.parent / meta["backbone_file"]
        if not bfile.is_file():
            raise CheckpointError(
                f"{p}: its frozen random backbone {bfile} is missing (keep it beside the checkpoint)"
            )
        bt, bmeta = read_safetensors(bfile)
        model = build_lpips(net, ver, "random", 0, quiet_random=True)
        _load_backbone(model, bt, bfile)
        return _label(model, calibration_from_metadata(bmeta))
    return _recorded_backbone(p, meta, net, ver)


def load_metric_from_checkpoint(path: PathLike, *, device: str | torch.device | None = None,
                                backbone_weights: Any = _UNSET, version: str | None = None) -> LPIPS:
    """A ready, eval-mode :class:`~bapps_toolkit.metrics.lpips.LPIPS` from a training checkpoint.

    ``path``: a ``bapps train`` output folder (its ``latest.safetensors``), its ``card.json``, an
    ``epoch_NNN.safetensors``/``latest.safetensors`` file, or a ``.pth`` of linear layers in the
    official layout (``lin{k}.model.1.weight``; the net is recognised from the channel counts,
    ``version`` defaults to ``"0.1"``, the backbone to torchvision's ImageNet weights).

    A checkpoint trained on a plugin network (``bapps train --net file.py:Net``) rebuilds it
    from the recorded spec and options and loads its stored backbone
    (:func:`~.plugin_net.plugin_from_checkpoint`: a plugin file changed since training is refused).

    The backbone comes from the checkpoint when it was trained (tune/scratch), from the run's
    ``backbone.safetensors`` for a random frozen backbone, and otherwise from the source
    recorded at training time (``backbone_weights=`` overrides it; a recorded file whose
    SHA-256 changed is refused). The metric's ``calibrated``/``calibration_note`` are those
    recorded in the checkpoint, so a metric trained on a random backbone or on synthetic data
    carries the ``[UNCALIBRATED: …]`` label. The checkpoint's ranking net G (``G.*``) is kept,
    unchecked, as :attr:`LPIPS.ranking_net` (CPU tensors) for calibration. Never unpickles
    arbitrary objects.
    """
    p = _resolve_checkpoint_file(path)
    dev = device if device is not None else "cpu"
    if p.suffix == ".pth":
        return _from_official_pth(p, backbone_weights, version).to(dev).eval()

    tensors, meta = read_safetensors(p)
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{p}: not a bapps-toolkit LPIPS checkpoint (metadata format {meta.get('format')!r}); "
            "expected a file written by `bapps train`"
        )
    net = meta.get("net", "")
    if net not in NETS and not meta.get("plugin_spec"):
        raise CheckpointError(f"{p}: unknown net {net!r} in checkpoint metadata")
    ver = meta.get("version", "0.1")
    if version is not None and str(version) != ver:
        raise CheckpointError(f"{p}: checkpoint is LPIPS version {ver}, not {version}")
    lin_w, g_state, bb = split_model_tensors(tensors)
    if meta.get("plugin_spec"):
        if backbone_weights is not _UNSET:
            raise CheckpointError(f"{p}: backbone_weights= does not apply to a checkpoint of the plugin network "
                                  f"{meta['plugin_spec']!r} (its backbone is stored in the file)")
        model: LPIPS = _label(plugin_from_checkpoint(p, meta, bb), (True, ""))
    else:
        model = _model_for_checkpoint(p, meta, bb, net, ver, backbone_weights)
    _set_lins(model, lin_w, p, net)
    model.ranking_net = {k: v.detach().cpu() for k, v in g_state.items()} or None
    ok, why = calibration_from_metadata(meta)
    if not ok or not model.calibrated:
        model.calibration_note = merge_notes(why, model.calibration_note if not model.calibrated else "")
        model.calibrated = False
    return model.to(dev).eval()


__all__ = [
    "load_metric_from_checkpoint", "build_lpips", "read_safetensors", "read_tensor_dict_pth",
    "split_model_tensors", "weights_path", "FORMAT", "FORMAT_VERSION", "CARD", "LATEST",
]
