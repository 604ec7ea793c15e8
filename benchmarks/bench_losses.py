"""Forward + backward throughput (images/s) of every loss, against pytorch-msssim, piq and lpips
where they are installed, in one run (ratios = ours / theirs).

    python benchmarks/bench_losses.py [--batch 8] [--size 64] [--repeats 5] [--msssim-size 192]

Each figure is the best of ``--repeats`` timed steps (after one warm-up) of: a fresh input
that requires grad, loss(input, target), backward. Deep losses run on their seeded random
backbones (no ImageNet weights needed; the speed is the same). pytorch-msssim refuses MS-SSIM
below 161 px, so MS-SSIM is compared at ``--msssim-size``. Machine load (``os.getloadavg``)
is printed with the results: on a shared machine the figures move with it.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import time
import warnings

import torch

import bapps_toolkit as bt

DEEP = ("lpips", "pdl")


def best_step(fn, x: torch.Tensor, y: torch.Tensor, repeats: int) -> float:
    best = float("inf")
    for k in range(repeats + 1):
        xi = x.clone().requires_grad_(True)
        t0 = time.perf_counter()
        fn(xi, y).backward()
        if k:
            best = min(best, time.perf_counter() - t0)
    return best


def images(batch: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.rand(batch, 3, size, size, generator=g)
    x = (y + 0.1 * torch.randn(y.shape, generator=g)).clamp(0, 1)
    return x, y


def ours(name: str):
    opts = {"backbone_weights": "random"} if name.startswith(DEEP) else {}
    return bt.create_loss(name, input_range=(0, 1), **opts)


def others() -> dict[str, object]:
    """Reference implementations available here: {our loss name: callable(x, y) -> scalar}."""
    found: dict[str, object] = {}
    if importlib.util.find_spec("pytorch_msssim"):
        import pytorch_msssim as pm  # optional: only for this comparison

        found["ssim"] = ("pytorch-msssim", lambda a, b: 1 - pm.ssim(a, b, data_range=1.0, size_average=True))
        found["ms-ssim"] = ("pytorch-msssim", lambda a, b: 1 - pm.ms_ssim(a, b, data_range=1.0, size_average=True))
    try:
        import piq  # optional

        found["piq-ssim"] = ("piq", piq.SSIMLoss(data_range=1.0))
    except Exception:  # not installed, or fails to import next to this torch (needs torchvision)
        pass
    try:
        import lpips  # optional

        ref_lpips = lpips.LPIPS(net="vgg", pretrained=False, verbose=False)
        found["lpips-vgg"] = ("lpips", lambda a, b: ref_lpips(a * 2 - 1, b * 2 - 1).mean())
    except Exception:  # not installed, or needs torchvision
        pass
    return found


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--msssim-size", type=int, default=192)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--losses", default=",".join(["l1", *bt.list_metrics()]))
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore", UserWarning)
    refs = others()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"load average before {os.getloadavg()[0]:.2f}")
    for lib in ("pytorch_msssim", "piq", "lpips"):
        have = any(v[0].replace("-", "_") == lib for v in refs.values())
        state = "installed" if have else "not installed / not importable"
        print(f"  {lib}: {state}")
    x, y = images(args.batch, args.size)
    results: dict[str, float] = {}
    print(f"\n{'loss':<24}{'size':>6}{'ours img/s':>12}{'ref':>16}{'ref img/s':>12}{'ratio':>8}")
    for name in [s for s in args.losses.split(",") if s]:
        size = args.msssim_size if name == "ms-ssim" else args.size
        xs, ys = (x, y) if size == args.size else images(args.batch, size)
        t = best_step(ours(name), xs, ys, args.repeats)
        results[name] = t
        ref = refs.get(name)
        line = f"{name:<24}{size:>6}{args.batch / t:>12.1f}"
        if ref is not None:
            tr = best_step(ref[1], xs, ys, args.repeats)
            line += f"{ref[0]:>16}{args.batch / tr:>12.1f}{tr / t:>8.2f}"
        print(line, flush=True)
    if "pdl-vgg" in results and "lpips-vgg" in results:
        print(f"\nPDL / LPIPS-VGG forward+backward time: {results['pdl-vgg'] / results['lpips-vgg']:.2f} "
              f"(target <= 1.5)")
    print(f"load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
