"""Folder scoring (`bapps score --dir0 --dir1`) against a plain-torch loop and the machine's
ceiling, and its peak memory for two numbers of pairs (issue 15, "folder scoring that streams").

In one run, for each image size (default 256² and 512²), on the same generated folder pair:

* **toolkit** — :func:`bapps_toolkit.score_folders` (DataLoader decode workers, size groups,
  pixel-budget batches; the whole call, decode included), after a warm-up pass;
* **plain loop, batch 1** — what ``lpips_2dirs.py`` does: per pair, PIL decode of both files,
  ``ToTensor``-style conversion, one forward of the same metric module;
* **plain loop, batch 32** — decode 32 pairs, then one forward;
* **ceiling** — a pure-torch forward of the same conv stack (the metric's backbone) on random
  input, steady state, the best of 8, 16, 32 and 64 pairs per batch up to 4 MPix (the table also gives the
  figure at the toolkit's batch shape): no decode, no distance, no Python per pair.

Every pairs/s figure but the ceiling is the best of ``--repeats`` (default 3) runs, the official
ones included, so that no side of a ratio is a single run on a machine whose speed varies.
* **decode** — the toolkit's own reader (``read_image``, with the PNG decoder in use: libspng
  through imagecodecs when the ``fast-decode`` extra is installed, else PIL) on both files
  of every pair, in this process, nothing else; and **attainable** = ``1 / (1/ceiling +
  1/decode)``, the pairs/s of decoding and then the bare forward, each at its own measured speed.
* **toolkit (PIL)** — the toolkit again with ``BAPPS_PNG_DECODER=pil`` (only when the fast
  decoder is in use), so that the decoder's share of the gain is measured in the same run.

Decoders: a table of milliseconds per image (process CPU time and wall time, best of 5 passes
over the same files, both folders) of the toolkit's reader with each of its decoders, of PIL
alone (open, ``convert('RGB')``, array) and of the other PNG decoders where they are installed
(pyspng, OpenCV's ``imdecode``, imagecodecs' libpng ``png_decode``), with whether each gives
PIL's pixels on these files (``--decoders-only``: this table alone).
  On a machine whose cores the forward already keeps busy (2 threads, 95 % parallel efficiency
  here), overlapping decode with compute frees no time, so this is the most a folder scorer that
  decodes PNGs can reach; ``tk/attainable`` is what the toolkit's batching, head and glue cost.

* **official** — the official ``lpips_2dirs.py`` (``--official-script``: a checkout of
  richzhang/PerceptualSimilarity; its code is not part of this repository) and a loop over the
  ``lpips`` package at batch 32, both run by ``--official-python`` (a reference venv where
  ``lpips``, torchvision and OpenCV import). ImageNet weights cannot be downloaded here, so the
  run forces ``pnet_rand=True`` (a random AlexNet: the same cost). Timed from the end of the
  model's construction to the end of the run (imports excluded; the script's own per-pair
  ``print`` is redirected). Missing pieces are named in the output, never replaced silently.

Peak memory: ``bapps score``'s library call on N and 10·N pairs (default 1 000 and 10 000 small
images, hard links to a few hundred distinct files so that generating them is quick), each in a
fresh interpreter reading its own peak (``VmHWM``; ``ru_maxrss`` would include the forking
parent's peak) and ``ru_maxrss`` of its decode workers — with glibc's
default allocator and with ``MALLOC_MMAP_THRESHOLD_=4 MiB`` (see ``bench_memory.py`` for why).

The metric runs on a random backbone (speed and memory do not depend on the weights; its
numbers are UNCALIBRATED). Figures depend on the load: quote ``uptime`` with them.

    python benchmarks/bench_score.py [--sizes 256 512] [--pairs 64] [--rss-pairs 1000 10000]
        [--official-python VENV/bin/python --official-script PerceptualSimilarity/lpips_2dirs.py]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from bench_decode import decoder_table, png_decoder_env
from PIL import Image

MMAP_ENV = {"MALLOC_MMAP_THRESHOLD_": str(4 << 20)}

_RSS_CHILD = """
import json, resource, sys, time, warnings
warnings.simplefilter("ignore")

def hwm_mb():  # VmHWM is per address space: unlike ru_maxrss it does not inherit the forking parent's peak
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) / 1024

