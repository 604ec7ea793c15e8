"""``run_gmad``: group MAD — pairs picked from a pool to let metrics attack each other.

gMAD (Ma, Duanmu, Wang, Wu, Liu, Yong, Li, Zhang, "Group maximum differentiation competition:
model comparison with few samples", IEEE TPAMI 42(4):851–864, 2020; CVPR 2016 version "Group
MAD competition — a new methodology to compare objective image quality models") lets each model
in turn be the *defender* and every other an *attacker*: among the pool's images that the
defender scores (nearly) alike, the attacker picks the pair it scores farthest apart. People
then judge the pair: if they see the difference the attacker claims, the defender failed.

Here, for distance metrics (full-reference): every pool image is scored by every metric
against its reference (:mod:`.pool`). For each ordered pair (defender D, attacker A) and each
of ``levels`` quality levels of D — the quantiles ``(l + ½)/levels`` of D's scores over the
pool — the candidates are the images whose D score lies within ``τ/2`` of the level, where the
tolerance ``τ = tolerance × (max − min of D over the pool)``; so any two candidates differ by
at most ``τ`` in D. Among candidate pairs that share a reference (a 2AFC item needs one
reference), the pair with the largest ``|A(x) − A(y)|`` is chosen; a pair already chosen for
the same (D, A) at another level is passed over for the next best. A level with no such pair
is skipped (listed in the manifest's notes). The item records both metrics' scores, the level,
its value and ``τ``; which image becomes ``p0`` is drawn from ``SeedSequence([seed, stem])``.

Scores are cached in ``<out>/.competition/scores.npy`` (checked on reading), so a resumed run
does not score the pool again; all scores are written to ``<out>/pool_scores.csv``.
"""
from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._device import pick_device
from .._io import atomic_write, write_text_atomic
from ..errors import DataError, UsageError
from .mad_run import default_category
from .metricspec import CompetitionMetric, build_metrics
from .output import SetWriter
from .pool import Pool, load_pool
from .records import CompetitionItem, Manifest, MetricRecord


@dataclass(frozen=True)
class GmadConfig:
    """What :func:`run_gmad` does (the ``bapps gmad`` options).

    Args:
        metrics: two or more metric names.
        pool: the pool (:func:`.pool.load_pool`).
        out: the output folder.
        levels: quality levels of each defender.
        tolerance: the defender's allowed difference within a pair, as a fraction of its score
            range over the pool.
        format: the benchmark format of a pool folder (default: detected).
        seed: seed of the sides.
        device, batch_size: where and how many images are scored at once.
        backbone_weights, metric_options: as for ``bapps mad``.
        category: the set's category (default ``gmad-<metrics>`` made safe).
    """

    metrics: tuple[str, ...]
    pool: str
    out: str
    levels: int = 5
    tolerance: float = 0.05
    format: str | None = None
    seed: int = 0
    device: str | None = None
    batch_size: int = 16
    backbone_weights: tuple[str, ...] = ()
    metric_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    category: str | None = None

    @property
    def key(self) -> str:
        """The 2AFC set key the competition writes (``2afc/val/<category>``)."""
        return f"2afc/val/{self.category or default_category('gmad', list(self.metrics))}"

    def resume_settings(self) -> dict[str, Any]:
        """The settings a resumed run must share with the run it continues (JSON-ready)."""
        d = asdict(self)
        keep = ("metrics", "pool", "levels", "tolerance", "format", "seed", "backbone_weights", "metric_options")
        return {k: (list(d[k]) if isinstance(d[k], tuple) else d[k]) for k in keep} | {"key": self.key}


@dataclass
class GmadRun:
    """What :func:`run_gmad` did: the manifest and its path, the skipped levels, the scores."""

    manifest: Manifest
    manifest_path: Path
    skipped: list[str]
    scores: np.ndarray


def _to_tensor(arrs: Sequence[np.ndarray], device: torch.device) -> torch.Tensor:
    x = torch.from_numpy(np.stack(arrs)).to(device=device, dtype=torch.float32)
    return x.permute(0, 3, 1, 2).contiguous() / 255.0


