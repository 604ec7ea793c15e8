"""How :func:`~bapps_toolkit.evaluate.evaluate` runs a metric at the machine's ceiling.

Numeric precision, ``torch.compile`` and the memory layout of deep features.

* ``precision`` — ``"fp32"`` (default, the published numbers), ``"bf16"`` or ``"fp16"``: the
  metric runs under :func:`torch.autocast` (CPU: bf16 only; CUDA: bf16 where the GPU supports it,
  fp16). Opt-in, because it moves the distances: on the mini set bf16 moves lpips-alex distances
  by a median of a few tenths of a percent (tests/test_speed_paths.py states the bound, and
  benchmarks/bench_eval.py measures the change, the 2AFC decisions it flips and the score change).
  Every row computed so says it: its label ends with ``[bf16]`` / ``[fp16]`` and the table's
  ``attrs["execution"]`` records the settings.
* ``compile`` — wrap the metric's computation in :func:`torch.compile` (opt-in). It pays off when
  the set is large: the first batches of each shape cost the compile time (tens of seconds on a
  CPU, see benchmarks/bench_eval.py), the rest run faster. A compile failure (no C++ compiler,
  an unsupported op) raises :class:`~bapps_toolkit.errors.BappsError` saying so; there is no silent
  fallback to eager mode.
* ``channels_last`` — store the weights of a metric with a ``backbone`` (the deep metrics) in
  ``torch.channels_last`` layout, so oneDNN / cuDNN convolutions run NHWC. Same distances up to
  float noise (tests: within 1e-5 relative of the default layout). ``None`` (default) = on for
  metrics with a backbone, in every precision (lpips-alex on the project's 2-core AVX-512 CPU,
  batch 50, ``bench_eval.py --ceiling --scale 0.1`` at load 1.8: fp32 1077 items/s against 858 in
  NCHW, bf16 1473 against 1267; under load 10–12 with one thread fp32 was 111 against 124, so
  ``channels_last=False`` stays available); the other metrics are left as they are.
"""
from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import torch

from ..errors import BappsError, UsageError

PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclasses.dataclass(frozen=True)
class Execution:
    """The checked settings of one evaluation (see the module docstring)."""

    precision: str = "fp32"
    compile: bool = False
    channels_last: bool | None = None

    @property
    def label_suffix(self) -> str:
        """`` [bf16]`` / `` [fp16]`` for reduced precision (it changes the numbers), else ``""``."""
        return "" if self.precision == "fp32" else f" [{self.precision}]"

    def record(self) -> dict[str, Any]:
        """The settings as plain values, for ``table.attrs["execution"]``."""
        return {"precision": self.precision, "compile": self.compile, "channels_last": self.channels_last}


def check_execution(precision: str, compile: bool, channels_last: bool | None, device: torch.device) -> Execution:
    """The :class:`Execution` for ``device``; errors name the argument (``precision …``)."""
    p = str(precision).strip().lower()
    if p not in PRECISIONS:
        raise UsageError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if p == "fp16" and device.type != "cuda":
        raise UsageError(f"precision fp16 needs a CUDA device (device is {device}); on a CPU use bf16, "
                         "which autocast supports there")
    if p == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UsageError(f"precision bf16 is not supported by the GPU {torch.cuda.get_device_name(device)}; "
                         "use fp16")
    if p != "fp32" and device.type not in ("cpu", "cuda"):
        raise UsageError(f"precision {p} is supported on cpu and cuda devices, not {device.type}")
    return Execution(precision=p, compile=bool(compile), channels_last=channels_last)


def uses_channels_last(metric: Any, ex: Execution) -> bool:
    """Whether ``metric`` runs in channels_last layout under ``ex``."""
    if ex.channels_last is None:
        return isinstance(getattr(metric, "backbone", None), torch.nn.Module)
    return bool(ex.channels_last)


class PreparedMetric:
    """``metric`` with the settings ``ex`` applied.

    :meth:`pair_distances` and :meth:`distance` call the metric's own methods under autocast; with ``compile``
    they validate eagerly (as the metric does) and run its computation (``_pair_distances`` / ``_distance``)
    through :func:`torch.compile`. ``channels_last`` converts the metric's 4-D weights in place (like
    ``metric.to(device)``).
    """

    def __init__(self, metric: Any, ex: Execution, device: torch.device):
        self.metric, self.ex, self.device = metric, ex, device
        if uses_channels_last(metric, ex):
            metric.to(memory_format=torch.channels_last)
        self._pair: Callable[..., Any] | None = None
        self._dist: Callable[..., Any] | None = None
        if ex.compile:
            pair, dist = metric.compiled_calls()
            self._pair, self._dist = _first_call_checked(pair), _first_call_checked(dist)

    def _autocast(self) -> Any:
        enabled = self.ex.precision != "fp32"
        dtype = _DTYPES.get(self.ex.precision, torch.bfloat16)
        return torch.autocast(device_type=self.device.type, dtype=dtype, enabled=enabled)

    def pair_distances(self, ref: torch.Tensor, p0: torch.Tensor, p1: torch.Tensor, *,
                       validate: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The 2AFC distances ``(d0, d1)`` under the settings, as float32."""
        with self._autocast():
            if self._pair is None:
                d0, d1 = self.metric.pair_distances(ref, p0, p1, validate=validate)
            else:
                if validate:
                    self.metric.validate(ref, p0)
                    self.metric.validate(ref, p1)
                d0, d1 = self._pair(ref, p0, p1)
        return d0.float(), d1.float()

    def distance(self, x0: torch.Tensor, x1: torch.Tensor, *, validate: bool) -> torch.Tensor:
        """The distances between ``x0`` and ``x1`` under the settings, as float32."""
        d: torch.Tensor
        with self._autocast():
            if self._dist is None:
                d = self.metric.distance(x0, x1, validate=validate)
            else:
                if validate:
                    self.metric.validate(x0, x1)
                d = self._dist(x0, x1)
        return d.float()


def _first_call_checked(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` (a :func:`torch.compile` wrapper) whose compile failures become a clear error.

    torch.compile compiles on the first call of each input shape; a failure there (the backend
    needs a working C++ compiler on a CPU, Triton on a GPU) is raised as a BappsError naming
    ``compile`` instead of a long backend traceback, and nothing falls back to eager mode.
    """

    @functools.wraps(fn)
    def call(*args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as exc:
            if not _is_compile_error(exc):
                raise
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise BappsError(f"compile: torch.compile failed on this machine ({type(exc).__name__}: {first}); "
                             "evaluate without compile (it changes speed only, not the results)") from exc

    return call


def _is_compile_error(exc: BaseException) -> bool:
    module = type(exc).__module__ or ""
    return module.startswith(("torch._dynamo", "torch._inductor")) or "CppCompileError" in type(exc).__name__


__all__ = ["PRECISIONS", "Execution", "PreparedMetric", "check_execution", "uses_channels_last"]
