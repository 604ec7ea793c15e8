"""Score metrics against the BAPPS human judgments: every 2AFC and JND set of a data source.

:func:`evaluate` loads each set once (uint8, resident on the device), converts each batch to the
metric's input (``to_model_input``: NCHW float in [-1, 1]), sends the reference patch of a 2AFC
triplet through the network once (:meth:`Metric.pair_distances`), and returns a tidy table:

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
import os
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np

from ..scores import (
    HUMAN,
    MEAN_CATEGORY,
    MEAN_OF,
    _percentile_interval,
    bootstrap_distribution,
    human_ceiling_2afc,
    jnd_map,
    score_2afc,
)

PathLike = Union[str, "os.PathLike[str]"]


#: Items per piece read from disk with ``stream=True`` (≈ 37 MB of uint8 2AFC triplets).
DEFAULT_CHUNK = 1024

COLUMNS = ["metric", "label", "calibrated", "mode", "split", "category", "n", "score",
           "ci_low", "ci_high", "synthetic"]

_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".safetensors")
_NETS = ("alex", "vgg", "squeeze")


@dataclasses.dataclass
class SetDistances:
    """Per-item distances of one metric on one set (2AFC: ``d0``, ``d1``, ``judge``; JND: ``d``, ``same``)."""

    metric: str
    label: str
    key: str
    stems: list[str]
    d0: np.ndarray | None = None
    d1: np.ndarray | None = None
    judge: np.ndarray | None = None
    d: np.ndarray | None = None
    same: np.ndarray | None = None

    @property
    def mode(self) -> str:
        return self.key.split("/")[0]


@dataclasses.dataclass
class EvaluationResult:
    """:attr:`table` (the tidy DataFrame) and :attr:`distances` (per metric and set)."""

    table: Any
    distances: list[SetDistances]
    n_boot: int
    seed: int


# --------------------------------------------------------------------------------------------
# Metric resolution
# --------------------------------------------------------------------------------------------
def _net_of(name: str) -> str | None:
    tokens = name.lower().replace("_", "-").split("-")
    for net in _NETS:
        if net in tokens:
            return net
    return None


def _looks_like_checkpoint(spec: str) -> bool:
    p = Path(spec)
    return p.suffix.lower() in _CHECKPOINT_SUFFIXES or p.is_dir() or (p.is_file() and "/" in spec)


def resolve_metric(
    spec: Any, *, backbone_weights: Mapping[str, Any] | None = None,
    lin_weights: Mapping[str, Any] | None = None,
) -> tuple[str, Any]:
    """``(metric_id, Metric)`` from a registry name, a Metric object or a training checkpoint path.

    ``backbone_weights`` / ``lin_weights`` map a network name (``alex``, ``vgg``, ``squeeze``) to
    a weight file (or ``"random"`` for the backbone); they apply to registry names whose name
    contains that network, e.g. ``lpips-alex``.
    """
    from ..metrics import Metric, create_metric, list_metrics

    if isinstance(spec, Metric):
        return spec.name, spec
    if not isinstance(spec, (str, os.PathLike)):
        raise ValueError(f"metric {spec!r}: give a metric name, a Metric object or a checkpoint path")
    text = os.fspath(spec)
    if text.lower() not in list_metrics() and _looks_like_checkpoint(text):
        if not Path(text).exists():
            raise FileNotFoundError(f"checkpoint {text} does not exist")
        from ..train import load_metric_from_checkpoint

        metric = load_metric_from_checkpoint(text)
        path = Path(text)
        where = f"{path.parent.name}/{path.name}" if path.is_file() and path.parent.name else path.name
        return f"{metric.name}[{where}]", metric
    options: dict[str, Any] = {}
    net = _net_of(text)
    if net is not None:
        if backbone_weights and net in backbone_weights:
            options["backbone_weights"] = backbone_weights[net]
        if lin_weights and net in lin_weights:
            options["lin_weights"] = lin_weights[net]
    for given, what in ((backbone_weights, "backbone"), (lin_weights, "lin")):
        for k in (given or {}):
            if k not in _NETS:
                raise ValueError(f"--{what}-weights {k}=…: unknown network {k!r}; use one of {', '.join(_NETS)}")
    try:
        metric = create_metric(text, **options)
    except TypeError as exc:
        raise ValueError(f"metric {text!r} does not accept the options {sorted(options)}: {exc}") from None
    return text.lower(), metric


def metric_label(metric_id: str, metric: Any) -> str:
    """Report label: the metric's ``label`` (with its UNCALIBRATED tag), named by ``metric_id``."""
    if metric_id == metric.name:
        return metric.label
    return metric.label.replace(metric.name, metric_id, 1)


