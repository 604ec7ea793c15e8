"""The verdict statistics (bapps_toolkit.competition.verdict): which metric people sided with,
shares with bootstrap intervals whose test agrees with them, and gMAD's matrices."""
from __future__ import annotations

import math

import numpy as np
import pytest

from bapps_toolkit.competition.records import CompetitionItem, Manifest, MetricRecord
from bapps_toolkit.competition.verdict import CHANCE, verdict

KEY = "2afc/val/mad-x"


def _item(stem: int, held: str, pushed: str, pushed_side: str, kind: str = "mad") -> CompetitionItem:
    small, big = 0.1, 0.4
    pv = (small, big) if pushed_side == "p0" else (big, small)
    return CompetitionItem(key=KEY, stem=f"{stem:06d}", kind=kind, source="s", held=held, pushed=pushed,
                           values={held: (0.2, 0.2), pushed: pv}, held_start=0.2, held_drift=(0.0, 0.0))


def _manifest(items: list[CompetitionItem], names=("a", "b"), kind="mad") -> Manifest:
    return Manifest(kind=kind, metrics=[MetricRecord(name=n, label=n, calibrated=True) for n in names],
                    settings={}, items=items)


def _mad(n: int, rng: np.random.Generator) -> list[CompetitionItem]:
    out = []
    for i in range(n):
        out.append(_item(2 * i, "a", "b", str(rng.choice(["p0", "p1"]))))
        out.append(_item(2 * i + 1, "b", "a", str(rng.choice(["p0", "p1"]))))
    return out


def _answers(items, follow_b: float, follow_a: float) -> dict:
    """Judgments where people follow b's ordering on b-pushed items with probability follow_b."""
    out = {}
    for it in items:
        f = follow_b if it.pushed == "b" else follow_a
        out[(it.key, it.stem)] = ((f if it.pushed_prefers == "p1" else 1 - f), 5)
    return out


def test_people_who_see_b_s_differences_but_not_a_s_side_with_b():
    items = _mad(12, np.random.default_rng(0))
    v = verdict(_manifest(items), _answers(items, follow_b=1.0, follow_a=0.5), n_boot=500)
    (p,) = v.pairs
    assert p.favoured == "b" and p.winner == "b"
    assert p.share.value == pytest.approx(0.75)
    assert p.share.low > CHANCE and p.share.significant
    assert p.b_pushed.value == pytest.approx(1.0) and p.a_pushed.value == pytest.approx(0.5)
    assert not p.a_pushed.significant


def test_swapping_every_judgment_flips_the_verdict():
    items = _mad(10, np.random.default_rng(1))
    ans = _answers(items, follow_b=0.9, follow_a=0.3)
    flipped = {k: (1 - f, n) for k, (f, n) in ans.items()}
    v1 = verdict(_manifest(items), ans, n_boot=500)
    v2 = verdict(_manifest(items), flipped, n_boot=500)
    assert v1.pairs[0].favoured == "b" and v2.pairs[0].favoured == "a"
    assert v1.pairs[0].share.value == pytest.approx(v2.pairs[0].share.value)


def test_chance_judgments_name_no_winner():
    items = _mad(10, np.random.default_rng(2))
    v = verdict(_manifest(items), _answers(items, follow_b=0.5, follow_a=0.5), n_boot=500)
    assert v.pairs[0].winner is None and v.pairs[0].share.p == 1.0


@pytest.mark.parametrize("seed", range(25))
def test_the_test_agrees_with_the_interval(seed):
    rng = np.random.default_rng(seed)
    items = _mad(int(rng.integers(3, 12)), rng)
    ans = {(it.key, it.stem): (float(rng.integers(0, 6)) / 5, 5) for it in items}
    alpha = float(rng.choice([0.01, 0.05, 0.1]))
    p = verdict(_manifest(items), ans, n_boot=300, alpha=alpha, seed=seed).pairs[0]
    excludes = not (p.share.low <= CHANCE <= p.share.high)
    assert (p.share.p < alpha) == excludes
    assert p.share.low <= p.share.value <= p.share.high or math.isclose(p.share.low, p.share.high)


def test_gmad_matrices_resistance_is_one_minus_aggressiveness_transposed():
    names = ("a", "b", "c")
    items = []
    k = 0
    for d in names:
        for a in names:
            if a != d:
                for side in ("p0", "p1", "p0"):
                    items.append(_item(k, d, a, side, kind="gmad"))
                    k += 1
    strength = {"a": 0.9, "b": 0.6, "c": 0.5}  # how often people confirm each attacker
    ans = {(it.key, it.stem): (strength[it.pushed] if it.pushed_prefers == "p1" else 1 - strength[it.pushed], 4)
           for it in items}
    v = verdict(_manifest(items, names, "gmad"), ans, n_boot=400)
    m = v.matrices
    assert np.isnan(np.diag(m.aggressiveness)).all()
    assert m.aggressiveness[0, 1] == pytest.approx(0.9) and m.aggressiveness[2, 0] == pytest.approx(0.5)
    assert np.allclose(m.resistance, 1 - m.aggressiveness.T, equal_nan=True)
    assert (m.items[~np.eye(3, dtype=bool)] == 3).all()
    assert {p.favoured for p in v.pairs if {p.a, p.b} == {"a", "c"}} == {"a"}
    for p in v.pairs:  # a pair's half and the matrix cell of the same attacker and defender agree exactly
        i, k = names.index(p.b), names.index(p.a)
        assert (p.b_pushed.low, p.b_pushed.high, p.b_pushed.p) == (
            m.aggressiveness_low[i, k], m.aggressiveness_high[i, k], m.aggressiveness_p[i, k])


def test_bad_inputs_are_refused():
    items = _mad(3, np.random.default_rng(3))
    with pytest.raises(ValueError, match="no item"):
        verdict(_manifest(items), {})
    with pytest.raises(ValueError, match="outside"):
        verdict(_manifest(items), {(items[0].key, items[0].stem): (1.5, 3)})
    with pytest.raises(ValueError, match="n_boot"):
        verdict(_manifest(items), _answers(items, 1, 1), n_boot=10)
