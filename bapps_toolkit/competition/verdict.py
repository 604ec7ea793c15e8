"""The verdict of a judged competition: which metric people sided with, and by how much.

Input: the manifest's items (:mod:`.records`) and, per judged item, the fraction of (kept)
raters who chose ``p1`` as closer to the reference. For an item, ``f`` = the fraction who chose
the side the **pushed** metric (MAD) / **attacker** (gMAD) calls closer: the other metric was
held at (nearly) one value and claims the two images are equally far from the reference.

**Per metric pair** {X, Y} (MAD: Wang & Simoncelli, *J. Vision* 2008 — "the model whose
extremal stimulus pairs are easier for subjects to discriminate is the better model"): on the
items where Y was pushed and X held, people side with Y when they follow Y's ordering (``f``);
on the items where X was pushed and Y held, they side with Y when they do not follow X's
ordering (``1 − f``). The **share** of Y is the mean of those two item means (each item counts
once, whatever its number of raters; with one half only, that half's mean); X's share is
``1 − share(Y)``. 0.5 is chance: both metrics' extremal pairs are as discriminable, or neither.
The favoured metric is the one above 0.5. Interval: percentile bootstrap over items, resampled
within each half (``n_boot`` resamples, seeded); significance: the two-sided bootstrap test of
"share = 0.5" read off the same resamples (:func:`bapps_toolkit._bootstrap.percentile_test`),
so ``p < alpha`` exactly when the ``1 − alpha`` interval excludes 0.5. A significant share
names the **winner**; otherwise there is none.

**gMAD matrices** (Ma et al., IEEE TPAMI 2020, introduce *aggressiveness* — how well a model
attacks others — and *resistance* — how well it withstands their attacks). Their paper's exact
estimator could not be read from the sources available when this was written; the toolkit
uses this 2AFC reading of the two notions, and says so in every report:

* ``aggressiveness[A, D]`` = mean over the items where A attacked D of ``f``: the share of
  judgments that confirm the difference the attacker claims (0.5 = people cannot tell the
  attacker's ordering from chance, i.e. they see the pair as about equal, as D claims);
* ``resistance[D, A] = 1 − aggressiveness[A, D]``: the share that does not confirm it.

Each cell has its item-bootstrap interval and test against 0.5; a model's overall figures are
the means of its row (over the opponents it met).
"""
from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .._bootstrap import percentile_test
from ..errors import UsageError
from .records import CompetitionItem, Manifest

CHANCE = 0.5
#: Resampled item values held in memory at once.
_BLOCK = 4_000_000


@dataclass(frozen=True)
class Judged:
    """A judged item: the fraction of kept raters who chose ``p1`` and how many raters (0 = unknown)."""

    item: CompetitionItem
    p1_share: float
    votes: int = 0

    @property
    def follows_pushed(self) -> float:
        """The fraction who chose the side the pushed metric (attacker) calls closer."""
        return self.p1_share if self.item.pushed_prefers == "p1" else 1.0 - self.p1_share


@dataclass(frozen=True)
class Share:
    """A share with its ``1 − alpha`` bootstrap interval and the test of "share = 0.5"."""

    value: float
    low: float
    high: float
    p: float
    alpha: float
    items: int
    votes: int
    n_boot: int = 0

    @property
    def significant(self) -> bool:
        """Whether the share differs from one half at level ``alpha``."""
        return bool(self.p < self.alpha)

    def flipped(self) -> Share:
        """The complementary share (the other metric's)."""
        return Share(1.0 - self.value, 1.0 - self.high, 1.0 - self.low, self.p, self.alpha, self.items, self.votes,
                     self.n_boot)

    def text(self) -> str:
        """The share, its interval and the test in one sentence."""
        lvl = f"{100 * (1 - self.alpha):g}%"
        p = f"p < {2 / self.n_boot:.2g}" if self.p == 0 and self.n_boot else f"p = {self.p:.4f}"
        verdict = (f"{p}, below {self.alpha:g}: significant" if self.significant
                   else f"{p} >= {self.alpha:g}: not distinguishable from chance")
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}] ({lvl} interval, {self.items} items; {verdict})"