def parse_weight_specs(items: Sequence[str], option: str, *, allow_random: bool) -> dict[str, str]:
    """``["alex=PATH", "vgg=random"]`` -> ``{"alex": "PATH", "vgg": "random"}``.

    Errors name ``option``: missing ``=``, unknown network, the same network twice, a file that
    does not exist, ``random`` where it is not allowed.
    """
    out: dict[str, str] = {}
    for item in items or []:
        net, sep, value = str(item).partition("=")
        net = net.strip().lower()
        if not sep or not net or not value:
            raise ValueError(f"{option} {item!r}: expected NET=PATH (NET one of {', '.join(_NETS)})")
        if net not in _NETS:
            raise ValueError(f"{option} {item!r}: unknown network {net!r}; use one of {', '.join(_NETS)}")
        if net in out:
            raise ValueError(f"{option}: network {net!r} given twice")
        if value == "random":
            if not allow_random:
                raise ValueError(f"{option} {item!r}: 'random' is only allowed for --backbone-weights")
        elif not Path(value).is_file():
            raise FileNotFoundError(f"{option} {item!r}: weight file {value} does not exist")
        out[net] = value
    return out


# --------------------------------------------------------------------------------------------
# Distances
# --------------------------------------------------------------------------------------------
def _pick_device(device: Any):
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def default_batch_size(device) -> int:
    """Triplets per batch: 1000 on a GPU, 250 on a CPU (bounded memory for VGG features)."""
    return 1000 if device.type == "cuda" else 250


def _batched(n: int, batch_size: int):
    for i in range(0, n, batch_size):
        yield i, min(n, i + batch_size)


class _BatchCaller:
    """Calls a metric on batches made by ``to_model_input`` from uint8 patches.

    Such batches are finite, inside [-1, 1] and of one shape for a whole set, so the metric's
    validation (:meth:`Metric.validate`: dtype, shape, channels, size, finiteness, range — a few
    full scans of the batch) runs on the first batch of each set only (``validate=first``).
    2AFC goes through :meth:`Metric.pair_distances`, which deep metrics override so that
    ``[ref; p0; p1]`` crosses the network in one pass.
    """

    def __init__(self, metric):
        self.metric = metric

    def pairs(self, ref_u8, p0_u8, p1_u8, device, first: bool):
        import torch

        from ..data import to_model_input

        n = ref_u8.shape[0]
        x = to_model_input(torch.cat([ref_u8, p0_u8, p1_u8], dim=0), device=device)
        return self.metric.pair_distances(x[:n], x[n:2 * n], x[2 * n:], validate=first)

    def single(self, p0_u8, p1_u8, device, first: bool):
        import torch

        from ..data import to_model_input

        n = p0_u8.shape[0]
        x = to_model_input(torch.cat([p0_u8, p1_u8], dim=0), device=device)
        return self.metric.distance(x[:n], x[n:], validate=first)


def _as_tensor(x, device):
    import torch

    if isinstance(x, torch.Tensor):
        return x if x.device == device else x.to(device)
    return torch.from_numpy(np.ascontiguousarray(x)).to(device)


