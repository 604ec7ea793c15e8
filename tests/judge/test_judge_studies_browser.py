"""Studies on a crowd platform and the dashboard in a real browser: headless Chromium (Debian
``chromium`` + ``chromium-driver``) driven by Selenium.

* A Prolific-style arrival: the study link as ``bapps judge link`` prints it, with Prolific's
  placeholders filled in as Prolific does, → trials → the completion code shown → the browser is
  sent to the completion URL (a local page this test serves, standing in for
  ``app.prolific.com``) carrying that code; a link not issued for the study, and the study opened
  without its key, end on the error screen and record nobody.
* The dashboard during a simulated study: simulated raters answer through the study store while
  the page polls; the page must show what ``/api/admin/summary`` says, update live, and log no
  error (a CSP violation would be one). The screenshot is saved (``dashboard.png``) in the test's
  folder and, when ``BAPPS_SCREENSHOT_DIR`` is set, copied there.
Skipped when Chromium, its driver or Selenium is absent.
"""
from __future__ import annotations

import http.server
import os
import shutil
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from chromium import NEEDS_CHROMIUM, judge_state, poll, start_chromium

from .helpers import build_unjudged

PID = "5f3c9b2e8d1a4b0012ab34cd"

pytestmark = NEEDS_CHROMIUM
webdriver = pytest.importorskip("selenium.webdriver")


@pytest.fixture()
def browser():
    d = start_chromium("1400,1000", console_log=True)
    yield d
    d.quit()


class CompletionSite:
    """A local stand-in for the platform's completion page: records the paths it was asked for."""

    def __init__(self) -> None:
        seen: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if self.path != "/favicon.ico":
                    seen.append(self.path)
                body = b"<!doctype html><title>platform</title><p id='done'>submission complete</p>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.seen = seen
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _wait(d, cond, timeout=40.0, what="condition"):
    return poll(cond, timeout, lambda: f"timed out waiting for {what}; state {judge_state(d)!r}, url {d.current_url}, "
                                       f"console {d.get_log('browser')}")


def _ready(d):
    s = judge_state(d)
    if s == "jnd":
        return s if d.execute_script("return !document.getElementById('jnd-answer').hidden") else None
    if s == "2afc":
        return s if d.execute_script("return document.getElementById('img-right').complete") else None
    return s if s in ("done", "error") else None


def _prolific_study(tmp_path: Path, completion: str):
    from bapps_toolkit.judge import create_from_set
    from bapps_toolkit.judge.keys import link_key, study_keys
    from bapps_toolkit.judge.store import load_config, open_study

    build_unjudged(tmp_path / "set", n_2afc=3, n_jnd=1, seed=5)
    db = create_from_set(tmp_path / "set", tmp_path / "p.sqlite", platform="prolific", sentinel_share=0.0,
                         items_per_rater=3, redirect_after_s=2, completion_url=completion + "/done?cc={code}")
    con = open_study(db)
    key, cfg = link_key(study_keys(con)), load_config(con)
    con.close()
    return db, key, cfg


def _fill(link: str, pid: str, study: str, session: str) -> str:
    """What Prolific does to the study URL for one participant."""
    return (link.replace("{{%PROLIFIC_PID%}}", pid).replace("{{%STUDY_ID%}}", study)
            .replace("{{%SESSION_ID%}}", session))


