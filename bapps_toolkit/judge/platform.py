"""Crowd platforms: who arrives through a study link, what they are told at the end, the link itself.

The link is the one to paste into the platform (no SQL, no HTTP).

Prolific (docs.prolific.com, "The study object"): the study URL may carry the placeholders
``{{%PROLIFIC_PID%}}``, ``{{%STUDY_ID%}}`` and ``{{%SESSION_ID%}}``, which Prolific replaces with
the participant's id, the Prolific study's id and the id of this participant's session. A
participant who finishes is sent to ``https://app.prolific.com/submissions/complete?cc=CODE``
(docs.prolific.com, "Reviewing submissions and rewards"); a study may have several completion
codes, each with its own actions, e.g. a separate code for participants who failed attention
checks whose submissions the researcher then reviews (Prolific's "custom completion codes").

A ``generic`` platform passes its own participant id as ``rater``; the researcher puts the
platform's placeholder there (MTurk's ``workerId``, SONA's ``%SURVEY_CODE%``, ...).

Both links carry the study's ``key`` (:mod:`.keys`): arrivals without it, or with another
study's, are refused.

Screening by sentinels (:func:`outcome_for`): a rater is *screened out* when they failed at
least ``min_sentinel_failures`` sentinels **and** their sentinel accuracy is below
``min_sentinel_accuracy``. Prolific asks that a participant fail at least two fair attention
checks before being rejected in studies of 5 minutes or more (researcher-help.prolific.com,
attention-check policy), hence the default of 2 failures. Screened-out raters are told so;
with ``screen_out = code`` they get the study's second completion code (label it "failed
attention checks" with manual review on Prolific), with ``return`` no code and a request to
return the submission. Nobody is rejected by this server: that decision stays with the
researcher on the platform.
"""
from __future__ import annotations

import re
import secrets
import string
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypedDict

from ..errors import UsageError
from .answers import RATER_RULE, short, valid_rater
from .keys import MAX_KEY_CHARS
from .refusals import InvalidRequest
from .settings import StudyConfig, completion_url

#: Fields a posted arrival may carry, per platform.
ARRIVAL_FIELDS = {"prolific": ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID", "key"), "generic": ("rater", "key")}
_KEY_RE = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_KEY_CHARS}}}")
PROLIFIC_PARAMS = "PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"


@dataclass(frozen=True)
class ArrivalPost:
    """A checked arrival through a study link.

    The rater id (``PROLIFIC_PID`` or ``rater``), the link key, and Prolific's study and session ids (``None``
    on a generic platform).
    """

    rater: str
    key: str
    study: str | None
    session: str | None


class Arrival(TypedDict):
    """The reply to an arrival: the rater id and the token the page sends from then on."""

    rater: str
    token: str


class Completion(TypedDict):
    """What a rater who has finished is told.

    ``outcome``: ``complete``, ``screened_out`` or ``no_trials`` (nothing was left to judge);
    ``code``: the completion code to show (``None``: none); ``url``: where the page sends the
    rater after ``redirect_after_s`` seconds (``None``: it stays); ``message``: the text shown;
    ``sentinels``/``sentinels_right``: the rater's check trials.
    """

    outcome: str
    code: str | None
    url: str | None
    redirect_after_s: int
    message: str
    sentinels: int
    sentinels_right: int


def _field(body: Mapping[str, object], name: str) -> str:
    value = body.get(name)
    if not valid_rater(value):
        raise InvalidRequest(f"{name}: expected {RATER_RULE}, got {short(value)}")
    return str(value)