def _distances_2afc(caller: _BatchCaller, s, device, batch_size: int, bar) -> tuple[np.ndarray, np.ndarray]:
    import torch

    ref, p0, p1 = (_as_tensor(a, device) for a in (s.ref, s.p0, s.p1))
    d0s, d1s = [], []
    with torch.inference_mode():
        for i, j in _batched(len(s), batch_size):
            d0, d1 = caller.pairs(ref[i:j], p0[i:j], p1[i:j], device, first=(i == 0))
            d0s.append(d0.reshape(j - i).double().cpu().numpy())
            d1s.append(d1.reshape(j - i).double().cpu().numpy())
            bar.update(j - i)
    return np.concatenate(d0s), np.concatenate(d1s)


def _distances_jnd(caller: _BatchCaller, s, device, batch_size: int, bar) -> np.ndarray:
    import torch

    p0, p1 = _as_tensor(s.p0, device), _as_tensor(s.p1, device)
    ds = []
    with torch.inference_mode():
        for i, j in _batched(len(s), batch_size):
            d = caller.single(p0[i:j], p1[i:j], device, first=(i == 0))
            ds.append(d.reshape(j - i).double().cpu().numpy())
            bar.update(j - i)
    return np.concatenate(ds)


class _StreamedSet:
    """One set read chunk by chunk (``stream=True``): its images are never held whole.

    ``key``, ``split``, ``category`` and ``len()`` are known up front (from the stems only);
    ``stems``, ``judge``/``same`` and ``synthetic`` are filled by the first full pass of
    :meth:`pieces` (a few bytes per item)."""

    def __init__(self, source: Path, key: str, chunk_size: int, device):
        from ..data import JNDDataset, TwoAFCDataset

        self.key = key
        _, self.split, self.category = key.split("/")
        self._args = (source, key, int(chunk_size), device)
        cls = TwoAFCDataset if key.startswith("2afc/") else JNDDataset
        ds = cls(source, [key], in_memory=False)
        try:
            self._n = len(ds)
        finally:
            ds.close()
        self.stems: list[str] | None = None
        self.judge: np.ndarray | None = None
        self.same: np.ndarray | None = None
        self.synthetic = False

    def __len__(self) -> int:
        return self._n

    def pieces(self):
        from ..data import iter_2afc_chunks, iter_jnd_chunks

        source, key, chunk, device = self._args
        twoafc = key.startswith("2afc/")
        stems: list[str] = []
        values: list[np.ndarray] = []
        for piece in (iter_2afc_chunks if twoafc else iter_jnd_chunks)(source, key, chunk, device=device):
            stems.extend(piece.stems)
            values.append(_as_numpy(piece.judge if twoafc else piece.same).astype(np.float64).reshape(-1))
            self.synthetic = bool(piece.synthetic)
            yield piece
        if self.stems is None:
            self.stems = stems
            vals = np.concatenate(values) if values else np.zeros(0)
            if twoafc:
                self.judge = vals
            else:
                self.same = vals


def _set_distances_2afc(caller: _BatchCaller, s, device, batch_size: int, bar) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(s, _StreamedSet):
        return _distances_2afc(caller, s, device, batch_size, bar)
    parts = [_distances_2afc(caller, piece, device, batch_size, bar) for piece in s.pieces()]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _set_distances_jnd(caller: _BatchCaller, s, device, batch_size: int, bar) -> np.ndarray:
    if not isinstance(s, _StreamedSet):
        return _distances_jnd(caller, s, device, batch_size, bar)
    return np.concatenate([_distances_jnd(caller, piece, device, batch_size, bar) for piece in s.pieces()])


