"""The study page in a real browser: headless Chromium (Debian ``chromium`` +
``chromium-driver``) driven by Selenium. Two raters answer a small study, one by keyboard,
one by mouse; JND presentation times measured in the page (requestAnimationFrame timestamps)
must lie within ``TOLERANCE_MS`` of the configured 1000 / 250 / 1000 ms. Screenshots of every
screen (intro, 2AFC, JND stimulus, JND answer, break, done) go to the test's tmp folder and, when
``BAPPS_SCREENSHOT_DIR`` is set, are copied there. A second study checks non-default JND phases
and bilinear scaling.
Skipped when Chromium, its driver or Selenium is absent (``.ci/run`` installs them).
"""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from pathlib import Path

import pytest
from chromium import NEEDS_CHROMIUM, judge_state, poll, start_chromium

from .helpers import build_unjudged

#: Allowed |measured - configured| for each JND phase, in ms (a 60 Hz frame is 16.7 ms; the
#: page ends a phase on the first frame at or after the target, so one to two frames of lag).
TOLERANCE_MS = 50.0
INSTRUCTIONS = "A test study.\nPick the image closer to the middle one."

pytestmark = NEEDS_CHROMIUM
webdriver = pytest.importorskip("selenium.webdriver")


@pytest.fixture()
def browser():
    d = start_chromium("1100,760")
    yield d
    d.quit()


def _stuck(d) -> str:
    info = d.execute_script("return [window.bappsJudge.answers, window.bappsJudge.lastTimings, "
                            "document.getElementById('jnd-answer').hidden, "
                            "document.getElementById('progress').textContent]")
    return f"page stuck in state {judge_state(d)!r}: {info}; console {d.get_log('browser')}"


def _wait(d, cond, timeout=30.0):
    return poll(cond, timeout, lambda: _stuck(d), interval=0.02)


