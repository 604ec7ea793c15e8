"""Peak resident memory of loading, evaluating and training on a packed split larger than RAM
budgets (issue 6, "bounded memory").

Builds, in a temporary folder, a packed file holding one 2AFC set of ``--triplets`` triplets
(default 17 000, ≈ 627 MB of image arrays; the test uses 12 000) tiled from the mini set by the pack module's own set
writer, then runs each workload in a fresh interpreter and prints its peak resident memory above
the post-import baseline (``VmHWM`` after resetting it through ``/proc/self/clear_refs``), its
baseline and its wall time — with ``MALLOC_MMAP_THRESHOLD_=4 MiB`` (what the toolkit keeps alive)
and with glibc's default allocator settings (what ``top`` shows). The temporary folder is deleted
at the end.

    python benchmarks/bench_memory.py [--source PACKED.h5] [--triplets N] [--skip-train]

``--source``: a packed BAPPS file to tile from (default: build the mini set and pack it,
about a minute). CPU only; the training workload uses a random AlexNet (UNCALIBRATED).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from reliability.harness import BIG_KEY, MMAP_ENV, WORKLOADS, build_tiled_h5, measure  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default=None, help="packed file to tile from (default: the mini set)")
    ap.add_argument("--triplets", type=int, default=17_000)
    ap.add_argument("--chunk", type=int, default=256, help="triplets per chunk for the chunked evaluation")
    ap.add_argument("--skip-train", action="store_true", help="skip the (slow, ~1 min) training workload")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bapps-bench-memory-") as tmp:
        tmp = Path(tmp)
        source = Path(args.source) if args.source else None
        if source is None:
            from bapps_toolkit.data import make_mini, pack

            t0 = time.perf_counter()
            root = make_mini(tmp / "mini", seed=0, progress=False)
            source = pack(root, tmp / "mini.h5", progress=False)
            print(f"mini set built and packed in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        big = build_tiled_h5(source, tmp / "big.h5", args.triplets)
        size_mb = big.stat().st_size / 2**20
        print(f"tiled file: {args.triplets} triplets in {BIG_KEY}, {size_mb:.0f} MiB on disk "
              f"(written in {time.perf_counter() - t0:.1f} s) [SYNTHETIC]")
        print(f"{'workload':46s} {'peak above base':>16s} {'(default malloc)':>17s} {'base RSS':>9s} {'time':>7s}")
        for name, body in WORKLOADS.items():
            if args.skip_train and name.startswith("train"):
                continue
            if "by chunks" in name and "iter_2afc_chunks" in name:
                body = body.replace("1024", str(args.chunk))
                name = f"{name[:-1]}, {args.chunk})"
            figs = [measure(body, big, BIG_KEY, tmp / f"run-{time.monotonic_ns()}", env=env)
                    for env in (MMAP_ENV, None)]
            print(f"{name:46s} {figs[0]['above_mb']:13.0f} MiB{figs[1]['above_mb']:14.0f} MiB"
                  f"{figs[0]['base_mb']:6.0f} MiB{figs[0]['seconds']:6.1f} s"
                  + ("" if figs[0]["hwm_reset"] else "  (high-water mark not resettable: includes imports)"))
    print("(CPU only; peak = VmHWM minus the RSS after imports, with MALLOC_MMAP_THRESHOLD_=4 MiB so that "
          "freed ~10 MB per-chunk buffers go back to the kernel; the second column is glibc's default, "
          "whose arenas keep freed heap memory resident; the file is deleted)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
