"""The loss study's records: the matrix document (``matrix.json``) and a loss's training state."""
from __future__ import annotations

from typing import Any, TypedDict

#: A training curve: ``[step, mean training loss since the previous point]`` per checkpoint.
Curve = list[list[float]]


class StudyMatrix(TypedDict, total=False):
    """The cross-evaluation matrix as written to ``matrix.json``.

    Rows are the training losses (and the unrestored input), columns the evaluation metrics;
    ``mean``/``ci_low``/``ci_high`` are ``[row][column]``; every column is a distance.
    """

    rows: list[str]
    cols: list[str]
    mean: list[list[float]]
    ci_low: list[list[float]]
    ci_high: list[list[float]]
    per_image: dict[str, dict[str, list[float]]]
    note: str
    task: str
    train_images: list[str]
    test_images: list[str]
    model_parameters: int
    config: dict[str, object]
    training_history: dict[str, Curve]
    losses: dict[str, str]
    lower_is_better: bool
    convergence: list[dict[str, object]]


class LossCheckpoint(TypedDict):
    """A loss's checkpoint file (``checkpoints/<loss>.pt``, read with ``weights_only=True``)."""

    model: dict[str, Any]
    optim: dict[str, Any]
    step: int
    history: Curve
    finished: bool
    fingerprint: dict[str, object]


__all__ = ["Curve", "StudyMatrix", "LossCheckpoint"]
