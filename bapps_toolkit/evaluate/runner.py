"""Score metrics against the BAPPS human judgments: every 2AFC and JND set of a data source.

:func:`evaluate` resolves each metric spec (:mod:`.resolve`), opens each set once (whole on the
device, or streamed in pieces; :mod:`.distances`), computes the per-item distances and scores
them with their bootstrap intervals into a tidy table:

====================  =====================================================================
column                meaning
====================  =====================================================================
metric                metric id (registry name, or ``name[checkpoint-file]``; ``human``)
label                 name for reports; carries ``[UNCALIBRATED: …]`` for a random backbone
calibrated            False when the metric is not the published one (random backbone)
mode                  ``2afc`` (score = agreement, Zhang et al. 2018 §3) or ``jnd`` (mAP)
split, category       e.g. ``val``, ``cnn``; the 2AFC mean rows have category
                      :data:`MEAN_CATEGORY` (unweighted mean of val/traditional and val/cnn)
n                     number of triplets / pairs
score                 in [0, 1]
ci_low, ci_high       95 % (``1 - alpha``) percentile bootstrap interval over items
synthetic             True when the set is simulated (the mini set), not BAPPS
====================  =====================================================================

The ``human`` rows give the 2AFC ceiling ``mean(p² + (1 - p)²)`` of each set.
Bootstrap resamples use a seed derived from ``seed`` and the set's key, so every metric on a set
sees the same resampled items (their intervals are paired).
"""
from __future__ import annotations

import dataclasses
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .._distributed import is_main_process, join_process_group
from .._io import PathLike
from ..calibration import CalibrationResult
from ..data import find_sets
from ..data.layout import ALL_KEYS
from ..data.selection import select_keys
from ..errors import DataError, UsageError
from ..metrics import Metric
from ..metrics.plugin_trust import TrustArg
from ..metrics.plugins import parse_metric_options
from ..metrics.presets import expand_presets, merge_options
from ..metrics.resolve import WeightSpecs, metric_label, resolve_metric, trusted_with_metrics
from ..metrics.speed import Execution, PreparedMetric, check_execution
from ..scores import (
    HUMAN,
    MEAN_CATEGORY,
    MEAN_OF,
    bootstrap_distribution,
    human_ceiling_2afc,
    jnd_map,
    percentile_interval,
    score_2afc,
)
from .calibrate import calibrate_distances
from .compare import Comparison, check_compare, compare_metrics
from .distances import EvalSet, SetDistances, check_distances_path, open_sets, set_distances, write_distances
from .notes import Note, Selection

#: Factory options per metric spec: ``{"my_pkg.m:make": {"scale": 2.0}}``.
#: Or ``["NAME.key=value", ...]`` strings, typed by each factory's signature.
MetricOptions = dict[str, dict[str, Any]] | Sequence[str] | None

#: Items per piece read from disk with ``stream=True`` (≈ 37 MB of uint8 2AFC triplets).
DEFAULT_CHUNK = 1024

COLUMNS = ["metric", "label", "calibrated", "mode", "split", "category", "n", "score",
           "ci_low", "ci_high", "synthetic"]

HUMAN_LABEL = "human (ceiling)"


@dataclasses.dataclass
class EvaluationResult:
    """:attr:`table` (the tidy DataFrame) and :attr:`distances` (per metric and set)."""

    table: Any
    distances: list[SetDistances]
    n_boot: int
    seed: int
    #: ``compare=(A, B)``: records of A − B per set and for the 2AFC mean (:mod:`.compare`).
    comparisons: list[Comparison] = dataclasses.field(default_factory=list)
    #: Calibration of every metric on the 2AFC sets (:mod:`.calibrate`); its rows are also in
    #: ``table.attrs["calibration"]`` (without the per-item probabilities).
    calibration: CalibrationResult | None = None
    #: The evaluated metrics by id (for the spatial maps of the failure browser).
    metrics: dict[str, Metric] = dataclasses.field(default_factory=dict, repr=False)
    #: What the caller should know about how the request was read (e.g. what a short form selected).
    notes: list[Note] = dataclasses.field(default_factory=list)


