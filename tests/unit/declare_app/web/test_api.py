"""The JSON API under /api/v1: the operations, and its errors with their status codes.

Every error is ``{"error": code, "message": 中文, "findings": [...]}``; 400 for what
cannot be read, 403 refused, 404 not there, 405 wrong method, 409 wrong state, 413 too
big, 415 wrong content type, 422 readable but wrong (with field findings), 501 a type
not yet open.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from declare_app.interfaces import DeclarationType, Status
from declare_app.web import FORM_SPECS
from declare_app.web.testing import (
    ALICE,
    BAD_CHECK_ID,
    PERSON,
    VALID_ID,
    GuardedClient,
    MemoryWorkflow,
    Seeder,
    csrf_for,
)

CJK = re.compile(r"[\u4e00-\u9fff]")


def assert_error(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status == status, (r.status, r.text)
    # An RFC 9457 problem document, with our code, message and findings beside it.
    assert r.header("content-type") == "application/problem+json; charset=utf-8"
    body = r.json()
    assert set(body) == {"type", "title", "status", "detail", "error", "message", "findings"}
    assert body["status"] == status and body["type"] == "about:blank", body
    assert body["detail"] == body["message"], body
    assert body["error"] == code, body
    assert CJK.search(body["message"]), body
    return body  # type: ignore[no-any-return]


def test_whoami_and_types(client: GuardedClient) -> None:
    """whoami: the gateway identity and the CSRF token; types: the eight forms with
    their fields, labels, kinds, choices and required flags."""
    who = client.api("GET", "/api/v1/whoami").json()
    assert who == {
        "account": ALICE.account,
        "unit_code": ALICE.unit_code,
        "session_id": ALICE.session_id,
        "source": "203.0.113.7:50123",
        "csrf_token": csrf_for(ALICE),
    }
    types = client.api("GET", "/api/v1/types").json()["types"]
    assert [t["type"] for t in types] == [t.value for t in DeclarationType]
    person = next(t for t in types if t["type"] == "person-add")
    assert person["name"] == "人员增加"
    fields = {f["name"]: f for s in person["sections"] for f in s["fields"]}
    assert set(fields) == set(FORM_SPECS[DeclarationType.PERSON_ADD].fields_by_name)
    assert fields["add_type"]["choices"][0] == {"value": "A", "label": "首次参保"}
    assert fields["insurances"]["kind"] == "multi" and fields["insurances"]["required"]
    lines = next(
        f
        for t in types
        if t["type"] == "annual-base"
        for s in t["sections"]
        for f in s["fields"]
        if f["name"] == "lines"
    )
    assert [c["name"] for c in lines["columns"]] == ["person_no", "name", "id_number", "wage"]


def test_the_whole_life_of_a_declaration(
    client: GuardedClient, seed: Seeder, workflow: MemoryWorkflow
) -> None:
    """create (201 + Location) → get → update → preview → submit → list by status →
    (auditor returns it) → resubmit (201, version 2) → submit → withdraw."""
    created = client.api(
        "POST", "/api/v1/declarations", {"type": "person-add", "payload": {**PERSON, "name": ""}}
    )
    assert created.status == 201
    d = created.json()
    assert created.header("location") == f"/api/v1/declarations/{d['id']}"
    assert (d["status"], d["status_name"], d["type_name"], d["version"]) == (
        "draft",
        "草稿",
        "人员增加",
        1,
    )
    assert d["unit_code"] == ALICE.unit_code
    assert d["created_at"] == "2026-01-01T08:00:00+08:00"
    assert any(f["field"] == "name" and f["severity"] == "error" for f in d["findings"])

    assert client.api("GET", f"/api/v1/declarations/{d['id']}").json()["id"] == d["id"]
    refused = client.api("POST", f"/api/v1/declarations/{d['id']}/submit")
    body = assert_error(refused, 422, "invalid")
    assert {
        "rule": "V-FORM-01",
        "field": "name",
        "severity": "error",
        "message": "请填写姓名",
    } in body["findings"]

    updated = client.api("PUT", f"/api/v1/declarations/{d['id']}", {"payload": PERSON})
    assert updated.status == 200 and updated.json()["payload"]["name"] == "张三"

    preview = client.api(
        "POST",
        "/api/v1/declarations/preview",
        {"type": "person-add", "payload": {**PERSON, "monthly_wage": 3000}},
    )
    p = preview.json()
    assert preview.status == 200 and p["ok"] is True
    assert p["payload"]["base"] == "4812.00"
    assert [f["rule"] for f in p["findings"]] == ["V-BASE-01"]

    submitted = client.api("POST", f"/api/v1/declarations/{d['id']}/submit")
    assert submitted.status == 200 and submitted.json()["status"] == "pending-review"
    again = client.api("POST", f"/api/v1/declarations/{d['id']}/submit")
    assert_error(again, 409, "wrong-state")

    listed = client.api("GET", "/api/v1/declarations?status=pending-review&limit=5").json()
    assert [x["id"] for x in listed["declarations"]] == [d["id"]]
    assert client.api("GET", "/api/v1/declarations?status=draft").json() == {"declarations": []}

    from declare_app.web.testing import AUDITOR

    seed.call(workflow.claim, AUDITOR, d["id"], now=1.0)
    seed.call(workflow.return_, AUDITOR, d["id"], code="R05", text="基数与工资不符", now=2.0)
    returned = client.api("GET", f"/api/v1/declarations/{d['id']}").json()
    assert (returned["status"], returned["return_code"], returned["return_text"]) == (
        "returned",
        "R05",
        "基数与工资不符",
    )

    new = client.api(
        "POST",
        f"/api/v1/declarations/{d['id']}/resubmit",
        {"payload": {**PERSON, "monthly_wage": "8000"}},
    )
    assert new.status == 201
    n = new.json()
    assert (n["version"], n["previous_id"], n["status"]) == (2, d["id"], "draft")
    assert client.api("POST", f"/api/v1/declarations/{n['id']}/submit").status == 200
    withdrawn = client.api("POST", f"/api/v1/declarations/{n['id']}/withdraw", {})
    assert withdrawn.status == 200 and withdrawn.json()["status"] == "withdrawn"
    assert_error(
        client.api("POST", f"/api/v1/declarations/{d['id']}/resubmit", {"payload": PERSON}),
        409,
        "wrong-state",
    )


def test_json_numbers_are_accepted_for_amounts_and_years(
    client: GuardedClient, workflow: MemoryWorkflow
) -> None:
    r = client.api(
        "POST",
        "/api/v1/declarations",
        {
            "type": "annual-base",
            "payload": {
                "year": 2025,
                "lines": [
                    {"person_no": "P1", "name": "张三", "id_number": VALID_ID, "wage": 6000.5}
                ],
            },
        },
    )
    assert r.status == 201, r.text
    [decl] = workflow.declarations.values()
    assert decl.payload["year"] == "2025"
    assert decl.payload["lines"][0]["wage"] == "6000.5"


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"{", "application/json", 400, "bad-json"),
        (b"\xff\xfe{}", "application/json", 400, "bad-encoding"),
        (b'{"type": "person-add", "type": "x"}', "application/json", 400, "bad-json"),
        (b'{"type": NaN}', "application/json", 400, "bad-json"),
        (b"[" * 100_000, "application/json", 400, "bad-json"),
        (b'{"a":' * 20 + b"1" + b"}" * 20, "application/json", 400, "bad-json"),
        (b"1" * 5000, "application/json", 400, "bad-json"),
        (b'{"type": "person-add"}', "text/plain", 415, "unsupported-media-type"),
        (b"type=person-add", "application/x-www-form-urlencoded", 415, "unsupported-media-type"),
        (
            b'{"type": "person-add"}',
            "application/json; charset=latin-1",
            415,
            "unsupported-charset",
        ),
        (b"[]", "application/json", 422, "invalid-input"),
        (b'"person-add"', "application/json", 422, "invalid-input"),
        (
            b'{"type": "person-add", "payload": {}, "unit_code": "87654321"}',
            "application/json",
            422,
            "invalid-input",
        ),
        (b'{"type": "nonsense", "payload": {}}', "application/json", 422, "invalid-input"),
        (b'{"type": 7, "payload": {}}', "application/json", 422, "invalid-input"),
        (b'{"type": "person-add"}', "application/json", 422, "invalid-input"),
        (b'{"type": "person-add", "payload": []}', "application/json", 422, "invalid-input"),
        (b"", "application/json", 400, "empty-body"),
    ],
)
def test_unreadable_or_wrong_bodies(
    client: GuardedClient,
    workflow: MemoryWorkflow,
    *,
    body: bytes,
    content_type: str,
    status: int,
    code: str,
) -> None:
    """Bodies that are not JSON, not UTF-8, with duplicate keys, NaN, runaway nesting,
    a giant number, the wrong content type or charset, or the wrong shape: 400/415/422
    with a Chinese message, nothing stored."""
    r = client.request(
        "POST",
        "/api/v1/declarations",
        body=body,
        headers={"Content-Type": content_type, "X-CSRF-Token": csrf_for()},
    )
    assert_error(r, status, code)
    assert workflow.declarations == {}


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"name": 123}, "name", "应为字符串"),
        ({"name": ["张三"]}, "name", "应为字符串"),
        ({"name": {"x": 1}}, "name", "应为字符串"),
        ({"name": True}, "name", "应为字符串"),
        ({"insurances": "110"}, "insurances", "应为字符串数组"),
        ({"insurances": [110]}, "insurances", "应为字符串数组"),
        ({"insurances": ["999"]}, "insurances", "请从列表中选择"),
        ({"monthly_wage": True}, "monthly_wage", "应为数字或字符串"),
        ({"monthly_wage": 1e30}, "monthly_wage", "金额应为不小于 0 的数字"),
        ({"monthly_wage": -5}, "monthly_wage", "金额应为不小于 0 的数字"),
        ({"hire_date": "2025-02-30"}, "hire_date", "不是有效的日期"),
        ({"name": "\ud800"}, "name", "包含无效的字符"),
        ({"name": "a\u0000b"}, "name", "不能包含换行或控制字符"),
        ({"name": "长" * 51}, "name", "长度不能超过 50 个字符"),
        ({"gender": "男"}, "gender", "请从列表中选择"),
        ({"nickname": "x"}, "nickname", "未知字段"),
    ],
)
def test_wrong_types_and_values_are_field_findings(
    client: GuardedClient,
    workflow: MemoryWorkflow,
    payload: dict[str, Any],
    field: str,
    message: str,
) -> None:
    """A value of the wrong JSON type, outside the choices, malformed or unknown: 422
    ``invalid-input`` with a finding on that field, nothing stored."""
    r = client.api(
        "POST", "/api/v1/declarations", {"type": "person-add", "payload": {**PERSON, **payload}}
    )
    body = assert_error(r, 422, "invalid-input")
    assert any(
        f["field"] == field and message in f["message"] and f["rule"] == "INPUT"
        for f in body["findings"]
    ), body
    assert workflow.declarations == {}


def test_batch_lines_of_the_wrong_shape(client: GuardedClient) -> None:
    for lines, message in (
        ({"person_no": "P1"}, "应为数组"),
        (["P1,张三"], "第 1 行应为对象"),
        ([{"person_no": "P1", "salary": "1"}], "第 1 行含未知字段 salary"),
        (
            [{"person_no": "P1", "name": "张三", "id_number": VALID_ID, "wage": "x"}],
            "第 1 行上年度月平均工资",
        ),
        ([{}] * 10_001, "一次最多申报 10000 行"),
    ):
        r = client.api(
            "POST",
            "/api/v1/declarations/preview",
            {"type": "annual-base", "payload": {"year": "2025", "lines": lines}},
        )
        body = assert_error(r, 422, "invalid-input")
        assert any(f["field"] == "lines" and message in f["message"] for f in body["findings"]), (
            body
        )


def test_preview_reports_the_workflows_findings_without_storing(
    client: GuardedClient, workflow: MemoryWorkflow
) -> None:
    r = client.api(
        "POST",
        "/api/v1/declarations/preview",
        {"type": "person-add", "payload": {**PERSON, "id_number": BAD_CHECK_ID}},
    )
    assert r.status == 200
    body = r.json()
    assert body["ok"] is False
    assert any(f["field"] == "id_number" and f["rule"] == "V-ID-05" for f in body["findings"])
    assert workflow.declarations == {}


def test_submit_and_withdraw_accept_an_empty_body_or_an_empty_object_only(
    client: GuardedClient, seed: Seeder
) -> None:
    draft = seed.draft()
    r = client.api("POST", f"/api/v1/declarations/{draft.id}/submit", {"force": True})
    assert_error(r, 422, "invalid-input")
    r = client.request(
        "POST",
        f"/api/v1/declarations/{draft.id}/submit",
        body=b"x=1",
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-CSRF-Token": csrf_for()},
    )
    assert_error(r, 415, "unsupported-media-type")
    assert client.api("POST", f"/api/v1/declarations/{draft.id}/submit", {}).status == 200


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/api/v1/declarations/AAAAAAAAAAAAAAAAAAAA", 404, "not-found"),
        ("GET", "/api/v1/nothing", 404, "not-found"),
        ("GET", "/api/v1/declarations/a%2Fb", 404, "not-found"),
        ("GET", "/api/v2/whoami", 404, "not-found"),
        ("DELETE", "/api/v1/declarations", 405, "method-not-allowed"),
        ("GET", "/api/v1/declarations/preview", 405, "method-not-allowed"),
        ("POST", "/api/v1/whoami", 405, "method-not-allowed"),
        ("GET", "/api/v1/declarations?status=nope", 400, "bad-status"),
        ("GET", "/api/v1/declarations?limit=0", 400, "bad-limit"),
        ("GET", "/api/v1/declarations?limit=201", 400, "bad-limit"),
        ("GET", "/api/v1/declarations?limit=-1", 400, "bad-limit"),
        ("GET", "/api/v1/declarations?status=%ff", 400, "bad-encoding"),
    ],
)
def test_routes_methods_and_parameters(
    client: GuardedClient, method: str, path: str, status: int, code: str
) -> None:
    r = client.api(method, path)
    assert_error(r, status, code)


def test_405_says_which_methods_are_allowed(client: GuardedClient) -> None:
    r = client.api("DELETE", "/api/v1/declarations")
    assert r.header("allow") == "GET, HEAD, POST"
    r = client.api("PATCH", "/api/v1/declarations/AAAAAAAAAAAA")
    assert r.header("allow") == "GET, HEAD, PUT"


def test_a_declarations_json_has_its_history_and_result(
    client: GuardedClient, seed: Seeder
) -> None:
    applied = seed.in_state(Status.APPLIED)
    d = client.api("GET", f"/api/v1/declarations/{applied.id}").json()
    assert d["voucher_no"] == applied.voucher_no
    assert d["decided_at"] == "2026-01-01T08:00:40+08:00"
    assert [h["action"] for h in d["history"]] == ["create", "submit", "claim", "approve"]
    assert d["result"] == dict(applied.result) and d["result"]["person_number"]


def test_every_api_route_is_documented() -> None:
    """docs/api.md names every API route with each of its methods."""
    from pathlib import Path

    from declare_app.web._site import ROUTES

    doc = (Path(__file__).parents[4] / "docs" / "api.md").read_text(encoding="utf-8")
    for route in ROUTES.routes:
        if not route.is_api:
            continue
        path = route.path.replace("<id:id>", "{id}")
        assert f"`{route.method} {path}" in doc, (route.method, path)
