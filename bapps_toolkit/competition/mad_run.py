"""``run_mad``: a MAD competition between two metrics, written as an unjudged 2AFC set.

For each reference ``i`` (:mod:`.sources`) and its start image, two items (stems ``2i`` and
``2i + 1``, six digits):

* ``2i``: metric A held at its start value, B pushed to its minimum and to its maximum;
* ``2i + 1``: B held, A pushed.

Each item's two synthesised images (:func:`.mad.push`, the minimum and the maximum run batched
together) are rounded to 8 bits: of :data:`ROUNDINGS` seeded stochastic roundings (see
:func:`.output.to_uint8`) the one whose held value is closest to the start value is kept. Every
figure of the manifest is measured on the rounded images, which people will see: both metrics'
distances to the reference, the held metric's relative drift from its start value, the
iterations and whether each image converged. Which of
the two images becomes ``p0`` is drawn per item from ``SeedSequence([seed, stem])`` (the
judging app also swaps left and right per rater). Items are written as they finish
(:class:`.output.SetWriter`): a rerun with the same settings resumes.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._device import pick_device
from ..data.layout import valid_category
from ..errors import UsageError
from .mad import MadSettings, push
from .metricspec import CompetitionMetric, build_metrics
from .output import SetWriter, to_uint8
from .records import CompetitionItem, Manifest, MetricRecord
from .sources import Reference, load_references, noise_start, user_starts


@dataclass(frozen=True)
class MadConfig:
    """What :func:`run_mad` does (the ``bapps mad`` options).

    Args:
        metric_a, metric_b: the two metrics (any name :func:`~bapps_toolkit.metrics.create_metric` takes).
        out: the output folder.
        references: a folder of reference images; None: the mini set's photos.
        start: a folder of the user's distorted start images (stems of the references); None:
            white noise of ``noise_mse``.
        noise_mse: MSE of the start noise on the [0, 255] scale.
        size: side of the square images.
        max_steps, step, held_tolerance: the iteration (:class:`.mad.MadSettings`).
        seed: seed of the noise and of the sides.
        device: torch device (default: CUDA when present, else the CPU).
        batch_size: references synthesised together.
        limit: use only the first ``limit`` references.
        backbone_weights: ``["alex=random", ...]`` (random = UNCALIBRATED).
        metric_options: factory options per metric name.
        category: the set's category (default ``mad-<A>-<B>`` made safe).
        grid: write the grid figure (:func:`.figures.mad_grid`) to this PNG.
    """

    metric_a: str
    metric_b: str
    out: str
    references: str | None = None
    start: str | None = None
    noise_mse: float = 256.0
    size: int = 128
    max_steps: int = 200
    step: float = 0.1
    held_tolerance: float = 1e-3
    seed: int = 0
    device: str | None = None
    batch_size: int = 4
    limit: int | None = None
    backbone_weights: tuple[str, ...] = ()
    metric_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    category: str | None = None
    grid: str | None = None

    @property
    def key(self) -> str:
        """The 2AFC set key the competition writes (``2afc/val/<category>``).

        Raises:
            ValueError: when the category is not a valid folder name.
        """
        cat = self.category or default_category("mad", [self.metric_a, self.metric_b])
        if not valid_category(cat):
            raise UsageError(f"category {cat!r}: use 1-64 of A-Z a-z 0-9 _ -, starting with a letter or digit")
        return f"2afc/val/{cat}"

    def resume_settings(self) -> dict[str, Any]:
        """The settings a resumed run must share (not the device, batch size or limit)."""
        keep = ("metric_a", "metric_b", "references", "start", "noise_mse", "size", "max_steps", "step",
                "held_tolerance", "seed", "backbone_weights", "metric_options")
        d = asdict(self)
        return {k: (list(d[k]) if isinstance(d[k], tuple) else d[k]) for k in keep} | {"key": self.key}


def default_category(prefix: str, names: Sequence[str]) -> str:
    """``prefix-<names>`` with every unsafe character replaced by ``_``, at most 64 characters."""
    text = "-".join([prefix, *names])
    safe = "".join(c if c.isalnum() or c in "_-" else "_" for c in text)
    return safe[:64]


@dataclass
class MadRun:
    """What :func:`run_mad` did: the manifest written, its path, the items made now, seconds."""

    manifest: Manifest
    manifest_path: Path
    made: int
    seconds: float
    seconds_per_item: float


def _to_tensor(arrs: Sequence[np.ndarray], device: torch.device) -> torch.Tensor:
    x = torch.from_numpy(np.stack(arrs)).to(device=device, dtype=torch.float32)
    return x.permute(0, 3, 1, 2).contiguous() / 255.0


def _values(m: CompetitionMetric, ref: torch.Tensor, imgs: Sequence[np.ndarray]) -> np.ndarray:
    with torch.no_grad():
        return m(ref, _to_tensor(imgs, ref.device), validate=True).double().cpu().numpy()


#: Stochastic roundings tried per synthesised image; the one closest to the held value is kept.
ROUNDINGS = 8


def _rounded(x: torch.Tensor, ref: torch.Tensor, held: CompetitionMetric, h0: float,
             rng: np.random.Generator) -> np.ndarray:
    """The 8-bit image among :data:`ROUNDINGS` stochastic roundings of ``x`` whose held value is closest to ``h0``.

    It takes one batched forward pass of the held metric.
    """
    cands = [to_uint8(x, rng) for _ in range(ROUNDINGS)]
    h = _values(held, ref.expand(ROUNDINGS, -1, -1, -1), cands)
    return cands[int(np.argmin(np.abs(h - h0)))]


def _half(cfg: MadConfig, held: CompetitionMetric, pushed: CompetitionMetric, refs: list[Reference],
          starts: list[np.ndarray], idx: list[int], stems: list[str], device: torch.device,
          ) -> list[tuple[CompetitionItem, dict[str, np.ndarray]]]:
    """Synthesise one half (``held`` fixed, ``pushed`` to min and max) for the references ``idx``."""
    n = len(idx)
    ref = _to_tensor([refs[i].pixels for i in idx] * 2, device)
    start = _to_tensor([starts[i] for i in idx] * 2, device)
    sign = torch.tensor([-1.0] * n + [1.0] * n, device=device)
    res = push(held, pushed, ref, start, sign, MadSettings(cfg.max_steps, cfg.step, cfg.held_tolerance))
    out = []
    for j, i in enumerate(idx):
        rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, int(stems[j])]))
        swap = bool(rng.integers(2))
        r1 = ref[j:j + 1]
        h0 = float(res.held_start[j])
        lo, hi = (_rounded(res.images[k], r1, held, h0, rng) for k in (j, n + j))
        p0, p1 = (hi, lo) if swap else (lo, hi)
        order = (n + j, j) if swap else (j, n + j)
        h = _values(held, torch.cat([r1, r1]), [p0, p1])
        p = _values(pushed, torch.cat([r1, r1]), [p0, p1])
        drift = tuple((v - h0) / abs(h0) if h0 != 0 else math.inf for v in h)
        item = CompetitionItem(
            key=cfg.key, stem=stems[j], kind="mad", source=refs[i].name, held=held.name, pushed=pushed.name,
            values={held.name: (float(h[0]), float(h[1])), pushed.name: (float(p[0]), float(p[1]))},
            held_start=h0, held_drift=(float(drift[0]), float(drift[1])), tolerance=cfg.held_tolerance,
            steps=tuple(int(res.steps[k]) for k in order), converged=tuple(bool(res.converged[k]) for k in order))
        out.append((item, {"ref": refs[i].pixels, "p0": p0, "p1": p1}))
    return out


def _metric_records(metrics: Sequence[CompetitionMetric]) -> list[MetricRecord]:
    return [MetricRecord(name=m.info.name, label=m.info.label, calibrated=m.info.calibrated) for m in metrics]


def _notes(cfg: MadConfig, metrics: Sequence[CompetitionMetric]) -> list[str]:
    notes = ["MAD set: the images were synthesised by the toolkit (Wang & Simoncelli 2008); the manifest holds "
             "no judgment"]
    notes += [f"{m.info.label}: UNCALIBRATED (not the published metric)" for m in metrics if not m.info.calibrated]
    if cfg.references is None:
        notes.append("references: the scikit-image photos of the mini set")
    return notes


def _starts(cfg: MadConfig, refs: list[Reference]) -> list[np.ndarray]:
    if cfg.start is not None:
        return user_starts(cfg.start, refs, cfg.size)
    return [noise_start(r.pixels, cfg.noise_mse, cfg.seed, i) for i, r in enumerate(refs)]


def run_mad(cfg: MadConfig, *, progress: Callable[[str], None] | None = None) -> MadRun:
    """Run a MAD competition (see the module docstring); returns what was written.

    Example:
        >>> run = run_mad(MadConfig("l2", "ssim", out="mad-l2-ssim", limit=4))   # doctest: +SKIP
        >>> run.manifest_path                                                     # doctest: +SKIP

    Raises:
        ValueError / DataError: a bad metric, option, folder or image (the message names it);
            a resume with other settings.
    """
    if cfg.metric_a == cfg.metric_b:
        raise UsageError("a MAD competition needs two different metrics")
    if cfg.batch_size < 1:
        raise UsageError(f"batch_size must be >= 1, got {cfg.batch_size}")
    device = pick_device(cfg.device)
    a, b = (m.to(device) for m in build_metrics([cfg.metric_a, cfg.metric_b], backbone_weights=cfg.backbone_weights,
                                                options=cfg.metric_options))
    refs = load_references(cfg.references, cfg.size, cfg.limit)
    starts = _starts(cfg, refs)
    writer = SetWriter(cfg.out, cfg.key, cfg.resume_settings())
    made, t0 = 0, time.perf_counter()
    with writer.open():
        done = writer.finished()
        for i, s in enumerate(starts):
            writer.write_start(f"{2 * i:06d}", s)
        for half, (held, pushed) in enumerate(((a, b), (b, a))):
            todo = [i for i in range(len(refs)) if f"{2 * i + half:06d}" not in done]
            for k in range(0, len(todo), cfg.batch_size):
                idx = todo[k:k + cfg.batch_size]
                for item, images in _half(cfg, held, pushed, refs, starts, idx,
                                          [f"{2 * i + half:06d}" for i in idx], device):
                    writer.write_item(item, images)
                    made += 1
                if progress is not None:
                    progress(f"{held.name} held, {pushed.name} pushed: {min(k + len(idx), len(todo))}/{len(todo)}")
        items = writer.load()
        manifest = Manifest(kind="mad", metrics=_metric_records([a, b]), settings=cfg.resume_settings(),
                            items=items, notes=_notes(cfg, [a, b]))
        path, _ = writer.finish(manifest)
    seconds = time.perf_counter() - t0
    if cfg.grid is not None:
        from .figures import mad_grid

        mad_grid(cfg.out, manifest, cfg.grid)
    return MadRun(manifest, path, made, seconds, seconds / made if made else math.nan)


__all__ = ["MadConfig", "MadRun", "run_mad", "default_category"]
