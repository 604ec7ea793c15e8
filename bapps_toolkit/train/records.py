"""Typed records a training run passes between its modules and writes to its files.

JSON documents (the run card ``card.json`` and its parts) are typed dictionaries (:class:`~typing.TypedDict`);
what stays in memory is a dataclass. The weights files' metadata is strings only (safetensors),
so :class:`ModelMeta` holds real values and writes and reads the string form.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, TypedDict

from typing_extensions import NotRequired

from ..errors import CheckpointError

EXACT = "exact"
STREAMED = "streamed"

EXACT_RULE = "torch.randperm(N) per epoch, generator seeded from (seed, epoch): the sets held whole"
STREAMED_RULE = ("per epoch, from one generator seeded from (seed, epoch): randperm of the chunks "
                 "(chunk_rows(n) consecutive triplets of one set, <= 1024), grouped into windows of "
                 "window_chunks chunks; then randperm of the rows of each window in turn")


class ShuffleInfo(TypedDict):
    """The card's ``shuffle`` entry: how the training triplets were drawn (compared on resume)."""

    mode: str
    memory_budget_mb: int
    data_mb: float
    rule: str
    chunk_rows: NotRequired[int]
    n_chunks: NotRequired[int]
    window_chunks: NotRequired[int]


@dataclass(frozen=True)
class DataPlan:
    """How a run's training triplets are read: ``mode`` :data:`EXACT` (held whole) or :data:`STREAMED`.

    Also the chunks ``(key, start, stop)`` and the window of ``window`` chunks.
    """

    mode: str
    n: int
    triplet_bytes: int
    budget_mb: int
    chunks: tuple[tuple[str, int, int], ...]
    window: int

    @property
    def data_mb(self) -> float:
        return self.n * self.triplet_bytes / 2 ** 20

    def card(self) -> ShuffleInfo:
        """The card's ``shuffle`` entry (compared on resume: ``mode``, ``chunk_rows``, ``window_chunks``)."""
        out = ShuffleInfo(mode=self.mode, memory_budget_mb=self.budget_mb, data_mb=round(self.data_mb, 1),
                          rule=STREAMED_RULE if self.mode == STREAMED else EXACT_RULE)
        if self.mode == STREAMED:
            out["chunk_rows"] = max(e - s for _, s, e in self.chunks)
            out["n_chunks"] = len(self.chunks)
            out["window_chunks"] = self.window
        return out

    def describe(self) -> str:
        """The full path's way, for the run's opening line."""
        if self.mode == EXACT:
            return f"full path, sets held whole ({self.data_mb:.0f} MiB <= memory budget {self.budget_mb} MiB)"
        return (f"full path STREAMED ({self.data_mb:.0f} MiB > memory budget {self.budget_mb} MiB): "
                f"{len(self.chunks)} chunks, shuffled in windows of {self.window}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataPlan:
        return cls(d["mode"], int(d["n"]), int(d["triplet_bytes"]), int(d["budget_mb"]),
                   tuple((str(k), int(s), int(e)) for k, s, e in d["chunks"]), int(d["window"]))



class PluginSource(TypedDict):
    """A plugin network: its spec, options and where its code comes from (SHA-256, distribution)."""

    spec: str
    options: dict[str, Any]
    origin: Mapping[str, Any]


class BackboneSource(TypedDict):
    """Where a run's backbone comes from (the card's ``backbone`` entry)."""

    source: str
    started_from_scratch: bool
    trained: bool
    seed: NotRequired[int]
    sha256: NotRequired[str]
    file_calibrated: NotRequired[bool]
    file_note: NotRequired[str]
    plugin: NotRequired[PluginSource]


class EpochRow(TypedDict):
    """One finished epoch in the card's ``history`` (and a row of ``log.csv``)."""

    epoch: int
    lr: float
    loss: float
    train_2afc: float
    seconds: float
    items_per_s: float
    val_2afc: float | None
    val: NotRequired[dict[str, float]]
    files: NotRequired[dict[str, str]]


class CardData(TypedDict):
    """The card's ``data`` entry: the packed file, whether it is synthetic, the training sets and their sizes."""

    source: str
    synthetic: bool
    datasets: dict[str, int]
    n_train: int
    val_datasets: list[str]


class CardSchedule(TypedDict):
    """The card's ``schedule`` entry: the optimiser and the learning rate of every epoch."""

    optimizer: str
    lr: float
    betas: list[float]
    batch_size: int
    epochs: int
    decay_epochs: int
    lr_per_epoch: list[float]
    shuffle: bool
    dropout: float
    rule: str


class CardLoss(TypedDict):
    """The card's ``loss`` entry: the ranking loss, its margin (hinge) and its formula in words."""

    name: str
    margin: float | None
    formula: str


class ResumeMark(TypedDict):
    """One entry of the card's ``resumed`` list: the epoch a run was resumed from, and when."""

    from_epoch: int
    at: str


class PrecomputeInfo(TypedDict):
    """The card's ``precompute`` entry (fast path): seconds spent on backbone features, images seen."""

    seconds: float
    images: int


class ValScores(TypedDict):
    """A card's ``initial_val`` / ``baseline_val``: mean 2AFC over the val sets, per set, and what was scored."""

    val_2afc: float | None
    per_set: dict[str, float]
    note: str


class RunCard(TypedDict, total=False):
    """The run card ``card.json``: what a run trained, on what, how far it got.

    Read back only through :func:`bapps_toolkit.train.run_dir.read_card`, which checks every
    entry a resumed run uses.
    """

    format: str
    format_version: int
    toolkit_version: str
    created: str
    net: str
    variant: str
    version: str
    calibrated: bool
    calibration_note: str
    data: CardData
    backbone: BackboneSource
    schedule: CardSchedule
    seed: int
    loss: CardLoss
    fast_path: bool
    fast_path_dropout: str | None
    lin_init: str
    clamp: str
    config: dict[str, Any]
    total_epochs: int
    epochs_done: int
    finished: bool
    history: list[EpochRow]
    files: dict[str, str]
    resumed: list[ResumeMark]
    device: str
    world_size: int
    bf16: bool
    precompute: PrecomputeInfo | None
    shuffle: ShuffleInfo
    initial_val: ValScores
    baseline_val: ValScores


@dataclass(frozen=True)
class RunStart:
    """What rank 0 found before a run starts, shared with every rank.

    Attributes:
        keys: the training sets.
        card: the card of the run to resume, ``None`` for a new run.
        done: epochs the resumed run finished (0 for a new run).
        val_keys: the validation sets.
        synthetic: the training data is synthetic.
        backbone: where the backbone comes from.
        plan: how the training triplets are read.
    """

    keys: list[str]
    card: RunCard | None
    done: int
    val_keys: list[str]
    synthetic: bool
    backbone: BackboneSource
    plan: DataPlan


@dataclass(frozen=True)
class RunRefusal:
    """Why rank 0 refused to start a run (the other ranks stop with this message).

    Attributes:
        kind: the exception's class name.
        message: its message.
    """

    kind: str
    message: str


#: Metadata keys of a weights file whose values are booleans written as ``"1"``/``"0"``.
FLAG_KEYS = ("backbone_in_file", "started_from_scratch", "calibrated")
_TRUE, _FALSE = ("1", "true", "True"), ("0", "false", "False", "")


def read_flag(metadata: Mapping[str, str], key: str, where: str) -> bool:
    """A boolean of a weights file's metadata (``"1"``/``"0"``, as every version wrote them).

    Args:
        metadata: the safetensors metadata.
        key: the entry.
        where: the file, for the message.

    Returns:
        The value (``False`` when the entry is absent).

    Raises:
        CheckpointError: the entry is neither form of a boolean.
    """
    text = metadata.get(key, "0")
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise CheckpointError(f"{where}: metadata {key} {text[:40]!r} is not a boolean (1 or 0)")


@dataclass(frozen=True)
class ModelMeta:
    """The metadata of an epoch's weights file.

    Attributes:
        backbone_in_file: the file holds the backbone's weights (a trained backbone or a plugin net).
        started_from_scratch: the backbone started from random weights and was trained.
        calibrated: the trained metric is a calibrated LPIPS.
        text: every other entry, already strings.
    """

    backbone_in_file: bool
    started_from_scratch: bool
    calibrated: bool
    text: dict[str, str] = field(default_factory=dict)

    def to_metadata(self) -> dict[str, str]:
        """The safetensors metadata (booleans as ``"1"``/``"0"``, the form earlier files use).

        Returns:
            ``{key: string}``.
        """
        flags = {"backbone_in_file": self.backbone_in_file, "started_from_scratch": self.started_from_scratch,
                 "calibrated": self.calibrated}
        return {**self.text, **{k: "1" if v else "0" for k, v in flags.items()}}

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str], where: str) -> ModelMeta:
        """Read the record back from a file's metadata.

        Args:
            metadata: the safetensors metadata.
            where: the file, for messages.

        Returns:
            The record.

        Raises:
            CheckpointError: a boolean entry is malformed.
        """
        flags = {k: read_flag(metadata, k, where) for k in FLAG_KEYS}
        return cls(flags["backbone_in_file"], flags["started_from_scratch"], flags["calibrated"],
                   {k: str(v) for k, v in metadata.items() if k not in FLAG_KEYS})


__all__ = ["PluginSource", "BackboneSource", "EpochRow", "CardData", "CardSchedule", "CardLoss", "ResumeMark",
           "PrecomputeInfo", "ShuffleInfo", "ValScores", "RunCard", "RunStart", "RunRefusal", "ModelMeta",
           "read_flag", "FLAG_KEYS"]