def score_pool(pool: Pool, metrics: Sequence[CompetitionMetric], device: torch.device, batch_size: int,
               ) -> np.ndarray:
    """``[len(metrics), len(pool.entries)]`` distances ``d(reference, image)``.

    An image equal to its reference scores NaN (left out of the competition).
    """
    scores = np.full((len(metrics), len(pool.entries)), np.nan)
    for rid, idx in pool.by_ref().items():
        ref = pool.load_ref(rid)
        for k in range(0, len(idx), batch_size):
            chunk = idx[k:k + batch_size]
            imgs = [pool.load_entry(j) for j in chunk]
            for j, im in zip(chunk, imgs, strict=True):
                if im.shape != ref.shape:
                    raise DataError(f"pool {pool.name}: {pool.entries[j].name} is {im.shape[1]}x{im.shape[0]} but its "
                                    f"reference is {ref.shape[1]}x{ref.shape[0]}; full-reference scores need one size")
            same = np.array([np.array_equal(im, ref) for im in imgs])
            x = _to_tensor([ref] * len(imgs), device)
            y = _to_tensor(imgs, device)
            for m_i, m in enumerate(metrics):
                with torch.no_grad():
                    d = m(x, y, validate=True).double().cpu().numpy()
                d[same] = np.nan
                scores[m_i, chunk] = d
    return scores


@dataclass(frozen=True)
class Selection:
    """One selected pair: entries ``(i, j)`` for ``(defender, attacker)`` at ``level``."""

    defender: int
    attacker: int
    level: int
    level_value: float
    tolerance: float
    pair: tuple[int, int]


def select_pairs(scores: np.ndarray, refs: Sequence[str], levels: int, tolerance: float,
                 ) -> tuple[list[Selection], list[tuple[int, int, int]]]:
    """The gMAD pairs of every ordered metric pair and level (rule in the module docstring).

    Args:
        scores: ``[M, N]`` distances (NaN = left out).
        refs: the reference id of each of the ``N`` entries.
        levels: the number of held levels (see :class:`GmadConfig`).
        tolerance: how close to a level the held metric must be (see :class:`GmadConfig`).

    Returns:
        The selections, and ``(defender, attacker, level)`` of each level without a pair.
    """
    if levels < 1 or not 0.0 < tolerance < 1.0:
        raise UsageError(f"levels must be >= 1 and tolerance in (0, 1), got {levels} and {tolerance}")
    m_count = scores.shape[0]
    out: list[Selection] = []
    skipped: list[tuple[int, int, int]] = []
    for d in range(m_count):
        sd = scores[d]
        ok = np.isfinite(scores).all(axis=0)
        span = float(np.nanmax(sd[ok]) - np.nanmin(sd[ok])) if ok.any() else 0.0
        tau = tolerance * span
        centres = np.quantile(sd[ok], (np.arange(levels) + 0.5) / levels) if ok.any() else []
        for a in range(m_count):
            if a == d:
                continue
            used: set[tuple[int, int]] = set()
            for lev, c in enumerate(centres):
                band = np.flatnonzero(ok & (np.abs(sd - c) <= tau / 2))
                pair = _best_pair(band, scores[a], refs, used)
                if pair is None:
                    skipped.append((d, a, lev))
                    continue
                used.add(pair)
                out.append(Selection(d, a, lev, float(c), tau, pair))
    return out, skipped


def _best_pair(band: np.ndarray, sa: np.ndarray, refs: Sequence[str], used: set[tuple[int, int]],
               ) -> tuple[int, int] | None:
    """The same-reference pair in ``band`` with the largest attacker difference, not in ``used``."""
    groups: dict[str, list[int]] = {}
    for i in band.tolist():
        groups.setdefault(refs[i], []).append(i)
    ranked: list[tuple[float, int, int]] = []
    for members in groups.values():
        for x_i, x in enumerate(members):
            for y in members[x_i + 1:]:
                ranked.append((-abs(float(sa[x] - sa[y])), x, y))
    for _, x, y in sorted(ranked):
        if (x, y) not in used:
            return x, y
    return None


def _cached_scores(path: Path, shape: tuple[int, int]) -> np.ndarray | None:
    if not path.is_file() or path.stat().st_size > 8 * shape[0] * shape[1] + 4096:
        return None
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if not isinstance(arr, np.ndarray) or arr.shape != shape or arr.dtype != np.float64:
        return None
    return arr


def _scores_csv(pool: Pool, metrics: Sequence[CompetitionMetric], scores: np.ndarray) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["ref_id", "image", *[m.name for m in metrics]])
    for j, e in enumerate(pool.entries):
        w.writerow([e.ref_id, e.name, *[("" if not math.isfinite(v) else f"{v:.9g}") for v in scores[:, j]]])
    return buf.getvalue()


