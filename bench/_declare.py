"""``python bench/run.py declare``: the declaration service at a 50,000-person unit.

The data set (:mod:`_declare_data`) is one unit of ``--persons`` staff (about 4.92
enrolments each) and nine small units, on SQLite (a cached file, copied for the run)
or PostgreSQL (a fresh schema, dropped after).  Each view is the real store call,
:class:`declare_app.EmployerQueries` on the database, on the calling thread, in its
own transaction on the path the service gives it (``--path read``: the read-only
path of :meth:`ssgate._db.Database.read`; ``--path write``: every call behind
``BEGIN IMMEDIATE`` as before issue 17), its audit event collected rather than
written, so a figure is the query's own cost without HTTP, thread hops or templates:

- roster page 1 and page 500 (50 rows a page, active persons), a search by name
  fragment and by ID number, and each of the eight queries, ``--repeat`` times each,
  median and p99;
- the full roster CSV (the web layer's streamed export, ``_roster_pieces``: one
  query, :meth:`~declare_app.EmployerQueries.roster_export`, each piece of 500 rows
  written as CSV on the reading thread) once, with the time to the first piece;
- another unit's home page data (:func:`declare_app.web._pages.home_data`, on the
  write path as the service runs it), alone and then in a second thread while the
  big unit's export runs, median and p99;
- ``--batch N`` (default 10,000; 0 skips it): a 人员增加 batch of N new persons (four
  insurances each: the bench units have no 工伤 risk class) imported into a small
  unit, submitted and claimed, then its approval (:meth:`Declarations.approve`, the
  bulk apply path) timed in its own write transaction, after the views so it does
  not change what they read.

``--explain`` prints the roster's and the searches' plans on the database measured.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from _declare_data import (
    BIG_UNIT,
    NAME_FRAGMENT,
    NOW,
    REGION,
    SMALL_UNITS,
    Landmarks,
    Params,
    cache_dir,
    postgresql_database,
    sqlite_database,
)
from _measure import percentile
from sqlalchemy import Connection, Engine

import audit
import declare_app
from declare_app._declarations import Declarations
from declare_app.interfaces import Actor, BatchLine, DeclarationType
from declare_app.web._pages import home_data
from declare_app.web._query_pages import _roster_pieces
from ssgate._db import in_transaction, make_engine, read_engine

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def say(text_: str) -> None:
    print(text_, file=sys.stderr, flush=True)


def _actor(unit: str) -> Actor:
    return Actor(kind="employer", name=f"{REGION}{unit}@sxlss", unit_code=unit, session_id="bench")


def views(marks: Landmarks) -> dict[str, Callable[[Any, Connection], Any]]:
    """name → fn(queries, conn), each one call of the big unit's employer."""
    me = _actor(BIG_UNIT)
    idn = marks.id_number
    return {
        "roster page 1": lambda q, c: q.roster(c, me, limit=50, offset=0, now=NOW),
        "roster page 500": lambda q, c: q.roster(c, me, limit=50, offset=24_950, now=NOW),
        "search by name": lambda q, c: q.roster(c, me, name=NAME_FRAGMENT, limit=50, now=NOW),
        "search by ID number": lambda q, c: q.roster(c, me, id_number=idn, limit=50, now=NOW),
        "unit-info": lambda q, c: q.unit_info(c, me, now=NOW),
        "changes": lambda q, c: q.changes(c, me, limit=50, now=NOW),
        "unit-payments": lambda q, c: q.unit_payments(c, me, limit=50, now=NOW),
        "person-payments": lambda q, c: q.person_payments(c, me, id_number=idn, now=NOW),
        "account-statement": lambda q, c: q.account_statement(
            c, me, id_number=idn, year=2025, now=NOW
        ),
        "retirees": lambda q, c: q.retirees(c, me, limit=50, now=NOW),
        "reaching-retirement": lambda q, c: q.reaching_retirement(c, me, limit=50, now=NOW),
    }


def _ms(values: Sequence[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values) * 1000:8.1f} {percentile(values, 99) * 1000:8.1f}"


class Paths:
    """Where a read and a write run: the service's read path or (``--path write``)
    the write path for both, as before issue 17."""

    def __init__(self, engine: Engine, path: str) -> None:
        self.engine = engine
        reader = read_engine(engine) if path == "read" else None
        self.reader = reader or engine

    def read(self, fn: Callable[[Connection], Any]) -> Any:
        return in_transaction(self.reader, fn)

    def write(self, fn: Callable[[Connection], Any]) -> Any:
        return in_transaction(self.engine, fn)

    def close(self) -> None:
        if self.reader is not self.engine and self.reader.dialect.name == "sqlite":
            self.reader.dispose()


