"""The officer benchmark's database: migrated by ssgate, filled in bulk, cached.

The schema is the real one (:func:`ssgate._schema.upgrade`, every migration).  For
the load, the secondary indexes of ``audit_events`` and ``sessions`` are dropped and
then created again exactly as the migrations made them (names and columns read back
from the database): one sorted build per index instead of a million scattered
B-tree inserts.  Rows go in through ``executemany`` (SQLite) or ``COPY``
(PostgreSQL), the chain head last.

SQLite: the built file is kept in a cache directory under a key of everything that
shapes it (the data parameters, the data generator's version, the migration head),
and each run works on a copy, so a run's own writes (the officer's login) never
reach the cache.  ssgate never runs ``ANALYZE`` on SQLite, and neither does this:
the planner sees what it sees in production.  PostgreSQL: a fresh schema in the
given database, dropped afterwards; ``ANALYZE`` after the load, as autovacuum would
do within a minute of such a load.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from _officer_data import EVENT_COLUMNS, SESSION_COLUMNS, Landmarks, Params, generate
from sqlalchemy import Engine, inspect, text

from ssgate._db import make_engine
from ssgate._schema import MIGRATIONS, schema_status, upgrade

# Bump when _officer_data generates different rows for the same parameters.
DATA_VERSION = 1
BATCH = 20_000
TABLES = ("audit_events", "sessions")


def cache_key(p: Params, head: str | None) -> str:
    text_ = json.dumps([DATA_VERSION, asdict(p), head], sort_keys=True)
    return hashlib.sha256(text_.encode()).hexdigest()[:16]


def migration_head() -> str | None:
    engine = make_engine("sqlite://")
    try:
        return schema_status(engine)[1]
    finally:
        engine.dispose()


def schema_key(revision: str | None) -> str:
    """*revision* (the newest when None) and a digest of the migration scripts: a
    revision id alone names different schemas on different branches (two branches'
    ``0007``), and a cached data set must not be reused for the wrong one."""
    digest = hashlib.sha256()
    for script in sorted((MIGRATIONS / "versions").glob("*.py")):
        digest.update(script.name.encode() + b"\0" + script.read_bytes())
    return f"{revision or migration_head()}:{digest.hexdigest()[:16]}"


def _secondary_indexes(engine: Engine) -> list[tuple[str, str, list[str]]]:
    found = []
    with engine.connect() as conn:
        inspector = inspect(conn)
        for table in TABLES:
            for ix in inspector.get_indexes(table):
                columns = [str(c) for c in ix["column_names"]]
                found.append((table, str(ix["name"]), columns))
    return found


def _rows(
    p: Params, marks: Landmarks, say: Callable[[str], None]
) -> Iterator[tuple[str, list[tuple[object, ...]]]]:
    """Batches of ("event" | "session", rows)."""
    batches: dict[str, list[tuple[object, ...]]] = {"event": [], "session": []}
    step = max(p.events // 10, 1)
    next_report = step
    for kind, row in generate(p, marks):
        batch = batches[kind]
        batch.append(row)
        if len(batch) >= BATCH:
            yield kind, batch
            batches[kind] = []
        if kind == "event" and marks.events >= next_report:
            say(f"  {marks.events:,} events, {marks.sessions:,} sessions")
            next_report += step
    for kind, batch in batches.items():
        if batch:
            yield kind, batch


def migrate(engine: Engine, revision: str | None) -> None:
    """To the newest schema, or to *revision* (to measure without a later index)."""
    if revision is None:
        upgrade(engine)
        return
    from alembic import command

    from ssgate._schema import _alembic_config

    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def load(
    engine: Engine, p: Params, say: Callable[[str], None], *, revision: str | None
) -> Landmarks:
    """Migrate the database of *engine* and fill it (see the module docstring)."""
    migrate(engine, revision)
    indexes = _secondary_indexes(engine)
    with engine.begin() as conn:
        for _table, name, _columns in indexes:
            conn.execute(text(f"DROP INDEX {name}"))
    marks = Landmarks()
    started = time.perf_counter()
    raw = engine.raw_connection()
    try:
        dbapi: Any = raw.driver_connection
        if engine.dialect.name == "sqlite":
            _load_sqlite(dbapi, p, marks, say)
        else:
            _load_postgresql(dbapi, p, marks, say)
    finally:
        raw.close()
    say(f"  rows in {time.perf_counter() - started:.0f} s; building {len(indexes)} indexes")
    started = time.perf_counter()
    with engine.begin() as conn:
        for table, name, columns in indexes:
            conn.execute(text(f"CREATE INDEX {name} ON {table} ({', '.join(columns)})"))
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            for table in TABLES:
                conn.execute(text(f"ANALYZE {table}"))
    say(f"  indexes in {time.perf_counter() - started:.0f} s")
    return marks


def _head_row(marks: Landmarks, last: tuple[object, ...] | None) -> tuple[int, int, str]:
    return (1, marks.events, str(last[11]) if last else "0" * 64)


def _load_sqlite(dbapi: Any, p: Params, marks: Landmarks, say: Callable[[str], None]) -> None:
    cur = dbapi.cursor()
    cur.execute("PRAGMA synchronous=OFF")
    cur.execute("PRAGMA cache_size=-200000")
    event_sql = (
        f"INSERT INTO audit_events ({', '.join(EVENT_COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(EVENT_COLUMNS))})"
    )
    session_sql = (
        f"INSERT INTO sessions ({', '.join(SESSION_COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(SESSION_COLUMNS))})"
    )
    last = None
    cur.execute("BEGIN")
    for kind, batch in _rows(p, marks, say):
        if kind == "event":
            cur.executemany(event_sql, batch)
            last = batch[-1]
        else:
            cur.executemany(session_sql, batch)
    cur.execute("DELETE FROM audit_head")
    cur.execute(
        "INSERT INTO audit_head (id, last_seq, last_hash) VALUES (?, ?, ?)",
        _head_row(marks, last),
    )
    cur.execute("COMMIT")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _load_postgresql(dbapi: Any, p: Params, marks: Landmarks, say: Callable[[str], None]) -> None:
    last = None
    with dbapi.cursor() as cur:
        for kind, batch in _rows(p, marks, say):
            table, columns = (
                ("audit_events", EVENT_COLUMNS)
                if kind == "event"
                else ("sessions", SESSION_COLUMNS)
            )
            with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in batch:
                    copy.write_row(row)
            if kind == "event":
                last = batch[-1]
        cur.execute("DELETE FROM audit_head")
        cur.execute(
            "INSERT INTO audit_head (id, last_seq, last_hash) VALUES (%s, %s, %s)",
            _head_row(marks, last),
        )
    dbapi.commit()


def _landmarks(path: Path) -> Landmarks:
    data = json.loads(path.read_text(encoding="utf-8"))
    return Landmarks(**data)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ssgate-bench"


@contextmanager
def sqlite_database(
    p: Params,
    work: Path,
    say: Callable[[str], None],
    *,
    cache: Path | None,
    revision: str | None = None,
) -> Iterator[tuple[str, Landmarks, bool]]:
    """(URL of this run's copy, landmarks, whether it came from the cache)."""
    key = cache_key(p, schema_key(revision))
    from_cache = False
    if cache is not None:
        cached = cache / f"officer-{key}.db"
        marks_file = cache / f"officer-{key}.json"
        if not (cached.exists() and marks_file.exists()):
            cache.mkdir(parents=True, exist_ok=True)
            building = cache / f"officer-{key}.building-{os.getpid()}.db"
            say(f"building the SQLite data set {cached} (cached for the next runs)")
            marks = _build_sqlite(building, p, say, revision)
            building.rename(cached)
            marks_file.write_text(json.dumps(asdict(marks)), encoding="utf-8")
        else:
            from_cache = True
            say(f"SQLite data set from the cache: {cached}")
        marks = _landmarks(marks_file)
        db = work / "officer.db"
        shutil.copyfile(cached, db)
    else:
        db = work / "officer.db"
        say(f"building the SQLite data set {db}")
        marks = _build_sqlite(db, p, say, revision)
    yield f"sqlite:///{db}", marks, from_cache


def _build_sqlite(
    path: Path, p: Params, say: Callable[[str], None], revision: str | None
) -> Landmarks:
    engine = make_engine(f"sqlite:///{path}")
    try:
        marks = load(engine, p, say, revision=revision)
        raw = engine.raw_connection()  # fold the WAL into the file before it is copied
        try:
            raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[union-attr]
        finally:
            raw.close()
    finally:
        engine.dispose()
    return marks


@contextmanager
def postgresql_database(
    p: Params,
    admin_url: str,
    say: Callable[[str], None],
    *,
    keep: bool,
    revision: str | None = None,
) -> Iterator[tuple[str, Landmarks, bool]]:
    """A fresh schema in *admin_url*'s database, loaded; dropped afterwards unless
    *keep*."""
    schema = "bench_officer_" + secrets.token_hex(4)
    admin = make_engine(admin_url)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        sep = "&" if "?" in admin_url else "?"
        url = f"{admin_url}{sep}options=-csearch_path%3D{schema}"
        try:
            say(f"building the PostgreSQL data set in schema {schema}")
            engine = make_engine(url)
            try:
                marks = load(engine, p, say, revision=revision)
            finally:
                engine.dispose()
            yield url, marks, False
        finally:
            if keep:
                say(f"kept PostgreSQL schema {schema}")
            else:
                with admin.begin() as conn:
                    conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    finally:
        admin.dispose()
