"""LPIPS distance without autograd: the fused in-place head against the plain features + head.

    python benchmarks/bench_lpips_paths.py                   # alex, batch 50, 64×64, CPU
    python benchmarks/bench_lpips_paths.py --nets alex vgg --batch 50 --repeats 9

Three ways to the same distances, measured in one run, interleaved (so a change of machine load
hits all three alike), on the RANDOM backbone (``backbone_weights="random"``: the cost of the
ImageNet one, the values UNCALIBRATED; they are not printed):

* ``fused in-place``: a head that normalises the taps by multiplying with their inverse channel
  norms and forms ``(f̂_j − f̂_i)²`` in the taps' own storage (the toolkit's former inference path,
  kept here, written from the metric's public parts, so that the comparison can be rerun);
* ``fused out-of-place``: the same arithmetic, every step a new tensor;
* ``features + head``: :meth:`LPIPS.features` then :meth:`LPIPS.distance_from_features`, the one
  path the metric has (with or without gradients, maps or not).

Prints items/s (one item = one pair for ``distance``, one triplet for ``pair_distances``), the
median of ``--repeats`` runs, and each path's ratio to ``features + head``. Times are this
process's CPU seconds on ``--threads`` threads (default one), so that other work on a shared
machine inflates them less than it would wall-clock times; the load average is printed too.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch

from bapps_toolkit.metrics.lpips import LPIPS, NORM_EPS

PATHS = ("fused in-place", "fused out-of-place", "features + head")


def _calls(metric: LPIPS, path: str) -> tuple[Callable[..., torch.Tensor], Callable[..., object]]:
    """``(distance, pair_distances)`` of ``metric`` forced down ``path``, without validation."""
    if path == "features + head":
        def dist(x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
            n = x0.shape[0]
            f = metric.features(torch.cat([x0, x1]))
            return metric.distance_from_features([t[:n] for t in f], [t[n:] for t in f])

        def pair(r: torch.Tensor, p0: torch.Tensor, p1: torch.Tensor) -> object:
            n = r.shape[0]
            f = metric.features(torch.cat([r, p0, p1]))
            fr = [t[:n] for t in f]
            return (metric.distance_from_features(fr, [t[n:2 * n] for t in f]),
                    metric.distance_from_features(fr, [t[2 * n:] for t in f]))

        return dist, pair
    inplace = path == "fused in-place"

    def fdist(x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        return _fused(metric, torch.cat([x0, x1]), x0.shape[0], [(0, 1)], inplace)[0]

    def fpair(r: torch.Tensor, p0: torch.Tensor, p1: torch.Tensor) -> object:
        return _fused(metric, torch.cat([r, p0, p1]), r.shape[0], [(0, 1), (0, 2)], inplace)

    return fdist, fpair


def _fused(metric: LPIPS, x: torch.Tensor, n: int, pairs: list[tuple[int, int]],
           inplace: bool) -> list[torch.Tensor]:
    """Distances of the ``n``-image blocks ``(i, j)`` of ``x`` (3 channels, no autocast)."""
    taps = metric.backbone(metric.scaling(metric.symmetric(x)))
    weights = [w.view(-1) for w in metric.lin_weights()]
    out = [torch.zeros(n, dtype=x.dtype) for _ in pairs]
    for k, f in enumerate(taps):
        inv = torch.linalg.vector_norm(f, dim=1, keepdim=True).add_(NORM_EPS).reciprocal_()
        unit = f.mul_(inv) if inplace else f * inv
        for p, (i, j) in enumerate(pairs):
            a, b = unit[i * n:(i + 1) * n], unit[j * n:(j + 1) * n]
            diff = b.sub_(a) if inplace else torch.sub(b, a)
            out[p] += diff.square_().mean(dim=(2, 3)) @ weights[k]
    return out


def _time(fn: Callable[[], object]) -> float:
    """CPU seconds of this process for one call (one thread: the work done, whatever the load)."""
    start = time.process_time()
    fn()
    return time.process_time() - start


def bench(net: str, batch: int, size: int, repeats: int) -> None:
    """Print one table for ``net``."""
    torch.manual_seed(0)
    metric = LPIPS(net=net, backbone_weights="random").eval()
    x0, x1, x2 = (torch.rand(batch, 3, size, size) * 2 - 1 for _ in range(3))
    calls = {p: _calls(metric, p) for p in PATHS}
    times: dict[tuple[str, str], list[float]] = {(p, k): [] for p in PATHS for k in ("distance", "pair")}
    with torch.no_grad():
        ref = calls["features + head"][0](x0, x1)
        for p in PATHS:  # warm up, and check the paths agree
            torch.testing.assert_close(calls[p][0](x0, x1), ref, rtol=1e-4, atol=1e-6)
            calls[p][1](x0, x1, x2)
        for _ in range(repeats):
            for p in PATHS:
                dist, pair = calls[p]
                times[(p, "distance")].append(_time(lambda d=dist: d(x0, x1)))
                times[(p, "pair")].append(_time(lambda q=pair: q(x0, x1, x2)))
    base = {k: batch / statistics.median(times[("features + head", k)]) for k in ("distance", "pair")}
    print(f"\nLPIPS-{net} (RANDOM backbone, UNCALIBRATED), batch {batch}, {size}x{size}, "
          f"{torch.get_num_threads()} thread(s), CPU time, median of {repeats}")
    print("| path | distance pairs/s | ratio | pair_distances triplets/s | ratio |")
    print("|---|---:|---:|---:|---:|")
    for p in PATHS:
        d = batch / statistics.median(times[(p, "distance")])
        t = batch / statistics.median(times[(p, "pair")])
        print(f"| {p} | {d:.1f} | {d / base['distance']:.3f} | {t:.1f} | {t / base['pair']:.3f} |")


def main() -> None:
    """Parse the arguments and print the tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", nargs="+", default=["alex"])
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"load average before: {os.getloadavg()}")
    for net in args.nets:
        bench(net, args.batch, args.size, args.repeats)
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
