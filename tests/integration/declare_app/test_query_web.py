"""The eight queries through the employer site with the real :class:`EmployerQueries`
on SQLite and PostgreSQL, over the demo data of two units (``load_demo``): every page,
CSV and JSON answers, filters and pagination work, bad filter values are field
errors (never a 500), unit B's persons are not found from unit A, and each call is a
``declare.query.<name>`` audit event with the gateway session."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import datetime
from itertools import islice
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import Connection, Engine, distinct, func, select
from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import MemoryReactorClock

import audit
import declare_app
from auth.testing import SynchronousRunner
from declare_app._declarations import CHINA_TIME, Declarations
from declare_app._demo_data import load_demo
from declare_app._queries import EmployerQueries
from declare_app._schema import enrolments, persons
from declare_app.web import employer_site
from declare_app.web._query_pages import PAGE_SIZE, SPECS
from declare_app.web.testing import ALICE, CSRF_KEY, GuardedClient, element_text
from ssgate._db import in_transaction, read_engine

UNIT_A, UNIT_B, REGION = "12345678", "87654321", "330682"
NOW = datetime(2025, 3, 10, 10, 0, tzinfo=CHINA_TIME).timestamp()
EMPLOYER_A = replace(ALICE, account=f"{REGION}{UNIT_A}@sxlss", unit_code=UNIT_A, issued_at=NOW)
EMPLOYER_B = replace(
    EMPLOYER_A, account=f"{REGION}{UNIT_B}@sxlss", unit_code=UNIT_B, session_id="s-b-q"
)


@pytest.fixture
def demo_db(decl_db: Engine) -> Engine:
    with decl_db.begin() as conn:
        load_demo(conn, UNIT_A, now=NOW, seed=1, persons_count=120)
        load_demo(conn, UNIT_B, now=NOW, seed=2, persons_count=40)
    return decl_db


@pytest.fixture
def clients(demo_db: Engine, workflow: Declarations) -> tuple[GuardedClient, GuardedClient]:
    clock = MemoryReactorClock()
    clock.advance(NOW)
    site = employer_site(
        workflow=workflow,
        runner=SynchronousRunner(demo_db),
        clock=clock,
        csrf_key=CSRF_KEY,
        queries=EmployerQueries(declare_app.demo_rate_table()),
    )
    return (
        GuardedClient(site, clock, identity=EMPLOYER_A),
        GuardedClient(site, clock, identity=EMPLOYER_B),
    )


def _a_person(engine: Engine, unit: str) -> tuple[str, str]:
    """(身份证号, 个人编号) of a person enrolled in *unit* only."""
    e, p = enrolments.c, persons.c
    with engine.begin() as conn:
        other = select(e.person_number).where(e.unit_code != unit)
        row = conn.execute(
            select(p.id_number, p.person_number)
            .join(enrolments, e.person_number == p.person_number)
            .where(e.unit_code == unit, p.person_number.not_in(other))
            .order_by(p.person_number)
            .limit(1)
        ).one()
    return row.id_number, row.person_number


def test_every_query_page_csv_and_json_answers(
    clients: tuple[GuardedClient, GuardedClient], demo_db: Engine
) -> None:
    a, _ = clients
    idn, _number = _a_person(demo_db, UNIT_A)
    person = {
        "person-payments": f"?id_number={idn}",
        "account-statement": f"?id_number={idn}&year=2024",
    }
    index = a.get("/queries")
    assert index.status == 200
    for spec in SPECS.values():
        assert f'href="/queries/{spec.name}"' in index.text
        query = person.get(spec.name, "")
        page = a.get(f"/queries/{spec.name}{query}")
        assert page.status == 200, (spec.name, page.text[-2000:])
        assert spec.title in page.text and 'id="query-result"' in page.text
        download = a.get(f"/queries/{spec.name}.csv{query}")
        assert download.status == 200, (spec.name, download.text)
        assert download.header("content-type") == "text/csv; charset=utf-8"
        table = list(csv.reader(io.StringIO(download.body.decode("utf-8-sig"))))
        assert [c.label for c in spec.columns] in table, spec.name
        answer = a.api("GET", f"/api/v1/queries/{spec.name}{query}")
        assert answer.status == 200, (spec.name, answer.text)
        assert answer.json()["query"] == spec.name


def test_the_roster_pages_through_the_units_active_persons(
    clients: tuple[GuardedClient, GuardedClient],
) -> None:
    a, _ = clients
    body = a.api("GET", "/api/v1/queries/roster?limit=500").json()
    total = body["page"]["total"]
    assert total > PAGE_SIZE and {r["status"] for r in body["rows"]} == {"1"}
    first = a.get("/queries/roster")
    assert f"共 {total} 条" in element_text(first.text, "query-count")
    assert "下一页" in element_text(first.text, "query-pages")
    second = a.get("/queries/roster?page=2")
    assert "第 2/" in element_text(second.text, "query-count")
    everyone = a.api("GET", "/api/v1/queries/roster?status=all&limit=500").json()
    assert everyone["page"]["total"] >= total
    rows = list(csv.reader(io.StringIO(a.get("/queries/roster.csv").body.decode("utf-8-sig"))))
    header = rows.index([c.label for c in SPECS["roster"].columns])
    assert len(rows) - header - 1 == total


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/queries/changes?from_month=2024-13", "from_month"),
        ("/queries/changes?from_month=2025-01&to_month=2024-01", "to_month"),
        ("/queries/changes?status=nope", "status"),
        ("/queries/unit-payments?insurance=999", "insurance"),
        ("/queries/roster?id_number=123", "id_number"),
        ("/queries/roster?name=" + quote("张" * 60), "name"),
        ("/queries/person-payments?person_number=%3Cscript%3E", "person_number"),
        ("/queries/account-statement?id_number=33068219900307123X&year=1800", "year"),
        ("/queries/reaching-retirement?include_overdue=maybe", "include_overdue"),
        ("/queries/retirees?page=0", "page"),
        ("/queries/retirees?page=999999", "page"),
    ],
)
def test_bad_filters_are_field_errors(
    clients: tuple[GuardedClient, GuardedClient], path: str, field: str
) -> None:
    a, _ = clients
    page = a.get(path)
    assert page.status == 422, page.text[-1500:]
    where = "query-errors" if field == "page" else f"field-{field}"  # no page field in the form
    assert "错误" in element_text(page.text, where)
    if field != "page":  # the API pages with limit and offset
        api = a.api("GET", path.replace("/queries/", "/api/v1/queries/"))
        assert api.status == 422, api.text
        assert field in {f["field"] for f in api.json()["findings"]}


def test_another_units_person_is_not_found(
    clients: tuple[GuardedClient, GuardedClient], demo_db: Engine
) -> None:
    a, b = clients
    idn_b, number_b = _a_person(demo_db, UNIT_B)
    for query in (f"id_number={idn_b}", f"person_number={number_b}"):
        page = a.get(f"/queries/person-payments?{query}")
        assert page.status == 404 and 'id="query-result"' not in page.text  # only the form
        assert "未找到" in element_text(page.text, "query-notice")
        assert a.api("GET", f"/api/v1/queries/person-payments?{query}").status == 404
        assert a.api("GET", f"/api/v1/queries/account-statement?{query}&year=2024").status == 404
    # B's own person is found by B, and never appears in A's lists
    assert b.get(f"/queries/person-payments?id_number={idn_b}").status == 200
    for name in ("roster", "changes"):
        rows = a.api("GET", f"/api/v1/queries/{name}?id_number={idn_b}").json()["rows"]
        assert rows == []
    roster_a = a.get("/queries/roster.csv?status=all").body.decode("utf-8-sig")
    assert idn_b not in roster_a


def test_queries_are_audited_with_the_gateway_session(
    clients: tuple[GuardedClient, GuardedClient], demo_db: Engine
) -> None:
    a, _ = clients
    a.get("/queries/unit-info")
    a.get("/queries/changes?from_month=bad")
    with demo_db.begin() as conn:
        events = [r.event for r in audit.query(conn) if r.event.action.startswith("declare.query.")]
    outcomes = [(e.action, e.outcome, e.unit, e.session_id) for e in events]
    assert ("declare.query.unit-info", "ok", UNIT_A, EMPLOYER_A.session_id) in outcomes
    assert ("declare.query.changes", "refused", UNIT_A, EMPLOYER_A.session_id) in outcomes


def test_unknown_api_parameters_and_queries(clients: tuple[GuardedClient, GuardedClient]) -> None:
    a, _ = clients
    r = a.api("GET", "/api/v1/queries/roster?unit_code=87654321")
    assert r.status == 422 and r.json()["findings"][0]["field"] == "unit_code"
    assert a.get("/queries/nope").status == 404
    assert a.api("GET", "/api/v1/queries/nope").status == 404
    r = a.api("GET", "/api/v1/queries/person-payments")
    assert r.status == 422
    assert a.get("/queries/person-payments").status == 200  # the form, nothing run


class _ReadOnlyRunner:
    """The read path as ``ssgate._serve.Runner.read`` has it, on the calling thread:
    one read-only transaction on :func:`ssgate._db.read_engine` (a write fails)."""

    def __init__(self, engine: Engine) -> None:
        reader = read_engine(engine)
        assert reader is not None
        self.engine = reader
        self.calls = 0

    def read(self, fn: Any, /, *args: Any, **kwargs: Any) -> Deferred[Any]:
        self.calls += 1
        return succeed(in_transaction(self.engine, fn, *args, **kwargs))

    def stream(self, fn: Any, /, *args: Any, **kwargs: Any) -> _OpenStream:
        self.calls += 1
        return _OpenStream(self.engine.connect(), fn, *args, **kwargs)


class _OpenStream:
    """``ssgate._db.ReadStream`` on the calling thread: one open read transaction."""

    def __init__(self, conn: Connection, fn: Any, *args: Any, **kwargs: Any) -> None:
        self.conn = conn
        conn.begin()
        self.items = iter(fn(conn, *args, **kwargs))

    def next(self, count: int) -> Deferred[list[Any]]:
        return succeed(list(islice(self.items, count)))

    def close(self) -> Deferred[None]:
        self.conn.close()
        return succeed(None)


def test_queries_read_on_the_read_path_and_are_still_audited(
    demo_db: Engine, workflow: Declarations
) -> None:
    """With a reader, every query reads in a read-only transaction (which would fail
    if it wrote) and its audit event, refusals included, is appended afterwards on
    the write path; the answers are those of the write path."""
    clock = MemoryReactorClock()
    clock.advance(NOW)
    reader = _ReadOnlyRunner(demo_db)
    site = employer_site(
        workflow=workflow,
        runner=SynchronousRunner(demo_db),
        clock=clock,
        csrf_key=CSRF_KEY,
        queries=EmployerQueries(declare_app.demo_rate_table()),
        reader=reader,
    )
    a = GuardedClient(site, clock, identity=EMPLOYER_A)
    roster = a.api("GET", "/api/v1/queries/roster")
    assert roster.status == 200 and roster.json()["page"]["total"] > 0
    assert a.get("/queries/unit-info").status == 200
    assert a.get("/queries/changes?from_month=bad").status == 422
    assert reader.calls == 3
    with demo_db.begin() as conn:
        events = [r.event for r in audit.query(conn) if r.event.action.startswith("declare.query.")]
    outcomes = [(e.action, e.outcome, e.session_id) for e in events]
    assert outcomes == [
        ("declare.query.roster", "ok", EMPLOYER_A.session_id),
        ("declare.query.unit-info", "ok", EMPLOYER_A.session_id),
        ("declare.query.changes", "refused", EMPLOYER_A.session_id),
    ]
    # the roster CSV streams from one open read transaction: every person, the same
    # bytes as the write path's, one audit event marked as an export
    plain = GuardedClient(
        employer_site(
            workflow=workflow,
            runner=SynchronousRunner(demo_db),
            clock=clock,
            csrf_key=CSRF_KEY,
            queries=EmployerQueries(declare_app.demo_rate_table()),
        ),
        clock,
        identity=EMPLOYER_A,
    )
    streamed = a.get("/queries/roster.csv?status=all")
    assert streamed.status == 200 and streamed.headers[b"transfer-encoding"] == b"chunked"
    assert streamed.body == plain.get("/queries/roster.csv?status=all").body
    rows = list(csv.reader(io.StringIO(streamed.body.decode("utf-8-sig"))))
    header = rows.index([c.label for c in SPECS["roster"].columns])
    with demo_db.begin() as conn:
        persons_a = conn.execute(
            select(func.count(distinct(enrolments.c.person_number))).where(
                enrolments.c.unit_code == UNIT_A
            )
        ).scalar_one()
        last = [r.event for r in audit.query(conn) if r.event.action == "declare.query.roster"]
    assert len(rows) - header - 1 == persons_a
    assert last[-2].details.get("export") is True
    if reader.engine.dialect.name == "sqlite":
        reader.engine.dispose()
