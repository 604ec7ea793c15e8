"""One evaluation of the batched logistic fit's item-wise work in numpy (as the engine does it) and in
torch float64 with 1 and with 2 threads, on the row shapes of a KADID-10k-size bootstrap
(per-type rows of ~300 drawn items, overall rows of ~7000). Prints ns per item and evaluation,
CPU (``time.process_time``) and wall, with the load average. Random data: only the speed matters.

    python benchmarks/bench_correlation_backend.py [--repeat 20]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from bapps_toolkit.correlation import _projection as P


def _rows(a: int, m: int) -> tuple[P.Rows, np.ndarray]:
    rng = np.random.default_rng(0)
    w = rng.integers(1, 3, (a, m)).astype(np.float64)
    zc, yt = rng.normal(size=(a, m)), rng.normal(size=(a, m))
    n = w.sum(1)
    zc -= (np.einsum("am,am->a", w, zc) / n)[:, None]
    yt -= (np.einsum("am,am->a", w, yt) / n)[:, None]
    yt -= (np.einsum("am,am->a", w * zc, yt) / np.einsum("am,am->a", w * zc, zc))[:, None] * zc
    buf = np.empty((6, a, m))
    buf[3], buf[4], buf[5] = 1.0, zc, yt
    rows = P.Rows(w, buf, n, np.einsum("am,am->a", w * zc, zc), np.einsum("am,am->a", w * yt, yt), a)
    return rows, np.tile([1.0, 0.1], (a, 1))


def _torch_eval(buf: torch.Tensor, w: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """The same sums as the engine's plain path: tanh, tanh^2, tanh^2 zc against all six planes."""
    zc = buf[4]
    tau = torch.tanh((zc - theta[:, 1:2]) * (0.5 * theta[:, 0:1]))
    sq = tau * tau
    var = torch.stack([tau, sq, sq * zc])
    return torch.bmm((var * w).transpose(0, 1), torch.cat([var, buf[3:]]).permute(1, 2, 0))


def _time(f: Callable[[], object], repeat: int) -> tuple[float, float]:
    f()
    c0, t0 = time.process_time(), time.perf_counter()
    for _ in range(repeat):
        f()
    return (time.process_time() - c0) / repeat, (time.perf_counter() - t0) / repeat


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=20)
    a = ap.parse_args()
    print(f"load average {os.getloadavg()}; {os.cpu_count()} CPUs; torch {torch.__version__}")
    print("| rows x items | numpy (engine) CPU / wall | torch 1 thread CPU / wall | torch 2 threads CPU / wall "
          "| ns/item |")
    print("|:---|---:|---:|---:|:---|")
    for shape in ((1000, 300), (64, 7000)):
        rows, theta = _rows(*shape)
        with threadpool_limits(limits=1, user_api="blas"):
            numpy_t = _time(lambda: P.state(theta, rows), a.repeat)  # noqa: B023
        tb, tw, tt = torch.from_numpy(rows.buf.copy()), torch.from_numpy(rows.w), torch.from_numpy(theta)
        got = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            got.append(_time(lambda: _torch_eval(tb, tw, tt), a.repeat))  # noqa: B023
        items = shape[0] * shape[1]
        ns = " / ".join(f"{1e9 * t[0] / items:.1f}" for t in [numpy_t, *got])
        cells = " | ".join(f"{1e3 * c:.1f} / {1e3 * w:.1f} ms" for c, w in [numpy_t, *got])
        print(f"| {shape[0]} x {shape[1]} | {cells} | {ns} (CPU) |")
    print("numpy includes the engine's 2x2 algebra per row; torch only the item-wise sums. "
          f"load average at end {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
