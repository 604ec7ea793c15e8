"""Agreement of a distance with human judgments: 2AFC score, JND mAP, human ceiling, bootstrap.

Definitions follow Zhang et al., "The Unreasonable Effectiveness of Deep Features as a Perceptual
Metric", CVPR 2018, §3 and Table 5, and the official evaluation code (``score_2afc_dataset`` /
``score_jnd_dataset`` / ``voc_ap``) — with its JND defect fixed:

* **2AFC** (per triplet): ``s = (d0 < d1)(1 - g) + (d1 < d0) g + 0.5 (d0 == d1)``, where ``g`` is
  the fraction of raters who preferred ``p1``; the score is the mean of ``s``.
* **JND mAP**: pairs sorted by increasing distance (a *stable* sort, so ties keep input order),
  soft labels ``same``: ``TP = cumsum(same)``, ``FP = cumsum(1 - same)``, ``FN = Σ same - TP``;
  precision ``TP / (TP + FP)``, recall ``TP / (TP + FN)``; PASCAL-VOC continuous average precision
  (sentinels recall ``[0, …, 1]`` and precision ``[0, …, 0]``, precision made monotone by a
  backward running maximum, ``Σ Δrecall · precision`` where recall changes).
  The official code at HEAD sorts LPIPS distances of shape ``N×1×1×1`` over a size-1 axis and
  returns the first label's value; here every input is flattened to one value per item first.
* **Human ceiling** (2AFC): one rater agrees with another with probability ``p² + (1 - p)²``,
  averaged over triplets.

Distances may be any real numbers (lower = more similar); ``judge`` and ``same`` are fractions in
``[0, 1]``. Every function accepts numpy arrays, torch tensors or sequences of ``N`` items, each of
any shape holding exactly one value (``[N]``, ``[N, 1]``, ``[N, 1, 1, 1]`` …).

Intervals are percentile bootstrap intervals over items (resampling triplets/pairs with
replacement, seeded, vectorised over resamples). A paired comparison of two metrics
(:func:`paired_bootstrap`) takes its interval and its p-value from one method, so they agree.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ._bootstrap import TIE_TOL, percentile_test

if TYPE_CHECKING:  # torch is imported where it is used: the score definitions load without it
    import torch

#: Category name of the 2AFC summary rows.
MEAN_CATEGORY = "mean(traditional,cnn)"
#: The 2AFC val categories averaged in the summary rows (the published "average" of the paper).
MEAN_OF = ("traditional", "cnn")
MEAN_DEFINITION = (
    "mean = unweighted mean of the 2AFC val/traditional and val/cnn scores "
    "(the average published by Zhang et al. 2018); its interval combines the two sets' "
    "independent bootstrap distributions"
)
HUMAN = "human"


__all__ = [
    "as_items", "per_item_2afc", "score_2afc", "jnd_pr_curve", "jnd_map",
    "per_item_human_ceiling", "human_ceiling_2afc", "bootstrap_ci", "bootstrap_distribution",
    "paired_bootstrap", "paired_distribution", "paired_result", "PairedResult", "register_item_mean",
]

#: Largest number of resample × item values held at once by the vectorised bootstrap.
_BOOT_BLOCK_ELEMENTS = 4_000_000


def as_items(x: Any, name: str = "values") -> np.ndarray:
    """``x`` as a float64 vector of ``N`` items; each item (``x[i]``) must hold one value.

    Accepts numpy arrays, torch tensors (any device, detached) and nested sequences. A scalar is
    one item. Raises ``ValueError`` naming ``name`` when an item holds several values.
    """
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch tensor, without importing torch
        x = x.detach().cpu().double().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 0:
        return arr.reshape(1)
    n = arr.shape[0]
    per_item = int(np.prod(arr.shape[1:])) if arr.ndim > 1 else 1
    if per_item != 1:
        raise ValueError(
            f"{name}: expected one value per item, got shape {tuple(arr.shape)} "
            f"({per_item} values per item); pass a distance of shape [N] or [N, 1, 1, 1]"
        )
    return np.asarray(arr.reshape(n))


def _check_same_length(**arrays: np.ndarray) -> int:
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) != 1:
        detail = ", ".join(f"{k}={n}" for k, n in lengths.items())
        raise ValueError(f"arrays must have the same number of items; got {detail}")
    n = next(iter(lengths.values()))
    if n == 0:
        raise ValueError(f"{', '.join(lengths)}: no items (empty input)")
    return n


def _check_finite(name: str, x: np.ndarray) -> None:
    if not np.all(np.isfinite(x)):
        bad = int(np.flatnonzero(~np.isfinite(x))[0])
        raise ValueError(f"{name}: non-finite value {x[bad]!r} at item {bad}")


def _check_fraction(name: str, x: np.ndarray) -> None:
    _check_finite(name, x)
    if x.min() < 0.0 or x.max() > 1.0:
        raise ValueError(f"{name}: fractions must lie in [0, 1]; got range [{x.min():g}, {x.max():g}]")


def _2afc_from_items(d0: np.ndarray, d1: np.ndarray, g: np.ndarray) -> np.ndarray:
    return np.asarray((d0 < d1) * (1.0 - g) + (d1 < d0) * g + 0.5 * (d0 == d1))


def per_item_2afc(d0: Any, d1: Any, judge: Any) -> np.ndarray:
    """Per-triplet 2AFC agreement ``s ∈ [0, 1]`` (float64 ``[N]``); ties count 0.5.

    ``d0 = d(ref, p0)``, ``d1 = d(ref, p1)``; ``judge`` = fraction of raters preferring ``p1``.
    """
    a, b, g = as_items(d0, "d0"), as_items(d1, "d1"), as_items(judge, "judge")
    _check_same_length(d0=a, d1=b, judge=g)
    _check_finite("d0", a)
    _check_finite("d1", b)
    _check_fraction("judge", g)
    return _2afc_from_items(a, b, g)


def score_2afc(d0: Any, d1: Any, judge: Any) -> float:
    """2AFC score: mean agreement of the metric with the human judgments (Zhang et al. 2018 §3)."""
    return float(per_item_2afc(d0, d1, judge).mean())


def per_item_human_ceiling(judge: Any) -> np.ndarray:
    """Per-triplet probability that two random raters agree: ``p² + (1 - p)²``."""
    g = as_items(judge, "judge")
    _check_same_length(judge=g)
    _check_fraction("judge", g)
    return np.asarray(g * g + (1.0 - g) * (1.0 - g))


def human_ceiling_2afc(judge: Any) -> float:
    """Human 2AFC ceiling of the paper: ``mean(p² + (1 - p)²)`` over triplets."""
    return float(per_item_human_ceiling(judge).mean())


#: Scores that are the mean of per-item values -> that per-item function (the bootstrap's fast path).
ITEM_MEANS: dict[Callable[..., float], Callable[..., np.ndarray]] = {
    score_2afc: per_item_2afc, human_ceiling_2afc: per_item_human_ceiling}


def register_item_mean(score_fn: Callable[..., float], per_item: Callable[..., np.ndarray]) -> None:
    """Declare ``score_fn(*a) == per_item(*a).mean()`` (float64 ``[N]``): the bootstrap resamples per-item values."""
    ITEM_MEANS[score_fn] = per_item


def _jnd_checked(d: Any, same: Any) -> tuple[np.ndarray, np.ndarray]:
    x, s = as_items(d, "d"), as_items(same, "same")
    _check_same_length(d=x, same=s)
    _check_finite("d", x)
    _check_fraction("same", s)
    if s.sum() <= 0.0:
        raise ValueError("same: JND mAP is undefined when no pair was judged 'same' (all labels are 0)")
    return x, s


def _pr_batched(d: torch.Tensor, same: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Precision and recall along the last axis (rows are independent data sets)."""
    import torch

    order = torch.sort(d, dim=-1, stable=True).indices
    s = torch.gather(same, -1, order)
    tp = torch.cumsum(s, dim=-1)
    fp = torch.cumsum(1.0 - s, dim=-1)
    fn = tp[..., -1:] - tp
    return tp / (tp + fp), tp / (tp + fn)


