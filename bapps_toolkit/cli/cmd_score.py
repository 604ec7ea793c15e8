"""bapps score: distances between your own images, streamed in bounded memory.

This is what the official lpips_2imgs / lpips_2dirs / lpips_1dir_allpairs scripts do.

Forms::

    bapps score IMG0 IMG1 [--metrics NAME...]             # prints each value, its unit and direction
    bapps score --dir0 D0 --dir1 D1 [--out dists.csv]    # pairs files with the same name
    bapps score --dir D --all-pairs [--out pairs.csv | --out matrix.npy]

Every number says what it is: the metric, its unit and its direction (distances: lower = more
similar). --as-similarity prints similarity metrics in their usual form (psnr in dB, ssim, ms-ssim,
fsim: higher = more similar) instead of the toolkit's distance (the psnr distance is the PSNR
deficit below 100 dB: a 20.70 dB pair has distance 79.30).

Sizes: each pair is scored at its native resolution; a pair of two sizes is an error naming
both files unless --resize first (second image to the first's size) or --resize WxH (every image
to W x H), bilinear. Files are decoded by --workers processes while the metric runs; batches of
one size within --max-batch-pixels.

Metrics: --metrics takes one or several names (--metric is the same option); several are
computed on one decode pass of the images (IMG0 IMG1 and --dir0/--dir1; --all-pairs takes one).
--metric-option NAME.KEY=VALUE sets an option of a metric's factory, as in evaluate.

Output of the folder forms: CSV columns file (or file0,file1), distance (or similarity), unit,
direction, resized, metric. With several metrics: file (or file0,file1), one column per metric
named "LABEL [UNIT; DIRECTION]" (the label says UNCALIBRATED where it applies), resized.
With --out the rows are appended to OUT.partial as they are scored and OUT is written atomically
at the end; running the same command again skips the pairs already in OUT or OUT.partial (resume
after an interruption). Without --out the rows go to stdout as they are scored. --all-pairs --out
M.npy writes the n x n matrix (float64, files sorted by name) and M.npy.json (file order, metric,
unit, direction); each image goes through the network once.

Several processes: ``torchrun --nproc_per_node=N -m bapps_toolkit score --dir0 D0 --dir1 D1 --out
dists.csv`` (and ``--dir D --all-pairs``) shares the work out and writes the same output as one
process. NCCL on CUDA with one GPU per rank (cuda:LOCAL_RANK, as evaluate and train do), gloo on
CPU. Folder pairs: the pairs already in OUT are skipped first, the rest are batched by size as in
one process and whole batches go round-robin to the ranks (so every batch keeps its one size and
pixel budget); after each step the ranks exchange their distances and rank 0 alone writes the
journal, the rows (stdout) and OUT, in pair order. --all-pairs: the images are shared out the same
way (each image through the network once across ranks), every rank receives all features, then
the blocks of the matrix go round-robin and rank 0 writes them. Only rank 0 prints.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import BappsError, UsageError
from ._options import add_backbone_weights, add_metric_option, add_metrics, add_precision
from ._parser import at_least, examples

EXAMPLES = examples(
    "bapps score ref.png out.png --metrics psnr --as-similarity",
    "bapps score --dir0 outputs/ --dir1 targets/ --metrics ssim psnr lpips-alex --out dists.csv",
    "bapps score --dir photos/ --all-pairs --resize 256x256 --out dup.npy --workers 4",
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add the ``bapps score`` sub-command to ``subparsers``.

    Args:
        subparsers: the sub-command action of the ``bapps`` parser.

    Returns:
        The sub-command's parser (``func`` set to the function that runs it).
    """
    p = subparsers.add_parser(
        "score", help="distance between two images, two folders of images, or all pairs of a folder",
        description=__doc__, epilog=EXAMPLES,
    )
    p.add_argument("images", nargs="*", metavar="IMG", help="two image files (IMG0 IMG1)")
    p.add_argument("--dir0", help="folder of first images (paired with --dir1 by file name)")
    p.add_argument("--dir1", help="folder of second images")
    p.add_argument("--dir", help="folder for --all-pairs")
    p.add_argument("--all-pairs", action="store_true", help="score every unordered pair of --dir")
    add_metrics(p, ["lpips-alex"], "metric names (default lpips-alex; see 'bapps metrics'); several are scored on "
                "one decode pass, one column each; plugins: package.module:attr, path/to/file.py:attr")
    add_metric_option(p)
    p.add_argument("--checkpoint", metavar="PATH",
                   help="use a metric trained by 'bapps train' (checkpoint file) instead of --metrics")
    p.add_argument("--trust-plugin", action="append", default=[], metavar="SPEC",
                   help="a plugin spec that a checkpoint or run folder may import (it names the code its network was "
                        "trained on; a file never decides that by itself, and the code's SHA-256 must match the one "
                        "recorded at training time); repeatable")
    add_backbone_weights(p, "backbone weights for a network (alex, vgg, squeeze); NET=random = UNCALIBRATED; "
                            "several in one flag")
    p.add_argument("--lin-weights", action="append", default=[], metavar="NET=PATH",
                   help="LPIPS linear-layer weights for a network (repeatable)")
    p.add_argument("--out", metavar="F.csv|F.npy",
                   help="CSV file for the folder forms (resumable; default: rows to stdout); "
                        "with --all-pairs a .npy name writes the n x n matrix")
    p.add_argument("--as-similarity", action="store_true",
                   help="print similarity metrics in their usual form (PSNR in dB, SSIM, MS-SSIM, FSIM; "
                        "higher = more similar) instead of the distance")
    p.add_argument("--resize", metavar="first|WxH", default=None,
                   help="allow pairs of two sizes: 'first' resizes the second image to the first's size, "
                        "WxH (e.g. 256x256) every image to W x H (bilinear); default: two sizes are an error")
    add_precision(p, "numeric precision of the metrics: fp32 (default), bf16 (CPU or GPU autocast) or fp16 (GPU "
                     "only); bf16/fp16 move the distances slightly and the metric's label says [bf16] / [fp16]")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--workers", type=at_least(0), default=None, metavar="N",
                   help="decoding worker processes (default: half the cores, at most 8, and 0 on a machine with "
                        "one or two cores; 0 = decode in the main process)")
    p.add_argument("--batch-size", type=at_least(1), default=None, help="most pairs per batch (default 64)")
    p.add_argument("--max-batch-pixels", type=at_least(1), default=None,
                   help="pixel budget of one batch: sum of H*W over its pairs (default 262144 = 256 KPix, "
                        "4 pairs at 256x256); a larger pair runs alone")
    p.add_argument("--channels-last", dest="channels_last", default=None, choices=("on", "off"),
                   help="memory layout of the deep metrics' weights: on = channels_last (NHWC), off = NCHW; "
                        "default on for networks (faster on CPU; distances equal up to float rounding)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (shown on stderr by default)")
    p.set_defaults(func=run)
    return p


