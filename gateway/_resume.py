"""Resume tokens: how ``ssgate connect`` reattaches after a network drop without a code.

A token is ``v1.<session id>.<generation>.<expiry>.<mac>`` where the MAC is
HMAC-SHA256 (key ``resume.key`` in the state directory) over the session id, the
generation, the expiry and the SHA-256 fingerprint of the client certificate it was
issued to.  So a token only works with the same certificate, only before it expires
(2 minutes), and only once: resuming consumes the generation atomically in the
session registry and the gateway hands out the next one.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

RESUME_VALIDITY_SECONDS = 120.0
_TOKEN = re.compile(rb"v1\.([0-9a-f]{32})\.([0-9]{1,9})\.([0-9]{1,12})\.([0-9a-f]{64})")


class ResumeTokenError(ValueError):
    """The token is malformed, forged, expired or for another certificate."""


@dataclass(frozen=True)
class ResumeClaim:
    session_id: str
    generation: int


def _mac(key: bytes, session_id: str, generation: int, expires: int, fingerprint: str) -> str:
    message = f"ssgate-resume-v1|{session_id}|{generation}|{expires}|{fingerprint}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def issue_resume_token(
    key: bytes, *, session_id: str, generation: int, fingerprint: str, now: float
) -> bytes:
    expires = int(now + RESUME_VALIDITY_SECONDS)
    mac = _mac(key, session_id, generation, expires, fingerprint)
    return f"v1.{session_id}.{generation}.{expires}.{mac}".encode()


def verify_resume_token(key: bytes, token: bytes, *, fingerprint: str, now: float) -> ResumeClaim:
    match = _TOKEN.fullmatch(token)
    if match is None:
        raise ResumeTokenError("malformed resume token")
    session_id = match.group(1).decode()
    generation, expires = int(match.group(2)), int(match.group(3))
    expected = _mac(key, session_id, generation, expires, fingerprint)
    if not hmac.compare_digest(expected.encode(), match.group(4)):
        raise ResumeTokenError("resume token not valid for this certificate")
    if now > expires:
        raise ResumeTokenError("resume token expired")
    return ResumeClaim(session_id, generation)
