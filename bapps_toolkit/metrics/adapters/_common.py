"""What every library adapter shares: the wrapped metric, the library import, the error texts.

An adapter turns one metric of an outside library into a :class:`~..base.Metric`:

* inputs arrive in the toolkit's ``input_range`` (default ``(-1, 1)``) and are mapped to the
  range the library expects (:attr:`AdapterSpec.library_range`);
* the toolkit's ``metric(x0, x1)`` takes ``x0`` as the reference and ``x1`` as the distorted
  image (``pair_distances(ref, p0, p1)`` calls ``distance(ref, p0)``); the adapter calls the
  library in its own argument order (:attr:`AdapterSpec.call` takes ``(distorted, reference)``);
* the library's per-item output (never a batch mean) is checked to be one value per item;
* a similarity (higher = more alike) is turned into a distance by ``1 - s`` (similarities
  bounded by 1, e.g. SSIM) or ``-s`` (unbounded ones, e.g. PSNR in dB), and the label says which,
  e.g. ``piq:ssim as 1-ssim (piq 0.8.0)``; every label names the library and its version.
"""
from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import types
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ...errors import MetricInputError, UsageError
from ..base import Metric

#: Ways a similarity becomes a distance: ``1 - s`` (s <= 1) or ``-s`` (unbounded).
FLIPS = ("1-x", "-x")


class AdapterError(UsageError):
    """An adapter spec that cannot be built; the message names the spec and the library."""


class WeightsUnavailableError(AdapterError, OSError):
    """A library metric whose weights could not be downloaded or read (no silent substitute)."""


@dataclass
class AdapterSpec:
    """How one library metric is called.

    ``call(distorted, reference)`` takes tensors in ``library_range`` and returns one value per
    item; ``flip`` is ``None`` for a distance, else one of :data:`FLIPS`; ``modules`` are the
    library's ``nn.Module`` objects (moved with the metric by ``.to(device)``).
    """

    short: str
    call: Callable[[torch.Tensor, torch.Tensor], Any]
    library_range: tuple[float, float] = (0.0, 1.0)
    flip: str | None = None
    min_size: int = 1
    modules: Sequence[nn.Module] = field(default_factory=tuple)
    note: str = ""


@dataclass(frozen=True)
class Library:
    """An outside library: its import name, the ``pip install`` name and its adapter names."""

    name: str
    pip: str
    known_names: Callable[[types.ModuleType], list[str]]
    build: Callable[[types.ModuleType, str, str, dict[str, Any]], AdapterSpec]


def import_library(lib: Library, spec: str) -> types.ModuleType:
    """The imported library; :class:`AdapterError` naming ``pip install`` when it is missing."""
    try:
        return importlib.import_module(lib.name)
    except ImportError as exc:
        raise AdapterError(
            f"metric {spec!r} needs the {lib.name} library, which is not installed or does not import "
            f"({type(exc).__name__}: {exc}); install it with: pip install {lib.pip}") from exc


def library_version(module: types.ModuleType, name: str) -> str:
    """``module.__version__``, else the installed distribution's version, else ``"unknown version"``."""
    version = getattr(module, "__version__", None)
    if version:
        return str(version)
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown version"


def unknown_name(lib: Library, spec: str, name: str, known: Iterable[str]) -> AdapterError:
    """The error for a name the library does not have, with a "did you mean" and the known names."""
    names = sorted(set(known))
    close = difflib.get_close_matches(name, names, n=3)
    hint = f"did you mean {' or '.join(f'{lib.name}:{c}' for c in close)}? " if close else ""
    return AdapterError(f"unknown metric {spec!r}: {lib.name} has no full-reference metric {name!r}; "
                        f"{hint}known {lib.name} names: {', '.join(names)}")


