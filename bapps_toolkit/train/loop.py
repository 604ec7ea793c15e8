"""``train(config)``: the training loop of calibrated LPIPS metrics (lin / tune / scratch).

Zhang et al., "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric", CVPR
2018, §3.3: LPIPS distances ``d0 = d(ref, p0)``, ``d1 = d(ref, p1)`` feed the ranking network
G, trained with binary cross-entropy against the fraction of raters who preferred ``p1``.
Images enter the metric in [-1, 1].

Reproducibility and resume
--------------------------
Everything random is drawn from generators seeded by ``(seed, epoch, stream)``
(:func:`~bapps_toolkit.train.model.derive_seed`): the linear layers' and G's init, the shuffle of
each epoch (``torch.randperm`` on CPU) and the dropout masks of each epoch (on the training
device). So no RNG state has to be saved: a run resumed after epoch ``e`` restores the weights and
the Adam state of epoch ``e`` and continues exactly as an uninterrupted run; on CPU with
``deterministic=True`` the final weights are bit-identical (tested by killing a run with SIGKILL).

Hooks: ``train(config, on_step=f)`` calls ``f(epoch, step)`` after every optimizer step (the
fault-injection tests pause or slow a run with it).
"""
from __future__ import annotations

import functools
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._io import FileLock
from ..errors import BappsError, DataError
from . import checkpoint as ck
from . import distributed as dd
from . import run_dir as rd
from .config import TrainConfig, lr_for_epoch
from .model import (
    STREAM_BACKBONE,
    STREAM_DROPOUT,
    STREAM_INIT,
    STREAM_SHUFFLE,
    MaskSource,
    RankingNet,
    TrainModule,
    bce_sum,
    build_lpips,
    clamp_linear_,
    derive_seed,
    init_linear_,
    init_ranking_net_,
    make_generator,
    train_accuracy,
)

#: ``on_step(epoch, step)``: called after every optimizer step (see :func:`train`).
StepHook = Callable[[int, int], None]


@dataclass
class TrainResult:
    """What :func:`train` returns: the run folder, its newest weights file and its card."""

    out_dir: Path
    checkpoint_path: Path
    card: dict[str, Any]
    #: False on the other ranks of a distributed run (only rank 0 reports).
    is_main: bool = True

    @property
    def calibrated(self) -> bool:
        return bool(self.card.get("calibrated"))


# ------------------------------------------------------------------------------------------
# helpers

def _say(ctx: dd.DistContext, cfg: TrainConfig, msg: str, *, always: bool = False) -> None:
    if ctx.is_main and (cfg.progress or always):
        print(f"bapps train: {msg}", file=sys.stderr, flush=True)


def _score_2afc(d0: np.ndarray, d1: np.ndarray, judge: np.ndarray) -> float:
    from ..scores import score_2afc

    return float(score_2afc(d0, d1, judge))


def _legacy_env_on_step() -> StepHook | None:
    """``BAPPS_TRAIN_TEST_PAUSE="EPOCH:STEP:MARKER"`` as an ``on_step`` hook.

    Kept only until tests/reliability/test_concurrency.py (the last user) injects ``on_step``
    itself; delete it then. Used only when the caller passes no ``on_step``."""
    spec = os.environ.get("BAPPS_TRAIN_TEST_PAUSE", "")
    if not spec:
        return None
    e, s, marker = spec.split(":", 2)

    def pause(epoch: int, step: int) -> None:
        if (epoch, step) == (int(e), int(s)):
            Path(marker).write_text(str(os.getpid()))
            while True:
                time.sleep(0.05)

    return pause


def _select_train_keys(cfg: TrainConfig) -> list[str]:
    from ..data import find_sets

    data = Path(cfg.data)
    if not data.exists():
        raise DataError(f"training data {data} does not exist (give a BAPPS folder root or a packed .h5)")
    try:
        present = find_sets(str(data))
    except DataError as exc:
        raise DataError(f"no training data found in {data}: {exc}") from None
    twoafc = [k for k in present if k.startswith("2afc/")]
    if cfg.datasets is None:
        keys = [k for k in twoafc if k.startswith("2afc/train/")]
        if not keys:
            raise DataError(
                f"no training data found in {data}: no 2afc/train/* sets "
                f"(present: {', '.join(present) or 'none'}); download twoafc_train or pass datasets="
            )
        return keys
    from ..data.layout import expand_datasets

    return list(expand_datasets(cfg.datasets, present, "2afc", where=str(data)))