def _press(d, key: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    ActionChains(d).send_keys(key).perform()


def _ready(d):
    s = judge_state(d)
    if s == "jnd":
        return s if d.execute_script("return !document.getElementById('jnd-answer').hidden") else None
    if s == "2afc":
        return s if d.execute_script("return document.getElementById('img-right').complete") else None
    return s if s in ("break", "done", "error") else None


def _shoot_stimulus(d, shots: dict[str, Path], folder: Path) -> None:
    """A screenshot while a JND image is on screen (polls briefly; absent on 2AFC trials)."""
    end = time.monotonic() + 0.5
    js = ("return window.bappsJudge.state() === 'jnd' && document.getElementById('jnd-answer').hidden"
          " && document.getElementById('img-jnd').style.visibility === 'visible'")
    while time.monotonic() < end:
        if d.execute_script(js):
            # the answer buttons must not be visible (nor clickable) while a stimulus shows
            assert not d.execute_script("return document.getElementById('btn-same').offsetParent !== null")
            shots["jnd_stimulus.png"] = folder / "jnd_stimulus.png"
            d.save_screenshot(str(shots["jnd_stimulus.png"]))
            return
        time.sleep(0.01)


def _run_rater(d, url: str, rater: str, *, keyboard: bool, shots: dict[str, Path], folder: Path,
               reload_after: int | None = None, total: int = 5) -> list[dict]:
    from selenium.webdriver.common.by import By
    d.get(f"{url}/?rater={rater}")
    _wait(d, lambda: d.find_element(By.ID, "instructions").text)
    _press(d, " ") if keyboard else d.find_element(By.ID, "start").click()
    timings, answered = [], 0
    while True:
        if "jnd_stimulus.png" not in shots:
            _shoot_stimulus(d, shots, folder)
        s = _wait(d, lambda: _ready(d))
        assert s != "error", d.find_element(By.ID, "error-text").text
        name = f"{s}.png"
        if name not in shots:
            shots[name] = folder / name
            d.save_screenshot(str(shots[name]))
        if s == "done":
            return timings
        if s == "break":
            _press(d, " ") if keyboard else d.find_element(By.ID, "continue").click()
            _wait(d, lambda: judge_state(d) != "break")
            continue
        if s == "jnd":
            timings.append(d.execute_script("return window.bappsJudge.lastTimings"))
        key, button = {"2afc": ("a", "btn-left"), "jnd": ("s", "btn-same")}[s]
        before = d.execute_script("return window.bappsJudge.answers")
        assert d.find_element(By.ID, "progress").text.startswith(f"Trial {answered + 1} of {total} ")
        _press(d, key) if keyboard else d.find_element(By.ID, button).click()
        _wait(d, lambda b=before: d.execute_script("return window.bappsJudge.answers") > b)
        answered += 1
        if reload_after == answered:
            d.refresh()
            _wait(d, lambda: d.find_element(By.ID, "instructions").text)
            _press(d, " ") if keyboard else d.find_element(By.ID, "start").click()


def test_two_raters_keyboard_and_mouse(browser, tmp_path, live):
    from selenium.webdriver.common.by import By

    from bapps_toolkit.judge import create_from_set
    build_unjudged(tmp_path / "set", n_2afc=3, n_jnd=2, seed=3)
    db = create_from_set(tmp_path / "set", tmp_path / "s.sqlite", sentinel_share=0.0, break_every=3,
                         judgments_per_item=2, display_px=192, instructions=INSTRUCTIONS)
    srv = live(db)
    shots: dict[str, Path] = {}
    d = browser
    d.get(f"{srv.url}/?rater=kb")
    _wait(d, lambda: d.find_element(By.ID, "instructions").text)
    assert d.find_element(By.ID, "instructions").text.splitlines() == INSTRUCTIONS.splitlines()  # configured text
    assert d.find_element(By.ID, "scaling-note").text == "Images shown at 192 px, nearest scaling"
    assert d.find_element(By.ID, "img-ref").get_attribute("width") == "192"
    assert d.execute_script("return getComputedStyle(document.getElementById('img-ref')).imageRendering") == "pixelated"
    d.save_screenshot(str(tmp_path / "intro.png"))
    shots["intro.png"] = tmp_path / "intro.png"
    t_kb = _run_rater(d, srv.url, "kb", keyboard=True, shots=shots, folder=tmp_path)
    t_mouse = _run_rater(d, srv.url, "mouse", keyboard=False, shots=shots, folder=tmp_path, reload_after=2)
    assert {"2afc.png", "jnd.png", "break.png", "done.png"} <= set(shots)
    con = sqlite3.connect(db)
    rows = con.execute("SELECT rater, i.kind, side, swapped, answer, rt_ms, timings FROM answers a "
                       "JOIN items i ON i.id=a.item").fetchall()
    assert sorted(r[0] for r in rows) == ["kb"] * 5 + ["mouse"] * 5
    for _rater, kind, side, swapped, answer, rt, timings in rows:
        assert rt > 0
        if kind == "2afc":
            assert side == "left" and answer == swapped  # left shows p1 exactly when swapped
        else:
            assert side == "same" and answer == 1
            got = json.loads(timings)
            for phase, want in (("ref_ms", 1000), ("blank_ms", 250), ("dist_ms", 1000)):
                assert abs(got[phase] - want) <= TOLERANCE_MS, (phase, got)
    phases = (("ref_ms", 1000), ("blank_ms", 250), ("dist_ms", 1000))
    errors = [abs(t[p] - w) for t in t_kb + t_mouse for p, w in phases]
    print(f"JND timing |error| ms: max {max(errors):.1f}, mean {sum(errors) / len(errors):.1f} over {len(errors)}")
    keep = os.environ.get("BAPPS_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for name, p in shots.items():
            shutil.copy(p, Path(keep) / name)


def test_configured_jnd_timings_and_bilinear_scaling(browser, tmp_path, live):
    """Non-default JND phases (600 / 150 / 400 ms) are what the page shows and measures, and
    bilinear scaling at 128 px is applied and stated."""
    from selenium.webdriver.common.by import By

    from bapps_toolkit.judge import create_from_set
    build_unjudged(tmp_path / "set", n_2afc=0, n_jnd=2, seed=4)
    want = {"ref_ms": 600, "blank_ms": 150, "dist_ms": 400}
    db = create_from_set(tmp_path / "set", tmp_path / "s.sqlite", sentinel_share=0.0, judgments_per_item=1,
                         display_px=128, scaling="bilinear", jnd_ref_ms=600, jnd_blank_ms=150, jnd_dist_ms=400)
    srv = live(db)
    d = browser
    d.get(f"{srv.url}/?rater=t")
    _wait(d, lambda: d.find_element(By.ID, "instructions").text)
    assert d.find_element(By.ID, "scaling-note").text == "Images shown at 128 px, bilinear scaling"
    img = d.find_element(By.ID, "img-jnd")
    assert img.get_attribute("width") == "128" and "bilinear" in img.get_attribute("class")
    assert d.execute_script("return getComputedStyle(arguments[0]).imageRendering", img) == "auto"
    timings = _run_rater(d, srv.url, "t", keyboard=True, shots={}, folder=tmp_path, total=2)
    stored = [json.loads(t) for t, in sqlite3.connect(db).execute("SELECT timings FROM answers")]
    assert len(timings) == len(stored) == 2
    for got in stored:
        for phase, ms in want.items():
            assert abs(got[phase] - ms) <= TOLERANCE_MS, (phase, got)
