"""The employer web application with the real declaration workflow, on SQLite and PostgreSQL.

The site is driven in memory through the real identity guard (as the unit tests do),
but every page and API call reaches :class:`Declarations` on a real database through
a runner that gives each call its own transaction.  An employer adds a person through
preview and submit, an auditor returns or approves through the workflow, and the
employer sees the outcome, the history and the voucher; the forms show the
workflow's Chinese findings beside their fields; the types it has not opened say so;
no bad input reaches a 500.  A form filled in through the API comes back from the
rules with every field it offers, so the one spec cannot offer a field the rules drop.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import Engine
from twisted.internet.testing import MemoryReactorClock
from twisted.web.server import Site

import audit
from auth.testing import SynchronousRunner
from declare_app import person_id_check_char
from declare_app._declarations import CHINA_TIME, Declarations
from declare_app._rules import FORM_SPECS, RULES, FieldKind, FieldSpec
from declare_app.interfaces import Actor, DeclarationType, Status
from declare_app.web import employer_site, registry_unit_name
from declare_app.web.testing import (
    ALICE,
    CSRF_KEY,
    GuardedClient,
    csrf_for,
    element_text,
    hidden_fields_of,
)

UNIT_A = "12345678"  # as conftest registers them
UNIT_B = "87654321"
REGION = "330682"

WEB_NOW = datetime(2025, 3, 10, 10, 0, tzinfo=CHINA_TIME).timestamp()  # conftest's NOW
EMPLOYER_A = replace(ALICE, account=f"{REGION}{UNIT_A}@sxlss", unit_code=UNIT_A, issued_at=WEB_NOW)
EMPLOYER_B = replace(
    EMPLOYER_A, account=f"{REGION}{UNIT_B}@sxlss", unit_code=UNIT_B, session_id="s-b-web"
)


def make_id(birth: str = "19900115", seq: int = 123) -> str:
    body = f"330682{birth}{seq:03d}"
    return body + person_id_check_char(body)


def person_fields(**changes: Any) -> list[tuple[str, str]]:
    values: dict[str, Any] = {
        "name": "张三",
        "id_number": make_id(),
        "nation": "01",
        "hukou_type": "A",
        "staff_kind": "B",
        "hire_date": "2025-03-01",
        "insurances": ["110", "210", "310", "410", "510"],
        "add_type": "A",
        "start_month": "2025-03",
        "monthly_wage": "6000",
        "phone": "13800000000",
        **changes,
    }
    out: list[tuple[str, str]] = []
    for name, value in values.items():
        if isinstance(value, list):
            out.extend((name, v) for v in value)
        else:
            out.append((name, value))
    return out


@pytest.fixture
def web_clock() -> MemoryReactorClock:
    clock = MemoryReactorClock()
    clock.advance(WEB_NOW)
    return clock


@pytest.fixture
def runner(decl_db: Engine) -> SynchronousRunner:
    return SynchronousRunner(decl_db)


@pytest.fixture
def site(workflow: Declarations, runner: SynchronousRunner, web_clock: MemoryReactorClock) -> Site:
    return employer_site(
        workflow=workflow,
        runner=runner,
        clock=web_clock,
        csrf_key=CSRF_KEY,
        unit_names=registry_unit_name,
    )


@pytest.fixture
def a(site: Site, web_clock: MemoryReactorClock) -> GuardedClient:
    return GuardedClient(site, web_clock, identity=EMPLOYER_A)


def staff(decl_db: Engine, fn: Any, *args: Any, **kwargs: Any) -> Any:
    with decl_db.begin() as conn:
        return fn(conn, *args, **kwargs)


def declaration_id(location: str | None) -> str:
    m = re.fullmatch(r"/declarations/([^/?]+)\?msg=\w+", location or "")
    assert m, location
    return m.group(1)


def submit_person(a: GuardedClient, **changes: Any) -> str:
    """预览 then 提交 a 人员增加 through the pages; the new declaration's id."""
    preview = a.post_form(
        "/declarations/new/person-add", [*person_fields(**changes), ("action", "preview")]
    )
    assert preview.status == 200, preview.text
    fields = [(n, v) for n, v in hidden_fields_of(preview.text) if n != "csrf_token"]
    done = a.post_form("/declarations/new/person-add", [*fields, ("action", "submit")])
    assert done.status == 303, done.text
    return declaration_id(done.header("location"))


