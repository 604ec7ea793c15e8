"""Paired comparison of two evaluated metrics A and B on every BAPPS set, and on the 2AFC mean.

For each set both metrics' per-item distances are resampled with the SAME items (the seed of the
set that the intervals of the table use): 2AFC, the difference of the 2AFC scores (mean over
triplets of the per-triplet agreement); JND, the difference of the mAPs of the resampled pairs.
The 2AFC mean row (unweighted mean of val/traditional and val/cnn, :data:`MEAN_CATEGORY`)
averages the two sets' paired resampled differences (the sets are resampled independently, as
for the table's mean interval). Intervals and p-values come from one method,
:func:`bapps_toolkit.scores.paired_bootstrap` / :func:`~bapps_toolkit.scores.paired_result`
(percentile bootstrap and its inverted test): ``p < alpha`` exactly when the ``1 - alpha``
interval excludes 0.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypedDict

import numpy as np

from ..errors import UsageError
from ..scores import MEAN_CATEGORY, MEAN_OF, jnd_map, paired_distribution, paired_result, score_2afc
from .distances import SetDistances

#: Keys of a comparison record (the ``comparisons`` of an evaluation).
COMPARISON_KEYS = ("a", "b", "label_a", "label_b", "mode", "split", "category", "n", "score_a",
                   "score_b", "diff", "ci_low", "ci_high", "p_value", "alpha", "n_boot", "synthetic")


class Comparison(TypedDict):
    """Metric A against metric B on one BAPPS set (the fields of :data:`COMPARISON_KEYS`).

    ``diff`` is score A − score B (2AFC or JND mAP), ``ci_low``/``ci_high`` its paired bootstrap
    interval at level ``1 - alpha`` over ``n_boot`` finite resamples, ``p_value`` the two-sided
    test of no difference.
    """

    a: str
    b: str
    label_a: str
    label_b: str
    mode: str
    split: str
    category: str
    n: int
    score_a: float
    score_b: float
    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    alpha: float
    n_boot: int
    synthetic: bool


def check_compare(compare: Sequence[str] | None, ids: Sequence[str]) -> tuple[str, str] | None:
    """``(A, B)`` as evaluated metric ids, or None; the error names what is wrong and lists ``ids``."""
    if compare is None:
        return None
    pair = [compare] if isinstance(compare, str) else list(compare)
    listed = ", ".join(ids)
    if len(pair) != 2:
        raise UsageError(f"compare: give two metrics A B (A minus B is reported), got {pair}; "
                         f"evaluated metrics: {listed}")
    found = []
    for name in (str(p) for p in pair):
        hit = name if name in ids else next((i for i in ids if i.lower() == name.lower()), None)
        found.append((name, hit))
    missing = [name for name, hit in found if hit is None]
    if missing:
        what = " and ".join(repr(m) for m in missing)
        raise UsageError(f"compare: {what} {'is' if len(missing) == 1 else 'are'} not among the evaluated "
                         f"metrics ({listed}); add {'it' if len(missing) == 1 else 'them'} to the metrics "
                         f"or compare two of those")
    a, b = (str(hit) for _, hit in found)
    if a == b:
        raise UsageError(f"compare: A and B are the same metric ({a!r}); give two different ones of: {listed}")
    return a, b


def _arrays(sd: SetDistances) -> tuple[Callable[..., float], tuple[Any, ...]]:
    if sd.mode == "2afc":
        return score_2afc, (sd.d0, sd.d1, sd.judge)
    return jnd_map, (sd.d, sd.same)


def _record(a: SetDistances, b: SetDistances, mode: str, split: str, category: str, n: int,
            scores: tuple[float, float], diff: float, boot: np.ndarray, alpha: float,
            synthetic: bool) -> Comparison:
    res = paired_result(diff, boot, alpha)
    return Comparison(a=a.metric, b=b.metric, label_a=a.label, label_b=b.label, mode=mode, split=split,
                category=category, n=int(n), score_a=float(scores[0]), score_b=float(scores[1]),
                diff=res.diff, ci_low=res.ci[0], ci_high=res.ci[1], p_value=res.p_value, alpha=float(alpha),
                n_boot=int(np.isfinite(boot).sum()), synthetic=bool(synthetic))


def compare_metrics(pair: tuple[str, str], distances: Sequence[SetDistances], *, n_boot: int,
                    seeds: Mapping[str, int], alpha: float, synthetic: Mapping[str, bool],
                    device: Any = None) -> list[Comparison]:
    """Comparison records (:data:`COMPARISON_KEYS`) of A − B on every set both were scored on.

    Then the 2AFC mean row when val/traditional and val/cnn are both there.

    ``seeds[key]``: the bootstrap seed of set ``key`` (the table's); ``synthetic[key]``: whether
    the set is simulated.
    """
    by = {(sd.metric, sd.key): sd for sd in distances}
    a_id, b_id = pair
    out: list[Comparison] = []
    kept: dict[str, tuple[float, float, float, np.ndarray, int]] = {}
    for sd in distances:
        if sd.metric != a_id or (b_id, sd.key) not in by:
            continue
        other = by[(b_id, sd.key)]
        fn, args_a = _arrays(sd)
        _, args_b = _arrays(other)
        diff, boot = paired_distribution(fn, args_a, args_b, n_boot=n_boot, seed=seeds[sd.key], device=device)
        scores = (fn(*args_a), fn(*args_b))
        mode, split, category = sd.key.split("/")
        out.append(_record(sd, other, mode, split, category, len(args_a[-1]), scores, diff, boot, alpha,
                           synthetic[sd.key]))
        kept[sd.key] = (scores[0], scores[1], diff, boot, out[-1]["n"])
    keys = [f"2afc/val/{c}" for c in MEAN_OF]
    if all(k in kept for k in keys):
        parts = [kept[k] for k in keys]
        first_a, first_b = by[(a_id, keys[0])], by[(b_id, keys[0])]
        out.append(_record(
            first_a, first_b, "2afc", "val", MEAN_CATEGORY, sum(p[4] for p in parts),
            (float(np.mean([p[0] for p in parts])), float(np.mean([p[1] for p in parts]))),
            float(np.mean([p[2] for p in parts])), np.mean([p[3] for p in parts], axis=0), alpha,
            any(synthetic[k] for k in keys)))
    return out
