"""``python bench/run.py officer``: the officers' console pages over a large audit log.

The data set (:mod:`_officer_data`, loaded by :mod:`_officer_db`) is about
``--events`` audit events over 90 days and the matching session records, on SQLite
(a cached file, copied for the run) or PostgreSQL (a fresh schema, dropped after).
The console is the real one (:func:`ssgate._console.console_site`, every section
``serve`` mounts for an officer), in this process, driven over HTTP/1.1 by
:class:`ssgate._console.testing.ConsoleClient` after a real staff login (password and
TOTP code); its database calls run on the calling thread
(:class:`auth.testing.SynchronousRunner`), so a request's time is the shell (session
cookie, role, CSRF token), the page's queries and the template, without thread hops
or TLS.

Each page is compared with its peer measured in the same run, alternating: the
store function alone, in its own transaction, reading the same rows
(:func:`gateway.search_sessions` for the list, :func:`oversight.session_timeline` for
the timeline, :func:`oversight.failure_summary` for the login failures view,
:func:`oversight._charts.read_charts` for the charts).  The ratio page/peer is what
the web layer adds.  Beside them, store functions alone: the two-column shape of the
failed-login query (``failed_logins``) and the same through ``audit.query``, and the
open-sessions count the charts draw (``open_session_counts``, which reads
``sessions`` by ``ended_at``).

``--explain`` prints each query's plan on the database measured.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _measure import percentile
from _officer_data import DAY, Landmarks, Params
from _officer_db import cache_dir, postgresql_database, sqlite_database
from sqlalchemy import Connection, Engine, event, select
from twisted.internet.testing import MemoryReactorClock

import audit
import auth
import gateway
from auth.testing import SynchronousRunner
from gateway._sessions import open_session_counts
from oversight import Failures as FailuresView
from oversight import failure_summary, session_timeline
from oversight._charts import SESSION_HOURS, hour_start, read_charts
from ssgate._console import console_site
from ssgate._console.testing import ConsoleClient, Reply, enrol_staff
from ssgate._db import make_engine

END = 1_795_000_000.0  # 2026-11-18T11:06:40Z: the data set ends here, and "now" is here
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
OFFICER = "bench-officer"
PASSWORD = "Bench-Officer-Pass-9"
FAILURES_PATH = "/logins/failures"
HOUR = 3600.0


def say(text_: str) -> None:
    sys.stderr.write(f"bench officer: {text_}\n")
    sys.stderr.flush()


# -- the failed-login query --------------------------------------------------------------


@dataclass(frozen=True)
class Failures:
    by_account: list[tuple[str, int]]
    by_source: list[tuple[str, int]]
    total: int


def _host(peer: object) -> str:
    text_ = str(peer or "")
    host, sep, _port = text_.rpartition(":")
    return (host if sep else text_).strip("[]")


def failed_logins(conn: Connection, *, now: float, window: float = DAY) -> Failures:
    """What the login failures view shows: refused or failed ``login`` events in the
    last *window* seconds, counted by account and by source address (the host of
    ``details.peer``), most first.  It reads two columns of the failed logins only:
    building an :class:`audit.AuditRecord` per row (``failed_logins_as_records``)
    checks every field again and costs several times the query."""
    events = audit.metadata.tables["audit_events"]
    rows = conn.execute(
        select(events.c.subject, events.c.details).where(
            events.c.action == "login",
            events.c.outcome.in_(("refused", "failed")),
            events.c.at >= now - window,
            events.c.at < now,
        )
    ).all()
    by_account: Counter[str] = Counter()
    by_source: Counter[str] = Counter()
    for subject, details in rows:
        by_account[subject] += 1
        by_source[_host(json.loads(details).get("peer"))] += 1
    return Failures(by_account.most_common(), by_source.most_common(), len(rows))


def failed_logins_as_records(conn: Connection, *, now: float, window: float = DAY) -> Failures:
    """The same through :func:`audit.query` (every login of the window, as records)."""
    records = audit.query(conn, actions={"login"}, since=now - window, until=now)
    failed = [r.event for r in records if r.event.outcome != "ok"]
    by_account = Counter(e.subject for e in failed)
    by_source = Counter(_host(e.details.get("peer")) for e in failed)
    return Failures(by_account.most_common(), by_source.most_common(), len(failed))


# -- measuring ---------------------------------------------------------------------------


@dataclass
class Line:
    key: str
    label: str = ""
    page: list[float] = field(default_factory=list)  # seconds per request
    peer: list[float] = field(default_factory=list)  # seconds per store call
    status: str = ""  # "" when the page was measured; else why not
    rows: str = ""


@dataclass
class Console:
    engine: Engine
    client: ConsoleClient
    clock: MemoryReactorClock


def open_console(url: str) -> Console:
    """The real console on *url*, with one officer enrolled and logged in."""
    engine = make_engine(url)
    hasher = auth.PasswordHasher(auth.Argon2Params())
    box = auth.SecretBox(auth.SecretBox.generate_key())
    with engine.begin() as conn:
        secret = enrol_staff(
            conn, [(OFFICER, "officer")], password=PASSWORD, hasher=hasher, box=box, now=END
        )[OFFICER]
    clock = MemoryReactorClock()
    clock.advance(END)
    site = console_site(
        login_form_key=bytes(range(32)),
        authenticator=auth.Authenticator(engine, hasher, box),
        runner=SynchronousRunner(engine),
        workflow=None,
        clock=clock,
        secure=False,
        refusal_delay=0,
    )
    client = ConsoleClient(site, clock=clock)
    reply = client.login(OFFICER, PASSWORD, auth.current_code(secret, clock.seconds()))
    if reply.status != 303:
        raise SystemExit(f"bench officer: the officer's login failed ({reply.status})")
    return Console(engine, client, clock)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def measure(
    console: Console, marks: Landmarks, *, warmup: int, repeats: int
) -> tuple[list[Line], dict[str, Callable[[Connection], Any]]]:
    engine, client = console.engine, console.client
    registry = gateway.SessionRegistryView()
    now = console.clock.seconds()

    def in_tx(fn: Callable[[Connection], Any]) -> Callable[[], Any]:
        def run() -> Any:
            with engine.begin() as conn:
                return fn(conn)

        return run

    # The failures page's default range: the 24 hours to the next whole second.
    until = float(math.ceil(now))
    instants = [hour_start(now) - (SESSION_HOURS - 1 - i) * HOUR for i in range(SESSION_HOURS)]
    peers: dict[str, Callable[[Connection], Any]] = {
        "sessions": lambda c: gateway.search_sessions(c, unit=marks.busy_unit, limit=51),
        "source": lambda c: gateway.search_sessions(c, peer_host=marks.busy_unit_host, limit=51),
        "timeline": lambda c: session_timeline(c, registry, marks.heavy_session),
        "typical": lambda c: session_timeline(c, registry, marks.typical_session),
        "failures": lambda c: failure_summary(c, since=until - DAY, until=until),
        "two-column": lambda c: failed_logins(c, now=now),
        "records": lambda c: failed_logins_as_records(c, now=now),
        "charts": lambda c: read_charts(c, now=now, sessions=registry, declarations=None),
        "open": lambda c: open_session_counts(c, [*instants, now]),
    }
    pages: dict[str, str | None] = {
        "sessions": f"/sessions?unit={marks.busy_unit}",
        "source": f"/sessions?source={marks.busy_unit_host}",
        "timeline": f"/sessions/{marks.heavy_session}",
        "typical": f"/sessions/{marks.typical_session}",
        "failures": FAILURES_PATH,
        "two-column": None,
        "records": None,
        "charts": "/charts",
        "open": None,
    }
    labels = {
        "sessions": "GET /sessions?unit=<busiest unit> ({rows})",
        "source": "GET /sessions?source=<its office's address> ({rows})",
        "timeline": "GET /sessions/<longest session> ({rows})",
        "typical": "GET /sessions/<a typical session> ({rows})",
        "failures": "GET /logins/failures, last 24 h ({rows})",
        "two-column": "  its failed logins in two columns, grouped in Python",
        "records": "  the same failures through audit.query, as records",
        "charts": "GET /charts (7 days of logins, 24 h of open sessions{rows})",
        "open": "  open sessions at 25 instants of the last 24 h ({rows})",
    }
    lines = []
    for key, path in pages.items():
        line = Line(key)
        page = None if path is None else _page_getter(client, path)
        if page is None:
            line.status = "-"
        elif page() is None:
            line.status = "not yet"
            page = None
        peer = in_tx(peers[key])
        line.rows = _rows_text(key, peer())
        line.label = labels[key].format(rows=line.rows)
        for _ in range(warmup):
            if page is not None:
                page()
            peer()
        for i in range(repeats):
            # Alternate which goes first, so drift favours neither.
            if page is not None and i % 2 == 0:
                line.page.append(timed(page)[0])
            line.peer.append(timed(peer)[0])
            if page is not None and i % 2 == 1:
                line.page.append(timed(page)[0])
        say(f"  {key}: page median {_ms(line.page)} ms, store median {_ms(line.peer)} ms")
        lines.append(line)
    return lines, peers


def _page_getter(client: ConsoleClient, path: str) -> Callable[[], Reply | None]:
    """GET *path* as the officer: the reply, or None if the console has no such
    route yet (404 on the failures view); any other answer than 200 ends the run."""

    def get() -> Reply | None:
        reply = client.get(path)
        if reply.status == 404 and path == FAILURES_PATH:
            return None
        if reply.status != 200:
            raise SystemExit(f"bench officer: GET {path} answered {reply.status}")
        return reply

    return get


def appends(engine: Engine, count: int) -> list[float]:
    """Seconds per :func:`audit.append`, each in its own transaction as the gateway
    writes them, into the loaded log: what the log's indexes cost a writer."""
    times = []
    for i in range(count):
        e = audit.AuditEvent(
            at=END + i,
            actor="channel:bench",
            action="login" if i % 3 else "declare.view",
            subject="bench",
            outcome="refused" if i % 3 == 1 else "ok",
            session_id=f"{i:032x}",
            details={"peer": f"192.0.2.{i % 250}:40000"},
        )
        started = time.perf_counter()
        with engine.begin() as conn:
            audit.append(conn, e)
        times.append(time.perf_counter() - started)
    return times