def guard_weights(spec: str, lib: Library, what: str, build: Callable[[], Any]) -> Any:
    """Call ``build()``, turning the library's failures into the toolkit's errors.

    A download/read failure of the weights becomes :class:`WeightsUnavailableError`, a missing
    dependency of the library an :class:`AdapterError` naming it.
    """
    try:
        return build()
    except ImportError as exc:  # e.g. torchmetrics' LPIPS without torchvision
        raise AdapterError(f"metric {spec!r}: {lib.name}'s {what} needs a package that is not installed or "
                           f"does not import ({type(exc).__name__}: {exc})") from exc
    except OSError as exc:  # URLError, HTTPError, requests/huggingface errors, a missing cache file
        raise WeightsUnavailableError(
            f"metric {spec!r}: the weights of {lib.name}'s {what} could not be downloaded or read "
            f"({type(exc).__name__}: {exc}); {lib.name} downloads them on first use, so run it once "
            f"where the weight host can be reached (or copy the library's weight cache, e.g. "
            f"TORCH_HOME / HF_HOME, to this machine). No substitute weights are used.") from exc


class AdapterMetric(Metric):
    """A library metric in the toolkit's contract (see the module docstring).

    Args:
        spec: how the library is called.
        name: the registry-style name, ``"LIB:NAME"``.
        library: ``"LIB VERSION"`` (goes into :attr:`label`).
        input_range: the toolkit-side value range of the inputs (default ``(-1, 1)``).
    """

    channels_in = (1, 3)

    def __init__(self, spec: AdapterSpec, *, name: str, library: str,
                 input_range: Sequence[float] = (-1.0, 1.0)):
        super().__init__(input_range=input_range)
        if spec.flip is not None and spec.flip not in FLIPS:
            raise MetricInputError(f"{name}: flip must be None or one of {FLIPS}, got {spec.flip!r}")
        self.name = name
        self.library = library
        self.spec = spec
        self.min_size = int(spec.min_size)
        self.library_modules = nn.ModuleList(list(spec.modules))
        #: Where the metric came from (shown by reports and ``bapps metrics``).
        self.origin = f"adapter of {library}"

    @property
    def direction(self) -> str:
        """``"distance"``, or the expression that made a distance of the similarity (``1-ssim``)."""
        if self.spec.flip is None:
            return "distance"
        return f"{self.spec.flip[:-1]}{self.spec.short}"

    @property
    def label(self) -> str:
        flipped = f" as {self.direction}" if self.spec.flip is not None else ""
        return f"{super().label}{flipped} ({self.library})"

    def _to_library(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` mapped to the library's range, clamped to it.

        The toolkit's validation lets round-off of up to ``RANGE_TOLERANCE`` through, which piq and pyiqa reject.
        """
        lo, hi = self.spec.library_range
        if (lo, hi) == (0.0, 1.0):
            y = self.unit(x)
        elif (lo, hi) == (-1.0, 1.0):
            y = self.symmetric(x)
        else:
            y = self.unit(x) * (hi - lo) + lo
        return y.clamp(lo, hi)

    def _distance(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        reference, distorted = self._to_library(x0), self._to_library(x1)
        try:
            out = self.spec.call(distorted, reference)
        except (ValueError, RuntimeError, TypeError, AssertionError) as exc:  # pyiqa checks by assert
            raise ValueError(f"metric {self.name!r} ({self.library}) failed on inputs of shape "
                             f"{tuple(x0.shape)}: {type(exc).__name__}: {exc}") from exc
        value = self._per_item(out, x0.shape[0])
        if self.spec.flip == "1-x":
            value = 1.0 - value
        elif self.spec.flip == "-x":
            value = -value
        return value.to(device=x0.device, dtype=x0.dtype)

    def _per_item(self, out: Any, n: int) -> torch.Tensor:
        if not isinstance(out, torch.Tensor):
            raise ValueError(f"metric {self.name!r}: {self.library} returned {type(out).__name__}, "
                             f"expected a tensor with one value per item")
        if out.numel() != n or (out.dim() > 0 and out.shape[0] != n):
            raise ValueError(f"metric {self.name!r}: {self.library} returned shape {tuple(out.shape)} for "
                             f"a batch of {n}; expected one value per item (not a mean)")
        return out.reshape(n)

    def extra_repr(self) -> str:
        return f"{self.library}, {self.direction}, " + super().extra_repr()
