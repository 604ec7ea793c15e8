"""Reading a trained LPIPS metric back from a ``bapps train`` run folder or checkpoint file.

The read side of the checkpoint format that :mod:`bapps_toolkit.train.checkpoint` writes
(layout documented there): ``latest.safetensors`` / ``epoch_NNN.safetensors`` (linear layers
``lin.{k}.weight``, the ranking net ``G.*``, a trained backbone ``backbone.*``, and metadata
strings saying what the file is), a run's ``backbone.safetensors`` for a frozen random backbone,
and ``.pth`` files of linear layers in the official LPIPS layout.

Nothing here unpickles arbitrary objects: weights are read with ``safetensors`` and ``.pth``
files with ``torch.load(weights_only=True)``; a file that is neither is refused with a
:class:`~bapps_toolkit.errors.CheckpointError` that says so. A checkpoint is data: the code of a
plugin network it names is imported only when the caller trusts that spec
(``trust_plugin=``, :mod:`.plugin_trust`); the tensors it declares are checked against the model
(names, shapes, dtypes) before their data is read (:mod:`.safetensors_io`); the file names it
records (a run's backbone file, the backbone weights of training time) are refused unless they
have the form the toolkit writes.
"""
from __future__ import annotations

import pickle
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch

from .._io import PathLike, sha256_file
from ..errors import CheckpointError, WeightsError
from .backbones import LPIPS_CHANNELS, BackboneWeights
from .lpips import LPIPS
from .nets import NETS
from .plugin_net import plugin_from_checkpoint
from .plugin_trust import TrustArg, trusted_specs
from .provenance import calibration_from_metadata, merge_notes
from .safetensors_io import FLOAT_DTYPES, SafetensorsHeader, check_declared, read_header, read_safetensors, read_tensors
from .safetensors_io import PICKLE_HINT as _PICKLE_HINT

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

#: Suffixes of the backbone weights file a checkpoint may say it was trained on.
WEIGHTS_SUFFIXES = (".pth", ".pt", ".safetensors", ".bin", ".ckpt")

_T = TypeVar("_T")

_LIN_KEY = re.compile(r"lin\.(0|[1-9][0-9]{0,5})\.weight")


def weights_path(out: PathLike, stem: str) -> Path:
    """The safetensors file ``<stem>.safetensors`` in the run folder ``out`` (the path is not checked)."""
    return Path(out) / f"{stem}.safetensors"


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
    tensors: Mapping[str, _T], where: PathLike = "checkpoint",
) -> tuple[list[_T], dict[str, _T], dict[str, _T]]:
    """``(lin weights in order, G state, backbone state)`` from a checkpoint's tensors.

    Or from anything keyed by tensor name, e.g. a header's declarations; a :class:`CheckpointError`
    naming ``where`` for any other key or linear layers not numbered ``0..n-1``.
    """
    lins: dict[int, _T] = {}
    G: dict[str, _T] = {}
    bb: dict[str, _T] = {}
    for k, v in tensors.items():
        m = _LIN_KEY.fullmatch(k)
        if m:
            lins[int(m.group(1))] = v
        elif k.startswith("G.") and len(k) > 2:
            G[k[2:]] = v
        elif k.startswith("backbone.") and len(k) > len("backbone."):
            bb[k[len("backbone."):]] = v
        else:
            raise CheckpointError(f"{where}: unexpected key {k[:80]!r} in checkpoint")
    if sorted(lins) != list(range(len(lins))):
        raise CheckpointError(f"{where}: checkpoint linear layers are not numbered 0..n-1: {sorted(lins)[:8]}")
    return [lins[i] for i in range(len(lins))], G, bb


