"""The failure browser's HTML page: one static document, no inline script or style.

Every text that comes from data (metric labels, set keys, stems, notes) passes through
:func:`html.escape` (``quote=True``) before it reaches the page, in text and in attributes alike;
file names are made from indices only. The page's Content-Security-Policy allows scripts, styles
and images from the page's own folder only (``browser.js``, ``browser.css``, ``img/``), so
nothing is fetched from the network. Filtering values are indices (``m0``, ``s1``), not data.
"""
from __future__ import annotations

import dataclasses
import html
import math

from ...calibration import CalibrationRow
from .select import Disagreement, Selection

__all__ = ["ShownItem", "MetricInfo", "PageData", "render_page", "CSP", "SYNTHETIC_BANNER", "definition_text"]

CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'"
SYNTHETIC_BANNER = ("SYNTHETIC DATA: these sets are simulated (the mini set, or a set marked SYNTHETIC.txt); "
                    "the judge fractions come from a simulated observer, not from people, so the failures "
                    "shown say nothing about the metrics.")


@dataclasses.dataclass(frozen=True)
class ShownItem:
    """One row of the page: the disagreement, its image files and (optionally) its two maps."""

    item: Disagreement
    images: tuple[str, str, str]
    maps: tuple[str, str] | None = None
    map_vmax: float | None = None
    map_caption: str | None = None


@dataclasses.dataclass(frozen=True)
class MetricInfo:
    """A metric's report label and whether it is the published metric."""

    metric: str
    label: str
    calibrated: bool


@dataclasses.dataclass(frozen=True)
class PageData:
    """Everything :func:`render_page` writes."""

    title: str
    metrics: list[MetricInfo]
    #: Set key -> whether it is simulated.
    sets: dict[str, bool]
    selection: Selection
    shown: list[ShownItem]
    #: Pooled calibration rows (one per metric and link).
    calibration: list[CalibrationRow]
    calibration_note: str
    #: File name of the reliability diagrams, or None (then ``figure_note`` says why).
    figure: str | None
    figure_note: str


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _num(v: float | None, fmt: str = ".4g") -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def _v(v: float | None) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else repr(float(v))


def definition_text(selection: Selection) -> str:
    """What the rows are, in one paragraph (plain text)."""
    c = selection.confidence
    return (f"A row is a triplet where a confident majority of raters (judge fraction h >= {c:g} chose p1, or "
            f"h <= {1 - c:g} chose p0) and the metric disagree: the metric's distance to the image the raters "
            f"chose is the larger one (ties are not counted). Rows are ranked by the normalised margin "
            f"|d0 - d1| / s, s = the median nonzero |d0 - d1| of that metric over all its 2AFC items; at most "
            f"{selection.per_group} rows per metric and set. q = the metric's calibrated P(p1 closer) (G of a "
            f"trained checkpoint, else a cross-fitted logistic link on d0 - d1).")


def _banners(data: PageData) -> list[str]:
    out = []
    synthetic = [k for k, v in data.sets.items() if v]
    if synthetic:
        out.append(f'<p class="banner synthetic" id="synthetic-banner">{_e(SYNTHETIC_BANNER)} Sets: '
                   f'{_e(", ".join(synthetic))}.</p>')
    uncal = [m.label for m in data.metrics if not m.calibrated]
    if uncal:
        out.append('<p class="banner uncalibrated" id="uncalibrated-banner">UNCALIBRATED: these metrics are not '
                   'the published ones (for instance a random backbone instead of ImageNet weights): '
                   f'{_e("; ".join(uncal))}.</p>')
    return out


def _badges(info: MetricInfo, synthetic: bool) -> str:
    out = []
    if synthetic:
        out.append('<span class="badge synthetic">SYNTHETIC</span>')
    if not info.calibrated:
        out.append('<span class="badge uncalibrated">UNCALIBRATED</span>')
    return " ".join(out)


def _summary(data: PageData) -> list[str]:
    info = {m.metric: m for m in data.metrics}
    cal = {r.metric: r for r in data.calibration if r.primary}
    rows = ['<table class="summary" id="summary"><thead><tr><th>metric</th><th>set</th><th>items</th>'
            '<th>confident</th><th>disagree</th><th>shown</th></tr></thead><tbody>']
    for g in data.selection.groups:
        m = info.get(g.metric, MetricInfo(g.metric, g.label, True))
        rows.append(f"<tr><td>{_e(m.label)} {_badges(m, data.sets.get(g.key, False))}</td><td>{_e(g.key)}</td>"
                    f"<td>{g.n_items}</td><td>{g.n_confident}</td><td>{g.n_disagree}</td><td>{g.shown}</td></tr>")
    rows.append("</tbody></table>")
    rows.append('<table class="summary" id="calibration-table"><thead><tr><th>metric</th><th>link</th><th>n</th>'
                '<th>log-lik</th><th>ceiling</th><th>Brier</th><th>ECE</th></tr></thead><tbody>')
    for r in data.calibration:
        m = info.get(r.metric, MetricInfo(r.metric, r.label, r.calibrated))
        primary = " (primary)" if cal.get(r.metric) is r else ""
        rows.append(f"<tr><td>{_e(m.label)} {_badges(m, r.synthetic)}</td><td>{_e(r.link)}{primary}</td><td>{r.n}</td>"
                    f"<td>{_num(r.log_lik, '.3f')}</td><td>{_num(r.log_lik_ceiling, '.3f')}</td>"
                    f"<td>{_num(r.brier, '.3f')}</td><td>{_num(r.ece, '.3f')}</td></tr>")
    rows.append("</tbody></table>")
    rows.append(f'<p class="note">{_e(data.calibration_note)}</p>')
    if data.figure is not None:
        rows.append(f'<img class="figure" src="{_e(data.figure)}" alt="reliability diagrams of the calibration">')
    else:
        rows.append(f'<p class="note">{_e(data.figure_note)}</p>')
    return rows


