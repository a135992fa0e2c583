"""Taking back a reserved login attempt whose password could not be evaluated.

:func:`auth._store.reserve_attempt` pre-charges a failure before the password is
checked.  When the check could not be made at all — the staff directory was down — the
attempt was no guess, and :func:`refund_attempt` puts the lockout counters back as they
were before the reservation.

It is one conditional UPDATE: the counters are restored only if they are still exactly
what the reservation left.  If another attempt changed them in between, nothing is
restored and this attempt stays counted — the safe direction: an outage can at worst
count as a failure under a race, never un-count somebody else's wrong guess.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, select, update

from ._schema import credentials


@dataclass(frozen=True)
class LockoutCounters:
    """The lockout columns of one credentials row."""

    consecutive_failures: int
    total_failures: int
    lock_count: int
    locked_until_at: float | None
    hard_locked: bool


def lockout_counters(conn: Connection, principal: str) -> LockoutCounters | None:
    c = credentials.c
    row = conn.execute(
        select(
            c.consecutive_failures,
            c.total_failures,
            c.lock_count,
            c.locked_until_at,
            c.hard_locked,
        ).where(c.principal == principal)
    ).first()
    if row is None:
        return None
    return LockoutCounters(
        consecutive_failures=int(row.consecutive_failures),
        total_failures=int(row.total_failures),
        lock_count=int(row.lock_count),
        locked_until_at=None if row.locked_until_at is None else float(row.locked_until_at),
        hard_locked=bool(row.hard_locked),
    )


def refund_attempt(
    conn: Connection,
    principal: str,
    *,
    before: LockoutCounters,
    after: LockoutCounters,
    now: float,
) -> bool:
    """Restore *before* if the row still holds *after*; True if it was restored."""
    c = credentials.c
    locked = (
        c.locked_until_at.is_(None)
        if after.locked_until_at is None
        else c.locked_until_at == after.locked_until_at
    )
    result = conn.execute(
        update(credentials)
        .where(
            c.principal == principal,
            c.consecutive_failures == after.consecutive_failures,
            c.total_failures == after.total_failures,
            c.lock_count == after.lock_count,
            locked,
            c.hard_locked == after.hard_locked,
        )
        .values(
            consecutive_failures=before.consecutive_failures,
            total_failures=before.total_failures,
            lock_count=before.lock_count,
            locked_until_at=before.locked_until_at,
            hard_locked=before.hard_locked,
            updated_at=now,
        )
    )
    return result.rowcount == 1
