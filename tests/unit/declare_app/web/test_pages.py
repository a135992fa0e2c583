"""The employer pages, driven through the guard as a browser would drive them.

Each test names the behaviour it pins: every page renders in Chinese; forms bring
back Chinese messages beside the fields; preview comes before submit; drafts are
saved and edited; withdraw, resubmit (with the earlier versions and the return reason
shown) and the voucher work; a type the workflow has not opened says so.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

import pytest

from declare_app.interfaces import DeclarationType, Status
from declare_app.web import FORM_SPECS, FieldKind, FieldSpec
from declare_app.web.testing import (
    ALICE,
    BAD_CHECK_ID,
    PERSON,
    VALID_ID,
    GuardedClient,
    MemoryWorkflow,
    Seeder,
    SynchronousRunner,
    csrf_for,
    element_tags,
    element_text,
    hidden_fields_of,
)

CJK = re.compile(r"[\u4e00-\u9fff]")


def sample(f: FieldSpec) -> Any:
    """A value of *f* that the fake workflow accepts."""
    kind = f.kind
    if kind is FieldKind.MULTI:
        return [c.value for c in f.choices]
    if kind is FieldKind.SELECT:
        return f.choices[0].value
    return {
        FieldKind.DATE: "2025-12-01",
        FieldKind.MONTH: "2025-12",
        FieldKind.DATETIME: "2025-12-01T09:30",
        FieldKind.MONEY: "6000",
        FieldKind.YEAR: "2025",
        FieldKind.TEL: "0575-82345678",
        FieldKind.ID_NUMBER: VALID_ID,
        FieldKind.TEXTAREA: "说明",
        FieldKind.LINES: f"P0001, 张三, {VALID_ID}, 6000\nP0002, 李四, 330682199506150028, 3000",
    }.get(kind, "测试")


def sample_form(type: DeclarationType) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for f in FORM_SPECS[type].fields:
        value = sample(f)
        if isinstance(value, list):
            pairs.extend((f.name, v) for v in value)
        else:
            pairs.append((f.name, value))
    return pairs


def person_form(**changes: Any) -> list[tuple[str, str]]:
    values = {**PERSON, **changes}
    pairs: list[tuple[str, str]] = []
    for name, value in values.items():
        if isinstance(value, list):
            pairs.extend((name, v) for v in value)
        else:
            pairs.append((name, value))
    return pairs


def declaration_id(location: str | None) -> str:
    assert location is not None
    m = re.fullmatch(r"/declarations/([A-Za-z0-9_-]+)\?msg=\w+", location)
    assert m, location
    return m.group(1)


# -- every page renders -------------------------------------------------------------------


def test_every_page_renders_in_chinese(client: GuardedClient, seed: Seeder) -> None:
    """Home, 申报中心 (all and each status), the type list, the form of every type, the
    detail page in every state, the edit, resubmit and voucher pages: 200, UTF-8 HTML
    with Chinese text, the style sheet linked, no script."""
    by_status = {s: seed.in_state(s) for s in Status}
    paths = ["/", "/declarations", "/declarations/new"]
    paths += [f"/declarations?status={s.value}" for s in Status]
    paths += [f"/declarations/new/{t.value}" for t in DeclarationType]
    paths += [f"/declarations/{d.id}" for d in by_status.values()]
    paths += [
        f"/declarations/{by_status[Status.DRAFT].id}/edit",
        f"/declarations/{by_status[Status.RETURNED].id}/resubmit",
        f"/declarations/{by_status[Status.APPLIED].id}/voucher",
    ]
    for path in paths:
        r = client.get(path)
        assert r.status == 200, (path, r.text)
        assert r.header("content-type") == "text/html; charset=utf-8"
        assert CJK.search(r.text), path
        assert '<link rel="stylesheet" href="/static/employer.css">' in r.text
        assert "<script" not in r.text
        assert r.text.startswith("<!doctype html>")


def test_the_style_sheet_is_served_with_print_rules(client: GuardedClient) -> None:
    """The one style sheet: CSS, with ``@media print`` hiding navigation and buttons."""
    r = client.get("/static/employer.css")
    assert r.status == 200
    assert r.header("content-type") == "text/css; charset=utf-8"
    assert b"@media print" in r.body
    assert b"header.top" in r.body.split(b"@media print")[1]


def test_head_answers_headers_only(client: GuardedClient) -> None:
    """HEAD of a page: the GET's status and headers, no body."""
    r = client.request("HEAD", "/")
    assert r.status == 200
    assert r.body == b""
    assert r.header("content-type") == "text/html; charset=utf-8"