def _rows_text(key: str, result: Any) -> str:
    if key in ("sessions", "source"):
        return f"{min(len(result), 50)} rows"
    if key in ("timeline", "typical"):
        return f"{len(result.entries)} entries"
    if key in ("records", "charts"):
        return ""
    if key == "open":
        return f"at most {max(result)} open"
    if isinstance(result, FailuresView):
        return f"{result.failed} failed of {result.attempts} attempts"
    assert isinstance(result, Failures)
    return (
        f"{result.total} failed, {len(result.by_account)} accounts, {len(result.by_source)} sources"
    )


def _ms(values: Sequence[float]) -> str:
    return f"{statistics.median(values) * 1000:.1f}" if values else "-"


# -- plans ---------------------------------------------------------------------------------


def _statements(engine: Engine, fn: Callable[[Connection], Any]) -> list[tuple[str, Any]]:
    """The SELECT statements (with their parameters) that ``fn(conn)`` runs."""
    seen: list[tuple[str, Any]] = []

    def capture(*args: Any) -> None:  # conn, cursor, statement, parameters, context, many
        statement, parameters = args[2], args[3]
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        with engine.begin() as conn:
            fn(conn)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    return seen


def explain(engine: Engine, peers: dict[str, Callable[[Connection], Any]], out: Any) -> None:
    """Each peer's SQL statements and the database's plan for each (PostgreSQL: with
    ANALYZE, so the plan's own timings and row counts)."""
    sqlite = engine.dialect.name == "sqlite"
    for key, fn in peers.items():
        out.write(f"\n-- {key}\n")
        statements = _statements(engine, fn)
        with engine.begin() as conn:
            for statement, parameters in statements:
                out.write(" ".join(statement.split()) + "\n")
                raw: Any = conn.connection.driver_connection
                cur = raw.cursor()
                prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN (ANALYZE, BUFFERS) "
                cur.execute(prefix + statement, parameters)
                for row in cur.fetchall():
                    out.write(f"    {row[3] if sqlite else row[0]}\n")
                cur.close()


