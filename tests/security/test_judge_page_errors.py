"""The study page shows the server's errors to the rater, in a real browser (headless Chromium +
chromedriver via Selenium, as in ``tests/judge/test_judge_browser.py``), instead of hanging.

* a locked database (503 ``busy``, ``Retry-After: 5``): the message and a countdown; the same
  answer is posted again by itself once the lock is gone, and stored once;
* the server stopped (no answer at all): "cannot be reached" and a Retry button; after a
  restart on the same port, Retry posts the answer;
* the cap on new raters (429): the message and a countdown, then the first trial;
* a read-only database (503, no Retry-After): the message and a Retry button, which works
  once the database is writable again;
* a wrong token (403): the message, no Retry button.

Screenshots of the error screens go to the test's tmp folder and, when ``BAPPS_SCREENSHOT_DIR``
is set, are copied there.
"""
from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from chromium import NEEDS_CHROMIUM, judge_state, poll, start_chromium

pytestmark = NEEDS_CHROMIUM
webdriver = pytest.importorskip("selenium.webdriver")


@pytest.fixture()
def browser():
    d = start_chromium("1100,760")
    yield d
    d.quit()


def _js(d, script: str):
    return d.execute_script(script)


def _wait(d, cond, timeout: float = 40.0, what: str = ""):
    return poll(cond, timeout, lambda: f"timed out waiting for {what}: state {judge_state(d)!r}, "
                                       f"error {_text(d, 'error-text')!r}; console {d.get_log('browser')}")


def _text(d, el: str) -> str:
    return _js(d, f"return document.getElementById('{el}').textContent")


def _visible(d, el: str) -> bool:
    return bool(_js(d, f"return document.getElementById('{el}').offsetParent !== null"))


def _trial_ready(d):
    s = judge_state(d)
    if s == "jnd" and _js(d, "return !document.getElementById('jnd-answer').hidden"):
        return s
    if s == "2afc" and _js(d, "return document.getElementById('img-right').complete"):
        return s
    return None


def _press(d, key: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    ActionChains(d).send_keys(key).perform()


def _open_and_start(d, url: str, rater: str, query: str = "") -> None:
    d.get(f"{url}/?rater={rater}{query}")
    _wait(d, lambda: _text(d, "instructions"), what="the instructions")
    _press(d, " ")


def _answer_key(d) -> str:
    kind = _wait(d, lambda: _trial_ready(d), what="a trial")
    return "a" if kind == "2afc" else "s"


def _shoot(d, tmp_path: Path, name: str) -> None:
    d.save_screenshot(str(tmp_path / name))
    keep = os.environ.get("BAPPS_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / name, Path(keep) / name)


def _answers(db: Path, rater: str) -> int:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT COUNT(*) FROM answers WHERE rater=?", (rater,)).fetchone()[0]
    finally:
        con.close()


def _error_shown(d, words: str) -> str:
    _wait(d, lambda: judge_state(d) == "error", what="the error screen")
    text = _text(d, "error-text")
    assert words in text, text
    assert _visible(d, "error-text")
    return text


def test_locked_database_message_then_automatic_retry(browser, study, live_server, tmp_path):
    srv = live_server(study, busy_timeout_s=0.3)
    d = browser
    _open_and_start(d, srv.url, "b1")
    key = _answer_key(d)
    lock = sqlite3.connect(study, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # another program holds the write lock
    try:
        _press(d, key)
        _error_shown(d, "busy")
        assert _visible(d, "retry") and "Retrying in" in _text(d, "error-hint")
        _shoot(d, tmp_path, "error_busy.png")
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    _wait(d, lambda: _js(d, "return window.bappsJudge.answers") == 1, timeout=20, what="the automatic retry")
    _wait(d, lambda: _trial_ready(d) or judge_state(d) == "done", what="the next trial")
    assert _answers(study, "b1") == 1


def test_stopped_server_message_then_retry_after_restart(browser, study, live_server, tmp_path):
    srv = live_server(study)
    d = browser
    _open_and_start(d, srv.url, "b2")
    key = _answer_key(d)
    srv.close()
    _press(d, key)
    _error_shown(d, "cannot be reached")
    assert _visible(d, "retry") and "Retrying in" not in _text(d, "error-hint")
    _shoot(d, tmp_path, "error_unreachable.png")
    assert _answers(study, "b2") == 0
    live_server(study, port=srv.port)
    d.find_element("id", "retry").click()
    _wait(d, lambda: _js(d, "return window.bappsJudge.answers") == 1, what="the answer after Retry")
    _wait(d, lambda: _trial_ready(d) or judge_state(d) == "done", what="the next trial")
    assert _answers(study, "b2") == 1


def test_new_rater_cap_message_then_first_trial(browser, study, live_server, tmp_path):
    import urllib.request

    srv = live_server(study, new_raters_per_minute=1)
    with urllib.request.urlopen(f"{srv.url}/api/next?rater=first", timeout=20) as r:
        assert r.status == 200
    d = browser
    _open_and_start(d, srv.url, "second")
    _error_shown(d, "Many new raters")
    assert "Retrying in" in _text(d, "error-hint") and _visible(d, "retry")
    _shoot(d, tmp_path, "error_rater_cap.png")
    con = sqlite3.connect(study)
    con.execute("UPDATE raters SET created = created - 61")  # a minute later
    con.commit()
    con.close()
    d.find_element("id", "retry").click()
    _answer_key(d)  # the first trial is shown


def test_read_only_database_message_and_retry(browser, study, live_server, tmp_path, monkeypatch):
    import urllib.request

    import bapps_toolkit.judge.store as store

    first = live_server(study)
    with urllib.request.urlopen(f"{first.url}/api/next?rater=b4", timeout=20) as r:
        assert r.status == 200  # b4 has trials; then the database turns read-only
    first.close()
    real = store.connect

    def read_only(db, *args, **kwargs):
        con = real(db, *args, **kwargs)
        con.execute("PRAGMA query_only=1")  # SQLite's answer for a read-only file
        return con
    monkeypatch.setattr(store, "connect", read_only)
    srv = live_server(study, threads=1)
    d = browser
    _open_and_start(d, srv.url, "b4")
    _press(d, _answer_key(d))
    _error_shown(d, "read-only")
    assert _visible(d, "retry") and "Retrying in" not in _text(d, "error-hint")
    _shoot(d, tmp_path, "error_read_only.png")
    monkeypatch.undo()  # writable again: the server reopens its connection after a 503
    d.find_element("id", "retry").click()
    _wait(d, lambda: _js(d, "return window.bappsJudge.answers") == 1, what="the answer after Retry")
    assert _answers(study, "b4") == 1


def test_wrong_token_message_without_retry(browser, study, live_server, tmp_path):
    from bapps_toolkit.judge import add_rater

    add_rater(study, "b5")
    srv = live_server(study)
    d = browser
    _open_and_start(d, srv.url, "b5", "&token=wrong")
    _error_shown(d, "wrong or missing token")
    assert not _visible(d, "retry") and "organiser" in _text(d, "error-hint")
    _shoot(d, tmp_path, "error_token.png")
