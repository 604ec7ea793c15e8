"""MAD synthesis: hold one metric at its starting value and drive the other to its minimum or maximum.

The method is that of Wang & Simoncelli, "Maximum differentiation (MAD) competition: a
methodology for comparing computational models of perceptual quantities", *Journal of Vision*
8(12):8, 2008.

The paper's iteration (its Fig. 7 and the authors' MATLAB code, LabForComputationalVision/
MAD_Competition, ``fungds_mse_ssimweighted.m``): from the start image ``Y`` move along the
level set of the held metric ``H`` in the direction in which the pushed metric ``P`` increases
(or decreases) fastest — ``P``'s gradient with its component along ``H``'s gradient removed —
then correct back onto ``H``'s level set by a 1-D search along ``∇H``, keep the pixels in
range, and repeat until ``P`` stops changing. The paper starts from the reference plus white
Gaussian noise of a fixed MSE (1024 on [0, 255] in its Fig. 8; the authors' script runs MSE
levels 8 to 1024, powers of two).

This implementation, per image of a batch (all images advance together; each has its own
step size and stopping state):

1. ``gP = ∇P``, ``gH = ∇H`` at ``Y`` (autograd; metrics are frozen, only pixels get gradients);
   ``g = gP − (⟨gP, gH⟩ / ⟨gH, gH⟩) gH``.
2. Trial ``Y' = clip(Y + s·λ·√n · g/‖g‖)``: a step of root-mean-square pixel change ``λ``
   (``s`` = +1 to maximise, −1 to minimise; ``n`` values per image; ``clip`` to [0, 1]).
3. Correction: the root of ``φ(α) = H(X, clip(Y' + α·gH)) − H₀`` by a Newton start
   (``α = −φ(0)/‖gH‖²``, exact to first order) and secant iterations (at most
   ``search_iters``), keeping the ``α`` with the smallest ``|φ|``.
4. Accept the trial when ``|H − H₀| <= held_tolerance·|H₀|`` and ``P`` moved the wanted way;
   then ``λ ← min(1.5 λ, max_step)``, else ``λ ← λ/2`` and ``Y`` stays.
5. Stop an image when ``λ < min_step`` (no acceptable step left: converged), when ``P``
   changed by less than ``converge_tol`` (relative) over the last ``window`` iterations
   (converged), or after ``max_steps`` iterations (budget spent: not converged).

Step sizes are relative to the start distortion: ``λ₀ = step·rms(Y₀ − X)``,
``max_step = 4·λ₀``, ``min_step = 1e-4·rms(Y₀ − X)``.
Each iteration costs one forward and backward pass of each metric plus 2–4 forward passes of
``H`` (the search) and one of ``P``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import UsageError

#: ``f(ref, y) -> [N]`` distances of images in [0, 1].
DistanceFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

_TINY = 1e-20


@dataclass(frozen=True)
class MadSettings:
    """Iteration settings (see the module docstring for their use).

    Args:
        max_steps: iteration budget per image.
        step: first step, as a fraction of the start distortion's RMS pixel deviation.
        held_tolerance: relative deviation of the held metric accepted after a correction.
        converge_tol: relative change of the pushed metric over ``window`` iterations below
            which an image counts as converged.
        window: iterations the convergence test looks back.
        search_iters: secant iterations of the level-set correction.
    """

    max_steps: int = 200
    step: float = 0.1
    held_tolerance: float = 1e-3
    converge_tol: float = 1e-4
    window: int = 20
    search_iters: int = 6

    def __post_init__(self) -> None:
        if self.max_steps < 1 or self.window < 1 or self.search_iters < 1:
            raise UsageError("max_steps, window and search_iters must be >= 1")
        for name in ("step", "held_tolerance", "converge_tol"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0.0 < float(v) < 1.0):
                raise UsageError(f"{name} must lie in (0, 1), got {v!r}")


@dataclass
class PushResult:
    """One batch pushed: ``images`` ``[N, C, H, W]`` in [0, 1] and per-image arrays ``[N]``."""

    images: torch.Tensor
    held_start: np.ndarray
    held_end: np.ndarray
    pushed_start: np.ndarray
    pushed_end: np.ndarray
    steps: np.ndarray
    accepted: np.ndarray
    converged: np.ndarray


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).flatten(1).sum(1)


def _bcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.dim() - 1)))


def _grad(fn: DistanceFn, ref: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.enable_grad():
        y = y.detach().requires_grad_(True)
        out = fn(ref, y)
        (g,) = torch.autograd.grad(out.sum(), y)
    return out.detach(), g


def correct_level(held: DistanceFn, ref: torch.Tensor, y: torch.Tensor, u: torch.Tensor, target: torch.Tensor,
                  tol: torch.Tensor, iters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images, held values)`` after the 1-D search along ``u`` for ``held(ref, ·) = target``.

    Per image: ``φ(α) = held(ref, clip(y + α u)) − target``; Newton start ``−φ(0)/‖u‖²``, then
    secant steps until ``|φ| <= tol``; the ``α`` with the smallest ``|φ|`` is kept.
    """
    with torch.no_grad():
        phi0 = held(ref, y) - target
        best_a, best_phi = torch.zeros_like(phi0), phi0.clone()
        a0 = torch.zeros_like(phi0)
        a1 = -phi0 / _dot(u, u).clamp_min(_TINY)
        for _ in range(iters):
            if bool((best_phi.abs() <= tol).all()):
                break
            phi1 = held(ref, (y + _bcast(a1, y) * u).clamp(0.0, 1.0)) - target
            better = phi1.abs() < best_phi.abs()
            best_a = torch.where(better, a1, best_a)
            best_phi = torch.where(better, phi1, best_phi)
            denom = phi1 - phi0
            safe = denom.abs() > _TINY
            a2 = torch.where(safe, a1 - phi1 * (a1 - a0) / torch.where(safe, denom, torch.ones_like(denom)), a1)
            a0, phi0, a1 = a1, phi1, a2
        out = (y + _bcast(best_a, y) * u).clamp(0.0, 1.0)
        return out, best_phi + target


