"""Simulated studies: the mini set's observer answers through the real study store.

So assignment policies can be compared on answers spent for the error they reach (no HTTP).

**Synthetic**: the raters are the simulated observer of :mod:`bapps_toolkit.data.mini`, not
people. For each item of the chosen sets the observer's *true* probability is computed from the
item's images exactly as the mini set does: 2AFC ``P(p1) = sigmoid((D(ref,p0) − D(ref,p1)) / τ + ε)``
with ``ε ~ N(0, 1)`` drawn per item from the simulation seed (the mini set's own ε are not
stored), JND ``P(same) = sigmoid((θ − D(p0,p1)) / τ_jnd)``. A simulated rater answers each item
"1" with that probability, and each sentinel right with probability ``sentinel_accuracy``.

The study runs through :func:`~.store.next_trial` and :func:`~.store.record_answer` on a
temporary database (its images are 1-pixel placeholders: simulated raters look at none; it is
written without fsync, being thrown away), ``concurrent`` raters at a time answering in turn,
until no rater gets a trial. After every ``checkpoint`` answers three errors of the per-item
estimates are recorded:

* ``rmse``: root-mean-square error of the exported judge fraction ``k/n`` (0.5 for an item without
  answers) against the true probability, over items;
* ``p90``: the 90th percentile over items of that absolute error;
* ``max_width``: the widest central credible interval (the study's ``credible_level`` and
  ``prior``, same for both policies) over items: the precision promised for the worst-known
  item. ``coverage`` (the share of items whose true probability lies inside their interval)
  shows whether those intervals are honest error bars.

:func:`compare` runs balanced assignment (to ``judgments_per_item`` answers on every item) and
adaptive assignment (until every item is narrower than the target width or at the cap) on the
same items and seeds, and reports for each error how many answers balanced assignment needed to
reach what adaptive assignment ended with. The two policies optimise different things: the
equal-width allocation of adaptive assignment gives, in the large-sample limit, the same mean
squared error as a uniform one (``Σ pq/n_i`` with ``n_i ∝ p_i q_i`` equals it with ``n_i``
constant), so savings are expected on the worst-known item, not on the RMSE.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import special

from .._io import PathLike
from ..data.datasets import load_2afc, load_jnd
from ..data.mini.observer import JND_TAU, JND_THETA, OBS_NOISE, OBS_TAU, observer_distance, sigmoid
from ..data.png import png_bytes
from ..errors import DataError
from .answers import AnswerPost
from .items import Item
from .posterior import credible_width, posterior_params
from .settings import StudyConfig, prior_of
from .store import create_study, load_config, next_trial, open_study, record_answer
from .store_reports import answer_counts, item_records, write_unsynced

_PIXEL = png_bytes(np.full((1, 1, 3), 128, dtype=np.uint8))
_TIMINGS = {"ref_ms": 1000.0, "blank_ms": 250.0, "dist_ms": 1000.0}


@dataclass(frozen=True)
class ObserverItems:
    """Items with the observer's true probability of answering "1" (2AFC: ``p1``; JND: "same")."""

    items: list[Item]
    p_true: dict[tuple[str, str], float]


MEASURES = ("rmse", "p90", "max_width")


@dataclass(frozen=True)
class Curve:
    """Errors of the per-item estimates after ``answers`` real answers (one entry per checkpoint)."""

    answers: list[int]
    rmse: list[float]
    p90: list[float]
    max_width: list[float]
    coverage: list[float]

    def add(self, answers: int, rmse: float, p90: float, max_width: float, coverage: float) -> None:
        """Append one checkpoint."""
        for values, v in zip((self.answers, self.rmse, self.p90, self.max_width, self.coverage),
                             (answers, rmse, p90, max_width, coverage), strict=True):
            values.append(v)  # type: ignore[attr-defined]

    def answers_to(self, target: float, measure: str) -> int | None:
        """The first checkpoint's answers at which ``measure`` (one of :data:`MEASURES`) is at most ``target``."""
        values: list[float] = getattr(self, measure)
        return next((a for a, v in zip(self.answers, values, strict=True) if v <= target + 1e-12), None)