def build_lpips(net: str, version: str, backbone_weights: BackboneWeights, random_seed: int, *,
                quiet_random: bool = True) -> LPIPS:
    """An LPIPS metric to train or to load a checkpoint into: linear layers on, all zero.

    The official linear-weight files are not needed (nothing is silently taken from them). A
    ``"random"`` backbone is the seeded init of ``random_seed``; the metric is then marked
    uncalibrated (its label says so) either way.

    Args:
        net: ``alex``, ``vgg`` or ``squeeze``.
        version: ``"0.1"`` or ``"0.0"``.
        backbone_weights: As :class:`~bapps_toolkit.metrics.lpips.LPIPS` takes them.
        random_seed: Seed of a random backbone.
        quiet_random: Silence the random-backbone warning of
            :func:`~bapps_toolkit.metrics.backbones.resolve_backbone`, for callers that issue
            their own (training, checkpoint loading); no other warning is touched.

    Returns:
        The metric.
    """
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
    if not all(bool(torch.isfinite(w).all()) for w in lin_w):
        raise CheckpointError(f"{where}: its linear layers hold NaN or infinite weights")
    model.copy_lin_weights(lin_w)


def _read_lins(model: LPIPS, head: SafetensorsHeader, names: list[str], net: str) -> None:
    """The declared linear layers checked against ``model`` (shapes, float dtypes), then read."""
    want = [(1, int(c), 1, 1) for c in model.channels]
    got = [head.tensors[n].shape for n in names]
    if got != want:
        raise CheckpointError(f"{head.path}: linear layers of shapes {got[:8]} do not fit LPIPS net {net!r} "
                              f"(expects {want}); is it a checkpoint of another network?")
    if any(head.tensors[n].dtype not in FLOAT_DTYPES for n in names):
        raise CheckpointError(f"{head.path}: its linear layers are not floating-point tensors")
    lin = read_tensors(head, names)
    _set_lins(model, [lin[n] for n in names], head.path, net)


#: G's tensors (``model.0/2/4`` of the official ``Dist2LogitLayer``), ``C`` its hidden width.
_G_SHAPES = {"model.0.weight": ("C", 5, 1, 1), "model.0.bias": ("C",), "model.2.weight": ("C", "C", 1, 1),
             "model.2.bias": ("C",), "model.4.weight": (1, "C", 1, 1), "model.4.bias": (1,)}
_G_MAX_WIDTH = 1024


def _read_ranking_net(head: SafetensorsHeader, names: Mapping[str, str]) -> dict[str, torch.Tensor] | None:
    """The declared ranking net G ``{state name: tensor name}``, checked before it is read.

    Checked: names, shapes, float dtypes, a hidden width of at most 1024; None when the file has none.
    """
    if not names:
        return None
    if set(names) != set(_G_SHAPES):
        raise CheckpointError(f"{head.path}: ranking net G holds {sorted(names)[:8]}, expected {sorted(_G_SHAPES)}")
    bias = head.tensors[names["model.0.bias"]].shape
    width = int(bias[0]) if len(bias) == 1 else -1
    for k, shape in _G_SHAPES.items():
        info = head.tensors[names[k]]
        want = tuple(width if s == "C" else s for s in shape)
        if not 0 < width <= _G_MAX_WIDTH or tuple(info.shape) != want or info.dtype not in FLOAT_DTYPES:
            raise CheckpointError(f"{head.path}: ranking net G tensor {k} is {info.dtype} {tuple(info.shape)}, "
                                  f"expected a float tensor of shape {want} (hidden width 1..{_G_MAX_WIDTH})")
    read = read_tensors(head, names.values())
    return {k: read[n].detach().cpu() for k, n in names.items()}


