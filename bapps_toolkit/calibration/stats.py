"""Calibration of a 2AFC predictor: how well a probability ``q = P(p1 closer)`` matches the judges.

A metric gives two distances ``d0 = d(ref, p0)`` and ``d1 = d(ref, p1)``; the human data of a
triplet is the judge fraction ``h`` (fraction of raters who chose ``p1`` as closer). A
probabilistic prediction ``q`` of ``h`` is scored per item and averaged (Brier 1950; Naeini,
Cooper & Hauskrecht, AAAI 2015 for the binned calibration error; the 2AFC use follows the
ranking network G of Zhang et al., CVPR 2018, §3.3, trained with cross-entropy against ``h``):

* **log-likelihood** ``mean(h·log q + (1 − h)·log(1 − q))`` (higher is better; ``q = 0.5`` gives
  ``log 0.5 ≈ −0.693``; no predictor beats ``q = h``, whose value :func:`log_likelihood_ceiling`
  gives). ``q`` is clipped to ``[EPS, 1 − EPS]`` so a confident wrong answer costs
  ``log EPS ≈ −27.6`` instead of ``−inf``.
* **Brier score** ``mean((q − h)²)`` (lower is better).
* **ECE** (expected calibration error): ``q`` in ``n_bins`` equal-width bins ``[0, 1/B), …,
  [(B−1)/B, 1]`` (the last bin closed), ``Σ_b (n_b / N)·|mean_b q − mean_b h|``.

Where does ``q`` come from? A trained LPIPS checkpoint stores G, which maps ``(d0, d1)`` to ``q``
(:func:`ranking_net_probability`, a numpy forward pass over G's stored tensors). Every other
metric gets a logistic link ``q = σ(a + b·x/s)`` on ``x = d0 − d1`` (``s`` the root mean square
of ``x`` on the fitting items, so one penalty suits every metric's units), fitted by
**cross-fitting** (:func:`cross_fit_logistic`): the items' groups (a reference image and its
triplets; one item per group for BAPPS) are shuffled with a seed and dealt into ``k`` folds, and
the items of each fold are scored by a link fitted on the other ``k − 1`` folds only, so no item
is scored by a link fitted on it.

Inputs are numpy-convertible arrays of ``N`` items; ``h`` and ``q`` must lie in ``[0, 1]`` and be
finite; bad input raises ``ValueError`` naming the argument.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import CheckpointError

#: Clip of ``q`` inside the logarithms (see the module docstring).
EPS = 1e-12
#: Equal-width bins of the expected calibration error and the reliability diagram.
N_BINS = 10
#: Folds of the cross-fitted logistic link.
N_FOLDS = 5
#: L2 penalty (per item, on intercept and slope of the scaled input) of the logistic link: it keeps
#: the fit finite when a training fold is separable and is negligible otherwise.
L2_PENALTY = 1e-4
#: G's epsilon in its ratio features (the official ``Dist2LogitLayer``; equals
#: ``bapps_toolkit.train.model.G_EPS``, checked by the tests).
RANKING_EPS = 0.1

__all__ = [
    "EPS", "N_BINS", "N_FOLDS", "ReliabilityBins", "CalibrationScores", "LogisticLink", "CrossFit",
    "log_likelihood", "log_likelihood_ceiling", "brier_score", "expected_calibration_error",
    "reliability_bins", "calibration_scores", "fit_logistic", "cross_fit_logistic", "fold_of_groups",
    "ranking_net_probability",
]


@dataclasses.dataclass(frozen=True)
class ReliabilityBins:
    """Equal-width bins of ``q`` with the mean prediction and mean judge fraction of each.

    ``edges`` has ``n_bins + 1`` entries; per bin ``count``, ``mean_q`` and ``mean_h`` (NaN in an
    empty bin).
    """

    edges: tuple[float, ...]
    count: tuple[int, ...]
    mean_q: tuple[float, ...]
    mean_h: tuple[float, ...]


@dataclasses.dataclass(frozen=True)
class CalibrationScores:
    """The scores of one prediction ``q`` against ``h`` over ``n`` items (see the module docstring)."""

    n: int
    log_lik: float
    brier: float
    ece: float
    log_lik_ceiling: float
    bins: ReliabilityBins


@dataclasses.dataclass(frozen=True)
class LogisticLink:
    """``q = σ(intercept + slope·x / scale)``: a logistic link on ``x = d0 − d1``."""

    intercept: float
    slope: float
    scale: float

    def __call__(self, x: Any) -> np.ndarray:
        """``q`` of every item of ``x``."""
        return _sigmoid(self.intercept + self.slope * _vector(x, "x") / self.scale)


@dataclasses.dataclass(frozen=True)
class CrossFit:
    """A cross-fitted prediction: ``q`` per item, the ``fold`` each item was scored in, the ``links``.

    Link ``f`` was fitted on every fold but ``f``.
    """

    q: np.ndarray
    fold: np.ndarray
    links: tuple[LogisticLink, ...]


def _vector(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64).reshape(-1)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: every value must be finite")
    return arr


def _fractions(x: Any, name: str) -> np.ndarray:
    a = _vector(x, name)
    if len(a) == 0:
        raise ValueError(f"{name} is empty: calibration needs at least one item")
    if a.min() < 0.0 or a.max() > 1.0:
        raise ValueError(f"{name}: values must lie in [0, 1], got [{a.min():g}, {a.max():g}]")
    return a


def _probabilities(q: Any, h: Any) -> tuple[np.ndarray, np.ndarray]:
    qa, ha = _fractions(q, "q"), _fractions(h, "h")
    if len(qa) != len(ha):
        raise ValueError(f"q and h must have the same length, got {len(qa)} and {len(ha)}")
    return qa, ha


def _sigmoid(z: Any) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    return np.asarray(np.exp(-np.logaddexp(0.0, -z)))


def _bernoulli_ll(q: np.ndarray, h: np.ndarray) -> np.ndarray:
    c = np.clip(q, EPS, 1.0 - EPS)
    return np.asarray(h * np.log(c) + (1.0 - h) * np.log1p(-c))


def log_likelihood(q: Any, h: Any) -> float:
    """Mean per-item log-likelihood ``h·log q + (1 − h)·log(1 − q)`` (``q`` clipped to ``[EPS, 1 − EPS]``).

    Example:
        >>> round(log_likelihood([0.5, 0.5], [1.0, 0.0]), 4)
        -0.6931
    """
    qa, ha = _probabilities(q, h)
    return float(_bernoulli_ll(qa, ha).mean())


def log_likelihood_ceiling(h: Any) -> float:
    """The log-likelihood of ``q = h``: the best any predictor can reach on these items.

    It is minus the mean entropy of the judge fractions.
    """
    ha = _fractions(h, "h")
    return float(_bernoulli_ll(ha, ha).mean())


def brier_score(q: Any, h: Any) -> float:
    """Mean squared difference ``(q − h)²``."""
    qa, ha = _probabilities(q, h)
    return float(np.mean((qa - ha) ** 2))


def _bin_index(q: np.ndarray, n_bins: int) -> np.ndarray:
    if int(n_bins) < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    return np.minimum((q * n_bins).astype(np.int64), n_bins - 1)


def reliability_bins(q: Any, h: Any, n_bins: int = N_BINS) -> ReliabilityBins:
    """Count, mean ``q`` and mean ``h`` of the items in each equal-width bin of ``q``."""
    qa, ha = _probabilities(q, h)
    idx = _bin_index(qa, n_bins)
    count = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_q = np.bincount(idx, weights=qa, minlength=n_bins) / count
        mean_h = np.bincount(idx, weights=ha, minlength=n_bins) / count
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return ReliabilityBins(tuple(float(e) for e in edges), tuple(int(c) for c in count),
                           tuple(float(v) for v in mean_q), tuple(float(v) for v in mean_h))


def expected_calibration_error(q: Any, h: Any, n_bins: int = N_BINS) -> float:
    """``Σ_b (n_b / N)·|mean_b q − mean_b h|`` over ``n_bins`` equal-width bins of ``q``.

    Example:
        >>> expected_calibration_error([0.05, 0.95], [0.0, 1.0])
        0.05
    """
    bins = reliability_bins(q, h, n_bins)
    n = sum(bins.count)
    return float(sum(c / n * abs(mq - mh)
                     for c, mq, mh in zip(bins.count, bins.mean_q, bins.mean_h, strict=True) if c))


def calibration_scores(q: Any, h: Any, n_bins: int = N_BINS) -> CalibrationScores:
    """Every score of ``q`` against ``h`` in one record."""
    qa, ha = _probabilities(q, h)
    bins = reliability_bins(qa, ha, n_bins)
    return CalibrationScores(n=len(qa), log_lik=log_likelihood(qa, ha), brier=brier_score(qa, ha),
                             ece=expected_calibration_error(qa, ha, n_bins),
                             log_lik_ceiling=log_likelihood_ceiling(ha), bins=bins)


def fit_logistic(x: Any, h: Any, *, penalty: float = L2_PENALTY, max_iter: int = 100) -> LogisticLink:
    """Fit ``q = σ(a + b·x/s)`` to the fractions ``h`` by Newton's method.

    The objective is the mean binary cross-entropy plus ``penalty/2·(a² + b²)``; ``s`` = root
    mean square of ``x`` (1 when all zero).

    Raises:
        ValueError: lengths differ, no items, values not finite, ``h`` outside ``[0, 1]``.
    """
    xa, ha = _vector(x, "x"), _fractions(h, "h")
    if len(xa) != len(ha):
        raise ValueError(f"x and h must have the same length, got {len(xa)} and {len(ha)}")
    rms = float(np.sqrt(np.mean(xa ** 2)))
    scale = rms if rms > 0.0 else 1.0
    design = np.stack([np.ones_like(xa), xa / scale], axis=1)
    theta = np.zeros(2)
    eye = float(penalty) * np.eye(2)
    for _ in range(int(max_iter)):
        p = _sigmoid(design @ theta)
        grad = design.T @ (p - ha) / len(xa) + eye @ theta
        hess = (design * (p * (1.0 - p))[:, None]).T @ design / len(xa) + eye
        step = np.linalg.solve(hess, grad)
        theta = theta - step
        if float(np.max(np.abs(step))) < 1e-10:
            break
    return LogisticLink(float(theta[0]), float(theta[1]), scale)


def fold_of_groups(groups: Sequence[Any], k: int = N_FOLDS, seed: int = 0) -> np.ndarray:
    """Fold (``0 … k'−1``) of every item, whole groups to a fold, group counts balanced.

    An item's fold comes from its group's position in a seeded shuffle of the distinct groups (in
    sorted order), dealt round-robin, so every item of a group lands in one fold and the
    folds' group counts differ by at most one. ``k' = min(k, number of groups)``.

    Raises:
        ValueError: ``k < 2`` or fewer than two distinct groups.
    """
    if int(k) < 2:
        raise ValueError(f"cross-fitting needs k >= 2 folds, got {k}")
    keys = [str(g) for g in groups]
    distinct = sorted(set(keys))
    if len(distinct) < 2:
        raise ValueError(f"cross-fitting needs at least two distinct groups, got {len(distinct)}")
    order = np.random.default_rng(int(seed)).permutation(len(distinct))
    folds = min(int(k), len(distinct))
    fold_of = {distinct[j]: int(pos % folds) for pos, j in enumerate(order)}
    return np.asarray([fold_of[g] for g in keys], dtype=np.int64)


def cross_fit_logistic(x: Any, h: Any, groups: Sequence[Any] | None = None, *, k: int = N_FOLDS,
                       seed: int = 0, penalty: float = L2_PENALTY) -> CrossFit:
    """``q`` of every item from a logistic link fitted on the other folds only (see module).

    Args:
        x: ``d0 − d1`` per item.
        h: judge fractions (fraction preferring ``p1``) per item.
        groups: the group of each item (items of one group share a fold); None = each item alone.
        k: number of folds (fewer when there are fewer groups).
        seed: seed of the fold assignment.
        penalty: see :func:`fit_logistic`.

    Returns:
        The cross-fitted ``q``, each item's fold and the ``k`` links.
    """
    xa, ha = _vector(x, "x"), _fractions(h, "h")
    if len(xa) != len(ha):
        raise ValueError(f"x and h must have the same length, got {len(xa)} and {len(ha)}")
    keys: Sequence[Any] = groups if groups is not None else range(len(xa))
    if len(keys) != len(xa):
        raise ValueError(f"groups must have one entry per item, got {len(keys)} for {len(xa)} items")
    fold = fold_of_groups(keys, k, seed)
    q = np.empty(len(xa))
    links = []
    for f in range(int(fold.max()) + 1):
        held = fold == f
        link = fit_logistic(xa[~held], ha[~held], penalty=penalty)
        q[held] = link(xa[held])
        links.append(link)
    return CrossFit(q=q, fold=fold, links=tuple(links))


_G_SHAPES = {"model.0.weight": ("C", 5, 1, 1), "model.0.bias": ("C",), "model.2.weight": ("C", "C", 1, 1),
             "model.2.bias": ("C",), "model.4.weight": (1, "C", 1, 1), "model.4.bias": (1,)}


def _g_arrays(state: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """G's six tensors as float64 arrays, their names and shapes checked (a checkpoint is untrusted)."""
    if set(state) != set(_G_SHAPES):
        raise CheckpointError(f"ranking net G: expected tensors {sorted(_G_SHAPES)}, got {sorted(state)}")
    arrays = {k: np.asarray(v.detach().cpu().double().numpy() if hasattr(v, "detach") else v, dtype=np.float64)
              for k, v in state.items()}
    width = arrays["model.0.bias"].shape[0] if arrays["model.0.bias"].ndim == 1 else -1
    for name, shape in _G_SHAPES.items():
        want = tuple(width if s == "C" else s for s in shape)
        if arrays[name].shape != want:
            raise CheckpointError(f"ranking net G: {name} has shape {arrays[name].shape}, expected {want}")
        if not np.isfinite(arrays[name]).all():
            raise CheckpointError(f"ranking net G: {name} holds non-finite values")
    return arrays


def _leaky(z: np.ndarray) -> np.ndarray:
    return np.where(z >= 0.0, z, 0.2 * z)


def ranking_net_probability(state: Mapping[str, Any], d0: Any, d1: Any) -> np.ndarray:
    """G's predicted fraction of raters preferring ``p1``, from its stored tensors.

    The tensors are the ``model.0/2/4`` weights and biases, as in the checkpoint's ``G.*`` entries
    without the prefix.

    Features ``[d0, d1, d0 − d1, d0/(d1 + 0.1), d1/(d0 + 0.1)]``, two 1×1 layers with
    LeakyReLU(0.2), a 1×1 layer to one channel and a sigmoid (Zhang et al. 2018, §3.3).

    Raises:
        CheckpointError: a tensor is missing, extra, of the wrong shape or not finite.
        ValueError: ``d0``/``d1`` differ in length or hold non-finite values.
    """
    g = _g_arrays(state)
    a, b = _vector(d0, "d0"), _vector(d1, "d1")
    if len(a) != len(b):
        raise ValueError(f"d0 and d1 must have the same length, got {len(a)} and {len(b)}")
    x = np.stack([a, b, a - b, a / (b + RANKING_EPS), b / (a + RANKING_EPS)], axis=1)
    z = _leaky(x @ g["model.0.weight"][:, :, 0, 0].T + g["model.0.bias"])
    z = _leaky(z @ g["model.2.weight"][:, :, 0, 0].T + g["model.2.bias"])
    return _sigmoid(z @ g["model.4.weight"][:, :, 0, 0].T + g["model.4.bias"]).reshape(-1)
