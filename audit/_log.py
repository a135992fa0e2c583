"""The log itself: append an event to the chain, verify the chain, query records.

Every function takes the caller's ``Connection`` and runs inside the caller's
transaction, so an action and the audit event describing it commit (or roll back)
together.  Results are plain values, never Rows.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any, TypeAlias

from sqlalchemy import Connection, Row, Select, bindparam, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from audit._chain import GENESIS_HASH, canonical_bytes, canonical_details, digest, event_hash
from audit._events import AuditChainError, AuditEvent, AuditEventError, AuditRecord, VerifyReport
from audit._schema import HEAD_ID, audit_archives, audit_events, audit_head

_AnyRow: TypeAlias = Row[*tuple[Any, ...]]

# verify reads this many rows per query: memory stays flat however long the log is.
VERIFY_CHUNK = 1000

_COLUMNS = (
    audit_events.c.seq,
    audit_events.c.at,
    audit_events.c.actor,
    audit_events.c.action,
    audit_events.c.subject,
    audit_events.c.outcome,
    audit_events.c.reason,
    audit_events.c.unit,
    audit_events.c.session_id,
    audit_events.c.details,
    audit_events.c.prev_hash,
    audit_events.c.hash,
)
_TEXT_COLUMNS = (
    "actor",
    "action",
    "subject",
    "outcome",
    "reason",
    "unit",
    "session_id",
    "details",
    "prev_hash",
    "hash",
)


# -- append ---------------------------------------------------------------------------


# Built once: every login, declaration and refusal appends, and building these
# statements anew each time cost more than running them.  Parameters of the head's
# UPDATE are named apart from its columns (SQLAlchemy reserves the column names).
_INSERT_EVENT = insert(audit_events)
_MOVE_HEAD = (
    update(audit_head)
    .where(audit_head.c.id == HEAD_ID)
    .values(last_seq=bindparam("p_seq"), last_hash=bindparam("p_hash"))
)
_TOUCH_HEAD = (
    update(audit_head).where(audit_head.c.id == HEAD_ID).values(last_seq=audit_head.c.last_seq)
)
_READ_HEAD = select(audit_head.c.last_seq, audit_head.c.last_hash).where(audit_head.c.id == HEAD_ID)
_READ_HEAD_FOR_UPDATE = _READ_HEAD.with_for_update()


def append(conn: Connection, event: AuditEvent) -> AuditRecord:
    """Add *event* to the end of the chain and return the stored record.

    Writers are serialised on the single ``audit_head`` row, across threads, processes
    and gateway nodes: ``SELECT … FOR UPDATE`` on PostgreSQL; on SQLite a write to the
    head row first, which takes the database write lock even on an engine that begins
    transactions deferred (ssgate's engine already begins them ``IMMEDIATE``).  The lock
    is held until the caller's transaction ends, so keep that transaction short.

    Raises :class:`AuditChainError` if the head row is gone while records remain: the
    log has been tampered with, and appending would hide it.
    """
    if not isinstance(event, AuditEvent):
        raise AuditEventError(f"append takes an AuditEvent, got {type(event).__name__}")
    last_seq, last_hash = _lock_head(conn)
    seq = last_seq + 1
    record_hash = event_hash(seq, event, last_hash)
    conn.execute(
        _INSERT_EVENT,
        {
            "seq": seq,
            "at": event.at,
            "actor": event.actor,
            "action": event.action,
            "subject": event.subject,
            "outcome": event.outcome,
            "reason": event.reason,
            "unit": event.unit,
            "session_id": event.session_id,
            "details": canonical_details(event.details),
            "prev_hash": last_hash,
            "hash": record_hash,
        },
    )
    conn.execute(_MOVE_HEAD, {"p_seq": seq, "p_hash": record_hash})
    return AuditRecord(seq=seq, event=event, prev_hash=last_hash, hash=record_hash)


def append_event(
    conn: Connection,
    *,
    at: float,
    actor: str,
    action: str,
    subject: str,
    outcome: str,
    reason: str = "",
    session_ref: str = "",
    details: Mapping[str, Any] | None = None,
) -> None:
    """:func:`append` an event given field by field, the session as *session_ref*: the
    one writer the staff console's audit trail and the people's portal share."""
    append(
        conn,
        AuditEvent(
            at=at,
            actor=actor,
            action=action,
            subject=subject,
            outcome=outcome,
            reason=reason,
            session_id=session_ref,
            details=dict(details or {}),
        ),
    )


def _lock_head(conn: Connection) -> tuple[int, str]:
    head = _read_head_locked(conn)
    if head is None:
        if _create_head(conn) and _has_records(conn):
            # We just created the head although records exist: someone deleted it.  Take
            # our head out again, in case the caller commits despite the error.
            conn.execute(delete(audit_head).where(audit_head.c.id == HEAD_ID))
            raise AuditChainError(
                "the audit chain head (table audit_head) is missing although audit records "
                "exist; the log may have been tampered with, so nothing more is appended "
                "until an officer has run verify"
            )
        head = _read_head_locked(conn)
        if head is None:  # pragma: no cover - the row was created or already there
            raise AuditChainError("the audit chain head could not be created")
    return head


def _read_head_locked(conn: Connection) -> tuple[int, str] | None:
    if conn.dialect.name == "sqlite":
        # A write before the read: SQLite takes the write lock here (waiting out
        # busy_timeout) instead of failing later when a read lock cannot be upgraded.
        conn.execute(_TOUCH_HEAD)
        stmt = _READ_HEAD
    else:
        stmt = _READ_HEAD_FOR_UPDATE
    row = conn.execute(stmt).one_or_none()
    if row is None:
        return None
    return int(row[0]), str(row[1])


def _create_head(conn: Connection) -> bool:
    """Insert the empty head unless it exists; True when this call inserted it."""
    values = {"id": HEAD_ID, "last_seq": 0, "last_hash": GENESIS_HASH}
    dialect = conn.dialect.name
    if dialect == "postgresql":
        # ON CONFLICT waits for a concurrent first writer instead of aborting our
        # (the caller's) transaction with a unique violation.
        stmt: Any = postgresql.insert(audit_head).values(values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(audit_head).values(values).on_conflict_do_nothing()
    else:
        stmt = insert(audit_head).values(values)
    # RETURNING, not rowcount: psycopg reports -1 for this INSERT through SQLAlchemy.
    return conn.execute(stmt.returning(audit_head.c.id)).first() is not None


def _has_records(conn: Connection) -> bool:
    return conn.execute(select(audit_events.c.seq).limit(1)).first() is not None


# -- verify ---------------------------------------------------------------------------

_Problem = tuple[int | None, str]  # (first bad seq, sentence)


def verify(conn: Connection) -> VerifyReport:
    """Walk the database's part of the chain in ``seq`` order and report the first
    damaged record.

    Detects an edited record (its hash no longer matches its contents), a deleted
    record (a gap in ``seq``), records swapped or re-linked (``seq`` and ``prev_hash``
    are inside each hash), deleted newest records (the table ends before the head
    says it does), records added behind the head's back, and a missing head.  Rows are
    read in chunks of :data:`VERIFY_CHUNK`.  An empty log verifies.

    When retention has moved the oldest records into archives (:mod:`audit._archive`),
    the database part starts after the newest archived record and links to its hash
    (:func:`archived_base`); ``checked`` counts the database's records only, and
    :func:`audit.verify_with_archives` checks the archives as well.

    The chain proves order and integrity against anyone who cannot rewrite the whole
    chain and its head; signed checkpoints (:mod:`audit._checkpoint`) cover that too.
    """
    _exact_floats(conn)
    head = _read_head(conn)
    # Walk up to the head as first seen: a record at or below it was committed with the
    # head, so a concurrent append on another node cannot make this walk look damaged.
    upper = None if head is None else head[0]
    base_seq, base_hash = archived_base(conn)

    expected_seq = base_seq + 1
    expected_prev = base_hash
    checked = 0
    problem = _check_archived_rows(conn, base_seq)
    if problem is not None:
        return VerifyReport(False, checked, problem[0], problem[1])
    for row in _walk(conn, upper, after=base_seq):
        problem = _check_position(row, expected_seq, base_seq) or _check_contents(
            row, expected_prev, base_seq
        )
        if problem is not None:
            return VerifyReport(False, checked, problem[0], problem[1])
        checked += 1
        expected_seq += 1
        expected_prev = str(row.hash)

    problem = _check_head(conn, head, expected_seq - 1, expected_prev)
    if problem is not None:
        return VerifyReport(False, checked, problem[0], problem[1])
    return VerifyReport(ok=True, checked=checked, first_bad_seq=None, problem="")


def archived_base(conn: Connection) -> tuple[int, str]:
    """Where the database's part of the chain starts: (the newest archived seq, its
    hash), or ``(0, GENESIS_HASH)`` when nothing was archived."""
    row = conn.execute(
        select(audit_archives.c.last_seq, audit_archives.c.last_hash)
        .order_by(audit_archives.c.last_seq.desc())
        .limit(1)
    ).one_or_none()
    return (0, GENESIS_HASH) if row is None else (int(row[0]), str(row[1]))


def _check_archived_rows(conn: Connection, base_seq: int) -> _Problem | None:
    """A row at or below the archived part was put back (or never deleted)."""
    if not base_seq:
        return None
    stray = conn.execute(
        select(func.min(audit_events.c.seq)).where(audit_events.c.seq <= base_seq)
    ).scalar_one_or_none()
    if stray is None:
        return None
    return (stray if isinstance(stray, int) else None), (
        f"audit record {stray} is in the database although records 1 to {base_seq} were "
        "archived: it was put back behind the log's back"
    )


def _read_head(conn: Connection) -> tuple[int, str] | None:
    row = conn.execute(
        select(audit_head.c.last_seq, audit_head.c.last_hash).where(audit_head.c.id == HEAD_ID)
    ).one_or_none()
    return None if row is None else (int(row[0]), str(row[1]))


def _walk(conn: Connection, upper: int | None, *, after: int = 0) -> Iterator[_AnyRow]:
    while True:
        stmt = select(*_COLUMNS).order_by(audit_events.c.seq).limit(VERIFY_CHUNK)
        if after:
            stmt = stmt.where(audit_events.c.seq > after)
        if upper is not None:
            stmt = stmt.where(audit_events.c.seq <= upper)
        rows: Sequence[_AnyRow] = conn.execute(stmt).all()
        yield from rows
        if len(rows) < VERIFY_CHUNK:
            return
        after = int(rows[-1].seq)


def _missing(first: int, last: int) -> str:
    if first == last:
        return f"audit record {first} is missing"
    return f"audit records {first} to {last} are missing"


def _check_position(row: _AnyRow, expected_seq: int, base_seq: int = 0) -> _Problem | None:
    seq = row.seq
    if isinstance(seq, bool) or not isinstance(seq, int):
        # SQLite stores whatever it is given; verify reports damage, it never crashes on it.
        return None, f"an audit record's sequence number was altered to {seq!r}, not an integer"
    if seq > expected_seq:
        if expected_seq == 1:
            where = f"records start at {seq}"
        elif expected_seq == base_seq + 1:
            where = f"records 1 to {base_seq} were archived; the database starts at {seq}"
        else:
            where = f"records jump from {expected_seq - 1} to {seq}"
        return expected_seq, f"{_missing(expected_seq, seq - 1)} ({where})"
    if seq < expected_seq:
        return seq, (
            f"audit record {seq} is out of sequence: records are numbered from {base_seq + 1}"
        )
    return None


def _check_contents(row: _AnyRow, expected_prev: str, base_seq: int = 0) -> _Problem | None:
    seq = int(row.seq)
    altered = f"audit record {seq} was altered"
    for name in _TEXT_COLUMNS:
        value = getattr(row, name)
        if not isinstance(value, str):
            return seq, f"{altered}: its {name} holds {type(value).__name__}, not text"
    at = row.at
    if isinstance(at, bool) or not isinstance(at, int | float):
        return seq, f"{altered}: its at holds {type(at).__name__}, not a number"

    computed = digest(
        canonical_bytes(
            seq=seq,
            at=float(at),
            actor=row.actor,
            action=row.action,
            subject=row.subject,
            outcome=row.outcome,
            reason=row.reason,
            unit=row.unit,
            session_id=row.session_id,
            details_json=row.details,
            prev_hash=row.prev_hash,
        )
    )
    if computed != row.hash:
        return seq, f"{altered}: its hash does not match its contents"
    if row.prev_hash != expected_prev:
        return seq, _unlinked(seq, base_seq)
    return None


def _unlinked(seq: int, base_seq: int) -> str:
    if seq == 1:
        return "audit record 1 is not the start of the chain: its prev_hash is not the genesis hash"
    if base_seq and seq == base_seq + 1:
        return (
            f"audit record {seq} is not linked to the archived record {base_seq}: its "
            f"prev_hash is not the hash the archive catalogue holds for record {base_seq}"
        )
    return (
        f"audit record {seq} is not linked to record {seq - 1}: its prev_hash is not "
        f"the hash of record {seq - 1}"
    )


def _check_head(
    conn: Connection, head: tuple[int, str] | None, last_seq: int, last_hash: str
) -> _Problem | None:
    """What is wrong at the tip, after records 1..last_seq were found intact."""
    if head is None:
        missing_head = (
            "the audit chain head (table audit_head) is missing although the log holds "
            f"records 1 to {last_seq}, so deleted newest records cannot be ruled out"
        )
        return (None, missing_head) if last_seq else None
    head_seq, head_hash = head
    if last_seq < head_seq:
        ends = f"ends at {last_seq}" if last_seq else "is empty"
        return last_seq + 1, (
            f"{_missing(last_seq + 1, head_seq)} (the chain head says the log ends at "
            f"{head_seq} but it {ends})"
        )
    if head_hash != last_hash:
        if head_seq == 0:
            return None, "the chain head was altered: it counts no records but holds a hash"
        return head_seq, (
            f"audit record {head_seq} does not match the chain head: the head holds a "
            "different hash for it"
        )
    # One statement, so one snapshot: a record committed with a newer head is not
    # "beyond" it; only a row inserted without moving the head is.
    beyond = conn.execute(
        select(func.min(audit_events.c.seq)).where(
            audit_events.c.seq
            > select(audit_head.c.last_seq).where(audit_head.c.id == HEAD_ID).scalar_subquery()
        )
    ).scalar_one_or_none()
    if beyond is not None:
        return (beyond if isinstance(beyond, int) else None), (
            f"audit record {beyond} lies beyond the chain head: it was not added by "
            "append, or the head was moved back"
        )
    return None


def _exact_floats(conn: Connection) -> None:
    # PostgreSQL prints double precision exactly only when extra_float_digits > 0 (the
    # default since 12); a server configured lower would round ``at`` and break hashes.
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL extra_float_digits = 3")


# -- query ----------------------------------------------------------------------------


def query(
    conn: Connection,
    *,
    actions: Collection[str] | None = None,
    subject: str | None = None,
    unit: str | None = None,
    session_id: str | None = None,
    actor: str | None = None,
    outcome: str | None = None,
    since: float | None = None,
    until: float | None = None,
    limit: int | None = None,
    newest_first: bool = False,
) -> list[AuditRecord]:
    """Records matching every filter given, in chain order (or newest first).

    ``actions`` matches any of the names given (an empty collection matches nothing);
    the other filters match exactly.  ``since <= at < until``.  ``limit`` caps the
    number of records returned, counted from the oldest (or the newest when
    ``newest_first``).  Raises :class:`AuditChainError` if a matching row cannot be
    read back as an event (the log was tampered with: run verify).
    """
    if isinstance(actions, str):
        raise AuditEventError("actions must be a collection of action names, not one string")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise AuditEventError(f"limit must be a non-negative integer or None, got {limit!r}")
    if actions is not None and not actions:
        return []
    if limit == 0:
        return []

    stmt: Select[Any] = select(*_COLUMNS)
    if actions is not None:
        stmt = stmt.where(audit_events.c.action.in_(sorted(set(actions))))
    for column, value in (
        (audit_events.c.subject, subject),
        (audit_events.c.unit, unit),
        (audit_events.c.session_id, session_id),
        (audit_events.c.actor, actor),
        (audit_events.c.outcome, outcome),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if since is not None:
        stmt = stmt.where(audit_events.c.at >= float(since))
    if until is not None:
        stmt = stmt.where(audit_events.c.at < float(until))
    stmt = stmt.order_by(audit_events.c.seq.desc() if newest_first else audit_events.c.seq)
    if limit is not None:
        stmt = stmt.limit(limit)

    _exact_floats(conn)
    return [_record(row) for row in conn.execute(stmt).all()]


def _record(row: _AnyRow) -> AuditRecord:
    seq = int(row.seq)
    try:
        details = json.loads(row.details)
        if not isinstance(details, dict):
            raise AuditEventError("details is not a JSON object")
        event = AuditEvent(
            at=row.at,
            actor=row.actor,
            action=row.action,
            subject=row.subject,
            outcome=row.outcome,
            reason=row.reason,
            unit=row.unit,
            session_id=row.session_id,
            details=details,
        )
    except (ValueError, TypeError) as e:  # AuditEventError and JSONDecodeError included
        raise AuditChainError(
            f"audit record {seq} cannot be read back as an event ({e}); the log may have "
            "been tampered with: run verify"
        ) from None
    return AuditRecord(seq=seq, event=event, prev_hash=str(row.prev_hash), hash=str(row.hash))
