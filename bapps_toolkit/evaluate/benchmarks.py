"""Score metrics on every human-judgment benchmark of a folder and assemble one cross-benchmark table.

The benchmarks: BAPPS, NIGHTS and the correlation sets (TID2013, KADID-10k, PIPAL, LIVE, CSIQ, PieAPP test).

* **Correlation sets**: the distance ``D(reference, distorted)`` at the images' native size
  (no resizing; reference and distorted image must have the same size), then the figures of
  :mod:`bapps_toolkit.correlation` on the signed prediction (``-d`` for MOS sets, ``d`` for DMOS
  sets: a metric that agrees with people gets positive SRCC/KRCC), overall and per distortion
  type, with percentile bootstrap intervals from resampling **reference images** (their
  distorted versions are not independent); per distortion type the same within the type's items.
  A packed set (``bapps-iqa-h5/1``) is scored from its stored images: the same figures.
* **NIGHTS** (2AFC): ``d0 = D(ref, left)``, ``d1 = D(ref, right)`` after resizing every image to
  ``nights_size``×``nights_size`` (default 224, bicubic without crop, as DreamSim's default
  preprocessing; :func:`~bapps_toolkit.data.iqa.pack_2afc.read_resized`); the BAPPS 2AFC score
  with item-bootstrap intervals for val, test_imagenet, test_no_imagenet and test (the two test
  parts joined: the count-weighted total DreamSim reports). A packed NIGHTS file
  (:mod:`~bapps_toolkit.data.iqa.pack_2afc`) is scored at the size it was packed at.
* **BAPPS**: :func:`bapps_toolkit.evaluate.runner.run_evaluation`, unchanged; the cross table
  takes its 2AFC mean(traditional, cnn) row and the mean of its JND mAP rows.

Rows are tidy typed dicts (:class:`~.benchmark_records.BenchmarkRow`, :data:`ROW_KEYS`);
:func:`cross_table` pivots them into metrics × columns.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .. import correlation as corr
from .._device import pick_device
from .._io import PathLike
from ..data.iqa import CorrelationSet, TwoAFCFileSet, find_benchmarks
from ..data.iqa.pack_2afc import NIGHTS_SIZE, packed_parts, read_resized, two_afc_sets
from ..data.iqa.pack_iqa import PackedCorrelationSet
from ..data.iqa.registry import Benchmark, get_benchmark, load_correlation
from ..errors import DataError
from ..metrics.plugins import parse_metric_options
from ..metrics.presets import expand_presets, merge_options
from ..metrics.resolve import WeightSpecs, metric_label, resolve_metric, trusted_with_metrics
from ..scores import bootstrap_distribution, paired_bootstrap, score_2afc
from .benchmark_records import ROW_KEYS as ROW_KEYS
from .benchmark_records import BenchmarkResult as BenchmarkResult
from .benchmark_records import BenchmarkRow, ComparisonRow, ScatterData
from .benchmark_records import FitNote as FitNote
from .compare import check_compare
from .cross_table import Cell as Cell
from .cross_table import cross_table as cross_table
from .runner import run_evaluation


def _run_pairs(metric: Any, a: Sequence[Hashable], b: Sequence[Hashable], *, device: Any, batch_size: int,
               size: int | None = None, decode: Callable[[Any, int | None], np.ndarray] = read_resized) -> np.ndarray:
    """``D(a[i], b[i])`` for every pair, batched by image size.

    ``decode(key, size)`` gives an image (a path on disk, or an index into a packed file); decoded images of
    ``a`` are cached.
    """
    import torch

    from ..data import to_model_input

    cache: dict[Hashable, np.ndarray] = {}

    def img_a(k: Hashable) -> np.ndarray:
        if k not in cache:
            cache[k] = decode(k, size)
        return cache[k]

    out = np.empty(len(a), dtype=np.float64)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, k in enumerate(a):
        by_shape.setdefault(img_a(k).shape, []).append(i)
    first = True
    for idx in by_shape.values():
        for start in range(0, len(idx), batch_size):
            part = idx[start:start + batch_size]
            xa = np.stack([img_a(a[i]) for i in part])
            imgs = [decode(b[i], size) for i in part]
            for i, im in zip(part, imgs, strict=True):
                if im.shape != xa.shape[1:]:
                    raise DataError(f"{b[i]} is {im.shape[1]}x{im.shape[0]} but its reference {a[i]} is "
                                    f"{xa.shape[2]}x{xa.shape[1]}")
            x = to_model_input(np.concatenate([xa, np.stack(imgs)]), device=device)
            with torch.no_grad():
                d = metric.distance(x[:len(part)], x[len(part):], validate=first)
            out[part] = d.detach().double().cpu().numpy().reshape(-1)
            first = False
    return out


def _array_pairs(metric: Any, a: Any, b: Any, *, device: Any, batch_size: int) -> np.ndarray:
    """``D(a[i], b[i])`` for uint8 ``[N, S, S, 3]`` arrays (a packed 2AFC set)."""
    import torch

    from ..data import to_model_input

    out = np.empty(len(a), dtype=np.float64)
    for start in range(0, len(a), batch_size):
        stop = min(start + batch_size, len(a))
        x = to_model_input(np.concatenate([np.asarray(a[start:stop]), np.asarray(b[start:stop])]), device=device)
        with torch.no_grad():
            d = metric.distance(x[:stop - start], x[stop - start:], validate=start == 0)
        out[start:stop] = d.detach().double().cpu().numpy().reshape(-1)
    return out


def _row(mid: str, metric: Any, bench: str, kind: str, part: str, figure: str, n: int, value: float,
         lo: float, hi: float, synthetic: bool, direction: str) -> BenchmarkRow:
    return BenchmarkRow(metric=mid, label=metric_label(mid, metric), calibrated=bool(metric.calibrated),
                benchmark=bench, kind=kind, part=part, figure=figure, n=int(n), value=float(value),
                ci_low=float(lo), ci_high=float(hi), synthetic=bool(synthetic), direction=direction)


def score_correlation_set(cset: Any, mid: str, metric: Any, distances: np.ndarray, *, n_boot: int, seed: int,
                          notes: list[FitNote] | None = None) -> tuple[list[BenchmarkRow], ScatterData]:
    """Rows and scatter data of one set (a :class:`CorrelationSet` or a packed one).

    The rows are overall and per distortion type, each with reference-resampling intervals; a :class:`FitNote`
    is appended to ``notes`` when resampled logistic fits did not converge.
    """
    notes = notes if notes is not None else []
    direction = ("distance vs MOS (higher = better): prediction = -distance" if cset.higher_is_better
                 else "distance vs DMOS (higher = worse): prediction = distance")
    s = corr.signed_prediction(distances, cset.higher_is_better)
    boot = corr.bootstrap_correlation(s, cset.score, cset.ref_id, n_boot=n_boot, seed=seed)
    rows = [_row(mid, metric, cset.name, "correlation", "all", f, len(cset), boot.point[f], boot.low[f],
                 boot.high[f], cset.synthetic, direction) for f in corr.FIGURES]
    per_type = corr.per_type_bootstrap(s, cset.score, cset.dist_type, cset.ref_id, n_boot=n_boot, seed=seed)
    for t, (n, bt) in per_type.items():
        rows += [_row(mid, metric, cset.name, "correlation", f"type:{t}", f, n, bt.point[f], bt.low[f],
                      bt.high[f], cset.synthetic, direction) for f in corr.FIGURES]
    fits = [("all", boot)] + [(f"type:{t}", bt) for t, (_, bt) in per_type.items()]
    bad = [(part, r) for part, r in fits if r.n_not_converged]
    if bad:
        notes.append(FitNote(mid, cset.name, ", ".join(f"{part} {r.n_not_converged}/{r.n_fitted}" for part, r in bad)))
    fit = corr.fit_logistic(s, cset.score)
    scatter = ScatterData(s=s, y=cset.score, fit=fit, types=list(cset.dist_type), score_name=cset.score_name,
                   label=metric_label(mid, metric), synthetic=cset.synthetic)
    return rows, scatter


def score_2afc_part(name: str, judge: np.ndarray, synthetic: bool, mid: str, metric: Any, d0: np.ndarray,
                    d1: np.ndarray, *, part: str, n_boot: int, seed: int) -> BenchmarkRow:
    """The 2AFC row of one part of a 2AFC benchmark, with its item-bootstrap interval."""
    boot = bootstrap_distribution(score_2afc, d0, d1, judge, n_boot=n_boot, seed=seed)
    fin = boot[np.isfinite(boot)]
    lo, hi = np.quantile(fin, [0.025, 0.975])
    return _row(mid, metric, name, "2afc", part, "2afc", len(judge), score_2afc(d0, d1, judge),
                lo, hi, synthetic, "2AFC agreement (higher = better)")


@dataclass
class _Options:
    device: Any
    batch_size: int
    n_boot: int
    seed: int
    nights_size: int
    live_scores: str


@dataclass
class _Part:
    """One NIGHTS part: its judgments and how to get ``(d0, d1)`` for a metric."""

    judge: np.ndarray
    synthetic: bool
    pairs: Callable[[Any], tuple[np.ndarray, np.ndarray]]


def _two_afc_folder(bench: Benchmark, root: Path, opt: _Options) -> tuple[dict[str, _Part], list[str]]:
    sets, notes = two_afc_sets(bench, root, bench.parts)

    def pairs(t: TwoAFCFileSet) -> Callable[[Any], tuple[np.ndarray, np.ndarray]]:
        kw = dict(device=opt.device, batch_size=opt.batch_size, size=opt.nights_size)
        return lambda m: (_run_pairs(m, t.ref, t.p0, **kw), _run_pairs(m, t.ref, t.p1, **kw))

    return {p: _Part(t.judge, t.synthetic, pairs(t)) for p, t in sets.items()}, notes


def _two_afc_packed(bench: Benchmark, path: Path, opt: _Options) -> tuple[dict[str, _Part], list[str]]:
    from ..data import load_2afc

    keys, rule, _, _ = packed_parts(path)

    def pairs(s: Any) -> Callable[[Any], tuple[np.ndarray, np.ndarray]]:
        kw = dict(device=opt.device, batch_size=opt.batch_size)
        return lambda m: (_array_pairs(m, s.ref, s.p0, **kw), _array_pairs(m, s.ref, s.p1, **kw))

    out = {}
    for part in bench.parts:
        if part in keys:
            s = load_2afc(path, [keys[part]])[0]
            out[part] = _Part(np.asarray(s.judge, dtype=np.float64), bool(s.synthetic), pairs(s))
    if not out:
        raise DataError(f"{path}: a packed {bench.title} file without any of its parts ({', '.join(bench.parts)})")
    return out, [f"{bench.name}: {path.name} scored as packed ({rule})"]


def _two_afc(bench: Benchmark, root: Path, metrics: Sequence[tuple[str, Any]], opt: _Options,
             result: BenchmarkResult, keep: dict[tuple[str, str], Any]) -> None:
    """Each part of a 2AFC set and each joined part (their count-weighted total).

    For NIGHTS: val and the two test parts, and ``test``, the two test parts joined.
    """
    parts, notes = _two_afc_packed(bench, root, opt) if root.is_file() else _two_afc_folder(bench, root, opt)
    result.notes += notes
    for mid, metric in metrics:
        got: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {
            p: (*part.pairs(metric), part.judge) for p, part in parts.items()}
        for joined, members in bench.joined.items():
            tests = [got[p] for p in members if p in got]
            if tests:
                got[joined] = (np.concatenate([t[0] for t in tests]), np.concatenate([t[1] for t in tests]),
                               np.concatenate([t[2] for t in tests]))
        syn = any(part.synthetic for part in parts.values())
        for p, (d0, d1, judge) in got.items():
            result.rows.append(score_2afc_part(bench.name, judge, syn, mid, metric, d0, d1, part=p,
                                               n_boot=opt.n_boot, seed=opt.seed))
            keep[(mid, f"{bench.name}/{p}")] = _TwoAFCKept(d0, d1, judge)


class _TwoAFCKept(NamedTuple):
    """The distances and judgments of one 2AFC part, kept for a paired comparison."""

    d0: np.ndarray
    d1: np.ndarray
    judge: np.ndarray


def _packed_decoder(cset: PackedCorrelationSet) -> Callable[[Any, int | None], np.ndarray]:
    return lambda k, size: cset.image(int(k))


def _correlation(bench: Benchmark, root: Path, metrics: Sequence[tuple[str, Any]], opt: _Options,
                 result: BenchmarkResult, keep: dict[tuple[str, str], Any]) -> None:
    cset: CorrelationSet | PackedCorrelationSet
    decode: Callable[[Any, int | None], np.ndarray] = read_resized
    a: Sequence[Hashable]
    b: Sequence[Hashable]
    if root.is_file():
        cset = PackedCorrelationSet(root)
        a, b = [int(k) for k in cset.data["ref_index"]], [int(k) for k in cset.data["dist_index"]]
        decode = _packed_decoder(cset)
    else:
        cset = load_correlation(bench, root, {"live_scores": opt.live_scores})
        a, b = cset.ref, cset.dist
    result.notes += [n for n in cset.notes if n not in result.notes]
    for mid, metric in metrics:
        d = _run_pairs(metric, a, b, device=opt.device, batch_size=opt.batch_size, decode=decode)
        rows, scatter = score_correlation_set(cset, mid, metric, d, n_boot=opt.n_boot, seed=opt.seed,
                                              notes=result.fit_notes)
        result.rows += rows
        result.scatter[(mid, cset.name)] = scatter
        keep[(mid, cset.name)] = (scatter["s"], cset.score, cset.ref_id)


def _bapps(root: Path, specs: list[Any], opt: _Options, result: BenchmarkResult, keep: dict[tuple[str, str], Any],
           weights: dict[str, Any],
           pair: tuple[str, str] | None) -> None:
    ev = run_evaluation(root, specs, device=opt.device, n_boot=opt.n_boot, seed=opt.seed, progress=False,
                        compare=pair, **weights)
    result.comparisons += [ComparisonRow(a=c["a"], b=c["b"], set=f"bapps/{c['mode']}/{c['split']}/{c['category']}",
                                figure="2afc" if c["mode"] == "2afc" else "map", diff=c["diff"], ci_low=c["ci_low"],
                                ci_high=c["ci_high"], p_value=c["p_value"]) for c in ev.comparisons]
    for r in ev.table.to_dict("records"):
        mode, cat = r["mode"], r["category"]
        part = f"{r['split']}/{cat}"
        result.rows.append(BenchmarkRow(metric=r["metric"], label=r["label"], calibrated=r["calibrated"],
                                benchmark="bapps", kind=mode, part=part,
                                figure="2afc" if mode == "2afc" else "map", n=r["n"], value=r["score"],
                                ci_low=r["ci_low"], ci_high=r["ci_high"], synthetic=r["synthetic"],
                                direction="higher = better"))
    for sd in ev.distances:
        keep[(sd.metric, f"bapps/{sd.key}")] = sd


def evaluate_benchmarks(source: PathLike, metrics: Sequence[Any], *, format: str | None = None,
                        device: Any = None, batch_size: int = 16, n_boot: int = 1000, seed: int = 0,
                        nights_size: int = NIGHTS_SIZE, live_scores: str = "realigned",
                        compare: Sequence[str] | None = None,
                        backbone_weights: WeightSpecs = None, lin_weights: WeightSpecs = None,
                        metric_options: Sequence[str] | None = None,
                        trust_plugin: Sequence[str] | str | None = None) -> BenchmarkResult:
    """Score ``metrics`` on every benchmark in ``source`` (a set, or a folder holding several).

    ``compare=(A, B)``: paired bootstrap of A − B on each set (SRCC on correlation sets, 2AFC on
    NIGHTS parts, 2AFC / JND mAP on BAPPS sets and the BAPPS 2AFC mean), resampling the same
    reference images / items for both; interval and p-value from one method (``p < alpha`` iff
    the interval excludes 0). ``metrics`` may hold the preset ``"paper"``; ``metric_options``
    are ``NAME.KEY=VALUE`` options of the metrics' factories (as ``bapps evaluate --metric-option``).
    ``trust_plugin``: the plugin spec(s) a checkpoint among ``metrics`` may import (as for
    :func:`~bapps_toolkit.evaluate.run_evaluation`).
    """
    dev = pick_device(device)
    opt = _Options(dev, int(batch_size), int(n_boot), int(seed), int(nights_size), live_scores)
    specs, preset_options = expand_presets(metrics)
    weights: dict[str, Any] = dict(backbone_weights=backbone_weights, lin_weights=lin_weights,
                                   trust_plugin=trusted_with_metrics(specs, trust_plugin))
    resolved = []
    options = merge_options(preset_options, parse_metric_options(
        list(metric_options or []), [s for s in specs if isinstance(s, str)]))
    for spec in specs:
        opts = options.get(spec) if isinstance(spec, str) else None
        mid, metric = resolve_metric(spec, options=opts, **weights)
        resolved.append((metric.name if spec in preset_options else mid, metric.to(dev).eval()))
    weights["metric_options"] = list(metric_options or [])
    pair = check_compare(compare, [m for m, _ in resolved])
    result = BenchmarkResult(rows=[])
    keep: dict[tuple[str, str], Any] = {}
    for fmt, root in find_benchmarks(source, format):
        if fmt == "bapps":
            _bapps(root, list(metrics), opt, result, keep, weights, pair)
            continue
        bench = get_benchmark(fmt)
        if bench.kind == "2afc":
            _two_afc(bench, root, resolved, opt, result, keep)
        else:
            _correlation(bench, root, resolved, opt, result, keep)
    if pair is not None:
        result.comparisons += _compare(keep, pair[0], pair[1], opt)
    return result


def _compare(keep: dict[tuple[str, str], Any], a: str, b: str, opt: _Options) -> list[ComparisonRow]:
    out = []
    for (mid, key), va in keep.items():
        if mid != a or (b, key) not in keep or key.startswith("bapps/"):
            continue
        vb = keep[(b, key)]
        if isinstance(va, _TwoAFCKept):
            diff, (lo, hi), p = paired_bootstrap(score_2afc, tuple(va), tuple(vb), n_boot=opt.n_boot, seed=opt.seed)
            figure = "2afc"
        else:
            diff, (lo, hi), p = corr.paired_correlation_difference(va[0], vb[0], va[1], va[2], n_boot=opt.n_boot,
                                                                   seed=opt.seed)
            figure = "srcc"
        out.append(ComparisonRow(a=a, b=b, set=key, figure=figure, diff=diff, ci_low=lo, ci_high=hi, p_value=p))
    return out


