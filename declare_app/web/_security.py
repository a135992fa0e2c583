"""Cross-site defences of the employer application (sans-IO).

The employer's browser reaches the service through ``ssgate connect`` on a local
port; the gateway session *is* the login, so there are no cookies, and any page the
employer visits could try to use that port.  Three checks stand in the way:

* **Host**: only an IP literal or an allowed name (``localhost``) — a page of
  ``evil.example`` whose name was re-bound to 127.0.0.1 (DNS rebinding) sends its own
  name and is refused, so it can never read a page (nor a CSRF token).
* **Origin / Referer** on every state-changing request: absent, or this very host.
  ``Origin: null`` (sandboxed frames, ``Referrer-Policy: no-referrer`` pages) is
  refused; our own pages send ``Referrer-Policy: same-origin``, under which Chromium
  sends the real origin with our forms (with ``no-referrer`` it sends ``null``).
* **CSRF token**: HMAC-SHA256 of the gateway session id under a service key, in every
  form (``csrf_token``) and required as ``X-CSRF-Token`` on API writes.  It changes
  with each gateway session and cannot be computed without the key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

CSRF_FIELD = "csrf_token"
CSRF_HEADER = b"X-CSRF-Token"
MIN_KEY_BYTES = 16

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (
        b"Content-Security-Policy",
        b"default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        b"frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"X-Frame-Options", b"DENY"),
    (b"X-Content-Type-Options", b"nosniff"),
    (b"Referrer-Policy", b"same-origin"),
    (b"Cache-Control", b"no-store"),
    (b"Cross-Origin-Opener-Policy", b"same-origin"),
    (b"Cross-Origin-Resource-Policy", b"same-origin"),
)


class CsrfTokens:
    """Per-session tokens: ``token(session_id)``, ``valid(session_id, presented)``."""

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes) or len(key) < MIN_KEY_BYTES:
            raise ValueError(f"csrf_key must be at least {MIN_KEY_BYTES} bytes")
        self._key = key

    def __repr__(self) -> str:
        return "CsrfTokens(<key>)"

    def token(self, session_id: str) -> str:
        mac = hmac.new(self._key, b"ssgate-employer-csrf\x00", hashlib.sha256)
        mac.update(session_id.encode("utf-8", "surrogatepass"))
        return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode("ascii")

    def valid(self, session_id: str, presented: str | bytes | None) -> bool:
        if presented is None:
            return False
        if isinstance(presented, str):
            presented = presented.encode("utf-8", "surrogatepass")
        return hmac.compare_digest(self.token(session_id).encode("ascii"), presented)


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
