"""ImageNet backbone weights for LPIPS, as torchvision publishes them, and safe weight loading.

LPIPS (Zhang et al., CVPR 2018) puts linear layers on top of ImageNet-trained AlexNet, VGG16 and
SqueezeNet 1.1. Their weights are torchvision's published files; this module finds them in the
torch hub cache, or downloads them there, exactly where ``torch.hub`` would put them
(``<TORCH_HOME>/hub/checkpoints/<file name>``), without importing torchvision, and checks the
SHA-256 prefix embedded in each file name (``alexnet-owt-7be5be79.pth``: the digest starts with
``7be5be79``) on cached and downloaded files alike, as ``torch.hub``'s ``check_hash`` does.

``BAPPS_WEIGHTS_BASE_URL`` overrides the download base (a mirror; the tests use a loopback one).

:func:`load_state_dict_file` is the only way the toolkit reads weight files: safetensors, or
``torch.load(weights_only=True)`` — a pickle that would run code is refused.
"""
from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import torch

from .._download import download_file
from .._io import PathLike, sha256_file
from ..errors import DownloadError, MissingWeightsError, WeightsError
from .nets import check_net

#: torchvision's published ImageNet weights for the three LPIPS backbones.
TORCHVISION_WEIGHTS: dict[str, str] = {
    "alex": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    "vgg": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "squeeze": "https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth",
}
#: Environment variable naming a mirror that holds the same file names.
BASE_URL_ENV = "BAPPS_WEIGHTS_BASE_URL"
#: torch.hub's rule for the hash prefix in a file name.
_HASH_REGEX = re.compile(r"-([a-f0-9]*)\.")


def torch_home() -> Path:
    """``$TORCH_HOME``, else ``$XDG_CACHE_HOME/torch``, else ``~/.cache/torch`` (as torch.hub)."""
    env = os.environ.get("TORCH_HOME")
    if env:
        return Path(os.path.expanduser(env))
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = xdg if xdg else os.path.join("~", ".cache")
    return Path(os.path.expanduser(os.path.join(base, "torch")))


def checkpoints_dir() -> Path:
    """``<torch_home>/hub/checkpoints`` — where torch.hub caches downloaded weights."""
    return torch_home() / "hub" / "checkpoints"


def weights_filename(net: str) -> str:
    """The file name torchvision publishes the ``net`` weights under."""
    return TORCHVISION_WEIGHTS[check_net(net)].rsplit("/", 1)[-1]


def hash_prefix(filename: str) -> str | None:
    """The SHA-256 prefix in a torch.hub style name (``vgg16-397923af.pth`` -> ``397923af``)."""
    m = _HASH_REGEX.search(filename)
    return m.group(1) if m and m.group(1) else None


def weights_url(net: str, base_url: str | None = None) -> str:
    """Download address: ``base_url`` or ``$BAPPS_WEIGHTS_BASE_URL`` + file name, else torchvision's."""
    base = base_url or os.environ.get(BASE_URL_ENV)
    if base:
        return base.rstrip("/") + "/" + weights_filename(net)
    return TORCHVISION_WEIGHTS[check_net(net)]


def _how_to_get(net: str, path: Path, url: str, cli: bool = False) -> str:
    """How to get ``net``'s weights, in Python keywords or (``cli``) in ``bapps`` flags."""
    given, rand = ((f"--backbone-weights {net}=PATH", f"--backbone-weights {net}=random") if cli
                   else ("backbone_weights=PATH", 'backbone_weights="random"'))
    return (f"To use the ImageNet {net} backbone, either download {url} and save it as {path} "
            f"(or set TORCH_HOME / {BASE_URL_ENV} to a cache or mirror that has it), or pass "
            f"{given} to a file with torchvision's parameter names, or pass "
            f"{rand} for an explicitly UNCALIBRATED metric on a random "
            f"backbone")


def backbone_weights_file(net: str, *, download: bool = True, base_url: str | None = None,
                          progress: bool = True) -> Path:
    """Path of torchvision's ImageNet weights for ``net`` (``alex``, ``vgg``, ``squeeze``).

    Looks in ``<torch_home()>/hub/checkpoints/``; if absent and ``download`` is true, downloads
    it there (resumable, verified, atomic). The SHA-256 prefix in the file name is checked on the
    cached file and on the download.

    Raises:
        WeightsError: unknown ``net``; a cached file whose hash does not match its name; the file
        is absent and could not be downloaded (the message says how to get it).
    """
    name = weights_filename(net)
    path = checkpoints_dir() / name
    prefix = hash_prefix(name)
    url = weights_url(net, base_url)
    if path.exists():
        if prefix:
            digest = sha256_file(path)
            if not digest.startswith(prefix):
                raise WeightsError(
                    f"cached weights {path} are corrupt or not torchvision's file: SHA-256 "
                    f"{digest} does not start with {prefix} as its name promises. Delete the file "
                    f"and run again to download it afresh from {url}")
        return path
    if not download:
        head = f"ImageNet weights for {net} not found at {path} (download=False). "
        raise MissingWeightsError(head + _how_to_get(net, path, url), net=net,
                                  cli_hint=head + _how_to_get(net, path, url, cli=True))
    try:
        return download_file(url, path, sha256_prefix=prefix, progress=progress)
    except DownloadError as exc:
        head = f"ImageNet weights for {net} are not in the cache ({path}) and the download failed: {exc}. "
        raise MissingWeightsError(head + _how_to_get(net, path, url), net=net,
                                  cli_hint=head + _how_to_get(net, path, url, cli=True)) from None


def _is_safetensors(path: Path) -> bool:
    if path.suffix == ".safetensors":
        return True
    with open(path, "rb") as fh:
        head = fh.read(9)
    # safetensors: 8-byte little-endian header length, then a JSON object.
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < (1 << 30)


def load_state_dict_file(path: PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict (parameter name -> tensor, on CPU) without ever running code.

    Accepted: safetensors files, and files ``torch.load(..., weights_only=True)`` can read
    (``torch.save`` of a dict of tensors, including torchvision's and the official LPIPS
    linear-weight ``.pth`` files).

    Raises:
        WeightsError: naming ``path`` — missing, unreadable, a pickle that needs arbitrary code
        (refused, never executed), or not a flat mapping of names to tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    try:
        if _is_safetensors(path):
            from safetensors.torch import load_file

            try:
                state = load_file(str(path), device="cpu")
            except Exception as exc:  # safetensors raises its own error types
                raise WeightsError(f"{path} is not a readable safetensors file ({exc})") from None
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        m = re.search(r"GLOBAL ([\w.]+)", str(exc))
        detail = f"it calls {m.group(1)}" if m else "it holds objects other than tensors"
        raise WeightsError(
            f"refusing to load {path}: it is a pickle that would need to run code to load "
            f"({detail}); it was not executed. Only safetensors files and plain "
            f"tensor state dicts (torch.load weights_only=True) are accepted; re-save the "
            f"weights with safetensors or torch.save(model.state_dict())") from None
    except WeightsError:
        raise
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise WeightsError(f"{path} is not a readable weights file ({exc})") from None
    if not isinstance(state, dict) or not state:
        raise WeightsError(f"{path} does not hold a state dict (name -> tensor) but "
                           f"{type(state).__name__}")
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise WeightsError(f"{path} is not a flat state dict of tensors: entry {bad[0]!r} is "
                           f"{type(state[bad[0]]).__name__}")
    return dict(state)
