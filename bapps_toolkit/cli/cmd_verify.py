"""``bapps verify DATA.h5``: re-check a packed file's schema, counts and checksums."""
from __future__ import annotations

import argparse

from ._parser import examples


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add the ``bapps verify`` sub-command to ``subparsers``.

    Args:
        subparsers: the sub-command action of the ``bapps`` parser.

    Returns:
        The sub-command's parser (``func`` set to the function that runs it).
    """
    p: argparse.ArgumentParser = subparsers.add_parser(
        "verify", help="re-check a packed HDF5 file (schema, counts, SHA-256 of every array)",
        description="Exit 0 with a summary when the file is sound; exit 2 naming the file and "
                    "array otherwise.",
        epilog=examples("bapps verify bapps.h5", "bapps verify mini.h5 --no-progress"))
    p.add_argument("h5", metavar="DATA.h5", help="file written by `bapps pack` (BAPPS, NIGHTS or a packed IQA set)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Re-check the packed file ``args.h5`` and print a summary.

    Args:
        args: the parsed command line.

    Returns:
        The exit status.
    """
    from ..data.iqa.detect import packed_marker
    from ..data.iqa.pack_iqa import FORMAT, verify_iqa
    from ..data.pack import verify

    if packed_marker(args.h5) == FORMAT:

        attrs = verify_iqa(args.h5)
        print(f"{args.h5}: OK - format {FORMAT}, {attrs['set_name']}: {attrs['n_items']} items, "
              f"{attrs['n_images']} images ({attrs['size_rule']}); every array's SHA-256 checked"
              + (", SYNTHETIC data" if attrs["synthetic"] else ""))
        return 0
    info = verify(args.h5, progress=not args.no_progress)
    print(f"{info['path']}: OK - format {info['format']}, toolkit {info['toolkit_version']}, "
          f"{info['arrays_checked']} arrays checked, {info['images']} images"
          + (", SYNTHETIC data" if info["synthetic"] else ""))
    for key, n in info["sets"].items():
        side = info["sizes"][key]
        print(f"  {key:24s} {n:7d}  {side}x{side}")
    return 0
