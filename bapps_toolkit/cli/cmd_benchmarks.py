"""``bapps evaluate`` on NIGHTS, PieAPP, TID2013, KADID-10k, PIPAL, LIVE, CSIQ, or a folder holding
several of them (BAPPS included): prints the cross-benchmark table (routed from cmd_evaluate)."""
from __future__ import annotations

import sys

from ..evaluate.benchmarks import evaluate_benchmarks
from ..evaluate.resolve import parse_weight_specs
from ..report.benchmark_plots import save_benchmark_plot
from ..report.benchmark_tables import cross_markdown, write_cross_reports


def run(args) -> int:
    bw = parse_weight_specs(args.backbone_weights, "--backbone-weights", allow_random=True)
    lw = parse_weight_specs(args.lin_weights, "--lin-weights", allow_random=False)
    result = evaluate_benchmarks(
        args.data, list(args.metrics) + list(args.checkpoint), format=args.format, device=args.device,
        batch_size=args.batch_size or 16, n_boot=args.n_boot, seed=args.seed, live_scores=args.live_scores,
        compare=args.compare, backbone_weights=bw, lin_weights=lw)
    written = write_cross_reports(result, markdown=args.markdown, latex=args.latex, csv_path=args.out,
                                  json_path=args.json, per_type=args.per_type)
    if args.plot:
        written.append(str(save_benchmark_plot(result, args.plot)))
    if not args.quiet:
        print(cross_markdown(result))
    if written:
        print("wrote " + ", ".join(written), file=sys.stderr)
    return 0