@dataclass(frozen=True)
class PolicyRun:
    """One simulated study: its policy, seed, error curve and totals at the end."""

    policy: str
    seed: int
    curve: Curve
    answers: int
    raters: int

    def final(self, measure: str) -> float:
        """The value of ``measure`` at the end of the study."""
        return float(getattr(self.curve, measure)[-1])


@dataclass(frozen=True)
class ObserverPool:
    """Every item of the chosen sets with the observer's hidden quantities.

    For 2AFC ``(D(ref,p0) − D(ref,p1)) / τ`` (before the per-item noise), for JND the probability of "same".
    """

    keys: list[tuple[str, str]]
    is_2afc: np.ndarray
    value: np.ndarray


def observer_pool(source: PathLike, datasets: str = "val") -> ObserverPool:
    """Load the 2AFC and JND ``datasets`` of a set and compute the observer's hidden distances once.

    The set is a mini set or any set in the BAPPS layout or packed.

    Raises:
        DataError: the source has no 2AFC sets of that name.
    """
    keys: list[tuple[str, str]] = []
    kinds: list[bool] = []
    values: list[float] = []
    for s in load_2afc(source, datasets, workers=1):
        ref, p0, p1 = (np.asarray(x) for x in (s.ref, s.p0, s.p1))
        margin = (observer_distance(ref, p0) - observer_distance(ref, p1)) / OBS_TAU
        keys += [(s.key, stem) for stem in s.stems]
        kinds += [True] * len(s.stems)
        values += [float(v) for v in margin]
    try:
        for j in load_jnd(source, datasets, workers=1):
            p = sigmoid((JND_THETA - observer_distance(np.asarray(j.p0), np.asarray(j.p1))) / JND_TAU)
            keys += [(j.key, stem) for stem in j.stems]
            kinds += [False] * len(j.stems)
            values += [float(v) for v in p]
    except DataError:
        pass  # a source without JND sets
    return ObserverPool(keys, np.asarray(kinds), np.asarray(values))


def observer_items(pool: ObserverPool, n_items: int, seed: int) -> ObserverItems:
    """``n_items`` items drawn (by ``seed``) from ``pool`` with their true probabilities.

    The 2AFC items' observer noise ``ε ~ N(0, 1)`` is drawn from ``seed`` too.

    Raises:
        DataError: fewer than ``n_items`` items in the pool.
    """
    if len(pool.keys) < n_items:
        raise DataError(f"{len(pool.keys)} items in the simulation's sets, fewer than the {n_items} asked for")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0]))
    eps = rng.normal(0.0, OBS_NOISE, len(pool.keys))
    probs = np.where(pool.is_2afc, sigmoid(pool.value + eps), pool.value)
    pick = sorted(int(i) for i in rng.choice(len(pool.keys), size=n_items, replace=False))
    items = [Item(pool.keys[i][0], pool.keys[i][1], {"ref": _PIXEL, "p0": _PIXEL, "p1": _PIXEL}
                  if pool.is_2afc[i] else {"p0": _PIXEL, "p1": _PIXEL}) for i in pick]
    return ObserverItems(items, {pool.keys[i]: float(probs[i]) for i in pick})


def _errors(con: Any, truth: dict[int, float], cfg: StudyConfig) -> tuple[int, float, float, float, float]:
    counts = dict.fromkeys(truth, (0, 0))
    for item, n, k in answer_counts(con):
        if item in counts:
            counts[item] = (n, k)
    n_arr = np.asarray([n for n, _ in counts.values()], dtype=np.float64)
    k_arr = np.asarray([k for _, k in counts.values()], dtype=np.float64)
    p = np.asarray(list(truth.values()))
    err = np.abs(np.where(n_arr > 0, k_arr / np.maximum(n_arr, 1.0), 0.5) - p)
    a, b = posterior_params(k_arr, n_arr, prior_of(cfg))
    level = float(cfg["credible_level"])
    lo, hi = special.betaincinv(a, b, (1.0 - level) / 2.0), special.betaincinv(a, b, (1.0 + level) / 2.0)
    return (int(n_arr.sum()), float(np.sqrt(np.mean(err ** 2))), float(np.quantile(err, 0.9)),
            float(credible_width(a, b, level).max()), float(np.mean((lo <= p) & (p <= hi))))