# -- the employer's way through --------------------------------------------------------------


def test_add_a_person_see_it_approved_and_print_the_voucher(
    a: GuardedClient, decl_db: Engine, workflow: Declarations, auditor: Actor
) -> None:
    """Preview (the base assessed by the workflow) → submit → 待审核 in the centre →
    the auditor approves → 已办结 with a voucher whose page shows the new 个人编号."""
    preview = a.post_form(
        "/declarations/new/person-add", [*person_fields(monthly_wage="3000"), ("action", "preview")]
    )
    assert preview.status == 200, preview.text
    assert "核定缴费基数" in preview.text  # the workflow's computed base, labelled
    decl_id = submit_person(a)
    centre = a.get("/declarations").text
    assert f"/declarations/{decl_id}" in element_text(centre, "group-pending-review") or (
        decl_id in centre
    )
    staff(decl_db, workflow.claim, auditor, decl_id, now=1.0)
    applied = staff(decl_db, workflow.approve, auditor, decl_id, now=2.0)
    assert applied.status is Status.APPLIED and applied.voucher_no

    detail = a.get(f"/declarations/{decl_id}").text
    assert "已办结" in detail and applied.voucher_no in detail
    voucher = a.get(f"/declarations/{decl_id}/voucher")
    assert voucher.status == 200
    assert element_text(voucher.text, "voucher-no") == applied.voucher_no
    assert applied.result["person_no"] in voucher.text
    assert "个人编号" in voucher.text
    pdf = a.get(f"/declarations/{decl_id}/voucher.pdf")
    assert pdf.status == 200 and pdf.body.startswith(b"%PDF-")
    assert element_text(a.get("/").text, "unit-name") == "上虞示范机械厂"


def test_a_returned_declaration_shows_its_reason_and_is_resubmitted_with_history(
    a: GuardedClient, decl_db: Engine, workflow: Declarations, auditor: Actor
) -> None:
    decl_id = submit_person(a)
    staff(decl_db, workflow.claim, auditor, decl_id, now=1.0)
    staff(decl_db, workflow.return_, auditor, decl_id, code="R05", text="基数与工资不符", now=2.0)
    detail = a.get(f"/declarations/{decl_id}").text
    assert "R05 缴费基数不符合规定或与工资不符" in detail and "基数与工资不符" in detail

    form = a.get(f"/declarations/{decl_id}/resubmit")
    assert form.status == 200 and "基数与工资不符" in form.text
    r = a.post_form(
        f"/declarations/{decl_id}/resubmit",
        [*person_fields(monthly_wage="7000"), ("action", "submit")],
    )
    assert r.status == 303, r.text
    new_id = declaration_id(r.header("location"))
    page = a.get(f"/declarations/{new_id}").text
    assert "第 2 版" in page and f'href="/declarations/{decl_id}"' in page
    assert "历次申报" in page and "R05" in page[page.index("历次申报") :]
    assert "待审核" in page


def test_the_workflows_findings_show_beside_their_fields(a: GuardedClient) -> None:
    bad_id = make_id()[:-1] + ("0" if make_id()[-1] != "0" else "1")
    r = a.post_form(
        "/declarations/new/person-add",
        [*person_fields(name="", id_number=bad_id), ("action", "preview")],
    )
    assert r.status == 422
    assert "请填写姓名" in element_text(r.text, "field-name")
    assert "校验码" in element_text(r.text, "field-id_number")


def test_a_refused_submit_is_on_record(a: GuardedClient, decl_db: Engine) -> None:
    """Submitting a draft with errors is refused on its page, and the refusal's audit
    event is committed (the runner commits even when the workflow refuses)."""
    saved = a.post_form(
        "/declarations/new/person-add", [*person_fields(name=""), ("action", "save")]
    )
    assert saved.status == 303
    draft_id = declaration_id(saved.header("location"))
    r = a.post_form(f"/declarations/{draft_id}/submit", [])
    assert r.status == 422
    assert "请填写姓名" in r.text
    with decl_db.connect() as conn:
        events = [row.event for row in audit.query(conn)]
    assert any(e.outcome == "refused" and e.unit == UNIT_A for e in events), events