from bapps_toolkit.scoring.pairs import score_folders
t0 = time.perf_counter()
net = sys.argv[3].split("-")[1]
res = score_folders(sys.argv[1], sys.argv[2], metric=sys.argv[3], backbone_weights=[net + "=random"],
                    out=sys.argv[4], progress=False)
print(json.dumps(dict(n=len(res.distances), seconds=time.perf_counter() - t0,
                      self_mb=hwm_mb(),
                      workers_mb=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)))
"""


def make_pairs(folder: Path, n: int, size: int, distinct: int | None = None, seed: int = 0) -> tuple[Path, Path]:
    """``folder/d0``, ``folder/d1`` with ``n`` pairs of ``size``² images (smooth + noise); with
    ``distinct`` only that many files are written and the rest are hard links to them."""
    rng = np.random.default_rng(seed)
    d0, d1 = folder / "d0", folder / "d1"
    d0.mkdir(parents=True)
    d1.mkdir(parents=True)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for k in range(n):
        if distinct is not None and k >= distinct:
            os.link(d0 / f"{k % distinct:06d}.png", d0 / f"{k:06d}.png")
            os.link(d1 / f"{k % distinct:06d}.png", d1 / f"{k:06d}.png")
            continue
        base = np.stack([np.sin(6 * xx + rng.uniform(0, 6)), np.cos(5 * yy + rng.uniform(0, 6)), xx * yy], -1)
        a = np.clip(127 + 100 * base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)
        b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
        Image.fromarray(a).save(d0 / f"{k:06d}.png")
        Image.fromarray(b).save(d1 / f"{k:06d}.png")
    return d0, d1


_OFFICIAL_CHILD = r"""
import contextlib, io, json, os, runpy, sys, time, warnings
warnings.simplefilter("ignore")
import lpips, torch
mode, d0, d1, out, script = sys.argv[1:6]
marks = {}
_init = lpips.LPIPS.__init__
def init(self, *a, **k):
    k["pnet_rand"] = True  # no ImageNet download here; a random AlexNet costs the same
    k["verbose"] = False
    # lpips finds its linear weights next to the file defining __init__, which is now this one
    k.setdefault("model_path", os.path.join(os.path.dirname(lpips.__file__), "weights",
                                            "v" + k.get("version", "0.1"), k.get("net", "alex") + ".pth"))
    _init(self, *a, **k)
    marks["ready"] = time.perf_counter()
lpips.LPIPS.__init__ = init
names = sorted(f for f in os.listdir(d0) if os.path.exists(os.path.join(d1, f)))
if mode == "2dirs":
    sys.argv = [script, "-d0", d0, "-d1", d1, "-o", out]
    with contextlib.redirect_stdout(io.StringIO()):
        runpy.run_path(script, run_name="__main__")
    dt = time.perf_counter() - marks["ready"]
else:
    b = int(mode)
    fn = lpips.LPIPS(net="alex")
    def load(d, f):
        return lpips.im2tensor(lpips.load_image(os.path.join(d, f)))
    t0 = time.perf_counter()
    with torch.no_grad():
        for s in range(0, len(names), b):
            part = names[s:s + b]
            fn(torch.cat([load(d0, f) for f in part]), torch.cat([load(d1, f) for f in part]))
    dt = time.perf_counter() - t0
