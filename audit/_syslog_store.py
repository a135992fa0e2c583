"""What each syslog collector has received: the forwarding cursor and its lease.

The audit log itself is the durable queue.  ``syslog_cursors`` holds, per collector,
the last audit ``seq`` known delivered (``delivered_seq``) and which node forwards to
it (``holder`` until ``lease_until``).  A forwarder reads the records after
``delivered_seq`` in bounded batches, sends them, and moves the cursor once it has
reason to believe they arrived; after a crash, a ``kill -9`` or a broken connection
it starts again from the cursor, so nothing is lost and a repeat is recognisable by
its ``seq`` (at least once).

Several nodes may share one database; the lease makes one of them forward to each
collector at a time (a second node would only send everything twice).  Taking or
renewing the lease locks the row as :func:`audit.evaluate_alerts` locks its cursor
(``FOR UPDATE`` on PostgreSQL, a write first on SQLite), and moving the cursor
requires still holding it, so a node whose lease ran out cannot move the cursor
behind its successor's back.

Audit records become visible in ``seq`` order (``append`` holds the chain head until
commit), so a cursor never skips a record committed later with a smaller ``seq``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Connection,
    Float,
    PrimaryKeyConstraint,
    String,
    Table,
    case,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from audit._events import AuditRecord
from audit._log import _COLUMNS, _exact_floats, _record
from audit._schema import HEAD_ID, audit_events, audit_head, metadata

MAX_COLLECTOR: Final = 255
MAX_HOLDER: Final = 128
SYSLOG_BATCH: Final = 500

T = TypeVar("T")

syslog_cursors = Table(
    "syslog_cursors",
    metadata,
    Column("collector", String(MAX_COLLECTOR), nullable=False),
    Column("delivered_seq", BigInteger, nullable=False),
    Column("holder", String(MAX_HOLDER), nullable=False),  # "" when nobody holds it
    Column("lease_until", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    PrimaryKeyConstraint("collector", name="pk_syslog_cursors"),
    CheckConstraint("delivered_seq >= 0", name="ck_syslog_cursors_delivered_seq"),
)


@dataclass(frozen=True)
class SyslogLease:
    """The cursor as one node found it: whether it holds the lease now, who does,
    the last ``seq`` delivered and the newest ``seq`` in the log."""

    held: bool
    holder: str
    delivered_seq: int
    head_seq: int

    @property
    def waiting(self) -> int:
        """Records in the log the collector has not (knowingly) received."""
        return max(0, self.head_seq - self.delivered_seq)


def claim_syslog_lease(
    conn: Connection, collector: str, *, holder: str, now: float, lease_seconds: float
) -> SyslogLease:
    """Take or renew *collector*'s lease for *holder* until ``now + lease_seconds``.

    Succeeds when nobody holds it, *holder* already does, or the holder's lease has
    run out (its node died or stopped).  A new collector starts at ``seq`` 0: it
    receives the whole log.
    """
    _check_names(collector, holder)
    values = {
        "collector": collector,
        "delivered_seq": 0,
        "holder": "",
        "lease_until": 0.0,
        "updated_at": now,
    }
    stmt: Any
    if conn.dialect.name == "postgresql":
        stmt = postgresql.insert(syslog_cursors).values(values).on_conflict_do_nothing()
    else:
        stmt = sqlite.insert(syslog_cursors).values(values).on_conflict_do_nothing()
    conn.execute(stmt)
    mine = syslog_cursors.c.collector == collector
    read = select(
        syslog_cursors.c.delivered_seq, syslog_cursors.c.holder, syslog_cursors.c.lease_until
    ).where(mine)
    if conn.dialect.name == "sqlite":
        # A write before the read takes SQLite's write lock now (as audit.append does).
        conn.execute(update(syslog_cursors).where(mine).values(holder=syslog_cursors.c.holder))
    else:
        read = read.with_for_update()
    row = conn.execute(read).one()
    delivered, current, until = int(row[0]), str(row[1]), float(row[2])
    head = _head_seq(conn)
    if current not in ("", holder) and until > now:
        return SyslogLease(False, current, delivered, head)
    conn.execute(
        update(syslog_cursors)
        .where(mine)
        .values(holder=holder, lease_until=now + lease_seconds, updated_at=now)
    )
    return SyslogLease(True, holder, delivered, head)


def advance_syslog_cursor(
    conn: Connection, collector: str, *, holder: str, seq: int, now: float
) -> bool:
    """Record that *collector* has everything up to *seq*; False (and nothing
    changed) when another node has taken the lease.  The cursor never moves back."""
    _check_names(collector, holder)
    result = conn.execute(
        update(syslog_cursors)
        .where(
            syslog_cursors.c.collector == collector,
            syslog_cursors.c.holder == holder,
        )
        .values(
            delivered_seq=case(
                (syslog_cursors.c.delivered_seq > seq, syslog_cursors.c.delivered_seq),
                else_=seq,
            ),
            updated_at=now,
        )
        .returning(syslog_cursors.c.collector)
    )
    return result.first() is not None


def release_syslog_lease(conn: Connection, collector: str, *, holder: str) -> None:
    """Give the lease up (a clean stop), so another node can take over at once."""
    _check_names(collector, holder)
    conn.execute(
        update(syslog_cursors)
        .where(syslog_cursors.c.collector == collector, syslog_cursors.c.holder == holder)
        .values(holder="", lease_until=0.0)
    )


def syslog_records(
    conn: Connection, after_seq: int, *, limit: int = SYSLOG_BATCH
) -> list[AuditRecord]:
    """The records after *after_seq* in ``seq`` order, at most *limit* of them."""
    _exact_floats(conn)
    rows = conn.execute(
        select(*_COLUMNS)
        .where(audit_events.c.seq > after_seq)
        .order_by(audit_events.c.seq)
        .limit(limit)
    ).all()
    return [_record(row) for row in rows]


def syslog_batch(
    conn: Connection,
    after_seq: int,
    encode: Callable[[list[AuditRecord]], T],
    *,
    limit: int = SYSLOG_BATCH,
) -> tuple[int, int, T]:
    """``(records, last seq, encode(records))`` for the records after *after_seq*:
    the encoding (formatting, framing) runs here, on the database thread, too."""
    records = syslog_records(conn, after_seq, limit=limit)
    last = records[-1].seq if records else after_seq
    return len(records), last, encode(records)


def get_syslog_cursors(conn: Connection) -> dict[str, int]:
    """Every collector's delivered ``seq``, by collector."""
    rows = conn.execute(select(syslog_cursors.c.collector, syslog_cursors.c.delivered_seq)).all()
    return {str(r[0]): int(r[1]) for r in rows}


def _head_seq(conn: Connection) -> int:
    value = conn.execute(
        select(audit_head.c.last_seq).where(audit_head.c.id == HEAD_ID)
    ).scalar_one_or_none()
    return 0 if value is None else int(value)


def _check_names(collector: str, holder: str) -> None:
    if not 0 < len(collector) <= MAX_COLLECTOR:
        raise ValueError(f"a syslog collector name is 1 to {MAX_COLLECTOR} characters")
    if not 0 < len(holder) <= MAX_HOLDER:
        raise ValueError(f"a syslog lease holder name is 1 to {MAX_HOLDER} characters")