# -- the report --------------------------------------------------------------------------


def report(
    args: argparse.Namespace,
    p: Params,
    marks: Landmarks,
    lines: list[Line],
    *,
    build: str,
    out: Any,
) -> None:
    w = out.write
    w(f"\nssgate officer pages, {args.db}\n")
    w(f"  audit events:        {marks.events:,} over {p.days} days (seed {p.seed})\n")
    w(f"  sessions:            {marks.sessions:,}; {p.units:,} units, {p.sources} sources\n")
    w(f"  failed logins, 24 h: {marks.failed_logins_last_day:,}\n")
    w(f"  data set:            {build}\n")
    w(f"  schema:              {args.revision or 'newest (every migration)'}\n")
    w(f"  repeats:             {args.repeats} after {args.warmup} warm-up\n\n")
    head = f"{'':72}{'page p50':>10}{'p95':>8}{'store p50':>11}{'p95':>8}\n"
    w(head)
    for line in lines:
        if line.status:
            page_cells = f"{line.status:>10}{'':>8}"
        else:
            page_cells = (
                f"{statistics.median(line.page) * 1000:10.1f}"
                f"{percentile(line.page, 95) * 1000:8.1f}"
            )
        w(
            f"{line.label:72}{page_cells}"
            f"{statistics.median(line.peer) * 1000:11.1f}"
            f"{percentile(line.peer, 95) * 1000:8.1f}\n"
        )
    w("  (milliseconds; page = the HTTP request as served, store = its store function alone)\n\n")
    by_key = {line.key: line for line in lines}
    for line in lines:
        name = RATIO_NAMES[line.key]
        if line.key in ("records", "two-column", "open"):
            if line.key == "records":
                ratio = statistics.median(line.peer) / statistics.median(by_key["two-column"].peer)
                w(f"ratio {name} / two-column query: {ratio:.2f}\n")
            continue
        elif line.status:
            w(f"ratio {name}: page/store {line.status}\n")
        else:
            ratio = statistics.median(line.page) / statistics.median(line.peer)
            w(f"ratio {name}: page/store {ratio:.2f}\n")
    out.flush()


