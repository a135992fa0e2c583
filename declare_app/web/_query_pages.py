"""The employer's eight queries (DOMAIN §5.8) as pages, CSV downloads and JSON.

``/queries`` lists them; ``/queries/<name>`` is a GET form with the §5.8 filters, the
result (a summary and a table), pagination and a print layout; ``/queries/<name>.csv``
downloads every row that matches (up to :data:`MAX_CSV_ROWS`);
``/api/v1/queries/<name>`` answers the same as JSON.  Names and filters:

============================  ==================================================
``unit-info`` 单位基本信息       —
``changes`` 增减员名册          from_month, to_month, direction, status, id_number, name
``unit-payments`` 单位缴费      from_month, to_month, insurance, status
``roster`` 单位花名册           status (AAC031, ``all``), insurance, id_number, name
``person-payments`` 个人缴费    id_number or person_number, from_month, to_month, insurance
``account-statement`` 对帐单    id_number or person_number, year
``retirees`` 退休人员档案       from_month, to_month, id_number, name
``reaching-retirement`` 到龄    from_month, to_month, include_overdue
============================  ==================================================

Every call is :class:`declare_app._queries.EmployerQueries` through the runner (the
database pool), scoped to the gateway identity's unit and audited there as
``declare.query.<name>``.  Bad filter values come back as field findings (page: beside
the field, 422; API: 422 ``invalid`` with findings); another unit's person is 404,
like one who does not exist.
"""

from __future__ import annotations

import csv
import dataclasses
import enum
import io
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from itertools import islice
from typing import Any, Final
from urllib.parse import urlencode

from sqlalchemy import Connection
from twisted.internet.defer import Deferred, succeed

import audit
import web
from declare_app._contributions import Insurance, PaymentStatus
from declare_app._queries import (
    MAX_LIMIT,
    AccountStatementView,
    ChangeRow,
    EmployerQueries,
    InvalidQuery,
    PersonPaymentRow,
    RetireeRow,
    RosterRow,
    UnitInfo,
    UnitInsurance,
    UnitPaymentRow,
    append_events,
)
from declare_app._retirement import RetirementRow, YearMonth
from declare_app.interfaces import Actor, DeclarationError, Finding, NotFound, Status
from declare_app.web._api import json_response
from declare_app.web._app import Ctx, HttpError, Response, RowStream

PAGE_SIZE: Final = 50
MAX_PAGE: Final = 100_000
MAX_CSV_ROWS: Final = 20_000
NOT_OPEN = "查询功能暂未开放，请到经办机构窗口查询。"
_RULE = "INPUT"
_TRUE = ("1", "on", "true", "yes")
_FALSE = ("", "0", "off", "false", "no")


# -- what each query is -------------------------------------------------------------------


@dataclass(frozen=True)
class Filter:
    name: str
    label: str
    kind: str  # month | text | select | check | year
    choices: tuple[tuple[str, str], ...] = ()
    hint: str = ""


@dataclass(frozen=True)
class Column:
    label: str
    value: Callable[[Any], object]


@dataclass(frozen=True)
class QuerySpec:
    name: str
    title: str
    intro: str
    method: str  # of EmployerQueries
    filters: tuple[Filter, ...]
    columns: tuple[Column, ...]
    rows: Callable[[Any], Sequence[Any]]
    summary: Callable[[Any], list[tuple[str, object]]] = lambda _: []
    paged: bool = True
    needs: tuple[str, ...] = ()  # one of these must be given before the query runs


def _ins(code: object) -> str:
    try:
        return Insurance(str(code)).label
    except ValueError:
        return str(code)


def _ins_list(codes: Sequence[str]) -> str:
    return "、".join(_ins(c) for c in codes)


def _gender(code: object) -> str:
    return {"1": "男", "2": "女"}.get(str(code), str(code))


def _staff(code: object) -> str:
    return {"A": "干部", "B": "工人"}.get(str(code), str(code))


def _age(months: int | None) -> str | None:
    if months is None:
        return None
    years, rest = divmod(months, 12)
    return f"{years}岁{rest}个月" if rest else f"{years}岁"


def _yes(flag: bool) -> str:
    return "是" if flag else "否"