def default_batch_size(device: torch.device) -> int:
    """Triplets per batch: 1000 on a GPU; 50 on a CPU.

    On a CPU a batch of 150 64² images keeps the AlexNet activations in the cache (lpips-alex measured faster at
    50 than at 250 on a 2-core AVX-512 CPU).
    """
    return 1000 if device.type == "cuda" else 50


def _set_seed(seed: int, key: str) -> int:
    return int(seed) * (1 << 32) + zlib.crc32(key.encode())


def _check_options(metrics: Sequence[Any], n_boot: int, batch_size: int | None, chunk_size: int,
                   save_distances: PathLike | None, source: Path) -> None:
    """Every argument check that needs no data, before anything is read."""
    if not metrics:
        raise UsageError("no metrics to evaluate: give at least one metric name or checkpoint")
    if int(n_boot) < 1:
        raise UsageError(f"n_boot must be >= 1, got {n_boot}")
    if batch_size is not None and int(batch_size) < 1:
        raise UsageError(f"batch_size must be >= 1, got {batch_size}")
    if int(chunk_size) < 1:
        raise UsageError(f"chunk_size must be >= 1, got {chunk_size}")
    if save_distances is not None:
        check_distances_path(save_distances)
    if not source.exists():
        raise DataError(f"data source {source} does not exist (give a BAPPS folder root or a packed .h5 file)")


def _resolve_all(specs: Sequence[Any], backbone_weights: WeightSpecs, lin_weights: WeightSpecs,
                 device: torch.device, metric_options: MetricOptions = None,
                 trust_plugin: TrustArg = None) -> list[tuple[str, Metric]]:
    """``(metric_id, metric)`` per spec, on ``device`` in eval mode; one distance per item, ids unique."""
    resolved: list[tuple[str, Metric]] = []
    specs, preset_options = expand_presets(specs)
    trusted = trusted_with_metrics(specs, trust_plugin)
    options = merge_options(preset_options, metric_options if isinstance(metric_options, dict) else
                            parse_metric_options(metric_options or [], [s for s in specs if isinstance(s, str)]))
    for spec in specs:
        opts = options.get(spec) if isinstance(spec, str) else None
        mid, metric = resolve_metric(spec, backbone_weights=backbone_weights, lin_weights=lin_weights,
                                     options=opts, trust_plugin=trusted)
        if isinstance(spec, str) and spec in preset_options:
            mid = metric.name  # e.g. lpips-alex-v0.0: the id says which options the preset chose
        if getattr(metric, "spatial", False):
            raise UsageError(f"metric {mid!r} was created with spatial=True; evaluation needs one "
                             "distance per item (create it without spatial=True)")
        if any(mid == other for other, _ in resolved):
            raise UsageError(f"metric {mid!r} given twice")
        resolved.append((mid, metric.to(device).eval()))
    return resolved


