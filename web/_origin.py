"""Where a request comes from: the Host it names and the Origin/Referer of a write.

* **Host**: only an IP literal or an allowed name — a page of ``evil.example`` whose
  name was re-bound to 127.0.0.1 (DNS rebinding) sends its own name and is refused, so
  it can never read a page (nor a CSRF token).
* **Origin / Referer** on every state-changing request: absent, or this very host.
  ``Origin: null`` (sandboxed frames, ``Referrer-Policy: no-referrer`` pages) is
  refused; our pages send ``Referrer-Policy: same-origin``, under which Chromium sends
  the real origin with our forms (with ``no-referrer`` it sends ``null``).

Sans-IO: header values in, booleans out.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit


def _split_host(host: str) -> tuple[str, str]:
    """``host[:port]`` → (lower-case name or address, port or "")."""
    host = host.strip().lower()
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        return name, rest[1:] if rest.startswith(":") else ""
    if host.count(":") == 1:
        name, _, port = host.partition(":")
        return name, port
    return host, ""


def host_allowed(host: bytes | None, allowed_names: Iterable[str]) -> bool:
    """No Host (HTTP/1.0), an IP literal, or one of *allowed_names*, with any port."""
    if host is None:
        return True
    try:
        text = host.decode("ascii")
    except UnicodeDecodeError:
        return False
    name, port = _split_host(text)
    if port and not port.isdigit():
        return False
    if name in {n.lower() for n in allowed_names}:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _netloc(host: str, scheme: str) -> tuple[str, str]:
    name, port = _split_host(host)
    default = {"http": "80", "https": "443"}.get(scheme, "")
    return name, port or default


def same_origin(source: bytes, host: bytes | None) -> bool:
    """Whether an ``Origin`` or ``Referer`` value names the host the request went to.

    The scheme is not compared: the service speaks plain HTTP to the local client, and
    a TLS front end may stand before a browser; host and port decide.
    """
    if host is None:
        return False
    try:
        text = source.decode("ascii")
        host_text = host.decode("ascii")
    except UnicodeDecodeError:
        return False
    try:
        parts = urlsplit(text)
        port = parts.port  # ValueError for a port that is not a number
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    source_port = str(port) if port is not None else ""
    want = _netloc(host_text, "http")
    got = (parts.hostname.lower(), source_port or {"http": "80", "https": "443"}[parts.scheme])
    if got == want:
        return True
    # https in front: Host without a port means 443 there.
    return parts.scheme == "https" and got == _netloc(host_text, "https")


def origin_allowed(origin: bytes | None, referer: bytes | None, host: bytes | None) -> bool:
    """A state-changing request's Origin (else Referer) is absent or this host."""
    if origin is not None:
        return same_origin(origin, host)
    if referer is not None:
        return same_origin(referer, host)
    return True
