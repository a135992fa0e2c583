"""Who is locked out now: the lockout store read back for the officers' pages.

:mod:`auth._store` writes the counters (the authenticator) and clears them (a
carrier's unlock); this reads them in bulk.  A principal is locked while
``hard_locked`` (the hard cap: until someone unlocks it) or ``locked_until_at`` is
in the future (the threshold: a timed lock).  A source address is throttled while
its window holds ``source_max_failures`` refused attempts; that counter belongs to
the address, not to any account, and simply runs out with its window.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, or_, select, true

from ._lockout import LockoutPolicy
from ._schema import credentials, source_failures
from ._store import CredentialState, get_credential_state, source_key

# A page lists at most this many; more locked at once is an attack in progress,
# and the failures view groups it better than a list would.
MAX_LISTED = 500


@dataclass(frozen=True)
class ThrottledSource:
    source: str  # the address as the authenticator counted it (a long one is hashed)
    window_started_at: float
    until: float  # when the window, and with it the throttle, runs out
    failures: int


def locked_principals(
    conn: Connection, *, now: float, kind: str = "account", limit: int = MAX_LISTED
) -> list[CredentialState]:
    """The principals of *kind* locked at *now*, the most recently counted first."""
    c = credentials.c
    names = conn.execute(
        select(c.principal)
        .where(
            c.kind == kind,
            or_(c.hard_locked == true(), c.locked_until_at > now),
        )
        .order_by(c.updated_at.desc(), c.principal)
        .limit(limit)
    ).scalars()
    found = (get_credential_state(conn, name) for name in list(names))
    return [state for state in found if state is not None]


def throttled_sources(
    conn: Connection, *, now: float, policy: LockoutPolicy, limit: int = MAX_LISTED
) -> list[ThrottledSource]:
    """The source addresses the authenticator refuses at *now*, newest window first."""
    t = source_failures.c
    window = policy.source_window_seconds
    rows = conn.execute(
        select(t.source, t.window_started_at, t.failures)
        .where(
            t.window_started_at > now - window,
            t.failures >= policy.source_max_failures,
        )
        .order_by(t.window_started_at.desc(), t.source)
        .limit(limit)
    )
    return [
        ThrottledSource(
            source=row.source,
            window_started_at=float(row.window_started_at),
            until=float(row.window_started_at) + window,
            failures=int(row.failures),
        )
        for row in rows
    ]


def source_throttle_wait(
    conn: Connection, source: str, *, now: float, policy: LockoutPolicy
) -> float | None:
    """Seconds until *source* may try again, or None if it is not throttled at *now*.

    A throttled source is refused before anything about the account is looked at, so
    telling it when its window runs out reveals nothing it could not count itself.
    """
    t = source_failures.c
    row = conn.execute(
        select(t.window_started_at, t.failures).where(t.source == source_key(source))
    ).first()
    if row is None or int(row.failures) < policy.source_max_failures:
        return None
    until = float(row.window_started_at) + policy.source_window_seconds
    return until - now if until > now else None