def text(value: object) -> str:  # noqa: PLR0911 - one return per kind of value
    """A value as a page or CSV shows it ("—" for nothing recorded)."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return _yes(value)
    if isinstance(value, YearMonth):
        return f"{value.year:04d}-{value.month:02d}"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, Decimal):
        return f"{value:.2f}" if value == value.quantize(Decimal("0.01")) else str(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


_MONTHS = (
    Filter("from_month", "起始年月", "month", hint="如 2024-01"),
    Filter("to_month", "截止年月", "month", hint="如 2024-12"),
)
_ID = Filter("id_number", "身份证号", "text")
_NAME = Filter("name", "姓名", "text", hint="可输入姓名的一部分")
_PERSON_NO = Filter("person_number", "个人编号", "text")
_INSURANCE = Filter("insurance", "险种", "select", tuple((i.value, i.label) for i in Insurance))

_INSURANCE_STATUS_LABELS = {"active": "参保缴费", "stopped": "暂停缴费", "none": "未参保"}


def _unit_info_summary(u: UnitInfo) -> list[tuple[str, object]]:
    return [
        ("单位编号", u.code),
        ("单位名称", u.name),
        ("统一社会信用代码", u.credit_code),
        ("统筹区", u.region),
        ("网上申报登记", "已开通" if u.registry_status == "approved" else u.registry_status),
        (
            "单位状态",
            {"normal": "正常", "suspended": "暂停", "cancelled": "注销"}.get(
                u.standing, u.standing
            ),
        ),
        ("是否欠费", u.arrears),
        ("单位类型", u.unit_type),
        ("注册地址", u.registered_address),
        ("经营地址", u.business_address),
        ("邮政编码", u.postcode),
        ("行业代码", u.industry_code),
        ("经济类型", u.economic_type),
        ("隶属关系", u.affiliation),
        ("行政区划", u.admin_region),
        ("法定代表人", u.legal_rep_name),
        ("法定代表人身份证号", u.legal_rep_id),
        ("经办人", u.agent_name),
        ("经办人电话", u.agent_phone),
        ("开户银行", u.bank_name),
        ("开户名称", u.bank_account_name),
        ("银行账号", u.bank_account_no),
        ("工伤行业风险类别", u.injury_risk_class),
        ("工伤费率", None if u.injury_rate is None else f"{u.injury_rate * 100:.2f}%"),
        ("主管部门", u.competent_dept),
    ]


def _statement_summary(s: AccountStatementView) -> list[tuple[str, object]]:
    periods = "；".join(f"{p.from_month}至{p.to_month} {p.unit_name}" for p in s.periods)
    return [
        ("个人编号", s.person.person_number),
        ("姓名", s.person.name),
        ("身份证号", s.person.id_number),
        ("年度", s.year),
        ("缴费单位及期间", periods or None),
        ("上年末累计储存额", s.opening),
        ("其中：本金", s.opening_principal),
        ("其中：利息", s.opening_interest),
        ("本年缴费月数", s.months_credited),
        ("本年个人缴费记账额", s.credited),
        (
            "本年记账利率",
            f"{s.year}年度记账利率尚未公布，暂不计息"
            if s.rate is None
            else f"{s.rate * 100:.2f}%" + ("" if s.rate_status == "official" else "（公布前）"),
        ),
        ("上年储存额本年利息", s.interest_on_opening),
        ("本年记账额本年利息", s.interest_on_new),
        ("本年利息", s.interest),
        ("本年末累计储存额", s.closing),
        ("累计缴费月数", s.total_months),
        ("实际缴费月数", s.actual_months),
        ("视同缴费月数", s.deemed_months),
        ("说明", "本年度尚未结息，利息为按年末计算的预计值" if s.provisional else None),
    ]


SPECS: Final[dict[str, QuerySpec]] = {
    s.name: s
    for s in (
        QuerySpec(
            name="unit-info",
            title="单位基本信息",
            intro="本单位的登记信息、参保状态（按险种）和工伤费率。",
            method="unit_info",
            filters=(),
            columns=(
                Column("险种", lambda r: r.insurance.label),
                Column("参保状态", lambda r: _INSURANCE_STATUS_LABELS.get(r.status, r.status)),
                Column("参保年月", lambda r: r.first_month),
                Column("在缴人数", lambda r: r.contributing),
            ),
            rows=lambda u: u.insurances,
            summary=_unit_info_summary,
            paged=False,
        ),
        QuerySpec(
            name="changes",
            title="增减员名册",
            intro="本单位的人员增加、减少及险种增减申报，按生效年月由近及远排列。",
            method="changes",
            filters=(
                *_MONTHS,
                Filter("direction", "增减类型", "select", (("add", "增员"), ("reduce", "减员"))),
                Filter(
                    "status",
                    "审核状态",
                    "select",
                    tuple((s.value, s.chinese) for s in Status if s is not Status.DRAFT),
                ),
                _ID,
                _NAME,
            ),
            columns=(
                Column("个人编号", lambda r: r.person_number),
                Column("姓名", lambda r: r.name),
                Column("身份证号", lambda r: r.id_number),
                Column("增/减", lambda r: r.direction_label),
                Column("业务类型", lambda r: r.type.chinese),
                Column(
                    "类型/原因",
                    lambda r: None if r.code is None else f"{r.code} {r.code_label or ''}".strip(),
                ),
                Column("险种", lambda r: _ins_list(r.insurances)),
                Column("生效年月", lambda r: r.effective_month),
                Column("申报日期", lambda r: r.submitted_on),
                Column("经办日期", lambda r: r.handled_on),
                Column("审核状态", lambda r: r.status.chinese),
                Column("办理凭证", lambda r: r.voucher_no),
            ),
            rows=lambda r: r.rows,
            summary=lambda r: [("增员", r.adds), ("减员", r.reduces)],
        ),
        QuerySpec(
            name="unit-payments",
            title="单位缴费",
            intro="本单位按费款所属期和险种汇总的应缴及到账情况。",
            method="unit_payments",
            filters=(
                *_MONTHS,
                _INSURANCE,
                Filter("status", "到账状态", "select", (("paid", "已到账"), ("due", "未到账"))),
            ),
            columns=(
                Column("费款所属期", lambda r: r.month),
                Column("险种", lambda r: r.insurance.label),
                Column("缴费人数", lambda r: r.persons),
                Column("基数合计", lambda r: r.base_total),
                Column("单位应缴", lambda r: r.employer),
                Column("个人应缴", lambda r: r.employee),
                Column("合计", lambda r: r.total),
                Column("到账状态", lambda r: r.status_label),
                Column("到账日期", lambda r: r.paid_on),
                Column("滞纳金", lambda r: r.late_fee),
            ),
            rows=lambda r: r.rows,
            summary=lambda r: [
                ("基数合计", r.base_total),
                ("单位应缴合计", r.employer),
                ("个人应缴合计", r.employee),
                ("应缴合计", r.total),
                ("未到账金额", r.unpaid),
                ("滞纳金合计", r.late_fee),
            ],
        ),
        QuerySpec(
            name="roster",
            title="单位花名册",
            intro="本单位的参保人员（默认为参保缴费人员）。",
            method="roster",
            filters=(
                Filter(
                    "status",
                    "缴费状态",
                    "select",
                    (*((s.value, s.label) for s in PaymentStatus), ("all", "全部人员")),
                    hint="默认：参保缴费",
                ),
                _INSURANCE,
                _ID,
                _NAME,
            ),
            columns=(
                Column("个人编号", lambda r: r.person_number),
                Column("姓名", lambda r: r.name),
                Column("身份证号", lambda r: r.id_number),
                Column("性别", lambda r: _gender(r.gender)),
                Column("出生年月", lambda r: r.birth_month),
                Column("人员身份", lambda r: _staff(r.staff_kind)),
                Column("参保险种", lambda r: _ins_list(r.insurances)),
                Column("当前基数", lambda r: r.base),
                Column("缴费状态", lambda r: r.status_label),
                Column("参保年月", lambda r: r.start_month),
            ),
            rows=lambda r: r.rows,
            summary=lambda r: [(PaymentStatus(k).label, v) for k, v in sorted(r.counts.items())],
        ),
        QuerySpec(
            name="person-payments",
            title="个人缴费",
            intro="本单位一名参保人员在本单位的逐月缴费记录。请输入身份证号或个人编号。",
            method="person_payments",
            filters=(_ID, _PERSON_NO, *_MONTHS, _INSURANCE),
            columns=(
                Column("费款所属期", lambda r: r.month),
                Column("险种", lambda r: r.insurance.label),
                Column("类型", lambda r: r.kind_label),
                Column("缴费基数", lambda r: r.base),
                Column("单位部分", lambda r: r.employer),
                Column("个人部分", lambda r: r.employee),
                Column("划入个人账户", lambda r: r.to_account),
                Column("到账标志", lambda r: "已到账" if r.status == "paid" else "未到账"),
                Column("到账日期", lambda r: r.paid_on),
            ),
            rows=lambda r: r.rows,
            summary=lambda r: [
                ("个人编号", r.person.person_number),
                ("姓名", r.person.name),
                ("身份证号", r.person.id_number),
                ("缴费月数", r.months),
                ("单位部分合计", r.employer),
                ("个人部分合计", r.employee),
                ("划入个人账户合计", r.to_account),
            ],
            needs=("id_number", "person_number"),
        ),
        QuerySpec(
            name="account-statement",
            title="养老个人帐户对帐单",
            intro=(
                "本单位参保人员某一年度的基本养老保险个人账户对帐单"
                "（按国家公布的当年记账利率计息，《社会保险法》第十四条）。"
            ),
            method="account_statement",
            filters=(_ID, _PERSON_NO, Filter("year", "年度", "year", hint="如 2024")),
            columns=(
                Column("月份", lambda r: f"{r.month}月"),
                Column("记账额", lambda r: r.credit),
                Column("计息月数", lambda r: r.interest_months),
                Column("积数", lambda r: r.product),
            ),
            rows=lambda s: s.lines,
            summary=_statement_summary,
            paged=False,
            needs=("id_number", "person_number"),
        ),
        QuerySpec(
            name="retirees",
            title="退休人员档案",
            intro="从本单位退休的人员，按退休年月由近及远排列。",
            method="retirees",
            filters=(*_MONTHS, _ID, _NAME),
            columns=(
                Column("个人编号", lambda r: r.person_number),
                Column("姓名", lambda r: r.name),
                Column("身份证号", lambda r: r.id_number),
                Column("性别", lambda r: _gender(r.gender)),
                Column("出生年月", lambda r: r.birth_month),
                Column("退休类别", lambda r: r.kind_label),
                Column("退休年月", lambda r: r.retirement_month),
                Column("法定退休年龄", lambda r: _age(r.statutory_age_months)),
                Column("法定退休年月", lambda r: r.statutory_month),
                Column("退休时年龄", lambda r: _age(r.age_at_retirement_months)),
                Column("实际缴费月数", lambda r: r.actual_months),
                Column("视同缴费月数", lambda r: r.deemed_months),
                Column("累计缴费年限", lambda r: r.contribution_years),
                Column("平均缴费指数", lambda r: r.average_index),
                Column("个人账户储存额", lambda r: r.account_balance),
                Column("计发月数", lambda r: r.payout_months),
                Column("基础养老金", lambda r: r.basic_pension),
                Column("个人账户养老金", lambda r: r.account_pension),
                Column("过渡性养老金", lambda r: r.transitional_pension),
                Column("月养老金合计", lambda r: r.monthly_total),
                Column("待遇开始年月", lambda r: r.benefit_start_month),
            ),
            rows=lambda r: r.rows,
        ),
        QuerySpec(
            name="reaching-retirement",
            title="单位到龄人员",
            intro="本单位在缴人员中，法定退休年月（2025年起渐进式延迟）落在所选期间的人员；"
            "默认为本月起六个月。",
            method="reaching_retirement",
            filters=(
                *_MONTHS,
                Filter("include_overdue", "包含已到龄仍在缴费人员", "check"),
            ),
            columns=(
                Column("个人编号", lambda r: r.person_number),
                Column("姓名", lambda r: r.name),
                Column("身份证号", lambda r: r.id_number),
                Column("性别", lambda r: r.gender.value),
                Column("出生年月", lambda r: r.birth_month),
                Column("人员身份", lambda r: r.staff_kind.value),
                Column("原法定退休年龄", lambda r: f"{r.original_age}岁"),
                Column("延迟月数", lambda r: r.delay_months),
                Column("法定退休年龄", lambda r: _age(r.statutory_age_months)),
                Column("法定退休年月", lambda r: r.statutory_month),
                Column("累计缴费月数", lambda r: r.contribution_months),
                Column("最低缴费月数", lambda r: r.minimum_contribution_months),
                Column("满足最低年限", lambda r: r.meets_minimum),
                Column("弹性提前最早年月", lambda r: r.flexible_earliest),
                Column("弹性延迟最晚年月", lambda r: r.flexible_latest),
                Column("已到龄仍在缴费", lambda r: r.overdue_still_contributing),
                Column("特殊规定", lambda r: r.overridden),
            ),
            rows=lambda r: r.rows,
            summary=lambda r: [
                ("查询期间", f"{text(r.from_month)} 至 {text(r.to_month)}"),
                ("已到龄仍在缴费", r.overdue),
            ],
        ),
    )
}

# Only for the type checker: the row types each spec's columns read.
_ROW_TYPES = (
    UnitInsurance,
    ChangeRow,
    UnitPaymentRow,
    RosterRow,
    PersonPaymentRow,
    RetireeRow,
    RetirementRow,
)


# -- reading the filters ------------------------------------------------------------------


class _BadFilters(Exception):
    def __init__(self, findings: Sequence[Finding]) -> None:
        super().__init__("bad filters")
        self.findings = tuple(findings)


def _spec(name: str) -> QuerySpec:
    spec = SPECS.get(name)
    if spec is None:
        raise HttpError(404, "not-found", "没有这种查询")
    return spec


def _queries(ctx: Ctx) -> Any:
    if ctx.app.queries is None:
        raise HttpError(501, "not-yet", NOT_OPEN)
    return ctx.app.queries


def _values(ctx: Ctx, spec: QuerySpec) -> dict[str, str]:
    """The spec's filters as given (stripped; absent ones left out)."""
    values: dict[str, str] = {}
    for f in spec.filters:
        value = ctx.query_value(f.name)
        if value is not None and value.strip() != "":
            values[f.name] = value.strip()
    return values


