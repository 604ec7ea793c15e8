"""The demo (``bapps demo``): the whole pipeline in a few minutes on a laptop CPU, offline.

1. builds the synthetic mini set (``make-mini``) in ``OUT/mini`` if it is missing, and packs it to
   ``OUT/mini.h5``;
2. scores the pixel and structural metrics (l2, l2-lab, ssim, ssim-lab, ms-ssim, fsim, psnr —
   those registered) and ``lpips-alex`` on every val 2AFC and JND set. LPIPS uses the AlexNet
   backbone given as ``alex=PATH`` or ``alex=random`` (``--backbone-weights``), else torchvision's
   ImageNet weights when they are cached or can be downloaded, otherwise (and only then) a
   random backbone; every line that names a random backbone says UNCALIBRATED, once;
3. trains the LPIPS linear layers briefly (1 + 1 epochs, cached-feature fast path) on the mini
   train sets and scores the trained checkpoint too;
4. prints the Table-5-style table, writes ``OUT/results.csv``, ``OUT/results.md`` and the figure
   ``OUT/results.png`` (when matplotlib is installed; otherwise it says so).

The mini set's judgments come from a simulated observer, not from people: the numbers show that
the pipeline works, not how good the metrics are (the table says so).
"""
from __future__ import annotations

import importlib.util
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from .._io import write_text_atomic
from ..errors import BappsError, WeightsError

if TYPE_CHECKING:
    from ..evaluate import EvaluationResult
    from ..metrics import Metric
    from ..metrics.resolve import WeightSpecs

# The library is imported inside the functions: `bapps demo --help` shows this module's docstring
# without importing torch or pandas (tests/test_cli_imports.py).

DEMO_METRICS = ("l2", "l2-lab", "ssim", "ssim-lab", "ms-ssim", "fsim", "psnr")
DEMO_DATASETS: tuple[str, ...] | None = None  # None: every 2AFC val and JND val set (evaluate's default)
# The random-backbone and uncalibrated-training warnings: the demo prints its own UNCALIBRATED
# lines (and the table labels say it), so only these two are silenced; any other warning shows.
_UNCALIBRATED_WARNINGS = r".*(UNCALIBRATED|not a calibrated LPIPS)"


def _say(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def lpips_backbone(net: str = "alex") -> tuple[str, str]:
    """``(backbone_weights, note)``: the ImageNet file if cached or downloadable, else ``"random"``.

    The fallback happens only on :class:`~bapps_toolkit.errors.WeightsError`.
    """
    from ..metrics import hub

    try:
        path = hub.backbone_weights_file(net, download=True, progress=False)
    except WeightsError as exc:
        first = str(exc).split(". ")[0]
        return "random", (f"ImageNet {net} weights unavailable ({first}); using a RANDOM backbone: "
                          "every lpips-alex number below is UNCALIBRATED")
    return str(path), f"ImageNet {net} weights: {path}"


def demo_backbone(backbone_weights: WeightSpecs = None) -> tuple[str, str]:
    """``(backbone_weights, note)`` of the demo's AlexNet.

    ``["alex=PATH"]`` / ``["alex=random"]`` (or ``{"alex": …}``) are used as given, else
    :func:`lpips_backbone` (ImageNet weights or the fallback).
    """
    from ..metrics.resolve import weight_map

    specs = weight_map(backbone_weights, "backbone_weights", allow_random=True)
    others = sorted(set(specs) - {"alex"})
    if others:
        raise BappsError(f"backbone_weights: the demo uses the alex network only; {', '.join(others)} given")
    if "alex" not in specs:
        return lpips_backbone("alex")
    if specs["alex"] == "random":
        return "random", "alex=random given: a RANDOM backbone, every lpips-alex number below is UNCALIBRATED"
    return str(specs["alex"]), f"alex backbone weights given: {specs['alex']}"


def run_demo(out: str | Path = "bapps_demo", *, seed: int = 0, n_boot: int = 1000, device: str | None = None,
             train_lpips: bool = True, progress: bool = False,
             backbone_weights: WeightSpecs = None) -> EvaluationResult:
    """Run the demo in the folder ``out`` (see the module docstring), print its table, return the evaluation.

    ``backbone_weights``: ``["alex=PATH"]`` or ``["alex=random"]`` (or a ``{"alex": …}`` dict) for
    lpips-alex and the training run; None = :func:`lpips_backbone`.
    """
    from ..evaluate.runner import run_evaluation

    if seed < 0:
        raise BappsError(f"seed must be >= 0, got {seed}")
    t_start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bw, note = demo_backbone(backbone_weights)
    h5 = _mini_set(out, seed, progress)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_UNCALIBRATED_WARNINGS, category=UserWarning)
        _say(note)
        specs, tag = _metrics(bw)
        if train_lpips:
            specs.append(_train(out, h5, bw, tag, seed=seed, device=device, progress=progress))
        _say(f"evaluating {len(specs)} metrics on the val 2AFC and JND sets of {h5}")
        t0 = time.perf_counter()
        result = run_evaluation(h5, specs, datasets=list(DEMO_DATASETS) if DEMO_DATASETS else None,
                                device=device, n_boot=n_boot, seed=seed, progress=progress)
    _say(f"evaluated in {time.perf_counter() - t0:.1f} s")
    _report(out, result)
    _say(f"done in {time.perf_counter() - t_start:.1f} s")
    return result


