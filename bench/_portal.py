"""``python bench/run.py portal``: the personal portal's pages for a person with 30
years of contributions (issue 18, acceptance 5).

The data set (:func:`load`) is one insured person with ``--years`` × 12 months of
ledger lines for every insurance (five per month) across three units in turn — the
first two periods closed, the last one open — plus ``--others`` persons in the same
units with ``--other-months`` months each of pension lines, so the person's queries
read their rows out of a table that holds other people's too.  It is written
straight into the declaration service's tables (the ledger as ``close_month`` leaves
it), on SQLite (a file in a temporary directory) or PostgreSQL (a fresh schema,
dropped after), both migrated to the newest revision.

The person's portal account is opened with :class:`portal.PersonCounter` (what the
counter does), and the portal is the real one (:class:`portal.PortalShell`) in this
process, driven over HTTP/1.1 by :class:`ssgate._console.testing.ConsoleClient` after
a real login (ID number, password and TOTP code) and the first-login password change.
Its database calls run on the calling thread (:class:`auth.testing.SynchronousRunner`),
so a request's time is the shell (session, CSRF), the page's queries, its audit event
and the template, without thread hops or TLS.

Every page is requested ``--warmup`` times, then ``--repeats`` times, timed each; the
median and p99 (nearest rank) are printed, and ``over 100 ms`` marks a median above
the acceptance's bound.  No figure is judged here.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import secrets
import shutil
import statistics
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from _measure import percentile
from sqlalchemy import Engine, insert, text
from twisted.internet.testing import MemoryReactorClock

import auth
import declare_app
import portal
from auth.testing import SynchronousRunner
from declare_app._declarations import CHINA_TIME
from declare_app._pension_account import PensionTables, default_pension_tables
from declare_app._schema import contributions, enrolments, persons
from ssgate._console.testing import ConsoleClient, Reply
from ssgate._db import make_engine
from ssgate._schema import upgrade

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REGION = "330682"
UNITS = ("31000001", "31000002", "31000003")
INSURANCES = ("110", "210", "310", "410", "510")
# Contribution rates (unit, individual) per insurance; 110's individual part is
# credited to the pension account.
RATES = {
    "110": ("0.16", "0.08"),
    "210": ("0.085", "0.02"),
    "310": ("0.005", "0.005"),
    "410": ("0.004", "0"),
    "510": ("0.008", "0"),
}
LAST_MONTH = (2024, 12)  # the ledger's newest month; "now" is in March 2025
NOW = datetime(2025, 3, 10, 10, 0, tzinfo=CHINA_TIME).timestamp()
NEW_PASSWORD = "Bench-Portal-Pass-2025"
BOUND_MS = 100.0
BATCH = 5_000


def say(text_: str) -> None:
    sys.stderr.write(f"bench portal: {text_}\n")
    sys.stderr.flush()


# -- the data set ----------------------------------------------------------------------


def _months(count: int) -> list[str]:
    """The *count* months ending with :data:`LAST_MONTH`, oldest first."""
    year, month = LAST_MONTH
    out: list[str] = []
    for _ in range(count):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return out[::-1]


def _id_number(birth: str, serial: int) -> str:
    body = f"{REGION}{birth}{serial:03d}"
    return body + declare_app.person_id_check_char(body)


def _person_row(number: str, id_number: str, name: str, birth: date, first: str) -> dict[str, Any]:
    return {
        "person_number": number,
        "id_number": id_number,
        "id_type": "01",
        "name": name,
        "gender": "1",
        "birth_date": birth,
        "staff_kind": "B",
        "first_insured_month": first,
        "receiving_pension": False,
        "created_at": NOW - 86_400,
        "updated_at": NOW - 86_400,
    }


def _fen(base_fen: int, rate: str) -> int:
    return int(base_fen * float(rate) + 0.5)


def _line(number: str, unit: str, insurance: str, month: str, base_fen: int) -> dict[str, Any]:
    employer_rate, employee_rate = RATES[insurance]
    employee = _fen(base_fen, employee_rate)
    year, mon = int(month[:4]), int(month[5:])
    return {
        "person_number": number,
        "unit_code": unit,
        "insurance": insurance,
        "month": month,
        "base_fen": base_fen,
        "employer_fen": _fen(base_fen, employer_rate),
        "employee_fen": employee,
        "to_account_fen": employee if insurance == "110" else 0,
        "status": "paid",
        "paid_on": date(year, mon, 15),
    }


def _insert(engine: Engine, table: Any, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        for i in range(0, len(rows), BATCH):
            conn.execute(insert(table), rows[i : i + BATCH])


@dataclass(frozen=True)
class Landmarks:
    id_number: str
    months: int
    lines: int
    other_lines: int


def load(engine: Engine, *, years: int, others: int, other_months: int) -> Landmarks:
    """The migrated schema and the data set (see the module docstring)."""
    upgrade(engine)
    months = _months(years * 12)
    with engine.begin() as conn:
        for code in UNITS:
            declare_app.register_unit(
                conn,
                code,
                name=f"上虞基准测试单位{code[-1]}",
                region=REGION,
                credit_code=None,
                actor="os:bench",
                now=1.0,
                injury_risk_class=3,
            )
            declare_app.approve_unit(conn, code, actor="os:bench", now=2.0)
    number = f"{REGION}0000000001"
    id_number = _id_number("19700501", 1)
    person_rows = [_person_row(number, id_number, "张建国", date(1970, 5, 1), months[0])]
    # Three periods of equal length, one unit each: the last one still open.
    third = len(months) // 3 or 1
    periods = [
        (UNITS[i], months[i * third], months[min(len(months), (i + 1) * third) - 1])
        for i in range(3)
    ]
    periods[-1] = (UNITS[2], periods[-1][1], months[-1])
    enrolment_rows: list[dict[str, Any]] = []
    for i, (unit, start, end) in enumerate(periods):
        last = i == len(periods) - 1
        for insurance in INSURANCES:
            enrolment_rows.append(
                {
                    "person_number": number,
                    "unit_code": unit,
                    "insurance": insurance,
                    "status": "1" if last else "3",
                    "start_month": start,
                    "end_month": None if last else end,
                    "base_fen": 800_000,
                    "add_type": "A",
                    "stop_reason": None if last else "11",
                    "updated_at": NOW - 86_400,
                }
            )
    lines: list[dict[str, Any]] = []
    for index, month in enumerate(months):
        unit = UNITS[min(2, index // third)]
        base = 150_000 + index * 2_000  # the base grows over the years
        lines.extend(_line(number, unit, ins, month, base) for ins in INSURANCES)
    other_lines: list[dict[str, Any]] = []
    recent = months[-other_months:] if other_months else []
    for k in range(others):
        other = f"{REGION}{1_000_000 + k:010d}"
        unit = UNITS[k % 3]
        first = recent[0] if recent else months[0]
        person_rows.append(_person_row(other, _other_id(k), f"李{k}", date(1980, 1, 1), first))
        enrolment_rows.append(
            {
                "person_number": other,
                "unit_code": unit,
                "insurance": "110",
                "status": "1",
                "start_month": first,
                "end_month": None,
                "base_fen": 600_000,
                "add_type": "A",
                "stop_reason": None,
                "updated_at": NOW - 86_400,
            }
        )
        other_lines.extend(_line(other, unit, "110", month, 600_000) for month in recent)
    say(
        f"loading 1 + {others} persons, {len(lines)} ledger lines of the person, "
        f"{len(other_lines)} of the others"
    )
    _insert(engine, persons, person_rows)
    _insert(engine, enrolments, enrolment_rows)
    _insert(engine, contributions, lines + other_lines)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    return Landmarks(id_number, len(months), len(lines), len(other_lines))


def _other_id(k: int) -> str:
    """A valid ID number per other person: born on one of 9,000 days, serial k."""
    birth = date.fromordinal(date(1975, 1, 1).toordinal() + k % 9000)
    return _id_number(birth.strftime("%Y%m%d"), k // 9000 % 1000)


# -- the databases -----------------------------------------------------------------------


@contextmanager
def sqlite_url() -> Iterator[str]:
    work = Path(tempfile.mkdtemp(prefix="ssgate-bench-portal-"))
    try:
        yield f"sqlite:///{work}/portal.db"
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextmanager
def postgresql_url(admin_url: str) -> Iterator[str]:
    """A fresh schema in *admin_url*'s database, dropped afterwards."""
    schema = "bench_portal_" + secrets.token_hex(4)
    admin = make_engine(admin_url)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        sep = "&" if "?" in admin_url else "?"
        try:
            yield f"{admin_url}{sep}options=-csearch_path%3D{schema}"
        finally:
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    finally:
        admin.dispose()


