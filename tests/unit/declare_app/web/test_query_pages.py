"""The query pages, CSV and JSON with a stub in place of EmployerQueries: every call
goes through the runner (never on the reactor) for the gateway identity's actor; a
unit in the parameters changes nothing (pages) or is refused (API); the query's
findings come back beside their fields (422) and "not found" is 404; without
queries configured every route says 501; malformed parameters never give a 500."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from twisted.internet.testing import MemoryReactorClock

from auth.testing import runner_pool
from declare_app._queries import ChangeList, InvalidQuery, Page, Roster
from declare_app.interfaces import Actor, Finding, NotFound
from declare_app.web import employer_site
from declare_app.web._query_pages import SPECS
from declare_app.web.testing import (
    ALICE,
    CSRF_KEY,
    NOW,
    GuardedClient,
    MemoryWorkflow,
    SynchronousRunner,
    element_text,
)


class StubQueries:
    """Answers roster and changes with empty pages; ``refuse`` makes every call raise."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Actor, dict[str, Any]]] = []
        self.refuse: Exception | None = None

    def __getattr__(self, method: str) -> Callable[..., Any]:
        def call(conn: Any, actor: Actor, **kwargs: Any) -> Any:
            assert runner_pool.get(), f"{method} called outside the runner"
            self.calls.append((method, actor, kwargs))
            if self.refuse is not None:
                raise self.refuse
            try:  # as the real queries read them
                page = Page(int(kwargs.get("limit", 100)), int(kwargs.get("offset", 0)), 0)
            except ValueError:
                raise InvalidQuery([Finding("V-FORM", "limit", "error", "每页条数")]) from None
            if method == "roster":
                return Roster(rows=(), page=page, counts={"1": 0})
            if method == "changes":
                return ChangeList(rows=(), page=page, adds=0, reduces=0)
            raise NotFound("该人员")

        return call


@pytest.fixture
def stub() -> StubQueries:
    return StubQueries()


@pytest.fixture
def q(stub: StubQueries, clock: MemoryReactorClock) -> GuardedClient:
    site = employer_site(
        workflow=MemoryWorkflow(require_runner=True),
        runner=SynchronousRunner(),
        clock=clock,
        csrf_key=CSRF_KEY,
        queries=stub,  # type: ignore[arg-type]
    )
    return GuardedClient(site, clock)


def test_the_menu_and_the_index_list_the_eight_queries(q: GuardedClient) -> None:
    page = q.get("/queries")
    assert page.status == 200 and 'href="/queries" aria-current="page"' in page.text
    text = element_text(page.text, "query-list")
    for spec in SPECS.values():
        assert spec.title in text


def test_a_query_runs_on_the_runner_for_the_gateway_unit(
    q: GuardedClient, stub: StubQueries
) -> None:
    page = q.get("/queries/roster?status=all&name=%E5%BC%A0&unit_code=87654321&page=3")
    assert page.status == 200, page.text
    [(method, actor, kwargs)] = stub.calls
    assert method == "roster" and actor.unit_code == ALICE.unit_code
    assert actor.session_id == ALICE.session_id
    assert kwargs == {"status": None, "name": "张", "limit": 50, "offset": 100, "now": NOW}
    assert "没有符合条件的记录" in element_text(page.text, "query-result")


def test_the_api_refuses_unknown_parameters_and_passes_paging(
    q: GuardedClient, stub: StubQueries
) -> None:
    r = q.api("GET", "/api/v1/queries/changes?unit_code=87654321")
    assert r.status == 422 and r.json()["findings"][0]["field"] == "unit_code"
    assert stub.calls == []
    r = q.api("GET", "/api/v1/queries/changes?limit=7&offset=14&direction=add")
    assert r.status == 200
    body = r.json()
    assert body["query"] == "changes" and body["page"]["total"] == 0
    assert stub.calls[0][2] == {"direction": "add", "limit": "7", "offset": "14", "now": NOW}


def test_findings_are_beside_their_fields_and_not_found_is_404(
    q: GuardedClient, stub: StubQueries
) -> None:
    stub.refuse = InvalidQuery([Finding("V-FORM", "from_month", "error", "年月格式应为YYYY-MM")])
    page = q.get("/queries/changes?from_month=x")
    assert page.status == 422
    assert "年月格式" in element_text(page.text, "field-from_month")
    api = q.api("GET", "/api/v1/queries/changes?from_month=x")
    assert api.status == 422 and api.json()["findings"][0]["field"] == "from_month"
    stub.refuse = None
    assert q.get("/queries/person-payments?id_number=330682199003071234").status == 404
    assert q.api("GET", "/api/v1/queries/person-payments?person_number=P1").status == 404
    assert q.get("/queries/person-payments.csv?person_number=P1").status == 404


def test_a_person_query_waits_for_a_person(q: GuardedClient, stub: StubQueries) -> None:
    assert q.get("/queries/account-statement").status == 200
    assert q.get("/queries/account-statement.csv").status == 422
    assert q.api("GET", "/api/v1/queries/account-statement").status == 422
    assert stub.calls == []


def test_without_queries_every_route_is_501(client: GuardedClient) -> None:
    for name in SPECS:
        assert client.get(f"/queries/{name}").status == 501
        assert client.get(f"/queries/{name}.csv").status == 501
        assert client.api("GET", f"/api/v1/queries/{name}").status == 501


@pytest.mark.parametrize(
    "query",
    ["page=-1", "page=%FF", "page=1e9", "limit=abc", "include_overdue=%00", "a=1&a=2", "%%"],
)
def test_malformed_parameters_never_give_a_500(q: GuardedClient, query: str) -> None:
    for name in SPECS:
        for path in (f"/queries/{name}", f"/queries/{name}.csv", f"/api/v1/queries/{name}"):
            r = q.get(f"{path}?{query}")
            assert r.status < 500, (path, query, r.status, r.text[-500:])
