"""The sans-IO parts: reading bodies and values, the cross-site checks, the views.

Hypothesis drives the payload readers with arbitrary JSON and form input: they never
raise, and what they let through has the shape the workflow is promised.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from declare_app.interfaces import (
    DeclarationError,
    DeclarationType,
    Finding,
    InvalidDeclaration,
    NotFound,
)
from declare_app.web import FORM_SPECS, FieldKind
from declare_app.web._app import status_for
from declare_app.web._input import (
    field_of,
    payload_from_form,
    payload_from_json,
    raw_from_payload,
)
from declare_app.web._views import fmt_time, history_rows, reason_text
from web import (
    CsrfTokens,
    MalformedInput,
    host_allowed,
    origin_allowed,
    parse_form_body,
    parse_json_body,
    parse_query,
    same_origin,
)

PERSON_ADD = FORM_SPECS[DeclarationType.PERSON_ADD]
ANNUAL = FORM_SPECS[DeclarationType.ANNUAL_BASE]
INJURY = FORM_SPECS[DeclarationType.INJURY_ACCIDENT]


def errors(parsed: Any) -> dict[str, str]:
    return {f.field: f.message for f in parsed.errors}


# -- bodies ----------------------------------------------------------------------------------


def test_form_bodies_decode_strictly() -> None:
    assert parse_form_body(b"a=%E5%BC%A0&b=&a=2") == [("a", "张"), ("b", ""), ("a", "2")]
    with pytest.raises(MalformedInput) as e:
        parse_form_body("a=张".encode())
    assert e.value.code == "bad-encoding"
    with pytest.raises(MalformedInput):
        parse_form_body(b"a=%ff")
    with pytest.raises(MalformedInput) as e:
        parse_form_body(b"&".join(b"x=1" for _ in range(600)))
    assert e.value.code == "too-many-fields"


def test_query_strings() -> None:
    assert parse_query(b"/x?status=draft&status=x&msg=") == {"status": ["draft", "x"], "msg": [""]}
    assert parse_query(b"/x") == {}
    with pytest.raises(MalformedInput):
        parse_query(b"/x?a=%c3%28")


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"\xff",
        b'{"a": 1, "a": 2}',
        b"[NaN]",
        b"[Infinity]",
        b"[-Infinity]",
        b"[" * 50_000,
        b"9" * 5000,
        b'{"a":' * 9 + b"1" + b"}" * 9,
    ],
)
def test_json_bodies_that_are_refused(body: bytes) -> None:
    with pytest.raises(MalformedInput):
        parse_json_body(body)


def test_json_bodies_that_are_read() -> None:
    assert parse_json_body('{"名": [1, 2.5, null, true]}'.encode()) == {"名": [1, 2.5, None, True]}
    assert parse_json_body(b'{"a":' * 7 + b"1" + b"}" * 7) is not None


# -- values ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "typed", "stored"),
    [
        ("hire_date", " 2025-12-15 ", "2025-12-15"),
        ("hire_date", "2025/12/5", "2025-12-05"),
        ("hire_date", "20251205", "2025-12-05"),
        ("hire_date", "2025年12月5日", "2025-12-05"),
        ("hire_date", "２０２５－１２－０５", "2025-12-05"),
        ("start_month", "2026-1", "2026-01"),
        ("start_month", "202601", "2026-01"),
        ("start_month", "2026年1月", "2026-01"),
        ("monthly_wage", "6000.50", "6000.50"),
        ("monthly_wage", "６０００", "6000"),
        ("id_number", "33068219900307123x", "33068219900307123X"),
        ("id_number", "330682 19900307 123X", "33068219900307123X"),
        ("phone", "+86 575-8234 5678", "+86 575-8234 5678"),
        ("remark", "第一行\r\n第二行\t缩进", "第一行\n第二行\t缩进"),
        ("name", "  张三  ", "张三"),
    ],
)
def test_values_are_normalised(field: str, typed: str, stored: str) -> None:
    parsed = payload_from_form(PERSON_ADD, [(field, typed)])
    assert field not in errors(parsed)
    assert parsed.payload[field] == stored
    assert parsed.raw[field] == typed  # shown again as typed


@pytest.mark.parametrize(
    ("field", "typed", "message"),
    [
        ("hire_date", "2025-13-01", "不是有效的日期"),
        ("hire_date", "12/05/2025", "日期格式应为"),
        ("start_month", "2026-00", "年月格式应为"),
        ("monthly_wage", "1.234", "最多两位小数"),
        ("monthly_wage", "1e5", "金额应为"),
        ("monthly_wage", "1" * 13, "金额应为"),
        ("id_number", "3306821990030712;X", "只能包含数字和字母"),
        ("name", "张\n三", "不能包含换行或控制字符"),
        ("remark", "a\x07b", "不允许的控制字符"),
        ("gender", "男", "请从列表中选择"),
    ],
)
def test_values_that_are_refused(field: str, typed: str, message: str) -> None:
    parsed = payload_from_form(PERSON_ADD, [(field, typed)])
    assert message in errors(parsed)[field]
    assert parsed.payload[field] == ""
    assert all(f.rule == "INPUT" and f.severity == "error" for f in parsed.errors)


def test_datetime_values() -> None:
    for typed, stored in (
        ("2025-12-01T09:30", "2025-12-01T09:30"),
        ("2025/12/1 9:05", "2025-12-01T09:05"),
        ("2025-12-01 09:30:59", "2025-12-01T09:30"),
    ):
        parsed = payload_from_form(INJURY, [("accident_time", typed)])
        assert parsed.payload["accident_time"] == stored
    for bad in ("2025-12-01", "2025-12-01 24:00", "2025-12-01 12:60", "noon"):
        assert "accident_time" in errors(payload_from_form(INJURY, [("accident_time", bad)]))


def test_form_fields_outside_the_spec_are_ignored_and_repeats_refused() -> None:
    parsed = payload_from_form(
        PERSON_ADD, [("unit_code", "87654321"), ("csrf_token", "x"), ("name", "a"), ("name", "b")]
    )
    assert "unit_code" not in parsed.payload and "csrf_token" not in parsed.payload
    assert errors(parsed) == {"name": "此项只能填写一个值"}


def test_multi_choices_keep_the_spec_order_without_duplicates() -> None:
    parsed = payload_from_form(
        PERSON_ADD, [("insurances", "510"), ("insurances", "110"), ("insurances", "510")]
    )
    assert parsed.payload["insurances"] == ["110", "510"]


def test_json_payload_types() -> None:
    ok = payload_from_json(
        PERSON_ADD, {"name": "张三", "monthly_wage": 6000, "insurances": None, "remark": None}
    )
    assert ok.ok
    assert (ok.payload["monthly_wage"], ok.payload["insurances"], ok.payload["remark"]) == (
        "6000",
        [],
        "",
    )
    bad = payload_from_json(
        PERSON_ADD, {"name": 1, "monthly_wage": False, "insurances": "110", "x" * 100: 1}
    )
    assert set(errors(bad)) == {"name", "monthly_wage", "insurances", "x" * 40 + "…"}
    assert errors(payload_from_json(PERSON_ADD, [])) == {"payload": "payload 应为对象"}


def test_lines_from_text() -> None:
    text = "P1, 张三, 33068219900307123x, 6000\n\n  \nP2\t李四\t330682199506150028\t3000.5\r\nP3，王五，330682199506150028，７０００"
    parsed = payload_from_form(ANNUAL, [("year", "2025"), ("lines", text)])
    assert parsed.ok, parsed.errors
    assert parsed.payload["lines"] == [
        {"person_no": "P1", "name": "张三", "id_number": "33068219900307123X", "wage": "6000"},
        {"person_no": "P2", "name": "李四", "id_number": "330682199506150028", "wage": "3000.5"},
        {"person_no": "P3", "name": "王五", "id_number": "330682199506150028", "wage": "7000"},
    ]
    assert raw_from_payload(ANNUAL, parsed.payload)["lines"] == (
        "P1, 张三, 33068219900307123X, 6000\nP2, 李四, 330682199506150028, 3000.5\n"
        "P3, 王五, 330682199506150028, 7000"
    )


def test_line_errors_are_counted_beyond_twenty() -> None:
    text = "\n".join("only, two" for _ in range(25))
    message = errors(payload_from_form(ANNUAL, [("lines", text)]))["lines"]
    assert message.count("应有 4 列") == 20
    assert message.endswith("另有 5 处错误")


def test_raw_from_payload_defaults_and_odd_values() -> None:
    defaults = raw_from_payload(PERSON_ADD, None)
    assert defaults["insurances"] == ["110", "210", "310", "410", "510"]
    assert defaults["id_type"] == "01"
    odd = raw_from_payload(PERSON_ADD, {"name": 5, "insurances": "110", "remark": None})
    assert (odd["name"], odd["insurances"], odd["remark"]) == ("5", ["110"], "")


def test_findings_are_placed_on_their_form_field() -> None:
    assert field_of(ANNUAL, "lines[3].wage") == "lines"
    assert field_of(ANNUAL, "lines.3.wage") == "lines"
    assert field_of(ANNUAL, "year") == "year"
    assert field_of(ANNUAL, "") == ""
    assert field_of(ANNUAL, "linesx") == ""


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    type=st.sampled_from(list(DeclarationType)),
    value=st.one_of(
        _json,
        st.dictionaries(
            st.sampled_from(
                ["name", "insurances", "lines", "year", "hire_date", "monthly_wage", "x"]
            ),
            _json,
            max_size=6,
        ),
    ),
)
def test_json_payloads_never_raise_and_come_out_well_shaped(
    type: DeclarationType, value: Any
) -> None:
    """Any JSON value as a payload: no exception; without errors, every field is
    present with the shape of its kind (str, list of str, list of str-mappings)."""
    spec = FORM_SPECS[type]
    parsed = payload_from_json(spec, value)
    assert all(isinstance(f, Finding) for f in parsed.errors)
    if parsed.ok:
        for f in spec.fields:
            v = parsed.payload[f.name]
            if f.kind is FieldKind.MULTI:
                assert isinstance(v, list) and all(isinstance(x, str) for x in v)
            elif f.kind is FieldKind.LINES:
                assert all(
                    isinstance(row, dict) and all(isinstance(c, str) for c in row.values())
                    for row in v
                )
            else:
                assert isinstance(v, str)
                assert "\x00" not in v


@settings(max_examples=300, deadline=None)
@given(
    type=st.sampled_from(list(DeclarationType)),
    pairs=st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "name",
                    "insurances",
                    "lines",
                    "year",
                    "remark",
                    "gender",
                    "hire_date",
                    "accident_time",
                ]
            ),
            st.text(),
        ),
        max_size=8,
    ),
)
def test_form_payloads_never_raise(type: DeclarationType, pairs: list[tuple[str, str]]) -> None:
    parsed = payload_from_form(FORM_SPECS[type], pairs)
    for f in FORM_SPECS[type].fields:
        assert f.name in parsed.payload and f.name in parsed.raw


# -- cross-site checks -----------------------------------------------------------------------


def test_csrf_tokens() -> None:
    tokens = CsrfTokens(b"k" * 32)
    t = tokens.token("s-1")
    assert tokens.valid("s-1", t) and tokens.valid("s-1", t.encode())
    assert not tokens.valid("s-2", t)
    assert (
        not tokens.valid("s-1", None)
        and not tokens.valid("s-1", "")
        and not tokens.valid("s-1", "令牌")
    )
    assert CsrfTokens(b"j" * 32).token("s-1") != t
    assert "k" * 8 not in repr(tokens)
    with pytest.raises(ValueError):
        CsrfTokens(b"short")


def test_hosts_origins_and_referers() -> None:
    assert host_allowed(b"127.0.0.1:8080", ["localhost"])
    assert host_allowed(b"[::1]", [])
    assert not host_allowed(b"[::1]:x", [])
    assert not host_allowed(b"localhost", [])
    assert same_origin(b"http://127.0.0.1:8080", b"127.0.0.1:8080")
    assert same_origin(b"http://LOCALHOST", b"localhost:80")
    assert same_origin(b"https://gw.example", b"gw.example")
    assert not same_origin(b"http://127.0.0.1:8080", None)
    assert not same_origin(b"http://user@127.0.0.2:8080", b"127.0.0.1:8080")
    assert not same_origin(b"\xff", b"127.0.0.1")
    assert origin_allowed(None, None, b"127.0.0.1")
    assert not origin_allowed(b"null", None, b"127.0.0.1")


# -- views -----------------------------------------------------------------------------------


def test_times_reasons_and_history() -> None:
    assert fmt_time(0) == "1970-01-01 08:00"
    assert fmt_time(None) == "" and fmt_time("x") == "" and fmt_time(float("inf")) == ""
    assert reason_text("R03") == "R03 重复参保/原单位未减员/转移手续未办结"
    assert reason_text("R77") == "R77" and reason_text(None) == ""
    [row] = history_rows(
        [{"at": 0, "action": "return", "code": "R01", "text": "不符", "to": "returned", "by": "li"}]
    )
    assert row.at == "1970-01-01 08:00" and row.action == "退回"
    assert ("原因代码", "R01 身份信息错误/与身份证不符") in row.details
    assert ("新状态", "已退回") in row.details and ("操作人", "li") in row.details
    assert history_rows(["not a mapping", {"event": "custom"}])[0].action == "custom"  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (NotFound(), 404),
        (InvalidDeclaration([]), 422),
        (DeclarationError("forbidden", "x"), 403),
        (DeclarationError("unit-unknown", "x"), 403),
        (DeclarationError("bad-payload", "x"), 422),
        (DeclarationError("too-large", "x"), 413),
        (DeclarationError("wrong-status", "x"), 409),
        (DeclarationError("resubmitted", "x"), 409),
        (DeclarationError("anything-else", "x"), 409),
    ],
)
def test_workflow_refusals_map_to_statuses(error: DeclarationError, status: int) -> None:
    assert status_for(error) == status


def test_history_in_the_workflows_shape() -> None:
    """The real workflow's entries: no ``action`` but a ``note``, which becomes the
    action; its internal keys are not shown."""
    [row] = history_rows(
        [
            {
                "at": 0.0,
                "declaration_id": "abc",
                "version": 2,
                "actor_kind": "staff",
                "actor": "auditor1",
                "session_id": None,
                "from": "under-review",
                "to": "applied",
                "note": "审核通过，已办结，凭证号SB1",
            }
        ]
    )
    assert row.action == "审核通过，已办结，凭证号SB1"
    assert row.details == (
        ("版本", "2"),
        ("操作人", "auditor1"),
        ("原状态", "审核中"),
        ("新状态", "已办结"),
    )


def test_what_applying_did_is_labelled() -> None:
    from declare_app.web._views import result_rows

    assert result_rows(
        {
            "person_no": "33068200000001",
            "new_person": True,
            "insurances": ["110", "310"],
            "status": "2",
            "kind": "3",
            "x": 1,
        }
    ) == [
        ("个人编号", "33068200000001"),
        ("新参保人员", "是"),
        ("险种", "110 企业职工基本养老保险、310 职工基本医疗保险"),
        ("缴费状态", "2 暂停缴费"),
        ("鉴定类型", "3 复查鉴定"),
        ("x", "1"),
    ]
