"""``run_loss_study``: data → one network per loss → cross-evaluation matrix and outputs."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .._device import pick_device
from ..losses import parse_loss_spec
from ..metrics import create_metric, list_metrics
from ..scores import bootstrap_ci
from .config import DEEP_PREFIXES, LossStudyConfig
from .convergence import convergence_lines
from .model import build_model, count_parameters
from .outputs import write_outputs
from .records import Curve, StudyMatrix
from .tasks import StudyData, degrade, grid_crops, load_images, random_patches, split_images
from .train import CheckpointCallback, build_loss, train_one
from .weights import check_backbones

INPUT_ROW = "(input, no network)"




@dataclass
class StudyResult:
    """What :func:`run_loss_study` returns: the matrix, its Markdown table and the files written."""

    matrix: StudyMatrix
    markdown: str
    paths: dict[str, Path]


def _nchw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2))).float()


def prepare_data(cfg: LossStudyConfig) -> StudyData:
    """Train patches and test crops (clean and degraded), all from seeded generators."""
    train_set, test_set = split_images(load_images(cfg.images), cfg.test_fraction, cfg.split_seed)
    def deg(clean: np.ndarray, stream: int) -> np.ndarray:
        return degrade(clean, cfg.task, sigma=cfg.sigma, blur_sigma=cfg.blur_sigma, jpeg_quality=cfg.jpeg_quality,
                       rng=np.random.default_rng([cfg.seed, stream]))

    clean = random_patches(train_set, cfg.train_patches, cfg.patch_size, np.random.default_rng([cfg.seed, 1]))
    noisy = deg(clean, 2)
    tclean, where = grid_crops(test_set, cfg.eval_crops, cfg.eval_size)
    tnoisy = deg(tclean, 3)
    return StudyData(_nchw(noisy), _nchw(clean.astype(np.float32) / 255.0), _nchw(tnoisy),
                     _nchw(tclean.astype(np.float32) / 255.0), where, train_set, test_set)


def quantize(x: torch.Tensor) -> torch.Tensor:
    """What a PNG keeps: clamp to [0, 1], round to 8 bits (float on [0, 1])."""
    return torch.round(x.clamp(0.0, 1.0) * 255.0) / 255.0


@torch.no_grad()
def restore(model: torch.nn.Module, x: torch.Tensor, device: torch.device, batch: int = 16) -> torch.Tensor:
    """``model``'s outputs for ``x`` in batches of ``batch`` on ``device``, quantised to 8 bits, on the CPU."""
    outs = [model(x[i:i + batch].to(device)).cpu() for i in range(0, x.shape[0], batch)]
    return quantize(torch.cat(outs))


class _Mean:
    """Mean over items, with the per-item hook :func:`bapps_toolkit.scores.bootstrap_ci` vectorises."""

    def __call__(self, values: Sequence[float] | np.ndarray) -> float:
        return float(np.mean(values))

    def per_item(self, values: Sequence[float] | np.ndarray) -> np.ndarray:
        return np.asarray(values, dtype=np.float64)


@torch.no_grad()
def per_image_values(metric: torch.nn.Module, out: torch.Tensor, target: torch.Tensor,
                     where: Sequence[tuple[str, int, int]], images: Sequence[str]) -> np.ndarray:
    """Metric per crop, then the mean over each test image's crops → ``[len(images)]``."""
    d = torch.cat([metric(out[i:i + 16], target[i:i + 16]).double() for i in range(0, out.shape[0], 16)]).numpy()
    names = np.array([w[0] for w in where])
    return np.array([d[names == n].mean() for n in images])


def _matrix(rows: dict[str, np.ndarray], cols: list[str], n_boot: int, seed: int) -> StudyMatrix:
    mean, lo, hi = [], [], []
    for values in rows.values():
        mean.append([float(v.mean()) for v in values])
        cis = [bootstrap_ci(_Mean(), v, n_boot=n_boot, seed=seed) for v in values]
        lo.append([c[0] for c in cis])
        hi.append([c[1] for c in cis])
    return {"rows": list(rows), "cols": cols, "mean": mean, "ci_low": lo, "ci_high": hi,
            "per_image": {r: {c: [float(x) for x in v[j]] for j, c in enumerate(cols)} for r, v in rows.items()}}


