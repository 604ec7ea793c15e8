"""Machinery of the reliability tests (issue 6): a throttled loopback server and a harness that runs
a ``bapps`` command in a child process and kills it with SIGKILL at a chosen point.

Kill points come in two kinds:

* **time** — ``delay`` seconds after the child signals that its imports are done and the
  command itself starts (a marker file), drawn from a seeded RNG over the duration of an
  uninterrupted run of the same command;
* **commit** — just *before* or just *after* the ``k``-th ``os.replace`` the child makes (the
  rename that publishes a finished file under its final name; every writer in the toolkit
  commits through it), ``k`` drawn from the number of renames of an uninterrupted run.

The child counts its ``os.replace`` calls and writes the count on exit, so the parent knows the
range of ``k``. Outcomes of every trial are collected in :data:`TRIALS` and printed at the end of
the session (and written as JSON to ``$BAPPS_RELIABILITY_LOG`` when that is set).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

_TESTS = Path(__file__).resolve().parents[1]
if str(_TESTS) not in sys.path:
    sys.path.insert(0, str(_TESTS))

from http_server import LoopbackServer, _Handler  # noqa: E402

#: Triplets/pairs per set in the reliability subset of the mini set.
SUBSET_ITEMS = 40


# --------------------------------------------------------------------------------- data
def copy_subset(mini_root: Path, dest: Path, n: int = SUBSET_ITEMS) -> Path:
    """The first ``n`` items (by stem) of every set of the mini set, as a new BAPPS root."""
    src = Path(mini_root)
    for set_dir in sorted(p for p in src.glob("*/*/*") if p.is_dir()):
        for sub in sorted(p for p in set_dir.iterdir() if p.is_dir()):
            out = dest / set_dir.relative_to(src) / sub.name
            out.mkdir(parents=True, exist_ok=True)
            for f in sorted(sub.iterdir())[:n]:
                shutil.copyfile(f, out / f.name)
    for extra in src.iterdir():
        if extra.is_file():
            shutil.copyfile(extra, dest / extra.name)
    return dest


# --------------------------------------------------------------------------------- server
class _SlowWriter:
    """Wraps a socket file: writes in ``block``-byte pieces, sleeping ``pause`` s after each."""

    def __init__(self, raw, block: int, pause: float):
        self.raw, self.block, self.pause = raw, block, pause

    def write(self, data) -> int:
        view = memoryview(data)
        for i in range(0, len(view), self.block):
            self.raw.write(view[i:i + self.block])
            self.raw.flush()
            time.sleep(self.pause)
        return len(view)

    def __getattr__(self, name):
        return getattr(self.raw, name)


class _SlowHandler(_Handler):
    def setup(self) -> None:
        super().setup()
        owner = self.server.owner
        self.wfile = _SlowWriter(self.wfile, owner.block, owner.pause)


class ThrottledServer(LoopbackServer):
    """:class:`LoopbackServer` sending at most ``block`` bytes every ``pause`` seconds."""

    def __init__(self, files: dict[str, bytes], *, block: int = 16384, pause: float = 0.03, **kw):
        kw.setdefault("lifetime_s", 900.0)
        kw.setdefault("max_requests", 100_000)
        super().__init__(files, **kw)
        self.block, self.pause = block, pause
        self.handler_class = _SlowHandler


# --------------------------------------------------------------------------------- child harness
_PRELUDE = textwrap.dedent('''
    import atexit, json, os, signal, sys
    _plan = json.loads(os.environ["BAPPS_REL_PLAN"])
    _n = [0]
    _real_replace = os.replace
    def _replace(src, dst, *a, **k):
        _n[0] += 1
        at = _plan.get("kill_at_replace")
        if at and at[0] == _n[0] and at[1] == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        r = _real_replace(src, dst, *a, **k)
        if at and at[0] == _n[0] and at[1] == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return r
    os.replace = _replace
    def _count():
        if _plan.get("count_file"):
            with open(_plan["count_file"], "w") as fh:
                fh.write(str(_n[0]))
    atexit.register(_count)
    def _started():
        open(_plan["started"], "w").close()
''')


@dataclass
class Outcome:
    """How one child run ended."""

    status: str                 # "killed" | "finished" | "failed"
    rc: int | None
    seconds: float              # from the start marker to the end (or the kill)
    output: str = ""
    replaces: int | None = None
    watch_seconds: float | None = None  # start marker -> ``watch`` file appeared


def _wait_for_start(proc: subprocess.Popen, started: Path, deadline: float) -> None:
    while not started.exists() and proc.poll() is None:
        if time.monotonic() > deadline:
            raise AssertionError("child never started")
        time.sleep(0.005)


def _time_of_watch(proc: subprocess.Popen, watch: Path | None, t0: float) -> float | None:
    """Seconds from ``t0`` until ``watch`` appeared (None without a watch or if it never did)."""
    if watch is None:
        return None
    while proc.poll() is None and not watch.exists():
        time.sleep(0.002)
    return time.monotonic() - t0 if watch.exists() else None


def _kill_at(end: float, proc: subprocess.Popen) -> None:
    """SIGKILL ``proc`` at monotonic time ``end`` unless it has exited by then."""
    while proc.poll() is None and time.monotonic() < end:
        time.sleep(min(0.002, max(0.0, end - time.monotonic())))
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)


def run_child(body: str, tmp: Path, args: Sequence[str] = (), *, delay: float | None = None,
              kill_at_replace: list | None = None, env: dict | None = None,
              watch: Path | None = None, after_watch: bool = False,
              timeout: float = 180.0) -> Outcome:
    """Run ``_PRELUDE + body`` in a fresh interpreter. ``body`` imports what it needs, calls
    ``_started()`` and then runs the command. With ``delay`` the child is SIGKILLed that many
    seconds after ``_started()``; with ``kill_at_replace=[k, "before"|"after"]`` it kills
    itself at its ``k``-th ``os.replace``. ``watch``: a path whose first appearance is timed
    (``Outcome.watch_seconds``); with ``after_watch`` the ``delay`` counts from then."""
    tmp.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}-{time.monotonic_ns()}"
    started = tmp / f"started-{tag}"
    count = tmp / f"count-{tag}"
    log = tmp / f"log-{tag}.txt"
    plan = {"started": str(started), "count_file": str(count), "kill_at_replace": kill_at_replace}
    full_env = dict(os.environ, BAPPS_REL_PLAN=json.dumps(plan), PYTHONWARNINGS="ignore",
                    OMP_NUM_THREADS=str(torch.get_num_threads()))
    full_env.update(env or {})
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", _PRELUDE + textwrap.dedent(body), *map(str, args)],
                                env=full_env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            _wait_for_start(proc, started, deadline)
            t0 = time.monotonic()
            watch_s = _time_of_watch(proc, watch, t0)
            if delay is not None and proc.poll() is None:
                _kill_at((t0 + watch_s if after_watch and watch_s is not None else t0) + delay, proc)
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            seconds = time.monotonic() - t0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = log.read_text(errors="replace")
    replaces = int(count.read_text()) if count.exists() else None
    for p in (started, count, log):
        p.unlink(missing_ok=True)
    status = {-signal.SIGKILL: "killed", 0: "finished"}.get(proc.returncode, "failed")
    return Outcome(status, proc.returncode, seconds, text[-3000:], replaces, watch_s)


@dataclass
class KillPlan:
    kind: str                   # "time" | "commit"
    delay: float | None = None
    replace: list | None = None
    after_watch: bool = False

    def describe(self) -> str:
        if self.kind == "time":
            return f"t+{self.delay:.3f}s" + (" after the watched file appeared" if self.after_watch else "")
        return f"{self.replace[1]} rename #{self.replace[0]}"


def make_plans(seed: int, n_time: int, work_s: float, n_replaces: int, n_commit: int) -> list[KillPlan]:
    """``n_time`` kill times uniform in (2 %, 95 %) of ``work_s`` and ``n_commit`` commit points
    (the first and the last rename, before and after, then random ones), all seeded."""
    rng = np.random.default_rng(seed)
    plans = [KillPlan("time", delay=float(t)) for t in rng.uniform(0.02, 0.95, n_time) * work_s]
    commits = []
    if n_replaces >= 1:
        commits = [[1, "before"], [n_replaces, "after"], [1, "after"], [n_replaces, "before"]]
        while len(commits) < n_commit:
            commits.append([int(rng.integers(1, n_replaces + 1)), str(rng.choice(["before", "after"]))])
    plans += [KillPlan("commit", replace=c) for c in commits[:n_commit]]
    return plans


class Schedule:
    """The planned kills, then — while fewer than ``need`` time-based kills have really landed
    mid-run (a run can finish before its kill time when the machine is faster than during the
    reference run) — the seeded ``extra`` time points, which should be earlier ones."""

    def __init__(self, plans: list[KillPlan], extra: list[KillPlan], need: int):
        self.plans, self.extra, self.need = list(plans), list(extra), int(need)
        self.time_kills = 0

    def __iter__(self):
        yield from self.plans
        while self.time_kills < self.need and self.extra:
            yield self.extra.pop(0)

    def done(self, plan: KillPlan, killed: bool) -> None:
        self.time_kills += int(killed and plan.kind == "time")


# --------------------------------------------------------------------------------- report
@dataclass
class Trial:
    command: str
    plan: str
    outcome: str                # what the kill left and how the rerun went
    killed: bool
    checks: list[str] = field(default_factory=list)


TRIALS: list[Trial] = []


def record(command: str, plan: KillPlan, killed: bool, outcome: str, checks: list[str]) -> None:
    TRIALS.append(Trial(command, plan.describe(), outcome, killed, checks))




# --------------------------------------------------------------------------------- bounded memory
#: The key of the large tiled set (a train key, so ``bapps train`` can use it too).
BIG_KEY = "2afc/train/traditional"


def build_tiled_h5(source_h5: Path, out: Path, n_triplets: int, key: str = BIG_KEY) -> Path:
    """A packed file holding one 2AFC set of ``n_triplets`` triplets, tiled from every 2AFC set
    of ``source_h5``, written by the pack module's own set writer (``_write_set``: chunked
    arrays, SHA-256 per array, the same attributes as ``bapps pack``) with its PNG decoding step
    replaced by the tiled arrays. Marked synthetic; ``verify`` passes on it."""
    import importlib

    import h5py

    from bapps_toolkit._io import atomic_path
    from bapps_toolkit._version import __version__
    from bapps_toolkit.data import load_2afc
    from bapps_toolkit.data.layout import SetFiles

    pm = importlib.import_module("bapps_toolkit.data.pack")
    sets = load_2afc(source_h5)
    ref, p0, p1 = (np.concatenate([getattr(s, f) for s in sets]) for f in ("ref", "p0", "p1"))
    judge = np.concatenate([s.judge for s in sets]).astype(np.float32)
    m = len(judge)
    sf = SetFiles(key, Path("tiled"), [f"{i:07d}" for i in range(n_triplets)],
                  {f: [] for f in ("ref", "p0", "p1", "judge")})

    def tiled(_sf, _pool, _bar=None, _size=64, _crop=False):
        for start in range(0, n_triplets, 512):
            idx = np.arange(start, min(start + 512, n_triplets)) % m
            yield start, [ref[idx], p0[idx], p1[idx]], judge[idx]

    real = pm.iter_decoded
    pm.iter_decoded = tiled
    try:
        with atomic_path(out) as tmp:
            with h5py.File(tmp, "w", libver="latest") as f:
                pm._write_set(f, sf, None, None)
                f.attrs["source"] = f"tiled from {source_h5}"
                f.attrs["toolkit_version"] = __version__
                f.attrs["synthetic"] = True
                f.attrs["keys"] = json.dumps([key])
                f.attrs["counts"] = json.dumps({key: n_triplets})
                f.attrs[pm.FORMAT_ATTR] = pm.FORMAT
    finally:
        pm.iter_decoded = real
    return out


#: Child-process prelude: the peak resident memory of a workload above the post-import baseline.
_MEM_PRELUDE = textwrap.dedent('''
    import json, sys, time, warnings
    warnings.simplefilter("ignore")
    import numpy as np, torch
    import bapps_toolkit, bapps_toolkit.data, bapps_toolkit.evaluate, bapps_toolkit.train
    import bapps_toolkit.metrics.lpips

    def _status(field):
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    try:  # reset the high-water mark (Linux >= 4.0) so the import peak does not count
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        reset = True
    except OSError:
        reset = False
    _base = _status("VmRSS")
    _t0 = time.perf_counter()
    def _report(**extra):
        peak = _status("VmHWM")
        print("MEMORY " + json.dumps(dict(base_mb=_base / 2**20, peak_mb=peak / 2**20,
                                          above_mb=(peak - _base) / 2**20, hwm_reset=reset,
                                          seconds=time.perf_counter() - _t0, **extra)))
''')


#: glibc keeps freed heap memory of multi-threaded programs (torch's intra-op threads) in its
#: arenas, so the resident set of a loop that frees and re-allocates same-size ~10 MB tensors
#: creeps upwards although nothing stays alive. With this threshold such blocks are mmapped and
#: returned to the kernel on free, so RSS measures what the toolkit keeps alive.
MMAP_ENV = {"MALLOC_MMAP_THRESHOLD_": str(4 << 20)}


def measure(body: str, *args: str, env: dict | None = None, timeout: float = 900.0) -> dict:
    """Run ``_MEM_PRELUDE + body`` (which must call ``_report()``) in a fresh interpreter and
    return its figures: ``base_mb`` (RSS after imports), ``peak_mb`` (VmHWM), ``above_mb``.
    ``env``: extra environment variables (e.g. :data:`MMAP_ENV`)."""
    proc = subprocess.run([sys.executable, "-c", _MEM_PRELUDE + textwrap.dedent(body), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("MEMORY ")]
    if proc.returncode != 0 or not lines:
        raise AssertionError(f"memory probe failed (rc {proc.returncode}): {proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("MEMORY "):])


#: Workloads measured by the bounded-memory test and ``benchmarks/bench_memory.py``.
WORKLOADS = {
    "load whole (load_2afc)": """
        from bapps_toolkit.data import load_2afc
        sets = load_2afc(sys.argv[1], [sys.argv[2]])
        _report(n=len(sets[0]))
    """,
    "evaluate l2 by chunks (iter_2afc_chunks)": """
        from bapps_toolkit import create_metric
        from bapps_toolkit.data import iter_2afc_chunks, to_model_input
        from bapps_toolkit.scores import score_2afc
        m = create_metric("l2")
        d0s, d1s, js = [], [], []
        with torch.inference_mode():
            for part in iter_2afc_chunks(sys.argv[1], sys.argv[2], 1024):
                d0, d1 = m.pair_distances(to_model_input(part.ref), to_model_input(part.p0),
                                          to_model_input(part.p1))
                d0s.append(d0.double().numpy()); d1s.append(d1.double().numpy()); js.append(part.judge)
        s = score_2afc(np.concatenate(d0s), np.concatenate(d1s), np.concatenate(js))
        _report(n=sum(len(j) for j in js), score=s)
    """,
    "evaluate() l2, sets loaded whole (default)": """
        from bapps_toolkit.evaluate import evaluate
        t = evaluate(sys.argv[1], ["l2"], datasets=[sys.argv[2]], n_boot=100, progress=False, device="cpu")
        _report(n=int(t["n"].iloc[0]))
    """,
    "evaluate() l2, stream=True": """
        from bapps_toolkit.evaluate import evaluate
        t = evaluate(sys.argv[1], ["l2"], datasets=[sys.argv[2]], n_boot=100, progress=False, device="cpu",
                     stream=True, chunk_size=256)
        _report(n=int(t["n"].iloc[0]))
    """,
    "train lin fast path (precompute by chunks)": """
        from bapps_toolkit.train import TrainConfig, train
        res = train(TrainConfig(data=sys.argv[1], datasets=[sys.argv[2]], out=sys.argv[3], net="alex",
                                variant="lin", backbone_weights="random", epochs=1, decay_epochs=0,
                                batch_size=50, precompute_batch=64, device="cpu", progress=False))
        _report(n=sum(res.card["data"]["datasets"].values()))
    """,
    "train lin full path, streamed (budget 16 MiB)": """
        from bapps_toolkit.train import TrainConfig, train
        res = train(TrainConfig(data=sys.argv[1], datasets=[sys.argv[2]], out=sys.argv[3], net="alex",
                                variant="lin", backbone_weights="random", fast=False, epochs=1, decay_epochs=0,
                                batch_size=50, memory_budget_mb=16, device="cpu", progress=False))
        assert res.card["shuffle"]["mode"] == "streamed", res.card["shuffle"]
        _report(n=sum(res.card["data"]["datasets"].values()), windows=res.card["shuffle"]["n_chunks"])
    """,
}
