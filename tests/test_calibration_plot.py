"""The reliability diagram: the points drawn are the hand-computed bins, the counts below them,
and a figure of synthetic sets or UNCALIBRATED metrics says so."""
from __future__ import annotations

import math

import numpy as np
import pytest

from bapps_toolkit.calibration import (
    LINK_LOGISTIC,
    POOLED_CATEGORY,
    POOLED_SPLIT,
    CalibrationResult,
    CalibrationRow,
    calibration_scores,
    reliability_bins,
)

pytest.importorskip("matplotlib")

Q = [0.9, 0.92, 0.3, 0.65, 0.05]
H = [1.0, 0.6, 0.2, 0.4, 0.0]


def _row(metric: str = "l2", *, synthetic: bool = True, calibrated: bool = True,
         category: str = POOLED_CATEGORY) -> CalibrationRow:
    s = calibration_scores(Q, H)
    return CalibrationRow(metric=metric, label=metric if calibrated else f"{metric} [UNCALIBRATED: random backbone]",
                          link=LINK_LOGISTIC, primary=True, split=POOLED_SPLIT, category=category, n=s.n,
                          log_lik=s.log_lik, brier=s.brier, ece=s.ece, log_lik_ceiling=0.0, calibrated=calibrated,
                          synthetic=synthetic, bins=reliability_bins(Q, H))


def test_points_and_counts_are_the_hand_computed_bins():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bapps_toolkit.report.calibration_plot import plot_reliability

    fig, (ax, counts) = plt.subplots(2)
    try:
        plot_reliability([_row()], ax, counts)
        diagonal, curve = ax.get_lines()
        assert list(diagonal.get_xdata()) == [0, 1] and list(diagonal.get_ydata()) == [0, 1]
        # bins 0, 3, 6 and 9 hold items: (q, h) = (.05, 0), (.3, .2), (.65, .4), (.91, .8)
        np.testing.assert_allclose(curve.get_xdata(), [0.05, 0.3, 0.65, 0.91])
        np.testing.assert_allclose(curve.get_ydata(), [0.0, 0.2, 0.4, 0.8])
        assert "ECE 0.124" in curve.get_label() and "Brier 0.037" in curve.get_label()
        heights = [p.get_height() for p in counts.patches]
        assert heights == [1, 0, 0, 1, 0, 0, 1, 0, 0, 2]
        assert [p.get_x() for p in counts.patches] == pytest.approx([i / 10 for i in range(10)])
    finally:
        plt.close(fig)


def test_figure_file_and_its_labels(tmp_path):
    from PIL import Image

    from bapps_toolkit.report.calibration_plot import figure_title, save_calibration_plot

    cal = CalibrationResult(rows=[_row(), _row("lpips-alex", calibrated=False), _row(category="cnn")], items=[],
                            folds=5, seed=0)
    title = figure_title(cal)
    assert title.startswith("SYNTHETIC DATA") and "UNCALIBRATED" in title
    real = CalibrationResult(rows=[_row(synthetic=False)], items=[], folds=5, seed=0)
    assert "SYNTHETIC" not in figure_title(real) and "UNCALIBRATED" not in figure_title(real)
    out = save_calibration_plot(cal, tmp_path / "cal.png")
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] > im.size[1]  # two metric columns side by side
    assert [p.name for p in tmp_path.iterdir()] == ["cal.png"]
    with pytest.raises(ValueError, match="PNG"):
        save_calibration_plot(cal, tmp_path / "cal.jpg")
    with pytest.raises(ValueError, match="no calibration rows"):
        save_calibration_plot(CalibrationResult(rows=[_row(category="cnn")], items=[], folds=5, seed=0),
                              tmp_path / "none.png")
    assert not math.isnan(cal.rows[0].ece)