RATIO_NAMES = {
    "sessions": "sessions list",
    "source": "sessions list by source",
    "timeline": "longest timeline",
    "typical": "typical timeline",
    "failures": "login failures",
    "two-column": "failed logins, two columns",
    "records": "login failures through audit.query",
    "charts": "charts",
    "open": "open sessions",
}


# -- main ----------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python bench/run.py officer",
        description="The officers' console pages over a large audit log.",
    )
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--events", type=int, default=1_000_000, metavar="N")
    parser.add_argument("--days", type=int, default=90, metavar="N")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=30, metavar="N")
    parser.add_argument("--warmup", type=int, default=3, metavar="N")
    parser.add_argument(
        "--pg-url", default=PG_URL, help="PostgreSQL database to make a schema in (dropped after)"
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help=f"SQLite data set cache directory (default {cache_dir()})",
    )
    parser.add_argument(
        "--no-cache", action="store_true", help="build the SQLite data set afresh, keep nothing"
    )
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL schema")
    parser.add_argument("--explain", action="store_true", help="print every query's plan")
    parser.add_argument(
        "--appends",
        type=int,
        default=0,
        metavar="N",
        help="afterwards, time N audit.append transactions into the loaded log",
    )
    parser.add_argument(
        "--revision",
        metavar="REV",
        help="migrate only to this schema revision (e.g. 0004: before the officer indexes)",
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    p = Params(events=args.events, days=args.days, end=END, seed=args.seed)
    work = Path(tempfile.mkdtemp(prefix="ssgate-bench-officer-"))
    written: list[float] = []
    started = time.perf_counter()
    try:
        if args.db == "sqlite":
            cache = None if args.no_cache else (args.cache or cache_dir())
            database = sqlite_database(p, work, say, cache=cache, revision=args.revision)
        else:
            database = postgresql_database(
                p, args.pg_url, say, keep=args.keep, revision=args.revision
            )
        with database as (url, marks, from_cache):
            build = (
                "from the cache"
                if from_cache
                else (f"built in {time.perf_counter() - started:.0f} s")
            )
            say(f"data set ready ({build}); logging in the officer")
            console = open_console(url)
            try:
                say(f"measuring: {args.warmup} warm-up, {args.repeats} repeats per page")
                lines, peers = measure(console, marks, warmup=args.warmup, repeats=args.repeats)
                if args.appends:
                    say(f"appending {args.appends} audit events, one per transaction")
                    written = appends(console.engine, args.appends)
                if args.explain:
                    explain(console.engine, peers, sys.stdout)
            finally:
                console.engine.dispose()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    say(f"done in {time.perf_counter() - started:.0f} s")
    report(args, p, marks, lines, build=build, out=sys.stdout)
    if args.appends:
        sys.stdout.write(
            f"audit.append, one per transaction, into the loaded log ({len(written)}): "
            f"p50 {statistics.median(written) * 1000:.2f} ms, "
            f"p95 {percentile(written, 95) * 1000:.2f} ms\n"
        )
    return 0
