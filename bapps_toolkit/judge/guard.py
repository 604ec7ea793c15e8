"""Which hosts and origins may talk to the judging server (no HTTP framework here).

A page on another site must not be able to use the study server through the rater's browser:

* **Host** (DNS rebinding: ``evil.example`` made to resolve to 127.0.0.1 sends ``Host:
  evil.example``): the name must be one the server is reached by — for a loopback bind
  ``127.0.0.1``, ``localhost`` and ``::1``; for a wildcard bind (``0.0.0.0``, ``::``) any IP
  address (a page cannot make a browser send an IP address it was not loaded from) and
  ``localhost``; otherwise the bound name — at the port served. Names given with
  ``--allowed-host NAME[:PORT]`` (a server behind a proxy) are accepted at that port, or at
  any port when none is given.
* **Origin** (sent by browsers on POSTs and cross-origin requests): absent, or a
  ``http(s)://host[:port]`` that passes the same rule; ``null`` and other schemes are refused.
  So a page served by another local program (``http://localhost:3000``) is refused.
* **Sec-Fetch-Site** (fetch metadata): ``cross-site`` and ``same-site`` requests are refused,
  except a top-level navigation to the page itself (a link to ``/?rater=ID``).
"""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import UsageError
from .refusals import InvalidRequest, NotAllowed

_NETLOC = re.compile(r"(?:\[(?P<v6>[0-9A-Fa-f:.]{2,45})\]|(?P<name>[A-Za-z0-9.-]{1,253}))(?::(?P<port>[0-9]{1,5}))?")
_ORIGIN = re.compile(r"(?P<scheme>https?)://(?P<netloc>[^/?#\s]{1,300})")
DEFAULT_PORTS = {"http": 80, "https": 443}
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 (names of a wildcard bind, compared, not bound)


def is_ip(name: str) -> bool:
    """Whether ``name`` is an IPv4 or IPv6 address."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a bind address) is ``localhost`` or a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _netloc(text: str) -> tuple[str, int | None] | None:
    """``(name, port or None)`` of ``host[:port]`` or ``[v6][:port]``; ``None`` when malformed.

    The name is lower-case, an IPv6 address compressed.
    """
    m = _NETLOC.fullmatch(text)
    if m is None:
        return None
    port = int(m["port"]) if m["port"] else None
    if port is not None and not 0 < port < 65536:
        return None
    if m["v6"]:
        try:
            return ipaddress.IPv6Address(m["v6"]).compressed, port
        except ValueError:
            return None
    return m["name"].lower(), port


def split_netloc(text: str, default_port: int) -> tuple[str, int] | None:
    """``(name, port)`` of a Host header or an origin's authority; ``None`` when malformed.

    The port is ``default_port`` when it has none.
    """
    parsed = _netloc(text)
    return None if parsed is None else (parsed[0], default_port if parsed[1] is None else parsed[1])


@dataclass(frozen=True)
class HostRule:
    """A name the server is reached by; ``port`` None accepts any port (a proxy's)."""

    name: str
    port: int | None


def parse_allowed_host(text: str) -> HostRule:
    """An ``--allowed-host`` value: ``NAME``, ``NAME:PORT``, ``IP``, ``[IPv6]:PORT``.

    Raises:
        ValueError: not a host name or address with an optional port.
    """
    parsed = _netloc(text.strip())
    if parsed is None and is_ip(text.strip()):  # a bare IPv6 address
        parsed = (ipaddress.ip_address(text.strip()).compressed, None)
    if parsed is None:
        raise UsageError(f"allowed host {text!r}: expected NAME, NAME:PORT or [IPv6]:PORT")
    return HostRule(*parsed)


@dataclass(frozen=True)
class Access:
    """The hosts a server accepts in ``Host`` and ``Origin`` (see the module docstring).

    Attributes:
        names: names accepted at the port served.
        any_ip: whether any IP address is accepted at the port served (wildcard bind).
        extra: names given by the user (``--allowed-host``).
    """

    names: frozenset[str]
    any_ip: bool = False
    extra: tuple[HostRule, ...] = ()

    @classmethod
    def for_bind(cls, host: str, allowed: Sequence[str] = ()) -> Access:
        """The rule for a server bound to ``host``, with the user's ``allowed`` hosts."""
        extra = tuple(parse_allowed_host(a) for a in allowed)
        bound = host.strip("[]").lower()
        if bound in WILDCARD:
            return cls(frozenset({"localhost"}), True, extra)
        if is_ip(bound):
            bound = ipaddress.ip_address(bound).compressed
        names = {bound} | (LOOPBACK_NAMES if is_loopback(bound) else set())
        return cls(frozenset(names), False, extra)

    def admits(self, name: str, port: int, served_port: int) -> bool:
        """Whether ``name:port`` is an address of this server (served on ``served_port``)."""
        if port == served_port and (name in self.names or (self.any_ip and is_ip(name))):
            return True
        return any(r.name == name and r.port in (None, port) for r in self.extra)


@dataclass(frozen=True)
class RequestFacts:
    """What the guard looks at in a request (header values as sent, or None when absent)."""

    method: str
    path: str
    scheme: str
    served_port: int
    host: str | None
    origin: str | None
    fetch_site: str | None
    fetch_mode: str | None


def check_request(access: Access, req: RequestFacts) -> None:
    """Refuse a request from a foreign host, origin or site.

    Raises:
        InvalidRequest: no or a malformed ``Host`` header.
        NotAllowed: a foreign ``Host`` or ``Origin``, or a cross-site request.
    """
    if not req.host:
        raise InvalidRequest("missing Host header")
    host = split_netloc(req.host, DEFAULT_PORTS.get(req.scheme, 80))
    if host is None:
        raise InvalidRequest("malformed Host header")
    if not access.admits(*host, req.served_port):
        raise NotAllowed("this study server does not serve that host name (Host header refused)")
    if req.origin is not None:
        m = _ORIGIN.fullmatch(req.origin)
        origin = split_netloc(m["netloc"], DEFAULT_PORTS[m["scheme"]]) if m else None
        if origin is None or not access.admits(*origin, req.served_port):
            raise NotAllowed("requests from another site are refused (Origin header)")
    navigation = req.method in ("GET", "HEAD") and req.fetch_mode == "navigate" and req.path == "/"
    if req.fetch_site in ("cross-site", "same-site") and not navigation:
        raise NotAllowed("requests from another site are refused (Sec-Fetch-Site header)")
