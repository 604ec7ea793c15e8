"""``train(config)``: the training loop of calibrated LPIPS metrics (lin / tune / scratch).

Zhang et al., "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric", CVPR
2018, §3.3: LPIPS distances ``d0 = d(ref, p0)``, ``d1 = d(ref, p1)`` feed the ranking network
G, trained with binary cross-entropy against the fraction of raters who preferred ``p1``.
Images enter the metric in [-1, 1].

Reproducibility and resume
--------------------------
Everything random is drawn from generators seeded by ``(seed, epoch, stream)``
(:func:`~bapps_toolkit.train.model.derive_seed`): the linear layers' and G's init, the shuffle of
each epoch (:func:`.stream.epoch_order`: ``torch.randperm`` on CPU when the full path's sets fit
the memory budget, else a windowed chunk shuffle) and the dropout masks of each epoch (on the training
device). So no RNG state has to be saved: a run resumed after epoch ``e`` restores the weights and
the Adam state of epoch ``e`` and continues exactly as an uninterrupted run; on CPU with
``deterministic=True`` the final weights are bit-identical (tested by killing a run with SIGKILL).

Phases of a run (:func:`_run`): the model (:func:`.build.build_model`), the data
(:func:`_data_phase`), the card and the out folder (:func:`_card_phase`), the epochs
(:func:`_one_epoch`, :func:`_record_epoch`) and the final broadcast (:func:`_finish`).
The run's inputs are chosen in :mod:`.data`, validation is in :mod:`.validate`, the run
folder's format in :mod:`.run_dir` and :mod:`.checkpoint`.

Hooks: ``train(config, on_step=f)`` calls ``f(epoch, step)`` after every optimizer step (the
fault-injection tests pause or slow a run with it).
"""
from __future__ import annotations

import functools
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from .._io import FileLock
from ..errors import BappsError, DataError
from . import checkpoint, distributed, meta, run_dir
from .build import build_model
from .config import TrainConfig, lr_for_epoch
from .data import FullData, backbone_source, calibration, is_synthetic, select_train_keys, select_val_keys
from .epoch import run_epoch
from .fastpath import TripletVectors, precompute
from .hinge import criterion
from .model import (
    STREAM_DROPOUT,
    RankingNet,
    TrainModule,
    derive_seed,
    make_generator,
)
from .records import EpochRow, ModelMeta, RunCard, RunRefusal, RunStart
from .stream import DataPlan, StreamedData, check_resume_plan, epoch_order, plan_data
from .validate import Validator, mean_score

#: ``on_step(epoch, step)``: called after every optimizer step (see :func:`train`).
StepHook = Callable[[int, int], None]


@dataclass
class TrainResult:
    """What :func:`train` returns: the run folder, its newest weights file and its card."""

    out_dir: Path
    checkpoint_path: Path
    card: RunCard
    #: False on the other ranks of a distributed run (only rank 0 reports).
    is_main: bool = True

    @property
    def calibrated(self) -> bool:
        """Whether the run card marks the result as calibrated."""
        return bool(self.card.get("calibrated"))


# ------------------------------------------------------------------------------------------
# helpers

def _say(ctx: distributed.DistContext, cfg: TrainConfig, msg: str, *, always: bool = False) -> None:
    if ctx.is_main and (cfg.progress or always):
        print(f"bapps train: {msg}", file=sys.stderr, flush=True)


@dataclass
class _Run:
    """What every phase of one run works with."""

    cfg: TrainConfig
    ctx: distributed.DistContext
    out: Path
    lpips: Any
    G: RankingNet
    module: TrainModule
    opt: torch.optim.Optimizer
    param_names: list[str]
    wrapped: torch.nn.Module
    calibrated: bool
    cal_note: str


@dataclass
class _Feed:
    """The training triplets of a run: cached vectors (fast path) or images (full path)."""

    vectors: TripletVectors | None
    data: FullData | StreamedData | None
    plan: DataPlan
    n_train: int
    counts: dict[str, int]
    judge: torch.Tensor
    precompute_seconds: float
    precompute_images: int
    val_vectors: TripletVectors | None


# ------------------------------------------------------------------------------------------
# the loop

