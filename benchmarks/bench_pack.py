"""Benchmark of the BAPPS data layer: pack throughput and val-set load time / resident memory.

Prints (nothing is asserted):
  * make-mini build time;
  * ``pack`` images/s with ``--workers`` processes (target: >= 2000 images/s on 2 cores);
  * time and resident-memory (RSS) delta to load every val set (2AFC + JND) of the mini .h5,
    bytes per triplet / pair, and the BAPPS val resident size extrapolated from them
    (36.3k val triplets: 4.7k+4.7k+10.9k+9.4k+4.7k+1.9k; 9.6k JND pairs; target <= 1.5 GB);
  * with ``--full-size``: a file of BAPPS val's size (the mini val sets tiled to the official
    counts) is written and loaded whole — measured, not extrapolated (target < 2 s).

    python benchmarks/bench_pack.py [--workers 2] [--full-size] [--device cuda] [--keep DIR]

Run on an otherwise idle machine; the RSS delta is read from /proc/self/statm.
"""
from __future__ import annotations

import argparse
import gc
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

BAPPS_VAL_2AFC = {"traditional": 4720, "cnn": 4720, "superres": 10935, "deblur": 9440,
                  "color": 4720, "frameinterp": 1888}
BAPPS_VAL_JND = {"traditional": 4800, "cnn": 4800}


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def cpu_s() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _measure_load(h5: str, device: str) -> None:
    """Child process: load every val set and print one JSON line (fresh process = clean RSS)."""
    import json

    import torch

    from bapps_toolkit.data import iter_jnd_chunks, load_2afc, load_jnd

    dev = None if device == "none" else device
    # Warm-up: library initialisation and first-use allocations are not part of the data's size.
    next(iter(iter_jnd_chunks(h5, "val/cnn", 8)))
    if dev and dev.startswith("cuda"):
        torch.zeros(1, device=dev)  # create the CUDA context before measuring
    gc.collect()
    r0, c0 = rss_bytes(), cpu_s()
    t0 = time.perf_counter()
    two = load_2afc(h5, "val", device=dev)
    jnd = load_jnd(h5, "val", device=dev)
    if dev and dev.startswith("cuda"):
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    raw_t = sum(s.ref.nbytes + s.p0.nbytes + s.p1.nbytes + s.judge.nbytes for s in two) if dev is None else 0
    raw_j = sum(s.p0.nbytes + s.p1.nbytes + s.same.nbytes for s in jnd) if dev is None else 0
    print(json.dumps({"seconds": dt, "cpu": cpu_s() - c0, "rss": rss_bytes() - r0,
                      "triplets": sum(len(s) for s in two), "pairs": sum(len(s) for s in jnd),
                      "raw_t": raw_t, "raw_j": raw_j}))


def load_val(h5: Path, device=None) -> dict:
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, __file__, "--_measure-load", str(h5), str(device or "none")],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2, help="pack decode processes (default 2)")
    ap.add_argument("--full-size", action="store_true", help="also write and load a BAPPS-val-sized file")
    ap.add_argument("--device", default=None, help="also load onto this torch device (e.g. cuda)")
    ap.add_argument("--keep", default=None, help="work in this folder and keep it")
    ap.add_argument("--_measure-load", nargs=2, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._measure_load:
        _measure_load(*args._measure_load)
        return

    from bapps_toolkit.data import make_mini, pack
    from bapps_toolkit.data.pack import write_packed

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_pack_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        print(f"cores usable: {len(os.sched_getaffinity(0))}, pack workers: {args.workers}")
        t0, c0 = time.perf_counter(), cpu_s()
        root = make_mini(work / "mini", seed=0, progress=False)
        print(f"make-mini: {time.perf_counter() - t0:.2f} s wall, {cpu_s() - c0:.2f} s CPU")

        h5 = work / "mini.h5"
        if h5.exists():
            h5.unlink()
        t0, c0 = time.perf_counter(), cpu_s()
        pack(root, h5, workers=args.workers, progress=False)
        dt, dc = time.perf_counter() - t0, cpu_s() - c0
        n_img = 3 * 2570 + 2 * 500
        print(f"pack: {n_img} images in {dt:.2f} s = {n_img / dt:.0f} images/s "
              f"({dc:.2f} s CPU, {n_img / dc:.0f} images per CPU-second) [target >= 2000 images/s on 2 cores]")

        m = load_val(h5)
        n_t, n_j, drss = m["triplets"], m["pairs"], m["rss"]
        raw_t, raw_j = m["raw_t"], m["raw_j"]
        # Split the RSS delta between the two kinds in proportion to their raw bytes.
        b_t = drss * raw_t / (raw_t + raw_j) / n_t
        b_j = drss * raw_j / (raw_t + raw_j) / n_j
        print(f"load mini val (.h5 -> RAM, fresh process): {n_t} triplets + {n_j} pairs in "
              f"{m['seconds'] * 1000:.0f} ms ({m['cpu'] * 1000:.0f} ms CPU), RSS +{drss / 2**20:.1f} MiB "
              f"-> {b_t:.0f} B/triplet, {b_j:.0f} B/pair (raw arrays {raw_t / n_t:.0f} / {raw_j / n_j:.0f})")
        N_T, N_J = 36_300, 9_600
        est = N_T * b_t + N_J * b_j
        print(f"extrapolated BAPPS val resident ({N_T} triplets + {N_J} pairs): {est / 2**30:.3f} GiB "
              f"= {est / 1e9:.3f} GB [target <= 1.5 GB]")

        if args.full_size:
            from bapps_toolkit.data import load_2afc, load_jnd
            (full := work / "bapps_val_size.h5").unlink(missing_ok=True)
            sets = {}
            for s in load_2afc(h5, "val"):
                n = BAPPS_VAL_2AFC[s.category]
                idx = np.arange(n) % len(s)
                sets[s.key] = ({k: getattr(s, k)[idx] for k in ("ref", "p0", "p1", "judge")},
                               [f"{i:06d}" for i in range(n)])
            for s in load_jnd(h5, "val"):
                n = BAPPS_VAL_JND[s.category]
                idx = np.arange(n) % len(s)
                sets[s.key] = ({k: getattr(s, k)[idx] for k in ("p0", "p1", "same")},
                               [f"{i:06d}" for i in range(n)])
            t0 = time.perf_counter()
            write_packed(full, sets, source="benchmark: mini val tiled to BAPPS val counts", synthetic=True)
            print(f"wrote BAPPS-val-sized file ({full.stat().st_size / 2**30:.2f} GiB) in "
                  f"{time.perf_counter() - t0:.1f} s")
            del sets
            for attempt in (1, 2):
                m = load_val(full)
                print(f"load BAPPS-val-sized file -> RAM (run {attempt}, fresh process): {m['triplets']} "
                      f"triplets + {m['pairs']} pairs in {m['seconds']:.2f} s ({m['cpu']:.2f} s CPU), "
                      f"RSS +{m['rss'] / 2**30:.3f} GiB ({m['rss'] / 1e9:.3f} GB) [targets < 2 s, <= 1.5 GB]")
            if args.device:
                m = load_val(full, args.device)
                print(f"load BAPPS-val-sized file -> {args.device}: {m['seconds']:.2f} s, "
                      f"host RSS +{m['rss'] / 2**20:.0f} MiB")
        elif args.device:
            m = load_val(h5, args.device)
            print(f"load mini val -> {args.device}: {m['seconds'] * 1000:.0f} ms, host RSS +{m['rss'] / 2**20:.0f} MiB")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