print(json.dumps({"pairs_per_s": len(names) / dt, "torch": torch.__version__, "threads": torch.get_num_threads()}))
"""


def official(args, d0: Path, d1: Path, mode: str) -> float | None:
    """Pairs/s of the official script (``mode="2dirs"``) or of an ``lpips`` package loop at batch
    ``int(mode)``, in the reference venv; None (with the reason printed) where it cannot run."""
    if not Path(args.official_python).exists():
        return None
    if mode == "2dirs" and not (args.official_script and Path(args.official_script).is_file()):
        return None
    cmd = [args.official_python, "-c", _OFFICIAL_CHILD, mode, str(d0), str(d1), str(d0.parent / f"official-{mode}.txt"),
           str(args.official_script or "")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"official ({mode}) failed: {proc.stderr.strip().splitlines()[-1:]}")
        return None
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["pairs_per_s"])


def _official_note(args) -> str:
    if not Path(args.official_python).exists():
        return f"official: {args.official_python} not found -> lpips_2dirs.py and the lpips loop not run"
    given = args.official_script and Path(args.official_script).is_file()
    script = f"lpips_2dirs.py = {args.official_script}" if given else "lpips_2dirs.py not given (--official-script)"
    ver = subprocess.run([args.official_python, "-c", "import lpips, torch; print(torch.__version__)"],
                         capture_output=True, text=True).stdout.strip() or "?"
    return f"official: {args.official_python} (torch {ver}, lpips package, pnet_rand=True); {script}"


def _fig(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def _ratio(a: float, v: float | None) -> str:
    return "-" if v is None else f"{a / v:.2f}x"


def _load(path: Path) -> torch.Tensor:
    arr = np.array(Image.open(path).convert("RGB"))
    return torch.from_numpy(arr).permute(2, 0, 1)[None].float().div(127.5).sub(1.0)


def plain_loop(metric, d0: Path, d1: Path, batch: int) -> float:
    """Pairs/s of a plain loop: PIL decode, convert, forward (``batch`` pairs at a time)."""
    names = sorted(p.name for p in d0.iterdir())
    t0 = time.perf_counter()
    with torch.inference_mode():
        for s in range(0, len(names), batch):
            part = names[s:s + batch]
            x0 = torch.cat([_load(d0 / n) for n in part])
            x1 = torch.cat([_load(d1 / n) for n in part])
            metric(x0, x1)
    return len(names) / (time.perf_counter() - t0)


def ceiling(metric, size: int, pairs_per_batch: int, seconds: float = 3.0) -> float:
    """Pairs/s of the bare backbone forward on random input (two images per pair), steady state."""
    x = torch.randn(2 * pairs_per_batch, 3, size, size)
    with torch.inference_mode():
        metric.backbone(x)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            metric.backbone(x)
            n += pairs_per_batch
    return n / (time.perf_counter() - t0)


def decode_only(d0: Path, d1: Path) -> float:
    """Pairs/s of decoding both files of every pair with the toolkit's reader, nothing else."""
    from bapps_toolkit.scoring.pair_stream import read_image

    names = sorted(p.name for p in d0.iterdir())
    t0 = time.perf_counter()
    for n in names:
        read_image(d0 / n)
        read_image(d1 / n)
    return len(names) / (time.perf_counter() - t0)


def _best(k: int, run, *args) -> float | None:
    """The largest of ``k`` results of ``run(*args)`` (None when it returns None: could not run)."""
    best: float | None = None
    for _ in range(k):
        v = run(*args)
        if v is None:
            return None
        best = v if best is None else max(best, v)
    return best


def _timed_folders(score_folders, metric, d0: Path, d1: Path, n: int) -> float:
    t0 = time.perf_counter()
    score_folders(d0, d1, metric=metric, progress=False)
    return n / (time.perf_counter() - t0)


