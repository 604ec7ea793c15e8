"""Calibration of 2AFC predictors ``q = P(p1 closer)`` against the judge fractions. numpy only.

:mod:`.stats` has the log-likelihood, Brier score and ECE of ``q``, the cross-fitted logistic
link and the ranking net G; :mod:`.records` has the typed records an evaluation stores.
"""
from .records import (
    LINK_G,
    LINK_LOGISTIC,
    POOLED_CATEGORY,
    POOLED_SPLIT,
    CalibrationResult,
    CalibrationRow,
    ItemProbabilities,
    link_description,
)
from .stats import (
    EPS,
    N_BINS,
    N_FOLDS,
    CalibrationScores,
    CrossFit,
    LogisticLink,
    ReliabilityBins,
    brier_score,
    calibration_scores,
    cross_fit_logistic,
    expected_calibration_error,
    fit_logistic,
    fold_of_groups,
    log_likelihood,
    log_likelihood_ceiling,
    ranking_net_probability,
    reliability_bins,
)

__all__ = [
    "EPS", "N_BINS", "N_FOLDS", "ReliabilityBins", "CalibrationScores", "LogisticLink", "CrossFit",
    "log_likelihood", "log_likelihood_ceiling", "brier_score", "expected_calibration_error", "reliability_bins",
    "calibration_scores", "fit_logistic", "cross_fit_logistic", "fold_of_groups", "ranking_net_probability",
    "LINK_G", "LINK_LOGISTIC", "POOLED_SPLIT", "POOLED_CATEGORY", "CalibrationRow", "ItemProbabilities",
    "CalibrationResult", "link_description",
]
