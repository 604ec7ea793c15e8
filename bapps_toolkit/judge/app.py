"""The web app: a Flask application over the study database, served by waitress.

Routes (JSON unless stated): ``GET /`` the page (package data); ``GET /static/<file>`` its
script and style (Flask's static handler, package folder only); ``GET /api/study`` settings;
``GET /api/next`` the rater's next trial; ``GET /api/image/<item>/<role>`` PNG bytes read
from the item table (``role`` is one of ref/p0/p1, ``item`` an integer: no request value
becomes a file path); ``POST /api/answer`` one answer, acknowledged only after its commit;
``POST /api/arrive`` a rater arriving through the study link of a study on a crowd platform
(:mod:`.platform`; replies with the rater id and token the page uses from then on). The rater
is named by ``rater`` and, where one was issued, ``token`` (query string for GET, JSON body for
POST, or the ``X-Rater-Token`` header).

The dashboard: ``GET /admin`` its page, ``GET /api/admin/summary`` the study's summary
(:mod:`.summary`), only with ``Authorization: Bearer <admin token>`` (401 without it or with a
wrong one; after :data:`ADMIN_FAILURES_PER_MINUTE` wrong tokens in a minute every admin request
is answered 429 for the rest of that minute, without checking the token).

Every request first passes the host, origin and site checks of :mod:`.guard`. Every error
is a JSON object ``{"error": message}`` with a 4xx/5xx status: the store's refusals are mapped
by :data:`STATUS` (429 and 503 carry ``Retry-After`` where a retry makes sense), and an
unexpected exception is logged and answered 500 without detail. Nothing is written on a
refused request.
"""
from __future__ import annotations

import json
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._io import PathLike
from ..errors import BappsError, UsageError
from .answers import parse_answer
from .arrivals import arrive
from .db import BUSY_TIMEOUT_S, db_errors, log
from .guard import Access, RequestFacts, check_request, is_loopback
from .items import read_items
from .keys import admin_token_ok
from .platform import parse_arrival
from .refusals import (
    AlreadyAnswered,
    InvalidRequest,
    NotAllowed,
    NotAuthorized,
    NotFound,
    RateLimited,
    StudyUnavailable,
    TooManyAttempts,
)
from .settings import StudyConfig
from .store import (
    check_rater,
    create_study,
    image_png,
    load_config,
    next_trial,
    open_study,
    record_answer,
    serving_connection,
)
from .summary import study_summary, summary_version

__all__ = ["create_app", "serve", "STATUS", "MAX_BODY", "is_loopback"]

STATIC = Path(__file__).with_name("static")
MAX_BODY = 16 * 1024
#: Arrays and objects a posted body may open (an answer has two).
MAX_JSON_CONTAINERS = 16
#: New raters without a token recorded per minute, by default.
NEW_RATERS_PER_MINUTE = 60
#: Wrong admin tokens accepted per minute before every admin request is refused for the minute.
ADMIN_FAILURES_PER_MINUTE = 20
#: HTTP status of each refusal of the store and the request checks.
STATUS: dict[type[BappsError], int] = {
    InvalidRequest: 400, NotAuthorized: 401, NotAllowed: 403, NotFound: 404, AlreadyAnswered: 409,
    RateLimited: 429, StudyUnavailable: 503,
}
QUERY_KEYS = frozenset({"rater", "token"})
PUBLIC_SETTINGS = ("break_every", "display_px", "scaling", "jnd_ref_ms", "jnd_blank_ms", "jnd_dist_ms",
                   "instructions", "platform")
_BEARER = re.compile(r"Bearer ([A-Za-z0-9_-]{1,256})")

if TYPE_CHECKING:
    from flask import Flask


def status_of(exc: BappsError) -> int:
    """The HTTP status of a refusal (its nearest class in :data:`STATUS`; 500 if none)."""
    return next((STATUS[c] for c in type(exc).__mro__ if c in STATUS), 500)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def json_object(raw: bytes, mimetype: str) -> dict[str, Any]:
    """The JSON object of a request body.

    Raises:
        InvalidRequest: not ``application/json``, not JSON (also NaN/Infinity), nested too
            deeply, or not an object.
    """
    if mimetype != "application/json":
        raise InvalidRequest("expected a JSON object body (Content-Type: application/json)")
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_CONTAINERS:
        raise InvalidRequest(f"body: nested too deeply or too many arrays/objects (over {MAX_JSON_CONTAINERS} "
                             "'[' or '{'; an answer has 2)")
    try:
        body = json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise InvalidRequest("body: JSON nested too deeply") from None
    except ValueError as exc:
        raise InvalidRequest(f"body: not valid JSON ({str(exc)[:120]})") from None
    if not isinstance(body, dict):
        raise InvalidRequest("expected a JSON object body (Content-Type: application/json)")
    return body


