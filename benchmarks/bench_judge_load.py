"""Load and kill -9 benchmark of the judging server (``bapps judge serve``, waitress on 127.0.0.1).

Prints (nothing is asserted):

* **load**: R concurrent raters (threads, one keep-alive connection each) answer A trials each
  as fast as the server allows (``GET /api/next`` then ``POST /api/answer``, no images); answers
  acknowledged, stored, lost (acknowledged but not stored) and duplicated; p50/p99 latency of
  each route; answers per second. With ``--baseline-src DIR`` (a folder holding another
  version's ``bapps_toolkit`` package, e.g. ``git archive <commit> bapps_toolkit | tar -x -C DIR``)
  the same load is run against that version too, alternating, on the same machine, and the
  ratios current/baseline are printed;
* **kill -9**: K raters answer while the server process is killed with SIGKILL K times at
  random moments and restarted on its port; raters retry as the page does. Every acknowledged
  answer must be in the database afterwards (lost = 0), none twice.

The machine load (``/proc/loadavg``) is printed before and after: on a shared machine the
latencies depend on it.

    python benchmarks/bench_judge_load.py [--raters 50] [--answers 40] [--kills 12]
        [--baseline-src DIR] [--rounds 1]
"""
from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def make_study(db: Path, n_items: int, per_item: int, per_rater: int) -> Path:
    """A study of ``n_items`` 2AFC items (random 64x64 patches), ``per_rater`` items each."""
    from PIL import Image

    from bapps_toolkit.judge.items import Item
    from bapps_toolkit.judge.store import create_study

    rng = np.random.default_rng(0)

    def png() -> bytes:
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, format="PNG")
        return buf.getvalue()
    items = [Item("2afc/val/bench", f"{i:05d}", {"ref": png(), "p0": png(), "p1": png()}) for i in range(n_items)]
    return create_study(db, items, judgments_per_item=per_item, items_per_rater=per_rater, sentinel_share=0.0)


class Server:
    """``bapps judge serve`` in a child process running the package found in ``src``."""

    def __init__(self, db: Path, src: Path, port: int = 0) -> None:
        env = {**os.environ, "PYTHONPATH": str(src)}
        self.proc = subprocess.Popen([sys.executable, "-m", "bapps_toolkit", "judge", "serve", "--db", str(db),
                                      "--port", str(port)], cwd=tempfile.gettempdir(), env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        seen = []
        end = time.monotonic() + 120
        while time.monotonic() < end:
            line = self.proc.stdout.readline() if self.proc.stdout else ""
            seen.append(line)
            m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
            if m:
                self.port = int(m.group(1))
                threading.Thread(target=self._drain, daemon=True).start()
                return
            if self.proc.poll() is not None:
                break
        self.proc.kill()
        raise RuntimeError("server did not start: " + "".join(seen))

    def _drain(self) -> None:
        for _ in self.proc.stdout or ():
            pass

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)