def check_names(cfg: LossStudyConfig) -> None:
    """Check that every loss specification parses and every evaluation metric is registered.

    Plugin and adapter specifications (``module:attr``, ``piq:NAME`` …) are resolved when used.

    Raises:
        ValueError: a loss specification does not parse or a metric is unknown.
    """
    for spec in cfg.losses:
        parse_loss_spec(spec)
    unknown = [m for m in cfg.eval_metrics if ":" not in m and m not in list_metrics()]
    if unknown:
        raise ValueError(f"eval_metrics: unknown metric(s) {unknown}; known: {', '.join(list_metrics())}")


def run_loss_study(cfg: LossStudyConfig, *, progress: bool = True,
                   on_checkpoint: CheckpointCallback | None = None) -> StudyResult:
    """Train the study network once per loss, cross-evaluate, and write the study's outputs.

    The network is trained once per loss in ``cfg.losses`` (resuming finished or partial losses from
    ``cfg.out_dir/checkpoints``); the study then evaluates each on the held-out images with every
    ``cfg.eval_metrics`` and writes the matrix (Markdown, LaTeX, CSV, JSON), the image grid and the
    unjudged 2AFC set. ``on_checkpoint(loss, step, finished)`` is called after each checkpoint.
    """
    cfg.validate()
    check_names(cfg)
    check_backbones(cfg)
    device = pick_device(cfg.device)
    data = prepare_data(cfg)
    metrics = {m: create_metric(m, input_range=(0.0, 1.0), **cfg.deep_options(m)).to(device).eval()
               for m in cfg.eval_metrics}
    labels = [metrics[m].label for m in cfg.eval_metrics]
    test_names = list(data.test_set.names)

    def evaluate(out: torch.Tensor) -> np.ndarray:
        return np.stack([per_image_values(metrics[m], out.to(device), data.test_out.to(device), data.test_where,
                                          test_names) for m in cfg.eval_metrics])

    rows: dict[str, np.ndarray] = {}
    outputs: dict[str, torch.Tensor] = {}
    histories: dict[str, Curve] = {}
    loss_labels: dict[str, str] = {}
    if cfg.task != "autoencode":
        rows[INPUT_ROW] = evaluate(quantize(data.test_in))
    for spec in cfg.losses:
        model, histories[spec] = train_one(spec, cfg, data.train_in, data.train_out, device,
                                           progress=progress, on_checkpoint=on_checkpoint)
        outputs[spec] = restore(model, data.test_in, device)
        label = build_loss(spec, cfg).label
        loss_labels[spec] = label
        rows[label] = evaluate(outputs[spec])
    matrix = _matrix(rows, labels, cfg.n_boot, cfg.seed)
    n_params = count_parameters(build_model(cfg.task, cfg.width, cfg.blocks, cfg.bottleneck, cfg.seed))
    matrix.update({
        "note": study_note(cfg, n_params, data),
        "task": cfg.task, "train_images": list(data.train_set.names), "test_images": test_names,
        "model_parameters": n_params, "config": cfg.to_dict(), "training_history": histories,
        "losses": loss_labels, "lower_is_better": True,
    })
    means = dict(zip(matrix["rows"], matrix["mean"], strict=True))
    matrix["convergence"] = [line.to_json() for line in convergence_lines(
        list(cfg.losses), loss_labels, list(cfg.eval_metrics), means, histories)]
    paths, markdown = write_outputs(cfg, matrix, data, outputs)
    return StudyResult(matrix, markdown, paths)


def study_note(cfg: LossStudyConfig, n_params: int, data: StudyData) -> str:
    """The note every study output carries: its size, that it is indicative only, random backbones."""
    deep = any(m.startswith(DEEP_PREFIXES) for m in cfg.eval_metrics) or any(
        t.startswith(DEEP_PREFIXES) for s in cfg.losses for t in s.replace("*", "+").split("+"))
    parts = [
        f"SMALL STUDY: numbers from a small network ({n_params:,} parameters) trained for {cfg.steps} steps "
        f"(batch {cfg.batch_size}) on {cfg.train_patches} patches of {cfg.patch_size} px from "
        f"{len(data.train_set.names)} images, evaluated on {data.test_out.shape[0]} crops of {cfg.eval_size} px "
        f"from {len(data.test_set.names)} held-out images; intervals: 95% bootstrap over test images "
        f"({cfg.n_boot} resamples). Indicative only, not a benchmark.",
        "Every column is a distance: lower is better.",
    ]
    if deep and "random" in cfg.backbone_choice().values():
        parts.append("LPIPS/PDL use RANDOM backbones here (no ImageNet weights): UNCALIBRATED, "
                     "not the published metrics.")
    return " ".join(parts)
