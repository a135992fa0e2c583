"""Isolation between units (issue 4, acceptance 3), end to end on a real database.

One database holds the demo data of two units (``load_demo`` for both, different
seeds) and, for unit B, a declaration in every state (an applied one with its
voucher).  The employer site runs the real :class:`Declarations` workflow and the real
:class:`EmployerQueries`.  As unit A, every route of the site's route table
(:data:`declare_app.web._site.ROUTES`, one row per method and path, so a new route is covered, or the test fails
naming it) is called with every method it takes, with B's declaration ids, voucher
numbers, ID numbers and 个人编号 in the path, B's persons in query parameters and
form/JSON fields, and forged ``unit_code``/``unit``/``account``/``session_id``
parameters, fields, headers and cookies.  Every answer is a refusal or a 200 that
shows none of B's identifiers (other than what the request itself carried), and
every row belonging to B is the same afterwards.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote_plus, urlencode

import pytest
from sqlalchemy import Engine, select
from twisted.internet.testing import MemoryReactorClock

import declare_app
from auth._authenticator import AuthOutcome
from auth.testing import SynchronousRunner
from declare_app._declarations import CHINA_TIME, Declarations
from declare_app._demo_data import load_demo
from declare_app._queries import EmployerQueries
from declare_app._schema import (
    declaration_events,
    declarations,
    enrolments,
    metadata,
    persons,
    units,
    vouchers,
)
from declare_app.interfaces import Actor, DeclarationType, Status
from declare_app.web import employer_site, registry_unit_name
from declare_app.web._query_pages import SPECS
from declare_app.web._site import ROUTES
from declare_app.web.testing import ALICE, CSRF_KEY, GuardedClient
from tests.integration.declare_app.conftest import person_add_form
from web import Route

UNIT_A, UNIT_B, REGION = "12345678", "87654321", "330682"  # as conftest registers them
UNIT_B_NAME = "上虞另一家公司"
NOW = datetime(2025, 3, 10, 10, 0, tzinfo=CHINA_TIME).timestamp()  # conftest's NOW
EMPLOYER_A = replace(ALICE, account=f"{REGION}{UNIT_A}@sxlss", unit_code=UNIT_A, issued_at=NOW)
ACCOUNT_B = f"{REGION}{UNIT_B}@sxlss"
SESSION_B = "s-b-isolation"
ACTOR_B = Actor("employer", ACCOUNT_B, unit_code=UNIT_B, session_id=SESSION_B)
AUDITOR = Actor("staff", "zhang", role="auditor")

# What the site answers when it refuses; a 200 must then show nothing of B.
REFUSALS = {400, 403, 404, 409, 422, 501}
FORGED_HEADERS = {
    "X-Forwarded-For": "10.9.8.7",
    "X-SSGATE-Unit": UNIT_B,
    "X-SSGATE-Account": ACCOUNT_B,
    "X-SSGATE-Session": SESSION_B,
    "Cookie": f"session_id={SESSION_B}; unit_code={UNIT_B}; account={ACCOUNT_B}",
}
FORGED_PARAMS = {
    "unit_code": UNIT_B,
    "unit": UNIT_B,
    "account": ACCOUNT_B,
    "session_id": SESSION_B,
}


def _id_number(seq: int) -> str:
    body = f"330682198802{seq % 28 + 1:02d}{seq:03d}"
    return body + declare_app.person_id_check_char(body)


def _person_add(id_number: str, name: str) -> dict[str, Any]:
    return person_add_form(id_number, name=name, hire_date="2025-03-01", start_month="2025-03")


def _b_in_every_state(conn: Any, workflow: Declarations) -> list[str]:
    """One person-add of B's in each state; their ids."""
    ids = []
    for n, status in enumerate(Status):
        d = workflow.create_draft(
            conn,
            ACTOR_B,
            DeclarationType.PERSON_ADD,
            _person_add(_id_number(500 + n), f"鲍{'甲乙丙丁戊己'[n]}勃"),
            now=NOW,
        )
        if status is not Status.DRAFT:
            workflow.submit(conn, ACTOR_B, d.id, now=NOW)
        if status is Status.WITHDRAWN:
            workflow.withdraw(conn, ACTOR_B, d.id, now=NOW)
        if status in (Status.UNDER_REVIEW, Status.RETURNED, Status.APPLIED):
            workflow.claim(conn, AUDITOR, d.id, now=NOW)
        if status is Status.RETURNED:
            workflow.return_(conn, AUDITOR, d.id, code="R05", text="基数与工资不符", now=NOW)
        if status is Status.APPLIED:
            applied = workflow.approve(conn, AUDITOR, d.id, now=NOW)
            assert applied.voucher_no
        assert workflow.get(conn, ACTOR_B, d.id).status is status
        ids.append(d.id)
    return ids


