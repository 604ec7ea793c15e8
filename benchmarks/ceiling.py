"""``bench_eval.py --ceiling``: lpips-alex evaluation against this machine's own ceiling (issue 15).

In one run, on one machine:

1. **Ceiling.** A matmul (GFLOP/s, fp32 and bf16) and a pure-torch forward of the same conv stack —
   AlexNet's ``features`` up to relu5, the last LPIPS tap — on random 64×64 input, at the best of
   a few batch sizes and both memory layouts: images/s, fp32 and bf16 autocast. A BAPPS item costs 2.75
   images when the 2AFC reference crosses the network once (issue 15), so the ceiling in items/s
   is images/s / 2.75.
2. **Toolkit.** ``evaluate`` lpips-alex (random backbone: the cost of the ImageNet one, UNCALIBRATED
   numbers) on a BAPPS-val-sized set tiled from the mini set (every 2AFC and JND val set at its
   BAPPS size times ``--scale``), steady state (in process, after a warm-up, ``n_boot=1`` so the
   distances dominate) for: fp32 at batch 50 (the CPU default, channels_last) and 250, fp32 NCHW,
   bf16 (channels_last, its default) and bf16 NCHW, compile, bf16 + compile; and the whole process
   (``python -m bapps_toolkit evaluate``: imports, HDF5 read, 1000 bootstrap resamples) at the
   defaults. Each figure is printed as a fraction of the ceiling.
3. **Deviations** of bf16 from fp32 on the same items: median and max relative distance change,
   2AFC decisions flipped, largest 2AFC score change; compile's largest relative change.

4. **The official loop** (``lpips.Trainer`` + ``score_2afc_dataset`` with its DataLoader, on the
   mini set's 2AFC val folders, random AlexNet) in the reference venv (``--official-python``),
   in the same run, and the toolkit's steady-state ratio to it; said to be missing otherwise.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import h5py
import numpy as np

#: Images per BAPPS item with the 2AFC reference sent once (issue 15's figure).
IMAGES_PER_ITEM = 2.75


def load() -> str:
    return "load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


# --------------------------------------------------------------------------------------------
# The ceiling
# --------------------------------------------------------------------------------------------
def matmul_gflops(dtype_name: str, n: int = 2048, repeats: int = 5) -> float:
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def alexnet_to_relu5():
    """AlexNet's ``features`` (torchvision layout) up to relu5, the last LPIPS tap: plain torch."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True),
    ).eval()


def conv_ceiling(precision: str, batches=(150, 300, 750), seconds: float = 2.0) -> tuple[float, int, str]:
    """Best images/s of the conv stack over ``batches`` (images per call) and both memory layouts,
    with that batch and layout."""
    import torch

    best = (0.0, 0, "")
    for layout, fmt in (("NCHW", torch.contiguous_format), ("channels_last", torch.channels_last)):
        net = alexnet_to_relu5().to(memory_format=fmt)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            for bs in batches:
                x = torch.randn(bs, 3, 64, 64).contiguous(memory_format=fmt)
                net(x)
                rate, t0 = 0.0, time.perf_counter()
                while time.perf_counter() - t0 < seconds:
                    t1 = time.perf_counter()
                    net(x)
                    rate = max(rate, bs / (time.perf_counter() - t1))
                best = max(best, (rate, bs, layout))
    return best


