"""The failure browser in a real browser: headless Chromium (Debian ``chromium`` +
``chromium-driver``) driven by Selenium opens the page written for the synthetic mini set from
``file://`` (no server), sorts it by number and by text columns, filters it by metric, set and
text, and loads nothing from outside its folder; a page of hostile ids runs none of them.
A screenshot goes to the test's tmp folder and, when ``BAPPS_SCREENSHOT_DIR`` is set, there too.
Skipped when Chromium, its driver or Selenium is absent.
"""
from __future__ import annotations

import os
import shutil
import time

import pytest
from chromium import NEEDS_CHROMIUM, start_chromium

from bapps_toolkit.report.browser import write_browser

pytestmark = NEEDS_CHROMIUM
webdriver = pytest.importorskip("selenium.webdriver")


@pytest.fixture(scope="module")
def page_dir(mini_h5, tmp_path_factory):
    from bapps_toolkit.evaluate import run_evaluation

    res = run_evaluation(mini_h5, ["l2", "ssim"], datasets=["2afc/val/color", "2afc/val/cnn"], n_boot=20,
                         progress=False)
    return write_browser(res, mini_h5, tmp_path_factory.mktemp("chromium") / "browse", per_group=6)


@pytest.fixture()
def driver():
    d = start_chromium("1500,1000", console_log=True, throttle_timers=True)
    yield d
    d.quit()


def _open(d, folder) -> None:
    d.get((folder / "index.html").as_uri())
    end = time.monotonic() + 20
    while d.execute_script("return document.body && document.body.dataset.ready") != "1":
        assert time.monotonic() < end, "the page's script never ran"
        time.sleep(0.05)


def _visible(d) -> list[dict]:
    return d.execute_script("""
        return Array.from(document.querySelectorAll('#items tbody tr')).filter(r => !r.hidden).map(r => ({
            metric: r.dataset.metric, set: r.dataset.set, text: r.dataset.text,
            stem: r.cells[3].textContent, d0: parseFloat(r.cells[5].dataset.v),
            margin: parseFloat(r.cells[7].dataset.v), shown: r.offsetParent !== null}));""")


def _click_header(d, col: str) -> None:
    from selenium.webdriver.common.by import By

    d.find_element(By.CSS_SELECTOR, f'#items th[data-col="{col}"] button').click()


def _select(d, element_id: str, text: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(d.find_element(By.ID, element_id)).select_by_visible_text(text)


def test_sort_and_filter_in_chromium(driver, page_dir, tmp_path):
    from selenium.webdriver.common.by import By

    _open(driver, page_dir)
    rows = _visible(driver)
    n = len(rows)
    assert n > 6 and all(r["shown"] for r in rows)
    count = driver.find_element(By.ID, "count")
    assert count.text == f"{n} of {n} rows shown"
    # numeric sort, ascending then descending
    _click_header(driver, "d0")
    d0 = [r["d0"] for r in _visible(driver)]
    assert d0 == sorted(d0) and len(d0) == n and d0[0] < d0[-1]
    _click_header(driver, "d0")
    assert [r["d0"] for r in _visible(driver)] == sorted(d0, reverse=True)
    th = driver.find_element(By.CSS_SELECTOR, '#items th[data-col="d0"]')
    assert th.get_attribute("aria-sort") == "descending"
    # text sort
    _click_header(driver, "stem")
    stems = [r["stem"] for r in _visible(driver)]
    assert stems == sorted(stems)
    # filter by metric: only ssim rows, all of them
    _select(driver, "f-metric", "ssim")
    ssim = _visible(driver)
    assert ssim and len(ssim) < n and len({r["metric"] for r in ssim}) == 1
    assert count.text == f"{len(ssim)} of {n} rows shown"
    # sorting keeps the filter
    _click_header(driver, "margin")
    again = _visible(driver)
    assert sorted(r["stem"] for r in again) == sorted(r["stem"] for r in ssim)
    assert [r["margin"] for r in again] == sorted(r["margin"] for r in again)
    # and a set on top, then text
    _select(driver, "f-set", "2afc/val/cnn")
    both = _visible(driver)
    assert both and all(r["set"] == both[0]["set"] for r in both) and len(both) < len(ssim)
    stem = both[0]["stem"]
    box = driver.find_element(By.ID, "f-text")
    box.send_keys(stem)
    assert [r["stem"] for r in _visible(driver)] == [stem]
    box.clear()
    box.send_keys("zz-no-such-stem")
    assert _visible(driver) == [] and count.text == f"0 of {n} rows shown"
    box.clear()
    box.send_keys(" ")  # an input event after clear()
    _select(driver, "f-metric", "all")
    _select(driver, "f-set", "all")
    assert len(_visible(driver)) == n
    # everything the page loaded came from its own folder, and nothing complained
    urls = driver.execute_script("""return [].concat(
        Array.from(document.images).map(i => [i.currentSrc, i.complete && i.naturalWidth > 0]),
        Array.from(document.querySelectorAll('script, link')).map(e => [e.src || e.href, true]));""")
    assert len(urls) > 3 * n and all(ok for _, ok in urls)  # every image loaded
    assert all(u.startswith(page_dir.as_uri() + "/") for u, _ in urls), urls
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
    _click_header(driver, "rank")
    shot = tmp_path / "failure_browser.png"
    driver.save_screenshot(str(shot))
    if os.environ.get("BAPPS_SCREENSHOT_DIR"):
        shutil.copy(shot, os.path.join(os.environ["BAPPS_SCREENSHOT_DIR"], shot.name))


def test_hostile_ids_do_not_run_in_chromium(driver, tmp_path, monkeypatch):
    from test_failure_browser import HOSTILE_LABEL, HOSTILE_STEM, write_hostile

    out = write_hostile(tmp_path / "b", monkeypatch)
    _open(driver, out)
    assert driver.execute_script("return typeof window.pwned") == "undefined"
    rows = _visible(driver)
    assert HOSTILE_STEM in [r["stem"] for r in rows]
    labels = driver.execute_script(
        "return Array.from(document.querySelectorAll('#items tbody tr')).map(r => r.cells[1].textContent)")
    assert set(labels) == {HOSTILE_LABEL}
    box = driver.find_element("id", "f-text")
    box.send_keys("<script>")
    assert [r["stem"] for r in _visible(driver)] == [HOSTILE_STEM]
    assert driver.execute_script("return typeof window.pwned") == "undefined"