# -- the portal, logged in ---------------------------------------------------------------


def _checked(reply: Reply, what: str, status: int = 200) -> Reply:
    if reply.status != status:
        raise RuntimeError(f"{what}: HTTP {reply.status}, expected {status}\n{reply.text[:800]}")
    return reply


def logged_in(engine: Engine, id_number: str) -> tuple[ConsoleClient, MemoryReactorClock]:
    """The person's account opened at the counter, logged in, the password changed."""
    clock = MemoryReactorClock()
    clock.advance(NOW)
    hasher = auth.PasswordHasher(auth.Argon2Params())
    box = auth.SecretBox(auth.SecretBox.generate_key())
    counter = portal.PersonCounter(
        engine=engine,
        box=box,
        hasher=hasher,
        totp_issuer="ssgate-bench",
        clock=clock.seconds,
        actor="os:bench",
    )
    issued = counter.enrol(id_number, reason="bench")
    assert issued.otp_uri is not None
    secret = urllib.parse.parse_qs(urllib.parse.urlsplit(issued.otp_uri).query)["secret"][0]
    shell = portal.PortalShell(
        authenticator=auth.Authenticator(engine, hasher, box),
        runner=SynchronousRunner(engine),
        clock=clock,
        records=portal.LedgerRecords(bench_pension_tables()),
        form_key=bytes(range(32)),
        random_bytes=os.urandom,
        secure=False,
        refusal_delay=0,
    )
    client = ConsoleClient(shell.site(), clock=clock)
    token = _checked(client.get("/login"), "login form").csrf_token()
    clock.advance(30)
    code = auth.current_code(secret, clock.seconds())
    form = {"csrf_token": token, "id_number": id_number, "password": issued.password, "otp": code}
    _checked(client.post("/login", form), "login", 303)
    token = _checked(client.get("/password"), "password form").csrf_token()
    clock.advance(30)
    change = {
        "csrf_token": token,
        "password": issued.password,
        "new_password": NEW_PASSWORD,
        "new_password2": NEW_PASSWORD,
        "otp": auth.current_code(secret, clock.seconds()),
    }
    _checked(client.post("/password", change), "password change", 303)
    return client, clock