def _voc_ap_batched(precision: torch.Tensor, recall: torch.Tensor) -> torch.Tensor:
    """VOC continuous AP along the last axis.

    Terms where recall does not change have ``Δrecall = 0`` and add nothing, so the sum over
    "points where recall changes" is the plain sum of ``Δrecall · envelope``.
    """
    import torch

    zeros = torch.zeros(precision.shape[:-1] + (1,), dtype=precision.dtype, device=precision.device)
    mrec = torch.cat([zeros, recall, torch.ones_like(zeros)], dim=-1)
    mpre = torch.cat([zeros, precision, zeros], dim=-1)
    envelope = torch.flip(torch.cummax(torch.flip(mpre, dims=[-1]), dim=-1).values, dims=[-1])
    return torch.sum((mrec[..., 1:] - mrec[..., :-1]) * envelope[..., 1:], dim=-1)


def _jnd_map_batched(d: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
    """JND AP of each row of ``d``/``same`` (float64, any device); ``nan`` where no label is set."""
    import torch

    ap = _voc_ap_batched(*_pr_batched(d, same))
    return torch.where(same.sum(dim=-1) > 0, ap, torch.full_like(ap, float("nan")))


def _jnd_map_rows(d: np.ndarray, same: np.ndarray, device: torch.device | None = None) -> np.ndarray:
    """:func:`_jnd_map_batched` of numpy rows, computed on ``device`` (default the CPU)."""
    import torch

    td = torch.as_tensor(d, dtype=torch.float64, device=device)
    ts = torch.as_tensor(same, dtype=torch.float64, device=device)
    return _jnd_map_batched(td, ts).cpu().numpy()


def jnd_pr_curve(d: Any, same: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(precision, recall)`` after sorting pairs by increasing distance (stable), for plots."""
    import torch

    x, s = _jnd_checked(d, same)
    precision, recall = _pr_batched(torch.from_numpy(x), torch.from_numpy(s))
    return precision.numpy(), recall.numpy()


def jnd_map(d: Any, same: Any) -> float:
    """JND mean average precision (VOC continuous AP over the soft precision–recall curve).

    ``d`` = distance between the two patches of each pair (any shape with one value per pair);
    ``same`` = fraction of raters who said the pair looked the same.
    """
    x, s = _jnd_checked(d, same)
    return float(_jnd_map_rows(x, s))


#: Scores computed for a whole matrix of resamples at once.
BATCHED: dict[Callable[..., float], Callable[..., np.ndarray]] = {jnd_map: _jnd_map_rows}


def _resolve_batched(score_fn: Callable[..., float]
                     ) -> tuple[Callable[..., Any] | None, Callable[..., np.ndarray] | None]:
    """``(per_item | None, batched | None)`` from :data:`ITEM_MEANS` / :data:`BATCHED`."""
    return ITEM_MEANS.get(score_fn), BATCHED.get(score_fn)


def _prepare(score_fn: Callable[..., float], arrays: Sequence[Any],
             device: Any = None) -> tuple[int, Callable[[np.ndarray], np.ndarray]]:
    """Validate once; returns (n_items, function mapping an index matrix [B, N] -> scores [B]).

    With a torch ``device`` the known scores are computed there (same resamples, float64).
    """
    if not arrays:
        raise ValueError("bootstrap: give the arrays the score is computed from")
    per_item, batched = _resolve_batched(score_fn)
    if device is not None and (per_item is not None or batched is not None):
        import torch

        dev = torch.device(device)
        if per_item is not None:
            tv = torch.as_tensor(per_item(*arrays), dtype=torch.float64, device=dev)
            return len(tv), lambda idx: tv[torch.as_tensor(idx, device=dev)].mean(dim=-1).cpu().numpy()
        x, s = _jnd_checked(*arrays)
        tx = torch.as_tensor(x, dtype=torch.float64, device=dev)
        ts = torch.as_tensor(s, dtype=torch.float64, device=dev)

        def on_device(idx: np.ndarray) -> np.ndarray:
            ti = torch.as_tensor(idx, device=dev)
            return _jnd_map_batched(tx[ti], ts[ti]).cpu().numpy()

        return len(x), on_device
    if per_item is not None:
        values = per_item(*arrays)
        n = len(values)
        return n, lambda idx: values[idx].mean(axis=-1)
    if batched is not None:
        x, s = _jnd_checked(*arrays)
        n = len(x)
        return n, lambda idx: batched(x[idx], s[idx])
    items = [as_items(a, f"array {k}") for k, a in enumerate(arrays)]
    n = _check_same_length(**{f"array{k}": a for k, a in enumerate(items)})

    def looped(idx: np.ndarray) -> np.ndarray:
        return np.array([score_fn(*(a[row] for a in items)) for row in idx], dtype=np.float64)

    return n, looped


def _resample_blocks(n: int, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(seed)
    rows = max(1, _BOOT_BLOCK_ELEMENTS // max(n, 1))
    done = 0
    while done < n_boot:
        b = min(rows, n_boot - done)
        yield rng.integers(0, n, size=(b, n))
        done += b


def _check_boot_args(n_boot: int, alpha: float) -> None:
    if int(n_boot) < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0.0 < float(alpha) < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")


def bootstrap_distribution(
    score_fn: Callable[..., float], *arrays: Any, n_boot: int = 1000, seed: int = 0,
    device: Any = None,
) -> np.ndarray:
    """Scores of ``n_boot`` resamples of the items (with replacement), float64 ``[n_boot]``.

    ``score_fn`` is one of :func:`score_2afc`, :func:`jnd_map`, :func:`human_ceiling_2afc`
    (vectorised over resamples) or any ``f(*arrays) -> float`` (evaluated per resample).
    Resamples where the score is undefined (JND with no "same" label drawn) are ``nan``.
    ``device``: a torch device to compute the known scores on (e.g. ``"cuda"``); the resampled
    indices are drawn by numpy either way, so the result does not depend on it.
    """
    _check_boot_args(n_boot, 0.05)
    n, fn = _prepare(score_fn, arrays, device)
    return np.concatenate([fn(idx) for idx in _resample_blocks(n, int(n_boot), seed)])


def percentile_interval(boot: np.ndarray, alpha: float) -> tuple[float, float]:
    """The ``1 - alpha`` percentile interval of the finite values of ``boot`` (NaNs if there are none)."""
    finite = boot[np.isfinite(boot)]
    if finite.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(finite, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(lo), float(hi)


def bootstrap_ci(
    score_fn: Callable[..., float], *arrays: Any, n_boot: int = 1000, seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Percentile bootstrap ``(low, high)`` interval (coverage ``1 - alpha``) of ``score_fn``.

    Items (triplets or pairs) are resampled with replacement, ``n_boot`` times, with
    ``numpy.random.default_rng(seed)``; the same seed gives the same interval.

    >>> bootstrap_ci(score_2afc, d0, d1, judge, n_boot=1000, seed=0)   # doctest: +SKIP
    (0.61, 0.66)
    """
    _check_boot_args(n_boot, alpha)
    boot = bootstrap_distribution(score_fn, *arrays, n_boot=n_boot, seed=seed)
    return percentile_interval(boot, float(alpha))


class PairedResult(NamedTuple):
    """``diff = score(A) - score(B)``, its interval ``ci`` and two-sided ``p_value``; unpacks as ``diff, ci, p``."""

    diff: float
    ci: tuple[float, float]
    p_value: float


def paired_distribution(
    score_fn: Callable[..., float], a_arrays: Sequence[Any], b_arrays: Sequence[Any], *,
    n_boot: int = 1000, seed: int = 0, device: Any = None,
) -> tuple[float, np.ndarray]:
    """``(diff, boot)``: ``score(A) - score(B)`` on all items and on ``n_boot`` paired resamples.

    Both metrics are resampled with the SAME item indices (the indices
    :func:`bootstrap_distribution` draws for ``seed``), so ``boot`` equals the difference of the
    two metrics' bootstrap distributions for that seed. ``nan`` where a resample's score is
    undefined. Arguments as :func:`paired_bootstrap`.
    """
    _check_boot_args(n_boot, 0.05)
    a_arrays, b_arrays = tuple(a_arrays), tuple(b_arrays)
    na, fa = _prepare(score_fn, a_arrays, device)
    nb, fb = _prepare(score_fn, b_arrays, device)
    if na != nb:
        raise ValueError(f"paired bootstrap needs the same items for both metrics; got {na} and {nb}")
    full = np.arange(na)[None, :]
    diff = float(fa(full)[0] - fb(full)[0])
    boot = np.concatenate([fa(idx) - fb(idx) for idx in _resample_blocks(na, int(n_boot), seed)])
    return diff, boot


def paired_result(diff: float, boot: np.ndarray, alpha: float = 0.05, tie_tol: float = TIE_TOL) -> PairedResult:
    """:class:`PairedResult` of a difference and its resampled values.

    Computed by :func:`bapps_toolkit._bootstrap.percentile_test` (``p < alpha`` iff 0 is outside the interval;
    resampled differences within ``tie_tol`` of 0 are ties).
    """
    low, high, p = percentile_test(boot, float(alpha), tie_tol)
    return PairedResult(float(diff), (low, high), p)


def paired_bootstrap(
    score_fn: Callable[..., float], a_arrays: Sequence[Any], b_arrays: Sequence[Any], *,
    n_boot: int = 1000, seed: int = 0, alpha: float = 0.05, device: Any = None, tie_tol: float = TIE_TOL,
) -> PairedResult:
    """Paired bootstrap comparison of two metrics scored on the same items.

    ``a_arrays`` / ``b_arrays`` are the argument tuples of ``score_fn`` for metric A and B
    (e.g. ``(d0_a, d1_a, judge)`` and ``(d0_b, d1_b, judge)``). Both are resampled with the SAME
    item indices (:func:`paired_distribution`). Returns ``(diff, (low, high), p_value)``
    (a :class:`PairedResult`): ``diff = score(A) - score(B)`` on the full data and, from ONE
    method — the percentile bootstrap and its inverted test (:func:`~bapps_toolkit._bootstrap.
    percentile_test`, proof there) — the ``1 - alpha`` interval ``[d*(k), d*(B + 1 - k)]`` of the
    ``B`` sorted resampled differences, ``k`` the smallest integer with ``2k/B >= alpha``, and
    ``p = min(1, 2 min(#{d* <= 0}, #{d* >= 0}) / B)``. Hence ``p < alpha`` exactly when the
    interval excludes 0, for every data set, seed and ``alpha``. Resamples where the score is
    undefined are left out (``B`` counts the rest); resampled differences within ``tie_tol`` of 0
    are ties at 0 (float rounding); identical inputs give ``p = 1`` and ``[0, 0]``.
    """
    _check_boot_args(n_boot, alpha)
    diff, boot = paired_distribution(score_fn, a_arrays, b_arrays, n_boot=n_boot, seed=seed, device=device)
    return paired_result(diff, boot, alpha, tie_tol)