@pytest.mark.parametrize("type", list(DeclarationType), ids=lambda t: t.value)
def test_every_type_answers_without_a_500(a: GuardedClient, type: DeclarationType) -> None:
    """Each type's form renders; an empty preview is refused with Chinese findings
    (422), or, for a type the workflow has not opened, says so (501)."""
    assert a.get(f"/declarations/new/{type.value}").status == 200
    r = a.post_form(f"/declarations/new/{type.value}", [("action", "preview")])
    if type in RULES:
        assert r.status == 422, r.text
        assert "申报内容有误" in r.text
    else:
        assert r.status == 501, r.text
        assert "暂未开放" in r.text or "未开放" in r.text
    api = a.api("POST", "/api/v1/declarations", {"type": type.value, "payload": {}})
    assert api.status in ((201,) if type in RULES else (501,)), api.text


# -- isolation and the API -------------------------------------------------------------------


def test_another_units_declaration_is_not_found(
    a: GuardedClient, site: Site, web_clock: MemoryReactorClock, decl_db: Engine
) -> None:
    b = GuardedClient(site, web_clock, identity=EMPLOYER_B)
    b_id = submit_person(b, id_number=make_id(seq=456))
    for r in (
        a.get(f"/declarations/{b_id}"),
        a.get(f"/declarations/{b_id}/voucher"),
        a.post_form(f"/declarations/{b_id}/withdraw", []),
        a.api("GET", f"/api/v1/declarations/{b_id}"),
        a.api("POST", f"/api/v1/declarations/{b_id}/withdraw"),
    ):
        assert r.status == 404, r.text
    assert b.api("GET", f"/api/v1/declarations/{b_id}").json()["status"] == "pending-review"
    assert a.api("GET", "/api/v1/declarations").json() == {"declarations": []}


def test_the_api_with_the_real_workflow(a: GuardedClient) -> None:
    values = dict(person_fields(id_number=make_id(seq=789)))
    payload: dict[str, Any] = {**values, "insurances": ["110", "210", "310", "410", "510"]}
    created = a.api("POST", "/api/v1/declarations", {"type": "person-add", "payload": payload})
    assert created.status == 201, created.text
    d = created.json()
    assert d["unit_code"] == UNIT_A and d["status"] == "draft"
    submitted = a.api("POST", f"/api/v1/declarations/{d['id']}/submit")
    assert submitted.status == 200 and submitted.json()["status"] == "pending-review"
    again = a.api("POST", f"/api/v1/declarations/{d['id']}/submit")
    assert again.status == 409 and again.json()["error"]
    withdrawn = a.api("POST", f"/api/v1/declarations/{d['id']}/withdraw")
    assert withdrawn.status == 200 and withdrawn.json()["status"] == "withdrawn"


def test_no_bad_input_reaches_a_500(a: GuardedClient) -> None:
    """A smaller matrix than the unit test's, against the real workflow and database."""
    draft = a.post_form("/declarations/new/person-add", [*person_fields(), ("action", "save")])
    draft_id = declaration_id(draft.header("location"))
    token = csrf_for(EMPLOYER_A)
    paths = [
        "/declarations/new/person-add",
        "/declarations/new/annual-base",
        "/declarations/new/injury-accident",
        f"/declarations/{draft_id}/edit",
        f"/declarations/{draft_id}/submit",
        "/api/v1/declarations",
        "/api/v1/declarations/preview",
        f"/api/v1/declarations/{draft_id}",
    ]
    bodies = [
        b"action=preview&name=%00&monthly_wage=-1&hire_date=2025-02-30&insurances=999",
        b"action=preview&lines=a,b\n1,2,3,4,5&year=99999",
        b'{"type": "annual-base", "payload": {"year": "2025", "lines": [{"wage": "x"}]}}',
        b'{"type": "person-add", "payload": {"name": "\\u0000", "monthly_wage": 1e400}}',
        b'{"payload": {"insurances": ["310"]}}',
        b"\xff\xfe",
    ]
    for path, body, ctype in itertools.product(
        paths, bodies, ["application/x-www-form-urlencoded", "application/json"]
    ):
        sent = body + (b"&csrf_token=" + token.encode() if "form" in ctype else b"")
        for method in ("POST", "PUT"):
            r = a.request(
                method, path, body=sent, headers={"Content-Type": ctype, "X-CSRF-Token": token}
            )
            assert r.status < 500, (method, path, body, r.status, r.text[:300])


