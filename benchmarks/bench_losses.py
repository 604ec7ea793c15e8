"""Forward + backward throughput (images/s) of every loss, against pytorch-msssim, piq and lpips
where they are installed, in one run (ratio = our images/s / theirs: > 1 means ours is faster).

    python benchmarks/bench_losses.py [--batch 8] [--size 64] [--repeats 5] [--msssim-size 192]

One step is: a fresh input that requires grad, loss(input, target), backward. For a loss with a
reference implementation the steps alternate ours, theirs, ours, theirs … (after one warm-up
each), so a burst of load on a shared machine hits both; each figure is the best of
``--repeats`` steps, in process CPU time (all threads; robust to other processes taking the
cores) and in wall time. PDL is also timed interleaved with our LPIPS-VGG (issue 13's target:
PDL within 1.5x of LPIPS-VGG). Deep losses run on their seeded random backbones (no ImageNet
weights needed; the speed is the same). pytorch-msssim refuses MS-SSIM below 161 px, so MS-SSIM
is compared at ``--msssim-size``. The machine load (``os.getloadavg``) is printed with every
line: on a shared machine the figures move with it.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import time
import warnings
from collections.abc import Callable

import torch

import bapps_toolkit as bt

DEEP = ("lpips", "pdl", "dists")
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def one_step(fn: LossFn, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """``(process CPU seconds, wall seconds)`` of one forward + backward."""
    xi = x.clone().requires_grad_(True)
    c0, w0 = time.process_time(), time.perf_counter()
    fn(xi, y).backward()
    return time.process_time() - c0, time.perf_counter() - w0


def interleaved(fns: list[LossFn], x: torch.Tensor, y: torch.Tensor, repeats: int) -> list[tuple[float, float]]:
    """Best ``(cpu, wall)`` per function over ``repeats`` rounds of A, B, A, B … (one warm-up each)."""
    for fn in fns:
        one_step(fn, x, y)
    best = [(float("inf"), float("inf")) for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            c, w = one_step(fn, x, y)
            best[i] = (min(best[i][0], c), min(best[i][1], w))
    return best


def images(batch: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.rand(batch, 3, size, size, generator=g)
    x = (y + 0.1 * torch.randn(y.shape, generator=g)).clamp(0, 1)
    return x, y


def ours(name: str):
    opts = {"backbone_weights": "random"} if name.startswith(DEEP) else {}
    return bt.create_loss(name, input_range=(0, 1), **opts)


def others() -> dict[str, tuple[str, LossFn]]:
    """Reference implementations available here: {our loss name: (library, callable(x, y) -> scalar)}."""
    found: dict[str, tuple[str, LossFn]] = {}
    if importlib.util.find_spec("pytorch_msssim"):
        import pytorch_msssim as pm  # optional: only for this comparison

        found["ssim"] = ("pytorch-msssim", lambda a, b: 1 - pm.ssim(a, b, data_range=1.0, size_average=True))
        found["ms-ssim"] = ("pytorch-msssim", lambda a, b: 1 - pm.ms_ssim(a, b, data_range=1.0, size_average=True))
    try:
        import piq  # optional

        found["psnr"] = ("piq", lambda a, b: -piq.psnr(a, b, data_range=1.0))
        found["fsim"] = ("piq", piq.FSIMLoss(data_range=1.0))
    except Exception:  # not installed, or fails to import next to this torch (needs torchvision)
        pass
    try:
        import lpips  # optional

        for net in ("alex", "vgg", "squeeze"):
            ref = lpips.LPIPS(net=net, pretrained=False, pnet_rand=True, verbose=False)
            found[f"lpips-{net}"] = ("lpips", lambda a, b, ref=ref: ref(a * 2 - 1, b * 2 - 1).mean())
    except Exception:  # not installed, or needs torchvision
        pass
    return found


def _line(name: str, size: int, batch: int, t: tuple[float, float], ref=None, tr=None) -> str:
    line = f"{name:<24}{size:>5}{batch / t[0]:>10.1f}{batch / t[1]:>10.1f}"
    if ref is not None and tr is not None:
        line += f"{ref:>16}{batch / tr[0]:>10.1f}{batch / tr[1]:>10.1f}{tr[0] / t[0]:>8.2f}{tr[1] / t[1]:>8.2f}"
    else:
        line += " " * 16 + " " * 36
    return line + f"{os.getloadavg()[0]:>7.2f}"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 allow_abbrev=False)
    ap.add_argument("--batch", type=int, default=8, help="images per step (default 8)")
    ap.add_argument("--size", type=int, default=64, help="image side in pixels (default 64)")
    ap.add_argument("--msssim-size", type=int, default=192,
                    help="image side for ms-ssim (pytorch-msssim needs > 160; default 192)")
    ap.add_argument("--repeats", type=int, default=5, help="timed steps per loss, best kept (default 5)")
    ap.add_argument("--losses", default=",".join(["l1", *bt.list_metrics()]),
                    help="comma-separated losses (default: l1 and every registered metric)")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore", UserWarning)
    refs = others()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"load average before {os.getloadavg()}")
    for lib in ("pytorch-msssim", "piq", "lpips"):
        state = "installed" if any(v[0] == lib for v in refs.values()) else "not installed / not importable"
        print(f"  {lib}: {state}")
    x, y = images(args.batch, args.size)
    interleaved([ours("l1")], x, y, 3)  # first autograd calls of the process start threads: not timed
    print("\nimages/s, forward+backward; cpu = process CPU time (all threads), wall = elapsed; "
          "ratio = ours / theirs (> 1: ours faster)")
    print(f"{'loss':<24}{'size':>5}{'ours cpu':>10}{'ours wall':>10}{'reference':>16}{'ref cpu':>10}"
          f"{'ref wall':>10}{'r(cpu)':>8}{'r(wall)':>8}{'load':>7}")
    for name in [s for s in args.losses.split(",") if s]:
        size = args.msssim_size if name == "ms-ssim" else args.size
        xs, ys = (x, y) if size == args.size else images(args.batch, size)
        ref = refs.get(name)
        if ref is None:
            t = interleaved([ours(name)], xs, ys, args.repeats)[0]
            print(_line(name, size, args.batch, t), flush=True)
            continue
        t, tr = interleaved([ours(name), ref[1]], xs, ys, args.repeats)
        print(_line(name, size, args.batch, t, ref[0], tr), flush=True)
    if {"pdl-vgg", "lpips-vgg"} <= set(args.losses.split(",")):
        tp, tl = interleaved([ours("pdl-vgg"), ours("lpips-vgg")], x, y, args.repeats)
        print(f"\nPDL / LPIPS-VGG forward+backward time, interleaved: cpu {tp[0] / tl[0]:.2f}, "
              f"wall {tp[1] / tl[1]:.2f} (target <= 1.5), load {os.getloadavg()[0]:.2f}")
    print(f"load average after {os.getloadavg()}")


if __name__ == "__main__":
    main()