def _answer(rng: np.random.Generator, trial: dict[str, Any], truth: dict[int, float], expected: dict[int, int],
            sentinel_accuracy: float) -> AnswerPost:
    item = int(trial["item"])
    if item in expected:
        value = expected[item] if rng.random() < sentinel_accuracy else 1 - expected[item]
    else:
        value = int(rng.random() < truth[item])
    if trial["kind"] == "2afc":
        side = "right" if bool(value) != bool(trial["swapped"]) else "left"
        return AnswerPost(item, side, 700.0, None)
    return AnswerPost(item, "same" if value else "different", 700.0, dict(_TIMINGS))


def run_policy(obs: ObserverItems, settings: dict[str, Any], seed: int, folder: PathLike, *,
               concurrent: int = 10, sentinel_accuracy: float = 0.95, checkpoint: int = 50) -> PolicyRun:
    """Run one simulated study with ``settings`` (module docstring) in a database under ``folder``."""
    policy = settings.get("assignment", "balanced")
    db = Path(folder) / f"sim-{policy}-{settings.get('target_width', '') if policy == 'adaptive' else ''}-{seed}.sqlite"
    create_study(db, obs.items, **{**settings, "seed": int(seed), "reassign_after_s": 0})
    con = open_study(db)
    try:
        write_unsynced(con)
        cfg = load_config(con)
        rows = list(item_records(con))
        truth = {r.id: obs.p_true[(r.set_key, r.stem)] for r in rows if r.expected is None}
        expected = {r.id: int(r.expected) for r in rows if r.expected is not None}
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 1]))
        curve = Curve([], [], [], [], [])
        pool: list[str] = []
        n_raters = given = 0
        while True:
            while len(pool) < concurrent:  # a newcomer finding no trial stops arrivals until a rater finishes
                name = f"sim{n_raters + 1:05d}"
                if next_trial(con, name, cfg)["total"] == 0:
                    break
                n_raters += 1
                pool.append(name)
            if not pool:
                break
            for rater in list(pool):
                trial = next_trial(con, rater, cfg)
                if trial["done"]:
                    pool.remove(rater)
                    continue
                record_answer(con, rater, cfg, _answer(rng, dict(trial), truth, expected, sentinel_accuracy))
                given += 1
                if given % checkpoint == 0:
                    curve.add(*_errors(con, truth, cfg))
        curve.add(*_errors(con, truth, cfg))
    finally:
        con.close()
    return PolicyRun(cfg["assignment"], int(seed), curve, curve.answers[-1], n_raters)


@dataclass(frozen=True)
class ComparisonRow:
    """One seed and target width: each policy's run, and the answers balanced assignment needed per measure.

    Per measure, the answers balanced assignment needed to reach the value adaptive assignment ended with
    (``None``: never).
    """

    seed: int
    target_width: float
    balanced: PolicyRun
    adaptive: PolicyRun
    balanced_to: dict[str, int | None]

    def saved(self, measure: str) -> float | None:
        """Share of balanced assignment's answers that adaptive did not need at equal ``measure``."""
        to = self.balanced_to[measure]
        return None if to is None else 1.0 - self.adaptive.answers / to