def _arguments(spec: QuerySpec, values: dict[str, str]) -> dict[str, Any]:
    """The query method's keyword arguments; what the web reads itself (the check
    box, ``all``) is checked here, the rest by the query."""
    kwargs: dict[str, Any] = {}
    findings: list[Finding] = []
    for f in spec.filters:
        value = values.get(f.name)
        if f.kind == "check":
            if value is None or value.lower() in _FALSE:
                kwargs[f.name] = False
            elif value.lower() in _TRUE:
                kwargs[f.name] = True
            else:
                findings.append(Finding(_RULE, f.name, "error", f"{f.label}应为是或否"))
        elif spec.name == "roster" and f.name == "status":
            kwargs["status"] = None if value == "all" else (value or "1")
        elif value is not None:
            kwargs[f.name] = value
    if findings:
        raise _BadFilters(findings)
    return kwargs


def _page_number(value: str | None) -> int:
    if value is None or value.strip() == "":
        return 1
    text_value = value.strip()
    if text_value.isascii() and text_value.isdigit() and 1 <= int(text_value[:7]) <= MAX_PAGE:
        return int(text_value)
    raise _BadFilters((Finding(_RULE, "page", "error", f"页码应为1至{MAX_PAGE}的整数"),))


# -- running ------------------------------------------------------------------------------