def query(args: Any) -> Mapping[str, str]:
    """The rater fields of a query string: only ``rater`` and ``token``, each at most once.

    Raises:
        InvalidRequest: an unknown or repeated parameter.
    """
    unknown = set(args.keys()) - QUERY_KEYS
    if unknown:
        raise InvalidRequest(f"unknown query parameters: {', '.join(sorted(k[:30] for k in unknown)[:5])}")
    repeated = [k for k in QUERY_KEYS if len(args.getlist(k)) > 1]
    if repeated:
        raise InvalidRequest(f"query parameter {repeated[0]} given more than once")
    return {k: args[k] for k in QUERY_KEYS if k in args}


def _error(flask: Any, status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> Any:
    resp = flask.jsonify(error=message, **extra)
    resp.status_code = status
    resp.headers.update(headers or {})
    return resp


def _install_handlers(app: Flask, flask: Any, forget_connection: Callable[[], None]) -> None:
    """JSON error bodies for every refusal and failure, and hardening headers on every response."""
    from werkzeug.exceptions import HTTPException

    @app.errorhandler(BappsError)
    def _refused(exc: BappsError) -> Any:
        status = status_of(exc)
        if isinstance(exc, RateLimited):
            return _error(flask, status, str(exc), {"Retry-After": str(exc.retry_after_s)},
                          retry_after_s=exc.retry_after_s)
        if isinstance(exc, NotAuthorized):
            return _error(flask, status, str(exc), {"WWW-Authenticate": 'Bearer realm="bapps judge admin"'})
        if isinstance(exc, StudyUnavailable):
            forget_connection()  # reopened by the next request (after the disk is freed, say)
            return _error(flask, status, str(exc), {"Retry-After": "5"} if exc.reason == "busy" else None,
                          reason=exc.reason)
        if status == 500:
            log.error("unexpected toolkit error in a request: %s", exc)
            return _error(flask, 500, "internal error of the study server; it has been logged")
        return _error(flask, status, str(exc))

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Any:
        messages = {404: "no such page", 405: "method not allowed",
                    413: f"request body over {MAX_BODY} bytes"}
        code = exc.code or 500
        return _error(flask, code, messages.get(code, (exc.description or exc.name)[:200]))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        log.exception("unexpected error in %s %s", flask.request.method, flask.request.path)
        return _error(flask, 500, "internal error of the study server; it has been logged")

    @app.after_request
    def _headers(resp: Any) -> Any:
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["Content-Security-Policy"] = "default-src 'self'; img-src 'self'; frame-ancestors 'none'"
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["Referrer-Policy"] = "no-referrer"
        return resp


def _facts(flask: Any) -> RequestFacts:
    r = flask.request
    port = r.environ.get("SERVER_PORT") or "0"
    return RequestFacts(method=r.method, path=r.path, scheme=r.scheme, served_port=int(port) if port.isdigit() else 0,
                        host=r.headers.get("Host"), origin=r.headers.get("Origin"),
                        fetch_site=r.headers.get("Sec-Fetch-Site"), fetch_mode=r.headers.get("Sec-Fetch-Mode"))


def create_app(db: PathLike, *, require_token: bool = False, access: Access | None = None,
               new_raters_per_minute: int = NEW_RATERS_PER_MINUTE, busy_timeout_s: float = BUSY_TIMEOUT_S) -> Any:
    """The Flask app for the study in ``db``.

    Args:
        db: the study database.
        require_token: admit only raters added with a token.
        access: hosts accepted in ``Host``/``Origin``; default: loopback names at the port served.
        new_raters_per_minute: at most this many raters without a token are recorded per
            minute (0 = no cap); beyond, ``/api/next`` answers 429 with ``Retry-After``.
        busy_timeout_s: how long a request waits for another writer's lock before a 503.
    """
    import flask  # web framework: optional dependency (extra "judge")

    local = threading.local()
    policy = access or Access.for_bind("127.0.0.1")
    open_study(db).close()

    def con() -> Any:
        if getattr(local, "con", None) is None:
            local.con = serving_connection(db, busy_timeout_s)
        return local.con

    def forget_connection() -> None:
        c, local.con = getattr(local, "con", None), None
        if c is not None:
            c.close()

    cfg = load_config(con())
    app = flask.Flask(__name__, static_folder=str(STATIC), static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    _install_handlers(app, flask, forget_connection)
    app.before_request(lambda: check_request(policy, _facts(flask)))
    _rater_routes(app, flask, con, cfg, require_token or cfg["platform"] != "none", new_raters_per_minute)
    _admin_routes(app, flask, con, cfg)
    return app


def _rater_routes(app: Flask, flask: Any, con: Callable[[], Any], cfg: StudyConfig, require_token: bool,
                  new_raters_per_minute: int) -> None:
    """The page and the raters' API."""

    def rater_from(data: Mapping[str, Any]) -> str:
        token = flask.request.headers.get("X-Rater-Token") or data.get("token")
        return check_rater(con(), data.get("rater"), token, require_token)

    @app.get("/")
    def page() -> Any:
        return flask.send_from_directory(STATIC, "page.html")

    @app.get("/api/study")
    def study() -> Any:
        return flask.jsonify({k: v for k, v in cfg.items() if k in PUBLIC_SETTINGS})

    @app.post("/api/arrive")
    def arrive_() -> Any:
        body = json_object(flask.request.get_data(cache=False), flask.request.mimetype)
        return flask.jsonify(arrive(con(), cfg, parse_arrival(body, cfg["platform"]), new_raters_per_minute))

    @app.get("/api/next")
    def next_() -> Any:
        return flask.jsonify(next_trial(con(), rater_from(query(flask.request.args)), cfg, new_raters_per_minute))

    @app.get("/api/image/<int:item>/<role>")
    def image(item: int, role: str) -> Any:
        png = image_png(con(), rater_from(query(flask.request.args)), item, role)
        return flask.Response(png, mimetype="image/png")

    @app.post("/api/answer")
    def answer() -> Any:
        body = json_object(flask.request.get_data(cache=False), flask.request.mimetype)
        post = parse_answer(body)
        return flask.jsonify(record_answer(con(), rater_from(body), cfg, post))


class FailureLimiter:
    """Counts failed attempts in a sliding minute; beyond ``per_minute`` :meth:`check` refuses.

    Kept in memory (a refused request writes nothing to the study database).
    """

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def check(self) -> None:
        """Raises TooManyAttempts while ``per_minute`` failures lie within the last 60 s."""
        with self._lock:
            now = time.monotonic()
            while self._times and self._times[0] <= now - 60.0:
                self._times.popleft()
            if len(self._times) >= self.per_minute:
                wait = max(1, math.ceil(self._times[0] + 60.0 - now))
                raise TooManyAttempts(f"too many wrong admin tokens in the last minute; try again in {wait} s", wait)

    def failed(self) -> None:
        """Record one failed attempt."""
        with self._lock:
            self._times.append(time.monotonic())


def _admin_routes(app: Flask, flask: Any, con: Callable[[], Any], cfg: StudyConfig) -> None:
    """The dashboard page and its summary, behind the admin token."""
    limiter = FailureLimiter(ADMIN_FAILURES_PER_MINUTE)
    cache: dict[str, Any] = {}
    cache_lock = threading.Lock()

    def check_admin() -> None:
        limiter.check()
        m = _BEARER.fullmatch(flask.request.headers.get("Authorization") or "")
        if m is None or not db_errors(admin_token_ok)(con(), m[1]):
            limiter.failed()
            raise NotAuthorized("the dashboard needs the study's admin token (Authorization: Bearer TOKEN; "
                                "`bapps judge admin-token` issues one)")

    @app.get("/admin")
    def admin_page() -> Any:
        return flask.send_from_directory(STATIC, "dashboard.html")

    @app.get("/api/admin/summary")
    def admin_summary() -> Any:
        if flask.request.args:
            raise InvalidRequest("/api/admin/summary takes no query parameters")
        check_admin()
        version = db_errors(summary_version)(con())
        with cache_lock:
            if cache.get("version") != version:
                cache.update(version=version, summary=db_errors(study_summary)(con(), cfg))
            return flask.jsonify(cache["summary"])


def _check_settings(db: PathLike, source: PathLike | None, settings: dict[str, Any] | None) -> None:
    """Create the study from ``source`` when ``db`` is missing; else refuse other settings."""
    if source is not None and not Path(db).exists():
        create_study(db, read_items(source), **(settings or {}))
    elif settings:
        con = open_study(db)
        stored = load_config(con)
        con.close()
        differ = sorted(k for k, v in settings.items() if stored.get(k) != v)
        if differ:
            raise UsageError(f"study {db} already exists with other settings ({', '.join(differ)}); "
                             "its settings are fixed when it is created")


def serve(db: PathLike, source: PathLike | None = None, *, host: str = "127.0.0.1", port: int = 8765,
          threads: int = 8, on_ready: Any = None, settings: dict[str, Any] | None = None,
          allowed_hosts: Sequence[str] = (), new_raters_per_minute: int = NEW_RATERS_PER_MINUTE,
          busy_timeout_s: float = BUSY_TIMEOUT_S) -> None:
    """Serve the study in ``db`` until interrupted.

    When ``db`` does not exist yet and a SET ``source`` is given, the study is first created
    from it with ``settings``. Beyond loopback only raters with tokens are admitted (issue
    them with :func:`~bapps_toolkit.judge.store.add_rater`). ``Host`` and ``Origin`` must
    name this server (:class:`~bapps_toolkit.judge.guard.Access`): the bound address, or one
    of ``allowed_hosts`` (``NAME[:PORT]``, for a server behind a proxy). ``on_ready(server)``
    is called once listening.
    """
    import waitress  # WSGI server: optional dependency (extra "judge")

    from .transport import json_errors

    if new_raters_per_minute < 0:
        raise UsageError(f"new_raters_per_minute must be >= 0 (0 = no cap), got {new_raters_per_minute}")
    access = Access.for_bind(host, allowed_hosts)
    _check_settings(db, source, settings)
    app = create_app(db, require_token=not is_loopback(host), access=access,
                     new_raters_per_minute=new_raters_per_minute, busy_timeout_s=busy_timeout_s)
    server = json_errors(waitress.create_server(app, host=host, port=port, threads=threads,
                                                max_request_body_size=MAX_BODY, max_request_header_size=32 * 1024))
    if on_ready is not None:
        on_ready(server)
    server.run()