def _load_backbone(model: LPIPS, head: SafetensorsHeader, names: Mapping[str, str]) -> None:
    """The stored backbone ``{state name: tensor name}``, checked, then loaded.

    Checked against ``model``'s (names, shapes, dtypes) before it is read.
    """
    check_declared(head.path, {k: head.tensors[n] for k, n in names.items()}, model.backbone.state_dict(),
                   "backbone")
    read = read_tensors(head, names.values())
    try:
        model.backbone.load_state_dict({k: read[n] for k, n in names.items()})
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"{head.path}: backbone weights do not fit this net ({first})") from None


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
    """The model on the backbone recorded at training time.

    That is a weights file checked by SHA-256, or the torchvision ImageNet weights. The recorded
    path must be an absolute path to a non-empty regular file with a weights suffix
    (:data:`WEIGHTS_SUFFIXES`): the checkpoint cannot send the reader to a device, a pipe or a
    pseudo-file.
    """
    src = meta.get("backbone_source", "")
    sha = meta.get("backbone_sha256", "")
    if not sha:
        return build_lpips(net, ver, None, 0, quiet_random=True)
    bpath = Path(src) if "\x00" not in src else Path()
    if not bpath.is_absolute() or bpath.suffix.lower() not in WEIGHTS_SUFFIXES:
        raise CheckpointError(f"{p}: records backbone weights {src[:200]!r}, which is not an absolute path to a "
                              f"weights file ({', '.join(WEIGHTS_SUFFIXES)}); pass backbone_weights=PATH")
    if not bpath.is_file():
        raise CheckpointError(
            f"{p}: trained on backbone weights {bpath}, which no longer exist; pass backbone_weights=PATH"
        )
    if bpath.stat().st_size == 0:
        raise CheckpointError(f"{p}: its recorded backbone weights {bpath} are an empty file; "
                              "pass backbone_weights=PATH")
    if sha256_file(bpath) != sha:
        raise CheckpointError(
            f"{p}: backbone weights {bpath} changed since training (SHA-256 differs); "
            "pass backbone_weights=PATH explicitly to use them anyway"
        )
    return build_lpips(net, ver, str(bpath), 0, quiet_random=True)


def _label(model: LPIPS, calibration: tuple[bool, str]) -> LPIPS:
    model.calibrated, model.calibration_note = calibration[0], ("" if calibration[0] else calibration[1])
    return model


def _run_backbone_file(p: Path, name: str) -> Path:
    """The run's backbone file a checkpoint names: a plain ``*.safetensors`` name beside it."""
    if (Path(name).name != name or name.startswith(".") or not name.endswith(".safetensors")
            or "\x00" in name or "\\" in name):
        raise CheckpointError(f"{p}: its backbone file {name[:200]!r} is not a plain .safetensors file name "
                              "beside the checkpoint")
    bfile = p.parent / name
    if not bfile.is_file():
        raise CheckpointError(f"{p}: its frozen random backbone {bfile} is missing (keep it beside the checkpoint)")
    return bfile


def _model_for_checkpoint(head: SafetensorsHeader, bb: Mapping[str, str], net: str, ver: str,
                          backbone_weights: Any) -> LPIPS:
    p, meta = head.path, head.metadata
    if backbone_weights is not _UNSET:
        return build_lpips(net, ver, backbone_weights, 0, quiet_random=True)
    if meta.get("backbone_in_file") == "1":
        if not bb:
            raise CheckpointError(f"{p}: metadata says the backbone is stored but it is missing")
        model = build_lpips(net, ver, "random", 0, quiet_random=True)
        _load_backbone(model, head, bb)
        return _label(model, (True, ""))  # the checkpoint's own metadata decides
    if meta.get("backbone_file"):
        bhead = read_header(_run_backbone_file(p, meta["backbone_file"]))
        model = build_lpips(net, ver, "random", 0, quiet_random=True)
        _load_backbone(model, bhead, {k: k for k in bhead.tensors})
        return _label(model, calibration_from_metadata(bhead.metadata))
    return _recorded_backbone(p, meta, net, ver)


def _checked_meta(p: Path, meta: Mapping[str, str], version: str | None) -> tuple[str, str]:
    """``(net, version)`` of a checkpoint's metadata, checked."""
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{p}: not a bapps-toolkit LPIPS checkpoint (metadata format {meta.get('format', '')[:80]!r}); "
            "expected a file written by `bapps train`"
        )
    net = meta.get("net", "")
    if net not in NETS and not meta.get("plugin_spec"):
        raise CheckpointError(f"{p}: unknown net {net[:80]!r} in checkpoint metadata")
    ver = meta.get("version", "0.1")
    if ver not in ("0.0", "0.1"):
        raise CheckpointError(f"{p}: unknown LPIPS version {ver[:20]!r} in checkpoint metadata")
    if version is not None and str(version) != ver:
        raise CheckpointError(f"{p}: checkpoint is LPIPS version {ver}, not {version}")
    return net, ver


