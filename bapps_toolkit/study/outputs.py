"""Files a loss study writes (all atomically): the matrix, the image grid and an unjudged 2AFC set.

They are ``matrix.{md,tex,csv,json}``, ``grid.png`` and the unjudged BAPPS-layout 2AFC set
``2afc/val/<task>/{ref,p0,p1}/<stem>.png`` with ``afc_manifest.{csv,json}`` saying which loss made
p0 and p1 of each item.

2AFC items: for every test crop and every pair of trained losses, ref = the clean crop and
p0 / p1 = the two networks' outputs, their order drawn by a seeded coin per item (so no loss
sits always in p0). There is no ``judge`` folder: the set waits for human judgments.
"""
from __future__ import annotations

import csv
import io
import itertools
import json
import os
import shutil
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .._io import atomic_path, csv_cell, csv_row, temp_name_for, write_text_atomic
from .curves import curves_panel
from .records import StudyMatrix

if TYPE_CHECKING:
    from .config import LossStudyConfig
    from .tasks import StudyData

GRID_SCALE = 2


def _cell(m: float, lo: float, hi: float) -> str:
    return f"{m:.4g} [{lo:.4g}, {hi:.4g}]"


def matrix_markdown(mx: StudyMatrix) -> str:
    """The matrix as a Markdown table (mean and interval per cell), note and convergence lines."""
    head = "| training loss | " + " | ".join(mx["cols"]) + " |"
    sep = "|" + "---|" * (len(mx["cols"]) + 1)
    lines = [f"**{mx['note']}**", "", head, sep]
    for i, row in enumerate(mx["rows"]):
        cells = [_cell(mx["mean"][i][j], mx["ci_low"][i][j], mx["ci_high"][i][j]) for j in range(len(mx["cols"]))]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    if mx.get("convergence"):
        lines += ["", "Convergence (training curves in grid.png; rule in bapps_toolkit.study.convergence):", ""]
        lines += [f"- {c['text']}" for c in mx["convergence"]]
    return "\n".join(lines) + "\n"


def _tex(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                 ("$", r"\$"), ("{", r"\{"), ("}", r"\}")):
        s = s.replace(a, b) if a != "\\" else s.replace(a, "\x00")
    return s.replace("\x00", r"\textbackslash{}")


def matrix_latex(mx: StudyMatrix) -> str:
    """The matrix as a LaTeX ``tabular`` (mean and interval per cell), the note as a comment."""
    cols = "l" + "c" * len(mx["cols"])
    lines = [f"% {mx['note']}", r"\begin{tabular}{" + cols + "}", r"\hline",
             "training loss & " + " & ".join(_tex(c) for c in mx["cols"]) + r" \\", r"\hline"]
    for i, row in enumerate(mx["rows"]):
        cells = [f"{mx['mean'][i][j]:.4g} [{mx['ci_low'][i][j]:.4g}, {mx['ci_high'][i][j]:.4g}]"
                 for j in range(len(mx["cols"]))]
        lines.append(_tex(row) + " & " + " & ".join(cells) + r" \\")
    lines += [r"\hline", r"\end{tabular}", ""]
    return "\n".join(lines)