class Client:
    """One rater's keep-alive connection; ``call`` returns (status, JSON body, seconds)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.con = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict, float]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data else {}
        t0 = time.perf_counter()
        try:
            self.con.request(method, path, body=data, headers=headers)
            resp = self.con.getresponse()
            payload = resp.read()
        except (OSError, http.client.HTTPException):
            self.con.close()
            self.con = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            raise
        return resp.status, json.loads(payload or b"{}"), time.perf_counter() - t0


def answer_of(trial: dict, rater: str) -> dict:
    return {"rater": rater, "item": trial["item"], "side": random.choice(("left", "right")), "rt_ms": 500.0}


@dataclass
class LoadResult:
    next_s: list[float] = field(default_factory=list)
    answer_s: list[float] = field(default_factory=list)
    acked: list[tuple[str, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0


def _rater(port: int, rater: str, n: int, out: LoadResult, lock: threading.Lock, go: threading.Event) -> None:
    c = Client(port)
    go.wait()
    for _ in range(n):
        st, t, dt_next = c.call("GET", f"/api/next?rater={rater}")
        if st != 200 or t.get("done"):
            with lock:
                out.errors.append(f"{rater}: next {st} {t}")
            return
        st, r, dt_answer = c.call("POST", "/api/answer", answer_of(t, rater))
        with lock:
            out.next_s.append(dt_next)
            out.answer_s.append(dt_answer)
            if st == 200:
                out.acked.append((rater, t["item"]))
            else:
                out.errors.append(f"{rater}: answer {st} {r}")


def run_load(src: Path, workdir: Path, raters: int, answers: int, tag: str) -> dict:
    per_item = min(raters, 20)
    n_items = max(answers, -(-raters * answers // per_item))  # every rater gets its answers, every slot is used
    db = make_study(workdir / f"load-{tag}.sqlite", n_items=n_items, per_item=per_item, per_rater=answers)
    server = Server(db, src)
    out, lock, go = LoadResult(), threading.Lock(), threading.Event()
    threads = [threading.Thread(target=_rater, args=(server.port, f"r{i:03d}", answers, out, lock, go))
               for i in range(raters)]
    try:
        for th in threads:
            th.start()
        t0 = time.perf_counter()
        go.set()
        for th in threads:
            th.join(600)
        out.wall_s = time.perf_counter() - t0
    finally:
        server.kill()
    stored = sqlite3.connect(db).execute("SELECT rater, item FROM answers").fetchall()
    ms = lambda xs, q: 1000.0 * float(np.percentile(xs, q)) if xs else float("nan")  # noqa: E731
    return {"version": tag, "acked": len(out.acked), "stored": len(stored),
            "lost": len(set(out.acked) - set(stored)), "duplicated": len(stored) - len(set(stored)),
            "errors": len(out.errors), "first_error": out.errors[0] if out.errors else "",
            "answer_p50_ms": ms(out.answer_s, 50), "answer_p99_ms": ms(out.answer_s, 99),
            "next_p50_ms": ms(out.next_s, 50), "next_p99_ms": ms(out.next_s, 99),
            "wall_s": out.wall_s, "answers_per_s": len(out.acked) / out.wall_s if out.wall_s else 0.0}


def _kill_rater(state: dict, rater: str) -> None:
    """Answer until told to stop; on a dead connection wait and retry the same answer (as the page)."""
    pending: dict | None = None
    while not state["stop"].is_set():
        try:
            c = Client(state["port"])
            if pending is None:
                st, t, _ = c.call("GET", f"/api/next?rater={rater}")
                if st != 200 or t.get("done"):
                    return
                pending = answer_of(t, rater)
            st, _, _ = c.call("POST", "/api/answer", pending)
        except (OSError, http.client.HTTPException, ValueError):
            time.sleep(0.05)
            continue
        if st in (200, 409):  # 409: stored before its acknowledgement was lost
            if st == 200:
                with state["lock"]:
                    state["acked"].add((rater, pending["item"]))
            pending = None


def run_kills(src: Path, workdir: Path, raters: int, kills: int, tag: str, seed: int = 0) -> dict:
    rng = random.Random(seed)
    db = make_study(workdir / f"kill-{tag}.sqlite", n_items=500, per_item=raters, per_rater=0)
    server = Server(db, src)
    state = {"port": server.port, "stop": threading.Event(), "lock": threading.Lock(), "acked": set()}
    threads = [threading.Thread(target=_kill_rater, args=(state, f"k{i:02d}")) for i in range(raters)]
    for th in threads:
        th.start()
    acked_at_kill = []
    try:
        for _ in range(kills):
            time.sleep(rng.uniform(0.3, 1.5))
            server.kill()
            with state["lock"]:
                acked_at_kill.append(len(state["acked"]))
            server = Server(db, src, port=state["port"])
        time.sleep(1.0)
    finally:
        state["stop"].set()
        for th in threads:
            th.join(60)
        server.kill()
    stored = sqlite3.connect(db).execute("SELECT rater, item FROM answers").fetchall()
    acked = state["acked"]
    return {"kills": kills, "acked": len(acked), "stored": len(stored), "lost": len(acked - set(stored)),
            "duplicated": len(stored) - len(set(stored)), "acked_at_kills": acked_at_kill}


def _print_load(rows: list[dict]) -> None:
    cols = ("version", "acked", "stored", "lost", "duplicated", "errors", "answer_p50_ms", "answer_p99_ms",
            "next_p50_ms", "next_p99_ms", "wall_s", "answers_per_s")
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(f"{r[c]:.1f}" if isinstance(r[c], float) else str(r[c]) for c in cols))
        if r["first_error"]:
            print("   first error:", r["first_error"][:200])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--raters", type=int, default=50)
    p.add_argument("--answers", type=int, default=40, help="answers per rater")
    p.add_argument("--kills", type=int, default=12, help="kill -9 rounds (0 = skip)")
    p.add_argument("--kill-raters", type=int, default=8)
    p.add_argument("--baseline-src", type=Path, help="folder holding a baseline bapps_toolkit package")
    p.add_argument("--rounds", type=int, default=1, help="load runs per version (alternating)")
    args = p.parse_args(argv)
    print(f"loadavg before: {loadavg()}  ({os.cpu_count()} CPUs)")
    versions = [("current", REPO)] + ([("baseline", args.baseline_src.resolve())] if args.baseline_src else [])
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench_judge_") as tmp:
        for k in range(args.rounds):
            for tag, src in versions if k % 2 == 0 else versions[::-1]:
                rows.append(run_load(src, Path(tmp), args.raters, args.answers, f"{tag}{k}"))
                rows[-1]["version"] = tag
                print(f"  {tag} round {k}: done, loadavg {loadavg()}", flush=True)
        print(f"\nload: {args.raters} raters x {args.answers} answers, waitress on 127.0.0.1 (8 threads)")
        _print_load(rows)
        if args.baseline_src:
            mean = lambda tag, c: float(np.mean([r[c] for r in rows if r["version"] == tag]))  # noqa: E731
            print("ratio current/baseline: " + ", ".join(
                f"{c} {mean('current', c) / mean('baseline', c):.2f}"
                for c in ("answer_p50_ms", "answer_p99_ms", "next_p50_ms", "next_p99_ms", "answers_per_s")))
        if args.kills:
            for tag, src in versions:
                k = run_kills(src, Path(tmp), args.kill_raters, args.kills, tag)
                print(f"\nkill -9 ({tag}): {k['kills']} kills of the server, {args.kill_raters} raters: "
                      f"{k['acked']} answers acknowledged, {k['stored']} stored, lost {k['lost']}, "
                      f"duplicated {k['duplicated']} (acknowledged at each kill: {k['acked_at_kills']})")
    print(f"\nloadavg after: {loadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
