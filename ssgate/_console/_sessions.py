"""Staff console sessions: the in-memory table, its timeouts, and the login-form token.

Sans-IO: time comes in as ``now`` and randomness from an injected ``random_bytes``.

A session id is 256 random bits, sent to the browser as the cookie and nowhere else;
the table is keyed by its SHA-256, so the ids themselves are never kept (nor shown
in a repr).  Each session has its own CSRF token (another 256 random bits) and a
``ref`` — a short random name, unrelated to the id, that audit events carry so an
officer can follow one console session without the log ever holding a cookie.

A session ends after :attr:`SessionPolicy.idle_seconds` without a request, after
:attr:`SessionPolicy.max_age_seconds` in all, or at logout.  Logging in always makes
a new id (session fixation: an id planted before login is never promoted).

Before login there is no server state: the login form's token is an HMAC, under a
key made at start, of a random pre-login cookie, so a flood of login-page requests
costs no memory, and a cross-site POST cannot carry a valid pair.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import web

ID_BYTES = 32  # 256 bits
REF_BYTES = 8


def token(random_bytes: Callable[[int], bytes], n: int = ID_BYTES) -> str:
    """*n* random bytes as unpadded URL-safe base64 (cookie- and form-safe)."""
    return base64.urlsafe_b64encode(random_bytes(n)).rstrip(b"=").decode("ascii")


def _digest(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode("ascii", "replace")).digest()


@dataclass(frozen=True)
class SessionPolicy:
    idle_seconds: float = 15 * 60
    max_age_seconds: float = 8 * 3600
    max_sessions: int = 10_000  # live sessions held in memory, all staff together

    def __post_init__(self) -> None:
        if not 0 < self.idle_seconds <= self.max_age_seconds:
            raise ValueError("session idle timeout must be positive and at most the maximum age")
        if self.max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")


@dataclass
class ConsoleSession:
    staff: str
    role: str
    ref: str  # non-secret, for audit events
    csrf_token: str = field(repr=False)
    created_at: float
    last_seen: float


class SessionTable:
    """Live console sessions of this process."""

    def __init__(self, *, policy: SessionPolicy, random_bytes: Callable[[int], bytes]) -> None:
        self.policy = policy
        self._random = random_bytes
        self._sessions: dict[bytes, ConsoleSession] = {}
        # For the login form's token (see the module docstring); never leaves the process.
        self._form_key = random_bytes(ID_BYTES)

    def __repr__(self) -> str:
        return f"SessionTable({len(self._sessions)} sessions, {self.policy!r})"

    def __len__(self) -> int:
        return len(self._sessions)

    def new_ref(self) -> str:
        """A fresh non-secret session name for audit events (``cs-`` + 16 hex digits)."""
        return "cs-" + self._random(REF_BYTES).hex()

    def create(
        self, staff: str, role: str, *, now: float, ref: str | None = None
    ) -> tuple[str, ConsoleSession]:
        """A new session for *staff*: (the id for the cookie, the session).  *ref* is the
        name its audit events carry (:meth:`new_ref` when None)."""
        self.sweep(now)
        if len(self._sessions) >= self.policy.max_sessions:
            # Full of live sessions: the longest idle one makes room.
            oldest = min(self._sessions, key=lambda k: self._sessions[k].last_seen)
            del self._sessions[oldest]
        session_id = token(self._random)
        session = ConsoleSession(
            staff=staff,
            role=role,
            ref=ref if ref is not None else self.new_ref(),
            csrf_token=token(self._random),
            created_at=now,
            last_seen=now,
        )
        self._sessions[_digest(session_id)] = session
        return session_id, session

    def lookup(self, session_id: str, *, now: float) -> tuple[ConsoleSession | None, str]:
        """(the live session, "") or (None, why: ``"unknown"``, ``"idle"``, ``"max-age"``).

        A live session's idle clock restarts; an expired one is removed.
        """
        key = _digest(session_id)
        session = self._sessions.get(key)
        if session is None:
            return None, "unknown"
        why = self._expiry(session, now)
        if why:
            del self._sessions[key]
            return None, why
        session.last_seen = now
        return session, ""

    def end(self, session_id: str) -> ConsoleSession | None:
        """Remove the session (logout); returns it if it was there."""
        return self._sessions.pop(_digest(session_id), None)

    def end_staff(self, staff: str) -> int:
        """End every session of *staff* (disabled, role changed); how many ended."""
        keys = [k for k, s in self._sessions.items() if s.staff == staff]
        for k in keys:
            del self._sessions[k]
        return len(keys)

    def sweep(self, now: float) -> int:
        """Drop expired sessions; how many were dropped."""
        dead = [k for k, s in self._sessions.items() if self._expiry(s, now)]
        for k in dead:
            del self._sessions[k]
        return len(dead)

    def _expiry(self, session: ConsoleSession, now: float) -> str:
        if now - session.created_at >= self.policy.max_age_seconds:
            return "max-age"
        if now - session.last_seen >= self.policy.idle_seconds:
            return "idle"
        return ""

    # -- before login ------------------------------------------------------------------

    def new_prelogin(self) -> str:
        """A fresh pre-login cookie value."""
        return token(self._random)

    def login_form_token(self, prelogin: str) -> str:
        """The token the login form carries for the pre-login cookie *prelogin*."""
        mac = hmac.new(
            self._form_key, b"login-form\x00" + prelogin.encode("ascii", "replace"), hashlib.sha256
        ).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")

    def check_login_form_token(self, prelogin: str, form_token: str) -> bool:
        if not prelogin or not form_token:
            return False
        expected = self.login_form_token(prelogin)
        return hmac.compare_digest(expected.encode("ascii"), form_token.encode("ascii", "replace"))


def same_token(expected: str, given: str) -> bool:
    """Constant-time comparison of a CSRF token with what the form carried."""
    return bool(given) and hmac.compare_digest(
        expected.encode("ascii"), given.encode("utf-8", "replace")
    )


class MemorySessions:
    """:class:`web.StaffSessions` over a :class:`SessionTable` in this process's memory
    (the *conn* arguments are unused): for tests, and a single node that accepts
    that a restart logs staff out."""

    def __init__(self, table: SessionTable) -> None:
        self.table = table

    def __repr__(self) -> str:
        return f"MemorySessions({self.table!r})"

    @staticmethod
    def _view(session: ConsoleSession) -> web.ConsoleSession:
        return web.ConsoleSession(session.staff, session.role, session.ref, session.csrf_token)

    def start(
        self, conn: Any, staff: str, role: str, *, now: float, ref: str
    ) -> tuple[str, web.ConsoleSession]:
        session_id, session = self.table.create(staff, role, now=now, ref=ref)
        return session_id, self._view(session)

    def find(
        self, conn: Any, session_id: str, *, now: float
    ) -> tuple[web.ConsoleSession | None, str]:
        session, why = self.table.lookup(session_id, now=now)
        return (None, why) if session is None else (self._view(session), "")

    def end(self, conn: Any, session_id: str) -> None:
        self.table.end(session_id)

    def end_staff(self, conn: Any, staff: str) -> int:
        return self.table.end_staff(staff)