def _as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _set_seed(seed: int, key: str) -> int:
    return int(seed) * (1 << 32) + zlib.crc32(key.encode())


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------
def run_evaluation(
    source: PathLike, metrics: Sequence[Any], *, datasets: Sequence[str] | None = None,
    batch_size: int | None = None, device: Any = None, n_boot: int = 1000, seed: int = 0,
    alpha: float = 0.05, save_distances: PathLike | None = None, progress: bool = True,
    backbone_weights: Mapping[str, Any] | None = None,
    lin_weights: Mapping[str, Any] | None = None,
    stream: bool = False, chunk_size: int = DEFAULT_CHUNK,
) -> EvaluationResult:
    """Like :func:`evaluate`, returning the table and the per-item distances."""
    import pandas as pd
    from tqdm.auto import tqdm

    from ..data import find_sets, load_2afc, load_jnd
    from ..errors import DataError

    if not metrics:
        raise ValueError("no metrics to evaluate: give at least one metric name or checkpoint")
    if int(n_boot) < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if batch_size is not None and int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    src = Path(source)
    if not src.exists():
        raise DataError(f"data source {src} does not exist (give a BAPPS folder root or a packed .h5 file)")
    dev = _pick_device(device)
    bs = int(batch_size) if batch_size else default_batch_size(dev)
    resolved = []
    seen = set()
    for spec in metrics:
        mid, metric = resolve_metric(spec, backbone_weights=backbone_weights, lin_weights=lin_weights)
        if getattr(metric, "spatial", False):
            raise ValueError(f"metric {mid!r} was created with spatial=True; evaluation needs one "
                             "distance per item (create it without spatial=True)")
        if mid in seen:
            raise ValueError(f"metric {mid!r} given twice")
        seen.add(mid)
        resolved.append((mid, metric.to(dev).eval()))

    present = find_sets(src)
    if not present:
        raise DataError(f"no 2AFC or JND sets found in {src}")
    selected = select_sets(present, datasets, source=src)
    keys_2afc = [k for k in selected if k.startswith("2afc/")]
    keys_jnd = [k for k in selected if k.startswith("jnd/")]
    if stream:
        sets_2afc: list[Any] = [_StreamedSet(src, k, chunk_size, dev) for k in keys_2afc]
        sets_jnd: list[Any] = [_StreamedSet(src, k, chunk_size, dev) for k in keys_jnd]
    else:
        sets_2afc = load_2afc(src, keys_2afc, device=dev) if keys_2afc else []
        sets_jnd = load_jnd(src, keys_jnd, device=dev) if keys_jnd else []

    rows: list[dict[str, Any]] = []
    distances: list[SetDistances] = []
    boots: dict[tuple[str, str], np.ndarray] = {}  # (metric, key) -> bootstrap scores
    meta: dict[str, dict[str, Any]] = {}

    def add_row(mid, label, calibrated, mode, split, category, n, score, boot, synthetic):
        lo, hi = _percentile_interval(boot, alpha)
        rows.append(dict(metric=mid, label=label, calibrated=bool(calibrated), mode=mode, split=split,
                         category=category, n=int(n), score=float(score), ci_low=lo, ci_high=hi,
                         synthetic=bool(synthetic)))

    boot_dev = dev if dev.type == "cuda" else None  # bootstrap on the GPU when there is one
    n_items = sum(len(s) for s in sets_2afc) + sum(len(s) for s in sets_jnd)
    for mid, metric in resolved:
        label = metric_label(mid, metric)
        meta[mid] = dict(label=label, calibrated=metric.calibrated)
        caller = _BatchCaller(metric)
        with tqdm(total=n_items, desc=label, unit="item", disable=not progress, leave=False) as bar:
            for s in sets_2afc:
                d0, d1 = _set_distances_2afc(caller, s, dev, bs, bar)
                judge = _as_numpy(s.judge).astype(np.float64).reshape(-1)
                boot = bootstrap_distribution(score_2afc, d0, d1, judge, n_boot=n_boot,
                                              seed=_set_seed(seed, s.key), device=boot_dev)
                boots[(mid, s.key)] = boot
                add_row(mid, label, metric.calibrated, "2afc", s.split, s.category, len(s),
                        score_2afc(d0, d1, judge), boot, s.synthetic)
                distances.append(SetDistances(mid, label, s.key, list(s.stems), d0=d0, d1=d1, judge=judge))
            for s in sets_jnd:
                d = _set_distances_jnd(caller, s, dev, bs, bar)
                same = _as_numpy(s.same).astype(np.float64).reshape(-1)
                boot = bootstrap_distribution(jnd_map, d, same, n_boot=n_boot,
                                              seed=_set_seed(seed, s.key), device=boot_dev)
                add_row(mid, label, metric.calibrated, "jnd", s.split, s.category, len(s),
                        jnd_map(d, same), boot, s.synthetic)
                distances.append(SetDistances(mid, label, s.key, list(s.stems), d=d, same=same))

    for s in sets_2afc:
        judge = _as_numpy(s.judge).astype(np.float64).reshape(-1)
        boot = bootstrap_distribution(human_ceiling_2afc, judge, n_boot=n_boot,
                                      seed=_set_seed(seed, s.key), device=boot_dev)
        boots[(HUMAN, s.key)] = boot
        add_row(HUMAN, "human (ceiling)", True, "2afc", s.split, s.category, len(s),
                human_ceiling_2afc(judge), boot, s.synthetic)
    meta[HUMAN] = dict(label="human (ceiling)", calibrated=True)

    # Summary rows: mean of the 2AFC val traditional and cnn scores.
    by_key = {s.key: s for s in sets_2afc}
    mean_keys = [f"2afc/val/{c}" for c in MEAN_OF]
    if all(k in by_key for k in mean_keys):
        n = sum(len(by_key[k]) for k in mean_keys)
        synthetic = any(by_key[k].synthetic for k in mean_keys)
        for mid in [m for m, _ in resolved] + [HUMAN]:
            scores = [next(r["score"] for r in rows if r["metric"] == mid and r["mode"] == "2afc"
                           and f"2afc/{r['split']}/{r['category']}" == k) for k in mean_keys]
            boot = np.mean([boots[(mid, k)] for k in mean_keys], axis=0)
            add_row(mid, meta[mid]["label"], meta[mid]["calibrated"], "2afc", "val", MEAN_CATEGORY,
                    n, float(np.mean(scores)), boot, synthetic)

    table = pd.DataFrame(rows, columns=COLUMNS)
    table.attrs.update(n_boot=int(n_boot), seed=int(seed), alpha=float(alpha), device=str(dev))
    result = EvaluationResult(table=table, distances=distances, n_boot=int(n_boot), seed=int(seed))
    if save_distances is not None:
        write_distances(result.distances, save_distances)
    return result