def train(config: TrainConfig, *, on_step: StepHook | None = None) -> TrainResult:
    """Train an LPIPS metric from 2AFC judgments; see :class:`TrainConfig` for the options.

    Returns a :class:`TrainResult` whose ``checkpoint_path`` loads with
    :func:`~bapps_toolkit.train.load_metric_from_checkpoint`. Raises
    :class:`~bapps_toolkit.errors.BappsError` subclasses (or ``ValueError``) on bad input,
    before anything is written.

    ``on_step(epoch, step)``, when given, is called on every rank after each optimizer step
    (``step`` counts from 1 within the epoch) — a place to watch or slow down a run.
    """
    cfg = config.validated()
    ctx = distributed.setup(cfg.device)
    if cfg.bf16 and ctx.device.type != "cuda":
        distributed.teardown(ctx, sync=False)
        raise ValueError("bf16: bfloat16 autocast is only offered on CUDA devices; drop bf16=True on CPU")
    prev_det = torch.are_deterministic_algorithms_enabled()
    lock: FileLock | None = None
    try:
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True)
        # --- checks on rank 0, outcome shared so every rank stops together -------------------
        found, refusal = _check_start(cfg) if ctx.is_main else (None, None)
        outcome: RunStart | RunRefusal | None = None
        if found is not None:
            outcome, lock = found
        elif refusal is not None:
            outcome = RunRefusal(type(refusal).__name__, str(refusal))
        shared = distributed.broadcast_object(ctx, outcome)
        if isinstance(shared, RunRefusal):
            if refusal is not None:
                raise refusal
            raise BappsError(f"rank {ctx.rank}: rank 0 stopped: {shared.message}")
        return _run(cfg, ctx, shared, on_step)
    finally:
        if lock is not None:
            lock.release()
        if cfg.deterministic:
            torch.use_deterministic_algorithms(prev_det)
        distributed.teardown(ctx, sync=sys.exc_info()[1] is None)


def _check_start(cfg: TrainConfig) -> tuple[tuple[RunStart, FileLock] | None, Exception | None]:
    """Rank 0's checks before a run: the data, the out folder (locked) and the resumed card.

    Returns:
        ``((what was found, the held lock), None)``, or ``(None, the error)`` to stop every rank.
    """
    lock: FileLock | None = None
    try:
        keys = select_train_keys(cfg)
        lock = FileLock(Path(cfg.out), "training run")
        lock.acquire()
        card, done = run_dir.prepare_out(cfg)
        val_keys = select_val_keys(cfg) if cfg.val_every_epoch else []
        plan = plan_data(str(cfg.data), keys, cfg.memory_budget_mb, fast=bool(cfg.fast))
        check_resume_plan(card, plan, str(cfg.out))
        start = RunStart(keys=keys, card=card, done=done, val_keys=val_keys, synthetic=is_synthetic(cfg, keys),
                         backbone=backbone_source(cfg), plan=plan)
        return (start, lock), None
    except (BappsError, ValueError, FileNotFoundError) as exc:
        if lock is not None:
            lock.release()
        return None, exc


def _run(cfg: TrainConfig, ctx: distributed.DistContext, start: RunStart, on_step: StepHook | None) -> TrainResult:
    out = Path(cfg.out)
    resume_card = start.card
    done = start.done
    if resume_card is not None and done >= cfg.total_epochs:
        _say(ctx, cfg, f"{out}: the run already finished all {cfg.total_epochs} epochs; nothing to resume",
             always=True)
        return TrainResult(out_dir=out, checkpoint_path=checkpoint.weights_path(out, checkpoint.LATEST),
                           card=resume_card, is_main=ctx.is_main)
    lpips, G, module, opt, param_names = build_model(cfg, ctx, start.backbone, resume_card is not None, done)
    calibrated, cal_note = calibration(start.synthetic, start.backbone, lpips)
    run = _Run(cfg, ctx, out, lpips, G, module, opt, param_names, distributed.wrap(module, ctx), calibrated, cal_note)
    feed = _data_phase(run, start.keys, start.val_keys, start.plan)
    try:
        validator = Validator(module, cfg, start.val_keys, feed.val_vectors, ctx.device, ctx.is_main)
        card = _card_phase(run, start, feed, validator)
        model_meta = meta.model_meta(cfg, lpips, start.backbone, calibrated, cal_note)
        history: list[EpochRow] = list(card.get("history", []))
        for epoch in range(done + 1, cfg.total_epochs + 1):
            row = _one_epoch(run, feed, epoch, on_step)
            if ctx.is_main:
                _record_epoch(run, card, history, row, validator, model_meta)
            distributed.barrier(ctx)
    finally:
        if isinstance(feed.data, StreamedData):
            feed.data.close()
    return _finish(run, card, history)


