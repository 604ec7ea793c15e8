"""The grid figure of a MAD competition (needs the ``plot`` extra: matplotlib).

One row per reference (the first ``rows``), columns: the reference, the start image, then for
each half the image with the pushed metric at its minimum and at its maximum. Each synthesised
image is titled with both metrics' distances to the reference and the held metric's drift; the
figure's title names the two metrics by their labels (so an UNCALIBRATED metric says so). The
images are read back from the written set (the manifest's keys and stems are checked names).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .._io import PathLike
from .._plot import pyplot, save_figure
from ..data.images import read_rgb
from .output import STATE
from .records import CompetitionItem, Manifest


def _sides(it: CompetitionItem) -> tuple[str, str]:
    """``(side of the pushed metric's minimum, side of its maximum)``."""
    lo = it.pushed_prefers
    return lo, ("p1" if lo == "p0" else "p0")


def _short(name: str, man: Manifest) -> str:
    """A metric's name for a panel, cut to 18 characters; ``*`` marks an UNCALIBRATED metric."""
    text = name if len(name) <= 18 else "…" + name[-17:]
    return text + ("*" if man.label(name) in man.uncalibrated else "")


def _title(it: CompetitionItem, side: str, man: Manifest) -> str:
    k = 0 if side == "p0" else 1
    drift = 100.0 * it.held_drift[k]
    return (f"{_short(it.pushed, man)}={it.values[it.pushed][k]:.4g}\n"
            f"{_short(it.held, man)}={it.values[it.held][k]:.4g} ({drift:+.2f}%)")


def mad_grid(root: PathLike, manifest: Manifest, path: PathLike, *, rows: int = 6) -> Path:
    """Draw the grid of the MAD set in ``root`` described by ``manifest`` into ``path`` (PNG)."""
    plt = pyplot()
    root = Path(root)
    by_source: dict[str, list[CompetitionItem]] = {}
    for it in manifest.items:
        by_source.setdefault(it.source, []).append(it)
    sources = list(by_source)[:rows]
    fig, axes = plt.subplots(len(sources), 6, figsize=(13.0, 2.75 * len(sources)), squeeze=False)
    for r, src in enumerate(sources):
        items = sorted(by_source[src], key=lambda i: i.stem)
        first = items[0]
        panels: list[tuple[np.ndarray, str]] = [(read_rgb(root / first.key / "ref" / f"{first.stem}.png"), src)]
        start = root / STATE / "start" / f"{first.stem}.png"
        panels.append((read_rgb(start), "start") if start.is_file() else (np.zeros((8, 8, 3), np.uint8), "start"))
        for it in items[:2]:
            for side in _sides(it):
                panels.append((read_rgb(root / it.key / side / f"{it.stem}.png"), _title(it, side, manifest)))
        for c, ax in enumerate(axes[r]):
            ax.axis("off")
            if c < len(panels):
                ax.imshow(panels[c][0])
                ax.set_title(panels[c][1], fontsize=6.5)
    labels = [m["label"] for m in manifest.metrics]
    a, b = (_short(m["name"], manifest) for m in manifest.metrics)
    star = "; * = UNCALIBRATED (not the published metric)" if manifest.uncalibrated else ""
    fig.suptitle(f"MAD: {labels[0]} vs {labels[1]}\ncolumns: reference, start, [{a} held] {b} min, {b} max, "
                 f"[{b} held] {a} min, {a} max; held metric's drift in brackets{star}", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)


__all__ = ["mad_grid"]