class _Table:
    """Rows of the tidy table, and the bootstrap scores of the 2AFC rows (for the mean rows)."""

    def __init__(self, n_boot: int, seed: int, alpha: float, device: torch.device):
        self.rows: list[dict[str, Any]] = []
        self.boots: dict[tuple[str, str], np.ndarray] = {}  # (metric, key) -> bootstrap scores
        self.n_boot, self.seed, self.alpha = int(n_boot), int(seed), float(alpha)
        self.boot_device = device if device.type == "cuda" else None  # bootstrap on the GPU when there is one

    def add(self, mid: str, label: str, calibrated: bool, s: EvalSet, score_fn: Any, *arrays: np.ndarray) -> None:
        """The row of ``score_fn(*arrays)`` on set ``s``, with its bootstrap interval."""
        boot = bootstrap_distribution(score_fn, *arrays, n_boot=self.n_boot, seed=_set_seed(self.seed, s.key),
                                      device=self.boot_device)
        if s.mode == "2afc":
            self.boots[(mid, s.key)] = boot
        self._row(mid, label, calibrated, s.mode, s.split, s.category, len(s), score_fn(*arrays), boot, s.synthetic)

    def _row(self, mid: str, label: str, calibrated: bool, mode: str, split: str, category: str, n: int,
             score: float, boot: np.ndarray, synthetic: bool) -> None:
        lo, hi = percentile_interval(boot, self.alpha)
        self.rows.append(dict(metric=mid, label=label, calibrated=bool(calibrated), mode=mode, split=split,
                              category=category, n=int(n), score=float(score), ci_low=lo, ci_high=hi,
                              synthetic=bool(synthetic)))

    def add_means(self, labels: dict[str, tuple[str, bool]], sets: Sequence[EvalSet]) -> None:
        """Rows of the unweighted mean of the 2AFC val :data:`MEAN_OF` scores, when both sets are there."""
        by_key = {s.key: s for s in sets}
        keys = [f"2afc/val/{c}" for c in MEAN_OF]
        if not all(k in by_key for k in keys):
            return
        n = sum(len(by_key[k]) for k in keys)
        synthetic = any(by_key[k].synthetic for k in keys)
        for mid, (label, calibrated) in labels.items():
            scores = [next(r["score"] for r in self.rows if r["metric"] == mid and r["mode"] == "2afc"
                           and f"2afc/{r['split']}/{r['category']}" == k) for k in keys]
            boot = np.mean([self.boots[(mid, k)] for k in keys], axis=0)
            self._row(mid, label, calibrated, "2afc", "val", MEAN_CATEGORY, n, float(np.mean(scores)), boot, synthetic)


def _labels_of(s: EvalSet) -> np.ndarray:
    return s.labels if s.labels is not None else np.zeros(0)


def _score_metric(mid: str, label: str, metric: Metric, sets: Sequence[EvalSet], table: _Table,
                  device: torch.device, batch_size: int, ex: Execution, bar: Any) -> list[SetDistances]:
    """Rows and per-item distances of one metric on every set, run as ``ex`` says (:mod:`.speed`)."""
    prepared = PreparedMetric(metric, ex, device)
    out = []
    for s in sets:
        dists = set_distances(prepared, s, device, batch_size, bar)
        labels, stems = _labels_of(s), list(s.stems or [])
        if s.mode == "2afc":
            table.add(mid, label, metric.calibrated, s, score_2afc, dists[0], dists[1], labels)
            out.append(SetDistances(mid, label, s.key, stems, d0=dists[0], d1=dists[1], judge=labels))
        else:
            table.add(mid, label, metric.calibrated, s, jnd_map, dists[0], labels)
            out.append(SetDistances(mid, label, s.key, stems, d=dists[0], same=labels))
    return out