def _data_phase(run: _Run, keys: list[str], val_keys: list[str], plan: DataPlan) -> _Feed:
    """The training (and validation) data: cached vectors on the fast path, else the images.

    The images are held whole or streamed as ``plan`` says (:mod:`.stream`).
    """
    cfg, ctx = run.cfg, run.ctx
    val_vecs = None
    if cfg.fast:
        _say(ctx, cfg, f"precomputing fast-path features of {', '.join(keys)} on {ctx.device} …")
        vecs = _precompute(run, keys, "train features")
        feed = _Feed(vectors=vecs, data=None, plan=plan, n_train=len(vecs), counts=dict(vecs.counts),
                     judge=vecs.judge, precompute_seconds=vecs.seconds, precompute_images=vecs.images,
                     val_vectors=None)
    else:
        data: FullData | StreamedData = (FullData(cfg, keys, ctx.device) if plan.mode == "exact"
                                         else StreamedData(str(cfg.data), keys, plan, ctx.device))
        feed = _Feed(vectors=None, data=data, plan=plan, n_train=len(data), counts=dict(data.counts),
                     judge=data.judge, precompute_seconds=0.0, precompute_images=0, val_vectors=None)
    if feed.n_train == 0:
        raise DataError(f"no training data found in {cfg.data}: the selected sets ({', '.join(keys)}) are empty")
    if val_keys and cfg.fast:
        val_vecs = _precompute(run, val_keys, "val features")
    feed.val_vectors = val_vecs
    return feed


def _card_phase(run: _Run, start: RunStart, feed: _Feed, validator: Validator) -> RunCard:
    """The run card (new or resumed), the out folder made ready and the card written (rank 0)."""
    cfg, ctx, out = run.cfg, run.ctx, run.out
    label = f"{run_dir.run_label(cfg)} {cfg.variant}"
    if not run.calibrated:
        label += f" [UNCALIBRATED: {run.cal_note}]"
        if ctx.is_main:
            warnings.warn(f"bapps train: {label}: the trained metric is not a calibrated LPIPS", UserWarning,
                          stacklevel=4)
    card = run_dir.start_card(start.card, start.done, cfg, start.keys, feed.counts, start.synthetic,
                              start.backbone, run.calibrated, run.cal_note, start.val_keys)
    card.update({"device": str(ctx.device), "world_size": ctx.world, "bf16": cfg.bf16,
                 "precompute": ({"seconds": round(feed.precompute_seconds, 3), "images": feed.precompute_images}
                                if cfg.fast else None),
                 "shuffle": feed.plan.card()})
    if ctx.is_main:
        run_dir.open_out(out, cfg, run.lpips, start.backbone, run.module.train_backbone)
        if start.val_keys and "initial_val" not in card:
            initial = validator.initial()
            card["initial_val"] = initial["initial_val"]
            if "baseline_val" in initial:
                card["baseline_val"] = initial["baseline_val"]
        checkpoint.write_json(out / checkpoint.CARD, card)
        counts = ", ".join(f"{k} {v}" for k, v in feed.counts.items())
        _say(ctx, cfg, f"{label}: {feed.n_train} triplets ({counts}), "
                       f"{'fast cached-feature path' if cfg.fast else feed.plan.describe()}, device {ctx.device}"
                       f"{f' x{ctx.world} ranks' if ctx.distributed else ''}; "
                       f"epochs {start.done + 1}..{cfg.total_epochs}",
             always=True)
        if not run.calibrated:
            _say(ctx, cfg, f"UNCALIBRATED: {run.cal_note}", always=True)
    distributed.barrier(ctx)
    return card