def test_home_shows_the_gateway_identity_once(client: GuardedClient) -> None:
    """The home page shows unit code, account and session id, each in its own cell and
    the session id as an element's whole text only once (what the browser test of the
    identity page looks for)."""
    page = client.get("/").text
    assert element_text(page, "unit") == ALICE.unit_code
    assert element_text(page, "account") == ALICE.account
    assert element_text(page, "session") == ALICE.session_id
    assert page.count(f">{ALICE.session_id}<") == 1
    assert "203.0.113.7:50123" in page


def test_the_declaration_centre_groups_by_status_with_reason_and_voucher(
    client: GuardedClient, seed: Seeder
) -> None:
    """申报中心 lists drafts, 待审核, 审核中, 已退回 (with code, meaning and text) and 已办结
    (with the voucher link), each declaration under its own status."""
    by_status = {s: seed.in_state(s) for s in Status}
    page = client.get("/declarations").text
    for status, decl in by_status.items():
        group = element_text(page, f"group-{status.value}")
        assert group.startswith(status.chinese), group
        assert "张三" in group
        for other in Status:
            if other is not status:
                assert f'/declarations/{by_status[other].id}"' not in _group_html(page, status)
        assert f"/declarations/{decl.id}" in _group_html(page, status)
    returned = element_text(page, "group-returned")
    assert "R01 身份信息错误/与身份证不符" in returned
    assert "姓名与身份证不符" in returned
    applied = by_status[Status.APPLIED]
    assert applied.voucher_no is not None
    assert f'href="/declarations/{applied.id}/voucher">{applied.voucher_no}</a>' in page


def _group_html(page: str, status: Status) -> str:
    start = page.index(f'id="group-{status.value}"')
    end = page.find("<section", start)
    return page[start : end if end > 0 else len(page)]


def test_a_status_filter_shows_only_that_group(client: GuardedClient, seed: Seeder) -> None:
    """``?status=returned`` shows only 已退回; an unknown status is a 400 page."""
    seed.in_state(Status.DRAFT)
    seed.in_state(Status.RETURNED)
    page = client.get("/declarations?status=returned").text
    assert 'id="group-returned"' in page
    assert 'id="group-draft"' not in page
    bad = client.get("/declarations?status=nonsense")
    assert bad.status == 400
    assert "状态参数无效" in bad.text


# -- the person-add form: preview, submit, errors --------------------------------------------


def test_preview_then_submit_a_person_add(client: GuardedClient, workflow: MemoryWorkflow) -> None:
    """预览 shows the values with their meanings and the workflow's warnings (a wage
    below the floor is assessed at the floor), carrying the typed input in hidden
    fields; 提交 from there stores and submits: 303 to the declaration, now 待审核."""
    preview = client.post_form(
        "/declarations/new/person-add", [*person_form(monthly_wage="3000"), ("action", "preview")]
    )
    assert preview.status == 200, preview.text
    page = preview.text
    assert "预览：人员增加" in page
    assert "1 男" in page and "A 首次参保" in page
    assert "110 企业职工基本养老保险" in page
    assert "按 4812.00 核定" in page  # the warning, beside the wage
    assert "核定缴费基数" in page and "4812.00" in page  # the derived value
    hidden = hidden_fields_of(page)
    assert ("csrf_token", csrf_for()) in hidden
    assert ("monthly_wage", "3000") in hidden
    assert [v for n, v in hidden if n == "insurances"] == PERSON["insurances"]
    assert workflow.declarations == {}  # nothing stored by a preview

    fields = [(n, v) for n, v in hidden if n != "csrf_token"] + [("action", "submit")]
    submitted = client.post_form("/declarations/new/person-add", fields)
    assert submitted.status == 303
    new_id = declaration_id(submitted.header("location"))
    [decl] = workflow.declarations.values()
    assert decl.id == new_id
    assert decl.status is Status.PENDING_REVIEW
    assert decl.unit_code == ALICE.unit_code
    assert decl.created_session == ALICE.session_id

    detail = client.get(submitted.header("location") or "").text
    assert "已提交，请等待经办机构审核。" in detail
    assert '<span class="status status-pending-review">待审核</span>' in detail
    assert "撤回" in detail


