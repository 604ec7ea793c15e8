"""Training throughput of ``bapps train`` (LPIPS lin): full path vs cached-feature fast path.

Prints triplets/s of

* the **full path** (every step runs the backbone on ``[ref; p0; p1]``, dropout, linear layers,
  G, BCE, Adam, clamp — the real :func:`bapps_toolkit.train.loop.run_epoch`),
* the **fast path, epochs only** (the same ``run_epoch`` on precomputed per-channel vectors),
* the **fast-path precompute** (backbone once per triplet, :func:`fastpath.mean_sq_diff`),

their ratios, and the time of the official schedule (10 epochs) on all of BAPPS train
(151.4k triplets) for both paths, built from the measured parts:

    T_fast = N / precompute_rate + E · N / fast_epoch_rate
    T_full = E · N / full_rate

Without a GPU the H100 line is an ESTIMATE (printed as such) from the formula above with
two assumed numbers, both stated in the output: the H100's backbone throughput (FLOPs of the
backbone at 64×64, counted here from the architecture, divided by an assumed effective
FP32 rate) and the H100's time per fast-path step (the step is launch-bound: the number of
kernel-launching ops per step, counted here with torch.profiler, times an assumed time per
op, ``--gpu-op-us``).

Inputs are random images/vectors (speed does not depend on content); data loading is
excluded. Use ``--device cuda`` on a GPU machine to measure instead of estimating.

    python benchmarks/bench_train.py [--net alex] [--device cpu] [--full-steps 6] [--fast-epochs 3]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from bapps_toolkit.train.distributed import DistContext  # noqa: E402
from bapps_toolkit.train.fastpath import TripletVectors, mean_sq_diff  # noqa: E402
from bapps_toolkit.train.loop import run_epoch  # noqa: E402
from bapps_toolkit.train.model import RankingNet, TrainModule, build_lpips, make_generator  # noqa: E402

BAPPS_TRAIN = 151_400          # 56.6k + 38.1k + 56.6k triplets (protocol.md)
EPOCHS = 10                    # official 5 + 5
#: NVIDIA H100 SXM5 datasheet: FP32 67 TFLOP/s (non-tensor). Assumed effective fraction for small
#: 64×64 convolutions in fp32/TF32 (cuDNN): 15 %  -> 10 TFLOP/s. An assumption, not a measurement.
H100_FP32_PEAK = 67e12
H100_ASSUMED_EFFICIENCY = 0.15


class _Images:
    """Random uint8 triplets standing in for :class:`bapps_toolkit.train.data.FullData` (same batch() contract)."""

    def __init__(self, n: int, device: torch.device):
        g = torch.Generator().manual_seed(0)
        self.ref, self.p0, self.p1 = (torch.randint(0, 256, (n, 64, 64, 3), generator=g, dtype=torch.uint8).to(device)
                                      for _ in range(3))
        self.device = device

    def batch(self, idx):
        from bapps_toolkit.data import to_model_input

        return tuple(to_model_input(a[idx], device=self.device) for a in (self.ref, self.p0, self.p1))


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def backbone_flops(net: str) -> float:
    """Multiply-adds ×2 of the backbone's convolutions up to the last tap, one 64×64 image."""
    lp = build_lpips(net, "0.1", "random", 0)
    flops = [0.0]

    def hook(mod, inp, out):
        if isinstance(mod, torch.nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
            flops[0] += 2.0 * out.numel() * k

    hs = [m.register_forward_hook(hook) for m in lp.backbone.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        lp.backbone(torch.zeros(1, 3, 64, 64))
    for h in hs:
        h.remove()
    return flops[0]


def bench_full(net: str, dev: torch.device, steps: int, batch: int, dropout: float, bf16: bool,
               repeats: int = 3) -> float:
    """Best of ``repeats`` timings of ``steps`` full-path steps (triplets/s)."""
    lp = build_lpips(net, "0.1", "random", 0)
    mod = TrainModule(lp, RankingNet(), train_backbone=False, bf16=bf16).to(dev).train()
    lp.backbone.eval()
    opt = torch.optim.Adam(list(lp.lins.parameters()) + list(mod.G.parameters()), lr=1e-4, betas=(0.5, 0.999))
    n = batch * (steps + 1)
    data = _Images(n, dev)
    judge = torch.rand(n, device=dev)
    ctx = DistContext(device=dev)
    perm = torch.arange(n, device=dev)
    # warm-up step
    run_epoch(mod, opt, lp.lins, perm=perm[:batch], judge=judge, batch_size=batch, dropout=dropout,
              drop_gen=make_generator(1, dev), ctx=ctx, data=data)
    best = 0.0
    for rep in range(repeats):
        _sync(dev)
        t0 = time.perf_counter()
        run_epoch(mod, opt, lp.lins, perm=perm[batch:], judge=judge, batch_size=batch, dropout=dropout,
                  drop_gen=make_generator(2 + rep, dev), ctx=ctx, data=data)
        _sync(dev)
        best = max(best, (n - batch) / (time.perf_counter() - t0))
    return best


def bench_fast(net: str, dev: torch.device, n: int, epochs: int, batch: int, dropout: float) -> tuple:
    """Fastest of ``epochs`` fast-path epochs over ``n`` triplets: (triplets/s, seconds per step)."""
    lp = build_lpips(net, "0.1", "random", 0)
    mod = TrainModule(lp, RankingNet(), train_backbone=False).to(dev).train()
    opt = torch.optim.Adam(list(lp.lins.parameters()) + list(mod.G.parameters()), lr=1e-4, betas=(0.5, 0.999))
    dim = sum(lp.channels)
    g = torch.Generator().manual_seed(0)
    vecs = TripletVectors(torch.rand(n, dim, generator=g).to(dev) * 1e-3,
                          torch.rand(n, dim, generator=g).to(dev) * 1e-3,
                          torch.rand(n, generator=g).to(dev))
    ctx = DistContext(device=dev)
    run_epoch(mod, opt, lp.lins, perm=torch.arange(min(n, 10 * batch), device=dev), judge=vecs.judge,
              batch_size=batch, dropout=dropout, drop_gen=make_generator(1, dev), ctx=ctx, vecs=vecs)
    best = float("inf")
    for e in range(epochs):
        perm = torch.randperm(n, generator=make_generator(e)).to(dev)
        _sync(dev)
        t0 = time.perf_counter()
        run_epoch(mod, opt, lp.lins, perm=perm, judge=vecs.judge, batch_size=batch, dropout=dropout,
                  drop_gen=make_generator(10 + e, dev), ctx=ctx, vecs=vecs)
        _sync(dev)
        best = min(best, time.perf_counter() - t0)
    steps = (n + batch - 1) // batch
    return n / best, best / steps


_NO_KERNEL = ("view", "reshape", "as_strided", "slice", "select", "expand", "t", "transpose", "unsqueeze",
              "squeeze", "detach", "alias", "empty", "empty_like", "empty_strided", "permute", "_unsafe_view",
              "lift_fresh", "resolve_conj", "resolve_neg", "_reshape_alias", "unbind", "split", "chunk",
              "is_nonzero", "item", "_local_scalar_dense", "result_type", "contiguous", "narrow")


def count_step_ops(net: str, batch: int, dropout: float) -> tuple:
    """Kernel-launching ops of one fast-path step as it runs on CUDA: ``(ops, detail)``.

    Counted with torch.profiler on CPU: leaf aten ops of the forward, backward, statistics and
    clamp, view-like and no-op conversions excluded. On CUDA the loop uses the fused Adam kernel
    and ``_foreach_clamp_min_`` (one launch each for all tensors), whereas on CPU both fall back
    to per-tensor loops; so the optimizer's ops are replaced by 2 launches (step increment +
    fused update) and the clamp's by 1.
    """
    from torch.profiler import ProfilerActivity, profile

    lp = build_lpips(net, "0.1", "random", 0)
    mod = TrainModule(lp, RankingNet(), train_backbone=False).train()
    opt = torch.optim.Adam(list(lp.lins.parameters()) + list(mod.G.parameters()), lr=1e-4, betas=(0.5, 0.999))
    dim = sum(lp.channels)
    vecs = TripletVectors(torch.rand(batch, dim), torch.rand(batch, dim), torch.rand(batch))
    ctx = DistContext()
    kw = dict(perm=torch.arange(batch), judge=vecs.judge, batch_size=batch, dropout=dropout, ctx=ctx, vecs=vecs)
    run_epoch(mod, opt, lp.lins, drop_gen=make_generator(0), **kw)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run_epoch(mod, opt, lp.lins, drop_gen=make_generator(1), **kw)
    n = 0
    for ev in prof.events():
        name = ev.name
        if not name.startswith("aten::") or ev.cpu_children:
            continue
        if name[len("aten::"):].rstrip("_") in _NO_KERNEL + ("to",):
            continue
        top = ev
        while top.cpu_parent is not None:
            top = top.cpu_parent
        if top.name.startswith("Optimizer.") or top.name.startswith("aten::_foreach_"):
            continue
        n += 1
    return n + 3, f"{n} forward/backward/statistics ops + 2 fused-Adam launches + 1 foreach clamp"


@torch.no_grad()
def bench_precompute(net: str, dev: torch.device, n: int, batch: int, bf16: bool, repeats: int = 3) -> float:
    """Best of ``repeats`` precompute timings over ``n`` triplets (triplets/s)."""
    lp = build_lpips(net, "0.1", "random", 0).to(dev).eval()
    data = _Images(n, dev)

    def run(lo, hi):
        ref, p0, p1 = data.batch(torch.arange(lo, hi, device=dev))
        x = torch.cat([ref, p0, p1])
        if bf16 and dev.type == "cuda":
            with torch.autocast("cuda", dtype=torch.bfloat16):
                f = lp.features(x)
        else:
            f = lp.features(x)
        return mean_sq_diff(f, hi - lo)

    run(0, min(batch, n))
    best = 0.0
    for _ in range(repeats):
        _sync(dev)
        t0 = time.perf_counter()
        for s in range(0, n, batch):
            run(s, min(s + batch, n))
        _sync(dev)
        best = max(best, n / (time.perf_counter() - t0))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--net", default="alex", choices=["alex", "vgg", "squeeze"])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--full-steps", type=int, default=6, help="timed full-path steps")
    ap.add_argument("--fast-n", type=int, default=5000, help="triplets per fast-path epoch")
    ap.add_argument("--fast-epochs", type=int, default=3)
    ap.add_argument("--pre-n", type=int, default=600, help="triplets for the precompute timing")
    ap.add_argument("--pre-batch", type=int, default=200)
    ap.add_argument("--dropout", type=float, default=0.5)
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch.set_num_threads for this benchmark (default: torch's choice)")
    ap.add_argument("--gpu-op-us", type=float, default=10.0,
                    help="assumed GPU time per kernel-launching op in eager mode, microseconds (estimate only)")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    where = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"bench_train: LPIPS-{args.net} lin, batch {args.batch} (best of repeats), dropout {args.dropout}, "
          f"device {where}, "
          f"torch {torch.__version__}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
          f"[random backbone and data: speed only]")

    full = bench_full(args.net, dev, args.full_steps, args.batch, args.dropout, args.bf16)
    fast, step_s = bench_fast(args.net, dev, args.fast_n, args.fast_epochs, args.batch, args.dropout)
    pre = bench_precompute(args.net, dev, args.pre_n, args.pre_batch, args.bf16)
    n, e = BAPPS_TRAIN, EPOCHS
    t_full = e * n / full
    t_fast = n / pre + e * n / fast
    print(f"  full path            : {full:12.1f} triplets/s  (backbone on 3 images per triplet every step)")
    print(f"  fast path, epochs    : {fast:12.1f} triplets/s  ({1e3 * step_s:.3f} ms per step of {args.batch})")
    print(f"  fast-path precompute : {pre:12.1f} triplets/s  (once per triplet, ref through the backbone once)")
    print(f"  ratio fast/full, epochs only            : {fast / full:10.1f} x   (target >= 20x)")
    print(f"  ratio incl. precompute, {e}-epoch schedule: {t_full / t_fast:10.1f} x   "
          f"(bounded by ~{e}x: the backbone pass is shared)")
    print(f"  official schedule on BAPPS train ({n} triplets x {e} epochs) on this device: "
          f"full {t_full / 3600:.2f} h, fast {t_fast:.1f} s = {n / pre:.1f} s precompute + {e * n / fast:.1f} s epochs")
    if dev.type == "cuda":
        print(f"  MEASURED on {where}: official schedule, fast path: {t_fast:.1f} s (target < 60 s on an H100)")
        return
    flops = backbone_flops(args.net)
    eff = H100_FP32_PEAK * H100_ASSUMED_EFFICIENCY
    pre_h100 = eff / (3 * flops)
    ops, ops_detail = count_step_ops(args.net, args.batch, args.dropout)
    step_h100 = ops * args.gpu_op_us * 1e-6
    steps = e * ((n + args.batch - 1) // args.batch)
    t_h100 = n / pre_h100 + steps * step_h100
    print(f"  ESTIMATE (no GPU here), H100, official schedule on BAPPS train, fast path: {t_h100:.1f} s "
          f"(target < 60 s)")
    print(f"    = N/precompute_rate + steps*ops_per_step*time_per_op = {n}/{pre_h100:,.0f} + "
          f"{steps}*{ops}*{args.gpu_op_us:g} us = {n / pre_h100:.1f} s + {steps * step_h100:.1f} s")
    print(f"    assumed: backbone {flops / 1e6:.1f} MFLOP per 64x64 image (counted from the layers) at "
          f"{eff / 1e12:.0f} TFLOP/s effective = {100 * H100_ASSUMED_EFFICIENCY:.0f}% of the H100 SXM FP32 peak "
          f"{H100_FP32_PEAK / 1e12:.0f} TFLOP/s (NVIDIA datasheet) -> {pre_h100:,.0f} triplets/s")
    print(f"    assumed: {args.gpu_op_us:g} us per kernel-launching op in eager PyTorch on the GPU (launch + "
          f"dispatch; a step of 50 triplets is launch-bound, its FLOPs are negligible); {ops} such ops per "
          f"step ({ops_detail}; counted with torch.profiler here)")


if __name__ == "__main__":
    main()
