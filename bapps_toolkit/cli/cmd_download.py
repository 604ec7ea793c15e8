"""``bapps download``: fetch and unpack the official BAPPS archives (resumable, verified, safe).

bapps download --root DIR [--val-only] [--base-url URL] [--from-archive PATH] [--no-progress]
"""
from __future__ import annotations

import argparse

from ..data.iqa.registry import PLUGIN_HELP, help_list
from ._parser import examples


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add the ``bapps download`` sub-command to ``subparsers``.

    Args:
        subparsers: the sub-command action of the ``bapps`` parser.

    Returns:
        The sub-command's parser (``func`` set to the function that runs it).
    """
    p: argparse.ArgumentParser = subparsers.add_parser(
        "download",
        help="download and unpack the BAPPS archives (jnd, 2AFC val, 2AFC train)",
        description=(
            "Download the official BAPPS archives into DIR and unpack them into the official "
            "layout (DIR/jnd/val/..., DIR/2afc/{val,train}/...). Interrupted downloads resume "
            "(HTTP Range), lengths and recorded SHA-256 digests are checked, archives are "
            "checked member by member before anything is unpacked, and reruns skip what is "
            "already done. About 6.6 GB (1.3 GB with --val-only)."),
        epilog=examples("bapps download --root data/bapps --val-only",
                        "bapps download --root data/bapps --from-archive twoafc_val.tar.gz",
                        "bapps download --dataset kadid10k --root data/kadid10k"),
    )
    p.add_argument("--root", required=True, metavar="DIR", help="dataset root to fill")
    p.add_argument("--val-only", action="store_true",
                   help="only jnd.tar.gz and twoafc_val.tar.gz (skip the 5.3 GB train archive)")
    p.add_argument("--base-url", metavar="URL", default=None,
                   help="mirror holding the archive names (default: the authors' S3 bucket)")
    p.add_argument("--from-archive", metavar="PATH", default=None,
                   help="unpack this archive, fetched some other way, and download nothing")
    p.add_argument("--keep-archives", action="store_true",
                   help="keep the .tar.gz files after unpacking (default: delete them)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars or messages")
    p.add_argument("--dataset", default="bapps", metavar="NAME",
                   help="which data set (default bapps); sets that need registration print what to do: "
                        + help_list(with_bapps=True))
    p.add_argument("--benchmark-plugin", action="append", default=[], metavar="SPEC", help=PLUGIN_HELP)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Download BAPPS, or the benchmark ``--dataset`` names."""
    if args.dataset != "bapps":
        return _run_benchmark(args)
    from ..data.download import download_bapps

    results = download_bapps(args.root, val_only=args.val_only, base_url=args.base_url,
                             from_archive=args.from_archive, progress=not args.no_progress,
                             keep_archives=args.keep_archives)
    for name, info in results.items():
        sha = info.get("sha256") or "?"
        print(f"{name}: {info['status']} -> {info['dest']} (sha256 {sha[:16]}...)")
    return 0


def _run_benchmark(args: argparse.Namespace) -> int:
    from ..data.iqa.download_iqa import download_benchmark, instructions
    from ..data.iqa.registry import get_benchmark, load_benchmark_plugins

    load_benchmark_plugins(args.benchmark_plugin)
    if not get_benchmark(args.dataset).sources:
        print(instructions(args.dataset, args.root))
        return 1
    results = download_benchmark(args.dataset, args.root, base_url=args.base_url,
                                 progress=not args.no_progress, keep_archives=args.keep_archives)
    for name, info in results.items():
        print(f"{name}: {info['status']} -> {info['dest']}" + (f"\n{info['todo']}" if "todo" in info else ""))
    return 0
