"""JSON bodies for the refusals waitress makes before a request reaches the app.

Waitress answers a malformed request line or header (400), a declared body over the limit
(413), headers over the limit (431) and a failure outside the app (500) itself, as plain
text. :func:`json_errors` makes a server built by ``waitress.create_server`` answer these
with ``{"error": ...}`` like every other refusal of the judging server, so the page (and any
client) can read every error the same way. It swaps the error task of waitress' channel
class, which waitress exposes as the ``error_task_class`` attribute.
"""
from __future__ import annotations

import json
from typing import Any

from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer
from waitress.task import ErrorTask


class JsonErrorTask(ErrorTask):  # type: ignore[misc, unused-ignore]  # waitress ships no types
    """Waitress' error response with a JSON body (the detail of a 4xx; none of a 5xx)."""

    def execute(self) -> None:
        """Answer the failed request with a JSON error body instead of waitress's text page."""
        err = self.request.error
        code = int(err.code)
        detail = str(err.body).strip() if code < 500 else "the server could not handle this request"
        body = json.dumps({"error": f"{err.reason.lower()}: {detail[:300]}"}).encode("utf-8")
        self.status = f"{code} {err.reason}"
        self.response_headers.extend([("Content-Type", "application/json"), ("X-Content-Type-Options", "nosniff"),
                                      ("Cache-Control", "no-store")])
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class JsonChannel(HTTPChannel):  # type: ignore[misc, unused-ignore]  # waitress ships no types
    """A waitress channel whose own error responses are JSON."""

    error_task_class = JsonErrorTask


def json_errors(server: Any) -> Any:
    """Make ``server`` (from ``waitress.create_server``) answer its own refusals in JSON; returns ``server``.

    The server may have one socket or several.
    """
    listeners = [server] if isinstance(server, BaseWSGIServer) else [
        s for s in getattr(server, "map", {}).values() if isinstance(s, BaseWSGIServer)]
    if not listeners:
        raise TypeError(f"not a waitress server: {type(server).__name__}")
    for s in listeners:
        s.channel_class = JsonChannel
    return server


def served_port(server: Any) -> int:
    """The port a waitress server listens on (the first, when it listens on several sockets)."""
    port = getattr(server, "effective_port", None)
    return int(port if port is not None else server.effective_listen[0][1])
