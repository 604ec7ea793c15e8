"""Throughput of every registered metric: pairs/s and images/s at 64×64, batch 256.

    python benchmarks/bench_metrics.py                       # CPU, then CUDA if available
    python benchmarks/bench_metrics.py --device cpu --metrics ssim ms-ssim --batch 64

Prints a markdown table per device: best of ``--repeats`` runs; forward in ``torch.no_grad``;
``fwd+bwd`` = forward plus the gradient w.r.t. one input, i.e. the cost as a training loss.
One "pair" is one distance d(x0, x1), i.e. two images; images/s = 2 × pairs/s.

Deep metrics (``lpips*``, ``pdl*``, ``dists``) use the cached ImageNet backbone when torch hub's cache has
it (never downloading here); otherwise ``backbone_weights="random"`` — the same cost, but the
distances are UNCALIBRATED, which the table says in its ``weights`` column.
"""
from __future__ import annotations

import argparse
import platform
import time

import torch

from bapps_toolkit import create_metric, list_metrics
from bapps_toolkit.metrics.base import metric_backbone

DEEP_PREFIXES = ("lpips", "pdl", "dists")


def _weights_option(name: str) -> tuple[dict[str, str], str]:
    """Options for ``create_metric`` and a label for the table's weights column."""
    if not name.startswith(DEEP_PREFIXES):
        return {}, "-"
    net = metric_backbone(name) or name.split("-")[1]
    try:
        from bapps_toolkit.metrics.hub import backbone_weights_file

        backbone_weights_file(net, download=False)
        return {}, f"ImageNet ({net}, cached)"
    except Exception:  # not cached (or unreadable): measure on the random backbone, say so
        return {"backbone_weights": "random"}, "random (UNCALIBRATED; ImageNet weights not cached)"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, device: torch.device, repeats: int, max_seconds: float) -> float:
    """Best (minimum) seconds per call after one warm-up — the least disturbed by other load on
    the machine; stops repeating after ``max_seconds``."""
    fn()
    _sync(device)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeats and (not times or time.perf_counter() - start < max_seconds):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return min(times)


def bench(name: str, device: torch.device, batch: int, size: int, repeats: int, max_seconds: float,
          backward: bool) -> tuple[float, float | None, str]:
    opts, label = _weights_option(name)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the UNCALIBRATED warning is reported in the table
        metric = create_metric(name, **opts).to(device)
    g = torch.Generator().manual_seed(0)
    x0 = (torch.rand(batch, 3, size, size, generator=g) * 2 - 1).to(device)
    x1 = (x0.cpu() + 0.1 * torch.randn(batch, 3, size, size, generator=g)).clamp(-1, 1).to(device)

    def fwd():
        with torch.no_grad():
            metric(x0, x1)

    t_fwd = _time(fwd, device, repeats, max_seconds)
    t_bwd = None
    if backward:
        xg = x0.clone().requires_grad_(True)

        def fwd_bwd():
            xg.grad = None
            metric(xg, x1).sum().backward()

        t_bwd = _time(fwd_bwd, device, repeats, max_seconds)
    return t_fwd, t_bwd, label


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--metrics", nargs="*", default=None, help="names (default: every registered metric)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per metric (best reported)")
    ap.add_argument("--max-seconds", type=float, default=20.0, help="stop repeating after this long")
    ap.add_argument("--device", choices=("cpu", "cuda", "all"), default="all")
    ap.add_argument("--no-backward", action="store_true", help="skip the fwd+bwd column")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: torch's choice); on a machine shared with other "
                         "jobs, 1 avoids OpenMP threads waiting on descheduled peers")
    args = ap.parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            ap.error("--threads must be >= 1")
        torch.set_num_threads(args.threads)

    names = args.metrics or list_metrics()
    unknown = sorted(set(names) - set(list_metrics()))
    if unknown:
        ap.error(f"unknown metrics: {', '.join(unknown)}; known: {', '.join(list_metrics())}")
    devices = []
    if args.device in ("cpu", "all"):
        devices.append(torch.device("cpu"))
    if args.device in ("cuda", "all"):
        if torch.cuda.is_available():
            devices.append(torch.device("cuda"))
        elif args.device == "cuda":
            ap.error("--device cuda: no CUDA device available")
    for device in devices:
        if device.type == "cuda":
            desc = f"CUDA: {torch.cuda.get_device_name(device)}"
        else:
            desc = f"CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads"
        print(f"\n### {desc} — torch {torch.__version__}, batch {args.batch}, {args.size}×{args.size}, float32\n")
        cols = "| metric | pairs/s | images/s | fwd+bwd pairs/s | ms/batch | weights |"
        print(cols)
        print("|" + "---|" * (cols.count("|") - 1))
        for name in names:
            try:
                t, tb, label = bench(name, device, args.batch, args.size, args.repeats, args.max_seconds,
                                     not args.no_backward)
            except Exception as exc:  # report and go on: one failing metric should not hide the rest
                print(f"| {name} | error: {type(exc).__name__}: {exc} | | | | |")
                continue
            pps = args.batch / t
            bw = f"{args.batch / tb:,.0f}" if tb else "-"
            print(f"| {name} | {pps:,.0f} | {2 * pps:,.0f} | {bw} | {1e3 * t:,.1f} | {label} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