def select_sets(present: Sequence[str], datasets: Sequence[str] | None, *, source: Any = "") -> list[str]:
    """Keys of ``present`` chosen by ``datasets`` (None = all).

    A spec matches a key ``mode/split/category`` when its parts equal the key's leading parts
    (``2afc``, ``jnd/val``, ``2afc/val/cnn``) or the parts after the mode (``val``, ``val/cnn``
    — which selects both the 2AFC and the JND set of that name). A spec matching nothing is an
    error naming the sets present.
    """
    from ..errors import DataError

    if not datasets:
        return list(present)
    chosen: list[str] = []
    for spec in datasets:
        parts = [p for p in str(spec).strip().lower().split("/") if p]
        hits = [k for k in present
                if parts and (k.split("/")[:len(parts)] == parts or k.split("/")[1:1 + len(parts)] == parts)]
        if not hits:
            raise DataError(f"dataset {spec!r} is not in {source}; present: {', '.join(present)}")
        chosen.extend(k for k in hits if k not in chosen)
    return [k for k in present if k in chosen]


def evaluate(
    source: PathLike, metrics: Sequence[Any], *, datasets: Sequence[str] | None = None,
    batch_size: int | None = None, device: Any = None, n_boot: int = 1000, seed: int = 0,
    save_distances: PathLike | None = None, progress: bool = True,
    backbone_weights: Mapping[str, Any] | None = None,
    lin_weights: Mapping[str, Any] | None = None, alpha: float = 0.05,
    stream: bool = False, chunk_size: int = DEFAULT_CHUNK,
):
    """Score ``metrics`` on every 2AFC and JND set of ``source``; returns the tidy DataFrame.

    ``source``: a BAPPS folder root or a packed ``.h5`` file. ``metrics``: registry names
    (``"lpips-alex"``), :class:`~bapps_toolkit.metrics.Metric` objects (moved to ``device``), or
    paths to checkpoints written by ``bapps train``. ``datasets``: keys or short forms
    (``"val/cnn"``, ``"val"``, ``"jnd/val/cnn"``); None = every set present. ``device``: None = CUDA
    when available, else CPU. ``save_distances``: ``.npz`` or ``.csv`` file for the per-item
    distances (written atomically). ``stream=True``: read each set in pieces of ``chunk_size``
    items (``iter_2afc_chunks``/``iter_jnd_chunks``) for every metric instead of loading it whole,
    so memory stays bounded by the chunk however large the set (same results; each metric reads
    the data again). Columns are described in the module docstring.
    """
    return run_evaluation(
        source, metrics, datasets=datasets, batch_size=batch_size, device=device, n_boot=n_boot,
        seed=seed, alpha=alpha, save_distances=save_distances, progress=progress,
        backbone_weights=backbone_weights, lin_weights=lin_weights, stream=stream, chunk_size=chunk_size,
    ).table


