"""The database: engine construction, the dedicated thread pools, and migrations.

SQLAlchemy Core only.  Every store function in the feature packages has the shape
``fn(conn: Connection, *args) -> plain value`` and runs inside one transaction that
:class:`Database` opens on its own thread pool, never on the reactor thread and never on
the reactor's shared pool (DNS and metrics live there).

Writes and reads take different paths.  :meth:`Database.run` is the write path: on
SQLite one thread and ``BEGIN IMMEDIATE``, so writers queue instead of failing.
:meth:`Database.read` is the read path, for work that only selects: a few threads of
its own, each transaction read-only (SQLite: a deferred ``BEGIN`` on connections of a
second engine with ``PRAGMA query_only``, which WAL lets run beside the writer and
each other; PostgreSQL: ``SET TRANSACTION READ ONLY`` through psycopg's
``read_only``).  So a long read — one unit's export — never holds the write lock and
never waits for it, and a page that writes never waits for someone else's read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from auth import RunnerClosed

P = ParamSpec("P")
T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 10_000
READ_THREADS = 4


class DatabaseURLError(ValueError):
    """The configured database URL names a backend ssgate does not support."""


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def make_engine(url: str) -> Engine:
    """Build the engine for *url*: SQLite (embedded default) or PostgreSQL via psycopg 3.

    ``hide_parameters``: a failed statement's error text (and so a logged failure)
    never carries its parameters — password hashes, sealed secrets, CSRF tokens and
    ID numbers travel as parameters.

    SQLite gets WAL, a busy timeout and ``BEGIN IMMEDIATE`` for every transaction:
    with deferred ``BEGIN`` a reader that later writes cannot wait for the lock and
    fails with "database is locked" under threads (measured in STACK.md).
    """
    try:
        parsed = make_url(url)
    except exc.ArgumentError as e:
        raise DatabaseURLError(f"database.url {url!r} is not a database URL") from e
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url, in_memory=parsed.database in (None, "", ":memory:"))
    if backend == "postgresql":
        if parsed.get_driver_name() != "psycopg":
            raise DatabaseURLError(
                f"database.url {parsed.render_as_string(hide_password=True)!r}: "
                "write postgresql+psycopg://… (psycopg 3 is the supported driver)"
            )
        return create_engine(
            parsed,
            pool_pre_ping=True,
            connect_args={"connect_timeout": 10},
            hide_parameters=True,
        )
    raise DatabaseURLError(
        f"database.url {parsed.render_as_string(hide_password=True)!r}: "
        "only sqlite:///PATH and postgresql+psycopg://… are supported"
    )


def read_engine(engine: Engine, *, pool_size: int = READ_THREADS) -> Engine | None:
    """An engine whose transactions are read-only, beside *engine*; ``None`` when the
    database cannot be read on connections of its own (in-memory SQLite is one
    connection), so reads take the write path.

    SQLite: a second engine on the same file, deferred ``BEGIN`` (a reader takes no
    lock; WAL gives it a snapshot) and ``PRAGMA query_only`` so a write attempted on
    the read path fails loudly instead of quietly racing the writer.  PostgreSQL: the
    same pool with psycopg's ``read_only`` set for the connection's checkout.
    """
    if engine.dialect.name == "postgresql":
        return engine.execution_options(postgresql_readonly=True)
    url = engine.url
    if url.database in (None, "", ":memory:"):
        return None
    reader = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        hide_parameters=True,
    )

    @event.listens_for(reader, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA query_only=ON")
        cur.close()

    @event.listens_for(reader, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN")

    return reader


def _sqlite_engine(url: str, *, in_memory: bool) -> Engine:
    if in_memory:
        engine = create_engine(
            url,
            poolclass=StaticPool,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            hide_parameters=True,
        )
    else:
        engine = create_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, hide_parameters=True
        )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
        cur = dbapi_conn.cursor()
        if not in_memory:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def in_transaction(
    engine: Engine,
    fn: Callable[Concatenate[Connection, P], T],
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """Run ``fn(conn, ...)`` in one transaction, retrying briefly on lock contention."""
    delay = 0.05
    for attempt in range(5):
        try:
            with engine.begin() as conn:
                return fn(conn, *args, **kwargs)
        except exc.OperationalError as e:
            if attempt == 4 or not _is_transient(e):
                raise
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def _is_transient(e: exc.OperationalError) -> bool:
    text = str(e.orig).lower()
    return (
        "database is locked" in text or "deadlock detected" in text or "could not serialize" in text
    )


class _DaemonThread(threading.Thread):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, daemon=True, **kwargs)


class WorkerPool:
    """A dedicated Twisted thread pool (not the reactor's shared one), started on first use."""

    def __init__(self, reactor: Any, *, name: str, max_threads: int, daemon: bool = True) -> None:
        from twisted.python.threadpool import ThreadPool

        self._reactor = reactor
        self._pool = ThreadPool(minthreads=0, maxthreads=max_threads, name=name)
        if daemon:
            # A pool nobody stopped (a stream a client left mid-download, a Database a
            # caller never closed) must not keep the process alive at exit; a
            # transaction cut there is rolled back by the database, never half-written.
            self._pool.threadFactory = _DaemonThread
        self._started = False
        self._stopped = False

    def defer(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Any:
        """``fn(*args, **kwargs)`` on the pool; a Deferred of its result."""
        from twisted.internet.defer import fail
        from twisted.internet.threads import deferToThreadPool

        if self._stopped:
            # Twisted's own AlreadyQuit would say nothing of why; a job that outlives
            # the pool (a verification still walking at shutdown) ends quietly on this.
            return fail(RunnerClosed(f"{self._pool.name}: stopped, the process is stopping"))
        if not self._started:
            self._pool.start()
            self._started = True
        return deferToThreadPool(self._reactor, self._pool, fn, *args, **kwargs)

    def stop(self) -> None:
        self._stopped = True
        if self._started:
            self._pool.stop()
            self._started = False


class ReadStream(Generic[T]):
    """The items of ``fn(conn)`` (an iterator reading a cursor), fetched a batch at a
    time inside one read-only transaction that stays open until :meth:`close`.

    The connection lives on a thread of the stream's own (a SQLite connection stays
    on the thread that made it), so a long export holds neither the write lock nor a
    thread of the read pool.  Where the database has no separate readers (in-memory
    SQLite) the items are read in one write-path transaction and served from memory.
    """

    def __init__(
        self,
        reactor: Any,
        engine: Engine | None,
        items: Callable[[Connection], Iterable[T]],
        fallback: Callable[[Callable[[Connection], list[T]]], Any],
    ) -> None:
        self._pool = WorkerPool(reactor, name="ssgate-db-stream", max_threads=1)
        self._engine = engine
        self._items = items
        self._fallback = fallback
        self._conn: Connection | None = None
        self._iterator: Iterator[T] | None = None

    def next(self, count: int) -> Any:  # Deferred[list[T]]; empty when there is no more
        """The next *count* items at most."""
        if self._engine is None:
            if self._iterator is None:
                d = self._fallback(lambda conn: list(self._items(conn)))

                def loaded(items: list[T]) -> list[T]:
                    self._iterator = iter(items)
                    return list(islice(self._iterator, count))

                return d.addCallback(loaded)
            from twisted.internet.defer import succeed

            return succeed(list(islice(self._iterator, count)))
        return self._pool.defer(self._next, count)

    def _next(self, count: int) -> list[T]:
        if self._iterator is None:
            assert self._engine is not None
            conn = self._engine.connect()
            try:
                conn.begin()
                self._iterator = iter(self._items(conn))
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return list(islice(self._iterator, count))

    def close(self) -> Any:  # Deferred[None]
        """End the transaction (a read: nothing to commit) and free the thread."""
        from twisted.internet.defer import succeed

        if self._engine is None:
            self._iterator = iter(())
            return succeed(None)

        def end() -> None:
            self._iterator = iter(())
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        d = self._pool.defer(end)

        def stop(result: object) -> object:
            self._pool.stop()  # its one thread is idle now: joined at once
            return result

        return d.addBoth(stop)


class Database:
    """An engine plus the dedicated thread pools its transactions run on.

    ``run(fn, *args)`` returns a Deferred firing with ``fn(conn, *args)``'s plain result,
    in a read-write transaction; ``read(fn, *args)`` the same in a read-only one on the
    read pool.  The pools are started lazily and stopped (and the engines disposed) by
    :meth:`close`.
    """

    def __init__(
        self,
        engine: Engine,
        reactor: Any,
        *,
        max_threads: int = 8,
        read_threads: int = READ_THREADS,
    ) -> None:
        self.engine = engine
        # SQLite serialises writers anyway; more threads only add lock waits.
        threads = 1 if engine.dialect.name == "sqlite" else max_threads
        self._pool = WorkerPool(reactor, name="ssgate-db", max_threads=threads)
        self._reactor = reactor
        self._read_engine = read_engine(engine, pool_size=read_threads)
        self._reads = (
            None
            if self._read_engine is None
            else WorkerPool(reactor, name="ssgate-db-read", max_threads=read_threads)
        )

    def run(
        self,
        fn: Callable[Concatenate[Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> Any:  # Deferred[T]; Any keeps call sites free of Twisted generics
        def work() -> T:
            return in_transaction(self.engine, fn, *args, **kwargs)

        return self._pool.defer(work)

    def read(
        self,
        fn: Callable[Concatenate[Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> Any:  # Deferred[T]
        """``fn(conn, *args, **kwargs)`` in one read-only transaction on the read pool
        (on the write path where the database has no separate readers).  *fn* must
        not write: on the read path a write fails."""
        if self._read_engine is None or self._reads is None:
            return self.run(fn, *args, **kwargs)
        reader = self._read_engine

        def work() -> T:
            return in_transaction(reader, fn, *args, **kwargs)

        return self._reads.defer(work)

    def stream(
        self,
        fn: Callable[Concatenate[Connection, P], Iterable[T]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> ReadStream[T]:
        """The items of ``fn(conn, ...)``, read as they are asked for in one read-only
        transaction (see :class:`ReadStream`); close it when done."""
        return ReadStream(
            self._reactor,
            self._read_engine,
            lambda conn: fn(conn, *args, **kwargs),
            self.run,
        )

    def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Any:
        """``fn(*args)`` on the pool, for blocking work that manages its own transactions."""
        return self._pool.defer(fn, *args, **kwargs)

    def close(self) -> None:
        self._pool.stop()
        if self._reads is not None:
            self._reads.stop()
        if self._read_engine is not None and self._read_engine.dialect.name == "sqlite":
            self._read_engine.dispose()
        self.engine.dispose()