def _item(cfg: GmadConfig, sel: Selection, stem: str, metrics: Sequence[CompetitionMetric], pool: Pool,
          scores: np.ndarray) -> tuple[CompetitionItem, tuple[int, int]]:
    x, y = sel.pair
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, int(stem)]))
    p0, p1 = (y, x) if rng.integers(2) else (x, y)
    dm, am = metrics[sel.defender], metrics[sel.attacker]
    dv = (float(scores[sel.defender, p0]), float(scores[sel.defender, p1]))
    c = sel.level_value
    drift = ((dv[0] - c) / abs(c), (dv[1] - c) / abs(c)) if c else (0.0, 0.0)
    item = CompetitionItem(
        key=cfg.key, stem=stem, kind="gmad", source=pool.entries[p0].ref_id, held=dm.name, pushed=am.name,
        values={dm.name: dv, am.name: (float(scores[sel.attacker, p0]), float(scores[sel.attacker, p1]))},
        held_start=c, held_drift=drift,
        level=sel.level, level_value=c, tolerance=sel.tolerance)
    return item, (p0, p1)


def run_gmad(cfg: GmadConfig, *, progress: Callable[[str], None] | None = None) -> GmadRun:
    """Run a gMAD competition (module docstring) and write its unjudged 2AFC set.

    Example:
        >>> run_gmad(GmadConfig(("l2", "ssim", "ms-ssim"), pool="kadid.h5", out="gmad"))   # doctest: +SKIP

    Raises:
        ValueError / DataError: bad metrics, options or pool (the message names it).
    """
    if len(cfg.metrics) < 2:
        raise UsageError("a gMAD competition needs at least two metrics")
    device = pick_device(cfg.device)
    metrics = [m.to(device) for m in build_metrics(list(cfg.metrics), backbone_weights=cfg.backbone_weights,
                                                   options=cfg.metric_options)]
    pool = load_pool(cfg.pool, cfg.format)
    writer = SetWriter(cfg.out, cfg.key, cfg.resume_settings())
    with writer.open():
        cache = writer.state / "scores.npy"
        scores = _cached_scores(cache, (len(metrics), len(pool.entries)))
        if scores is None:
            if progress is not None:
                progress(f"scoring {len(pool.entries)} pool images with {len(metrics)} metrics")
            scores = score_pool(pool, metrics, device, cfg.batch_size)
            with atomic_write(cache) as fh:
                np.save(fh, scores, allow_pickle=False)
        write_text_atomic(writer.root / "pool_scores.csv", _scores_csv(pool, metrics, scores))
        selections, skipped = select_pairs(scores, [e.ref_id for e in pool.entries], cfg.levels, cfg.tolerance)
        done = writer.finished()
        for k, sel in enumerate(selections):
            stem = f"{k:06d}"
            if stem in done:
                continue
            item, (p0, p1) = _item(cfg, sel, stem, metrics, pool, scores)
            writer.write_item(item, {"ref": pool.load_ref(pool.entries[p0].ref_id), "p0": pool.load_entry(p0),
                                     "p1": pool.load_entry(p1)})
        skip_notes = [f"defender {metrics[d].name}, attacker {metrics[a].name}, level {lev}: no two images of "
                      "one reference within the tolerance (level skipped)" for d, a, lev in skipped]
        notes = _notes(pool, metrics) + skip_notes
        manifest = Manifest(kind="gmad", metrics=[MetricRecord(name=m.info.name, label=m.info.label,
                                                               calibrated=m.info.calibrated) for m in metrics],
                            settings=cfg.resume_settings(), items=writer.load(), notes=notes)
        path, _ = writer.finish(manifest)
    return GmadRun(manifest, path, skip_notes, scores)


def _notes(pool: Pool, metrics: Sequence[CompetitionMetric]) -> list[str]:
    notes = ["gMAD set (Ma et al., TPAMI 2020): pairs selected by the toolkit; the manifest holds no judgment",
             *pool.notes]
    if pool.synthetic:
        notes.append("the pool is SYNTHETIC (a replica or generated set)")
    notes += [f"{m.info.label}: UNCALIBRATED (not the published metric)" for m in metrics if not m.info.calibrated]
    return notes


__all__ = ["GmadConfig", "GmadRun", "run_gmad", "select_pairs", "score_pool", "Selection"]
