"""The loss study (``bapps loss-study``): train one small restoration network per loss and
cross-evaluate every trained network with every chosen metric (layer 3: uses core, data,
metrics, scores and losses).

>>> from bapps_toolkit.study import LossStudyConfig, run_loss_study
>>> result = run_loss_study(LossStudyConfig(out_dir="study", task="denoise"))   # doctest: +SKIP
>>> print(result.markdown)                                                      # doctest: +SKIP
"""
from .config import DEFAULT_EVAL, DEFAULT_LOSSES, TASKS, LossStudyConfig
from .model import StudyNet, build_model
from .runner import StudyResult, run_loss_study

__all__ = ["LossStudyConfig", "run_loss_study", "StudyResult", "StudyNet", "build_model", "TASKS",
           "DEFAULT_LOSSES", "DEFAULT_EVAL"]
