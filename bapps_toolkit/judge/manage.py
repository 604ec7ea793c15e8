"""What the ``bapps judge`` commands do with a study database besides serving it.

The study link and codes to give the platform, a new admin token, the status summary.
"""
from __future__ import annotations

from .._io import PathLike
from ..errors import UsageError
from .keys import ensure_keys, issue_admin_token, link_key
from .platform import study_link
from .settings import completion_url
from .store import load_config, open_study
from .summary import study_summary, summary_text


def study_link_info(db: PathLike, base_url: str, placeholder: str = "{{RATER_ID}}") -> str:
    """The study link to paste into the platform, and the completion codes to register there.

    Raises:
        UsageError: the study has no platform, or ``base_url`` is not an http(s) URL.
    """
    con = open_study(db)
    try:
        cfg = load_config(con)
        if cfg["platform"] == "none":
            raise UsageError(f"study {db} was created without --platform: raters open /?rater=ID, "
                             "there is no study link")
        link = study_link(base_url, cfg["platform"], link_key(ensure_keys(con)), placeholder)
    finally:
        con.close()
    lines = [f"study link ({cfg['platform']}): {link}",
             f"completion code: {cfg['completion_code']}"]
    if cfg["min_sentinel_accuracy"] is not None:
        what = (f"code {cfg['screened_code']}" if cfg["screen_out"] == "code"
                else "no code; they are asked to return their submission")
        lines.append(f"screened out (failed >= {cfg['min_sentinel_failures']} sentinels and accuracy < "
                     f"{cfg['min_sentinel_accuracy']}): {what}")
    url = completion_url(cfg)
    lines.append(f"on completion raters are sent to: {url or '(nowhere: the code is shown)'}")
    if cfg["platform"] == "generic":
        lines.append(f"replace {placeholder} by your platform's placeholder for the participant id "
                     "(or pass --placeholder)")
    return "\n".join(lines)


def new_admin_token(db: PathLike) -> str:
    """Issue a new admin token for the dashboard (returned once; the previous one stops working)."""
    con = open_study(db)
    try:
        return issue_admin_token(con)
    finally:
        con.close()


def status_summary(db: PathLike) -> str:
    """The study's summary in a few lines (as the dashboard shows it)."""
    con = open_study(db)
    try:
        return summary_text(study_summary(con, load_config(con)))
    finally:
        con.close()