@dataclass(frozen=True)
class PairVerdict:
    """The verdict of metric pair {``a``, ``b``}: the favoured metric, its share, the halves."""

    a: str
    b: str
    favoured: str
    share: Share
    b_pushed: Share | None
    a_pushed: Share | None

    @property
    def winner(self) -> str | None:
        """The favoured metric when its share is significantly above chance, else None."""
        return self.favoured if self.share.significant else None


@dataclass(frozen=True)
class Matrices:
    """gMAD's matrices over ``metrics`` (NaN where two metrics did not meet)."""

    metrics: list[str]
    aggressiveness: np.ndarray
    aggressiveness_low: np.ndarray
    aggressiveness_high: np.ndarray
    aggressiveness_p: np.ndarray
    items: np.ndarray

    @property
    def resistance(self) -> np.ndarray:
        """``resistance[D, A] = 1 − aggressiveness[A, D]``."""
        return np.asarray(1.0 - self.aggressiveness.T)

    @property
    def resistance_low(self) -> np.ndarray:
        """Resistance of each defender when the attacker pushes it low (1 - aggressiveness_high, transposed)."""
        return np.asarray(1.0 - self.aggressiveness_high.T)

    @property
    def resistance_high(self) -> np.ndarray:
        """Resistance of each defender when the attacker pushes it high (1 - aggressiveness_low, transposed)."""
        return np.asarray(1.0 - self.aggressiveness_low.T)


@dataclass(frozen=True)
class Verdict:
    """Everything :func:`verdict` found: per pair, the gMAD matrices (gMAD only), the items."""

    kind: str
    pairs: list[PairVerdict]
    matrices: Matrices | None
    judged: list[Judged]
    n_boot: int
    alpha: float


