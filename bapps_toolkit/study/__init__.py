"""The loss study (``bapps loss-study``): one small network per loss, cross-evaluated by every metric.

It trains one small restoration network per loss and cross-evaluates every trained network with
every chosen metric (layer 3: uses core, data, metrics, scores and losses).

>>> from bapps_toolkit.study import LossStudyConfig, run_loss_study
>>> result = run_loss_study(LossStudyConfig(out_dir="study", task="denoise"))   # doctest: +SKIP
>>> print(result.markdown)                                                      # doctest: +SKIP

The names are imported on first use (:mod:`bapps_toolkit._lazy`): ``bapps loss-study --help``
reads :mod:`.config` (torch-free) without importing torch.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names

if TYPE_CHECKING:
    from .config import DEFAULT_EVAL, DEFAULT_LOSSES, TASKS, LossStudyConfig
    from .model import StudyNet, build_model
    from .runner import StudyResult, run_loss_study

#: Public name -> the module it comes from.
_LAZY = {**dict.fromkeys(["DEFAULT_EVAL", "DEFAULT_LOSSES", "TASKS", "LossStudyConfig"], ".config"),
         "StudyNet": ".model", "build_model": ".model", "StudyResult": ".runner", "run_loss_study": ".runner"}

__all__ = ["LossStudyConfig", "run_loss_study", "StudyResult", "StudyNet", "build_model", "TASKS",
           "DEFAULT_LOSSES", "DEFAULT_EVAL"]

__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