def parse_arrival(body: Mapping[str, object], platform: str) -> ArrivalPost:
    """The arrival in a posted JSON object of a study on ``platform`` (``prolific``/``generic``).

    Raises:
        InvalidRequest: the study takes no link arrivals, an unknown or missing field, an id
            that is not 1-64 of ``A-Z a-z 0-9 _ . -``, or a malformed key.
    """
    if platform not in ARRIVAL_FIELDS:
        raise InvalidRequest("this study is not run on a crowd platform: open it as /?rater=YOUR_ID")
    allowed = ARRIVAL_FIELDS[platform]
    extra = set(body) - set(allowed)
    if extra:
        raise InvalidRequest(f"unknown fields: {', '.join(sorted(short(k, 30) for k in extra)[:5])}")
    key = body.get("key")
    if not isinstance(key, str) or _KEY_RE.fullmatch(key) is None:
        raise InvalidRequest("key: this page must be opened through the link the study gave you (no valid key)")
    if platform == "prolific":
        return ArrivalPost(_field(body, "PROLIFIC_PID"), key, _field(body, "STUDY_ID"), _field(body, "SESSION_ID"))
    return ArrivalPost(_field(body, "rater"), key, None, None)


def new_code(avoid: str | None = None) -> str:
    """A random completion code: 8 upper-case letters and digits (different from ``avoid``)."""
    alphabet = string.ascii_uppercase + string.digits
    while True:
        code = "".join(secrets.choice(alphabet) for _ in range(8))
        if code != avoid:
            return code


def outcome_for(cfg: StudyConfig, sentinels: int, right: int) -> str:
    """``screened_out`` when the rater failed enough sentinels (module docstring), else ``complete``."""
    threshold = cfg.get("min_sentinel_accuracy")
    if threshold is None or sentinels == 0:
        return "complete"
    failed = sentinels - right
    if failed >= int(cfg["min_sentinel_failures"]) and right / sentinels < float(threshold):
        return "screened_out"
    return "complete"


def _url(cfg: StudyConfig, code: str | None) -> str | None:
    template = completion_url(cfg)
    if template is None or cfg.get("platform", "none") == "none" or code is None:
        return None
    return template.replace("{code}", urllib.parse.quote(code, safe=""))


def completion_for(cfg: StudyConfig, outcome: str, sentinels: int, right: int) -> Completion:
    """What a rater with ``outcome`` is shown and where they are sent (codes only on a platform)."""
    on_platform = cfg.get("platform", "none") != "none"
    checks = f"{right} of {sentinels} check trials answered right"
    if outcome == "no_trials":
        code, message = None, ("There are no trials left for you in this study. "
                               + ("Please return your submission on the platform." if on_platform else ""))
    elif outcome == "screened_out" and cfg.get("screen_out") == "code":
        code = cfg.get("screened_code") if on_platform else None
        message = (f"Thank you. You answered too few of the check trials right ({checks}). "
                   "Your submission will be reviewed by the researcher.")
    elif outcome == "screened_out":
        code, message = None, (f"Thank you. You answered too few of the check trials right ({checks}), "
                               "so your answers cannot be used. Please return your submission on the platform.")
    else:
        code = cfg.get("completion_code") if on_platform else None
        message = "All your trials are answered and saved. Thank you!"
    return {"outcome": outcome, "code": code, "url": _url(cfg, code), "message": message.strip(),
            "redirect_after_s": int(cfg.get("redirect_after_s", 5)), "sentinels": sentinels,
            "sentinels_right": right}


def study_link(base_url: str, platform: str, key: str, placeholder: str = "{{RATER_ID}}") -> str:
    """The link to paste into the platform: ``base_url`` with the platform's parameters and ``key``.

    Raises:
        UsageError: ``base_url`` is not an http(s) URL without a query, or the platform is ``none``.
    """
    if re.fullmatch(r"https?://[^\s?#<>\"']+", base_url) is None:
        raise UsageError(f"base URL {base_url!r}: expected http(s)://host[:port][/path] without a query")
    base = base_url if base_url.endswith("/") else base_url + "/"
    if platform == "prolific":
        return f"{base}?{PROLIFIC_PARAMS}&key={key}"
    if platform == "generic":
        return f"{base}?rater={placeholder}&key={key}"
    raise UsageError("this study has platform 'none': it has no study link (create it with --platform)")
