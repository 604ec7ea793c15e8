"""Named groups of metrics: ``--metrics paper`` / ``metrics=["paper"]`` (or :data:`PAPER`).

``paper`` — the rows of Table 5 of Zhang et al., "The Unreasonable Effectiveness of Deep
Features as a Perceptual Metric", CVPR 2018, that have a public definition and exist in this
toolkit, computed the way the paper's code computed them:

=====================================  ======================================================
member (evaluated id)                  Table 5 row
=====================================  ======================================================
``l2-lab-official``                    L2 (the official ``--model l2``, Lab default)
``ssim-lab-official``                  SSIM (the official ``--model ssim``, Lab default)
``fsimc``                              FSIMc (Zhang et al. 2011, ``FeatureSIM.m``)
``lpips-{squeeze,alex,vgg}-baseline``  supervised networks, off the shelf (all channels equal)
``lpips-{squeeze,alex,vgg}-v0.0``      LPIPS "lin", the linear layers of the paper's release
                                       (``version='0.0'``: no input scaling layer)
=====================================  ======================================================

Left out (:data:`PAPER_LEFT_OUT`): HDR-VDP (not implemented here); the randomly initialised,
unsupervised (K-means) and self-supervised networks (Watching, Split-Brain, Puzzle, BiGAN), whose
weights the toolkit does not ship or download; the "scratch" and "tune" LPIPS rows, whose
trained weights were not published (``bapps train --variant scratch|tune`` trains new ones,
which are not the paper's).

Caveats: the official off-the-shelf model summed ``1 − cos`` of the unit-normalised taps; the
baseline here sums their squared distance (≈ ``2 (1 − cos)`` where no tap vector is all zero);
not checked against the official code or the paper's numbers. Evaluate with
``--metric-option lpips-alex.version=0.1`` etc. for the current LPIPS release instead.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["PRESETS", "PAPER", "PAPER_LEFT_OUT", "PRESET_DESCRIPTIONS", "expand_presets", "is_preset"]

_V00 = {"version": "0.0"}

#: ``preset name: ((registry name, factory options), ...)``.
PRESETS: dict[str, tuple[tuple[str, dict[str, Any]], ...]] = {
    "paper": (
        ("l2-lab-official", {}), ("ssim-lab-official", {}), ("fsimc", {}),
        ("lpips-squeeze-baseline", {}), ("lpips-alex-baseline", {}), ("lpips-vgg-baseline", {}),
        ("lpips-squeeze", _V00), ("lpips-alex", _V00), ("lpips-vgg", _V00),
    ),
}

#: The registry names of the ``paper`` preset, in Table 5's order.
PAPER: tuple[str, ...] = tuple(name for name, _ in PRESETS["paper"])

#: Table 5 rows the ``paper`` preset leaves out, and why.
PAPER_LEFT_OUT: dict[str, str] = {
    "HDR-VDP": "not implemented in the toolkit",
    "Net (random), Gaussian init": "a random network is not the published one (its weights were not published)",
    "Net (unsupervised), K-means": "weights not shipped or downloaded by the toolkit",
    "Net (self-supervised): Watching, Split-Brain, Puzzle, BiGAN": "weights not shipped or downloaded by the toolkit",
    "LPIPS scratch / tune (Squeeze, Alex, VGG)": "the trained weights were not published",
}

PRESET_DESCRIPTIONS: dict[str, str] = {
    "paper": ("preset for --metrics: the Table 5 rows (Zhang et al. 2018) with public definitions: "
              "l2-lab-official ssim-lab-official fsimc lpips-{squeeze,alex,vgg}-baseline "
              "lpips-{squeeze,alex,vgg} with version=0.0"),
}


def is_preset(spec: Any) -> bool:
    """True for a preset name (``str`` only; case-insensitive)."""
    return isinstance(spec, str) and spec.strip().lower() in PRESETS


def expand_presets(specs: Sequence[Any]) -> tuple[list[Any], dict[str, dict[str, Any]]]:
    """``(specs, preset options)`` with each preset name replaced by its members.

    The options map a member's registry name to the factory options the preset gives it (the
    caller's own options for that name take precedence). A member that is also named by hand
    appears once.
    """
    out: list[Any] = []
    options: dict[str, dict[str, Any]] = {}
    from_preset: set[str] = set()
    for spec in specs:
        if not is_preset(spec):
            if not (isinstance(spec, str) and spec.lower() in from_preset):
                out.append(spec)
            continue
        for name, opts in PRESETS[spec.strip().lower()]:
            if name in from_preset or name in out:
                continue
            out.append(name)
            from_preset.add(name)
            if opts:
                options[name] = dict(opts)
    return out, options


def merge_options(preset: Mapping[str, Mapping[str, Any]],
                  given: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Preset options overridden key by key by the caller's ``given`` options."""
    merged = {name: dict(opts) for name, opts in preset.items()}
    for name, opts in given.items():
        merged.setdefault(name, {}).update(opts)
    return merged