def throughput(args, work: Path) -> None:
    from bapps_toolkit import create_metric
    from bapps_toolkit.scoring.pair_stream import DEFAULT_BATCH_PIXELS, default_workers
    from bapps_toolkit.scoring.pairs import score_folders

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metric = create_metric(args.metric, backbone_weights="random").eval()
    from bapps_toolkit.data.fast_png import png_decoder

    decoder = png_decoder()
    print(f"metric {metric.label}; torch threads {torch.get_num_threads()}, decode workers {default_workers()}, "
          f"pixel budget {DEFAULT_BATCH_PIXELS} per batch; PNG decoder {decoder}")
    print(_official_note(args))
    print("| size | pairs | toolkit | toolkit (PIL) | lpips_2dirs.py | lpips b32 | plain b1 | plain b32 | ceiling@tk "
          "| ceiling | decode | attainable | tk/2dirs | tk/lpips b32 | tk/ceiling | tk/attainable | load |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        n = args.pairs if size <= 256 else max(8, args.pairs // 2)
        d0, d1 = make_pairs(work / f"tp{size}", n, size)
        # one warm-up pass (first-call costs: the allocator, oneDNN's kernels for each batch shape)
        score_folders(d0, d1, metric=metric, progress=False)
        k = args.repeats
        tk = float(_best(k, _timed_folders, score_folders, metric, d0, d1, n))
        tk_pil = None
        if decoder != "pil":
            with png_decoder_env("pil"):
                tk_pil = _best(k, _timed_folders, score_folders, metric, d0, d1, n)
        o2 = _best(k, official, args, d0, d1, "2dirs")
        o32 = _best(k, official, args, d0, d1, "32")
        b1 = float(_best(k, plain_loop, metric, d0, d1, 1))
        b32 = float(_best(k, plain_loop, metric, d0, d1, 32))
        per = max(1, min(64, DEFAULT_BATCH_PIXELS // (size * size)))
        at_tk = ceiling(metric, size, per, 2.0)
        ceil = max([at_tk] + [ceiling(metric, size, b, 2.0) for b in (8, 16, 32, 64)
                              if b != per and b * size * size <= 4 << 20])
        dec = float(_best(k, decode_only, d0, d1))
        attainable = 1.0 / (1.0 / ceil + 1.0 / dec)
        print(f"| {size}² | {n} | {tk:.1f} | {_fig(tk_pil)} | {_fig(o2)} | {_fig(o32)} | {b1:.1f} | {b32:.1f} "
              f"| {at_tk:.1f} | {ceil:.1f} | {dec:.1f} | {attainable:.1f} | {_ratio(tk, o2)} | {_ratio(tk, o32)} "
              f"| {tk / ceil:.0%} | {tk / attainable:.0%} | {os.getloadavg()[0]:.1f} |", flush=True)


def peak_rss(args, work: Path) -> None:
    print(f"peak RSS of score_folders ({args.metric}, random backbone, {args.rss_size}² images; "
          f"hard links to {args.rss_distinct} distinct pairs), fresh interpreter each:")
    print(f"{'pairs':>7s} {'malloc':>8s} {'main MB':>8s} {'workers MB':>11s} {'seconds':>8s}")
    figs = {}
    for n in args.rss_pairs:
        d0, d1 = make_pairs(work / f"rss{n}", n, args.rss_size, distinct=min(n, args.rss_distinct), seed=1)
        for label, env in (("default", {}), ("mmap4M", MMAP_ENV)):
            out = work / f"rss{n}-{label}.csv"
            proc = subprocess.run([sys.executable, "-c", _RSS_CHILD, str(d0), str(d1), args.metric, str(out)],
                                  capture_output=True, text=True, env=dict(os.environ, **env))
            if proc.returncode != 0:
                raise SystemExit(f"RSS probe failed: {proc.stderr[-2000:]}")
            fig = json.loads(proc.stdout.strip().splitlines()[-1])
            figs[(n, label)] = fig
            print(f"{n:>7d} {label:>8s} {fig['self_mb']:>8.0f} {fig['workers_mb']:>11.0f} {fig['seconds']:>8.1f}")
    lo, hi = min(args.rss_pairs), max(args.rss_pairs)
    for label in ("default", "mmap4M"):
        print(f"ratio peak({hi}) / peak({lo}) [{label} malloc]: "
              f"{figs[(hi, label)]['self_mb'] / figs[(lo, label)]['self_mb']:.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--metric", default="lpips-alex", help="an LPIPS metric (run on a random backbone)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512], help="image sides for the pairs/s table")
    ap.add_argument("--pairs", type=int, default=64, help="pairs per size for pairs/s (half at sizes > 256)")
    ap.add_argument("--rss-pairs", type=int, nargs="+", default=[1000, 10000], help="pair counts for peak RSS")
    ap.add_argument("--rss-size", type=int, default=64, help="image side for the peak-RSS runs")
    ap.add_argument("--rss-distinct", type=int, default=500, help="distinct files behind the hard links")
    ap.add_argument("--repeats", type=int, default=3, help="runs per pairs/s figure (the best is kept)")
    ap.add_argument("--skip-rss", action="store_true", help="no peak-RSS runs")
    ap.add_argument("--decoders-only", action="store_true", help="only the table of PNG decoders")
    ap.add_argument("--decoder-files", type=int, default=32, help="PNG files per size for the decoder table")
    ap.add_argument("--official-python", default="/work/refvenv/bin/python",
                    help="python of a reference venv with the lpips package, torchvision and OpenCV")
    ap.add_argument("--official-script", default=None,
                    help="path to the official lpips_2dirs.py (a PerceptualSimilarity checkout)")
    args = ap.parse_args()
    print("load:", os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="bapps-bench-score-") as tmp:
        decoder_table(Path(tmp), args.sizes, args.decoder_files)
        if args.decoders_only:
            return 0
        throughput(args, Path(tmp))
        if not args.skip_rss:
            peak_rss(args, Path(tmp))
    print("load:", os.getloadavg())
    return 0


if __name__ == "__main__":
    sys.exit(main())