def _plugin_model(head: SafetensorsHeader, bb: Mapping[str, str], backbone_weights: Any,
                  trusted: frozenset[str]) -> LPIPS:
    spec = head.metadata["plugin_spec"]
    if backbone_weights is not _UNSET:
        raise CheckpointError(f"{head.path}: backbone_weights= does not apply to a checkpoint of the plugin network "
                              f"{spec[:200]!r} (its backbone is stored in the file)")
    model: LPIPS = plugin_from_checkpoint(head.path, head.metadata, trusted)
    if not bb:
        raise CheckpointError(f"{head.path}: the backbone state of plugin network {spec!r} is missing from the file")
    try:
        _load_backbone(model, head, bb)
    except CheckpointError as exc:
        raise CheckpointError(f"{exc} (plugin network {spec!r})") from None
    return _label(model, (True, ""))


def load_metric_from_checkpoint(path: PathLike, *, device: str | torch.device | None = None,
                                backbone_weights: Any = _UNSET, version: str | None = None,
                                trust_plugin: TrustArg = None) -> LPIPS:
    """A ready, eval-mode :class:`~bapps_toolkit.metrics.lpips.LPIPS` from a training checkpoint.

    ``path``: a ``bapps train`` output folder (its ``latest.safetensors``), its ``card.json``, an
    ``epoch_NNN.safetensors``/``latest.safetensors`` file, or a ``.pth`` of linear layers in the
    official layout (``lin{k}.model.1.weight``; the net is recognised from the channel counts,
    ``version`` defaults to ``"0.1"``, the backbone to torchvision's ImageNet weights).

    A checkpoint trained on a plugin network (``bapps train --net file.py:Net``) names code to
    import: it is rebuilt only when ``trust_plugin`` names the same spec (a string or several)
    and the code's SHA-256 is the one recorded at training time; then the recorded options are
    passed to the factory and the stored backbone loaded (:func:`~.plugin_net.plugin_from_checkpoint`).
    Without that, a :class:`CheckpointError` names the spec and how to allow it, and nothing is
    imported.

    The backbone comes from the checkpoint when it was trained (tune/scratch), from the run's
    ``backbone.safetensors`` for a random frozen backbone, and otherwise from the source
    recorded at training time (``backbone_weights=`` overrides it; a recorded file whose
    SHA-256 changed is refused). The metric's ``calibrated``/``calibration_note`` are those
    recorded in the checkpoint, so a metric trained on a random backbone or on synthetic data
    carries the ``[UNCALIBRATED: …]`` label. The checkpoint's ranking net G (``G.*``), its names,
    shapes and dtypes checked first, is kept as :attr:`LPIPS.ranking_net` (CPU tensors) for
    calibration. Never unpickles arbitrary objects; every declared tensor is checked against the
    model before its data is read.

    Raises:
        CheckpointError: naming the file, for anything it holds or names that cannot be used.
    """
    p = _resolve_checkpoint_file(path)
    dev = device if device is not None else "cpu"
    if p.suffix == ".pth":
        return _from_official_pth(p, backbone_weights, version).to(dev).eval()

    head = read_header(p)
    meta = head.metadata
    net, ver = _checked_meta(p, meta, version)
    lin_names, g_names, bb = split_model_tensors({k: k for k in head.tensors}, p)
    try:
        if meta.get("plugin_spec"):
            model = _plugin_model(head, bb, backbone_weights, trusted_specs(trust_plugin))
        else:
            model = _model_for_checkpoint(head, bb, net, ver, backbone_weights)
    except WeightsError as exc:
        raise CheckpointError(f"{p}: {exc}") from None
    _read_lins(model, head, lin_names, net)
    model.ranking_net = _read_ranking_net(head, g_names)
    ok, why = calibration_from_metadata(meta)
    if not ok or not model.calibrated:
        model.calibration_note = merge_notes(why, model.calibration_note if not model.calibrated else "")
        model.calibrated = False
    return model.to(dev).eval()


__all__ = [
    "load_metric_from_checkpoint", "build_lpips", "read_safetensors", "read_tensor_dict_pth",
    "split_model_tensors", "weights_path", "FORMAT", "FORMAT_VERSION", "CARD", "LATEST", "WEIGHTS_SUFFIXES",
]
