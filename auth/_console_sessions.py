"""Staff console sessions in the database: create, look up, end, sweep.

Owns the ``console_sessions`` rows.  Every function takes ``conn`` first, runs inside
the caller's transaction and returns plain values, so every console node sharing the
database sees the same sessions and a restart loses none.

A session id is 256 random bits, handed to the browser as its cookie and nowhere
else; the row is keyed by the id's SHA-256, so neither the database nor a repr holds
an id that works.  Looking a row up by the digest of what the browser sent also means
no comparison with a real id is ever timed.  Each session has its own CSRF token
(another 256 random bits, stored in the row: without the cookie it is worth nothing,
and storing it needs no key shared between nodes) and a ``ref``, a short random name
unrelated to the id, that audit events carry.

A session ends after ``idle_seconds`` without a request, after ``max_age_seconds`` in
all, at logout (:func:`end_console_session`), or when all of a member's sessions are
ended (:func:`end_staff_console_sessions`: disabled, password or OTP reset).  The last
marks the rows instead of deleting them: they can never be used again, and the
member's next request learns why (the console audits it) instead of finding an
unknown cookie.  Marked and expired rows go at the next sweep.

``last_seen_at`` is written at most every ``touch_seconds`` per session (5 s by
default), so a page with many requests costs one write, not one per request; a
session may therefore time out up to that much before its idle timeout.

Concurrency: each write is one statement, conditional where two nodes could race, and
a login locks the member's ``staff`` row (PostgreSQL ``FOR UPDATE``; SQLite's
``BEGIN IMMEDIATE`` serialises everything), so the per-member cap holds exactly and a
login cannot slip past a concurrent disable.  The cap on all sessions is not locked:
concurrent logins on several nodes may pass it by one each, briefly.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, delete, func, insert, or_, select, update

from ._schema import console_sessions, staff

ID_BYTES = 32  # 256 bits
REF_BYTES = 8
MAX_END_REASON = 32

UNKNOWN = "unknown"
IDLE = "idle"
MAX_AGE = "max-age"


def new_token(random_bytes: Callable[[int], bytes], n: int = ID_BYTES) -> str:
    """*n* random bytes as unpadded URL-safe base64 (cookie- and form-safe)."""
    return base64.urlsafe_b64encode(random_bytes(n)).rstrip(b"=").decode("ascii")


def token_digest(session_id: str) -> str:
    """The key a session id is stored under: its SHA-256, hex."""
    return hashlib.sha256(session_id.encode("utf-8", "replace")).hexdigest()


@dataclass(frozen=True)
class ConsoleSessionPolicy:
    """Timeouts and limits of staff console sessions."""

    idle_seconds: float = 15 * 60
    max_age_seconds: float = 8 * 3600
    max_sessions: int = 10_000  # all staff together
    max_sessions_per_staff: int = 10
    touch_seconds: float = 5.0  # last_seen_at is written at most this often

    def __post_init__(self) -> None:
        if not 0 < self.idle_seconds <= self.max_age_seconds:
            raise ValueError("session idle timeout must be positive and at most the maximum age")
        if self.max_sessions < 1 or self.max_sessions_per_staff < 1:
            raise ValueError("max_sessions and max_sessions_per_staff must be at least 1")
        if not 0 <= self.touch_seconds < self.idle_seconds:
            raise ValueError("touch_seconds must be at least 0 and less than the idle timeout")

    def expiry(self, *, created_at: float, last_seen_at: float, now: float) -> str:
        """``"max-age"``, ``"idle"``, or ``""`` while the session may be used."""
        if now - created_at >= self.max_age_seconds:
            return MAX_AGE
        if now - last_seen_at >= self.idle_seconds:
            return IDLE
        return ""


@dataclass(frozen=True)
class ConsoleSession:
    staff: str
    role: str  # the member's role at login
    ref: str  # non-secret, for audit events
    csrf_token: str = field(repr=False)
    created_at: float
    last_seen_at: float


@dataclass(frozen=True)
class ConsoleSessionLookup:
    """What a cookie's id found.

    *session* is the live session, or None; then *why* says why not: ``"unknown"``,
    ``"idle"``, ``"max-age"``, or the reason someone ended it (``"staff-disabled"``…),
    and *ended* is that ended session, for the audit event of its end (reported to one
    request only).
    """

    session: ConsoleSession | None
    why: str = ""
    ended: ConsoleSession | None = None


def _session(row: Row[Any]) -> ConsoleSession:
    return ConsoleSession(
        staff=row.staff,
        role=row.role,
        ref=row.ref,
        csrf_token=row.csrf_token,
        created_at=float(row.created_at),
        last_seen_at=float(row.last_seen_at),
    )


def _expired(now: float, policy: ConsoleSessionPolicy) -> ColumnElement[bool]:
    """:meth:`ConsoleSessionPolicy.expiry` in SQL; an ended row goes with its idle time."""
    c = console_sessions.c
    return or_(
        c.created_at <= now - policy.max_age_seconds,
        c.last_seen_at <= now - policy.idle_seconds,
    )


def create_console_session(
    conn: Connection,
    name: str,
    *,
    now: float,
    policy: ConsoleSessionPolicy,
    replaces: str = "",
    random_bytes: Callable[[int], bytes] = secrets.token_bytes,
) -> tuple[str, ConsoleSession] | None:
    """A new session for staff member *name*: (the id for the cookie, the session), or
    None if there is no such member or they are not active.  The session carries the
    member's role as it is now.

    Every call makes a fresh id.  *replaces* is the id the browser sent with its login,
    if any: that session ends (an id held before login is never kept).  When the member
    already has ``max_sessions_per_staff`` sessions, or everyone together
    ``max_sessions``, the least recently used make room.
    """
    member = conn.execute(
        select(staff.c.role, staff.c.status).where(staff.c.name == name).with_for_update()
    ).first()
    if member is None or member.status != "active":
        return None
    sweep_console_sessions(conn, now=now, policy=policy)
    if replaces:
        end_console_session(conn, replaces)
    c = console_sessions.c
    _evict(conn, keep=policy.max_sessions_per_staff - 1, where=c.staff == name)
    _evict(conn, keep=policy.max_sessions - 1, where=None)
    session_id = new_token(random_bytes)
    session = ConsoleSession(
        staff=name,
        role=member.role,
        ref="cs-" + random_bytes(REF_BYTES).hex(),
        csrf_token=new_token(random_bytes),
        created_at=now,
        last_seen_at=now,
    )
    conn.execute(
        insert(console_sessions).values(
            token_digest=token_digest(session_id),
            staff=session.staff,
            role=session.role,
            ref=session.ref,
            csrf_token=session.csrf_token,
            created_at=now,
            last_seen_at=now,
        )
    )
    return session_id, session


def _evict(conn: Connection, *, keep: int, where: ColumnElement[bool] | None) -> None:
    """Delete the least recently used rows (matching *where*) beyond *keep*."""
    c = console_sessions.c
    count = select(func.count()).select_from(console_sessions)
    if where is not None:
        count = count.where(where)
    excess = int(conn.execute(count).scalar_one()) - keep
    if excess <= 0:
        return
    oldest = select(c.token_digest).order_by(c.last_seen_at, c.created_at).limit(excess)
    if where is not None:
        oldest = oldest.where(where)
    conn.execute(delete(console_sessions).where(c.token_digest.in_(oldest.scalar_subquery())))


def lookup_console_session(
    conn: Connection, session_id: str, *, now: float, policy: ConsoleSessionPolicy
) -> ConsoleSessionLookup:
    """The live session for *session_id* (its idle clock restarted), or why there is none.

    An expired session is deleted.  A request that read the session before another
    node's end committed is still answered; every later one is refused.
    """
    c = console_sessions.c
    digest = token_digest(session_id)
    row = conn.execute(select(console_sessions).where(c.token_digest == digest)).first()
    if row is None:
        return ConsoleSessionLookup(None, UNKNOWN)
    session = _session(row)
    if row.end_reason is not None:
        # Only the request that removes the mark reports the end, so it is audited once.
        gone = conn.execute(
            delete(console_sessions).where(c.token_digest == digest, c.end_reason.is_not(None))
        ).rowcount
        if gone != 1:
            return ConsoleSessionLookup(None, UNKNOWN)
        return ConsoleSessionLookup(None, str(row.end_reason), ended=session)
    why = policy.expiry(created_at=session.created_at, last_seen_at=session.last_seen_at, now=now)
    if why:
        conn.execute(delete(console_sessions).where(c.token_digest == digest))
        return ConsoleSessionLookup(None, why)
    if now - session.last_seen_at >= policy.touch_seconds:
        # Conditional: never moves last_seen_at back (another node, a clock a bit behind)
        # and never revives a session ended since the read.
        conn.execute(
            update(console_sessions)
            .where(c.token_digest == digest, c.end_reason.is_(None), c.last_seen_at < now)
            .values(last_seen_at=now)
        )
        session = replace(session, last_seen_at=max(now, session.last_seen_at))
    return ConsoleSessionLookup(session)


def end_console_session(conn: Connection, session_id: str) -> bool:
    """Delete the session (logout); True if it was there."""
    result = conn.execute(
        delete(console_sessions).where(console_sessions.c.token_digest == token_digest(session_id))
    )
    return result.rowcount == 1


def end_staff_console_sessions(conn: Connection, name: str, *, reason: str, now: float) -> int:
    """End every session of staff member *name* at once, for *reason*
    (``"staff-disabled"``, ``"password-reset"``…); returns how many were live.

    The rows are marked, not deleted, so that each browser is told at its next request.
    """
    if not reason or len(reason) > MAX_END_REASON:
        raise ValueError(f"end reason must be 1 to {MAX_END_REASON} characters")
    c = console_sessions.c
    result = conn.execute(
        update(console_sessions)
        .where(c.staff == name, c.end_reason.is_(None))
        .values(end_reason=reason, ended_at=now)
    )
    return int(result.rowcount)


def sweep_console_sessions(conn: Connection, *, now: float, policy: ConsoleSessionPolicy) -> int:
    """Delete expired sessions, and ended ones nobody came back for; returns how many."""
    result = conn.execute(delete(console_sessions).where(_expired(now, policy)))
    return int(result.rowcount)