def _select_val_keys(cfg: TrainConfig) -> list[str]:
    from ..data import find_sets
    from ..data.layout import expand_datasets

    present = find_sets(cfg.data)
    if cfg.val_datasets is not None:
        return list(expand_datasets(cfg.val_datasets, present, "2afc", where=str(cfg.data)))
    keys = [k for k in present if k.startswith("2afc/val/")]
    if not keys:
        raise DataError(f"val_every_epoch=True: no 2afc/val/* sets in {cfg.data} to validate on "
                        f"(present: {', '.join(present)})")
    return keys


def _is_synthetic(cfg: TrainConfig, keys: Sequence[str]) -> bool:
    from ..data import iter_2afc_chunks

    for part in iter_2afc_chunks(cfg.data, keys[0], 1):
        return bool(part.synthetic)
    return False


def _backbone_source(cfg: TrainConfig) -> dict[str, Any]:
    from .._io import sha256_file

    if cfg.variant == "scratch":
        return {"source": "random", "seed": derive_seed(cfg.seed, STREAM_BACKBONE) % (2 ** 31),
                "started_from_scratch": True, "trained": True}
    if cfg.backbone_weights == "random":
        return {"source": "random", "seed": derive_seed(cfg.seed, STREAM_BACKBONE) % (2 ** 31),
                "started_from_scratch": False, "trained": cfg.variant != "lin"}
    if cfg.backbone_weights is None:
        return {"source": "torchvision ImageNet weights (torch hub cache)", "started_from_scratch": False,
                "trained": cfg.variant != "lin"}
    p = Path(cfg.backbone_weights)
    if not p.is_file():
        raise BappsError(f"backbone_weights: {p} does not exist or is not a file")
    return {"source": str(p), "sha256": sha256_file(p), "started_from_scratch": False,
            "trained": cfg.variant != "lin"}


def _calibration(cfg: TrainConfig, synthetic: bool, bsrc: dict[str, Any]) -> tuple[bool, str]:
    notes = []
    if synthetic:
        notes.append("trained on SYNTHETIC data, not human judgments")
    if bsrc["source"] == "random" and not bsrc["started_from_scratch"]:
        notes.append("random backbone")
    return (not notes), "; ".join(notes)


def _lin_weights_list(lins) -> list[torch.Tensor]:
    return [lin.weight.detach() for lin in lins]


# ------------------------------------------------------------------------------------------
# validation

@torch.no_grad()
def _val_scores_fast(module: TrainModule, vecs, w: torch.Tensor | None = None) -> dict[str, float]:
    w = module.lin_vector().detach() if w is None else w
    d0 = (vecs.v0 @ w).cpu().numpy()
    d1 = (vecs.v1 @ w).cpu().numpy()
    j = vecs.judge.cpu().numpy()
    return {k: _score_2afc(d0[a:b], d1[a:b], j[a:b]) for k, (a, b) in vecs.offsets().items()}


@torch.no_grad()
def _val_scores_full(module: TrainModule, cfg: TrainConfig, keys: Sequence[str], device) -> dict[str, float]:
    from ..data import iter_2afc_chunks, to_model_input

    was = module.training
    module.eval()
    out = {}
    for key in keys:
        d0s, d1s, js = [], [], []
        for part in iter_2afc_chunks(cfg.data, key, cfg.val_batch):
            ref = to_model_input(part.ref, device=device)
            p0 = to_model_input(part.p0, device=device)
            p1 = to_model_input(part.p1, device=device)
            d0, d1, _ = module.forward_full(ref, p0, p1, None)
            d0s.append(d0.cpu())
            d1s.append(d1.cpu())
            js.append(torch.as_tensor(part.judge).reshape(-1))
        out[key] = _score_2afc(torch.cat(d0s).numpy(), torch.cat(d1s).numpy(), torch.cat(js).numpy())
    module.train(was)
    return out


def _mean(scores: dict[str, float]) -> float | None:
    return float(np.mean(list(scores.values()))) if scores else None


# ------------------------------------------------------------------------------------------
# full-path data