def matrix_csv(mx: StudyMatrix) -> str:
    """The matrix as CSV: the note as a comment row, then one row per training loss and metric."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["# " + mx["note"]])
    w.writerow(["training_loss", "eval_metric", "mean", "ci_low", "ci_high"])
    for i, row in enumerate(mx["rows"]):
        for j, col in enumerate(mx["cols"]):
            w.writerow(csv_row([row, col, repr(mx["mean"][i][j]), repr(mx["ci_low"][i][j]),
                                repr(mx["ci_high"][i][j])]))
    return buf.getvalue()


def to_uint8_hwc(x: torch.Tensor) -> np.ndarray:
    """[3, H, W] float on [0, 1] → uint8 [H, W, 3]."""
    return np.round(x.clamp(0, 1).permute(1, 2, 0).numpy() * 255.0).astype(np.uint8)


def grid_png(path: Path, columns: list[tuple[str, torch.Tensor]], picks: list[int], note: str,
             curves: Mapping[str, Sequence[Sequence[float]]] | None = None) -> None:
    """The study's figure: the image grid, the note and the training curves.

    Args:
        path: the PNG file to write (atomically).
        columns: ``(title, images [N, 3, s, s])`` per column; one row per test crop in ``picks``.
        picks: the test crops shown.
        note: the study's note, written under the grid.
        curves: each loss's training curve, drawn under the note (:mod:`.curves`).
    """
    font = ImageFont.load_default()
    s = columns[0][1].shape[-1] * GRID_SCALE
    pad, head = 4, 28
    width = len(columns) * (s + pad) + pad
    note_lines = textwrap.wrap(note, max(20, width // 6), break_long_words=True)
    height = head + len(picks) * (s + pad) + pad + 12 * len(note_lines) + pad
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for c, (title, imgs) in enumerate(columns):
        x0 = pad + c * (s + pad)
        words = title if len(title) <= s // 6 else title[: s // 6 - 1] + "…"
        draw.text((x0, 2), words, fill=(0, 0, 0), font=font)
        if len(title) > s // 6:
            draw.text((x0, 14), title[s // 6 - 1: 2 * (s // 6) - 2], fill=(0, 0, 0), font=font)
        for r, k in enumerate(picks):
            tile = Image.fromarray(to_uint8_hwc(imgs[k])).resize((s, s), Image.Resampling.NEAREST)
            canvas.paste(tile, (x0, head + r * (s + pad)))
    y = head + len(picks) * (s + pad) + pad
    for line in note_lines:
        draw.text((pad, y), line, fill=(120, 0, 0), font=font)
        y += 12
    if curves:
        panel = curves_panel(curves, width)
        figure = Image.new("RGB", (max(width, panel.width), height + panel.height), (255, 255, 255))
        figure.paste(canvas, (0, 0))
        figure.paste(panel, (0, height))
        canvas = figure
    with atomic_path(path) as tmp:
        canvas.save(tmp, format="PNG")


def write_afc_set(out: Path, task: str, clean: torch.Tensor, outputs: dict[str, torch.Tensor],
                  where: Sequence[tuple[str, int, int]], seed: int,
                  note: str) -> tuple[Path, Path]:
    """The unjudged 2AFC set (see the module docstring) built in a temporary folder, then renamed."""
    final = out / "2afc" / "val" / task
    tmp = temp_name_for(final)
    rng = np.random.default_rng([seed, 7])
    rows = []
    for sub in ("ref", "p0", "p1"):
        (tmp / sub).mkdir(parents=True)
    k = 0
    for i in range(clean.shape[0]):
        for a, b in itertools.combinations(list(outputs), 2):
            if rng.random() < 0.5:
                a, b = b, a
            stem = f"{k:06d}"
            for sub, img in (("ref", clean[i]), ("p0", outputs[a][i]), ("p1", outputs[b][i])):
                Image.fromarray(to_uint8_hwc(img)).save(tmp / sub / f"{stem}.png", format="PNG")
            rows.append({"stem": stem, "image": where[i][0], "top": where[i][1], "left": where[i][2],
                         "p0_loss": a, "p1_loss": b})
            k += 1
    if final.exists():
        shutil.rmtree(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, final)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["stem"], lineterminator="\n")
    w.writeheader()
    w.writerows({k: csv_cell(v) for k, v in r.items()} for r in rows)
    csv_path, json_path = out / "afc_manifest.csv", out / "afc_manifest.json"
    write_text_atomic(csv_path, buf.getvalue())
    write_text_atomic(json_path, json.dumps({"note": note + " No human judgments yet (no judge/ folder).",
                                             "set": f"2afc/val/{task}", "items": rows}, indent=1))
    return csv_path, final


def write_outputs(cfg: LossStudyConfig, mx: StudyMatrix, data: StudyData,
                  outputs: dict[str, torch.Tensor]) -> tuple[dict[str, Path], str]:
    """Write the matrix (Markdown, LaTeX, CSV, JSON), the figure and the unjudged 2AFC set.

    Args:
        cfg: the study's settings.
        mx: the matrix document.
        data: the study's patches and crops.
        outputs: each loss's restored test crops.

    Returns:
        ``(paths written, the Markdown report)``.
    """
    out = cfg.out
    md = matrix_markdown(mx)
    paths = {"markdown": out / "matrix.md", "latex": out / "matrix.tex", "csv": out / "matrix.csv",
             "json": out / "matrix.json", "grid": out / "grid.png"}
    write_text_atomic(paths["markdown"], md)
    write_text_atomic(paths["latex"], matrix_latex(mx))
    write_text_atomic(paths["csv"], matrix_csv(mx))
    write_text_atomic(paths["json"], json.dumps(mx, indent=1))
    n = data.test_out.shape[0]
    picks = sorted({int(round(v)) for v in np.linspace(0, n - 1, max(1, min(cfg.grid_crops, n)))})
    columns = [("input", data.test_in)] + [(s, o) for s, o in outputs.items()]
    columns.append(("target", data.test_out))
    grid_png(paths["grid"], columns, picks, mx["note"], mx.get("training_history"))
    paths["afc_manifest"], paths["afc_set"] = write_afc_set(out, cfg.task, data.test_out, outputs,
                                                           data.test_where, cfg.seed, mx["note"])
    return paths, md