@dataclass
class UnitB:
    declaration_ids: list[str]
    voucher_numbers: list[str]
    persons: list[tuple[str, str, str]]  # (身份证号, 个人编号, 姓名), enrolled in B only
    names: set[str]  # B's persons' names that nothing of A's contains
    payload_people: list[tuple[str, str]]  # (身份证号, 姓名) in B's declarations

    def identifiers(self) -> set[str]:
        out = {UNIT_B, UNIT_B_NAME, *self.declaration_ids, *self.voucher_numbers, *self.names}
        for idn, number, _name in self.persons:
            out |= {idn, number}
        out |= {idn for idn, _ in self.payload_people}
        return out


def _texts(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [t for v in value.values() for t in _texts(v)]
    if isinstance(value, list):
        return [t for v in value for t in _texts(v)]
    return [str(value)]


def _unit_b(conn: Any) -> UnitB:
    e, p, d = enrolments.c, persons.c, declarations.c
    others = select(e.person_number).where(e.unit_code != UNIT_B)
    b_persons = [
        (r.id_number, r.person_number, r.name)
        for r in conn.execute(
            select(p.id_number, p.person_number, p.name)
            .where(
                p.person_number.in_(select(e.person_number).where(e.unit_code == UNIT_B)),
                p.person_number.not_in(others),
            )
            .order_by(p.person_number)
        )
    ]
    a_texts = [r.name for r in conn.execute(select(p.name).where(p.person_number.in_(others)))]
    payload_people: list[tuple[str, str]] = []
    for r in conn.execute(select(d.unit_code, d.payload)):
        payload = json.loads(r.payload)
        if r.unit_code == UNIT_B:
            idn, name = payload.get("id_number"), payload.get("name")
            if isinstance(idn, str) and isinstance(name, str):
                payload_people.append((idn, name))
        else:
            a_texts.extend(_texts(payload))
    a_blob = "\n".join(a_texts)
    names = {n for _, _, n in b_persons} | {n for _, n in payload_people}
    ids = [r.id for r in conn.execute(select(d.id).where(d.unit_code == UNIT_B).order_by(d.id))]
    numbers = [
        r.number
        for r in conn.execute(
            select(vouchers.c.number)
            .where(vouchers.c.unit_code == UNIT_B)
            .order_by(vouchers.c.number)
        )
    ]
    return UnitB(
        declaration_ids=ids,
        voucher_numbers=numbers,
        persons=b_persons,
        names={n for n in names if n not in a_blob},  # a name A also has is not B's secret
        payload_people=[(i, n) for i, n in payload_people if i not in a_blob],
    )


def _snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row that belongs to unit B, table by table."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.begin() as conn:
        decl_ids = select(declarations.c.id).where(declarations.c.unit_code == UNIT_B)
        numbers: set[str] = set()
        for table in metadata.sorted_tables:
            if "unit_code" in table.c:
                rows = conn.execute(select(table).where(table.c.unit_code == UNIT_B)).all()
                if "person_number" in table.c:
                    numbers |= {r.person_number for r in rows}
            elif table is units:
                rows = conn.execute(select(table).where(table.c.code == UNIT_B)).all()
            elif table is declaration_events:
                rows = conn.execute(select(table).where(table.c.declaration_id.in_(decl_ids))).all()
            else:
                continue
            out[table.name] = sorted((tuple(r) for r in rows), key=repr)
        out["persons"] = sorted(
            (
                tuple(r)
                for r in conn.execute(select(persons).where(persons.c.person_number.in_(numbers)))
            ),
            key=repr,
        )
    return out


@dataclass
class World:
    engine: Engine
    client: GuardedClient
    b: UnitB
    principals: list[str] = field(default_factory=list)


@pytest.fixture
def world(decl_db: Engine, workflow: Declarations) -> World:
    with decl_db.begin() as conn:
        load_demo(conn, UNIT_A, now=NOW, seed=1, persons_count=60)
        load_demo(conn, UNIT_B, now=NOW, seed=2, persons_count=40)
        _b_in_every_state(conn, workflow)
    with decl_db.begin() as conn:
        b = _unit_b(conn)
    principals: list[str] = []

    def change_password(
        principal: str, old: str, otp: str, new: str, *, source: str, now: float
    ) -> AuthOutcome:
        principals.append(principal)
        return AuthOutcome(False, "bad-password", principal, None, None)

    clock = MemoryReactorClock()
    clock.advance(NOW)
    site = employer_site(
        workflow=workflow,
        runner=SynchronousRunner(decl_db),
        clock=clock,
        csrf_key=CSRF_KEY,
        unit_names=registry_unit_name,
        queries=EmployerQueries(declare_app.demo_rate_table()),
        change_password=change_password,
    )
    return World(decl_db, GuardedClient(site, clock, identity=EMPLOYER_A), b, principals)


# -- the requests -----------------------------------------------------------------------------

_GROUP = re.compile(r"<\w+:(\w+)>")


def _paths(route: Route, b: UnitB) -> list[str]:
    """Concrete paths of *route*, each named group filled with what A might try."""
    keys = [*b.declaration_ids, *b.voucher_numbers]
    for idn, number, _ in b.persons[:3]:
        keys += [idn, number]
    values = {
        "id": keys,
        "type": [t.value for t in DeclarationType],
        "name": list(SPECS),
        "ext": ["csv", "xlsx"],
        "n": ["1", "2"],  # evidence: attachment numbers, B's or nobody's
    }
    paths = [route.path]
    while True:
        m = next((_GROUP.search(p) for p in paths if _GROUP.search(p)), None)
        if m is None:
            break
        assert m.group(1) in values, f"route {route.path}: no values for {m.group(1)}"
        paths = [
            p[: g.start()] + v + p[g.end() :]
            for p in paths
            for g in [_GROUP.search(p)]
            if g is not None
            for v in values[m.group(1)]
        ] + [p for p in paths if _GROUP.search(p) is None]
    assert all("<" not in p for p in paths), (route.path, paths)
    return paths


def _person_values(b: UnitB) -> dict[str, str]:
    idn, number, name = b.persons[0]
    return {"id_number": idn, "person_number": number, "name": name}


def _payload(b: UnitB, forged: bool) -> dict[str, Any]:
    idn, number, name = b.persons[0]
    payload: dict[str, Any] = {
        **_person_add(idn, name),
        "person_number": number,
        "person_no": number,
        "reduce_reason": "11",
        "end_month": "2025-03",
        "year": "2025",
    }
    if forged:
        payload.update(FORGED_PARAMS)
    return payload


@dataclass
class Attempt:
    method: str
    path: str
    sent: str  # path, query and body as text: what A itself put in the request
    kind: str  # "form", "api", "upload", "get"
    body: Any = None


def _attempts(route: Route, b: UnitB) -> list[Attempt]:
    out: list[Attempt] = []
    person = urlencode(_person_values(b))
    forged = urlencode(FORGED_PARAMS)
    api = route.is_api
    upload = route.multipart
    for path in _paths(route, b):
        for method in (route.method,):
            if method == "GET":
                for given in ("", person, forged, f"{person}&{forged}"):
                    query = given
                    if "account-statement" in path:  # with a year: the statement itself is read
                        query = f"{given}&year=2024" if given else "year=2024"
                    target = f"{path}?{query}" if query else path
                    out.append(Attempt("GET", target, unquote_plus(target), "get"))
                continue
            for forge in (False, True):
                target = f"{path}?{forged}" if forge else path
                if upload:
                    idn, number, name = b.persons[0]
                    csv = f"身份证号,姓名,个人编号\n{idn},{name},{number}\n"
                    if api:
                        target += ("&" if "?" in target else "?") + "type=person-add"
                    out.append(Attempt(method, target, unquote_plus(target) + csv, "upload", csv))
                elif api:
                    value = {
                        "type": "person-add",
                        "payload": _payload(b, forge),
                        "id": b.declaration_ids[0],
                        **(FORGED_PARAMS if forge else {}),
                    }
                    text = json.dumps(value, ensure_ascii=False)
                    out.append(Attempt(method, target, unquote_plus(target) + text, "api", value))
                else:
                    fields = [
                        (k, v) for k, v in _payload(b, forge).items() if not isinstance(v, list)
                    ]
                    fields += [("insurances", i) for i in ("110", "210", "310", "410", "510")]
                    fields += [
                        ("old_password", "Old-Passw0rd!1"),
                        ("otp", "123456"),
                        ("new_password", "New-Passw0rd!2"),
                        ("new_password_again", "New-Passw0rd!2"),
                        ("principal", ACCOUNT_B),
                        ("declaration_id", b.declaration_ids[0]),
                    ]
                    for action in ("preview", "save", "submit"):
                        all_fields = [*fields, ("action", action)]
                        text = unquote_plus(target) + " " + " ".join(v for _, v in all_fields)
                        out.append(Attempt(method, target, text, "form", all_fields))
    return out


def _send(client: GuardedClient, at: Attempt) -> Any:
    if at.kind == "get":
        return client.get(at.path, headers=FORGED_HEADERS)
    if at.kind == "form":
        return client.post_form(at.path, at.body, headers=FORGED_HEADERS)
    if at.kind == "api":
        return client.api(at.method, at.path, at.body, headers=FORGED_HEADERS)
    boundary = uuid.uuid4().hex
    from declare_app.web.testing import csrf_for

    token = csrf_for(EMPLOYER_A)
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{token}\r\n',
        f'--{boundary}\r\nContent-Disposition: form-data; name="unit_code"\r\n\r\n{UNIT_B}\r\n',
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="b.csv"\r\n'
        f"Content-Type: text/csv\r\n\r\n{at.body}\r\n",
        f"--{boundary}--\r\n",
    ]
    headers = {
        **FORGED_HEADERS,
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "X-CSRF-Token": token,
    }
    return client.request(at.method, at.path, body="".join(parts).encode(), headers=headers)


