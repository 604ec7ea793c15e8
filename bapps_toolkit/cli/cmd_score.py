"""``bapps score``: distances between your own images (the official lpips_2imgs / lpips_2dirs /
lpips_1dir_allpairs scripts, batched).

Forms::

    bapps score IMG0 IMG1 [--metric NAME]                 # prints one distance
    bapps score --dir0 D0 --dir1 D1 [--out dists.csv]    # pairs files with the same name
    bapps score --dir D --all-pairs [--out dists.csv]    # every unordered pair of D's images

The image rule (decoding, colour, the resize of the second image to the first's size, the
pixel-budget batching) is that of :mod:`bapps_toolkit.evaluate.pairs`, the Python API behind
this command (``bapps_toolkit.score_folders`` and friends).

Output: a single pair prints ``<distance>`` (with the metric's label when it is UNCALIBRATED);
folder forms write CSV (``file,distance,resized,metric`` or ``file0,file1,distance,resized,
metric``) atomically to ``--out`` or print it to stdout.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import BappsError
from ..evaluate.pairs import score_all_pairs, score_folders, score_image_pair

# Options left unset (None) take the library's defaults (bapps_toolkit.evaluate.pairs).


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "score", help="distance between two images, two folders of images, or all pairs of a folder",
        description=__doc__.split("\n\n")[0] + "\n\nResize rule: the second image of a pair is "
        "resized (bilinear) to the first's size when they differ.",
    )
    p.add_argument("images", nargs="*", metavar="IMG", help="two image files (IMG0 IMG1)")
    p.add_argument("--dir0", help="folder of first images (paired with --dir1 by file name)")
    p.add_argument("--dir1", help="folder of second images")
    p.add_argument("--dir", help="folder for --all-pairs")
    p.add_argument("--all-pairs", action="store_true", help="score every unordered pair of --dir")
    p.add_argument("--metric", "--metrics", dest="metric", default="lpips-alex",
                   help="metric name (default lpips-alex; see 'bapps metrics'); --metrics is the same flag")
    p.add_argument("--checkpoint", help="use a metric trained by `bapps train` (checkpoint file) instead of --metric")
    p.add_argument("--backbone-weights", action="extend", nargs="+", default=[], metavar="NET=PATH|NET=random",
                   help="backbone weights for a network (alex, vgg, squeeze);"
                        " NET=random = UNCALIBRATED; several in one flag")
    p.add_argument("--lin-weights", action="append", default=[], metavar="NET=PATH",
                   help="LPIPS linear-layer weights for a network")
    p.add_argument("--out", help="CSV file for the folder forms (default: print to stdout)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--batch-size", type=int, default=None, help="most pairs per batch (default 64)")
    p.add_argument("--max-batch-pixels", type=int, default=None,
                   help="pixel budget of one batch: sum of H*W over its pairs (default 8 Mi = 8388608)")
    p.set_defaults(func=run)
    return p


def _form(args) -> str:
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
        raise BappsError("--out is for the folder forms; a single pair prints its distance")
    return "pair" if has_pair else "dirs" if has_dirs else "all"


def _note(message: str) -> None:
    print(f"bapps score: note: {message}", file=sys.stderr)


def run(args) -> int:
    form = _form(args)
    options = dict(
        metric=Path(args.checkpoint) if args.checkpoint else args.metric,
        backbone_weights=args.backbone_weights, lin_weights=args.lin_weights, device=args.device,
        notes=_note,
    )
    options.update({k: v for k, v in (("batch_size", args.batch_size), ("max_batch_pixels", args.max_batch_pixels))
                    if v is not None})
    if form == "pair":
        res = score_image_pair(args.images[0], args.images[1], **options)
        tag = "" if res.calibrated else f"  ({res.label})"
        print(f"{res.distances[0]:.6g}{tag}")
        return 0
    if form == "dirs":
        res = score_folders(args.dir0, args.dir1, out=args.out, **options)
    else:
        res = score_all_pairs(args.dir, out=args.out, **options)
    if args.out is None:
        res.to_csv(sys.stdout)
    else:
        warn = "" if res.calibrated else f" — {res.label}"
        print(f"wrote {len(res.distances)} distances to {args.out}{warn}", file=sys.stderr)
    return 0
