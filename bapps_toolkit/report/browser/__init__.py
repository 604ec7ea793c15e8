"""The failure browser: a static HTML report of where each metric and confident raters disagree.

:func:`write_browser` (what ``bapps evaluate … --browse DIR`` calls) writes a folder that opens
from the file system in any browser, with no server and no network: per metric and 2AFC set the
items where a confident majority of raters chose one image and the metric the other
(:mod:`.select` has the definitions), with the three images, the judge fraction, the distances,
the calibrated probability and, for metrics with a map (LPIPS, SSIM, L2), the spatial distance
maps (:mod:`.images`); sortable and filterable (:mod:`.page`, ``assets/browser.js``). Results on
synthetic sets or UNCALIBRATED metrics say so at the top of the page and per metric.
"""
from .select import DEFAULT_CONFIDENCE, DEFAULT_PER_GROUP, Disagreement, GroupSummary, Selection, select_disagreements
from .write import MARKER, check_browser_dir, write_browser

__all__ = ["write_browser", "check_browser_dir", "select_disagreements", "Disagreement", "GroupSummary", "Selection",
           "MARKER", "DEFAULT_CONFIDENCE", "DEFAULT_PER_GROUP"]