def _form(args: argparse.Namespace) -> str:
    """Which form the arguments ask for: ``pair``, ``dirs`` or ``all``."""
    has_pair, has_dirs, has_all = bool(args.images), bool(args.dir0 or args.dir1), bool(args.dir or args.all_pairs)
    if sum((has_pair, has_dirs, has_all)) != 1:
        raise BappsError("give exactly one of: IMG0 IMG1 | --dir0 D0 --dir1 D1 | --dir D --all-pairs")
    if has_pair and len(args.images) != 2:
        raise BappsError(f"give two images (IMG0 IMG1), got {len(args.images)}")
    if has_dirs and not (args.dir0 and args.dir1):
        raise BappsError("--dir0 and --dir1 go together")
    if has_all and not (args.dir and args.all_pairs):
        raise BappsError("--all-pairs needs --dir D (and --dir needs --all-pairs)")
    if args.out is not None and has_pair:
        raise BappsError("--out is for the folder forms; a single pair prints its value")
    if args.out is not None and not has_all and Path(args.out).suffix.lower() == ".npy":
        raise BappsError("--out F.npy (a matrix) is for --all-pairs; --dir0/--dir1 write CSV")
    return "pair" if has_pair else "dirs" if has_dirs else "all"


def _note(message: str) -> None:
    print(f"bapps score: note: {message}", file=sys.stderr)


