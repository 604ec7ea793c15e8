"""Training one network per loss, resumable: per-loss checkpoints written atomically.

Batches depend only on ``(seed, step)`` (indices from ``numpy.random.default_rng([seed,
step])``), the network starts from the same seeded weights for every loss, and the Adam state
is checkpointed with the weights, so a run killed at any point and started again gives the
same network, bit for bit, as an uninterrupted run (on the same device and thread count).
"""
from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from .._io import atomic_path
from ..errors import CheckpointError
from ..losses import Loss, create_loss, parse_loss_spec
from .config import LossStudyConfig
from .model import StudyNet, build_model
from .records import Curve, LossCheckpoint

CheckpointCallback = Callable[[str, int, bool], None]


def slug(spec: str) -> str:
    """A file-name-safe form of a loss specification (``0.16*l1+0.84*ms-ssim`` → ``0.16xl1+0.84xms-ssim``)."""
    return re.sub(r"[^a-z0-9.+_-]", "_", spec.lower().replace(" ", "").replace("*", "x"))


def build_loss(spec: str, cfg: LossStudyConfig) -> Loss:
    """The loss ``spec`` on [0, 1] images, its deep terms on the study's backbones.

    Args:
        spec: a loss specification (``l1``, ``0.16*l1+0.84*ms-ssim`` …).
        cfg: the study's settings.

    Returns:
        The loss module.
    """
    per_term = {n: cfg.deep_options(n) for n in parse_loss_spec(spec)}
    per_term = {k: v for k, v in per_term.items() if v}
    return create_loss(spec, input_range=(0.0, 1.0), per_term=per_term or None)


@contextlib.contextmanager
def deterministic() -> Iterator[None]:
    """``torch.use_deterministic_algorithms(True, warn_only=True)`` for the block, then restored."""
    before = torch.are_deterministic_algorithms_enabled()
    warn_before = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn_before)


def _load_checkpoint(path: Path, fingerprint: dict[str, object]) -> LossCheckpoint | None:
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file: say which
        raise CheckpointError(f"loss-study checkpoint {path} is unreadable ({exc}); delete it to retrain") from None
    if state.get("fingerprint") != fingerprint:
        old = state.get("fingerprint") or {}
        diff = [k for k in fingerprint if old.get(k) != fingerprint[k]]
        raise CheckpointError(
            f"loss-study checkpoint {path} was made with other settings ({', '.join(diff) or 'unknown'} "
            f"differ); use another output folder or delete {path.parent} to start afresh")
    return cast(LossCheckpoint, state)


def train_one(spec: str, cfg: LossStudyConfig, inputs: torch.Tensor, targets: torch.Tensor, device: torch.device,
              *, progress: bool = True, on_checkpoint: CheckpointCallback | None = None) -> tuple[StudyNet, Curve]:
    """Train (or resume, or load) the network for loss ``spec``; returns ``(model, history)``.

    ``inputs`` / ``targets``: float ``[P, 3, s, s]`` training patches on [0, 1]. The history
    (the training curve) is a list of ``[step, mean loss]``, one per checkpoint: the mean of the
    loss over the steps since the previous checkpoint (every ``checkpoint_every`` steps and the
    last step), so a resumed run records the same curve as an uninterrupted one.
    """
    path = cfg.out / "checkpoints" / f"{slug(spec)}.pt"
    fingerprint = {**cfg.training_fingerprint(), "loss": spec}
    model = build_model(cfg.task, cfg.width, cfg.blocks, cfg.bottleneck, cfg.seed).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    state = _load_checkpoint(path, fingerprint)
    step, history = 0, cast(Curve, [])
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optim"])
        step, history = int(state["step"]), [list(h) for h in state["history"]]
        if state["finished"]:
            return model.eval(), history
    loss_fn = build_loss(spec, cfg).to(device)
    bar = _bar(progress, cfg.steps, step, spec)
    model.train()
    interval_sum, interval_steps = 0.0, 0
    with deterministic():
        while step < cfg.steps:
            idx = np.random.default_rng([cfg.seed, step]).integers(0, inputs.shape[0], size=cfg.batch_size)
            t = torch.from_numpy(idx)
            x, y = inputs[t].to(device), targets[t].to(device)
            opt.zero_grad(set_to_none=True)
            value = loss_fn(model(x), y)
            value.backward()
            opt.step()
            step += 1
            interval_sum, interval_steps = interval_sum + float(value.detach()), interval_steps + 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{float(value.detach()):.4g}")
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                history.append([step, interval_sum / interval_steps])
                interval_sum, interval_steps = 0.0, 0
                _save(path, model, opt, step, history, step == cfg.steps, fingerprint)
                if on_checkpoint is not None:
                    on_checkpoint(spec, step, step == cfg.steps)
    if bar is not None:
        bar.close()
    return model.eval(), history


def _save(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, step: int, history: Curve,
          finished: bool, fingerprint: dict[str, object]) -> None:
    state: LossCheckpoint = {"model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
             "optim": opt.state_dict(), "step": step, "history": history, "finished": finished,
             "fingerprint": fingerprint}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _bar(progress: bool, total: int, initial: int, desc: str) -> Any:
    if not progress:
        return None
    from tqdm.auto import tqdm  # optional nicety; imported only when progress is shown

    return tqdm(total=total, initial=initial, desc=f"train {desc}", leave=False, dynamic_ncols=True)