class _FullData:
    """Training triplets held whole (uint8), indexed per batch."""

    def __init__(self, cfg: TrainConfig, keys: Sequence[str], device: torch.device):
        from ..data import load_2afc

        dev = device if device.type == "cuda" else None
        sets = load_2afc(cfg.data, list(keys), device=dev, progress=cfg.progress)
        self.counts = {s.key: len(s) for s in sets}
        if dev is None:
            self.ref = torch.from_numpy(np.concatenate([np.asarray(s.ref) for s in sets]))
            self.p0 = torch.from_numpy(np.concatenate([np.asarray(s.p0) for s in sets]))
            self.p1 = torch.from_numpy(np.concatenate([np.asarray(s.p1) for s in sets]))
            self.judge = torch.from_numpy(np.concatenate([np.asarray(s.judge, dtype=np.float32) for s in sets]))
        else:
            self.ref = torch.cat([s.ref for s in sets])
            self.p0 = torch.cat([s.p0 for s in sets])
            self.p1 = torch.cat([s.p1 for s in sets])
            self.judge = torch.cat([torch.as_tensor(s.judge, dtype=torch.float32) for s in sets])
        self.judge = self.judge.reshape(-1).to(device)
        self.device = device

    def __len__(self) -> int:
        return int(self.judge.shape[0])

    def batch(self, idx: torch.Tensor):
        from ..data import to_model_input

        ii = idx.to(self.ref.device)
        return (to_model_input(self.ref[ii], device=self.device), to_model_input(self.p0[ii], device=self.device),
                to_model_input(self.p1[ii], device=self.device))


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
    on_step = on_step if on_step is not None else _legacy_env_on_step()
    ctx = dd.setup(cfg.device)
    if cfg.bf16 and ctx.device.type != "cuda":
        dd.teardown(ctx, sync=False)
        raise ValueError("bf16: bfloat16 autocast is only offered on CUDA devices; drop bf16=True on CPU")
    prev_det = torch.are_deterministic_algorithms_enabled()
    lock: FileLock | None = None
    try:
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True)
        # --- checks on rank 0, outcome shared so every rank stops together -------------------
        status: dict[str, Any] = {}
        if ctx.is_main:
            try:
                keys = _select_train_keys(cfg)
                lock = FileLock(Path(cfg.out), "training run")
                lock.acquire()
                card, done = rd.prepare_out(cfg)
                val_keys = _select_val_keys(cfg) if cfg.val_every_epoch else []
                status = {"ok": True, "keys": keys, "card": card, "done": done, "val_keys": val_keys,
                          "synthetic": _is_synthetic(cfg, keys), "bsrc": _backbone_source(cfg)}
            except (BappsError, ValueError, FileNotFoundError) as exc:
                status = {"ok": False, "type": type(exc).__name__, "msg": str(exc), "exc": exc}
        shared = dd.broadcast_object(ctx, {k: v for k, v in status.items() if k != "exc"})
        if not shared["ok"]:
            if ctx.is_main:
                raise status["exc"]
            raise BappsError(f"rank {ctx.rank}: rank 0 stopped: {shared['msg']}")
        return _run(cfg, ctx, shared, on_step)
    finally:
        if lock is not None:
            lock.release()
        if cfg.deterministic:
            torch.use_deterministic_algorithms(prev_det)
        dd.teardown(ctx, sync=sys.exc_info()[1] is None)