def _metric_specs(args: argparse.Namespace) -> tuple[list[str | Path], dict[str, dict[str, Any]]]:
    """The metrics to score (the checkpoint, or the names) and their --metric-option values."""
    from ..metrics.plugins import parse_metric_options

    if args.checkpoint:
        if args.metric_option:
            raise UsageError("--metric-option applies to --metrics, not to --checkpoint")
        return [Path(args.checkpoint)], {}
    names = list(args.metrics)
    return names, parse_metric_options(args.metric_option, names)


def run(args: argparse.Namespace) -> int:
    """Score image pairs with the chosen metrics and print or write the distances.

    Args:
        args: the parsed command line.

    Returns:
        The exit status.
    """
    form = _form(args)

    from .._distributed import is_main_process
    from ..scoring.pairs import (
        all_pairs_matrix,
        score_all_pairs,
        score_files_many,
        score_folders,
        score_folders_many,
    )

    specs, metric_options = _metric_specs(args)
    options = dict(
        metric_options=metric_options, backbone_weights=args.backbone_weights, lin_weights=args.lin_weights,
        device=args.device, precision=args.precision, resize=args.resize, as_similarity=args.as_similarity, notes=_note,
        progress=not args.no_progress,
    )
    options.update({k: v for k, v in (("batch_size", args.batch_size), ("max_batch_pixels", args.max_batch_pixels),
                                      ("num_workers", args.workers)) if v is not None})
    if args.channels_last is not None:
        options["channels_last"] = args.channels_last == "on"
    if args.trust_plugin:
        options["trust_plugin"] = list(args.trust_plugin)
    if form == "pair":
        results = score_files_many([(args.images[0], args.images[1])], metrics=specs, **options)
        if is_main_process():
            print("\n".join(r.summary() for r in results))
        return 0
    echo = sys.stdout if args.out is None else None
    if form == "dirs":
        if len(specs) > 1:
            many = score_folders_many(args.dir0, args.dir1, metrics=specs, out=args.out, echo=echo, **options)
            if args.out is not None and is_main_process():
                cols = "; ".join(f"{r.label}: {r.table().unit}, {r.table().direction}" for r in many)
                print(f"wrote {len(many[0].distances)} rows to {args.out}, one column per metric: {cols}",
                      file=sys.stderr)
            return 0
        res = score_folders(args.dir0, args.dir1, metric=specs[0], out=args.out, echo=echo, **options)
    elif len(specs) > 1:
        raise UsageError("--all-pairs takes one metric (give --metrics NAME once per run)")
    elif args.out is not None and Path(args.out).suffix.lower() == ".npy":
        mat = all_pairs_matrix(args.dir, metric=specs[0], out=args.out, **options)
        if is_main_process():
            print(f"wrote the {len(mat.files)}x{len(mat.files)} matrix to {args.out} and {args.out}.json: "
                  f"{mat.label}, {mat.unit}, {mat.direction}", file=sys.stderr)
        return 0
    else:
        res = score_all_pairs(args.dir, metric=specs[0], out=args.out, echo=echo, **options)
    if args.out is not None and is_main_process():
        t = res.table()
        print(f"wrote {len(res.distances)} rows to {args.out}: {t.label}, {t.unit}, {t.direction}", file=sys.stderr)
    return 0
