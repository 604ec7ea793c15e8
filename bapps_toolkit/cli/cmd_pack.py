"""``bapps pack ROOT OUT.h5``: pack every BAPPS split/category under ROOT into one HDF5 file."""
from __future__ import annotations

import argparse

from ._parser import examples


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "pack", help="pack a BAPPS folder tree into one HDF5 file",
        description="Decode every PNG under ROOT (in parallel) into one HDF5 file whose groups "
                    "mirror the folder layout, with a SHA-256 per array. Written under a temporary "
                    "name and renamed when complete.",
        epilog=examples("bapps pack data/bapps bapps.h5", "bapps pack mini mini.h5 --workers 4 --force"))
    p.add_argument("root", metavar="ROOT", help="BAPPS folder (holding 2afc/ and/or jnd/)")
    p.add_argument("out", metavar="OUT.h5", help="output file")
    p.add_argument("--workers", type=int, default=None, help="decode processes (default: all cores)")
    p.add_argument("--force", action="store_true", help="overwrite an existing OUT.h5")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    import time

    from ..data.h5format import describe
    from ..data.pack import pack

    t0 = time.perf_counter()
    out = pack(args.root, args.out, workers=args.workers, force=args.force,
               progress=not args.no_progress)
    dt = time.perf_counter() - t0
    info = describe(out)
    images = info["images"]
    print(f"packed {images} images in {len(info['keys'])} sets into {out} "
          f"({dt:.1f} s, {images / max(dt, 1e-9):.0f} images/s); check it with `bapps verify {out}`"
          + (" [SYNTHETIC data]" if info["synthetic"] else ""))
    return 0
