"""Reading safetensors files that nobody vouches for: the header first, tensor data only on request.

:func:`read_header` gives the metadata and the declared dtype and shape of every tensor without
reading any tensor data (safetensors itself checks that each declared shape fits its byte range
and the ranges fit the file). A reader compares the declared names, dtypes and shapes with the
model it builds (:func:`check_declared`) and only then reads the tensors it needs
(:func:`read_tensors`): a file cannot make the toolkit allocate memory for a tensor it does not
use or that does not fit (a sparse file may declare gigabytes of zeros). :func:`json_field`
parses one JSON metadata value, bounded in size and nesting. Pickles are refused before anything
is parsed: nothing here unpickles.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from .._io import PathLike
from ..errors import CheckpointError

#: Largest JSON metadata value :func:`json_field` parses (characters).
MAX_JSON_CHARS = 1 << 16

#: safetensors dtype names of floating-point tensors.
FLOAT_DTYPES = frozenset({"F16", "BF16", "F32", "F64"})

PICKLE_HINT = ("bapps-toolkit never unpickles checkpoints (a pickle can run arbitrary code); "
               "it reads .safetensors files and plain tensor dicts via torch.load(weights_only=True)")


@dataclass(frozen=True)
class TensorInfo:
    """A tensor as a safetensors header declares it: dtype name (``"F32"``) and shape."""

    dtype: str
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        """The number of elements the declared shape holds."""
        return math.prod(self.shape)


@dataclass(frozen=True)
class SafetensorsHeader:
    """What a safetensors file declares: its ``metadata`` strings and ``tensors`` by name."""

    path: Path
    metadata: dict[str, str]
    tensors: dict[str, TensorInfo]


def sniff(path: Path) -> str:
    """The format of a file from its first bytes.

    ``"safetensors"`` (an 8-byte header length that fits the file, then ``{``), else ``"zip"``
    (``torch.save``), ``"pickle"`` or ``"other"``. The safetensors test
    comes first: a header length whose low byte is ``0x80`` is not a pickle.
    """
    with open(path, "rb") as fh:
        head = fh.read(9)
        size = os.fstat(fh.fileno()).st_size
    if len(head) == 9 and head[8:9] == b"{" and 8 + int.from_bytes(head[:8], "little") <= size:
        return "safetensors"
    if head[:2] == b"PK":
        return "zip"
    if head[:1] == b"\x80":
        return "pickle"
    return "other"


def read_header(path: PathLike) -> SafetensorsHeader:
    """The declared metadata and tensors of a safetensors file, no tensor data read.

    Raises:
        CheckpointError: naming the file when it is missing, a pickle (refused, never loaded) or
            not a valid safetensors file.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} does not exist or is not a file")
    if sniff(p) in ("zip", "pickle"):
        raise CheckpointError(f"{p}: refusing to load — this is a pickle/torch.save file, not safetensors. "
                              f"{PICKLE_HINT}.")
    try:
        with safe_open(str(p), framework="pt", device="cpu") as f:
            meta = dict(f.metadata() or {})
            declared = {}
            for k in f.keys():  # safe_open has no iterator
                piece = f.get_slice(k)
                declared[str(k)] = TensorInfo(str(piece.get_dtype()), tuple(int(n) for n in piece.get_shape()))
    except Exception as exc:  # safetensors raises SafetensorError / OSError / ValueError
        raise CheckpointError(f"{p}: not a valid safetensors file ({exc}). {PICKLE_HINT}.") from None
    return SafetensorsHeader(p, {str(k): str(v) for k, v in meta.items()}, declared)


def read_tensors(header: SafetensorsHeader, names: Iterable[str]) -> dict[str, torch.Tensor]:
    """The tensors ``names`` of the file of ``header`` (on CPU).

    A :class:`CheckpointError`
    naming the file if one cannot be read.
    """
    wanted = list(names)
    unknown = [n for n in wanted if n not in header.tensors]
    if unknown:
        raise CheckpointError(f"{header.path}: no tensor {unknown[0]!r} in the file")
    try:
        with safe_open(str(header.path), framework="pt", device="cpu") as f:
            return {n: f.get_tensor(n) for n in wanted}
    except Exception as exc:
        raise CheckpointError(f"{header.path}: reading its tensors failed ({exc})") from None


def read_safetensors(path: PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(tensors, metadata)`` of a safetensors file on CPU, every tensor read.

    For files whose
    size the caller bounds, or whose declared shapes it checked with :func:`read_header`).
    """
    header = read_header(path)
    return read_tensors(header, header.tensors), dict(header.metadata)


def _kind_fits(declared: str, want: torch.dtype) -> bool:
    """A floating parameter takes any floating dtype; anything else only its own dtype."""
    if want.is_floating_point:
        return declared in FLOAT_DTYPES
    names = {torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
             torch.uint8: "U8", torch.bool: "BOOL"}
    return names.get(want) == declared


def check_declared(where: Path, declared: Mapping[str, TensorInfo], expected: Mapping[str, torch.Tensor],
                   what: str) -> None:
    """Refuse (before any read) declared tensors that are not exactly ``expected``.

    Expected: the same names, shapes and dtype kinds. ``what`` names the part in the message (``"backbone"``).
    """
    missing = sorted(set(expected) - set(declared))
    extra = sorted(set(declared) - set(expected))
    if missing or extra:
        parts = ([f"missing {missing[:3]}"] if missing else []) + ([f"unexpected {extra[:3]}"] if extra else [])
        raise CheckpointError(f"{where}: the stored {what} does not fit this network ({'; '.join(parts)})")
    for name, want in expected.items():
        got = declared[name]
        if got.shape != tuple(want.shape) or not _kind_fits(got.dtype, want.dtype):
            raise CheckpointError(f"{where}: the stored {what} tensor {name!r} is {got.dtype} {list(got.shape)}, "
                                  f"the network has {str(want.dtype).replace('torch.', '')} {list(want.shape)}")


def json_field(meta: Mapping[str, str], key: str, where: Path, default: Any, kind: type, *,
               limit: int = MAX_JSON_CHARS) -> Any:
    """The JSON metadata value ``key`` parsed (``default`` when absent or empty).

    It must be a ``kind``; a :class:`CheckpointError` naming the file and the key when it is longer than
    ``limit`` characters, not JSON, nested too deep or of another type.
    """
    raw = meta.get(key)
    if raw is None or raw == "":
        return default
    if len(raw) > limit:
        raise CheckpointError(f"{where}: metadata {key!r} is {len(raw)} characters long; at most {limit} are read")
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise CheckpointError(f"{where}: metadata {key!r} is not valid JSON ({type(exc).__name__})") from None
    if not isinstance(value, kind):
        raise CheckpointError(f"{where}: metadata {key!r} is a JSON {type(value).__name__}, expected a "
                              f"{kind.__name__}")
    return value


__all__ = ["TensorInfo", "SafetensorsHeader", "read_header", "read_tensors", "read_safetensors", "check_declared",
           "json_field", "sniff", "MAX_JSON_CHARS", "FLOAT_DTYPES", "PICKLE_HINT"]