def _shown(r: Any) -> str:
    text = r.body.decode("utf-8", "replace")
    if (r.header("content-type") or "").startswith(("application/json", "application/problem")):
        with contextlib.suppress(ValueError):
            text += json.dumps(r.json(), ensure_ascii=False)
    return text + (r.header("location") or "")


def test_the_route_table_is_what_this_test_knows() -> None:
    """Every named group of every route has values here (else the new route would not be
    tried with B's data): :func:`_paths` fails naming it."""
    b = UnitB(["d" * 32], ["SB20250310000001"], [("x", "1", "n")], set(), [])
    for route in ROUTES.routes:
        assert _paths(route, b), route.path


def test_unit_a_cannot_read_or_change_anything_of_unit_b(world: World) -> None:
    b = world.b
    assert len(b.declaration_ids) >= len(Status) and b.voucher_numbers and b.persons
    assert b.names and b.payload_people
    secrets = b.identifiers()
    before = _snapshot(world.engine)
    leaks: list[str] = []
    statuses: dict[str, set[int]] = {}
    covered = 0
    # reads and id-addressed writes first; then the writes that create (A's own drafts,
    # which may carry B's person's numbers A typed, so no listing is read after them)
    everything = [(route, at) for route in ROUTES.routes for at in _attempts(route, b)]
    creating = [
        (route, at)
        for route, at in everything
        if at.method != "GET" and "<id:id>" not in route.path
    ]
    reading = [pair for pair in everything if pair not in creating]
    for route, at in reading + creating:
        r = _send(world.client, at)
        covered += 1
        statuses.setdefault(route.path, set()).add(r.status)
        if r.status not in REFUSALS and r.status not in (200, 201, 204, 303):
            leaks.append(f"{at.method} {at.path}: status {r.status} {r.text[:300]!r}")
            continue
        shown = _shown(r)
        found = sorted(s for s in secrets if s not in at.sent and s in shown)
        if found:
            leaks.append(f"{at.method} {at.path} [{r.status}] shows B's {found}")
        if r.status == 303:
            location = r.header("location") or ""
            assert not any(i in location for i in b.declaration_ids), (at.path, location)
    # names as path segments cannot even be routed
    name = b.persons[0][2]
    for path in (f"/declarations/{quote(name)}", f"/api/v1/declarations/{quote(name)}"):
        assert world.client.get(path).status == 404
    assert not leaks, "\n".join(leaks[:50]) + f"\n({len(leaks)} in all)"
    assert covered > 1000 and len(statuses) == len({r.path for r in ROUTES.routes})
    # every id route refused B's ids (never 200 on B's own declaration)
    for pattern, seen in statuses.items():
        assert seen <= REFUSALS | {200, 201, 204, 303}, (pattern, seen)
    assert set(world.principals) <= {EMPLOYER_A.account}, world.principals
    assert _snapshot(world.engine) == before