def _mini_set(out: Path, seed: int, progress: bool) -> Path:
    """The mini set in ``out/mini`` (built if missing) and its packed file (re-packed on a new seed)."""
    from ..data import make_mini, pack

    mini, h5 = out / "mini", out / "mini.h5"
    stamp = out / "mini.h5.seed"
    _say(f"mini set (synthetic, seed {seed}) in {mini}")
    make_mini(mini, seed=seed, progress=progress)
    if not h5.exists() or not stamp.exists() or stamp.read_text().strip() != str(seed):
        _say(f"packing {mini} -> {h5}")
        pack(mini, h5, force=True, progress=progress)
        write_text_atomic(stamp, f"{seed}\n")
    else:
        _say(f"using the packed file {h5}")
    return h5


def _metrics(bw: str) -> tuple[list[str | Metric], str]:
    """The registered demo metrics and lpips-alex on backbone ``bw``, and that backbone's tag.

    The tag is UNCALIBRATED for the training line, empty when calibrated.
    """
    from ..metrics import list_metrics
    from ..metrics.resolve import resolve_metric

    known = set(list_metrics())
    names = [m for m in DEMO_METRICS if m in known]
    missing = [m for m in DEMO_METRICS if m not in known]
    if missing:
        _say(f"not registered in this build, skipped: {', '.join(missing)}")
    specs: list[str | Metric] = list(names)
    tag = "  [UNCALIBRATED: random backbone]" if bw == "random" else ""
    if "lpips-alex" in known:
        _, lp = resolve_metric("lpips-alex", backbone_weights={"alex": bw})
        specs.append(lp)
        _say(f"metric: {lp.label}")
        tag = "" if lp.calibrated else f"  [UNCALIBRATED: {lp.calibration_note}]"
    return specs, tag


def _train(out: Path, h5: Path, bw: str, tag: str, *, seed: int, device: str | None, progress: bool) -> str:
    """Train the lpips-alex linear layers briefly on backbone ``bw``; the checkpoint to evaluate."""
    from ..metrics.resolve import metric_label, resolve_metric
    from ..train import TrainConfig, train

    run_dir = out / "alex-lin"
    _say(f"training lpips-alex lin for 1 + 1 epochs on the mini train sets -> {run_dir}{tag}")
    t0 = time.perf_counter()
    res = train(TrainConfig(data=str(h5), net="alex", variant="lin", out=str(run_dir),
                            backbone_weights=bw, epochs=1, decay_epochs=1, seed=seed,
                            fast=True, progress=progress, overwrite=True, device=device))
    mid, trained = resolve_metric(str(res.checkpoint_path))
    _say(f"trained in {time.perf_counter() - t0:.1f} s: {metric_label(mid, trained)}")
    return str(res.checkpoint_path)


def _report(out: Path, result: EvaluationResult) -> None:
    from .plots import save_evaluation_plot
    from .tables import to_markdown, write_reports

    table = result.table
    write_reports(table, csv=out / "results.csv", markdown=out / "results.md")
    print()
    print(to_markdown(table, title="bapps demo"))
    if importlib.util.find_spec("matplotlib") is not None:
        save_evaluation_plot(result, out / "results.png", title="bapps demo")
        _say(f"figure: {out / 'results.png'}")
    else:
        _say("matplotlib is not installed: no figure (pip install 'bapps-toolkit[plot]')")
    _say(f"tables: {out / 'results.csv'}, {out / 'results.md'}")
    if not bool(table.calibrated.all()):
        for label in sorted(set(table.label[~table.calibrated])):  # the label carries the tag
            _say(f"not the published metric: {label}")


__all__ = ["run_demo", "lpips_backbone", "demo_backbone", "DEMO_METRICS", "DEMO_DATASETS"]