def _run(cfg: TrainConfig, ctx: dd.DistContext, st: dict[str, Any], on_step: StepHook | None) -> TrainResult:
    out = Path(cfg.out)
    keys: list[str] = st["keys"]
    val_keys: list[str] = st["val_keys"]
    bsrc: dict[str, Any] = st["bsrc"]
    synthetic: bool = st["synthetic"]
    resume_card: dict[str, Any] | None = st["card"]
    done: int = st["done"]
    dev = ctx.device
    calibrated, cal_note = _calibration(cfg, synthetic, bsrc)
    if resume_card is not None and done >= cfg.total_epochs:
        _say(ctx, cfg, f"{out}: the run already finished all {cfg.total_epochs} epochs; nothing to resume",
             always=True)
        return TrainResult(out_dir=out, checkpoint_path=ck.weights_path(out, ck.LATEST), card=resume_card,
                           is_main=ctx.is_main)

    lpips, G, module, opt, param_names = _build_model(cfg, ctx, bsrc, resume_card is not None, done)
    train_backbone = module.train_backbone
    wrapped = dd.wrap(module, ctx)

    # --- data ---------------------------------------------------------------------------------
    if cfg.fast:
        _say(ctx, cfg, f"precomputing fast-path features of {', '.join(keys)} on {dev} …")
        data = None
        vecs = _precompute(lpips, cfg, keys, ctx, "train features")
        n_train, counts, judge_all = len(vecs), dict(vecs.counts), vecs.judge
        pre_seconds, pre_images = vecs.seconds, vecs.images
    else:
        vecs = None
        data = _FullData(cfg, keys, dev)
        n_train, counts, judge_all = len(data), dict(data.counts), data.judge
        pre_seconds, pre_images = 0.0, 0
    if n_train == 0:
        raise DataError(f"no training data found in {cfg.data}: the selected sets ({', '.join(keys)}) are empty")
    val_vecs = None
    if val_keys and cfg.fast:
        val_vecs = _precompute(lpips, cfg, val_keys, ctx, "val features")

    def val_scores() -> dict[str, float]:
        if not val_keys or not ctx.is_main:
            return {}
        if cfg.fast:
            return _val_scores_fast(module, val_vecs)
        return _val_scores_full(module, cfg, val_keys, dev)

    # --- card -----------------------------------------------------------------------------------
    label = f"lpips-{cfg.net} {cfg.variant}"
    if not calibrated:
        label += f" [UNCALIBRATED: {cal_note}]"
        if ctx.is_main:
            warnings.warn(f"bapps train: {label}: the trained metric is not a calibrated LPIPS", UserWarning,
                          stacklevel=3)
    if resume_card is not None:
        card = resume_card
        card["history"] = [h for h in card.get("history", []) if int(h["epoch"]) <= done]
        card["resumed"] = card.get("resumed", []) + [{"from_epoch": done, "at": time.strftime("%Y-%m-%dT%H:%M:%S")}]
    else:
        card = rd.new_card(cfg, keys, counts, synthetic, bsrc, calibrated, cal_note, val_keys)
    card.update({"device": str(dev), "world_size": ctx.world, "bf16": cfg.bf16,
                 "precompute": {"seconds": round(pre_seconds, 3), "images": pre_images} if cfg.fast else None})
    model_meta = rd.model_meta(cfg, lpips, bsrc, calibrated, cal_note)
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        if cfg.overwrite:
            # only now that the model and data are ready: a failing run must not destroy the old one
            for p in ck.run_files(out):
                p.unlink()
        if bsrc["source"] == "random" and not train_backbone and not (out / ck.BACKBONE_FILE).is_file():
            ck.write_safetensors(out / ck.BACKBONE_FILE,
                                 {k: v for k, v in lpips.backbone.state_dict().items()},
                                 {"format": "bapps-toolkit/backbone", "net": cfg.net,
                                  "source": "random", "seed": str(bsrc.get("seed"))})
        if val_keys and "initial_val" not in card:
            iv = val_scores()
            card["initial_val"] = {"val_2afc": _mean(iv), "per_set": iv,
                                   "note": "untrained (seeded init) linear layers, same backbone"}
            if cfg.fast:
                bv = _val_scores_fast(module, val_vecs, torch.ones_like(module.lin_vector().detach()))
                card["baseline_val"] = {"val_2afc": _mean(bv), "per_set": bv,
                                        "note": "all channels weighted equally (LPIPS baseline), same backbone"}
        ck.write_json(out / ck.CARD, card)
        _say(ctx, cfg, f"{label}: {n_train} triplets ({', '.join(f'{k} {v}' for k, v in counts.items())}), "
                       f"{'fast cached-feature path' if cfg.fast else 'full path'}, device {dev}"
                       f"{f' x{ctx.world} ranks' if ctx.distributed else ''}; epochs {done + 1}..{cfg.total_epochs}",
             always=True)
        if not calibrated:
            _say(ctx, cfg, f"UNCALIBRATED: {cal_note}", always=True)
    dd.barrier(ctx)

    # --- epochs -----------------------------------------------------------------------------
    B = cfg.batch_size
    history: list[dict[str, Any]] = list(card.get("history", []))
    for epoch in range(done + 1, cfg.total_epochs + 1):
        lr = lr_for_epoch(epoch, cfg.lr, cfg.epochs, cfg.decay_epochs)
        for g in opt.param_groups:
            g["lr"] = lr
        perm = torch.randperm(n_train, generator=make_generator(derive_seed(cfg.seed, epoch, STREAM_SHUFFLE)))
        perm_dev = perm.to(dev)
        drop_gen = make_generator(derive_seed(cfg.seed, epoch, STREAM_DROPOUT), dev) if cfg.dropout > 0 else None
        bar = None
        if cfg.progress and ctx.is_main:
            from tqdm.auto import tqdm

            bar = tqdm(total=n_train, desc=f"epoch {epoch}/{cfg.total_epochs}", unit="triplet", leave=False)

        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        loss_sum, acc_sum = run_epoch(
            wrapped, opt, lpips.lins, perm=perm_dev, judge=judge_all, batch_size=B, dropout=cfg.dropout,
            drop_gen=drop_gen, ctx=ctx, vecs=vecs if cfg.fast else None, data=data, bar=bar,
            hook=functools.partial(on_step, epoch) if on_step is not None else None,
        )
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        seconds = time.perf_counter() - t0
        if bar is not None:
            bar.close()
        stats = dd.all_reduce_sum(ctx, torch.stack([loss_sum, acc_sum]))
        row: dict[str, Any] = {
            "epoch": epoch, "lr": lr,
            "loss": float(stats[0]) / n_train, "train_2afc": float(stats[1]) / n_train,
            "seconds": round(seconds, 4), "items_per_s": round(n_train / max(seconds, 1e-9), 1),
            "val_2afc": None,
        }
        if ctx.is_main:
            vs = val_scores()
            if vs:
                row["val_2afc"] = _mean(vs)
                row["val"] = vs
            files = ck.save_epoch(
                out, epoch,
                model=ck.model_tensors(lpips.lins, G, lpips.backbone if train_backbone else None),
                meta=model_meta,
                optim=ck.optimizer_tensors(opt, param_names),
                lin_weights=_lin_weights_list(lpips.lins),
            )
            row["files"] = files
            history.append(row)
            card["history"] = history
            card["epochs_done"] = epoch
            card["finished"] = epoch == cfg.total_epochs
            card["calibrated"] = calibrated
            rd.write_log(out, history)
            ck.write_json(out / ck.CARD, card)
            msg = (f"epoch {epoch}/{cfg.total_epochs}: lr {lr:.3g} loss {row['loss']:.4f} "
                   f"train 2AFC {100 * row['train_2afc']:.2f}% ({row['items_per_s']:.0f} triplets/s)")
            if row["val_2afc"] is not None:
                msg += f", val 2AFC {100 * row['val_2afc']:.2f}%"
            _say(ctx, cfg, msg + (" [UNCALIBRATED]" if not calibrated else ""))
        dd.barrier(ctx)

    if ctx.is_main and not card.get("finished"):
        # e.g. resume of an already-finished schedule: nothing left to train
        card["finished"] = card.get("epochs_done", 0) == cfg.total_epochs
        ck.write_json(out / ck.CARD, card)
    card = dd.broadcast_object(ctx, card if ctx.is_main else None)
    if ctx.is_main:
        final = history[-1] if history else {}
        tail = "" if final.get("val_2afc") is None else " (val 2AFC {:.2f}%)".format(100 * final["val_2afc"])
        if not calibrated:
            tail += f" [UNCALIBRATED: {cal_note}]"
        _say(ctx, cfg, f"done: {out / 'latest.safetensors'}{tail}", always=True)
    return TrainResult(out_dir=out, checkpoint_path=ck.weights_path(out, ck.LATEST), card=card, is_main=ctx.is_main)


