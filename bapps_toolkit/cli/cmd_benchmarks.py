"""``bapps evaluate`` on the IQA benchmarks: prints the cross-benchmark table.

The benchmarks are NIGHTS, PieAPP, TID2013, KADID-10k, PIPAL, LIVE, CSIQ (folders or packed
``.h5`` files), or a folder holding several of them (BAPPS included); cmd_evaluate routes here.
"""
from __future__ import annotations

import argparse
import sys

from ..report.benchmark_tables import benchmarks_to_reports, cross_markdown


def run(args: argparse.Namespace) -> int:
    """Score metrics on the IQA benchmarks of ``args.data`` and print the cross-benchmark table.

    Args:
        args: the parsed command line.

    Returns:
        The exit status.
    """
    result, written = benchmarks_to_reports(
        args.data, list(args.metrics) + list(args.checkpoint), markdown=args.markdown, latex=args.latex,
        csv_path=args.out, json_path=args.json, per_type=args.per_type, plot=args.plot,
        format=args.format, device=args.device, batch_size=args.batch_size or 16, n_boot=args.n_boot,
        seed=args.seed, live_scores=args.live_scores, compare=args.compare,
        backbone_weights=args.backbone_weights or None, lin_weights=args.lin_weights or None,
        metric_options=args.metric_option, trust_plugin=args.trust_plugin)
    if not args.quiet:
        print(cross_markdown(result))
    if written:
        print("wrote " + ", ".join(written), file=sys.stderr)
    return 0