def test_form_errors_are_chinese_and_next_to_their_fields(
    client: GuardedClient, workflow: MemoryWorkflow
) -> None:
    """A preview with a missing name and an ID number with a wrong check character
    comes back (422) with each message inside its field's block, the typed values
    kept, and nothing stored."""
    r = client.post_form(
        "/declarations/new/person-add",
        [*person_form(name="", id_number=BAD_CHECK_ID), ("action", "preview")],
    )
    assert r.status == 422
    page = r.text
    assert "申报内容有误，请按提示修改。" in page
    assert "请填写姓名" in element_text(page, "field-name")
    id_block = element_text(page, "field-id_number")
    assert "校验码" in id_block and "错误" in id_block
    assert f'value="{BAD_CHECK_ID}"' in page
    assert {
        "tag": "input",
        "id": "in-id_number",
        "name": "id_number",
        "type": "text",
        "value": BAD_CHECK_ID,
        "maxlength": "32",
        "aria-invalid": "true",
    } in element_tags(page, "field-id_number")
    assert workflow.declarations == {}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("hire_date", "2025-02-30", "不是有效的日期"),
        ("hire_date", "yesterday", "日期格式应为 YYYY-MM-DD"),
        ("start_month", "2026-13", "年月格式应为 YYYY-MM"),
        ("gender", "9", "请从列表中选择"),
        ("insurances", "999", "请从列表中选择"),
        ("name", "张" * 51, "长度不能超过 50 个字符"),
        ("name", "张\x00三", "不能包含换行或控制字符"),
        ("monthly_wage", "6,000", "金额应为不小于 0 的数字，最多两位小数"),
        ("monthly_wage", "-1", "金额应为不小于 0 的数字，最多两位小数"),
        ("phone", "call me", "电话号码只能包含数字"),
    ],
)
def test_malformed_values_are_field_errors_before_the_workflow(
    client: GuardedClient, runner: SynchronousRunner, field: str, value: str, message: str
) -> None:
    """Values no declaration could hold (a date that is no date, a choice never
    offered, over-long text, control characters, a malformed amount) come back as
    Chinese errors beside their field with 422, and the workflow is not asked."""
    fields = [(n, v) for n, v in person_form() if n != field] + [
        (field, value),
        ("action", "preview"),
    ]
    r = client.post_form("/declarations/new/person-add", fields)
    assert r.status == 422
    assert message in element_text(r.text, f"field-{field}")
    assert runner.calls == []


def test_full_width_digits_and_chinese_dates_are_read(
    client: GuardedClient, workflow: MemoryWorkflow
) -> None:
    """An ID number typed with full-width digits and a lower-case x, a date written
    2025年12月15日 and a month 202601 are read as the ASCII/ISO values."""
    full_width = VALID_ID[:-1].translate(str.maketrans("0123456789", "０１２３４５６７８９")) + "x"
    r = client.post_form(
        "/declarations/new/person-add",
        [
            *person_form(id_number=full_width, hire_date="2025年12月15日", start_month="202601"),
            ("action", "save"),
        ],
    )
    assert r.status == 303
    [decl] = workflow.declarations.values()
    assert decl.payload["id_number"] == VALID_ID
    assert decl.payload["hire_date"] == "2025-12-15"
    assert decl.payload["start_month"] == "2026-01"


def test_back_from_preview_keeps_the_typed_input(client: GuardedClient) -> None:
    """返回修改 on the preview page shows the form again with what was typed."""
    r = client.post_form(
        "/declarations/new/person-add", [*person_form(name="王五"), ("action", "edit")]
    )
    assert r.status == 200
    assert 'value="王五"' in r.text
    assert 'value="510" checked' in r.text


def test_an_unknown_form_action_is_a_400(client: GuardedClient) -> None:
    r = client.post_form("/declarations/new/person-add", [*person_form(), ("action", "delete")])
    assert r.status == 400
    assert "未知的操作" in r.text


# -- drafts ----------------------------------------------------------------------------------


