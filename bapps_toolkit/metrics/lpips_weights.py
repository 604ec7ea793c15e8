"""The official LPIPS linear-weight files: where they are and how they are read and written.

They are shipped with the toolkit, or in an installed ``lpips`` package. They are read and
written in the layout of the official ``lpips/weights/v{version}/{net}.pth``: keys
``lin{k}.model.1.weight``, each ``[1, C, 1, 1]``.
"""
from __future__ import annotations

import importlib.util
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..errors import MetricInputError, WeightsError
from . import hub
from .nets import check_net

VERSIONS: tuple[str, ...] = ("0.1", "0.0")

#: Folder of the official linear weights shipped with the toolkit.
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

_OFFICIAL_KEY = re.compile(r"^lin(\d+)\.model\.([01])\.weight$")


def check_version(version: str | float) -> str:
    """The LPIPS weight version as ``"0.1"`` or ``"0.0"``.

    Args:
        version: ``0.1``, ``"v0.1"``, ``"0.0"`` and the like.

    Returns:
        One of :data:`VERSIONS`.

    Raises:
        ValueError: any other version.
    """
    v = str(version).strip().lower().lstrip("v")
    if v not in VERSIONS:
        raise MetricInputError(f"version must be '0.1' or '0.0', got {version!r}")
    return v


def shipped_lin_weights(net: str, version: str = "0.1") -> Path:
    """Path of the official linear weights shipped inside the toolkit.

    The file may be absent in a trimmed install.
    """
    return WEIGHTS_DIR / f"v{check_version(version)}" / f"{check_net(net)}.pth"


def find_installed_lpips_weights(net: str, version: str = "0.1") -> Path | None:
    """The official linear-weight file inside an installed ``lpips`` package, or ``None``.

    Locates the package with :func:`importlib.util.find_spec` (which does not import a
    top-level package) and looks for ``<package dir>/weights/v{version}/{net}.pth``.
    """
    net, version = check_net(net), check_version(version)
    try:
        spec = importlib.util.find_spec("lpips")
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    dirs: list[Path] = []
    if spec.origin and spec.origin not in ("namespace", "built-in", "frozen"):
        dirs.append(Path(spec.origin).parent)
    dirs += [Path(d) for d in (spec.submodule_search_locations or [])]
    for d in dirs:
        p = d / "weights" / f"v{version}" / f"{net}.pth"
        if p.is_file():
            return p
    return None


def normalise_official(state: Mapping[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """Keep ``lin{k}.model.{0,1}.weight`` entries as ``lin{k}.model.1.weight``; refuse others."""
    out: dict[str, torch.Tensor] = {}
    others = []
    for key, value in state.items():
        m = _OFFICIAL_KEY.match(str(key))
        if m:
            k = int(m.group(1))
            name = f"lin{k}.model.1.weight"
            if name in out:
                raise WeightsError(f"{source}: two entries for linear layer {k}")
            if not isinstance(value, torch.Tensor) or value.dim() != 4 or value.shape[0] != 1 \
                    or value.shape[2:] != (1, 1) or not value.is_floating_point():
                shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                raise WeightsError(f"{source}: {key} has shape {shape}; expected a float [1, C, 1, 1] tensor")
            out[name] = value
        elif not str(key).startswith("scaling_layer."):
            others.append(str(key))
    if others:
        hint = (" It holds backbone weights too (net.*): a tuned or scratch model; load its backbone "
                "with backbone_weights= from a torchvision-layout file." if any(o.startswith("net.") for o in others)
                else "")
        raise WeightsError(
            f"{source}: not an LPIPS linear-weight file: unexpected keys {', '.join(others[:4])}"
            f"{' …' if len(others) > 4 else ''} (expected lin0.model.1.weight, lin1.model.1.weight, …).{hint}"
        )
    if not out:
        raise WeightsError(f"{source}: no linear-layer weights (lin0.model.1.weight, …) found")
    ks = sorted(int(k[len("lin"):].split(".", 1)[0]) for k in out)
    if ks != list(range(len(ks))):
        raise WeightsError(f"{source}: linear layers {ks} are not numbered 0…{len(ks) - 1}")
    return {f"lin{k}.model.1.weight": out[f"lin{k}.model.1.weight"] for k in ks}


def load_official_lin_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Read an official-layout LPIPS linear-weight file to CPU tensors.

    A ``.pth`` file (read with ``weights_only=True``) or safetensors →
    ``{"lin0.model.1.weight": [1, C0, 1, 1], …}`` on CPU.

    The no-dropout layout ``lin{k}.model.0.weight`` is accepted and renamed; ``scaling_layer.*``
    constants are ignored; anything else raises :class:`WeightsError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"lin_weights: {path} does not exist or is not a file")
    return normalise_official(hub.load_state_dict_file(path), str(path))


def official_lin_state_dict(model: Any) -> dict[str, torch.Tensor]:
    """The model's linear layers in the official layout.

    Keys ``lin{k}.model.1.weight``, values [1, C, 1, 1] detached CPU copies; loadable by the
    ``lpips`` package and by ``lin_weights=``.
    """
    return {f"lin{k}.model.1.weight": w.detach().to("cpu", copy=True) for k, w in enumerate(model.lin_weights())}


__all__ = ["VERSIONS", "WEIGHTS_DIR", "check_version", "shipped_lin_weights", "find_installed_lpips_weights",
           "load_official_lin_weights", "official_lin_state_dict"]
