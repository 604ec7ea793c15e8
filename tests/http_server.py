"""A small HTTP server on 127.0.0.1 for the download tests (never any other address).

>>> with LoopbackServer({"/f.bin": data}, cut_after=1000, max_cuts=1) as srv:
...     download_file(srv.url("/f.bin"), dest)     # first attempt is cut at byte 1000

Knobs (attributes, changeable between requests):

* ``honour_range`` — answer ``Range: bytes=N-`` with 206 (else ignore it and send 200 + all);
* ``cut_after`` / ``max_cuts`` — send only that many body bytes, then drop the connection;
  at most ``max_cuts`` times in total, later requests are served whole;
* ``content_length`` — a dict path → the (possibly false) ``Content-Length`` to announce;
* ``files`` — the dict path → bytes being served (unknown paths get 404);
* ``send_etag`` — send a strong ``ETag`` (a digest of the bytes) and honour ``If-Range`` with it:
  a resume request for a file that has changed gets the whole new file (200).

Every request is recorded in ``requests`` as ``(method, path, range_header_or_None)`` and its
``If-Range`` header (or ``None``) in ``if_range``.
The server runs in a daemon thread on an ephemeral port, serves at most ``max_requests``
requests and shuts itself down after ``lifetime_s`` seconds even if a test forgets to.
"""
from __future__ import annotations

import hashlib
import io
import socket
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"

    def log_message(self, format, *args):  # noqa: A002 - silence the default stderr log
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        owner = self.server.owner
        rng = self.headers.get("Range")
        with owner.lock:
            owner.requests.append(("GET", self.path, rng))
            if len(owner.requests) > owner.max_requests:
                self.send_error(503, "request budget of the test server exhausted")
                return
        data = owner.files.get(self.path)
        if data is None:
            self.send_error(404, "not found")
            return
        etag = f'"{hashlib.sha256(data).hexdigest()[:16]}"' if owner.send_etag else None
        if_range = self.headers.get("If-Range")
        with owner.lock:
            owner.if_range.append(if_range)
        start = 0
        status = 200
        if rng and owner.honour_range and (if_range is None or if_range == etag):
            spec = rng.strip()
            if not spec.startswith("bytes=") or not spec[6:].endswith("-"):
                self.send_error(400, "only open-ended ranges are supported")
                return
            start = int(spec[6:-1])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        body = data[start:]
        announced = owner.content_length.get(self.path)
        self.send_response(status)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(body) if announced is None else announced))
        self.send_header("Content-Type", "application/octet-stream")
        if etag:
            self.send_header("ETag", etag)
        self.end_headers()
        cut = None
        with owner.lock:
            if owner.cut_after is not None and owner.cuts_done < owner.max_cuts:
                owner.cuts_done += 1
                cut = owner.cut_after
        if cut is not None:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            with _suppress_oserror():
                self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        with _suppress_oserror():
            self.wfile.write(body)


class _suppress_oserror:
    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        return exc_type is not None and issubclass(exc_type, OSError)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: LoopbackServer


class LoopbackServer:
    """Serve ``files`` on 127.0.0.1 at an ephemeral port (use as a context manager)."""

    def __init__(self, files: dict[str, bytes] | None = None, *, honour_range: bool = True,
                 cut_after: int | None = None, max_cuts: int = 1,
                 content_length: dict[str, int] | None = None, send_etag: bool = True,
                 max_requests: int = 200,
                 lifetime_s: float = 120.0):
        self.files: dict[str, bytes] = dict(files or {})
        self.honour_range = honour_range
        self.cut_after = cut_after
        self.max_cuts = max_cuts
        self.cuts_done = 0
        self.content_length: dict[str, int] = dict(content_length or {})
        self.send_etag = send_etag
        self.if_range: list[str | None] = []
        self.max_requests = max_requests
        self.lifetime_s = lifetime_s
        self.requests: list[tuple[str, str, str | None]] = []
        self.lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    #: request handler class; subclasses (e.g. a throttled server) swap it.
    handler_class = None

    def start(self) -> LoopbackServer:
        self._httpd = _Server(("127.0.0.1", 0), self.handler_class or _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        self._timer = threading.Timer(self.lifetime_s, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if self._timer is not None and self._timer is not threading.current_thread():
            self._timer.cancel()
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def closed_port_url(path: str = "/") -> str:
    """An address on 127.0.0.1 where nothing listens (connection refused)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}{path}"


def tar_gz(files: dict[str, bytes], *, compresslevel: int = 9) -> bytes:
    """A .tar.gz (in memory) holding ``files`` (``"a/b/c.png" -> bytes``) and their parent
    folders, with fixed modes and time stamps, so the same input gives the same bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=compresslevel) as tar:
        dirs = set()
        for name in sorted(files):
            parts = name.split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    ti = tarfile.TarInfo(d)
                    ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, 0
                    tar.addfile(ti)
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(files[name]), 0o644, 0
            tar.addfile(ti, io.BytesIO(files[name]))
    return buf.getvalue()
