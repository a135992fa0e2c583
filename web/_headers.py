"""The security headers every answer of both sites carries.

The Content-Security-Policy allows no script at all and no inline style: pages are
server-rendered HTML with one style sheet; ``img-src data:`` is for QR codes drawn
inline.  ``Referrer-Policy: same-origin`` (not ``no-referrer``) because Chromium then
sends our own origin with our forms, which the Origin check needs (with
``no-referrer`` it sends ``Origin: null``).  HSTS only where the site is served over
TLS (the staff console); the employer site is plain HTTP on the local client.
"""

from __future__ import annotations

CSP = (
    b"default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    b"frame-ancestors 'none'; base-uri 'none'"
)
HSTS = (b"Strict-Transport-Security", b"max-age=31536000")

_COMMON: tuple[tuple[bytes, bytes], ...] = (
    (b"Content-Security-Policy", CSP),
    (b"X-Frame-Options", b"DENY"),
    (b"X-Content-Type-Options", b"nosniff"),
    (b"Referrer-Policy", b"same-origin"),
    (b"Cache-Control", b"no-store"),
    (b"Cross-Origin-Opener-Policy", b"same-origin"),
    (b"Cross-Origin-Resource-Policy", b"same-origin"),
)


def security_headers(*, tls: bool) -> tuple[tuple[bytes, bytes], ...]:
    """The headers for a site served over TLS (*tls*: adds HSTS) or plain HTTP."""
    return (*_COMMON, HSTS) if tls else _COMMON
