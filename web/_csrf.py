"""CSRF tokens: the secret a form or an API write must carry (sans-IO).

Two kinds, one comparison: :class:`CsrfTokens` derives a token from a session id by
HMAC-SHA256 under a service key (the employer site, whose "session" is the gateway
session and keeps no server state), and a site with stored sessions (the staff
console) keeps a random token per session.  Either way the check is
:func:`same_token`, in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

CSRF_FIELD = "csrf_token"
CSRF_HEADER = b"X-CSRF-Token"
MIN_KEY_BYTES = 16


def same_token(expected: str, presented: str | bytes | None) -> bool:
    """Whether *presented* is *expected*, compared in constant time; absent or empty
    never matches."""
    if not presented or not expected:
        return False
    if isinstance(presented, str):
        presented = presented.encode("utf-8", "surrogatepass")
    return hmac.compare_digest(expected.encode("ascii"), presented)


class CsrfTokens:
    """Per-session tokens: ``token(session_id)``, ``valid(session_id, presented)``."""

    def __init__(self, key: bytes, *, purpose: bytes = b"ssgate-employer-csrf") -> None:
        if not isinstance(key, bytes) or len(key) < MIN_KEY_BYTES:
            raise ValueError(f"csrf_key must be at least {MIN_KEY_BYTES} bytes")
        self._key = key
        self._purpose = purpose + b"\x00"

    def __repr__(self) -> str:
        return "CsrfTokens(<key>)"

    def token(self, session_id: str) -> str:
        mac = hmac.new(self._key, self._purpose, hashlib.sha256)
        mac.update(session_id.encode("utf-8", "surrogatepass"))
        return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode("ascii")

    def valid(self, session_id: str, presented: str | bytes | None) -> bool:
        return same_token(self.token(session_id), presented)