def test_prolific_arrival_trials_code_and_redirect(browser, tmp_path, live):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    from bapps_toolkit.judge.platform import study_link

    site = CompletionSite()
    try:
        db, key, cfg = _prolific_study(tmp_path, site.url)
        srv = live(db)
        d = browser
        link = _fill(study_link(srv.url, "prolific", key), PID, "60aa00bb11cc22dd33ee44ff", "sess0001")
        d.get(link)
        _wait(d, lambda: judge_state(d) == "intro" and d.find_element(By.ID, "instructions").text, what="intro")
        ActionChains(d).send_keys(" ").perform()
        answered = 0
        while True:
            s = _wait(d, lambda: _ready(d), what="a trial")
            assert s != "error", d.find_element(By.ID, "error-text").text
            if s == "done":
                break
            before = d.execute_script("return window.bappsJudge.answers")
            ActionChains(d).send_keys("a" if s == "2afc" else "s").perform()
            _wait(d, lambda b=before: d.execute_script("return window.bappsJudge.answers") > b, what="the answer")
            answered += 1
        assert answered == 3
        code = d.find_element(By.ID, "done-code").text
        assert code == cfg["completion_code"]
        assert d.find_element(By.ID, "done-link").get_attribute("href") == f"{site.url}/done?cc={code}"
        d.save_screenshot(str(tmp_path / "prolific_done.png"))
        _wait(d, lambda: d.current_url.startswith(site.url), timeout=20, what="the redirect")
        assert d.current_url == f"{site.url}/done?cc={code}"
        assert d.find_element(By.ID, "done").text == "submission complete"
        assert site.seen == [f"/done?cc={code}"]
        con = sqlite3.connect(db)
        assert con.execute("SELECT rater, platform, study, session FROM arrivals").fetchall() == \
            [(PID, "prolific", "60aa00bb11cc22dd33ee44ff", "sess0001")]
        assert con.execute("SELECT COUNT(*) FROM answers WHERE rater=?", (PID,)).fetchone()[0] == 3
        assert con.execute("SELECT outcome, code FROM outcomes").fetchall() == [("complete", code)]

        # a link not issued for this study (another key), and the study without its key
        for bad, words in ((link.replace(key, key[:-4] + "AAAA"), "not issued for this study"),
                           (link.split("&key=")[0], "link you were given")):
            d.get(bad.replace(PID, "aaaaaaaaaaaaaaaaaaaaaaaa"))
            _wait(d, lambda: judge_state(d) == "error", what="the error screen")
            assert words in d.find_element(By.ID, "error-text").text
            assert d.find_element(By.ID, "retry").get_attribute("hidden") is not None  # retrying cannot help
        assert con.execute("SELECT COUNT(*) FROM raters").fetchone()[0] == 1
        assert len(site.seen) == 1
    finally:
        site.close()


def _simulate(db, stop: threading.Event, progress: list[int]) -> None:
    """Simulated raters arriving through the link and answering in the background (wrong sentinels
    for two of them, a few leaving half-way), until ``stop``."""
    from bapps_toolkit.judge.answers import AnswerPost
    from bapps_toolkit.judge.arrivals import arrive
    from bapps_toolkit.judge.keys import link_key, study_keys
    from bapps_toolkit.judge.platform import ArrivalPost
    from bapps_toolkit.judge.store import load_config, next_trial, open_study, record_answer

    con = open_study(db)
    cfg = load_config(con)
    key = link_key(study_keys(con))
    expected = dict(con.execute("SELECT id, expected FROM items WHERE expected IS NOT NULL"))
    rng = np.random.default_rng(11)
    truth = {i: float(rng.uniform()) for i, in con.execute("SELECT id FROM items WHERE expected IS NULL")}
    for r in range(36):
        if stop.is_set():
            break
        rater = f"{r:024x}"
        arrive(con, cfg, ArrivalPost(rater, key, "60aa00bb11cc22dd33ee44ff", f"s{r}"), 0)
        careless, leaves = r in (5, 17), r % 9 == 4
        for k in range(100):
            t = next_trial(con, rater, cfg)
            if t["done"] or (leaves and k == 4):
                break
            item = t["item"]
            value = int(rng.uniform() < truth.get(item, 0.5)) if item not in expected else (
                1 - expected[item] if careless else expected[item])
            side = ("right" if bool(value) != bool(t["swapped"]) else "left") if t["kind"] == "2afc" else (
                "same" if value else "different")
            timings = {"ref_ms": 1000.0, "blank_ms": 250.0, "dist_ms": 1000.0} if t["kind"] == "jnd" else None
            record_answer(con, rater, cfg, AnswerPost(item, side, float(rng.lognormal(6.8, 0.5)), timings))
            progress.append(1)
            time.sleep(0.004)
    con.close()