# -- one spec: what the form offers is what the rules read ---------------------------------


def sample(f: FieldSpec) -> Any:
    """A value of *f*'s kind that the web takes (the rules may still find it wrong)."""
    if f.kind is FieldKind.LINES:
        return [{c.name: sample(c) for c in f.columns}]
    if f.kind is FieldKind.MULTI:
        return [c.value for c in f.choices]
    if f.kind is FieldKind.SELECT:
        return f.choices[0].value
    return {
        FieldKind.DATE: "2025-03-01",
        FieldKind.MONTH: "2025-03",
        FieldKind.DATETIME: "2025-03-01T09:30",
        FieldKind.MONEY: "6000",
        FieldKind.YEAR: "2025",
        FieldKind.TEL: "0575-82345678",
        FieldKind.ID_NUMBER: make_id(),
        FieldKind.TEXTAREA: "说明",
    }.get(f.kind, "测试")


@pytest.mark.parametrize("type", list(DeclarationType), ids=lambda t: t.value)
def test_the_rules_read_every_field_of_the_form_and_add_only_its_computed_ones(
    a: GuardedClient, type: DeclarationType
) -> None:
    """Every field of the form filled in, through the API's preview: the web takes each
    value, and the rules' normalised payload holds every field (a field they did not
    read would vanish from it; one they read outside the spec would be a 500) and
    nothing the spec does not name but its computed fields — and so for batch lines."""
    spec = FORM_SPECS[type]
    body = {"type": type.value, "payload": {f.name: sample(f) for f in spec.fields}}
    r = a.api("POST", "/api/v1/declarations/preview", body)
    assert r.status == 200, r.text
    assert not [f for f in r.json()["findings"] if f["rule"] == "INPUT"], r.text
    payload = r.json()["payload"]
    inputs = {f.name for f in spec.fields}
    assert inputs <= set(payload) <= inputs | {f.name for f in spec.computed}, sorted(payload)
    for f in spec.fields:
        if f.kind is FieldKind.LINES:
            columns = {c.name for c in f.columns}
            for row in payload[f.name]:
                assert columns <= set(row) <= columns | {c.name for c in f.computed}, row


def test_every_page_of_the_demo_unit_renders(a: GuardedClient, decl_db: Engine) -> None:
    """The demo data (a declaration of each type in various states): the home page, the
    centre, and every declaration's detail page, its edit, resubmit or voucher page (and
    PDF) as its state allows, and its JSON — all answer 200."""
    from declare_app._demo_data import load_demo

    with decl_db.begin() as conn:
        load_demo(conn, UNIT_A, now=WEB_NOW, seed=7)
    assert a.get("/").status == 200
    assert a.get("/declarations").status == 200
    listed = a.api("GET", "/api/v1/declarations").json()["declarations"]
    assert {d["type"] for d in listed} == {t.value for t in DeclarationType}
    extra = {
        "draft": ["edit"],
        "returned": ["resubmit"],
        "applied": ["voucher", "voucher.pdf"],
    }
    for d in listed:
        assert a.api("GET", f"/api/v1/declarations/{d['id']}").status == 200
        for suffix in ["", *(f"/{e}" for e in extra.get(d["status"], []))]:
            r = a.get(f"/declarations/{d['id']}{suffix}")
            assert r.status == 200, (d["type"], d["status"], suffix, r.text[:500])