# --------------------------------------------------------------------------------------------
# Per-item distances on disk
# --------------------------------------------------------------------------------------------
def distances_frame(distances: Sequence[SetDistances]):
    """Long table: one row per metric and item (metric, label, mode, split, category, stem,
    d0, d1, judge for 2AFC; d, same for JND; empty where not applicable)."""
    import pandas as pd

    parts = []
    for sd in distances:
        mode, split, category = sd.key.split("/")
        n = len(sd.stems)
        nan = np.full(n, np.nan)
        parts.append(pd.DataFrame({
            "metric": sd.metric, "label": sd.label, "mode": mode, "split": split,
            "category": category, "stem": sd.stems,
            "d0": sd.d0 if sd.d0 is not None else nan, "d1": sd.d1 if sd.d1 is not None else nan,
            "judge": sd.judge if sd.judge is not None else nan,
            "d": sd.d if sd.d is not None else nan, "same": sd.same if sd.same is not None else nan,
        }))
    cols = ["metric", "label", "mode", "split", "category", "stem", "d0", "d1", "judge", "d", "same"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)


def write_distances(distances: Sequence[SetDistances], path: PathLike) -> Path:
    """Write per-item distances to ``.csv`` (long table) or ``.npz`` (arrays named
    ``<metric>|<mode>/<split>/<category>|<field>``), atomically."""
    from .._io import atomic_path, atomic_write

    out = Path(path)
    suffix = out.suffix.lower()
    if suffix == ".csv":
        frame = distances_frame(distances)
        with atomic_write(out, "w", encoding="utf-8", newline="") as fh:
            frame.to_csv(fh, index=False)
    elif suffix == ".npz":
        arrays: dict[str, np.ndarray] = {}
        for sd in distances:
            for field in ("d0", "d1", "judge", "d", "same"):
                value = getattr(sd, field)
                if value is not None:
                    arrays[f"{sd.metric}|{sd.key}|{field}"] = value
            arrays[f"{sd.metric}|{sd.key}|stems"] = np.asarray(sd.stems, dtype=str)
            arrays[f"{sd.metric}|{sd.key}|label"] = np.asarray(sd.label)
        with atomic_path(out) as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **arrays)
    else:
        raise ValueError(f"--save-distances {out}: use a .npz or .csv file name")
    return out