def compare(source: PathLike, seeds: list[int], *, n_items: int = 300, widths: tuple[float, ...] = (0.3,),
            settings: dict[str, Any] | None = None, concurrent: int = 10, datasets: str = "val") -> list[ComparisonRow]:
    """Balanced against adaptive assignment on the observer's items.

    Per seed one balanced study and one adaptive study per target width, on the same items.

    Args:
        source: the mini set (``bapps make-mini``) or another set with images.
        seeds: simulation seeds (items drawn, observer noise ε, raters' answers, study seed).
        n_items: items per simulated study.
        widths: adaptive assignment's target widths to try.
        settings: study settings shared by both policies (default: 20 items per rater, at most 40
            judgments per item, 10 % sentinels, credible level 0.9, prior Beta(1, 1)).
        concurrent: raters answering at the same time.
        datasets: which sets of ``source`` to draw from.
    """
    base = {"items_per_rater": 20, "judgments_per_item": 40, "sentinel_share": 0.1, "credible_level": 0.9,
            "prior": [1.0, 1.0], **(settings or {})}
    rows = []
    pool = observer_pool(source, datasets)
    with tempfile.TemporaryDirectory(prefix="bapps-simulate-") as tmp:
        for seed in seeds:
            obs = observer_items(pool, n_items, seed)
            bal = run_policy(obs, {**base, "assignment": "balanced"}, seed, tmp, concurrent=concurrent)
            for width in widths:
                ada = run_policy(obs, {**base, "assignment": "adaptive", "target_width": width}, seed, tmp,
                                 concurrent=concurrent)
                to = {m: bal.curve.answers_to(ada.final(m), m) for m in MEASURES}
                rows.append(ComparisonRow(seed, width, bal, ada, to))
    return rows


def _saved_text(r: ComparisonRow, measure: str) -> str:
    """The saving, or its lower bound when balanced assignment never reached adaptive's value."""
    v = r.saved(measure)
    if v is not None:
        return f"{100.0 * v:+.0f}%"
    return f">{100.0 * (1.0 - r.adaptive.answers / r.balanced.answers):+.0f}%"


def _line(seed: int, label: str, run: PolicyRun, extra: str = "") -> str:
    return (f"{seed:>4}  {label:<16} {run.answers:>7} {run.final('rmse'):>6.3f} {run.final('p90'):>6.3f} "
            f"{run.final('max_width'):>6.3f} {run.final('coverage'):>5.2f}{extra}")


def comparison_table(rows: list[ComparisonRow]) -> str:
    """The comparison as a plain-text table, with the mean saving per target width (synthetic data).

    ``n/r``: balanced assignment never reached adaptive's value (not even with every item at the cap).
    """
    head = (f"{'seed':>4}  {'policy':<16} {'answers':>7} {'RMSE':>6} {'P90':>6} {'maxW':>6} {'cover':>5}   "
            f"{'balanced answers at equal RMSE/P90/maxW':>40}   saved at equal RMSE/P90/maxW")
    lines = ["SYNTHETIC: simulated observer of the mini set, not human raters. answers = answers on real items;",
             "RMSE, P90 = error of k/n against the true probability; maxW = widest credible interval;",
             "cover = share of items whose true probability lies in their interval; n/r = balanced never",
             "reached it (every item at the cap); the saving is then more than the bound >X% shown.",
             head, "-" * len(head)]
    for i, r in enumerate(rows):
        if i == 0 or rows[i - 1].seed != r.seed:
            lines.append(_line(r.seed, "balanced", r.balanced))
        to = " / ".join(str(r.balanced_to[m] or "n/r") for m in MEASURES)
        saved = " / ".join(_saved_text(r, m) for m in MEASURES)
        lines.append(_line(r.seed, f"adaptive w={r.target_width:g}", r.adaptive, f"   {to:>40}   {saved}"))
    for width in sorted({r.target_width for r in rows}):
        parts = []
        for measure in MEASURES:
            group = [r for r in rows if r.target_width == width]
            vals = [v for r in group if (v := r.saved(measure)) is not None]
            sd = 100 * float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
            text = f"{measure} {100 * float(np.mean(vals)):+.1f}% (sd {sd:.1f})" if vals else f"{measure} n/r"
            if len(vals) < len(group):
                text += f" [{len(group) - len(vals)} of {len(group)} seeds n/r, saving above the bound shown]"
            parts.append(text)
        lines.append(f"adaptive w={width:g}, answers saved at equal error, mean over seeds: " + "; ".join(parts))
    return "\n".join(lines)