@dataclass
class _State:
    """Per-image iteration state of :func:`push`."""

    y: torch.Tensor
    held0: torch.Tensor
    pushed: torch.Tensor
    lam: torch.Tensor
    max_lam: torch.Tensor
    min_lam: torch.Tensor
    steps: torch.Tensor
    accepted: torch.Tensor
    converged: torch.Tensor
    active: torch.Tensor
    history: list[torch.Tensor]


def _iterate(held: DistanceFn, pushed: DistanceFn, ref: torch.Tensor, st: _State, sign: torch.Tensor,
             cfg: MadSettings) -> None:
    """One iteration for the active images (see the module docstring, steps 1–4)."""
    idx = st.active.nonzero().flatten()
    r, y, s = ref[idx], st.y[idx], sign[idx]
    _, g_p = _grad(pushed, r, y)
    _, g_h = _grad(held, r, y)
    g = g_p - _bcast(_dot(g_p, g_h) / _dot(g_h, g_h).clamp_min(_TINY), g_h) * g_h
    unit = g / _bcast(_dot(g, g).sqrt().clamp_min(_TINY), g)
    n = float(np.prod(y.shape[1:]))
    trial = (y + _bcast(s * st.lam[idx] * n ** 0.5, y) * unit).clamp(0.0, 1.0)
    target = st.held0[idx]
    tol = cfg.held_tolerance * target.abs() + 1e-12
    trial, h_val = correct_level(held, r, trial, g_h, target, tol, cfg.search_iters)
    with torch.no_grad():
        p_val = pushed(r, trial)
    ok = ((h_val - target).abs() <= tol) & (s * (p_val - st.pushed[idx]) > 0)
    acc = idx[ok]
    st.y[acc] = trial[ok]
    st.pushed[acc] = p_val[ok]
    st.lam[idx] = torch.where(ok, torch.minimum(st.lam[idx] * 1.5, st.max_lam[idx]), st.lam[idx] * 0.5)
    st.steps[idx] += 1
    st.accepted[acc] += 1