def _boot_means(groups: Sequence[np.ndarray], signs: Sequence[bool], n_boot: int,
                rng: np.random.Generator) -> tuple[float, np.ndarray]:
    """Point value and resampled values of the mean over groups of (f or 1 − f) item means."""
    point, boot = [], []
    for g, keep in zip(groups, signs, strict=True):
        v = g if keep else 1.0 - g
        point.append(float(v.mean()))
        rows = max(1, _BLOCK // v.size)  # resampled in blocks: memory stays bounded for large sets
        boot.append(np.concatenate([v[rng.integers(0, v.size, size=(min(rows, n_boot - k), v.size))].mean(axis=1)
                                    for k in range(0, n_boot, rows)]))
    return float(np.mean(point)), np.mean(np.stack(boot), axis=0)


def _rng(seed: int, *names: str) -> np.random.Generator:
    """The resampling generator of one statistic, seeded by ``seed`` and the statistic's identity.

    So the same items get the same resamples wherever they are summarised (a pair's half and the
    matrix cell of the same attacker and defender give one interval and one p-value).
    """
    return np.random.default_rng(np.random.SeedSequence([seed, *(zlib.crc32(n.encode()) for n in names)]))


def _share(groups: Sequence[np.ndarray], signs: Sequence[bool], votes: int, n_boot: int, alpha: float,
           rng: np.random.Generator) -> Share:
    value, boot = _boot_means(groups, signs, n_boot, rng)
    low, high, p = percentile_test(boot - CHANCE, alpha)
    return Share(value, low + CHANCE, high + CHANCE, p, alpha, int(sum(g.size for g in groups)), votes, n_boot)


def _f(items: Sequence[Judged]) -> np.ndarray:
    return np.array([j.follows_pushed for j in items], dtype=np.float64)


def pair_verdict(a: str, b: str, judged: Sequence[Judged], *, n_boot: int, alpha: float,
                 seed: int = 0) -> PairVerdict | None:
    """The verdict of {a, b} from its judged items (None when none was judged)."""
    b_half = [j for j in judged if (j.item.held, j.item.pushed) == (a, b)]
    a_half = [j for j in judged if (j.item.held, j.item.pushed) == (b, a)]
    if not b_half and not a_half:
        return None
    groups = [_f(h) for h in (b_half, a_half) if h]
    signs = [keep for h, keep in ((b_half, True), (a_half, False)) if h]
    votes = sum(j.votes for j in (*b_half, *a_half))
    share_b = _share(groups, signs, votes, n_boot, alpha, _rng(seed, "pair", a, b))
    halves = [_share([_f(h)], [True], sum(j.votes for j in h), n_boot, alpha, _rng(seed, "cell", pushed, held))
              if h else None for h, pushed, held in ((b_half, b, a), (a_half, a, b))]
    favoured, share = (b, share_b) if share_b.value >= CHANCE else (a, share_b.flipped())
    return PairVerdict(a, b, favoured, share, halves[0], halves[1])


def gmad_matrices(metrics: Sequence[str], judged: Sequence[Judged], *, n_boot: int, alpha: float,
                  seed: int = 0) -> Matrices:
    """Aggressiveness (attacker rows, defender columns) with intervals and tests (module docstring)."""
    m = len(metrics)
    pos = {name: i for i, name in enumerate(metrics)}
    agg, low, high, pv = (np.full((m, m), np.nan) for _ in range(4))
    count = np.zeros((m, m), dtype=np.int64)
    for a_name in metrics:
        for d_name in metrics:
            cell = [j for j in judged if (j.item.pushed, j.item.held) == (a_name, d_name)]
            if not cell:
                continue
            rng = _rng(seed, "cell", a_name, d_name)
            s = _share([_f(cell)], [True], sum(j.votes for j in cell), n_boot, alpha, rng)
            i, k = pos[a_name], pos[d_name]
            agg[i, k], low[i, k], high[i, k], pv[i, k], count[i, k] = s.value, s.low, s.high, s.p, s.items
    return Matrices(list(metrics), agg, low, high, pv, count)


def verdict(manifest: Manifest, judgments: Mapping[tuple[str, str], tuple[float, int]], *, n_boot: int = 2000,
            alpha: float = 0.05, seed: int = 0) -> Verdict:
    """The verdict of a competition from its manifest and its judgments.

    Args:
        manifest: the competition's manifest.
        judgments: ``{(set key, stem): (fraction choosing p1, raters)}`` of the judged items
            (items of the manifest without a judgment are left out; raters 0 = unknown).
        n_boot: bootstrap resamples.
        alpha: the test's level (interval ``1 − alpha``).
        seed: seed of the resampling.

    Raises:
        ValueError: bad ``n_boot``/``alpha``, a fraction outside [0, 1], or no judged item.
    """
    if n_boot < 100 or not 0.0 < alpha < 1.0:
        raise UsageError(f"n_boot must be >= 100 and alpha in (0, 1), got {n_boot} and {alpha}")
    judged = []
    for it in manifest.items:
        got = judgments.get((it.key, it.stem))
        if got is None:
            continue
        frac, votes = got
        if not (math.isfinite(frac) and 0.0 <= frac <= 1.0):
            raise UsageError(f"item {it.key}/{it.stem}: judgment {frac} outside [0, 1]")
        judged.append(Judged(it, float(frac), int(votes)))
    if not judged:
        raise UsageError("no item of the manifest has a judgment (is this the judged set of this competition?)")
    names = [m["name"] for m in manifest.metrics]
    pairs = [v for x_i, x in enumerate(names) for y in names[x_i + 1:]
             if (v := pair_verdict(x, y, judged, n_boot=n_boot, alpha=alpha, seed=seed)) is not None]
    mats = gmad_matrices(names, judged, n_boot=n_boot, alpha=alpha, seed=seed) if manifest.kind == "gmad" else None
    return Verdict(manifest.kind, pairs, mats, judged, n_boot, alpha)


__all__ = ["Judged", "Share", "PairVerdict", "Matrices", "Verdict", "verdict", "pair_verdict", "gmad_matrices",
           "CHANCE"]
