"""``bapps evaluate``: score metrics against the BAPPS human judgments (2AFC and JND).

Every val 2AFC and JND set of DATA (a BAPPS folder root or a packed ``.h5``) is scored, as in the
paper's Table 5, or the sets ``--datasets`` selects (train sets only when named). A short form
that names no mode (``val/cnn``) selects the 2AFC and the JND set of that name and says so.
Writes a tidy CSV (``--out``) and, on request, Table-5-style Markdown / LaTeX, JSON, a PNG
figure and the per-item distances; every file is written atomically. The Markdown table is also
printed.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..data.iqa.registry import PLUGIN_HELP, help_list  # torch-free: `--help` imports neither torch nor pandas
from ..errors import BappsError
from ._options import add_backbone_weights, add_metric_option, add_metrics, add_precision
from ._parser import at_least, examples


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add the ``bapps evaluate`` sub-command to ``subparsers``.

    Args:
        subparsers: the sub-command action of the ``bapps`` parser.

    Returns:
        The sub-command's parser (``func`` set to the function that runs it).
    """
    p = subparsers.add_parser("evaluate", help="score metrics against the human judgments (2AFC, JND)",
                              description=__doc__, epilog=examples(
                                  "bapps evaluate bapps.h5 --metrics l2-lab ssim-lab lpips-alex --browse failures/",
                                  "bapps evaluate data/bapps --metrics lpips-vgg --datasets 2afc/val/cnn jnd/val/cnn "
                                  "--out results.csv --markdown results.md",
                                  "bapps evaluate bapps.h5 --metrics lpips-alex --precision bf16 --compile"))
    p.add_argument("data", metavar="DATA", help="BAPPS folder root or packed .h5 file; an IQA benchmark "
                                                "(NIGHTS, TID2013, KADID-10k, PIPAL, LIVE, CSIQ, PieAPP) folder or "
                                                "packed .h5; or a folder holding several of them")
    add_metrics(p, None, "metric names (see `bapps metrics`), e.g. l2-lab ssim lpips-alex; the preset paper "
                         "(the paper's Table 5 metrics); or plugins: package.module:attr, path/to/file.py:attr")
    add_metric_option(p)
    p.add_argument("--checkpoint", action="append", default=[], metavar="PATH",
                   help="also evaluate a metric trained by `bapps train` (repeatable)")
    p.add_argument("--trust-plugin", action="append", default=[], metavar="SPEC",
                   help="a plugin spec that a checkpoint or run folder may import (it names the code its network was "
                        "trained on; a file never decides that by itself, and the code's SHA-256 must match the one "
                        "recorded at training time); repeatable")
    p.add_argument("--out", metavar="CSV",
                   help="tidy results table (metric, mode, split, category, n, score, ci_low, ci_high, ...)")
    p.add_argument("--datasets", nargs="+", default=None, metavar="SET",
                   help="sets to score: keys or short forms (2afc/val/cnn, val/cnn, jnd, train); "
                        "default: every val set")
    add_backbone_weights(p, "backbone weights of a network (alex, vgg, squeeze); NET=random = UNCALIBRATED; "
                            "several in one flag")
    p.add_argument("--lin-weights", action="append", default=[], metavar="NET=PATH",
                   help="LPIPS linear-layer weights of a network (repeatable)")
    p.add_argument("--batch-size", type=at_least(1), default=None,
                   help="triplets per batch (default: 1000 on GPU, 50 on CPU, the fastest there)")
    add_precision(p, "numeric precision of the metrics: fp32 (default, the published numbers), bf16 "
                     "(CPU or GPU autocast) or fp16 (GPU only); bf16/fp16 move the distances slightly and "
                     "every row computed so is labelled [bf16] / [fp16]")
    p.add_argument("--compile", action="store_true",
                   help="run the metrics through torch.compile: pays off on large sets (the first batches "
                        "pay the compile time); a compile failure is an error, never a silent fallback")
    p.add_argument("--channels-last", dest="channels_last", default=None, choices=("on", "off"),
                   help="memory layout of the deep metrics' weights: on = channels_last (NHWC), off = NCHW; "
                        "default: on (faster here in fp32 and bf16); the same distances up to float noise either way")
    p.add_argument("--stream", action="store_true",
                   help="read each set in pieces instead of loading it whole (bounded memory for sets larger than RAM)")
    p.add_argument("--chunk-size", type=at_least(1), default=1024, metavar="N",
                   help="items per piece with --stream (default 1024)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--n-boot", type=at_least(1), default=1000,
                   help="bootstrap resamples for the intervals (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--markdown", metavar="F", help="write the Table-5-style Markdown table")
    p.add_argument("--latex", metavar="F", help="write the Table-5-style LaTeX table")
    p.add_argument("--json", metavar="F", help="write the results as JSON")
    p.add_argument("--plot", metavar="F.png", help="write the figure (2AFC bars + JND precision-recall)")
    p.add_argument("--save-distances", metavar="F.npz|F.csv", help="write the per-item distances")
    p.add_argument("--browse", metavar="DIR",
                   help="write the failure browser to DIR: a static HTML page (open DIR/index.html, no server) "
                        "of the 2AFC items where each metric and a confident majority of raters disagree, with "
                        "the images, distances, calibrated probability and spatial maps")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--quiet", action="store_true", help="do not print the table")
    p.add_argument("--format", default=None, metavar="NAME",
                   help="the benchmark DATA holds (default: detected; a folder may hold several): "
                        + help_list(with_bapps=True))
    p.add_argument("--benchmark-plugin", action="append", default=[], metavar="SPEC", help=PLUGIN_HELP)
    p.add_argument("--compare", nargs=2, default=None, metavar=("A", "B"),
                   help="paired difference of metric A minus metric B (two of the evaluated metric ids) "
                        "on each set, and on the BAPPS 2AFC mean, with its interval and p-value, in every report")
    p.add_argument("--live-scores", default="realigned", choices=("realigned", "dmos"),
                   help="LIVE: dmos_new of dmos_realigned.mat (default) or dmos.mat")
    p.add_argument("--per-type", metavar="F.md", help="write the per-distortion-type tables (correlation sets)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Score the metrics against the human judgments of ``args.data`` and report the results.

    Args:
        args: the parsed command line.

    Returns:
        The exit status.
    """
    from .._distributed import is_main_process
    from ..data.iqa import is_bapps_source
    from ..data.iqa.registry import load_benchmark_plugins
    from ..report import ReportFiles, evaluate_to_reports, to_markdown
    from . import cmd_benchmarks

    if not args.metrics and not args.checkpoint:
        raise BappsError("nothing to evaluate: give --metrics NAME... and/or --checkpoint PATH")
    load_benchmark_plugins(args.benchmark_plugin)
    if args.format != "bapps" and (args.format is not None or not is_bapps_source(args.data)):
        if args.precision != "fp32" or args.compile:
            raise BappsError("--precision and --compile apply to BAPPS data; the other benchmarks run in fp32")
        if args.browse:
            raise BappsError("--browse applies to BAPPS 2AFC data (the failure browser shows triplets)")
        return cmd_benchmarks.run(args)
    files = ReportFiles(csv=args.out, markdown=args.markdown, latex=args.latex, json=args.json,
                        plot=args.plot, distances=args.save_distances, browse=args.browse)
    result = evaluate_to_reports(
        args.data, list(args.metrics) + [Path(c) for c in args.checkpoint], files,
        datasets=args.datasets, batch_size=args.batch_size, device=args.device, n_boot=args.n_boot,
        seed=args.seed, progress=not args.no_progress, backbone_weights=args.backbone_weights,
        lin_weights=args.lin_weights, stream=args.stream, chunk_size=args.chunk_size,
        metric_options=args.metric_option, compare=args.compare, precision=args.precision,
        compile=args.compile, channels_last=None if args.channels_last is None else args.channels_last == "on",
        trust_plugin=args.trust_plugin,
    )
    if not is_main_process():
        return 0
    for note in result.notes:
        print(f"bapps evaluate: note: {note.text}", file=sys.stderr)
    if not args.quiet:
        print(to_markdown(result.table))
    if files.paths():
        print("wrote " + ", ".join(files.paths()), file=sys.stderr)
    return 0
