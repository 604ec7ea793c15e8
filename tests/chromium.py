"""Headless Chromium for the tests of the toolkit's web pages (Debian's chromium and chromium-driver)."""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
DRIVER = "/usr/bin/chromedriver"

#: Module marks of a browser test: skipped without the browser, bounded in time.
NEEDS_CHROMIUM = [
    pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)),
                       reason="needs Debian chromium and chromium-driver"),
    pytest.mark.timeout(300),
]


def start_chromium(window: str, *, console_log: bool = False, throttle_timers: bool = False) -> Any:
    """A headless Chromium WebDriver with a ``window`` ("W,H") sized window; the caller quits it.

    ``console_log`` keeps the page's console messages (``get_log("browser")``);
    ``throttle_timers`` leaves Chromium's background timer throttling on.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    args = ["--headless=new", "--no-sandbox", "--disable-gpu", f"--window-size={window}", "--disable-dev-shm-usage"]
    if not throttle_timers:
        args.append("--disable-background-timer-throttling")
    for a in args:
        opts.add_argument(a)
    if console_log:
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(DRIVER), options=opts)


def judge_state(d: Any) -> str:
    """The judging page's state (``window.bappsJudge.state()``), ``'loading'`` before its script ran."""
    return d.execute_script("return window.bappsJudge ? window.bappsJudge.state() : 'loading'")


def poll(cond: Callable[[], Any], timeout: float, describe: Callable[[], str], interval: float = 0.05) -> Any:
    """The first truthy value of ``cond()`` within ``timeout`` seconds, checked every ``interval``.

    Otherwise an AssertionError with ``describe()`` (the page's state, its console ...).
    """
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(describe())
