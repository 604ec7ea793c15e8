"""End to end: a MAD competition synthesised, served by ``bapps judge``, answered through the
HTTP API by raters that are the mini set's simulated observer, exported, and reported.

The observer (bapps_toolkit.data.mini.observer) is a hidden distance that no metric of the
toolkit computes; each rater answers a trial with probability
``sigmoid((D(ref, p0) − D(ref, p1)) / OBS_TAU + ε)`` of choosing ``p1`` (ε ~ N(0, OBS_NOISE)
per item, as the mini set's raters). The metric the report names must be the one the
observer's own noise-free distances agree with, and its interval must exclude chance, both
from the exported set and from the study database. The judgments are SIMULATED, not human.
"""
from __future__ import annotations

import io
import sqlite3
import urllib.parse

import numpy as np
import pytest
from PIL import Image

from bapps_toolkit.cli.main import main
from bapps_toolkit.competition import MadConfig, read_manifest, run_mad
from bapps_toolkit.data.images import read_rgb
from bapps_toolkit.data.mini.observer import OBS_NOISE, OBS_TAU, observer_distance, sigmoid
from bapps_toolkit.judge import create_from_set, export
from bapps_toolkit.report.competition import competition_report

from .helpers import answer_all, call


def _image(url: str, rater: str, item: int, role: str) -> np.ndarray:
    q = urllib.parse.urlencode({"rater": rater})
    status, body = call(url, f"/api/image/{item}/{role}?{q}")
    assert status == 200
    return np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))[None]


def _observer_rater(url: str, rater: str, rng: np.random.Generator, eps: dict[int, float]) -> int:
    def body(t: dict) -> dict:
        ref, p0, p1 = (_image(url, rater, t["item"], r) for r in ("ref", "p0", "p1"))
        d0, d1 = observer_distance(ref, p0)[0], observer_distance(ref, p1)[0]
        e = eps.setdefault(t["item"], float(rng.normal(0.0, OBS_NOISE)))
        wants_p1 = rng.random() < sigmoid((d0 - d1) / OBS_TAU + e)
        return {"side": "right" if wants_p1 != bool(t["swapped"]) else "left"}
    return answer_all(url, rater, body)


def _expected(root, man) -> dict[str, float]:
    """The observer's noise-free share for each metric: the verdict's formula on sigmoid((D0 − D1)/τ)."""
    halves: dict[tuple[str, str], list[float]] = {}
    for it in man.items:
        ref, p0, p1 = (read_rgb(root / it.key / r / f"{it.stem}.png")[None] for r in ("ref", "p0", "p1"))
        q1 = float(sigmoid((observer_distance(ref, p0)[0] - observer_distance(ref, p1)[0]) / OBS_TAU))
        halves.setdefault((it.held, it.pushed), []).append(q1 if it.pushed_prefers == "p1" else 1 - q1)
    share_b = 0.5 * (np.mean(halves[("l2", "ssim")]) + 1 - np.mean(halves[("ssim", "l2")]))
    return {"ssim": share_b, "l2": 1 - share_b}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_mad_judged_by_the_simulated_observer_names_its_metric(tmp_path, live, capsys):
    out = tmp_path / "mad"
    run_mad(MadConfig("l2", "ssim", out=str(out), size=64, limit=8, max_steps=30, seed=3))
    man = read_manifest(out)
    expected = _expected(out, man)
    favourite = max(expected, key=expected.get)
    assert abs(expected[favourite] - 0.5) > 0.15, expected  # the observer has a clear preference here

    db = create_from_set(out, tmp_path / "study.sqlite", judgments_per_item=5, sentinel_share=0.1, seed=1)
    srv = live(db)
    rng, eps = np.random.default_rng(0), {}
    answered = sum(_observer_rater(srv.url, f"obs{i}", rng, eps) for i in range(5))
    assert answered == sqlite3.connect(db).execute("SELECT COUNT(*) FROM answers").fetchone()[0] >= 5 * 16
    export(db, tmp_path / "judged")

    for source in (tmp_path / "judged", db):
        rep = competition_report(source, out / "competition.json", out=tmp_path / f"verdict-{source.name}",
                                 n_boot=2000)
        (pair,) = rep.verdict.pairs
        assert pair.favoured == favourite and pair.winner == favourite
        assert pair.share.low > 0.5 and pair.share.p < 0.05
        assert f"people sided with {favourite}" in rep.text
        assert len(rep.verdict.judged) == 16
    assert main(["competition-report", str(tmp_path / "judged"), "--manifest", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"winner: {favourite}" in printed
    with capsys.disabled():
        print(f"\nobserver's noise-free shares {expected}; report:\n{printed}")