def pages(marks: Landmarks) -> list[tuple[str, str]]:
    """(name, path) of every page the person reads; the certificate POST is separate."""
    first_year = _months(marks.months)[0][:4]
    return [
        ("home /", "/"),
        ("enrolments", "/enrolments"),
        ("contributions (all)", "/contributions"),
        ("contributions 1 year", "/contributions?from=2024-01&to=2024-12"),
        (f"contributions (year {first_year})", f"/contributions?year={first_year}"),
        ("contributions.csv (all)", "/contributions.csv"),
        ("account (latest year)", "/account"),
        (f"account ({first_year})", f"/account?year={first_year}"),
        ("retirement", "/retirement"),
        ("declarations", "/declarations"),
        ("certificate form", "/certificate"),
    ]


def bench_pension_tables() -> PensionTables:
    """The shipped tables, with the first shipped 记账利率 repeated for every earlier
    year: the shipped table starts in 2016, and without a rate for each earlier year
    the statement of a later year is not computed at all (a legacy opening balance
    stands in for those years in production).  With them, the newest year's statement
    carries the balance through all 30 years: the most work that page does."""
    shipped = default_pension_tables()
    first = min(shipped.interest_rates)
    rate = shipped.interest_rates[first]
    rates = dict(shipped.interest_rates)
    for year in range(LAST_MONTH[0] - 60, first):
        rates[year] = dataclasses.replace(rate, year=year, source="bench")
    return dataclasses.replace(shipped, interest_rates=rates)


