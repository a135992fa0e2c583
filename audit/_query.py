"""Reading the log back for people: the officers' filters, in bounded batches.

:class:`EventFilter` is what an officer filters the log by (the console's actions
view and ``ssgate audit actions|logins`` read the same one); :func:`event_batch` is
one keyset page of it by ``seq`` (never OFFSET, so page 10,000 costs what page 1
does); :func:`iter_events` walks every match batch by batch, so an export of
millions of records holds one batch at a time.

Like :mod:`audit._log` every function takes the caller's ``Connection`` and returns
plain values.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any, Final

from sqlalchemy import ColumnElement, Connection, Select, func, or_, select

from audit._events import OUTCOMES, AuditEventError, AuditRecord
from audit._log import _COLUMNS, _exact_floats, _record
from audit._schema import audit_events

# Rows per query when walking every match: memory stays flat however many match.
BATCH = 1000

# A record as the views show and export it: the time as ISO 8601 with the reader's
# offset, no epoch float (the exact ``at`` and ``prev_hash`` are in ``export``).
VIEW_FIELDS: Final = (
    "seq",
    "time",
    "actor",
    "action",
    "subject",
    "outcome",
    "reason",
    "unit",
    "session_id",
    "details",
    "hash",
)


def iso_time(at: float, zone: tzinfo) -> str:
    """``2026-01-01T08:00:00.000000+08:00``: an instant in *zone*, offset shown."""
    return datetime.fromtimestamp(at, zone).isoformat(timespec="microseconds")


def view_row(record: AuditRecord, zone: tzinfo) -> dict[str, Any]:
    """*record* by :data:`VIEW_FIELDS`, its time in *zone*."""
    event = record.event
    return {
        "seq": record.seq,
        "time": iso_time(event.at, zone),
        "actor": event.actor,
        "action": event.action,
        "subject": event.subject,
        "outcome": event.outcome,
        "reason": event.reason,
        "unit": event.unit,
        "session_id": event.session_id,
        "details": dict(event.details),
        "hash": record.hash,
    }


@dataclass(frozen=True)
class EventFilter:
    """Every filter given must match (None: not filtered).

    *account* matches what the account was the subject of (provisioning, logins)
    and what it did itself (actor ``channel:ACCOUNT``: declarations, queries, its
    password change); *unit* the unit column; *action* that action and its
    sub-actions (``login`` matches ``login`` and ``login.resume``); *source* the
    host the event came from (the ``peer`` or ``source`` in its details, with or
    without a port); ``since <= at < until`` (epoch seconds).
    """

    account: str | None = None
    unit: str | None = None
    session_id: str | None = None
    action: str | None = None
    outcome: str | None = None
    source: str | None = None
    since: float | None = None
    until: float | None = None

    def __post_init__(self) -> None:
        if self.outcome is not None and self.outcome not in OUTCOMES:
            raise AuditEventError(
                f"outcome must be one of {sorted(OUTCOMES)}, got {self.outcome!r}"
            )

    def clauses(self) -> list[ColumnElement[bool]]:
        """The filter as SQL conditions on ``audit_events``."""
        c = audit_events.c
        out: list[ColumnElement[bool]] = []
        if self.account is not None:
            out.append(or_(c.subject == self.account, c.actor == f"channel:{self.account}"))
        for column, value in (
            (c.unit, self.unit),
            (c.session_id, self.session_id),
            (c.outcome, self.outcome),
        ):
            if value is not None:
                out.append(column == value)
        if self.action is not None:
            out.append(
                or_(
                    c.action == self.action, c.action.startswith(self.action + ".", autoescape=True)
                )
            )
        if self.source is not None:
            out.append(_from_host(self.source))
        if self.since is not None:
            out.append(c.at >= float(self.since))
        if self.until is not None:
            out.append(c.at < float(self.until))
        return out


def _from_host(host: str) -> ColumnElement[bool]:
    # details is canonical JSON (no spaces, keys sorted), so the text is predictable:
    # the channel writes "peer":"HOST:PORT", the console and services "source":"HOST"
    # or "HOST:PORT".  An IPv6 host that is a prefix of another (::1 and ::1:5) could
    # match both; the filter is for finding events, the rows show the exact peer.
    d = audit_events.c.details
    return or_(
        d.contains(f'"peer":"{host}:', autoescape=True),
        d.contains(f'"source":"{host}"', autoescape=True),
        d.contains(f'"source":"{host}:', autoescape=True),
    )


def last_seq(conn: Connection) -> int:
    """The newest record's ``seq`` (0 for an empty log): an export bounded by it holds
    what the log held when it began, not what is appended while it runs."""
    value = conn.execute(select(func.max(audit_events.c.seq))).scalar_one_or_none()
    return int(value or 0)


def event_batch(
    conn: Connection,
    where: EventFilter,
    *,
    after: int | None = None,
    before: int | None = None,
    limit: int = BATCH,
    newest_first: bool = False,
) -> list[AuditRecord]:
    """Up to *limit* records matching *where* with ``after < seq < before``, in chain
    order or newest first.  The next page starts after (or before) the last seq."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise AuditEventError(f"limit must be a positive integer, got {limit!r}")
    stmt: Select[Any] = select(*_COLUMNS)
    for clause in where.clauses():
        stmt = stmt.where(clause)
    if after is not None:
        stmt = stmt.where(audit_events.c.seq > after)
    if before is not None:
        stmt = stmt.where(audit_events.c.seq < before)
    order = audit_events.c.seq.desc() if newest_first else audit_events.c.seq
    _exact_floats(conn)
    return [_record(row) for row in conn.execute(stmt.order_by(order).limit(limit)).all()]


def iter_events(
    conn: Connection,
    where: EventFilter,
    *,
    upto: int | None = None,
    batch: int = BATCH,
    newest_first: bool = False,
) -> Iterator[AuditRecord]:
    """Every record matching *where* (with ``seq <= upto`` when given), read *batch*
    at a time by keyset, in chain order or newest first."""
    after: int | None = None
    before = None if upto is None else upto + 1
    while True:
        records = event_batch(
            conn, where, after=after, before=before, limit=batch, newest_first=newest_first
        )
        yield from records
        if len(records) < batch:
            return
        if newest_first:
            before = records[-1].seq
        else:
            after = records[-1].seq
