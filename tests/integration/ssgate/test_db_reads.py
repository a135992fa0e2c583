"""The read path of :class:`ssgate._db.Database`: reads never take the write lock.

On SQLite the read engine's transactions are deferred ``BEGIN`` on their own
connections with ``PRAGMA query_only``; on PostgreSQL they are read-only
transactions.  The write path keeps ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

import sqlite3

import pytest
import pytest_twisted  # type: ignore[import-untyped, unused-ignore]
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    Table,
    exc,
    func,
    insert,
    select,
    text,
)

from ssgate._db import Database, in_transaction, read_engine

_metadata = MetaData()
_things = Table("read_path_things", _metadata, Column("n", Integer, primary_key=True))


@pytest.fixture
def filled(engine: Engine) -> Engine:
    _metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(_things), [{"n": i} for i in range(10)])
    return engine


def _count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(_things)).scalar_one())


def test_a_read_is_not_blocked_by_an_open_read_or_an_open_write(filled: Engine) -> None:
    """While one read transaction is open and a writer holds the write lock, another
    read on the read path runs at once and sees the last committed state."""
    reader = read_engine(filled)
    assert reader is not None
    with reader.connect() as long_read, filled.connect() as writing:
        long_read.begin()
        assert _count(long_read) == 10
        writing.begin()
        writing.execute(insert(_things), {"n": 10})  # uncommitted, holding the lock
        assert in_transaction(reader, _count) == 10
        writing.commit()
        assert in_transaction(reader, _count) == 11
    if reader is not filled:
        reader.dispose()


def test_the_read_path_refuses_to_write(filled: Engine) -> None:
    """A store function that writes fails on the read path instead of racing the writer."""
    reader = read_engine(filled)
    assert reader is not None

    def write(conn: Connection) -> None:
        conn.execute(insert(_things), {"n": 99})

    with pytest.raises(exc.DBAPIError):
        in_transaction(reader, write)
    assert in_transaction(filled, _count) == 10
    if reader is not filled:
        reader.dispose()


def test_postgresql_reads_are_read_only_transactions_and_writes_are_not(pg_engine: Engine) -> None:
    """The read-only flag lives for the read's checkout only: the pool's next writer
    gets a read-write transaction."""
    reader = read_engine(pg_engine)
    assert reader is not None
    show = text("SHOW transaction_read_only")
    assert in_transaction(reader, lambda conn: conn.execute(show).scalar_one()) == "on"
    assert in_transaction(pg_engine, lambda conn: conn.execute(show).scalar_one()) == "off"


def test_sqlite_writes_still_serialise(sqlite_engine: Engine) -> None:
    """The write path still begins with BEGIN IMMEDIATE: a second writer waits for (and
    here, with a short timeout, fails on) the lock instead of reading first."""
    _metadata.create_all(sqlite_engine)
    with sqlite_engine.connect() as first:
        first.begin()
        first.execute(insert(_things), {"n": 1})
        raw = sqlite3.connect(str(sqlite_engine.url.database), timeout=0.05)
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                raw.execute("BEGIN IMMEDIATE")
        finally:
            raw.close()
        first.commit()


def test_in_memory_sqlite_has_no_separate_readers() -> None:
    """One in-memory connection cannot be read beside itself: reads take the write path."""
    from ssgate._db import make_engine

    engine = make_engine("sqlite://")
    assert read_engine(engine) is None
    engine.dispose()


TEST_TIMEOUT = 60.0


@pytest_twisted.ensureDeferred
async def test_an_open_stream_delays_neither_writes_nor_reads(filled: Engine) -> None:
    """While a stream holds its read transaction open between batches (an export
    waiting for a slow client), a write and another read complete, and the stream
    goes on reading its own snapshot: the rows as they were when it began."""
    from twisted.internet import reactor

    db = Database(filled, reactor)
    try:
        stream = db.stream(
            lambda conn: (n for (n,) in conn.execute(select(_things.c.n).order_by(_things.c.n)))
        )
        first = await stream.next(3).addTimeout(TEST_TIMEOUT, reactor)
        assert first == [0, 1, 2]
        await db.run(lambda conn: conn.execute(insert(_things), {"n": 10})).addTimeout(
            TEST_TIMEOUT, reactor
        )
        assert await db.read(_count).addTimeout(TEST_TIMEOUT, reactor) == 11
        rest = await stream.next(100).addTimeout(TEST_TIMEOUT, reactor)
        if filled.dialect.name == "sqlite":
            assert rest == list(range(3, 10))  # its snapshot
        else:
            assert rest[:7] == list(range(3, 10))  # read committed: may see the new row
        assert await stream.next(100) == []
        await stream.close()
    finally:
        db.close()