def test_save_a_draft_edit_it_and_submit_it_from_its_page(
    client: GuardedClient, workflow: MemoryWorkflow
) -> None:
    """保存草稿 stores even an incomplete form (a draft may have errors), its page shows
    the errors and a disabled 提交; 修改 shows the form filled in; saving the fix and
    提交 on the draft's page submits it."""
    r = client.post_form(
        "/declarations/new/person-add", [*person_form(name=""), ("action", "save")]
    )
    assert r.status == 303
    draft_id = declaration_id(r.header("location"))
    page = client.get(f"/declarations/{draft_id}?msg=saved").text
    assert "草稿已保存。" in page
    assert "草稿中有错误，修改后才能提交。" in page
    assert "请填写姓名" in page
    assert re.search(r'<button type="submit" class="primary" disabled>提交</button>', page)

    edit = client.get(f"/declarations/{draft_id}/edit")
    assert edit.status == 200
    assert f'value="{VALID_ID}"' in edit.text
    assert "请填写姓名" in element_text(edit.text, "field-name")

    saved = client.post_form(
        f"/declarations/{draft_id}/edit", [*person_form(name="赵六"), ("action", "save")]
    )
    assert saved.status == 303
    assert workflow.declarations[draft_id].payload["name"] == "赵六"
    assert workflow.declarations[draft_id].status is Status.DRAFT

    submitted = client.post_form(f"/declarations/{draft_id}/submit", [])
    assert submitted.status == 303
    assert submitted.header("location") == f"/declarations/{draft_id}?msg=submitted"
    assert workflow.declarations[draft_id].status is Status.PENDING_REVIEW


def test_submitting_a_draft_with_errors_shows_them_on_its_page(
    client: GuardedClient, seed: Seeder, workflow: MemoryWorkflow
) -> None:
    """提交 of a draft the workflow refuses: its page again (422) with the refusal and
    the findings, still a draft."""
    draft = seed.draft(payload={**PERSON, "name": ""})
    r = client.post_form(f"/declarations/{draft.id}/submit", [])
    assert r.status == 422
    assert "申报内容有误，请按提示修改" in r.text
    assert "请填写姓名" in r.text
    assert workflow.declarations[draft.id].status is Status.DRAFT


def test_submit_from_the_preview_of_an_edited_draft(
    client: GuardedClient, seed: Seeder, workflow: MemoryWorkflow
) -> None:
    """Editing a draft: 预览 then 提交 updates and submits that same draft."""
    draft = seed.draft(payload={**PERSON, "name": ""})
    preview = client.post_form(
        f"/declarations/{draft.id}/edit", [*person_form(name="钱七"), ("action", "preview")]
    )
    assert preview.status == 200
    fields = [(n, v) for n, v in hidden_fields_of(preview.text) if n != "csrf_token"]
    r = client.post_form(f"/declarations/{draft.id}/edit", [*fields, ("action", "submit")])
    assert r.status == 303
    assert workflow.declarations[draft.id].status is Status.PENDING_REVIEW
    assert workflow.declarations[draft.id].payload["name"] == "钱七"
    assert len(workflow.declarations) == 1


def test_only_a_draft_can_be_edited(client: GuardedClient, seed: Seeder) -> None:
    pending = seed.in_state(Status.PENDING_REVIEW)
    r = client.get(f"/declarations/{pending.id}/edit")
    assert r.status == 409
    assert "只有草稿可以修改" in r.text


# -- withdraw, resubmit, voucher -------------------------------------------------------------


def test_withdraw_a_pending_declaration(
    client: GuardedClient, seed: Seeder, workflow: MemoryWorkflow
) -> None:
    """撤回 moves 待审核 to 已撤回; a second 撤回 is refused on the page (409) with the
    workflow's words."""
    pending = seed.in_state(Status.PENDING_REVIEW)
    r = client.post_form(f"/declarations/{pending.id}/withdraw", [])
    assert r.status == 303
    assert workflow.declarations[pending.id].status is Status.WITHDRAWN
    assert "已撤回。" in client.get(r.header("location") or "").text
    again = client.post_form(f"/declarations/{pending.id}/withdraw", [])
    assert again.status == 409
    assert "只有待审核的申报可以撤回" in again.text