def test_dashboard_during_a_simulated_study(browser, tmp_path, live):
    from selenium.webdriver.common.by import By

    from bapps_toolkit.judge import create_from_set
    from bapps_toolkit.judge.manage import new_admin_token

    build_unjudged(tmp_path / "set", n_2afc=40, n_jnd=12, seed=9)
    db = create_from_set(tmp_path / "set", tmp_path / "study.sqlite", platform="prolific", assignment="adaptive",
                         items_per_rater=12, judgments_per_item=20, target_width=0.45, sentinel_share=0.15,
                         min_sentinel_accuracy=0.75, min_sentinel_failures=2)
    token = new_admin_token(db)
    srv = live(db)
    stop, progress = threading.Event(), []
    worker = threading.Thread(target=_simulate, args=(db, stop, progress), daemon=True)
    d = browser
    try:
        d.get(f"{srv.url}/admin#token={token}")
        _wait(d, lambda: d.execute_script("return window.bappsDashboard.refreshes") >= 1, what="the first refresh")
        assert "token" not in d.current_url  # the token left the address bar
        first = d.execute_script("return window.bappsDashboard.last.progress.answers")
        worker.start()
        _wait(d, lambda: len(progress) > 250, timeout=120, what="simulated answers")
        _wait(d, lambda: d.execute_script("return window.bappsDashboard.last.progress.answers") > first + 100,
              timeout=30, what="a live update")
        time.sleep(3.5)  # one more poll so the page shows a busy moment
        shown = d.execute_script("return window.bappsDashboard.last")
        assert d.find_element(By.ID, "answers").text == str(shown["progress"]["answers"])
        assert d.find_element(By.ID, "items-done").text == f"{shown['progress']['items_done']} / 52"
        rows = d.find_elements(By.CSS_SELECTOR, "#rater-rows tr")
        assert len(rows) == shown["raters_shown"] >= 10
        assert len(d.find_elements(By.CSS_SELECTOR, "#hist-items .col")) == len(shown["answers_per_item"]["counts"])
        assert d.find_element(By.ID, "widths-figure").is_displayed()  # adaptive: the widths histogram
        d.save_screenshot(str(tmp_path / "dashboard.png"))
        assert "live" in d.find_element(By.ID, "live").text
        severe = [e for e in d.get_log("browser") if e["level"] == "SEVERE" and "favicon.ico" not in e["message"]]
        assert not severe, severe  # no CSP violation, no script error (the browser's own favicon request aside)
    finally:
        stop.set()
        if worker.is_alive():
            worker.join(60)
    keep = os.environ.get("BAPPS_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / "dashboard.png", Path(keep) / "dashboard.png")


def test_dashboard_asks_for_the_token_and_refuses_a_wrong_one(browser, tmp_path, live, make_study):
    from selenium.webdriver.common.by import By

    from bapps_toolkit.judge.manage import new_admin_token

    db = make_study()
    token = new_admin_token(db)
    srv = live(db)
    d = browser
    d.get(f"{srv.url}/admin")
    _wait(d, lambda: d.find_element(By.ID, "login").is_displayed(), what="the token form")
    d.find_element(By.ID, "token-input").send_keys("not-the-token")
    d.find_element(By.CSS_SELECTOR, "#login-form button").click()
    _wait(d, lambda: d.find_element(By.ID, "login-error").is_displayed(), what="the refusal")
    assert "admin token" in d.find_element(By.ID, "login-error").text
    d.find_element(By.ID, "token-input").send_keys(token)
    d.find_element(By.CSS_SELECTOR, "#login-form button").click()
    _wait(d, lambda: d.find_element(By.ID, "board").is_displayed(), what="the dashboard")
    assert d.find_element(By.ID, "items-done").text == "0 / 18"
