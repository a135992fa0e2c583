"""The portal's browser sessions, in the database (any node serves any person, and a
restart logs nobody out).  Blocking functions inside the caller's transaction.

The cookie carries 256 random bits; the table keeps their SHA-256, so a copy of the
table cannot be replayed as cookies.  A session ends at logout, after
:attr:`SessionPolicy.idle_seconds` without a request, after
:attr:`SessionPolicy.max_age_seconds` in all, and when the counter resets the
person's password.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field

from sqlalchemy import Connection, delete, insert, select, update

from declare_app._schema import persons

from ._schema import person_accounts, portal_sessions


@dataclass(frozen=True)
class SessionPolicy:
    idle_seconds: float = 15 * 60
    max_age_seconds: float = 8 * 3600


@dataclass(frozen=True)
class PortalSession:
    """A live session: whose (principal and 个人编号 from the account row, never
    from the request), its audit reference and CSRF token."""

    principal: str
    person_number: str
    ref: str
    must_change_password: bool
    csrf_token: str = field(repr=False)


def digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("ascii", "replace")).hexdigest()


def start_session(
    conn: Connection, principal: str, session_id: str, *, now: float, replaces: str = ""
) -> PortalSession | None:
    """A new session for an active account (None if it is not), ending *replaces*."""
    if replaces:
        end_session(conn, replaces)
    ref = "ps-" + secrets.token_hex(8)
    csrf = secrets.token_urlsafe(32)
    conn.execute(
        insert(portal_sessions).values(
            token_digest=digest(session_id),
            principal=principal,
            ref=ref,
            csrf_token=csrf,
            created_at=now,
            last_seen_at=now,
        )
    )
    found = find_session(conn, session_id, now=now, policy=SessionPolicy())
    return found


def find_session(
    conn: Connection, session_id: str, *, now: float, policy: SessionPolicy
) -> PortalSession | None:
    """The live session of *session_id* (its idle clock restarts), or None."""
    s, a = portal_sessions.c, person_accounts.c
    row = conn.execute(
        select(
            s.principal,
            s.ref,
            s.csrf_token,
            s.created_at,
            s.last_seen_at,
            a.person_number,
            a.status,
            a.must_change_password,
        )
        .join_from(portal_sessions, person_accounts, a.principal == s.principal)
        .join(persons, persons.c.person_number == a.person_number)
        .where(s.token_digest == digest(session_id))
    ).first()
    if row is None:
        return None
    expired = (
        now - float(row.last_seen_at) > policy.idle_seconds
        or now - float(row.created_at) > policy.max_age_seconds
        or row.status != "active"
    )
    if expired:
        end_session(conn, session_id)
        return None
    conn.execute(
        update(portal_sessions).where(s.token_digest == digest(session_id)).values(last_seen_at=now)
    )
    return PortalSession(
        principal=row.principal,
        person_number=row.person_number,
        ref=row.ref,
        must_change_password=bool(row.must_change_password),
        csrf_token=row.csrf_token,
    )


def end_session(conn: Connection, session_id: str) -> None:
    conn.execute(
        delete(portal_sessions).where(portal_sessions.c.token_digest == digest(session_id))
    )


def password_changed(conn: Connection, principal: str, *, now: float) -> None:
    conn.execute(
        update(person_accounts)
        .where(person_accounts.c.principal == principal)
        .values(must_change_password=False, updated_at=now)
    )


def sweep_sessions(conn: Connection, *, now: float, policy: SessionPolicy) -> int:
    """Delete sessions past their idle or maximum age; how many."""
    s = portal_sessions.c
    result = conn.execute(
        delete(portal_sessions).where(
            (s.last_seen_at < now - policy.idle_seconds)
            | (s.created_at < now - policy.max_age_seconds)
        )
    )
    return int(result.rowcount)