def test_b_ids_on_declaration_routes_are_not_found(world: World) -> None:
    """The routes that take a declaration id answer 404 for each of B's, whatever B's
    declaration's state (not 409/422, which would confirm it exists)."""
    client = world.client
    for decl_id in world.b.declaration_ids:
        for route in ROUTES.routes:
            if "<id:id>" not in route.path:
                continue
            path = route.path.replace("<id:id>", decl_id)
            for method in (route.method,):
                if method == "GET":
                    r = client.get(path, headers=FORGED_HEADERS)
                elif path.startswith("/api/"):
                    # a body each action takes, so only the id can be what is refused
                    takes_payload = method == "PUT" or path.endswith("/resubmit")
                    body = {"payload": {}} if takes_payload else {}
                    r = client.api(method, path, body, headers=FORGED_HEADERS)
                else:
                    r = client.post_form(path, [("action", "submit")], headers=FORGED_HEADERS)
                assert r.status == 404, (method, path, r.status, r.text[:300])


def test_account_statement_without_a_year_is_a_field_error(world: World) -> None:
    """Found by the sweep (it once answered 500): ``/queries/account-statement`` with an
    ID number and no year is a finding on the year field, on the page, CSV and API."""
    idn = world.b.persons[0][0]
    for path in (
        "/queries/account-statement",
        "/queries/account-statement.csv",
        "/api/v1/queries/account-statement",
    ):
        r = world.client.get(f"{path}?id_number={idn}")
        assert r.status == 422, (path, r.status)
        assert "请输入年度" in r.body.decode(), path