def test_resubmit_a_returned_declaration_keeps_its_history(
    client: GuardedClient, seed: Seeder, workflow: MemoryWorkflow
) -> None:
    """A returned declaration shows its reason; 重新申报 opens the form filled with the
    returned values and the reason on top; submitting creates version 2, linked to
    version 1, whose page lists both versions with version 1's return reason and the
    history of both."""
    returned = seed.in_state(Status.RETURNED)
    detail = client.get(f"/declarations/{returned.id}").text
    assert "R01 身份信息错误/与身份证不符" in detail and "姓名与身份证不符" in detail
    assert f'href="/declarations/{returned.id}/resubmit"' in detail

    form = client.get(f"/declarations/{returned.id}/resubmit")
    assert form.status == 200
    assert "重新申报：人员增加" in form.text
    assert "退回原因" in form.text and "姓名与身份证不符" in form.text
    assert 'value="张三"' in form.text

    r = client.post_form(
        f"/declarations/{returned.id}/resubmit", [*person_form(name="张叁"), ("action", "submit")]
    )
    assert r.status == 303
    assert (r.header("location") or "").endswith("?msg=resubmitted")
    new_id = declaration_id(r.header("location"))
    new = workflow.declarations[new_id]
    assert (new.version, new.previous_id, new.status) == (2, returned.id, Status.PENDING_REVIEW)
    assert workflow.declarations[returned.id].status is Status.RETURNED

    page = client.get(f"/declarations/{new_id}").text
    assert "已重新申报，请等待经办机构审核。" not in page  # no msg parameter
    assert f'重新申报自 <a href="/declarations/{returned.id}">第 1 版</a>' in page
    versions = page[page.index("历次申报") :]
    assert "第 2 版" in versions and "第 1 版" in versions
    assert "R01 身份信息错误/与身份证不符" in versions
    history = page[page.index("办理记录") : page.index("历次申报")]
    for action in ("创建草稿", "提交", "受理审核", "退回", "重新申报"):
        assert action in history, action


def test_only_a_returned_declaration_can_be_resubmitted(
    client: GuardedClient, seed: Seeder
) -> None:
    draft = seed.draft()
    r = client.get(f"/declarations/{draft.id}/resubmit")
    assert r.status == 409
    assert "只有已退回的申报可以重新申报" in r.text


def test_the_voucher_page_is_printable(client: GuardedClient, seed: Seeder) -> None:
    """An applied declaration's 办理凭证: voucher number, unit, type, times, the content
    and what applying did (the new 个人编号); a page meant for print."""
    applied = seed.in_state(Status.APPLIED)
    r = client.get(f"/declarations/{applied.id}/voucher")
    assert r.status == 200
    page = r.text
    assert "社会保险业务办理凭证" in page
    assert element_text(page, "voucher-no") == applied.voucher_no
    assert ALICE.unit_code in page and "人员增加" in page
    assert "个人编号" in page and applied.result["person_number"] in page
    assert 'class="voucher-page"' in page
    assert "2026-01-01 08:00:40" in page  # decided, Beijing time


def test_the_voucher_page_masks_identity_numbers_as_the_pdf_does(
    client: GuardedClient, seed: Seeder
) -> None:
    """The HTML voucher is printed and handed on like the PDF: the ID number shows its
    first 6 and last 4 only (issue 11); the declaration's own page shows it whole."""
    applied = seed.in_state(Status.APPLIED)
    page = client.get(f"/declarations/{applied.id}/voucher").text
    assert VALID_ID not in page
    assert VALID_ID[:6] + "********" + VALID_ID[-4:] in page
    assert VALID_ID in client.get(f"/declarations/{applied.id}").text


def test_no_voucher_before_the_declaration_is_applied(client: GuardedClient, seed: Seeder) -> None:
    pending = seed.in_state(Status.PENDING_REVIEW)
    r = client.get(f"/declarations/{pending.id}/voucher")
    assert r.status == 404
    assert "该申报尚未办结，没有办理凭证。" in r.text


# -- all eight types -------------------------------------------------------------------------


@pytest.mark.parametrize("type", list(DeclarationType), ids=lambda t: t.value)
def test_every_type_has_a_form_that_previews_and_submits(
    client: GuardedClient, workflow: MemoryWorkflow, type: DeclarationType
) -> None:
    """Each of the eight types: its form lists every field with its Chinese label and
    the required marks; an empty preview names the required fields in Chinese; a
    filled one previews and submits."""
    spec = FORM_SPECS[type]
    form = client.get(f"/declarations/new/{type.value}").text
    for f in spec.fields:
        assert f.label in form, f.name
        assert f'id="field-{f.name}"' in form
    empty = client.post_form(f"/declarations/new/{type.value}", [("action", "preview")])
    assert empty.status == 422
    for f in spec.fields:
        if f.required:
            assert f"请填写{f.label}" in element_text(empty.text, f"field-{f.name}")
    preview = client.post_form(
        f"/declarations/new/{type.value}", [*sample_form(type), ("action", "preview")]
    )
    assert preview.status == 200, preview.text
    assert f"预览：{type.chinese}" in preview.text
    fields = [(n, v) for n, v in hidden_fields_of(preview.text) if n != "csrf_token"]
    done = client.post_form(f"/declarations/new/{type.value}", [*fields, ("action", "submit")])
    assert done.status == 303, done.text
    [decl] = workflow.declarations.values()
    assert decl.type is type and decl.status is Status.PENDING_REVIEW