def _timed(call: Any, warmup: int, repeats: int) -> list[float]:
    for _ in range(warmup):
        call()
    times: list[float] = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def measure(
    engine: Engine, marks: Landmarks, *, warmup: int, repeats: int
) -> dict[str, list[float]]:
    client, clock = logged_in(engine, marks.id_number)
    results: dict[str, list[float]] = {}
    for name, path in pages(marks):
        _checked(client.get(path), name)
        results[name] = _timed(lambda p=path, n=name: _checked(client.get(p), n), warmup, repeats)
        clock.advance(1)  # well inside the idle timeout
    months = _months(marks.months)
    codes: list[str] = []

    def certificate() -> None:
        token = client.get("/certificate").csrf_token()
        form = {"csrf_token": token, "from": months[0], "to": months[-1]}
        reply = _checked(client.post("/certificate", form), "certificate")
        found = re.search(
            r"canbao-zhengming-([A-Z2-7]+)\.pdf", reply.header("content-disposition") or ""
        )
        if found is None:
            raise RuntimeError("the certificate answer names no code")
        codes.append(found.group(1))

    results["certificate PDF (30 years; incl. form)"] = _timed(certificate, warmup, repeats)
    stranger = ConsoleClient(client.site, clock=clock)
    code = codes[-1]
    results["verify (no login)"] = _timed(
        lambda: _checked(stranger.get(f"/verify/{code}"), "verify"), warmup, repeats
    )
    return results


# -- report and entry --------------------------------------------------------------------


def report(args: argparse.Namespace, marks: Landmarks, results: dict[str, list[float]]) -> None:
    print(
        f"portal: {args.db}, one person with {marks.months} months ({marks.lines} ledger "
        f"lines, 3 units) among {args.others} others ({marks.other_lines} lines), "
        f"{args.repeats} runs each after {args.warmup} warm-up"
    )
    print(f"{'page':40} {'median ms':>9} {'p99 ms':>8}")
    over: list[str] = []
    for name, times in results.items():
        median = statistics.median(times) * 1000
        p99 = percentile(times, 99) * 1000
        mark = "  over 100 ms" if median > BOUND_MS else ""
        if mark:
            over.append(name)
        print(f"{name:40} {median:9.1f} {p99:8.1f}{mark}")
    print(f"pages over {BOUND_MS:.0f} ms median: {', '.join(over) if over else 'none'}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run.py portal", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--pg-url", default=PG_URL)
    parser.add_argument("--years", type=int, default=30, help="the person's years of ledger")
    parser.add_argument("--others", type=int, default=2000, help="other persons in the units")
    parser.add_argument(
        "--other-months", type=int, default=60, help="months of pension lines per other person"
    )
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=3)
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.years < 1 or args.repeats < 1 or args.warmup < 0 or args.others < 0:
        sys.stderr.write("bench portal: --years and --repeats at least 1, others not negative\n")
        return 2
    started = time.perf_counter()
    database = sqlite_url() if args.db == "sqlite" else postgresql_url(args.pg_url)
    with database as url:
        engine = make_engine(url)
        try:
            marks = load(
                engine, years=args.years, others=args.others, other_months=args.other_months
            )
            say(f"data set loaded in {time.perf_counter() - started:.1f} s; measuring")
            results = measure(engine, marks, warmup=args.warmup, repeats=args.repeats)
        finally:
            engine.dispose()
    say(f"done in {time.perf_counter() - started:.0f} s")
    report(args, marks, results)
    return 0