def _one_epoch(run: _Run, feed: _Feed, epoch: int, on_step: StepHook | None) -> EpochRow:
    """Train one epoch (its lr, shuffle and dropout stream); the row of its statistics."""
    cfg, ctx, dev = run.cfg, run.ctx, run.ctx.device
    lr = lr_for_epoch(epoch, cfg.lr, cfg.epochs, cfg.decay_epochs)
    for g in run.opt.param_groups:
        g["lr"] = lr
    perm, windows = epoch_order(feed.plan, cfg.seed, epoch)
    if isinstance(feed.data, StreamedData):
        feed.data.start_epoch(windows)
    drop_gen = make_generator(derive_seed(cfg.seed, epoch, STREAM_DROPOUT), dev) if cfg.dropout > 0 else None
    bar = None
    if cfg.progress and ctx.is_main:
        bar = tqdm(total=feed.n_train, desc=f"epoch {epoch}/{cfg.total_epochs}", unit="triplet", leave=False)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    t0 = time.perf_counter()
    loss_sum, acc_sum = run_epoch(
        run.wrapped, run.opt, run.lpips.lins, perm=perm.to(dev), judge=feed.judge, batch_size=cfg.batch_size,
        dropout=cfg.dropout, drop_gen=drop_gen, ctx=ctx, vecs=feed.vectors, data=feed.data, bar=bar,
        hook=functools.partial(on_step, epoch) if on_step is not None else None,
        loss_fn=criterion(cfg.loss, cfg.margin),
    )
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - t0
    if isinstance(feed.data, StreamedData):
        feed.data.end_epoch()
    if bar is not None:
        bar.close()
    stats = distributed.all_reduce_sum(ctx, torch.stack([loss_sum, acc_sum]))
    n = feed.n_train
    return {
        "epoch": epoch, "lr": lr,
        "loss": float(stats[0]) / n, "train_2afc": float(stats[1]) / n,
        "seconds": round(seconds, 4), "items_per_s": round(n / max(seconds, 1e-9), 1),
        "val_2afc": None,
    }


def _record_epoch(run: _Run, card: RunCard, history: list[EpochRow], row: EpochRow,
                  validator: Validator, model_meta: ModelMeta) -> None:
    """Rank 0 after an epoch: validation, the epoch's files, the log and the card."""
    cfg, out, epoch = run.cfg, run.out, row["epoch"]
    vs = validator.scores()
    if vs:
        row["val_2afc"] = mean_score(vs)
        row["val"] = vs
    lpips = run.lpips
    row["files"] = checkpoint.save_epoch(
        out, epoch,
        model=checkpoint.model_tensors(lpips.lins, run.G, lpips.backbone if model_meta.backbone_in_file else None),
        meta=model_meta.to_metadata(),
        optim=checkpoint.optimizer_tensors(run.opt, run.param_names),
        lin_weights=[lin.weight.detach() for lin in lpips.lins],
    )
    history.append(row)
    card["history"] = history
    card["epochs_done"] = epoch
    card["finished"] = epoch == cfg.total_epochs
    card["calibrated"] = run.calibrated
    run_dir.write_log(out, history)
    checkpoint.write_json(out / checkpoint.CARD, card)
    msg = (f"epoch {epoch}/{cfg.total_epochs}: lr {row['lr']:.3g} loss {row['loss']:.4f} "
           f"train 2AFC {100 * row['train_2afc']:.2f}% ({row['items_per_s']:.0f} triplets/s)")
    if row["val_2afc"] is not None:
        msg += f", val 2AFC {100 * row['val_2afc']:.2f}%"
    _say(run.ctx, cfg, msg + (" [UNCALIBRATED]" if not run.calibrated else ""))


def _finish(run: _Run, card: RunCard, history: list[EpochRow]) -> TrainResult:
    """The final card on rank 0, broadcast to every rank; the closing line."""
    cfg, ctx, out = run.cfg, run.ctx, run.out
    if ctx.is_main and not card.get("finished"):
        # e.g. resume of an already-finished schedule: nothing left to train
        card["finished"] = card.get("epochs_done", 0) == cfg.total_epochs
        checkpoint.write_json(out / checkpoint.CARD, card)
    card = distributed.broadcast_object(ctx, card if ctx.is_main else None)
    if ctx.is_main:
        final_val = history[-1]["val_2afc"] if history else None
        tail = "" if final_val is None else f" (val 2AFC {100 * final_val:.2f}%)"
        if not run.calibrated:
            tail += f" [UNCALIBRATED: {run.cal_note}]"
        _say(ctx, cfg, f"done: {out / 'latest.safetensors'}{tail}", always=True)
    return TrainResult(out_dir=out, checkpoint_path=checkpoint.weights_path(out, checkpoint.LATEST), card=card,
                       is_main=ctx.is_main)


def _precompute(run: _Run, keys: list[str], desc: str) -> TripletVectors:
    cfg = run.cfg
    return precompute(run.lpips, str(cfg.data), keys, ctx=run.ctx, batch=cfg.precompute_batch, bf16=cfg.bf16,
                      progress=cfg.progress, desc=desc)


__all__ = ["train", "TrainResult", "run_epoch", "StepHook"]