def test_the_annual_base_batch_is_read_line_by_line(
    client: GuardedClient, workflow: MemoryWorkflow
) -> None:
    """年度缴费基数申报: one person per line (commas, Chinese commas or tabs); a line
    with the wrong number of columns or a malformed wage is named by its number."""
    lines = f"P1, 张三, {VALID_ID}, 6000\n\nP2，李四，330682199506150028，3000.5\nP3\t王五\t{VALID_ID}\t7000"
    r = client.post_form(
        "/declarations/new/annual-base", [("year", "2025"), ("lines", lines), ("action", "save")]
    )
    assert r.status == 303
    [decl] = workflow.declarations.values()
    assert [line["wage"] for line in decl.payload["lines"]] == ["6000", "3000.5", "7000"]
    page = client.get(f"/declarations/{decl.id}").text
    assert "2025年度 · 3 人" in client.get("/declarations").text
    assert "<th>上年度月平均工资</th>" in page

    bad = "P1, 张三, 6000\nP2, 李四, 330682199506150028, 三千"
    r = client.post_form(
        "/declarations/new/annual-base", [("year", "2025"), ("lines", bad), ("action", "preview")]
    )
    assert r.status == 422
    text = element_text(r.text, "field-lines")
    assert "第 1 行应有 4 列，实有 3 列" in text
    assert "第 2 行上年度月平均工资：金额应为不小于 0 的数字" in text


def test_an_unknown_type_or_declaration_is_a_404_page(client: GuardedClient) -> None:
    for path in (
        "/declarations/new/no-such-type",
        "/declarations/AAAAAAAAAAAAAAAA",
        "/declarations/AAAAAAAAAAAAAAAA/voucher",
        "/declarations/%3Cx%3E",
        "/nowhere",
    ):
        r = client.get(path)
        assert r.status == 404, path
        assert "页面不存在" in r.text or "申报不存在" in r.text or "没有这种申报类型" in r.text


def test_every_form_carries_the_sessions_csrf_token(client: GuardedClient, seed: Seeder) -> None:
    """Every form on every page has exactly one ``csrf_token`` field, equal to the
    token of the gateway session."""
    draft = seed.draft()
    pending = seed.in_state(Status.PENDING_REVIEW)
    token = csrf_for()
    for path in (
        f"/declarations/{draft.id}",
        f"/declarations/{pending.id}",
        "/declarations/new/person-add",
        f"/declarations/{draft.id}/edit",
    ):
        page = client.get(path).text
        forms = re.findall(r"<form [^>]*method=\"post\".*?</form>", page, re.S)
        assert forms, path
        for form in forms:
            assert form.count('name="csrf_token"') == 1
            assert f'name="csrf_token" value="{token}"' in form


def test_times_are_shown_in_beijing_time(client: GuardedClient, seed: Seeder) -> None:
    """2026-01-01T00:00:10Z (submitted) shows as 2026-01-01 08:00."""
    pending = seed.in_state(Status.PENDING_REVIEW)
    page = client.get(f"/declarations/{pending.id}").text
    assert "2026-01-01 08:00" in page


def test_query_parameters_other_than_status_and_msg_are_ignored(client: GuardedClient) -> None:
    r = client.get("/declarations?foo=bar&msg=%3Cscript%3E")
    assert r.status == 200
    assert "<script>" not in r.text
    assert dict(parse_qsl("a=1"))  # keep the import honest


