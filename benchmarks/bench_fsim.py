"""FSIM evaluation speed against an earlier version of the toolkit (issue 15: "FSIM ≥ 3× today's
items/s"), in one run on one machine.

For each version (this checkout, and ``--against`` REF checked out into a temporary git worktree)
a fresh interpreter scores 2AFC triplets of 64×64 images (batch ``--batch``, the CPU evaluation
default 50) with ``fsim`` — through ``pair_distances`` where the version has it, else two distance
calls, as its evaluate did — steady state for ``--seconds``; the rounds alternate between the
versions so that both see the machine's load at several moments, and the best round is kept.
This checkout is also measured with evaluate's ``compile`` (``FSIM.compiled_calls``: the
real-valued steps are compiled, the FFTs stay eager). Figures depend on the load: it is printed.

    python benchmarks/bench_fsim.py [--against 709643e~1] [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: The FSIM code when issue 15 was filed (before its FSIM work).
DEFAULT_AGAINST = "709643e~1"

_CHILD = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
import torch
from bapps_toolkit.metrics import create_metric
batch, seconds, mode = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
m = create_metric("fsim")
g = torch.Generator().manual_seed(0)
r, a, b = (torch.rand(batch, 3, 64, 64, generator=g) * 2 - 1 for _ in range(3))
if mode == "compile":
    pair, _ = m.compiled_calls()
    f = lambda: pair(r, a, b)
elif hasattr(m, "pair_distances"):
    f = lambda: m.pair_distances(r, a, b)
else:
    f = lambda: (m(r, a), m(r, b))
with torch.no_grad():
    t0 = time.perf_counter(); f(); first = time.perf_counter() - t0
    f()
    k, t0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        f(); k += 1
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
print(json.dumps({"items_per_s": k * batch / wall, "items_per_cpu_s": k * batch / cpu, "first_s": first,
                  "threads": torch.get_num_threads()}))
"""


def measure(src: Path, batch: int, seconds: float, mode: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src))
    out = subprocess.run([sys.executable, "-c", _CHILD, str(batch), str(seconds), mode], env=env,
                         capture_output=True, text=True, check=True, cwd=str(src))
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--against", default=DEFAULT_AGAINST, help="git revision to compare with")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=4.0)
    args = ap.parse_args()
    rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.against], capture_output=True,
                         text=True, check=True).stdout.strip()
    print(f"load average {os.getloadavg()[0]:.1f}; fsim, 2AFC triplets of 64x64, batch {args.batch}; "
          f"this checkout vs {args.against} ({rev})")
    best: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bapps-bench-fsim-") as tmp:
        old = Path(tmp) / "old"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(old), args.against],
                       check=True)
        try:
            for _ in range(args.rounds):
                for name, src, mode in ((f"{rev}", old, "eager"), ("this checkout", ROOT, "eager"),
                                        ("this checkout + compile", ROOT, "compile")):
                    r = measure(src, args.batch, args.seconds, mode)
                    if name not in best or r["items_per_s"] > best[name]["items_per_s"]:
                        best[name] = r
                print(f"  round done, load average {os.getloadavg()[0]:.1f}", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], check=False)
    base = best[rev]
    print("| version | items/s | items per CPU-second | first call s | vs " + rev + " |")
    print("|:---|---:|---:|---:|---:|")
    for name, r in best.items():
        print(f"| {name} | {r['items_per_s']:.0f} | {r['items_per_cpu_s']:.0f} | {r['first_s']:.1f} "
              f"| {r['items_per_s'] / base['items_per_s']:.2f}x |")
    print(f"load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