def run_evaluation(
    source: PathLike, metrics: Sequence[Any], *, datasets: Sequence[str] | None = None,
    batch_size: int | None = None, device: Any = None, n_boot: int = 1000, seed: int = 0,
    alpha: float = 0.05, save_distances: PathLike | None = None, progress: bool = True,
    backbone_weights: WeightSpecs = None, lin_weights: WeightSpecs = None,
    stream: bool = False, chunk_size: int = DEFAULT_CHUNK, metric_options: MetricOptions = None,
    compare: Sequence[str] | None = None, precision: str = "fp32", compile: bool = False,
    channels_last: bool | None = None, trust_plugin: TrustArg = None,
) -> EvaluationResult:
    """Like :func:`evaluate`, returning the table, the per-item distances and the comparisons."""
    src = Path(source)
    _check_options(metrics, n_boot, batch_size, chunk_size, save_distances, src)
    dev = join_process_group(device)
    ex = check_execution(precision, compile, channels_last, dev)
    bs = int(batch_size) if batch_size else default_batch_size(dev)
    resolved = _resolve_all(metrics, backbone_weights, lin_weights, dev, metric_options, trust_plugin)
    pair = check_compare(compare, [mid for mid, _ in resolved])
    present = find_sets(src)
    if not present:
        raise DataError(f"no 2AFC or JND sets found in {src}")
    selection = choose_sets(present, datasets, source=src)
    keys = [k for k in selection.keys if k.startswith("2afc/")] + [k for k in selection.keys if k.startswith("jnd/")]
    sets = open_sets(src, keys, stream=stream, chunk_size=int(chunk_size), device=dev)
    table = _Table(n_boot, seed, alpha, dev)
    distances: list[SetDistances] = []
    labels = {mid: (metric_label(mid, m) + ex.label_suffix, m.calibrated) for mid, m in resolved}
    for mid, metric in resolved:
        with tqdm(total=sum(len(s) for s in sets), desc=labels[mid][0], unit="item",
                  disable=not progress or not is_main_process(), leave=False) as bar:
            distances += _score_metric(mid, labels[mid][0], metric, sets, table, dev, bs, ex, bar)
    sets_2afc = [s for s in sets if s.mode == "2afc"]
    for s in sets_2afc:
        table.add(HUMAN, HUMAN_LABEL, True, s, human_ceiling_2afc, _labels_of(s))
    table.add_means({**labels, HUMAN: (HUMAN_LABEL, True)}, sets_2afc)
    comparisons = [] if pair is None else compare_metrics(
        pair, distances, n_boot=int(n_boot), seeds={s.key: _set_seed(seed, s.key) for s in sets}, alpha=alpha,
        synthetic={s.key: s.synthetic for s in sets}, device=table.boot_device)
    calibration = calibrate_distances(distances, dict(resolved), synthetic={s.key: s.synthetic for s in sets},
                                      seed=int(seed))
    frame = pd.DataFrame(table.rows, columns=COLUMNS)
    frame.attrs.update(n_boot=int(n_boot), seed=int(seed), alpha=float(alpha), device=str(dev),
                       execution={**ex.record(), "batch_size": bs},
                       calibration=dataclasses.replace(calibration, items=[]))
    if pair is not None:
        frame.attrs["comparisons"] = comparisons
    result = EvaluationResult(table=frame, distances=distances, n_boot=int(n_boot), seed=int(seed),
                              comparisons=comparisons, calibration=calibration, metrics=dict(resolved),
                              notes=list(selection.notes))
    if save_distances is not None and is_main_process():
        write_distances(result.distances, save_distances)
    return result


class SelectionNote(UserWarning):
    """A short form of ``datasets`` that names no mode selected sets of both modes.

    For example ``val/cnn``: ``2afc/val/cnn`` and ``jnd/val/cnn``; the message says which (``bapps evaluate``
    prints it).
    """


def choose_sets(present: Sequence[str], datasets: Sequence[str] | None, *, source: Any = "") -> Selection:
    """Keys of ``present`` chosen by ``datasets``, with notes on the choice.

    The rule is the one of :func:`~bapps_toolkit.data.selection.select_keys` (the one ``bapps train`` uses).

    ``None`` chooses every val set, 2AFC and JND, as in the paper's Table 5 (train sets only when
    named); a selector naming sets of both kinds (``val/cnn``) gets a :class:`.notes.Note`,
    ``"val/cnn selected 2afc/val/cnn, jnd/val/cnn"``.

    Args:
        present: the keys the source holds.
        datasets: selectors, or ``None``.
        source: the source, for messages.

    Returns:
        The chosen keys in the order of ``present``, and the notes.

    Raises:
        DataError: no set chosen, or a selector that matches nothing present.
    """
    chosen = select_keys(present, datasets, known=ALL_KEYS, where=str(source) or "the source")
    return Selection(list(chosen.keys), [Note("datasets", text) for text in chosen.notes])


def select_sets(present: Sequence[str], datasets: Sequence[str] | None, *, source: Any = "") -> list[str]:
    """The keys of :func:`choose_sets`, its notes issued as :class:`SelectionNote` warnings.

    For callers that only take the keys.

    Args:
        present: the keys the source holds.
        datasets: selectors, or ``None``.
        source: the source, for messages.

    Returns:
        The chosen keys, in the order of ``present``.
    """
    selection = choose_sets(present, datasets, source=source)
    for note in selection.notes:
        warnings.warn(note.text, SelectionNote, stacklevel=2)
    return selection.keys