def _build_model(cfg: TrainConfig, ctx: dd.DistContext, bsrc: dict[str, Any], resuming: bool,
                 done: int) -> tuple[Any, RankingNet, TrainModule, torch.optim.Optimizer, list[str]]:
    """The metric, G, the module training both and its Adam optimizer; seeded init, or the
    state of epoch ``done`` when resuming."""
    out = Path(cfg.out)
    dev = ctx.device
    bb_arg: Any = "random" if bsrc["source"] == "random" else cfg.backbone_weights
    lpips = build_lpips(cfg.net, cfg.version, bb_arg, bsrc.get("seed", 0))
    G = RankingNet()
    gen = make_generator(derive_seed(cfg.seed, STREAM_INIT))
    init_linear_(lpips.lins, gen)
    init_ranking_net_(G, gen)
    train_backbone = cfg.variant in ("tune", "scratch")
    for p in lpips.backbone.parameters():
        p.requires_grad_(train_backbone)
    for lin in lpips.lins:
        lin.weight.requires_grad_(True)
    if (bsrc["source"] == "random" and not train_backbone and resuming
            and (out / ck.BACKBONE_FILE).is_file()):
        tensors, _ = ck.read_safetensors(out / ck.BACKBONE_FILE)
        lpips.backbone.load_state_dict(tensors)
    module = TrainModule(lpips, G, train_backbone=train_backbone, bf16=cfg.bf16).to(dev)
    module.train()
    if not train_backbone:
        lpips.backbone.eval()

    named = [(f"lin.{k}.weight", lin.weight) for k, lin in enumerate(lpips.lins)]
    named += [(f"G.{n}", p) for n, p in G.named_parameters()]
    if train_backbone:
        named += [(f"backbone.{n}", p) for n, p in lpips.backbone.named_parameters()]
    param_names = [n for n, _ in named]
    # On CUDA the fused Adam kernel (one launch for all parameters); the default elsewhere.
    opt = torch.optim.Adam([p for _, p in named], lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                           **({"fused": True} if dev.type == "cuda" else {}))

    if done > 0:
        stem = ck.epoch_stem(done)
        tensors, meta = ck.read_safetensors(ck.weights_path(out, stem))
        rd.check_meta(meta, cfg, ck.weights_path(out, stem))
        lin_w, g_state, bb_state = ck.split_model_tensors(tensors)
        with torch.no_grad():
            for lin, w in zip(lpips.lins, lin_w, strict=False):
                lin.weight.copy_(w.to(lin.weight.device))
        G.load_state_dict(g_state)
        if train_backbone:
            lpips.backbone.load_state_dict(bb_state)
        ck.load_optimizer_(opt, param_names, ck.optim_path(out, stem))
    return lpips, G, module, opt, param_names