def measure_views(
    paths: Paths, marks: Landmarks, repeat: int, skip: Sequence[str] = ()
) -> dict[str, list[float]]:
    queries = declare_app.EmployerQueries(declare_app.demo_rate_table())
    out: dict[str, list[float]] = {}
    for name, fn in views(marks).items():
        if name in skip:
            continue
        times: list[float] = []
        for _ in range(repeat + 1):  # the first warms the cache and is not counted
            events: list[audit.AuditEvent] = []
            bound = queries.reading(events)
            started = time.perf_counter()
            paths.read(lambda conn, fn=fn, bound=bound: fn(bound, conn))
            times.append(time.perf_counter() - started)
        out[name] = times[1:]
        say(f"  {name}: {_ms(out[name])}")
    return out


def export_roster(paths: Paths, first_row: list[float]) -> int:
    """The roster CSV of every person (status all) as the web layer streams it
    (``_roster_pieces``: :meth:`EmployerQueries.roster_export` and each piece's CSV,
    built on the reading thread): rows written."""
    queries = declare_app.EmployerQueries(declare_app.demo_rate_table())
    bound = queries.reading([])
    started = time.perf_counter()

    def run(conn: Connection) -> int:
        items = _roster_pieces(conn, bound, _actor(BIG_UNIT), {"status": None}, NOW)
        next(items)  # the counts
        n = 0
        for piece in items:  # a piece goes out; nothing is kept
            if n == 0:
                first_row.append(time.perf_counter() - started)
            n += piece.count(b"\r\n")
        return n

    return int(paths.read(run))


def home_times(paths: Paths, count: int, stop: threading.Event | None = None) -> list[float]:
    workflow = Declarations(declare_app.demo_rate_table())
    me = _actor(SMALL_UNITS[0])
    times = []
    for _ in range(count):
        if stop is not None and stop.is_set():
            break
        started = time.perf_counter()
        paths.write(lambda conn: home_data(conn, workflow, me, None))
        times.append(time.perf_counter() - started)
    return times


def measure_export(paths: Paths, home_count: int) -> dict[str, Any]:
    alone = home_times(paths, home_count)
    say(f"  home page alone: {_ms(alone)}")
    first_row: list[float] = []
    rows: list[int] = []
    during: list[float] = []
    stop = threading.Event()

    def export() -> None:
        rows.append(export_roster(paths, first_row))
        stop.set()

    started = time.perf_counter()
    exporter = threading.Thread(target=export)
    exporter.start()
    while not stop.is_set():
        during += home_times(paths, 1, stop)
        time.sleep(0.05)  # a page every 50 ms or so, as a few employers would
    exporter.join()
    seconds = time.perf_counter() - started
    say(f"  roster CSV: {rows[0]} rows in {seconds:.1f} s; home page meanwhile: {_ms(during)}")
    return {
        "rows": rows[0],
        "seconds": seconds,
        "first_row": first_row[0] if first_row else None,
        "alone": alone,
        "during": during,
    }


