"""Adaptive assignment: the Beta–binomial posterior arithmetic against hand-computed cases, which
items a rater is given (widest posterior first, narrow items closed, the cap, virtual answers of
concurrent raters, metric disagreement, sentinels, abandoned items, seeding), the distances file
reader, and a small simulated comparison of the policies on the mini set (synthetic observer)."""
from __future__ import annotations

import sqlite3
import time

import numpy as np
import pytest

from bapps_toolkit.errors import DataError
from bapps_toolkit.judge import create_from_set
from bapps_toolkit.judge.answers import AnswerPost
from bapps_toolkit.judge.posterior import credible_width, disagreement_2afc, disagreement_jnd, posterior_params
from bapps_toolkit.judge.store import load_config, next_trial, open_study, record_answer

ADAPTIVE = {"assignment": "adaptive", "sentinel_share": 0.0, "items_per_rater": 1, "judgments_per_item": 30,
            "target_width": 0.5, "credible_level": 0.9}


# ----------------------------------------------------------------------------- posterior arithmetic
def test_credible_width_matches_hand_computed_quantiles():
    # Beta(1, 1): the 90 % central interval is [0.05, 0.95]
    assert credible_width(np.array([1.0]), np.array([1.0]), 0.9)[0] == pytest.approx(0.9, abs=1e-12)
    # Beta(4, 1) (uniform prior, 3 of 3 answers "1"): CDF x^4, so the quantiles are q^(1/4)
    a, b = posterior_params(np.array([3]), np.array([3]), (1.0, 1.0))
    assert (a[0], b[0]) == (4.0, 1.0)
    want = 0.95 ** 0.25 - 0.05 ** 0.25
    assert credible_width(a, b, 0.9)[0] == pytest.approx(want, abs=1e-9)
    # Jeffreys prior, 1 of 2: Beta(1.5, 1.5)
    a, b = posterior_params(np.array([1]), np.array([2]), (0.5, 0.5))
    assert (a[0], b[0]) == (1.5, 1.5)


def test_virtual_answers_count_at_the_posterior_mean():
    a, b = posterior_params(np.array([2]), np.array([4]), (1.0, 1.0), virtual=np.array([4]))
    # Beta(3, 3) has mean 0.5: four virtual answers add 2 and 2
    assert (a[0], b[0]) == (5.0, 5.0)
    narrower = credible_width(a, b, 0.9)[0] < credible_width(np.array([3.0]), np.array([3.0]), 0.9)[0]
    assert narrower