def _check_stops(st: _State, cfg: MadSettings) -> None:
    """Mark images converged (step exhausted or stalled) or out of budget as inactive."""
    st.history.append(st.pushed.clone())
    exhausted = st.lam < st.min_lam
    stalled = torch.zeros_like(exhausted)
    if len(st.history) > cfg.window:
        old = st.history[-1 - cfg.window]
        stalled = (st.pushed - old).abs() <= cfg.converge_tol * old.abs().clamp_min(_TINY)
    done = st.active & (exhausted | stalled)
    st.converged |= done
    st.active &= ~done
    st.active &= st.steps < cfg.max_steps


def push(held: DistanceFn, pushed: DistanceFn, ref: torch.Tensor, start: torch.Tensor, sign: torch.Tensor,
         settings: MadSettings = MadSettings()) -> PushResult:
    """Hold ``held`` at its value on ``start`` and push ``pushed``, keeping the images in [0, 1].

    Per image, ``sign`` = +1 maximises the pushed metric, −1 minimises it.

    Args:
        held: the metric held, ``f(ref, y) -> [N]`` distances on [0, 1] images (differentiable in ``y``).
        pushed: the metric pushed, of the same form.
        ref: the references ``[N, C, H, W]`` in [0, 1].
        start: the start images (same shape, in [0, 1], not equal to ``ref``).
        sign: ``[N]`` of +1 / −1.
        settings: the iteration settings.

    Returns:
        The synthesised images with the held metric's start and end values, the pushed
        metric's, the iterations, the accepted steps and whether each image converged.

    Raises:
        ValueError: shapes disagree, values outside [0, 1], a start equal to its reference.
    """
    if ref.shape != start.shape or sign.shape != (ref.shape[0],):
        raise UsageError(f"push: ref {tuple(ref.shape)}, start {tuple(start.shape)} and sign "
                         f"{tuple(sign.shape)} do not fit")
    if float(start.min()) < 0.0 or float(start.max()) > 1.0:
        raise UsageError("push: start images must lie in [0, 1]")
    rms = ((start - ref) ** 2).flatten(1).mean(1).sqrt()
    if bool((rms == 0).any()):
        raise UsageError("push: a start image equals its reference (no distortion to move along)")
    sign = sign.to(start.dtype)
    with torch.no_grad():
        held0 = held(ref, start)
        pushed0 = pushed(ref, start)
    n = ref.shape[0]
    st = _State(y=start.detach().clone(), held0=held0, pushed=pushed0.clone(), lam=settings.step * rms,
                max_lam=4.0 * settings.step * rms, min_lam=1e-4 * rms,
                steps=torch.zeros(n, dtype=torch.long, device=ref.device),
                accepted=torch.zeros(n, dtype=torch.long, device=ref.device),
                converged=torch.zeros(n, dtype=torch.bool, device=ref.device),
                active=torch.ones(n, dtype=torch.bool, device=ref.device), history=[])
    while bool(st.active.any()):
        _iterate(held, pushed, ref, st, sign, settings)
        _check_stops(st, settings)
    with torch.no_grad():
        held_end = held(ref, st.y)
    return PushResult(images=st.y, held_start=held0.cpu().numpy().astype(np.float64),
                      held_end=held_end.cpu().numpy().astype(np.float64),
                      pushed_start=pushed0.cpu().numpy().astype(np.float64),
                      pushed_end=st.pushed.cpu().numpy().astype(np.float64),
                      steps=st.steps.cpu().numpy(), accepted=st.accepted.cpu().numpy(),
                      converged=st.converged.cpu().numpy())


__all__ = ["MadSettings", "PushResult", "push", "correct_level"]
