"""``bapps pack ROOT OUT.h5`` / ``bapps pack A.csv [B.csv ...] OUT.h5``: pack data sets into one HDF5 file.

The sources are every set of a BAPPS folder tree, or of CSV manifests; or one IQA benchmark folder
(NIGHTS, TID2013, KADID-10k, PIPAL, LIVE, CSIQ, PieAPP; detected or named by --format).
"""
from __future__ import annotations

import argparse

from ..data.iqa.registry import PLUGIN_HELP, help_list
from ..errors import UsageError
from ._parser import examples


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add the ``bapps pack`` sub-command to ``subparsers``.

    Args:
        subparsers: the sub-command action of the ``bapps`` parser.

    Returns:
        The sub-command's parser (``func`` set to the function that runs it).
    """
    p: argparse.ArgumentParser = subparsers.add_parser(
        "pack", help="pack a BAPPS folder tree or CSV manifests into one HDF5 file",
        description="Decode every image of a BAPPS folder tree (or of the CSV manifests of your "
                    "own 2AFC triplets / JND pairs: columns ref,p0,p1,judge or votes_p0,votes_p1; "
                    "p0,p1,same or votes_same,votes_different; optional split, category, id) in "
                    "parallel into one HDF5 file whose groups mirror the folder layout, with a "
                    "SHA-256 per array. Written under a temporary name and renamed when complete.",
        epilog=examples("bapps pack data/bapps bapps.h5 --workers 4",
                        "bapps pack own/triplets.csv own/pairs.csv own.h5 --size 128",
                        "bapps pack data/nights nights.h5 --size 64"))
    p.add_argument("sources", metavar="ROOT|CSV", nargs="+",
                   help="a BAPPS folder (holding 2afc/ and/or jnd/), one or more .csv manifests "
                        "(image paths relative to each CSV), or one IQA benchmark folder")
    p.add_argument("out", metavar="OUT.h5", help="output file")
    p.add_argument("--size", type=int, default=None, metavar="N",
                   help="patch side of the packed sets: square images resized bilinearly to NxN, "
                        "non-square ones centre-cropped to their shorter side first (default: the "
                        "images' own size, which must be square and shared: nothing is resized "
                        "unless asked; BAPPS's patches are 64x64)")
    p.add_argument("--format", default=None, metavar="NAME",
                   help="the IQA benchmark ROOT holds (default: detected): " + help_list()
                        + ". NIGHTS is packed in the BAPPS format at --size (default 224, bicubic, DreamSim's rule) "
                          "for training and evaluation; correlation sets keep their images' original sizes")
    p.add_argument("--live-scores", default="realigned", choices=("realigned", "dmos"),
                   help="LIVE: pack dmos_new of dmos_realigned.mat (default) or dmos.mat")
    p.add_argument("--pairs", action="store_true",
                   help="PieAPP: pack its labelled pairs (train/val/test) as 2AFC sets in the BAPPS format "
                        "(for training) instead of the test set's per-image scores")
    p.add_argument("--benchmark-plugin", action="append", default=[], metavar="SPEC", help=PLUGIN_HELP)
    p.add_argument("--workers", type=int, default=None, metavar="N", help="decode processes (default: all cores)")
    p.add_argument("--force", action="store_true", help="overwrite an existing OUT.h5")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)
    return p


def _iqa(args: argparse.Namespace) -> bool:
    """True when the one source is an IQA benchmark folder (named by --format or detected)."""
    from ..data.iqa.detect import iqa_format
    from ..data.iqa.registry import load_benchmark_plugins

    load_benchmark_plugins(args.benchmark_plugin)
    return args.format is not None or (len(args.sources) == 1 and iqa_format(args.sources[0]) is not None)


def _run_iqa(args: argparse.Namespace) -> int:
    from ..data.iqa.pack_iqa import pack_benchmark

    if len(args.sources) != 1:
        raise UsageError("--format: give one benchmark folder and OUT.h5")
    info = pack_benchmark(args.sources[0], args.out, format=args.format, size=args.size,
                          live_scores=args.live_scores, pairs=args.pairs, force=args.force, workers=args.workers,
                          progress=not args.no_progress)
    sets = ", ".join(f"{k} {n}" for k, n in info.sets.items())
    print(f"packed {info.format} ({info.items} items: {sets}) into {info.path}; {info.size_rule}"
          + (" [SYNTHETIC data]" if info.synthetic else ""))
    for note in info.notes:
        print(f"note: {note}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Pack the sources into one HDF5 file (a BAPPS tree, CSV manifests or an IQA benchmark).

    Args:
        args: the parsed command line.

    Returns:
        The exit status.
    """
    import time

    if _iqa(args):
        return _run_iqa(args)

    from ..data.h5format import describe
    from ..data.pack import pack

    t0 = time.perf_counter()
    root = args.sources[0] if len(args.sources) == 1 else args.sources
    out = pack(root, args.out, size=args.size, workers=args.workers, force=args.force,
               progress=not args.no_progress)
    dt = time.perf_counter() - t0
    info = describe(out)
    images = info["images"]
    sizes = sorted(set(info["sizes"].values()))
    print(f"packed {images} images ({'/'.join(f'{s}x{s}' for s in sizes)}) in {len(info['keys'])} "
          f"sets into {out} "
          f"({dt:.1f} s, {images / max(dt, 1e-9):.0f} images/s); check it with `bapps verify {out}`"
          + (" [SYNTHETIC data]" if info["synthetic"] else ""))
    return 0