def test_the_voucher_as_pdf(
    seed: Seeder, workflow: MemoryWorkflow, runner: SynchronousRunner, clock: Any
) -> None:
    """An applied declaration's voucher downloads as a one-page PDF (drawn on the pool)
    named after the voucher number, with the unit's name from the lookup given to the
    site; before it is applied, or for another unit, there is none (404)."""
    from declare_app.web import employer_site
    from declare_app.web.testing import BOB, CSRF_KEY

    names = {ALICE.unit_code: "上虞示范机械厂"}
    site = employer_site(
        workflow=workflow,
        runner=runner,
        clock=clock,
        csrf_key=CSRF_KEY,
        unit_names=lambda conn, code: names.get(code),
    )
    client = GuardedClient(site, clock)
    applied = seed.in_state(Status.APPLIED)
    runner.calls.clear()
    r = client.get(f"/declarations/{applied.id}/voucher.pdf")
    assert r.status == 200
    assert r.header("content-type") == "application/pdf"
    assert r.body.startswith(b"%PDF-")
    assert (
        r.header("content-disposition")
        == f'attachment; filename="voucher-{applied.voucher_no}.pdf"'
    )
    assert runner.calls == ["recording_refusals"]
    assert "下载 PDF 凭证" in client.get(f"/declarations/{applied.id}/voucher").text
    assert element_text(client.get("/").text, "unit-name") == "上虞示范机械厂"

    pending = seed.in_state(Status.PENDING_REVIEW)
    assert client.get(f"/declarations/{pending.id}/voucher.pdf").status == 404
    bobs = seed.in_state(Status.APPLIED, identity=BOB)
    assert client.get(f"/declarations/{bobs.id}/voucher.pdf").status == 404


def test_the_voucher_details_mask_identity_numbers() -> None:
    from declare_app.web._views import voucher_details

    spec = FORM_SPECS[DeclarationType.PERSON_ADD]
    rows = dict(voucher_details(spec, {**PERSON, "remark": ""}, {"person_no": "P00000001"}))
    assert rows["个人编号"] == "P00000001"
    assert rows["公民身份号码"] == VALID_ID[:6] + "********" + VALID_ID[-4:]
    assert "备注" not in rows
    annual = voucher_details(
        FORM_SPECS[DeclarationType.ANNUAL_BASE],
        {
            "year": "2025",
            "lines": [
                {
                    "person_no": "P1",
                    "name": "张三",
                    "id_number": VALID_ID,
                    "wage": "6000",
                    "base": "6000.00",
                }
            ],
        },
        {},
    )
    assert (
        "人员明细第1行",
        f"P1 张三 {VALID_ID[:6]}********{VALID_ID[-4:]} 6000 6000.00",
    ) in annual


def test_an_item_in_both_the_result_and_the_payload_is_listed_once_on_the_voucher() -> None:
    """An applied injury report has 逾期申报 both in what applying did and in its derived
    fields: the vouchers (PDF rows and the page's result rows) list it once (issue 11)."""
    from declare_app.web._views import result_rows, voucher_details

    spec = FORM_SPECS[DeclarationType.INJURY_ACCIDENT]
    payload = {"deadline": "2026-12-30", "late": False}
    result = {"decision_no": "GSRD20261203000004", "late": False}
    labels = [label for label, _ in voucher_details(spec, payload, result)]
    assert labels.count("逾期申报") == 1
    assert "工伤认定决定书编号" in labels
    assert [label for label, _ in result_rows(result, payload)] == ["工伤认定决定书编号"]
    assert "逾期申报" in dict(result_rows(result))  # the detail page: the result alone


def test_no_favicon_and_no_404_for_it(client: GuardedClient) -> None:
    r = client.get("/favicon.ico")
    assert r.status == 204 and r.body == b""


def test_422_has_its_reason_phrase(client: GuardedClient) -> None:
    r = client.post_form("/declarations/new/person-add", [("action", "preview")])
    assert r.raw.startswith(b"HTTP/1.1 422 Unprocessable Content\r\n")


def test_a_large_batch_shows_its_first_500_lines(client: GuardedClient, seed: Seeder) -> None:
    """A 2 000-line annual-base draft: its page draws 500 rows and says how many more
    there are."""
    lines = [
        {"person_no": f"P{i}", "name": "张三", "id_number": VALID_ID, "wage": "6000"}
        for i in range(2000)
    ]
    d = seed.draft(type=DeclarationType.ANNUAL_BASE, payload={"year": "2025", "lines": lines})
    page = client.get(f"/declarations/{d.id}").text
    assert "P499<" in page and "P500<" not in page
    assert "共 2000 行，此处显示前 500 行，另有 1500 行未显示。" in page
