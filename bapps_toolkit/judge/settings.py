"""The settings of a judgment study: their defaults and their validation.

Settings are fixed when a study database is created (:func:`~bapps_toolkit.judge.store.create_study`)
and stored in its ``config`` table. A study made before a setting existed reads its default.

Groups of settings:

* trials and assignment: ``judgments_per_item`` (balanced: the raters wanted per item; adaptive:
  the most an item gets), ``items_per_rater``, ``sentinel_share``, ``seed``, ``reassign_after_s``,
  ``assignment`` (``balanced`` or ``adaptive``) and, for ``adaptive`` (:mod:`.assign`),
  ``target_width``, ``credible_level``, ``prior`` and ``disagreement_weight``;
* the page: ``break_every``, ``display_px``, ``scaling``, ``jnd_*_ms``, ``instructions``;
* a crowd platform (:mod:`.platform`): ``platform`` (``none``, ``generic`` or ``prolific``),
  ``completion_code``, ``completion_url``, ``redirect_after_s``, and the screening of raters by
  their sentinels: ``min_sentinel_accuracy``, ``min_sentinel_failures``, ``screen_out``
  (``code``: a second completion code; ``return``: no code, the rater is asked to return the
  submission) and ``screened_code``.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, TypedDict, cast

from ..errors import DataError, UsageError

#: Completion codes: what the platforms accept (letters and digits, as Prolific's codes).
CODE_RE = re.compile(r"[A-Za-z0-9]{4,32}")
PLATFORMS = ("none", "generic", "prolific")
#: Where a Prolific participant is sent on completion (docs.prolific.com, "Reviewing submissions and rewards").
PROLIFIC_COMPLETION_URL = "https://app.prolific.com/submissions/complete?cc={code}"

#: Longest instructions text a study may hold (characters).
MAX_INSTRUCTIONS = 20_000


class StudyConfig(TypedDict):
    """Every setting of a study, checked (:func:`validate_config`); see the module for their meaning."""

    judgments_per_item: int
    items_per_rater: int
    sentinel_share: float
    seed: int
    break_every: int
    display_px: int
    scaling: str
    reassign_after_s: float
    jnd_ref_ms: int
    jnd_blank_ms: int
    jnd_dist_ms: int
    instructions: str
    assignment: str
    target_width: float
    credible_level: float
    prior: list[float]
    disagreement_weight: float
    platform: str
    completion_code: str | None
    completion_url: str | None
    redirect_after_s: int
    min_sentinel_accuracy: float | None
    min_sentinel_failures: int
    screen_out: str
    screened_code: str | None


DEFAULTS: StudyConfig = {
    "judgments_per_item": 5, "items_per_rater": 0, "sentinel_share": 0.1, "seed": 0,
    "break_every": 50, "display_px": 256, "scaling": "nearest", "reassign_after_s": 900,
    "jnd_ref_ms": 1000, "jnd_blank_ms": 250, "jnd_dist_ms": 1000,
    "instructions": ("2AFC: which of the two images (left or right) is more similar to the middle "
                     "reference? Keys: A or Left arrow = left, L or Right arrow = right.\n"
                     "JND: an image is shown for a second, then a blank, then a second image. "
                     "Were they the same? Keys: S = same, D = different."),
    "assignment": "balanced", "target_width": 0.3, "credible_level": 0.9, "prior": [1.0, 1.0],
    "disagreement_weight": 1.0,
    "platform": "none", "completion_code": None, "completion_url": None, "redirect_after_s": 5,
    "min_sentinel_accuracy": None, "min_sentinel_failures": 2, "screen_out": "code", "screened_code": None,
}


def _number(v: object) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float)) and v == v


def _check_trials(out: StudyConfig) -> None:
    for k in ("judgments_per_item", "break_every", "display_px", "jnd_ref_ms", "jnd_blank_ms", "jnd_dist_ms"):
        if isinstance(out[k], bool) or not isinstance(out[k], int) or out[k] < 1:
            raise UsageError(f"{k} must be a positive integer, got {out[k]!r}")
    if isinstance(out["items_per_rater"], bool) or not isinstance(out["items_per_rater"], int) \
            or out["items_per_rater"] < 0:
        raise UsageError(f"items_per_rater must be >= 0 (0 = every item), got {out['items_per_rater']!r}")
    if not _number(out["sentinel_share"]) or not 0.0 <= float(out["sentinel_share"]) < 0.5:
        raise UsageError(f"sentinel_share must be in [0, 0.5), got {out['sentinel_share']!r}")
    r = out["reassign_after_s"]
    if not _number(r) or not 0 <= r < 1e9:
        raise UsageError(f"reassign_after_s must be seconds >= 0 (0 = never reassign), got {r!r}")
    if out["scaling"] not in ("nearest", "bilinear"):
        raise UsageError(f"scaling must be 'nearest' or 'bilinear', got {out['scaling']!r}")
    seed = out["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or not -2**63 <= seed < 2**63:
        raise UsageError(f"seed must be an integer in [-2^63, 2^63), got {str(seed)[:40]!r}")
    text = out["instructions"]
    if not isinstance(text, str) or len(text) > MAX_INSTRUCTIONS:
        raise UsageError(f"instructions must be text of at most {MAX_INSTRUCTIONS} characters, got "
                         f"{type(text).__name__} {str(text)[:40]!r}")


def _check_adaptive(out: StudyConfig) -> None:
    if out["assignment"] not in ("balanced", "adaptive"):
        raise UsageError(f"assignment must be 'balanced' or 'adaptive', got {out['assignment']!r}")
    if not _number(out["target_width"]) or not 0.0 < out["target_width"] < 1.0:
        raise UsageError(f"target_width must be in (0, 1), got {out['target_width']!r}")
    if not _number(out["credible_level"]) or not 0.5 <= out["credible_level"] < 1.0:
        raise UsageError(f"credible_level must be in [0.5, 1), got {out['credible_level']!r}")
    prior = out["prior"]
    if not isinstance(prior, (list, tuple)) or len(prior) != 2 or \
            not all(_number(v) and 0.0 < v <= 1000.0 for v in prior):
        raise UsageError(f"prior must be two numbers a, b in (0, 1000] (Beta(a, b)), got {prior!r}")
    out["prior"] = [float(prior[0]), float(prior[1])]
    w = out["disagreement_weight"]
    if not _number(w) or not 0.0 <= w <= 100.0:
        raise UsageError(f"disagreement_weight must be in [0, 100], got {w!r}")


def _check_code(name: str, code: object) -> None:
    if code is not None and (not isinstance(code, str) or CODE_RE.fullmatch(code) is None):
        raise UsageError(f"{name} must be 4-32 letters and digits, got {code!r}")


def _check_platform(out: StudyConfig) -> None:
    if out["platform"] not in PLATFORMS:
        raise UsageError(f"platform must be one of {', '.join(PLATFORMS)}, got {out['platform']!r}")
    _check_code("completion_code", out["completion_code"])
    _check_code("screened_code", out["screened_code"])
    url = out["completion_url"]
    if url is not None and (not isinstance(url, str) or re.fullmatch(r"https?://[^\s<>\"']{1,500}", url) is None
                            or url.count("{code}") > 1 or re.search(r"\{(?!code\})", url)):
        raise UsageError(f"completion_url must be an http(s) URL of at most 500 characters, with {{code}} "
                         f"at most once where the completion code goes, got {url!r}")
    r = out["redirect_after_s"]
    if isinstance(r, bool) or not isinstance(r, int) or not 0 <= r <= 600:
        raise UsageError(f"redirect_after_s must be whole seconds in [0, 600], got {r!r}")
    acc = out["min_sentinel_accuracy"]
    if acc is not None and (not _number(acc) or not 0.0 < acc <= 1.0):
        raise UsageError(f"min_sentinel_accuracy must be in (0, 1] or unset, got {acc!r}")
    f = out["min_sentinel_failures"]
    if isinstance(f, bool) or not isinstance(f, int) or not 1 <= f <= 1000:
        raise UsageError(f"min_sentinel_failures must be an integer in [1, 1000], got {f!r}")
    if out["screen_out"] not in ("code", "return"):
        raise UsageError(f"screen_out must be 'code' or 'return', got {out['screen_out']!r}")
    codes = [out["completion_code"], out["screened_code"]]
    if codes[0] is not None and codes[0] == codes[1]:
        raise UsageError("screened_code must differ from completion_code")


def validate_config(cfg: Mapping[str, Any]) -> StudyConfig:
    """``cfg`` completed with the defaults and checked.

    Args:
        cfg: study settings by name; ``None`` values take the default.

    Returns:
        Every setting of :data:`DEFAULTS`, with the given values, each checked against its
        range and its :class:`StudyConfig` type.

    Raises:
        ValueError: an unknown setting or a value out of its range (names the setting).
    """
    unknown = set(cfg) - set(DEFAULTS)
    if unknown:
        raise UsageError(f"unknown study settings: {', '.join(sorted(unknown))}")
    out = cast(StudyConfig, {**DEFAULTS, **{k: v for k, v in cfg.items() if v is not None}})
    _check_trials(out)
    _check_adaptive(out)
    _check_platform(out)
    return out


def prior_of(cfg: StudyConfig) -> tuple[float, float]:
    """The Beta prior ``(a, b)`` of an adaptive study's items (stored as a two-element list)."""
    a, b = cfg["prior"]
    return float(a), float(b)


def completion_url(cfg: StudyConfig) -> str | None:
    """The completion URL template of the study: its own, else Prolific's for a Prolific study."""
    url = cfg.get("completion_url")
    if url is None and cfg.get("platform") == "prolific":
        return PROLIFIC_COMPLETION_URL
    return url


def stored_config(rows: Iterable[tuple[object, object]]) -> StudyConfig:
    """The settings of a study from its ``config`` rows (name, JSON value), checked.

    The table is read as untrusted (the study file may come from someone else): every value is
    checked as :func:`validate_config` checks the settings of a new study, so that e.g. a
    completion URL that is not http(s) never reaches a rater's page.

    Raises:
        DataError: a value that is not JSON, an unknown setting or one out of its range, naming
            the ``config`` table and the setting.
    """
    stored: dict[str, Any] = {}
    for name, value in rows:
        try:
            stored[str(name)] = json.loads(value)  # type: ignore[arg-type]
        except (TypeError, ValueError, RecursionError):
            raise DataError(f"study database: config row {_short(name)}: its value {_short(value)} is not "
                            "JSON") from None
    try:
        return validate_config(stored)
    except (TypeError, ValueError) as exc:
        raise DataError(f"study database: config table: {_short(str(exc), 300)}") from None


def _short(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"