def _batch_lines(count: int) -> list[BatchLine]:
    """*count* 人员增加 lines of new persons (ID numbers no bench person has)."""
    lines = []
    for i in range(count):
        born = date(1990, 1, 1) + timedelta(days=i // 500)
        body = f"{REGION}{born:%Y%m%d}{500 + i % 500:03d}"
        values = {
            "name": "批量" + "甲乙丙丁戊己庚辛壬癸"[i % 10],
            "id_number": body + declare_app.person_id_check_char(body),
            "id_type": "01",
            "nation": "01",
            "hukou_type": "A",
            "staff_kind": "B",
            "hire_date": "2025-01-02",
            "insurances": "110 210 310 510",
            "add_type": "A",
            "start_month": "2025-01",
            "monthly_wage": "6000",
            "phone": "13800000000",
        }
        lines.append(BatchLine(number=i + 2, values=values))
    return lines


def measure_batch(paths: Paths, count: int) -> float:
    """Seconds to approve a *count*-line 人员增加 batch of a small unit (the approval's
    transaction only: import, submit and claim before it are not counted)."""
    workflow = Declarations(declare_app.demo_rate_table())
    employer = _actor(SMALL_UNITS[1])
    auditor = Actor("staff", "bench-auditor", role="auditor")
    lines = _batch_lines(count)
    result = paths.write(
        lambda c: workflow.import_batch(
            c, employer, DeclarationType.PERSON_ADD, lines, common={}, now=NOW
        )
    )
    if result.refused:
        raise SystemExit(f"bench batch: {result.refused} lines refused, expected none")
    draft = result.declaration.id
    paths.write(lambda c: workflow.submit(c, employer, draft, now=NOW))
    paths.write(lambda c: workflow.claim(c, auditor, draft, now=NOW))
    started = time.perf_counter()
    paths.write(lambda c: workflow.approve(c, auditor, draft, now=NOW))
    seconds = time.perf_counter() - started
    say(f"  batch approval: {count} lines in {seconds:.2f} s")
    return seconds


def explain(engine: Engine, marks: Landmarks, out: Any) -> None:
    from sqlalchemy import event

    queries = declare_app.EmployerQueries(declare_app.demo_rate_table())
    chosen = ("roster page 1", "roster page 500", "search by name", "search by ID number")
    all_views = views(marks)
    for name in chosen:
        statements: list[tuple[str, Any]] = []

        def capture(*args: Any, statements: list[tuple[str, Any]] = statements) -> None:
            statements.append((args[2], args[3]))  # conn, cursor, statement, parameters

        event.listen(engine, "before_cursor_execute", capture)
        try:
            in_transaction(engine, lambda c, fn=all_views[name]: fn(queries.reading([]), c))
        finally:
            event.remove(engine, "before_cursor_execute", capture)
        print(f"-- {name}", file=out)
        for sql, params in statements:
            if not sql.lstrip().upper().startswith("SELECT"):
                continue
            prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
            with engine.connect() as conn:
                plan = conn.exec_driver_sql(prefix + sql, params).all()
            print("   " + sql.split("FROM", 1)[-1][:100].replace("\n", " "), file=out)
            for line in plan:
                print("      " + " ".join(str(v) for v in line[-1:]), file=out)


def report(
    args: argparse.Namespace,
    marks: Landmarks,
    results: dict[str, list[float]],
    export: dict[str, Any] | None,
    batch: float | None = None,
) -> None:
    print(
        f"declare: {args.db}, path {args.path}, {marks.persons} persons "
        f"({marks.enrolments} enrolments) in the big unit, {args.repeat} runs each"
    )
    print(f"{'view':24} {'median ms':>8} {'p99 ms':>8}")
    for name, times in results.items():
        print(f"{name:24} {_ms(times)}")
    if export is not None:
        first = export["first_row"]
        print(
            f"roster CSV (status all): {export['rows']} rows in {export['seconds']:.1f} s, "
            f"first row after {first:.2f} s"
            if first is not None
            else ""
        )
        print(f"{'home page alone':24} {_ms(export['alone'])}")
        print(f"{'home page during export':24} {_ms(export['during'])}")
    if batch is not None:
        print(f"batch approval: {args.batch} lines in {batch:.2f} s")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run.py declare", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--pg-url", default=PG_URL)
    parser.add_argument("--persons", type=int, default=Params.persons)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--path", choices=("read", "write"), default="read")
    parser.add_argument("--no-export", action="store_true", help="skip the export run")
    parser.add_argument("--no-cache", action="store_true", help="build SQLite afresh")
    parser.add_argument("--explain", action="store_true")
    parser.add_argument(
        "--batch", type=int, default=10_000, metavar="N", help="batch approval lines (0: skip)"
    )
    parser.add_argument(
        "--skip", action="append", default=[], metavar="VIEW", help="a view not to measure"
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    p = Params(persons=args.persons)
    work = Path(tempfile.mkdtemp(prefix="ssgate-bench-declare-"))
    try:
        if args.db == "sqlite":
            source = sqlite_database(p, work, say, cache=None if args.no_cache else cache_dir())
        else:
            source = postgresql_database(p, args.pg_url, say)
        with source as (url, marks):
            engine = make_engine(url)
            paths = Paths(engine, args.path)
            try:
                if args.explain:
                    explain(engine, marks, sys.stdout)
                say("views of the big unit (median, p99 ms):")
                results = measure_views(paths, marks, args.repeat, args.skip)
                export = None if args.no_export else measure_export(paths, args.repeat)
                batch = measure_batch(paths, args.batch) if args.batch > 0 else None
                report(args, marks, results, export, batch)
            finally:
                paths.close()
                engine.dispose()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0
