"""Issue 18, acceptance 2: an isolation sweep generated from the portal's route table.

Person A, logged in, probes every route with B's ID number, 个人编号, principal,
certificate code, declaration ids and unit, in query strings, form fields, path
segments and headers (forged forwarding headers, a forged session cookie beside A's).
Nothing of B may come back: not B's name, masked or whole ID number, 个人编号,
principal, unit name, declaration ids or certificate code — more than 500 requests.
B's certificate code is only ever legitimately readable through ``/verify``, which is
the one path not probed with it.
"""

from __future__ import annotations

import itertools
from urllib.parse import quote, urlencode

import pytest
from sqlalchemy import Engine, select
from twisted.internet.threads import deferToThread

from portal._schema import portal_certificates
from portal._site import PERSON

from .conftest import ID_B, UNIT_B, Served, reactor_test
from .test_portal_site import issue_certificate, logged_in


@pytest.fixture
def engine(sqlite_engine: Engine) -> Engine:
    """SQLite only: isolation is decided by the session row and the handlers, not the
    database, and every probe is an audited view (a write): both databases would
    double a sweep of 500+ requests for nothing more."""
    return sqlite_engine


@reactor_test
async def test_person_a_sees_nothing_of_person_b_on_any_route(served: Served) -> None:
    a, b = served.world.people["a"], served.world.people["b"]
    browser_b = await deferToThread(logged_in, served, b)
    code_b, _ = await deferToThread(issue_certificate, browser_b, "2025-01", "2025-03")
    browser_a = await deferToThread(logged_in, served, a)
    declaration_b = served.world.declaration_ids[ID_B][0]
    markers = {
        "李四",
        ID_B,
        ID_B[:6] + "********" + ID_B[-4:],
        b.person_number,
        b.principal,
        "上虞另一家公司",
        declaration_b,
        code_b,
    }
    values = [ID_B, b.person_number, b.principal, code_b, declaration_b, UNIT_B, "2025", "110"]
    names = ["id_number", "person_number", "code"]
    queries = (
        [""]
        + [urlencode({name: value}) for name, value in itertools.product(names, values[:5])]
        + [urlencode({"unit": UNIT_B}), urlencode({"unit": UNIT_B, "insurance": "110"})]
    )
    headers = [
        {},
        {"X-Forwarded-For": "10.0.0.2", "X-Person": b.person_number, "X-Id-Number": ID_B},
        {"Cookie": f"__Host-ssgate-portal=forged{b.principal}; person={b.person_number}"},
    ]
    routes = [r for r in served.shell.table.routes if PERSON in r.roles and r.path != "/logout"]

    def check(route: str, status: int, body: bytes, *why: object) -> None:
        text = body.decode("utf-8", "replace")
        leaked = [m for m in markers if m in text]
        assert not leaked, (route, status, leaked, *why)

    def sweep() -> int:
        sent = 0
        token = browser_a.csrf("/certificate")  # the session's token: the same on every form
        mine = "; ".join(f"{k}={v}" for k, v in browser_a.cookies.items())
        for route, forged in itertools.product(routes, headers):
            # A's session, with forged cookies beside it.
            extra = {"Cookie": forged["Cookie"] + "; " + mine} if "Cookie" in forged else forged
            # Writes: a few forged fields each (a certificate costs a PDF).
            for query in queries if route.method == "GET" else queries[:: len(queries) // 4]:
                if route.method == "GET":
                    path = route.path + ("?" + query if query else "")
                    status, _, body = browser_a.request("GET", path, headers=extra)
                else:
                    form = {"csrf_token": token, "from": "2025-01", "to": "2025-03"}
                    form.update(p.split("=", 1) for p in query.split("&") if p)  # type: ignore[misc]
                    status, _, body = browser_a.request("POST", route.path, form, headers=extra)
                sent += 1
                check(route.path, status, body, query, extra)
        # Path segments naming B: unknown paths, never B's page.
        for value in values:
            for prefix in (
                "/contributions/",
                "/account/",
                "/enrolments/",
                "/declarations/",
                "/persons/",
            ):
                status, _, body = browser_a.request("GET", prefix + quote(value))
                sent += 1
                assert status in (400, 404)
                check(prefix, status, body)
        return sent

    sent = await deferToThread(sweep)
    assert sent > 500, sent
    # What A's certificate requests stored is A's, whatever fields they carried.
    with served.world.engine.begin() as conn:
        stored = conn.execute(
            select(portal_certificates.c.content, portal_certificates.c.principal)
        ).all()
    mine = [row.content for row in stored if row.principal == a.principal]
    assert mine and not any("李四" in c or b.person_number in c for c in mine)
