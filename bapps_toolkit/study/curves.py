"""The training curves of a loss study, drawn as small plots under the image grid.

One plot per loss (each on its own scale: losses are in different units): the mean training
loss between checkpoints against the step, with the first and last values written beside it.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from PIL import Image, ImageDraw, ImageFont

#: Size of one plot in pixels (width, height), its margin and its title line.
PLOT_SIZE = (168, 96)
MARGIN = 6
TITLE = 14


def _plot(draw: ImageDraw.ImageDraw, x0: int, y0: int, title: str, curve: Sequence[Sequence[float]]) -> None:
    font = ImageFont.load_default()
    w, h = PLOT_SIZE
    draw.text((x0, y0), title[: w // 6], fill=(0, 0, 0), font=font)
    top, bottom = y0 + TITLE, y0 + TITLE + h
    draw.rectangle((x0, top, x0 + w, bottom), outline=(160, 160, 160))
    if not curve:
        draw.text((x0 + 4, top + 4), "no curve", fill=(120, 0, 0), font=font)
        return
    steps = [float(p[0]) for p in curve]
    values = [float(p[1]) for p in curve]
    lo, hi = min(values), max(values)
    span_v, span_s = (hi - lo) or 1.0, (steps[-1] - steps[0]) or 1.0
    pts = [(x0 + 2 + (w - 4) * (s - steps[0]) / span_s, bottom - 12 - (h - 16) * (v - lo) / span_v)
           for s, v in zip(steps, values, strict=True)]
    if len(pts) > 1:
        draw.line(pts, fill=(0, 70, 160), width=1)
    for px, py in pts:
        draw.point((px, py), fill=(0, 0, 0))
    draw.text((x0 + 3, bottom - 11), f"{values[0]:.3g} -> {values[-1]:.3g}, step {int(steps[-1])}",
              fill=(60, 60, 60), font=font)


def curves_panel(curves: Mapping[str, Sequence[Sequence[float]]], width: int) -> Image.Image:
    """A white panel with one small plot per training curve, wrapped to ``width`` pixels.

    Args:
        curves: each loss's ``[step, mean training loss]`` points.
        width: the panel's width in pixels (at least one plot wide).

    Returns:
        The panel (RGB).
    """
    w, h = PLOT_SIZE
    per_row = max(1, (width - MARGIN) // (w + MARGIN))
    rows = max(1, -(-len(curves) // per_row))
    panel = Image.new("RGB", (max(width, w + 2 * MARGIN), TITLE + rows * (h + TITLE + MARGIN) + MARGIN),
                      (255, 255, 255))
    draw = ImageDraw.Draw(panel)
    draw.text((MARGIN, 2), "training curves (mean loss between checkpoints)", fill=(0, 0, 0),
              font=ImageFont.load_default())
    for k, (name, curve) in enumerate(curves.items()):
        r, c = divmod(k, per_row)
        _plot(draw, MARGIN + c * (w + MARGIN), TITLE + r * (h + TITLE + MARGIN), name, curve)
    return panel


__all__ = ["PLOT_SIZE", "curves_panel"]