# --------------------------------------------------------------------------------------------
# A BAPPS-val-sized set tiled from the mini set
# --------------------------------------------------------------------------------------------
def _sha(a: np.ndarray) -> str:
    if a.dtype == object:
        return hashlib.sha256("\n".join(a.tolist()).encode("utf-8")).hexdigest()
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def tile_h5(src: Path, dst: Path, sizes: dict[str, int]) -> Path:
    """``dst``: the sets ``sizes`` (key -> items) of ``src``, each its items repeated to that size
    (stems suffixed ``-k`` so they stay unique, valid item ids); format ``bapps-h5/1``, SYNTHETIC
    like the source."""
    stamp = dst.with_suffix(".json")
    made = {"sizes": sizes, "stem_suffix": "-k"}  # files tiled before stems were checked used '~k'
    if dst.exists() and stamp.exists() and json.loads(stamp.read_text()) == made:
        return dst
    tmp = dst.with_name(dst.name + ".tmp")
    with h5py.File(src, "r") as f, h5py.File(tmp, "w") as g:
        for key, n in sizes.items():
            s, out = f[key], g.create_group(key)
            out.attrs.update({k: v for k, v in s.attrs.items() if k != "count"}, count=n)
            m = len(s["stems"])
            idx = np.arange(n) % m
            for name in s:
                a = s[name][...]
                if name == "stems":
                    a = np.asarray([f"{a[i].decode() if isinstance(a[i], bytes) else a[i]}-{j // m}"
                                    for j, i in enumerate(idx)], dtype=object)
                    ds = out.create_dataset(name, data=a, dtype=h5py.string_dtype("utf-8"))
                else:
                    a = a[idx]
                    ds = out.create_dataset(name, data=a, chunks=(min(1024, n),) + a.shape[1:] if a.ndim > 1 else None)
                ds.attrs["sha256"] = _sha(a)
        attrs = dict(f.attrs)
        attrs.update(keys=json.dumps(list(sizes)), counts=json.dumps(sizes), source=f"{src} (tiled)")
        fmt = attrs.pop("bapps_toolkit_format")
        g.attrs.update(attrs)
        g.attrs["bapps_toolkit_format"] = fmt
    os.replace(tmp, dst)
    stamp.write_text(json.dumps(made))
    return dst


# --------------------------------------------------------------------------------------------
# The toolkit
# --------------------------------------------------------------------------------------------
def _metric():
    from bapps_toolkit.metrics import create_metric

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return create_metric("lpips-alex", backbone_weights="random")


def steady(h5: Path, **options) -> tuple[float, float, object]:
    """(items/s of a warmed-up run, seconds of the first run, result) with ``options``."""
    from bapps_toolkit.evaluate import run_evaluation

    metric = _metric()
    t0 = time.perf_counter()
    run_evaluation(h5, [metric], device="cpu", n_boot=1, progress=False, **options)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = run_evaluation(h5, [metric], device="cpu", n_boot=1, progress=False, **options)
    dt = time.perf_counter() - t0
    n = sum(len(sd.stems) for sd in res.distances)
    return n / dt, first, res