def run_epoch(wrapped, opt: torch.optim.Optimizer, lins, *, perm: torch.Tensor, judge: torch.Tensor,
              batch_size: int, dropout: float, drop_gen: torch.Generator | None, ctx: dd.DistContext,
              vecs=None, data: _FullData | None = None, bar=None, hook=None) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass over ``perm`` in global batches of ``batch_size``: forward (fast path when ``vecs``
    is given, else the full network on ``data``), BCE of G against the judge, Adam step, clamp of
    the linear layers. Returns the summed BCE and summed training accuracy of this rank's items
    (device tensors; no host sync inside the loop)."""
    dev = perm.device
    loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
    acc_sum = torch.zeros((), dtype=torch.float64, device=dev)
    n = int(perm.shape[0])
    for step, b in enumerate(range(0, n, batch_size), start=1):
        idx = perm[b:b + batch_size]
        gn = int(idx.shape[0])
        lo, hi = dd.slice_for_rank(gn, ctx.rank, ctx.world)
        local = idx[lo:hi]
        masks = MaskSource(dropout, drop_gen, gn, lo, hi)
        j = judge[local]
        if vecs is not None:
            d0, d1, prob = wrapped("fast", vecs.v0[local], vecs.v1[local], masks)
        else:
            ref, p0, p1 = data.batch(local)
            d0, d1, prob = wrapped("full", ref, p0, p1, masks)
        lsum = bce_sum(prob, j)
        loss = lsum * (ctx.world / gn)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        clamp_linear_(lins)
        with torch.no_grad():
            loss_sum += lsum.detach().double()
            acc_sum += train_accuracy(d0.detach(), d1.detach(), j).double().sum()
        if bar is not None:
            bar.update(gn)
        if hook is not None:
            hook(step)
    return loss_sum, acc_sum


def _precompute(lpips, cfg: TrainConfig, keys, ctx, desc):
    from .fastpath import precompute

    return precompute(lpips, cfg.data, keys, ctx=ctx, batch=cfg.precompute_batch, bf16=cfg.bf16,
                      progress=cfg.progress, desc=desc)


__all__ = ["train", "TrainResult", "run_epoch", "StepHook"]