def every_row(
    conn: Connection | None,
    method: Callable[..., Any],
    actor: Actor,
    kwargs: dict[str, Any],
    *,
    now: float,
    spec_name: str,
) -> tuple[Any, list[Any], bool]:
    """(the first page's result, every row up to :data:`MAX_CSV_ROWS`, cut short?) in
    one transaction; each page read is one audited query."""
    spec = SPECS[spec_name]
    if not spec.paged:
        result = method(conn, actor, **kwargs, now=now)
        return result, list(spec.rows(result)), False
    first = None
    rows: list[Any] = []
    offset = 0
    while True:
        result = method(conn, actor, **kwargs, limit=MAX_LIMIT, offset=offset, now=now)
        first = first if first is not None else result
        rows.extend(spec.rows(result))
        offset += MAX_LIMIT
        if not result.page.has_more:
            return first, rows, False
        if len(rows) >= MAX_CSV_ROWS:
            return first, rows[:MAX_CSV_ROWS], True


def _cells(spec: QuerySpec, row: Any) -> list[str]:
    return [text(c.value(row)) for c in spec.columns]


# -- pages ----------------------------------------------------------------------------------


async def index(ctx: Ctx) -> Response:
    return ctx.page("queries.html", specs=list(SPECS.values()))


def _page_links(spec: QuerySpec, values: dict[str, str], page: int, total: int) -> dict[str, Any]:
    pages = max(1, -(-total // PAGE_SIZE))

    def link(n: int) -> str:
        return f"/queries/{spec.name}?" + urlencode({**values, "page": str(n)})

    return {
        "number": page,
        "pages": pages,
        "total": total,
        "first_row": (page - 1) * PAGE_SIZE + 1 if total else 0,
        "last_row": min(page * PAGE_SIZE, total),
        "previous": link(page - 1) if page > 1 else None,
        "next": link(page + 1) if page < pages else None,
    }


def _render(
    ctx: Ctx,
    spec: QuerySpec,
    values: dict[str, str],
    *,
    status: int = 200,
    result: Any = None,
    findings: Sequence[Finding] = (),
    notice: str = "",
    page: int = 1,
) -> Response:
    errors: dict[str, list[str]] = {f.name: [] for f in spec.filters}
    general: list[str] = []
    for f in findings:
        errors.get(f.field, general).append(f.message)
    rows: list[list[str]] = []
    summary: list[tuple[str, str]] = []
    paging = None
    if result is not None:
        rows = [_cells(spec, r) for r in spec.rows(result)]
        summary = [(label, text(value)) for label, value in spec.summary(result)]
        if spec.paged:
            paging = _page_links(spec, values, page, result.page.total)
    csv_url = f"/queries/{spec.name}.csv" + ("?" + urlencode(values) if values else "")
    return ctx.page(
        "query.html",
        status,
        spec=spec,
        values=values,
        errors=errors,
        general_errors=general,
        notice=notice,
        ran=result is not None,
        columns=[c.label for c in spec.columns],
        rows=rows,
        summary=summary,
        paging=paging,
        csv_url=csv_url,
    )


async def query_page(ctx: Ctx, name: str) -> Response:
    spec = _spec(name)
    _queries(ctx)  # 501 before anything else when the service has none
    values = _values(ctx, spec)
    try:
        page = _page_number(ctx.query_value("page"))
        kwargs = _arguments(spec, values)
    except _BadFilters as bad:
        return _render(ctx, spec, values, status=422, findings=bad.findings)
    if spec.needs and not any(n in values for n in spec.needs):
        return _render(ctx, spec, values)  # the form only: whom to look up?
    if spec.paged:
        kwargs.update(limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    try:
        result = await ctx.read_query(spec.method, ctx.actor, **kwargs, now=ctx.now())
    except InvalidQuery as e:
        return _render(ctx, spec, values, status=422, findings=_page_field(e.findings))
    except NotFound:
        return _render(
            ctx, spec, values, status=404, notice="未找到：只能查询本单位参保人员的记录，请核对。"
        )
    except DeclarationError as e:
        if e.code in ("forbidden", "unit-unknown"):
            raise
        return _render(ctx, spec, values, status=409, notice=e.message)
    return _render(ctx, spec, values, result=result, page=page)


def _page_field(findings: Sequence[Finding]) -> tuple[Finding, ...]:
    """The query's ``offset`` finding is the page number here."""
    return tuple(
        dataclasses.replace(f, field="page", message="页码超出范围") if f.field == "offset" else f
        for f in findings
    )


def _csv_cell(value: str) -> str:
    # A cell that a spreadsheet would read as a formula is quoted as text.
    if value[:1] in ("=", "+", "@", "\t", "\r") or (
        value[:1] == "-" and value != "—" and not value[1:].replace(".", "").isdigit()
    ):
        return "'" + value
    return value


async def query_csv(ctx: Ctx, name: str) -> Response:
    spec = _spec(name)
    queries = _queries(ctx)
    values = _values(ctx, spec)
    try:
        kwargs = _arguments(spec, values)
    except _BadFilters as bad:
        raise HttpError(422, "invalid", "查询条件有误，请按提示修改", bad.findings) from None
    if spec.needs and not any(n in values for n in spec.needs):
        raise HttpError(
            422,
            "invalid",
            "请输入身份证号或个人编号",
            (Finding("V-FORM-01", spec.needs[0], "error", "请输入身份证号或个人编号"),),
        )
    if spec.name == "roster":
        return await _roster_download(ctx, spec, kwargs)
    try:
        result, rows, cut = await ctx.run(
            every_row,
            getattr(queries, spec.method),
            ctx.actor,
            kwargs,
            now=ctx.now(),
            spec_name=spec.name,
        )
    except InvalidQuery as e:
        raise HttpError(422, "invalid", e.message, e.findings) from None
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    summary = spec.summary(result)
    if summary:
        for label, value in summary:
            writer.writerow([label, _csv_cell(text(value))])
        writer.writerow([])
    writer.writerow([c.label for c in spec.columns])
    for row in rows:
        writer.writerow([_csv_cell(cell) for cell in _cells(spec, row)])
    if cut:
        writer.writerow([f"仅导出前{MAX_CSV_ROWS}行，请缩小查询条件"])
    body = "\ufeff" + out.getvalue()  # the BOM tells spreadsheet programs it is UTF-8
    return Response(
        200,
        body.encode("utf-8"),
        b"text/csv; charset=utf-8",
        ((b"Content-Disposition", f'attachment; filename="{spec.name}.csv"'.encode()),),
    )


EXPORT_BATCH: Final = 500  # roster rows per piece of the streamed CSV
# Rows between two hand-overs of the GIL while a piece is built (see _roster_pieces).
EXPORT_YIELD_EVERY: Final = 50
_INSURANCE_LISTS: dict[tuple[str, ...], str] = {}


def roster_cells(row: Any) -> tuple[str, ...]:
    """A roster row's CSV cells: what ``_cells`` and ``_csv_cell`` give for the
    roster's columns, without the generic per-cell dispatch (50,000 rows an export)."""
    insurances = _INSURANCE_LISTS.get(row.insurances)
    if insurances is None:
        insurances = _INSURANCE_LISTS.setdefault(row.insurances, _ins_list(row.insurances))
    base = row.base
    return (
        _csv_cell(text(row.person_number)),
        _csv_cell(text(row.name)),
        _csv_cell(text(row.id_number)),
        _csv_cell(text(_gender(row.gender))),
        text(row.birth_month),
        _csv_cell(text(_staff(row.staff_kind))),
        _csv_cell(text(insurances)),
        "—" if base is None else f"{base:.2f}",
        row.status_label,
        text(row.start_month),
    )


def _roster_pieces(
    conn: Connection, queries: EmployerQueries, actor: Actor, kwargs: dict[str, Any], now: float
) -> Iterator[Any]:
    """The roster's counts (a :class:`Roster` without rows), then the rows as CSV, a
    piece of ``EXPORT_BATCH`` rows at a time, built here on the reading thread so the
    reactor only passes bytes on.  Between every ``EXPORT_YIELD_EVERY`` rows the
    thread hands the GIL over (``time.sleep(0)``): another request's thread (or the
    reactor) waiting for it runs at once rather than after the interpreter's switch
    interval, so an export's Python work delays another page by little."""
    summary, rows = queries.roster_export(conn, actor, **kwargs, now=now)
    yield summary
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    batch: list[tuple[str, ...]] = []
    for row in rows:
        batch.append(roster_cells(row))
        if len(batch) % EXPORT_YIELD_EVERY == 0:
            time.sleep(0)
            if len(batch) >= EXPORT_BATCH:
                writer.writerows(batch)
                yield out.getvalue().encode("utf-8")
                out.seek(0)
                out.truncate()
                batch.clear()
    if batch:
        writer.writerows(batch)
        yield out.getvalue().encode("utf-8")


class _Loaded:
    """A :class:`RowStream` over items already read (a site without a reader)."""

    def __init__(self, items: list[Any]) -> None:
        self._items = iter(items)

    def next(self, count: int) -> Deferred[list[Any]]:
        return succeed(list(islice(self._items, count)))

    def close(self) -> Deferred[None]:
        return succeed(None)


async def _roster_download(ctx: Ctx, spec: QuerySpec, kwargs: dict[str, Any]) -> Response:
    """The whole roster as CSV, streamed: one query read as the client takes the rows
    (``web.download`` asks for the next piece only when the connection wants more),
    no row cap, one piece in memory at a time, each piece's CSV built on the reading
    thread (:func:`_roster_pieces`).  The query's audit event (refusals
    too) is appended before the first byte."""
    queries = _queries(ctx)
    events: list[audit.AuditEvent] = []
    stream: RowStream
    if ctx.app.reader is None:
        items = await ctx.run(
            lambda conn: list(_roster_pieces(conn, queries, ctx.actor, kwargs, ctx.now()))
        )
        stream = _Loaded(items)
    else:
        stream = ctx.app.reader.stream(
            _roster_pieces, queries.reading(events), ctx.actor, kwargs, ctx.now()
        )
    try:
        first = await stream.next(1)
    except DeclarationError as e:
        await stream.close()
        if isinstance(e, InvalidQuery):
            raise HttpError(422, "invalid", e.message, e.findings) from None
        raise
    finally:
        if events:
            await ctx.app.runner.run(append_events, events)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for label, value in spec.summary(first[0]):
        writer.writerow([label, _csv_cell(text(value))])
    writer.writerow([])
    writer.writerow([c.label for c in spec.columns])
    head: list[bytes] = [("\ufeff" + out.getvalue()).encode("utf-8")]

    async def chunks() -> bytes:
        if head:
            return head.pop()
        pieces = await stream.next(1)
        return bytes(pieces[0]) if pieces else b""

    def ended(_complete: bool) -> Deferred[None]:
        return stream.close()

    return web.download("text/csv; charset=utf-8", f"{spec.name}.csv", chunks, ended=ended)


# -- JSON ---------------------------------------------------------------------------------------


def to_json(value: Any) -> Any:  # noqa: PLR0911 - one return per kind of value
    """A query result as plain JSON values: money as strings with 2 places, dates ISO,
    months ``YYYY-MM``, codes as their values."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, YearMonth):
        return text(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Decimal | date):
        return str(value) if isinstance(value, Decimal) else value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if hasattr(value, "has_more"):
            out["has_more"] = value.has_more
        return out
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return str(value)


_API_PAGING = ("limit", "offset")


async def query_api(ctx: Ctx, name: str) -> Response:
    spec = _spec(name)
    _queries(ctx)  # 501 before anything else when the service has none
    allowed = {f.name for f in spec.filters} | (set(_API_PAGING) if spec.paged else set())
    unknown = sorted(k for k in ctx.query if k not in allowed)
    if unknown:
        raise HttpError(
            422,
            "invalid-input",
            "请求内容有误",
            tuple(Finding(_RULE, k[:40], "error", "未知的查询参数") for k in unknown[:10]),
        )
    values = _values(ctx, spec)
    try:
        kwargs = _arguments(spec, values)
    except _BadFilters as bad:
        raise HttpError(422, "invalid", "查询条件有误，请按提示修改", bad.findings) from None
    for key in _API_PAGING:
        given = ctx.query_value(key)
        if spec.paged and given is not None:
            kwargs[key] = given
    if spec.needs and not any(n in values for n in spec.needs):
        raise HttpError(
            422,
            "invalid",
            "请输入身份证号或个人编号",
            (Finding("V-FORM-01", spec.needs[0], "error", "请输入身份证号或个人编号"),),
        )
    try:
        result = await ctx.read_query(spec.method, ctx.actor, **kwargs, now=ctx.now())
    except InvalidQuery as e:
        raise HttpError(422, "invalid", e.message, e.findings) from None
    return json_response(200, {"query": spec.name, "title": spec.title, **to_json(result)})


def api_handler(name: str) -> Callable[[Ctx], Any]:
    """The handler of ``GET /api/v1/queries/<name>`` (one route per query)."""

    async def handler(ctx: Ctx) -> Response:
        return await query_api(ctx, name)

    handler.__name__ = f"query_api_{name.replace('-', '_')}"
    return handler
