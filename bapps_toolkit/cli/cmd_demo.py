"""``bapps demo``: the whole pipeline in a few minutes on a laptop CPU, offline.

1. builds the synthetic mini set (``make-mini``) in ``OUT/mini`` if it is missing, and packs it to
   ``OUT/mini.h5``;
2. scores the pixel and structural metrics (l2, l2-lab, ssim, ssim-lab, ms-ssim, fsim, psnr —
   those registered) and ``lpips-alex`` on every val 2AFC and JND set. LPIPS uses torchvision's
   ImageNet AlexNet weights when they are cached or can be downloaded; otherwise (and only then)
   an explicitly random backbone, and every line that names it says UNCALIBRATED;
3. trains the LPIPS linear layers briefly (1 + 1 epochs, cached-feature fast path) on the mini
   train sets and scores the trained checkpoint too;
4. prints the Table-5-style table, writes ``OUT/results.csv``, ``OUT/results.md`` and the figure
   ``OUT/results.png`` (when matplotlib is installed; otherwise it says so).

The mini set's judgments come from a simulated observer, not from people: the numbers show that
the pipeline works, not how good the metrics are (the table says so).
"""
from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

DEMO_METRICS = ("l2", "l2-lab", "ssim", "ssim-lab", "ms-ssim", "fsim", "psnr")
DEMO_DATASETS = ("val",)  # every 2AFC val and JND val set


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("demo", help="build the mini set, evaluate and train metrics, print the table",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="bapps_demo", help="working folder (default ./bapps_demo)")
    p.add_argument("--seed", type=int, default=0, help="seed of the mini set and of training (default 0)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--no-train", action="store_true", help="skip the short training run")
    p.add_argument("--progress", action="store_true", help="show progress bars")
    p.set_defaults(func=run)
    return p


def _say(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def lpips_backbone(net: str = "alex"):
    """``(backbone_weights, note)``: the ImageNet file if cached or downloadable, else
    ``"random"`` — the fallback happens only on :class:`~bapps_toolkit.errors.WeightsError`."""
    from ..errors import WeightsError
    from ..metrics.hub import backbone_weights_file

    try:
        path = backbone_weights_file(net, download=True, progress=False)
    except WeightsError as exc:
        first = str(exc).split(". ")[0]
        return "random", (f"ImageNet {net} weights unavailable ({first}); using a RANDOM backbone: "
                          "every lpips-alex number below is UNCALIBRATED")
    return str(path), f"ImageNet {net} weights: {path}"


def run(args) -> int:
    import warnings

    from ..data import make_mini, pack
    from ..errors import BappsError
    from ..evaluate.runner import metric_label, resolve_metric, run_evaluation
    from ..metrics import list_metrics
    from ..report.tables import to_markdown, write_reports

    if args.seed < 0:
        raise BappsError(f"--seed must be >= 0, got {args.seed}")
    t_start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    mini, h5 = out / "mini", out / "mini.h5"
    stamp = out / "mini.h5.seed"

    _say(f"mini set (synthetic, seed {args.seed}) in {mini}")
    make_mini(mini, seed=args.seed, progress=args.progress)
    if not h5.exists() or not stamp.exists() or stamp.read_text().strip() != str(args.seed):
        _say(f"packing {mini} -> {h5}")
        pack(mini, h5, force=True, progress=args.progress)
        from .._io import write_text_atomic

        write_text_atomic(stamp, f"{args.seed}\n")
    else:
        _say(f"using the packed file {h5}")

    known = set(list_metrics())
    names = [m for m in DEMO_METRICS if m in known]
    missing = [m for m in DEMO_METRICS if m not in known]
    if missing:
        _say(f"not registered in this build, skipped: {', '.join(missing)}")
    specs: list = list(names)
    bw, note = lpips_backbone("alex")
    _say(note)
    if "lpips-alex" in known:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the UNCALIBRATED label below says it louder
            _, lp = resolve_metric("lpips-alex", backbone_weights={"alex": bw})
        specs.append(lp)
        _say(f"metric: {lp.label}")

    if not args.no_train:
        from ..train import TrainConfig, train

        run_dir = out / "alex-lin"
        _say(f"training lpips-alex lin for 1 + 1 epochs on the mini train sets -> {run_dir}"
             + ("  [UNCALIBRATED: random backbone]" if bw == "random" else ""))
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = train(TrainConfig(data=str(h5), net="alex", variant="lin", out=str(run_dir),
                                    backbone_weights=bw, epochs=1, decay_epochs=1, seed=args.seed,
                                    fast=True, progress=args.progress, overwrite=True,
                                    device=args.device))
        mid, trained = resolve_metric(str(res.checkpoint_path))
        specs.append(str(res.checkpoint_path))
        _say(f"trained in {time.perf_counter() - t0:.1f} s: {metric_label(mid, trained)}")

    _say(f"evaluating {len(specs)} metrics on the val 2AFC and JND sets of {h5}")
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_evaluation(h5, specs, datasets=list(DEMO_DATASETS), device=args.device,
                                n_boot=args.n_boot, seed=args.seed, progress=args.progress)
    _say(f"evaluated in {time.perf_counter() - t0:.1f} s")
    table = result.table
    write_reports(table, csv=out / "results.csv", markdown=out / "results.md")
    print()
    print(to_markdown(table, title="bapps demo"))
    if importlib.util.find_spec("matplotlib") is not None:
        from ..report.plots import save_evaluation_plot

        save_evaluation_plot(result, out / "results.png", title="bapps demo")
        _say(f"figure: {out / 'results.png'}")
    else:
        _say("matplotlib is not installed: no figure (pip install 'bapps-toolkit[plot]')")
    _say(f"tables: {out / 'results.csv'}, {out / 'results.md'}")
    if not bool(table.calibrated.all()):
        for label in sorted(set(table.label[~table.calibrated])):
            _say(f"UNCALIBRATED: {label}")
    _say(f"done in {time.perf_counter() - t_start:.1f} s")
    return 0