def _filters(data: PageData, metric_ids: dict[str, str], set_ids: dict[str, str]) -> list[str]:
    labels = {m.metric: m.label for m in data.metrics}
    out = ['<form id="filters" class="filters">',
           '<label>metric <select id="f-metric"><option value="">all</option>']
    out += [f'<option value="{i}">{_e(labels.get(m, m))}</option>' for m, i in metric_ids.items()]
    out.append('</select></label> <label>set <select id="f-set"><option value="">all</option>')
    out += [f'<option value="{i}">{_e(k)}</option>' for k, i in set_ids.items()]
    out.append('</select></label> <label>stem or metric contains <input id="f-text" type="search" '
               'autocomplete="off"></label> <output id="count" for="f-metric f-set f-text"></output></form>')
    return out


_HEAD = [("rank", "num", "#"), ("metric", "text", "metric"), ("set", "text", "set"), ("stem", "text", "stem"),
         ("h", "num", "judge fraction h"), ("d0", "num", "d0"), ("d1", "num", "d1"),
         ("margin", "num", "margin (norm.)"), ("q", "num", "q = P(p1 closer)")]


def _figure(src: str, caption: str, cls: str = "patch") -> str:
    return (f'<figure><img class="{cls}" src="{_e(src)}" alt="{_e(caption)}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _row(rank: int, s: ShownItem, label: str, metric_id: str, set_id: str) -> str:
    it = s.item
    chosen, metric_pick = ("p1", "p0") if it.human_choice == 1 else ("p0", "p1")
    caps = {"ref": "ref", chosen: f"{chosen}: raters' choice", metric_pick: f"{metric_pick}: metric's choice"}
    imgs = "".join(_figure(src, caps[name]) for src, name in zip(s.images, ("ref", "p0", "p1"), strict=True))
    if s.maps is not None:
        maps = "".join(_figure(src, f"map d(ref, {n})", "patch map")
                       for src, n in zip(s.maps, ("p0", "p1"), strict=True))
        maps += f'<p class="scale">{_e(s.map_caption or "")}; scale 0 to {_num(s.map_vmax)}</p>'
    else:
        maps = '<p class="scale">no spatial map for this metric</p>'
    text = f"{it.stem} {label}".lower()
    cells = [f'<td data-v="{rank}">{rank}</td>', f"<td>{_e(label)}</td>", f"<td>{_e(it.key)}</td>",
             f'<td class="stem">{_e(it.stem)}</td>',
             f'<td data-v="{_v(it.h)}">{_num(it.h, ".2f")} ({_e(chosen)})</td>',
             f'<td data-v="{_v(it.d0)}">{_num(it.d0)}</td>', f'<td data-v="{_v(it.d1)}">{_num(it.d1)}</td>',
             f'<td data-v="{_v(it.margin)}">{_num(it.margin, ".3g")}</td>',
             f'<td data-v="{_v(it.q)}">{_num(it.q, ".3f")}{"" if it.link is None else " (" + _e(it.link) + ")"}</td>',
             f'<td class="images">{imgs}</td>', f'<td class="maps">{maps}</td>']
    return (f'<tr data-metric="{metric_id}" data-set="{set_id}" data-text="{_e(text)}">' + "".join(cells) + "</tr>")


def _items(data: PageData) -> list[str]:
    labels = {m.metric: m.label for m in data.metrics}
    metric_ids = {m: f"m{i}" for i, m in enumerate(dict.fromkeys(s.item.metric for s in data.shown))}
    set_ids = {k: f"s{i}" for i, k in enumerate(dict.fromkeys(s.item.key for s in data.shown))}
    out = _filters(data, metric_ids, set_ids)
    head = "".join(f'<th data-sort="{kind}" data-col="{col}"><button type="button">{_e(title)}</button></th>'
                   for col, kind, title in _HEAD)
    out.append(f'<table id="items"><thead><tr>{head}<th>ref / p0 / p1</th><th>spatial maps</th></tr></thead><tbody>')
    out += [_row(i + 1, s, labels.get(s.item.metric, s.item.label), metric_ids[s.item.metric], set_ids[s.item.key])
            for i, s in enumerate(data.shown)]
    out.append("</tbody></table>")
    if not data.shown:
        out.append('<p class="note" id="no-items">No disagreement with a confident majority was found.</p>')
    return out


def render_page(data: PageData) -> str:
    """The whole HTML document."""
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f'<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{_e(data.title)}</title>", '<link rel="stylesheet" href="browser.css"></head><body>',
             f"<header><h1>{_e(data.title)}</h1>", *_banners(data),
             f'<p class="note">{_e(definition_text(data.selection))}</p></header>',
             '<section id="overview"><h2>Metrics, sets and calibration</h2>', *_summary(data), "</section>",
             '<section id="disagreements"><h2>Disagreements</h2>', *_items(data), "</section>",
             '<script src="browser.js"></script></body></html>']
    return "\n".join(parts) + "\n"
