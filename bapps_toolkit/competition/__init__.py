"""Metric competitions: MAD and gMAD sets for the judging app, and their verdicts.

* :mod:`.mad` / :mod:`.mad_run` — maximum differentiation (MAD, Wang & Simoncelli, *Journal of
  Vision* 2008): hold one metric, push the other to its minimum and maximum;
  :func:`run_mad` writes the pairs as an unjudged 2AFC set in the BAPPS layout.
* :mod:`.gmad` — group MAD (gMAD, Ma et al., IEEE TPAMI 2020): for each ordered pair of metrics
  and quality level of the defender, the pair of a pool's images that the defender scores
  (nearly) equal and the attacker farthest apart; :func:`run_gmad` writes the same kind of set.
* :mod:`.records` — the manifest (``competition.json`` / ``.csv``) that says per item which
  metric was held and which pushed, and which side each prefers.
* :mod:`.verdict` — from the human judgments of such a set: per metric pair the metric people
  sided with, its share with a bootstrap interval and test; gMAD's aggressiveness and
  resistance matrices. Reading a judged folder or a study database is
  :func:`bapps_toolkit.report.competition.competition_report`.

The names are imported on first use, so ``bapps mad --help`` imports no torch.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names

if TYPE_CHECKING:
    from .gmad import GmadConfig, GmadRun, run_gmad
    from .mad import MadSettings, push
    from .mad_run import MadConfig, MadRun, run_mad
    from .records import CompetitionItem, Manifest, read_manifest
    from .verdict import Verdict, verdict

_LAZY = {
    "GmadConfig": ".gmad", "GmadRun": ".gmad", "run_gmad": ".gmad",
    "MadSettings": ".mad", "push": ".mad",
    "MadConfig": ".mad_run", "MadRun": ".mad_run", "run_mad": ".mad_run",
    "CompetitionItem": ".records", "Manifest": ".records", "read_manifest": ".records",
    "Verdict": ".verdict", "verdict": ".verdict",
}

__all__ = ["CompetitionItem", "GmadConfig", "GmadRun", "MadConfig", "MadRun", "MadSettings", "Manifest",
           "Verdict", "push", "read_manifest", "run_gmad", "run_mad", "verdict"]

__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
