"""Load and fault tests of the judge server, on 127.0.0.1 only, bounded in count and time.

* 20 simulated raters answer concurrently (each answer also re-posted by a second thread at
  the same moment): every answer is stored exactly once.
* ``bapps judge serve`` as a subprocess is killed with SIGKILL mid-study and restarted: every
  answer the server acknowledged (HTTP 200) is in the database, and raters resume.
* Hostile traffic (raw garbage, huge bodies, traversal paths) is refused and the server lives on.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from .helpers import answer_for, call, nxt

N_RATERS = 20
DEADLINE_S = 120.0


def _post_twice(url: str, body: dict) -> list[int]:
    """POST the same answer from two threads at once: exactly one is stored (200), one refused (409)."""
    results: list[int] = []
    twins = [threading.Thread(target=lambda: results.append(call(url, "/api/answer", body)[0])) for _ in range(2)]
    for th in twins:
        th.start()
    for th in twins:
        th.join()
    assert sorted(results) == [200, 409], results
    return results


def _rater_loop(url: str, rater: str, acked: list, refused: list, stop_at: float) -> None:
    while time.monotonic() < stop_at:
        st, t = nxt(url, rater)
        if st != 200 or t["done"]:
            return
        body = {**answer_for(t), "rater": rater}
        results = _post_twice(url, body)
        acked.append((rater, t["item"]))
        refused.append(results.count(409))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_twenty_concurrent_raters(make_study, live):
    db = make_study(judgments_per_item=N_RATERS, sentinel_share=0.1)
    srv = live(db, threads=8)
    acked: list = []
    refused: list = []
    stop_at = time.monotonic() + DEADLINE_S
    threads = [threading.Thread(target=_rater_loop, args=(srv.url, f"r{i:02d}", acked, refused, stop_at))
               for i in range(N_RATERS)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join(DEADLINE_S + 30)
    dt = time.perf_counter() - t0
    con = sqlite3.connect(db)
    stored = con.execute("SELECT rater, item FROM answers").fetchall()
    assigned = con.execute("SELECT COUNT(*) FROM assignments").fetchone()[0]
    assert len(stored) == len(set(stored)) == len(acked) == assigned  # every answer once, none lost
    assert sum(refused) == len(acked)  # each twin post was refused as a duplicate
    real = dict(con.execute("SELECT i.id, COUNT(a.id) FROM items i LEFT JOIN answers a ON a.item=i.id "
                            "WHERE i.expected IS NULL GROUP BY i.id"))
    assert set(real.values()) == {N_RATERS}
    print(f"{len(acked)} answers from {N_RATERS} raters (+{sum(refused)} duplicate posts refused) in "
          f"{dt:.1f} s: {len(acked) / dt:.0f} answers/s")


def _start_server(set_root, db, port: int = 0):
    proc = subprocess.Popen([sys.executable, "-m", "bapps_toolkit", "judge", "serve", str(set_root), "--db", str(db),
                             "--port", str(port), "--sentinel-share", "0.1", "--judgments-per-item", "3"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    end = time.monotonic() + 60
    seen = []
    while time.monotonic() < end:
        line = proc.stdout.readline()
        seen.append(line)
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if m:
            return proc, f"http://127.0.0.1:{m.group(1)}", int(m.group(1))
        if proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"server did not start: {''.join(seen)}")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigkill_mid_study_loses_no_acknowledged_answer(unjudged, tmp_path):
    db = tmp_path / "s.sqlite"
    proc, url, port = _start_server(unjudged[0], db)
    acked: set = set()
    lock = threading.Lock()
    stop = threading.Event()

    def rater(name: str) -> None:
        while not stop.is_set():
            try:
                st, t = nxt(url, name)
                if st != 200 or t["done"]:
                    return
                st, _ = call(url, "/api/answer", {**answer_for(t), "rater": name}, timeout=5)
            except OSError:
                return  # the server died under us: that answer was never acknowledged
            if st == 200:
                with lock:
                    acked.add((name, t["item"]))
    raters = [f"k{i}" for i in range(4)]
    threads = [threading.Thread(target=rater, args=(r,)) for r in raters]
    try:
        for th in threads:
            th.start()
        end = time.monotonic() + 60
        while len(acked) < 20 and time.monotonic() < end:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        stop.set()
        for th in threads:
            th.join(30)
        assert len(acked) >= 20
        proc, url, _ = _start_server(unjudged[0], db, port)
        stored = set(sqlite3.connect(db).execute("SELECT rater, item FROM answers").fetchall())
        assert acked <= stored  # nothing acknowledged is lost (at most in-flight extras stored)
        assert len(stored - acked) <= len(raters)
        for r in raters:  # resume: the next trial is the first unanswered item in the rater's order
            _, t = nxt(url, r)
            con = sqlite3.connect(db)
            order = [i for i, in con.execute("SELECT item FROM assignments WHERE rater=? ORDER BY position", (r,))]
            done = {i for i, in con.execute("SELECT item FROM answers WHERE rater=?", (r,))}
            assert t["done"] or t["item"] == next(i for i in order if i not in done)
            assert t["answered"] == len(done)
    finally:
        stop.set()
        proc.kill()
        proc.wait(10)


def _raw(port: int, data: bytes, *, half_close: bool = True) -> bytes:
    """Send raw bytes, return what the server answered before closing (a reset after the
    answer, as a server does that refuses the rest of a body, is fine)."""
    out = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        try:
            while chunk := s.recv(65536):
                out += chunk
        except ConnectionResetError:
            pass
    return out


@pytest.mark.timeout(120)
def test_hostile_requests_refused(make_study, live):
    db = make_study(sentinel_share=0.0, items_per_rater=3)
    srv = live(db)
    port = int(srv.url.rsplit(":", 1)[1])
    garbage = _raw(port, b"\x00\xffGARBAGE\r\n\r\n")
    assert garbage == b"" or b" 400 " in garbage.split(b"\r\n", 1)[0], garbage[:80]
    huge = (b"POST /api/answer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 50000000\r\n\r\n" + b"{" * 1000)
    assert b" 413 " in _raw(port, huge, half_close=False).split(b"\r\n", 1)[0]
    for path in (b"/api/image/../../../../etc/passwd?rater=a", b"/static/../../store.py", b"/static/..%2fstore.py",
                 b"/../../setup.cfg"):
        head = _raw(port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status = head.split(b"\r\n", 1)[0]
        assert re.search(rb" (400|403|404) ", status), (path, status)
        assert b"import " not in head and b"[metadata]" not in head and b"root:" not in head
    st, r = call(srv.url, "/api/answer", {"rater": "a", "item": [1] * 10, "side": "left", "rt_ms": 1})
    assert st == 400
    st, t = nxt(srv.url, "a")  # still serving
    assert st == 200 and not t["done"]
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM answers").fetchone()[0] == 0


def _platform_rater(url: str, key: str, n: int, acked: list, refused: list, ends: list, stop_at: float) -> None:
    """One participant arriving through the study link, then answering with twin posts."""
    pid = f"{n:024x}"
    st, a = call(url, "/api/arrive", {"PROLIFIC_PID": pid, "STUDY_ID": "study", "SESSION_ID": f"s{n}", "key": key})
    assert st == 200, a
    auth = {"rater": pid, "token": a["token"]}
    while time.monotonic() < stop_at:
        st, t = call(url, f"/api/next?rater={pid}&token={a['token']}")
        assert st == 200, t
        if t["done"]:
            ends.append((pid, t["total"], t["completion"]["outcome"], t["completion"]["code"]))
            return
        body = {**answer_for(t), **auth}
        _post_twice(url, body)
        acked.append((pid, t["item"]))
        refused.append(1)


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_fifty_concurrent_participants_on_an_adaptive_platform_study(make_study, live):
    """50 participants arrive through the Prolific link at once and answer with twin posts under
    adaptive assignment: every answer is stored exactly once, no item passes the cap, every
    participant who had trials ends with the completion code, recorded once (the others, who came
    when every item was settled, are told nothing is left)."""
    from bapps_toolkit.judge.keys import link_key, study_keys
    from bapps_toolkit.judge.store import load_config, open_study

    cap = 20  # 18 items x 20 >= 50 participants x 6 items: everyone gets trials
    db = make_study(assignment="adaptive", platform="prolific", items_per_rater=6, judgments_per_item=cap,
                    target_width=0.1, sentinel_share=0.1)
    con = open_study(db)
    key, code = link_key(study_keys(con)), load_config(con)["completion_code"]
    con.close()
    srv = live(db, threads=8)
    acked: list = []
    refused: list = []
    ends: list = []
    stop_at = time.monotonic() + 240
    threads = [threading.Thread(target=_platform_rater, args=(srv.url, key, n, acked, refused, ends, stop_at))
               for n in range(50)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(300)
    con = sqlite3.connect(db)
    stored = con.execute("SELECT rater, item FROM answers").fetchall()
    assigned = con.execute("SELECT COUNT(*) FROM assignments").fetchone()[0]
    assert len(stored) == len(set(stored)) == len(acked) == assigned  # once each, none lost, all answered
    assert len(refused) == len(acked)
    per_item = dict(con.execute("SELECT i.id, COUNT(a.id) FROM items i LEFT JOIN answers a ON a.item=i.id "
                                "WHERE i.expected IS NULL GROUP BY i.id"))
    assert max(per_item.values()) <= cap
    assert len(ends) == 50
    worked = [e for e in ends if e[1] > 0]
    assert len(worked) == 50 and {(o, c) for _, _, o, c in worked} == {("complete", code)}
    assert {(o, c) for _, n, o, c in ends if n == 0} <= {("no_trials", None)}
    assert con.execute("SELECT COUNT(*), COUNT(DISTINCT rater) FROM outcomes").fetchone() == (len(worked),) * 2
    assert con.execute("SELECT COUNT(*) FROM arrivals").fetchone()[0] == 50