def evaluate(
    source: PathLike, metrics: Sequence[Any], *, datasets: Sequence[str] | None = None,
    batch_size: int | None = None, device: Any = None, n_boot: int = 1000, seed: int = 0,
    save_distances: PathLike | None = None, progress: bool = True,
    backbone_weights: WeightSpecs = None, lin_weights: WeightSpecs = None, alpha: float = 0.05,
    stream: bool = False, chunk_size: int = DEFAULT_CHUNK, metric_options: MetricOptions = None,
    compare: Sequence[str] | None = None, precision: str = "fp32", compile: bool = False,
    channels_last: bool | None = None, trust_plugin: TrustArg = None,
) -> pd.DataFrame:
    """Score ``metrics`` on every 2AFC and JND set of ``source``; returns the tidy DataFrame.

    ``source``: a BAPPS folder root or a packed ``.h5`` file. ``metrics``: registry names
    (``"lpips-alex"``), :class:`~bapps_toolkit.metrics.Metric` objects (moved to ``device``), or
    checkpoints written by ``bapps train`` (see :mod:`.resolve`). ``backbone_weights`` /
    ``lin_weights``: ``{net: path}`` or ``["net=path", ...]`` for the registry metrics of that
    network (``"random"`` allowed for a backbone: UNCALIBRATED). ``datasets``: keys or short forms
    (``"val/cnn"``, ``"val"``, ``"jnd/val/cnn"``); None = every val set present (2AFC and JND;
    train sets only by name). ``device``: None = CUDA
    when available, else CPU. ``save_distances``: ``.npz`` or ``.csv`` file for the per-item
    distances (written atomically). ``stream=True``: read each set in pieces of ``chunk_size``
    items (``iter_2afc_chunks``/``iter_jnd_chunks``) for every metric instead of loading it whole,
    so memory stays bounded by the chunk however large the set (same results; each metric reads
    the data again). ``metric_options``: ``{spec: {key: value}}`` for the factories of the metrics
    (plugin specs ``module:attr`` / ``file.py:attr`` and entry-point names are accepted in
    ``metrics``, see :mod:`bapps_toolkit.metrics.plugins`); the preset ``"paper"`` stands for
    the metrics of the paper's Table 5 (:mod:`bapps_toolkit.metrics.presets`). ``compare=(A, B)``:
    two of the evaluated metric ids; the paired difference A − B per set and for the 2AFC mean,
    with its interval and p-value (one method: ``p < alpha`` iff the interval excludes 0), is
    put in ``table.attrs["comparisons"]`` (records of :mod:`.compare`) and in every report.
    ``precision`` (``"fp32"`` default, ``"bf16"``, ``"fp16"`` on CUDA), ``compile``
    (:func:`torch.compile`, opt-in) and ``channels_last`` (None = on for deep metrics in bf16/fp16):
    how the metrics run, see :mod:`.speed`; a reduced precision is named in each metric row's label
    (``lpips-alex [bf16]``), and ``table.attrs["execution"]`` records all of them and the batch size.
    ``batch_size`` None = :func:`default_batch_size`. Columns are described in the module docstring.
    ``trust_plugin``: the plugin spec(s) a checkpoint among ``metrics`` may import (the plugin
    specs in ``metrics`` count too); a checkpoint naming another is refused, nothing imported
    (:func:`~bapps_toolkit.metrics.trained.load_metric_from_checkpoint`).
    """
    return run_evaluation(
        source, metrics, datasets=datasets, batch_size=batch_size, device=device, n_boot=n_boot,
        seed=seed, alpha=alpha, save_distances=save_distances, progress=progress,
        backbone_weights=backbone_weights, lin_weights=lin_weights, stream=stream, chunk_size=chunk_size,
        metric_options=metric_options, compare=compare, precision=precision, compile=compile,
        channels_last=channels_last, trust_plugin=trust_plugin,
    ).table
