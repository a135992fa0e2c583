"""The declare benchmark's data: one 50,000-person unit and nine small ones, in bulk.

Rows are plain tuples in the tables' column order, generated deterministically (the
same parameters give the same rows), so a SQLite build can be cached under a key of
the parameters, :data:`DATA_VERSION` and the migration head.  The big unit has
``persons`` staff with 4.92 enrolments each (one per insurance type, 8 % without
工伤): 50,000 persons give 246,000 enrolment rows, the size the issue measured.
5 % of each unit's persons have left (their enrolments closed, status 3), so the
roster's status filter has work.
Two months of pension ledger lines (``contributions``) per person give the
contribution queries something to add up.

Names are ordinary two- and three-character Chinese names from a fixed list, so a
name fragment such as 建国 matches a few hundred persons of the big unit; ID numbers
are valid 18-character numbers of region 330682 with their check character.
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
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from _officer_db import schema_key
from sqlalchemy import Engine, text

from declare_app import person_id_check_char
from ssgate._db import make_engine
from ssgate._schema import upgrade

DATA_VERSION = 1
REGION = "330682"
BIG_UNIT = "10000001"
SMALL_UNITS = tuple(f"{20000001 + i}" for i in range(9))
INSURANCES = ("110", "210", "310", "410", "510")
MONTHS = ("2025-01", "2025-02")  # the ledger's months
NOW = 1_741_572_000.0  # 2025-03-10 10:00 China time: "now" for every query
NAME_FRAGMENT = "建国"
BATCH = 20_000

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = (
    "建国",
    "秀英",
    "伟",
    "芳",
    "娜",
    "敏",
    "静",
    "丽",
    "强",
    "磊",
    "军",
    "洋",
    "勇",
    "艳",
    "杰",
    "娟",
    "涛",
    "明",
    "超",
    "秀兰",
    "霞",
    "平",
    "刚",
    "桂英",
    "志强",
    "海燕",
)


@dataclass(frozen=True)
class Params:
    persons: int = 50_000  # the big unit
    small: int = 200  # each of the nine small units


@dataclass(frozen=True)
class Landmarks:
    """What the measurements look up: a person of the big unit by ID number, a name
    fragment, and the counts as built."""

    id_number: str
    person_number: str
    persons: int
    enrolments: int


def _id_number(i: int) -> tuple[str, str, date]:
    born = date(1965, 1, 1) + timedelta(days=i % 14_000)
    seq = (i // 14_000) * 2 + (i % 2)  # odd: male
    body = f"{REGION}{born:%Y%m%d}{seq:03d}"
    return body + person_id_check_char(body), "1" if seq % 2 else "2", born


def _person(i: int) -> tuple[Any, ...]:
    idn, gender, born = _id_number(i)
    name = _SURNAMES[i % len(_SURNAMES)] + _GIVEN[(i // len(_SURNAMES)) % len(_GIVEN)]
    return (f"{i + 1:010d}", idn, "01", name, gender, born, "B" if i % 7 else "A", NOW, NOW)


PERSON_COLUMNS = (
    "person_number",
    "id_number",
    "id_type",
    "name",
    "gender",
    "birth_date",
    "staff_kind",
    "created_at",
    "updated_at",
)
ENROLMENT_COLUMNS = (
    "person_number",
    "unit_code",
    "insurance",
    "status",
    "start_month",
    "end_month",
    "base_fen",
    "updated_at",
)
CONTRIBUTION_COLUMNS = (
    "person_number",
    "unit_code",
    "insurance",
    "month",
    "base_fen",
    "employer_fen",
    "employee_fen",
    "to_account_fen",
    "status",
)


def _enrolments(i: int, unit: str) -> Iterator[tuple[Any, ...]]:
    number = f"{i + 1:010d}"
    left = i % 20 == 7  # 5 % have left the unit
    start = f"{2005 + i % 20}-{1 + i % 12:02d}"
    base = 400_000 + (i % 50) * 10_000
    for insurance in INSURANCES:
        if insurance == "410" and i % 25 in (3, 4):  # 8 % without 工伤: 4.92 per person
            continue
        if left:
            yield (number, unit, insurance, "3", start, "2024-12", base, NOW)
        else:
            yield (number, unit, insurance, "1", start, None, base, NOW)


def _contributions(i: int, unit: str) -> Iterator[tuple[Any, ...]]:
    if i % 20 == 7:
        return
    base = 400_000 + (i % 50) * 10_000
    for month in MONTHS:
        paid = "paid" if month == MONTHS[0] else "due"
        yield (
            f"{i + 1:010d}",
            unit,
            "110",
            month,
            base,
            base * 16 // 100,
            base * 8 // 100,
            base * 8 // 100,
            paid,
        )


def units_of(p: Params) -> list[tuple[str, int, int]]:
    """(unit code, first person index, persons)."""
    out = [(BIG_UNIT, 0, p.persons)]
    first = p.persons
    for code in SMALL_UNITS:
        out.append((code, first, p.small))
        first += p.small
    return out


def _batches(rows: Iterator[tuple[Any, ...]]) -> Iterator[list[tuple[Any, ...]]]:
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _table_rows(p: Params) -> Iterator[tuple[str, tuple[str, ...], Iterator[tuple[Any, ...]]]]:
    units = units_of(p)
    yield (
        "persons",
        PERSON_COLUMNS,
        (_person(i) for _c, first, n in units for i in range(first, first + n)),
    )
    yield (
        "enrolments",
        ENROLMENT_COLUMNS,
        (
            row
            for code, first, n in units
            for i in range(first, first + n)
            for row in _enrolments(i, code)
        ),
    )
    yield (
        "contributions",
        CONTRIBUTION_COLUMNS,
        (
            row
            for code, first, n in units
            for i in range(first, first + n)
            for row in _contributions(i, code)
        ),
    )


def load(engine: Engine, p: Params, say: Callable[[str], None]) -> Landmarks:
    """Migrate the database of *engine* (every migration) and fill it."""
    upgrade(engine)
    started = time.perf_counter()
    with engine.begin() as conn:
        for code in (BIG_UNIT, *SMALL_UNITS):
            conn.execute(
                text(
                    "INSERT INTO units (code, region, name, status, registered_at,"
                    " registered_by, approved_at, approved_by) VALUES"
                    " (:code, :region, :name, 'approved', :now, 'bench', :now, 'bench')"
                ),
                {"code": code, "region": REGION, "name": f"单位{code}", "now": NOW},
            )
    raw = engine.raw_connection()
    counts: dict[str, int] = {}
    try:
        dbapi: Any = raw.driver_connection
        for table, columns, rows in _table_rows(p):
            n = 0
            if engine.dialect.name == "sqlite":
                sql = (
                    f"INSERT INTO {table} ({', '.join(columns)}) "
                    f"VALUES ({', '.join('?' for _ in columns)})"
                )
                dbapi.execute("BEGIN")
                for batch in _batches(rows):
                    dbapi.executemany(sql, batch)
                    n += len(batch)
                dbapi.execute("COMMIT")
            else:
                with (
                    dbapi.cursor() as cur,
                    cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
                ):
                    for row in rows:
                        copy.write_row(row)
                        n += 1
                dbapi.commit()
            counts[table] = n
            say(f"  {table}: {n} rows")
    finally:
        raw.close()
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            for table in ("units", "persons", "enrolments", "unit_persons", "contributions"):
                conn.execute(text(f"ANALYZE {table}"))
    say(f"  loaded in {time.perf_counter() - started:.0f} s")
    idn = _id_number(p.persons // 2)[0]
    return Landmarks(
        id_number=idn,
        person_number=f"{p.persons // 2 + 1:010d}",
        persons=p.persons,
        enrolments=sum(1 for i in range(p.persons) for _ in _enrolments(i, BIG_UNIT)),
    )


def _cache_key(p: Params) -> str:
    """The data parameters and the schema: the migration head *and* a digest of the
    migration scripts (a revision edited on a branch keeps its id)."""
    text_ = json.dumps([DATA_VERSION, asdict(p), schema_key(None)], sort_keys=True)
    return hashlib.sha256(text_.encode()).hexdigest()[:16]


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ssgate-bench"


@contextmanager
def sqlite_database(
    p: Params, work: Path, say: Callable[[str], None], *, cache: Path | None
) -> Iterator[tuple[str, Landmarks]]:
    """(URL of this run's copy, landmarks); the built file is cached in *cache*."""
    db = work / "declare.db"
    if cache is None:
        say(f"building the SQLite data set {db}")
        marks = _build_sqlite(db, p, say)
    else:
        key = _cache_key(p)
        cached, marks_file = cache / f"declare-{key}.db", cache / f"declare-{key}.json"
        if not (cached.exists() and marks_file.exists()):
            cache.mkdir(parents=True, exist_ok=True)
            building = cache / f"declare-{key}.building-{os.getpid()}.db"
            say(f"building the SQLite data set {cached} (cached for the next runs)")
            marks = _build_sqlite(building, p, say)
            building.rename(cached)
            marks_file.write_text(json.dumps(asdict(marks)), encoding="utf-8")
        else:
            say(f"SQLite data set from the cache: {cached}")
        marks = Landmarks(**json.loads(marks_file.read_text(encoding="utf-8")))
        shutil.copyfile(cached, db)
    yield f"sqlite:///{db}", marks


def _build_sqlite(path: Path, p: Params, say: Callable[[str], None]) -> Landmarks:
    engine = make_engine(f"sqlite:///{path}")
    try:
        marks = load(engine, p, say)
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
    p: Params, admin_url: str, say: Callable[[str], None]
) -> Iterator[tuple[str, Landmarks]]:
    """A fresh schema in *admin_url*'s database, loaded, dropped afterwards."""
    schema = "bench_declare_" + secrets.token_hex(4)
    admin = make_engine(admin_url)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        url = f"{admin_url}?options=-csearch_path%3D{schema}"
        try:
            say(f"building the PostgreSQL data set in schema {schema}")
            engine = make_engine(url)
            try:
                marks = load(engine, p, say)
            finally:
                engine.dispose()
            yield url, marks
        finally:
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    finally:
        admin.dispose()
