"""Time per MAD pair (one item: a metric held, the other pushed to its minimum and maximum) at
several image sizes, with the iteration's cost against the metrics' own gradients measured in
the same run.

    python benchmarks/bench_mad.py [--pairs l2:ssim,ssim:lpips-alex] [--sizes 128,256] [--refs 2]
                                   [--steps 200] [--device cpu] [--threads 0]

For each metric pair and size, ``run_mad`` runs on the first ``--refs`` mini-set photos (both
halves, so ``2 × refs`` items) in a fresh folder with the default settings but ``--steps``;
printed: wall and process-CPU seconds per item (what a user waits for, start-up included) and
the mean iterations per image (an image stops early when it converges). Then, in the same
process, one iteration of ``push`` on a batch of ``2 × refs`` images is timed (exactly 8
iterations, best of 3) against one forward + backward pass of both metrics on the same batch:
the **ratio** is the iteration's cost over that floor (an iteration also runs the level-set
search and the acceptance test, each a few forward passes). LPIPS
runs on its seeded random backbone (UNCALIBRATED; the speed is the same as with ImageNet
weights). The machine load (``os.getloadavg``) is printed with every line: on a shared machine
the figures move with it. No figure here is asserted anywhere.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings

import numpy as np
import torch

from bapps_toolkit.competition import MadConfig, read_manifest, run_mad
from bapps_toolkit.competition.mad import MadSettings, push
from bapps_toolkit.competition.metricspec import build_metric

WEIGHTS = ["alex=random", "vgg=random", "squeeze=random"]


def _batch(size: int, n: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    ref = torch.rand(n, 3, size, size, generator=g)
    y = (ref + 0.06 * torch.randn(ref.shape, generator=g)).clamp(0, 1)
    return ref.to(device), y.to(device)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def iteration_ratio(a: str, b: str, size: int, n: int, device: str, iters: int = 8) -> tuple[float, float]:
    """``(seconds per iteration of a batch of n images, that / one fwd+bwd of both metrics)``,
    best of 3: the iteration timed by running :func:`push` for exactly ``iters`` iterations."""
    ma, mb = (build_metric(m, backbone_weights=WEIGHTS).to(torch.device(device)) for m in (a, b))
    ref, y = _batch(size, n, device)
    sign = torch.tensor([-1.0, 1.0] * (n // 2) + [1.0] * (n % 2), device=device)
    cfg = MadSettings(max_steps=iters, converge_tol=1e-12, window=iters)
    floor = it = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for m in (ma, mb):
            m(ref, y.clone().requires_grad_(True)).sum().backward()
        _sync(device)
        floor = min(floor, time.perf_counter() - t)
        t = time.perf_counter()
        res = push(ma, mb, ref, y, sign, cfg)
        _sync(device)
        it = min(it, (time.perf_counter() - t) / max(int(res.steps.max()), 1))
    return it, it / floor


def bench(a: str, b: str, size: int, refs: int, steps: int, device: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = MadConfig(a, b, out=f"{tmp}/mad", size=size, limit=refs, max_steps=steps, device=device,
                        batch_size=refs, backbone_weights=tuple(WEIGHTS))
        c0, t0 = time.process_time(), time.perf_counter()
        run = run_mad(cfg)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        man = read_manifest(run.manifest_path)
    iters = np.array([s for it in man.items for s in it.steps], dtype=np.float64)
    per_iter, ratio = iteration_ratio(a, b, size, 2 * refs, device)
    label = " [UNCALIBRATED random backbone]" if man.uncalibrated else ""
    return (f"{a} vs {b}{label} at {size}x{size} on {device}: {wall / len(man.items):.2f} s wall "
            f"({cpu / len(man.items):.2f} s CPU) per MAD pair ({len(man.items)} pairs, {iters.mean():.0f} "
            f"iterations per image of {steps}); one iteration of {2 * refs} images {1e3 * per_iter:.0f} ms = "
            f"{ratio:.2f} x one fwd+bwd of both metrics; loadavg {os.getloadavg()[0]:.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", default="l2:ssim,ssim:lpips-alex", help="comma-separated A:B metric pairs")
    p.add_argument("--sizes", default="128,256", help="comma-separated image sides")
    p.add_argument("--refs", type=int, default=2, help="references per run (items = 2 x refs)")
    p.add_argument("--steps", type=int, default=200, help="iteration budget per image (the default of bapps mad)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message=".*UNCALIBRATED.*")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, cpu count {os.cpu_count()}")
    for pair in args.pairs.split(","):
        a, b = pair.split(":")
        for size in (int(s) for s in args.sizes.split(",")):
            print(bench(a, b, size, args.refs, args.steps, args.device), flush=True)


if __name__ == "__main__":
    main()
