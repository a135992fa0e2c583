"""Resumable chain verification: :func:`audit.verify` cut into batches.

:func:`audit.verify` walks the whole chain in one transaction, which is right for
``ssgate audit verify`` and wrong for a console page over millions of records: one
transaction would hold a database thread (and on PostgreSQL a snapshot) for minutes.
Here the same walk is split: :func:`begin_verify` reads the head and fixes where the
walk ends, then each :func:`verify_batch` checks the records ``[cursor, cursor +
limit)`` in its own short transaction and hands back a new :class:`ChainWalk`
carrying what the next batch needs (the next expected ``seq`` and the previous
record's hash).  The checks themselves are :mod:`audit._log`'s, so a batched walk and
:func:`audit.verify` find the same first bad record.

Between batches others may append: the walk ends at the head as first seen (a record
at or below it was committed with that head), exactly as :func:`audit.verify` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from sqlalchemy import Connection, func, select

from audit._chain import GENESIS_HASH
from audit._events import VerifyReport
from audit._log import (
    _COLUMNS,
    VERIFY_CHUNK,
    _AnyRow,
    _check_archived_rows,
    _check_contents,
    _check_head,
    _check_position,
    _exact_floats,
    _read_head,
    archived_base,
)
from audit._schema import audit_events


@dataclass(frozen=True)
class RangeCheck:
    """What checking one range of records found: how many were intact, what the next
    record must be (``expected_seq`` after ``prev_hash``), and the first problem."""

    checked: int
    expected_seq: int
    prev_hash: str
    first_bad_seq: int | None = None
    problem: str = ""


@dataclass(frozen=True)
class ChainWalk:
    """A verification in progress, carried from one batch to the next.

    ``upper`` is the last ``seq`` the walk covers (the head's when it began, or the
    highest stored one if the head is missing); ``cursor`` is where the next batch
    reads from.  ``report`` is set once the walk is finished.
    """

    head: tuple[int, str] | None
    upper: int
    cursor: int = 1
    expected_seq: int = 1
    prev_hash: str = GENESIS_HASH
    checked: int = 0
    report: VerifyReport | None = None
    base: int = 0  # the newest archived seq: the database's part starts after it

    @property
    def done(self) -> bool:
        return self.report is not None

    @property
    def total(self) -> int:
        """How many records the walk covers (the database's, up to the head as it was
        when the walk began)."""
        return max(0, self.upper - self.base)


def check_range(
    conn: Connection, start: int, stop: int, *, expected_seq: int, prev_hash: str, base: int = 0
) -> RangeCheck:
    """Check the records with ``start <= seq < stop``, the first of them expected to be
    *expected_seq* and linked to *prev_hash*; stops at the first problem."""
    _exact_floats(conn)
    rows: Sequence[_AnyRow] = conn.execute(
        select(*_COLUMNS)
        .where(audit_events.c.seq >= start, audit_events.c.seq < stop)
        .order_by(audit_events.c.seq)
    ).all()
    checked = 0
    for row in rows:
        problem = _check_position(row, expected_seq, base) or _check_contents(row, prev_hash, base)
        if problem is not None:
            return RangeCheck(checked, expected_seq, prev_hash, problem[0], problem[1])
        checked += 1
        expected_seq += 1
        prev_hash = str(row.hash)
    return RangeCheck(checked, expected_seq, prev_hash)


def begin_verify(conn: Connection) -> ChainWalk:
    """A walk over the database's part of the chain as it stands now (nothing checked
    yet): after the newest archived record, linked to its hash, as :func:`audit.verify`
    walks it."""
    head = _read_head(conn)
    base, base_hash = archived_base(conn)
    if head is not None:
        upper = head[0]
    else:
        # No head: walk whatever is stored, so that damage below is still found first.
        highest = conn.execute(select(func.max(audit_events.c.seq))).scalar_one_or_none()
        upper = highest if isinstance(highest, int) else 0
    walk = ChainWalk(
        head=head,
        upper=upper,
        cursor=base + 1,
        expected_seq=base + 1,
        prev_hash=base_hash,
        base=base,
    )
    stray = _check_archived_rows(conn, base)
    if stray is not None:
        return replace(walk, report=VerifyReport(False, 0, stray[0], stray[1]))
    return walk


def verify_batch(conn: Connection, walk: ChainWalk, *, limit: int = VERIFY_CHUNK) -> ChainWalk:
    """Check the next *limit* sequence numbers of *walk* (one short transaction's
    work); the walk returned is finished (``report`` set) at the first problem or
    after the last batch, which also checks the head."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    if walk.done:
        return walk
    if walk.cursor <= walk.upper:
        stop = min(walk.cursor + limit, walk.upper + 1)
        found = check_range(
            conn,
            walk.cursor,
            stop,
            expected_seq=walk.expected_seq,
            prev_hash=walk.prev_hash,
            base=walk.base,
        )
        checked = walk.checked + found.checked
        if found.problem:
            report = VerifyReport(False, checked, found.first_bad_seq, found.problem)
            return replace(walk, checked=checked, report=report)
        walk = replace(
            walk,
            cursor=stop,
            expected_seq=found.expected_seq,
            prev_hash=found.prev_hash,
            checked=checked,
        )
        if stop <= walk.upper:
            return walk
    # The last record found is expected_seq - 1 (checked counts only the database part).
    problem = _check_head(conn, walk.head, walk.expected_seq - 1, walk.prev_hash)
    if problem is not None:
        return replace(walk, report=VerifyReport(False, walk.checked, problem[0], problem[1]))
    return replace(walk, report=VerifyReport(True, walk.checked, None, ""))