def whole_process(h5: Path) -> float:
    """Items/s of ``python -m bapps_toolkit evaluate`` at its defaults (every val set, 1000 resamples)."""
    with h5py.File(h5, "r") as f:
        n = sum(json.loads(f.attrs["counts"]).values())
    cmd = [sys.executable, "-m", "bapps_toolkit", "evaluate", str(h5), "--metrics", "lpips-alex",
           "--backbone-weights", "alex=random", "--quiet", "--no-progress"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
    return n / (time.perf_counter() - t0)


def _flat(res) -> tuple[np.ndarray, list]:
    parts, pairs = [], []
    for sd in res.distances:
        parts += [d for d in (sd.d0, sd.d1, sd.d) if d is not None]
        if sd.d0 is not None:
            pairs.append((sd.key, sd.d0, sd.d1, sd.judge))
    return np.concatenate(parts), pairs


def deviation(base, other) -> dict[str, float]:
    """How ``other``'s distances and 2AFC decisions differ from ``base``'s on the same items."""
    from bapps_toolkit.scores import score_2afc

    a, pa = _flat(base)
    b, pb = _flat(other)
    nz = a != 0
    rel = np.abs(b[nz] - a[nz]) / a[nz]
    flips = sum(int(((d0 < d1) != (e0 < e1)).sum()) for (_, d0, d1, _), (_, e0, e1, _) in zip(pa, pb, strict=True))
    dscore = max(abs(score_2afc(d0, d1, g) - score_2afc(e0, e1, g))
                 for (_, d0, d1, g), (_, e0, e1, _) in zip(pa, pb, strict=True))
    n2afc = sum(len(p[1]) for p in pa)
    return {"median_rel": float(np.median(rel)), "max_rel": float(rel.max()),
            "max_abs_of_median": float(np.abs(b - a).max() / np.median(a[nz])),
            "flips": flips, "n_2afc": n2afc, "max_score_change_pt": 100 * dscore}


def run(mini_h5: Path, work: Path, scale: float, bapps_2afc: dict, bapps_jnd: dict,
        official: dict | None = None) -> int:
    import torch

    print(f"## ceiling run: torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs; "
          f"{load()} (a machine shared with other jobs: every figure is UNDER LOAD)")
    for p in ("fp32", "bf16"):
        print(f"matmul 2048^3 {p}: {matmul_gflops(p):.0f} GFLOP/s  ({load()})", flush=True)
    ceil = {}
    for p in ("fp32", "bf16"):
        rate, bs, layout = conv_ceiling(p)
        ceil[p] = rate / IMAGES_PER_ITEM
        print(f"conv stack (AlexNet to relu5, 64x64) {p}: {rate:.0f} images/s at batch {bs} images, {layout}"
              f" = ceiling {ceil[p]:.0f} items/s at {IMAGES_PER_ITEM} images/item  ({load()})", flush=True)
    sizes = {f"2afc/val/{c}": max(1, round(n * scale)) for c, n in bapps_2afc.items()}
    sizes.update({f"jnd/val/{c}": max(1, round(n * scale)) for c, n in bapps_jnd.items()})
    h5 = tile_h5(mini_h5, work / f"tiled_{scale:g}.h5", sizes)
    print(f"set: {h5}, {sum(sizes.values())} items = BAPPS val sizes x {scale:g}, tiled from the SYNTHETIC mini set;"
          " lpips-alex on a random backbone (UNCALIBRATED; same cost as ImageNet weights)")
    if official is None:
        print("official loop: not measured (no reference venv with the lpips package: --official-python)")
    else:
        print(f"official loop (lpips package, batch {official['batch_size']}, random AlexNet, mini set folders): "
              f"{official['items_per_s']:.0f} items/s = {official['items_per_s'] / ceil['fp32']:.0%} of the fp32 "
              f"ceiling  ({load()})")
    print("| lpips-alex run | items/s | first run s | fraction of fp32 ceiling | load |")
    print("|:---|---:|---:|---:|:---|")
    configs = [("fp32, batch 50, channels_last (CPU defaults)", {}),
               ("fp32, batch 250", {"batch_size": 250}),
               ("fp32, NCHW", {"channels_last": False}),
               ("bf16 (channels_last by default)", {"precision": "bf16"}),
               ("bf16, NCHW", {"precision": "bf16", "channels_last": False}),
               ("fp32 + compile", {"compile": True}),
               ("bf16 + compile", {"precision": "bf16", "compile": True})]
    results, rates = {}, {}
    for name, opts in configs:
        try:
            rate, first, res = steady(h5, **opts)
        except Exception as exc:  # e.g. compile failing here: printed, not hidden
            print(f"| {name} | failed: {type(exc).__name__}: {str(exc)[:120]} | | | {load()} |", flush=True)
            continue
        results[name], rates[name] = res, rate
        print(f"| {name} | {rate:.0f} | {first:.1f} | {rate / ceil['fp32']:.0%} | {load()} |", flush=True)
    rate = whole_process(h5)
    print(f"| whole process (CLI, defaults, 1000 resamples) | {rate:.0f} | | {rate / ceil['fp32']:.0%} | {load()} |")
    if official is not None:
        print("toolkit steady state / official loop: " + ", ".join(
            f"{name}: {rates[name] / official['items_per_s']:.1f}x" for name in rates))
    base = results.get(configs[0][0])
    for name in ("bf16 (channels_last by default)", "fp32 + compile", "bf16 + compile"):
        if base is not None and name in results:
            d = deviation(base, results[name])
            print(f"{name} vs fp32: distances median {d['median_rel']:.2%} / max {d['max_rel']:.2%} relative "
                  f"(largest change {d['max_abs_of_median']:.2%} of the median distance); "
                  f"{d['flips']} of {d['n_2afc']} 2AFC decisions flipped; 2AFC scores change by <= "
                  f"{d['max_score_change_pt']:.2f} pt")
    return 0
