"""``bapps evaluate``: score metrics against the BAPPS human judgments (2AFC and JND).

Every 2AFC and JND set of DATA (a BAPPS folder root or a packed ``.h5``) is scored, or the ones
``--datasets`` selects. Writes a tidy CSV (``--out``) and, on request, Table-5-style Markdown /
LaTeX, JSON, a PNG figure and the per-item distances; every file is written atomically. The
Markdown table is also printed.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from ..data.iqa.detect import FORMATS


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("evaluate", help="score metrics against the human judgments (2AFC, JND)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", metavar="DATA", help="BAPPS folder root or packed .h5 file")
    p.add_argument("--metrics", nargs="+", default=[], metavar="NAME",
                   help="metric names (see `bapps metrics`), e.g. l2-lab ssim lpips-alex")
    p.add_argument("--checkpoint", action="append", default=[], metavar="PATH",
                   help="also evaluate a metric trained by `bapps train` (repeatable)")
    p.add_argument("--out", metavar="CSV", help="tidy results table (metric, mode, split, category, n, score, ci_low, ci_high, ...)")
    p.add_argument("--datasets", nargs="+", default=None, metavar="SET",
                   help="sets to score: keys or short forms (2afc/val/cnn, val/cnn, val, jnd); default all")
    p.add_argument("--backbone-weights", action="append", default=[], metavar="NET=PATH|NET=random",
                   help="backbone weights of a network (alex, vgg, squeeze); 'random' = UNCALIBRATED (repeatable)")
    p.add_argument("--lin-weights", action="append", default=[], metavar="NET=PATH",
                   help="LPIPS linear-layer weights of a network (repeatable)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="triplets per batch (default: 1000 on GPU, 250 on CPU)")
    p.add_argument("--stream", action="store_true",
                   help="read each set in pieces instead of loading it whole (bounded memory for sets larger than RAM)")
    p.add_argument("--chunk-size", type=int, default=1024, metavar="N",
                   help="items per piece with --stream (default 1024)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the intervals (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--markdown", metavar="F", help="write the Table-5-style Markdown table")
    p.add_argument("--latex", metavar="F", help="write the Table-5-style LaTeX table")
    p.add_argument("--json", metavar="F", help="write the results as JSON")
    p.add_argument("--plot", metavar="F.png", help="write the figure (2AFC bars + JND precision-recall)")
    p.add_argument("--save-distances", metavar="F.npz|F.csv", help="write the per-item distances")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--quiet", action="store_true", help="do not print the table")
    p.add_argument("--format", default=None, choices=FORMATS,
                   help="the benchmark DATA holds (default: detected; a folder may hold several)")
    p.add_argument("--compare", nargs=2, default=None, metavar=("A", "B"),
                   help="paired bootstrap of metric A minus metric B on each non-BAPPS set")
    p.add_argument("--live-scores", default="realigned", choices=("realigned", "dmos"),
                   help="LIVE: dmos_new of dmos_realigned.mat (default) or dmos.mat")
    p.add_argument("--per-type", metavar="F.md", help="write the per-distortion-type tables (correlation sets)")
    p.set_defaults(func=run)
    return p


def check_output_options(args) -> None:
    """Fail fast on output options, before any data is read."""
    from ..errors import BappsError

    if args.plot:
        if Path(args.plot).suffix.lower() != ".png":
            raise BappsError(f"--plot {args.plot}: the figure is written as PNG; use a .png file name")
        if importlib.util.find_spec("matplotlib") is None:
            raise BappsError("--plot needs matplotlib: pip install 'bapps-toolkit[plot]'")
    if args.save_distances and Path(args.save_distances).suffix.lower() not in (".npz", ".csv"):
        raise BappsError(f"--save-distances {args.save_distances}: use a .npz or .csv file name")
    if args.n_boot < 1:
        raise BappsError(f"--n-boot must be >= 1, got {args.n_boot}")
    if args.batch_size is not None and args.batch_size < 1:
        raise BappsError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.chunk_size < 1:
        raise BappsError(f"--chunk-size must be >= 1, got {args.chunk_size}")
    outs = [o for o in (args.out, args.markdown, args.latex, args.json, args.plot, args.save_distances) if o]
    dup = {o for o in outs if outs.count(o) > 1}
    if dup:
        raise BappsError(f"the same output file is given twice: {', '.join(sorted(dup))}")


def run(args) -> int:
    from ..data.iqa import is_bapps_source
    from ..errors import BappsError
    from ..evaluate.runner import parse_weight_specs, run_evaluation
    from ..report.tables import to_markdown, write_reports

    if not args.metrics and not args.checkpoint:
        raise BappsError("nothing to evaluate: give --metrics NAME... and/or --checkpoint PATH")
    check_output_options(args)
    if args.format != "bapps" and (args.format is not None or not is_bapps_source(args.data)):
        from . import cmd_benchmarks

        return cmd_benchmarks.run(args)
    bw = parse_weight_specs(args.backbone_weights, "--backbone-weights", allow_random=True)
    lw = parse_weight_specs(args.lin_weights, "--lin-weights", allow_random=False)
    for ckpt in args.checkpoint:
        if not Path(ckpt).exists():
            raise FileNotFoundError(f"--checkpoint {ckpt} does not exist")
    result = run_evaluation(
        args.data, list(args.metrics) + list(args.checkpoint), datasets=args.datasets,
        batch_size=args.batch_size, device=args.device, n_boot=args.n_boot, seed=args.seed,
        save_distances=args.save_distances, progress=not args.no_progress,
        backbone_weights=bw, lin_weights=lw, stream=args.stream, chunk_size=args.chunk_size,
    )
    table = result.table
    write_reports(table, csv=args.out, markdown=args.markdown, latex=args.latex, json_path=args.json)
    if args.plot:
        from ..report.plots import save_evaluation_plot

        save_evaluation_plot(result, args.plot)
    if not args.quiet:
        print(to_markdown(table))
    written = [o for o in (args.out, args.markdown, args.latex, args.json, args.plot, args.save_distances) if o]
    if written:
        print("wrote " + ", ".join(written), file=sys.stderr)
    return 0