def test_disagreement_of_metrics():
    d0 = np.array([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    d1 = np.array([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0], [0.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]])
    # all agree; 2-2 split; 1-3 split; two ties + two votes for p1
    assert disagreement_2afc(d0, d1).tolist() == [0.0, 1.0, 0.5, 0.5]
    d = np.array([[0.1, 0.2], [0.2, 0.1], [0.3, 0.3]])  # ranks per metric: [0, .5, 1] and [.5, 0, 1]
    assert disagreement_jnd(d).tolist() == pytest.approx([0.5, 0.5, 0.0])


# ----------------------------------------------------------------------------- helpers
def _seed_answers(db, item: int, answers: list[int], prefix: str) -> None:
    """Record ``answers`` to ``item`` by fresh raters (the state other raters left)."""
    con = sqlite3.connect(db)
    now = time.time()
    for j, a in enumerate(answers):
        rid = f"{prefix}{item}x{j}"
        con.execute("INSERT INTO raters (id, created, seen) VALUES (?, ?, ?)", (rid, now, now))
        con.execute("INSERT INTO assignments VALUES (?, ?, 0)", (rid, item))
        con.execute("INSERT INTO answers (rater, item, swapped, side, answer, rt_ms, created) VALUES (?,?,0,?,?,500,?)",
                    (rid, item, "left", a, now))
    con.commit()
    con.close()


def _real_items(db) -> list[int]:
    return [i for i, in sqlite3.connect(db).execute("SELECT id FROM items WHERE expected IS NULL ORDER BY id")]


def _given(db, rater: str) -> list[int]:
    con = open_study(db)
    try:
        next_trial(con, rater, load_config(con))
        return [i for i, in con.execute("SELECT item FROM assignments WHERE rater=? ORDER BY position", (rater,))]
    finally:
        con.close()


# ----------------------------------------------------------------------------- which items a rater gets
def test_narrow_items_are_closed_and_the_widest_goes_first(make_study):
    db = make_study(**ADAPTIVE)
    items = _real_items(db)
    # every item but the last two is settled: 12 unanimous answers (width of Beta(13, 1) < 0.5)
    for it in items[:-2]:
        _seed_answers(db, it, [1] * 12, "u")
    _seed_answers(db, items[-2], [1, 0], "s")  # Beta(2, 2): width 0.73; items[-1] has none: Beta(1, 1), 0.9
    assert _given(db, "fresh1") == [items[-1]]  # the widest
    assert _given(db, "fresh2") == [items[-1]]  # one virtual answer: Beta(1.5, 1.5) is still the widest
    # two virtual answers make items[-1] Beta(2, 2): a tie, then the other one is the wider
    assert sorted(_given(db, "fresh3") + _given(db, "fresh4")) == [items[-2], items[-1]]
    _seed_answers(db, items[-1], [1] * 30, "v")
    _seed_answers(db, items[-2], [0] * 30, "w")
    assert _given(db, "fresh5") == []  # nothing open: no rater row written for fresh5
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM raters WHERE id='fresh5'").fetchone()[0] == 0


def test_cap_closes_items_whose_interval_stays_wide(make_study):
    db = make_study(**{**ADAPTIVE, "judgments_per_item": 4, "target_width": 0.05})
    for it in _real_items(db):
        _seed_answers(db, it, [1, 0, 1, 0], "c")  # width still ~0.6 but 4 = the cap
    assert _given(db, "late") == []


def test_concurrent_raters_spread_by_virtual_answers(make_study):
    db = make_study(**ADAPTIVE)
    got = [_given(db, f"r{i}")[0] for i in range(6)]
    assert len(set(got)) == 6  # no answers yet: each pending assignment narrows its item for the next rater


def test_jnd_posterior_is_on_the_same_fraction(make_study):
    db = make_study(**ADAPTIVE)
    con = sqlite3.connect(db)
    jnd = [i for i, in con.execute("SELECT id FROM items WHERE kind='jnd' AND expected IS NULL ORDER BY id")]
    con.close()
    for it in _real_items(db):
        if it not in jnd:
            _seed_answers(db, it, [1] * 12, "a")
    for it in jnd[1:]:
        _seed_answers(db, it, [1] * 12, "b")  # all "same": settled
    _seed_answers(db, jnd[0], [1, 0, 1, 0, 1, 0], "c")  # half "same": open
    assert _given(db, "j") == [jnd[0]]


def test_metric_disagreement_breaks_ties(unjudged, tmp_path):
    root, _ = unjudged
    plain = create_from_set(root, tmp_path / "plain.sqlite", **ADAPTIVE)
    items = sqlite3.connect(plain).execute("SELECT set_key, stem FROM items WHERE expected IS NULL "
                                           "ORDER BY id").fetchall()
    rows = ["metric,set_key,stem,d0,d1,d"]
    for m in ("a", "b"):
        for k, s in items:
            if k.startswith("2afc"):
                split = (k, s) == items[4]  # the two metrics disagree on this item only
                d0, d1 = (0.2, 0.1) if (m == "a" or not split) else (0.1, 0.2)
                rows.append(f"{m},{k},{s},{d0},{d1},")
            else:
                rows.append(f"{m},{k},{s},,,0.3")
    csv = tmp_path / "dist.csv"
    csv.write_text("\n".join(rows) + "\n")
    weighted = create_from_set(root, tmp_path / "w.sqlite", distances=csv, **ADAPTIVE)
    target = _real_items(weighted)[4]
    assert _given(weighted, "first") == [target]  # equal widths: the disputed item goes first
    stored = dict(sqlite3.connect(weighted).execute("SELECT item, disagreement FROM item_weights"))
    assert stored[target] == 1.0 and sum(stored.values()) == 1.0


def test_distances_file_errors_name_the_problem(unjudged, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("metric,set_key,stem,d0,d1\nl2,2afc/val/cnn,000,0.1,nan\n")
    with pytest.raises(DataError, match=r"row 2, column d1: 'nan' is not a finite number"):
        create_from_set(unjudged[0], tmp_path / "s.sqlite", distances=bad, assignment="adaptive")
    short = tmp_path / "short.csv"
    short.write_text("metric,set_key,stem,d0,d1\nl2,2afc/val/cnn,000,0.1,0.2\n")
    with pytest.raises(DataError, match=r"metric 'l2' has no distance for item 2afc/val/cnn/001"):
        create_from_set(unjudged[0], tmp_path / "s.sqlite", distances=short, assignment="adaptive")
    dup = tmp_path / "dup.csv"
    dup.write_text("metric,set_key,stem,d0,d1\nl2,2afc/val/cnn,000,0.1,0.2\nl2,2afc/val/cnn,000,0.1,0.2\n")
    with pytest.raises(DataError, match="row 3: a second row"):
        create_from_set(unjudged[0], tmp_path / "s.sqlite", distances=dup, assignment="adaptive")
    (tmp_path / "d.txt").write_text("x")
    with pytest.raises(DataError, match="use a .csv or .npz"):
        create_from_set(unjudged[0], tmp_path / "s.sqlite", distances=tmp_path / "d.txt", assignment="adaptive")
    (tmp_path / "d.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match="not a readable .npz"):
        create_from_set(unjudged[0], tmp_path / "s.sqlite", distances=tmp_path / "d.npz", assignment="adaptive")
    assert not (tmp_path / "s.sqlite").exists()


def test_distances_from_npz_as_evaluate_writes_them(unjudged, tmp_path):
    import sqlite3 as sq

    root, _ = unjudged
    db0 = create_from_set(root, tmp_path / "probe.sqlite", sentinel_share=0.0)
    items = sq.connect(db0).execute("SELECT set_key, stem FROM items ORDER BY id").fetchall()
    arrays = {}
    for key in sorted({k for k, _ in items}):
        stems = [s for k, s in items if k == key]
        arrays[f"m1|{key}|stems"] = np.asarray(stems)
        if key.startswith("2afc"):
            arrays[f"m1|{key}|d0"] = np.linspace(0, 1, len(stems))
            arrays[f"m1|{key}|d1"] = np.linspace(1, 0, len(stems))
        else:
            arrays[f"m1|{key}|d"] = np.linspace(0, 1, len(stems))
    np.savez(tmp_path / "d.npz", **arrays)
    db = create_from_set(root, tmp_path / "s.sqlite", distances=tmp_path / "d.npz", assignment="adaptive",
                         sentinel_share=0.0)
    # one metric never disagrees with itself
    assert {v for v, in sq.connect(db).execute("SELECT disagreement FROM item_weights")} == {0.0}


def test_sentinels_abandoned_items_and_seeding_under_adaptive(make_study):
    settings = {**ADAPTIVE, "items_per_rater": 6, "sentinel_share": 0.25, "reassign_after_s": 60}
    a, b = make_study("a.sqlite", **settings), make_study("b.sqlite", **settings)
    order_a, order_b = _given(a, "ann"), _given(b, "ann")
    assert order_a == order_b  # same seed, same state: the same order
    con = sqlite3.connect(a)
    expected = {i for i, in con.execute("SELECT id FROM items WHERE expected IS NOT NULL")}
    assert expected & set(order_a), "sentinels are mixed into an adaptive order"
    real_a = [i for i in order_a if i not in expected]
    # ann leaves: after reassign_after_s her unanswered items count for nobody and are offered again
    con.execute("UPDATE raters SET seen = seen - 120 WHERE id='ann'")
    con.commit()
    con.close()
    db = open_study(a)
    cfg = load_config(db)
    for i in range(8):
        next_trial(db, f"x{i}", cfg)
    db.close()
    reassigned = {i for i, in sqlite3.connect(a).execute("SELECT item FROM assignments WHERE rater != 'ann'")}
    assert set(real_a) & reassigned


def test_adaptive_settings_are_checked(unjudged, tmp_path):
    for bad, msg in (({"assignment": "smart"}, "assignment"), ({"target_width": 0.0}, "target_width"),
                     ({"target_width": 1.5}, "target_width"), ({"credible_level": 1.0}, "credible_level"),
                     ({"prior": [0, 1]}, "prior"), ({"prior": [1]}, "prior"), ({"prior": [1, float("nan")]}, "prior"),
                     ({"disagreement_weight": -1}, "disagreement_weight")):
        with pytest.raises(ValueError, match=msg):
            create_from_set(unjudged[0], tmp_path / "s.sqlite", **bad)
    assert not (tmp_path / "s.sqlite").exists()


def test_answers_through_the_store_update_the_posterior(make_study):
    db = make_study(**{**ADAPTIVE, "items_per_rater": 3, "judgments_per_item": 2})
    con = open_study(db)
    cfg = load_config(con)
    seen: dict[int, int] = {}
    for r in range(40):
        while not (t := next_trial(con, f"q{r}", cfg))["done"]:
            side = "left" if t["kind"] == "2afc" else "same"
            timings = {"ref_ms": 1000.0, "blank_ms": 250.0, "dist_ms": 1000.0} if t["kind"] == "jnd" else None
            record_answer(con, f"q{r}", cfg, AnswerPost(t["item"], side, 500.0, timings))
            seen[t["item"]] = seen.get(t["item"], 0) + 1
    con.close()
    assert max(seen.values()) <= 2 and len(seen) == 18  # the cap holds, every item was judged


# ----------------------------------------------------------------------------- simulation (synthetic)
@pytest.mark.timeout(600)
def test_simulated_comparison_is_seeded_and_reports_both_errors(mini_root):
    from bapps_toolkit.judge.simulate import compare, comparison_table

    settings = {"items_per_rater": 10, "judgments_per_item": 16}
    rows = compare(mini_root, [7], n_items=40, widths=(0.45,), settings=settings, concurrent=4)
    again = compare(mini_root, [7], n_items=40, widths=(0.45,), settings=settings, concurrent=4)
    (r,), (r2,) = rows, again
    assert r.balanced.answers == 40 * 16 and r.balanced.curve.rmse == r2.balanced.curve.rmse  # seeded
    assert r.adaptive.answers == r2.adaptive.answers and r.adaptive.curve.p90 == r2.adaptive.curve.p90
    assert r.adaptive.answers < r.balanced.answers  # narrow items stop receiving raters
    assert r.adaptive.final("max_width") < 0.45 or r.adaptive.curve.answers[-1] == 40 * 16
    assert 0.0 < r.adaptive.final("rmse") < 0.5 and r.balanced.final("rmse") < r.balanced.curve.rmse[0]
    assert 0.5 < r.adaptive.final("coverage") <= 1.0
    for m in ("rmse", "p90", "max_width"):  # what balanced needed is read off its own curve
        to = r.balanced_to[m]
        assert to is None or getattr(r.balanced.curve, m)[r.balanced.curve.answers.index(to)] <= r.adaptive.final(m)
    table = comparison_table(rows)
    assert table.startswith("SYNTHETIC") and "adaptive w=0.45" in table and "answers saved" in table
