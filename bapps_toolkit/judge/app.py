"""The web app: a Flask application over the study database, served by waitress.

Routes (JSON unless stated): ``GET /`` the page (package data); ``GET /static/<file>`` its
script and style (Flask's static handler, package folder only); ``GET /api/study`` settings;
``GET /api/next`` the rater's next trial; ``GET /api/image/<item>/<role>`` PNG bytes read
from the item table (``role`` is one of ref/p0/p1, ``item`` an integer: no request value
becomes a file path); ``POST /api/answer`` one answer, acknowledged only after its commit.
The rater is named by ``rater`` and, where one was issued, ``token`` (query string for GET,
JSON body for POST, or the ``X-Rater-Token`` header).
"""
from __future__ import annotations

import ipaddress
import os
import threading
from pathlib import Path
from typing import Any, Union

from .items import read_items
from .store import RequestError, check_rater, create_study, load_config, next_trial, open_study, record_answer

PathLike = Union[str, "os.PathLike[str]"]
STATIC = Path(__file__).with_name("static")
MAX_BODY = 16 * 1024


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _public_config(cfg: dict[str, Any]) -> dict[str, Any]:
    keys = ("break_every", "display_px", "scaling", "jnd_ref_ms", "jnd_blank_ms", "jnd_dist_ms", "instructions")
    return {k: cfg[k] for k in keys}


def _install_handlers(app: Any, flask: Any) -> None:
    """JSON error bodies for refused requests and hardening headers on every response."""
    @app.errorhandler(RequestError)
    def _refused(exc: RequestError):
        return flask.jsonify(error=str(exc)), exc.status

    @app.errorhandler(413)
    def _too_big(_exc):
        return flask.jsonify(error=f"request body over {MAX_BODY} bytes"), 413

    @app.errorhandler(404)
    def _not_found(_exc):
        return flask.jsonify(error="no such page"), 404

    @app.errorhandler(405)
    def _bad_method(_exc):
        return flask.jsonify(error="method not allowed"), 405

    @app.after_request
    def _headers(resp):
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["Content-Security-Policy"] = "default-src 'self'; img-src 'self'"
        return resp


def create_app(db: PathLike, *, require_token: bool = False):
    """The Flask app for the study in ``db``; ``require_token`` admits only raters with tokens."""
    import flask  # web framework: optional dependency (extra "judge")

    local = threading.local()
    open_study(db).close()

    def con():
        if getattr(local, "con", None) is None:
            local.con = open_study(db)
        return local.con

    cfg = load_config(con())
    app = flask.Flask(__name__, static_folder=str(STATIC), static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY

    def rater_from(data: Any) -> str:
        token = flask.request.headers.get("X-Rater-Token") or data.get("token")
        return check_rater(con(), data.get("rater"), token, require_token)

    _install_handlers(app, flask)

    @app.get("/")
    def page():
        return flask.send_from_directory(STATIC, "page.html")

    @app.get("/api/study")
    def study():
        return flask.jsonify(_public_config(cfg))

    @app.get("/api/next")
    def next_():
        return flask.jsonify(next_trial(con(), rater_from(flask.request.args), cfg))

    @app.get("/api/image/<int:item>/<role>")
    def image(item: int, role: str):
        rater = rater_from(flask.request.args)
        if role not in ("ref", "p0", "p1"):
            raise RequestError(404, f"no image role {role!r}")
        c = con()
        if not c.execute("SELECT 1 FROM assignments WHERE rater=? AND item=?", (rater, item)).fetchone():
            raise RequestError(403, f"item {item} is not assigned to rater {rater!r}")
        row = c.execute(f"SELECT {role} FROM items WHERE id=?", (item,)).fetchone()
        if row is None or row[0] is None:
            raise RequestError(404, f"item {item} has no {role} image")
        return flask.Response(bytes(row[0]), mimetype="image/png")

    @app.post("/api/answer")
    def answer():
        body = flask.request.get_json(silent=True)
        if not isinstance(body, dict):
            raise RequestError(400, "expected a JSON object body (Content-Type: application/json)")
        rater = rater_from(body)
        return flask.jsonify(record_answer(con(), rater, cfg, body))

    return app


def serve(db: PathLike, source: PathLike | None = None, *, host: str = "127.0.0.1", port: int = 8765,
          threads: int = 8, on_ready: Any = None, settings: dict[str, Any] | None = None) -> None:
    """Serve the study in ``db`` until interrupted; when ``db`` does not exist yet and a SET
    ``source`` is given, the study is first created from it with ``settings``. Beyond
    loopback only raters with tokens are admitted (issue them with
    :func:`~bapps_toolkit.judge.store.add_rater`). ``on_ready(server)`` is called once listening."""
    import waitress  # WSGI server: optional dependency (extra "judge")

    if source is not None and not Path(db).exists():
        create_study(db, read_items(source), **(settings or {}))
    elif settings:
        con = open_study(db)
        stored = load_config(con)
        con.close()
        differ = sorted(k for k, v in settings.items() if stored.get(k) != v)
        if differ:
            raise ValueError(f"study {db} already exists with other settings ({', '.join(differ)}); "
                             "its settings are fixed when it is created")

    app = create_app(db, require_token=not is_loopback(host))
    server = waitress.create_server(app, host=host, port=port, threads=threads,
                                    max_request_body_size=MAX_BODY)
    if on_ready is not None:
        on_ready(server)
    server.run()
