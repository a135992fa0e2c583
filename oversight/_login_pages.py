"""The officers' login pages in the staff console (role ``officer``; admin too).

* ``GET /logins`` — every login attempt (the channel's logins and resumes, the
  console's staff logins) with its outcome and reason, filtered by kind, account,
  source address, outcome, reason and time (Beijing time); pages of
  :data:`PAGE_SIZE` newest first by keyset (``?before=<seq>``), never OFFSET;
* ``GET /logins/failures`` — refused and failed attempts in a time range (the last
  24 hours unless given), grouped by account and by source, each linking to the
  filtered list;
* ``GET /logins/locked`` — the channel accounts locked now (threshold or hard cap)
  and the throttled source addresses, each with since and until;
* ``GET|POST /logins/locked/<account>/unlock`` — the confirmation with a required
  reason, and the unlock through :class:`AccountUnlock` (the carriers' workflow, so
  the audit log records ``provision.unlock`` by this staff member);
* ``GET /logins/export.csv|.jsonl`` — every attempt the list shows with the same
  filters (all its pages, up to the newest record when the export began), and
  ``GET /logins/failures/export.csv|.jsonl`` — the two tables of the failures page
  for the same range, streamed and audited (:mod:`._export`).

Reads run through ``ctx.runner.run`` on the database pool; the unlock (a workflow
with its own transaction) through ``ctx.runner.call``.  The shell has checked login,
role and CSRF before a handler runs.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlencode

from jinja2 import PackageLoader
from sqlalchemy import Connection

import audit
import auth
import web
from web import Response, StaffCtx
from web._time import CHINA_TIME, local_datetime, parse_local, shown

from ._export import FORMATS, ExportSpec, export_view
from ._logins import (
    KINDS,
    OUTCOME_CHOICES,
    FailureGroup,
    LoginFilters,
    LoginRow,
    failure_totals,
    failures_by_account,
    failures_by_source,
    login_rows,
)
from ._timeline import OUTCOMES
from .interfaces import AccountUnlock, UnlockRefused

LOGINS = "/logins"
PAGE_SIZE = 50
EXPORT_BATCH = 1000
MAX_REASON = 500
DAY = 86_400.0

# The channel's account names (region + unit @ realm), as the carriers' pages take them.
ACCOUNT_PATH = r"[0-9]{1,20}@[a-z][a-z0-9-]{0,31}"
_ACCOUNT = re.compile(r"[0-9A-Za-z@._-]{1,128}")  # a channel account or a staff name
_REASON = re.compile(r"[a-z0-9][a-z0-9.-]{0,63}")
_SEQ = re.compile(r"[1-9][0-9]{0,17}")

KIND_TEXT: Mapping[str, str] = {"channel": "专网登录（含恢复会话）", "console": "控制台登录"}
ACTION_TEXT: Mapping[str, str] = {
    "login": "专网登录",
    "login.resume": "恢复会话",
    "console.login": "控制台登录",
}
OUTCOME_TEXT: Mapping[str, str] = {**OUTCOMES, "not-ok": "拒绝或失败"}
# Reason codes only the console's login records (the rest are the channel's).
CONSOLE_REASONS: Mapping[str, str] = {
    "staff-disabled": "工作人员账号已停用",
    "cross-origin": "跨站请求，已拒绝",
    "csrf-token": "登录页面已过期",
    "bad-input": "输入过长，未校验",
    "server-error": "系统错误",
    "directory-unavailable": "目录服务不可用",
}
UNLOCK_REFUSALS: Mapping[str, str] = {
    "not-locked": "该账号当前没有被锁定，无需解除锁定。",
    "account-cancelled": "该账号已注销，不能解除锁定。",
    "unknown-account": "该账号不存在。",
    "bad-account": "账号名称不符合本系统的地区或域设置。",
}
# The codes a channel login event can carry: each factor's outcome (the auth layer's),
# the gateway's own refusals, and its codes for a login that never completed.
CHANNEL_LOGIN_CODES = (
    "unknown-account",
    "bad-password",
    "bad-otp",
    "otp-reused",
    "empty-password",
    "locked",
    "throttled",
    "account-suspended",
    "account-cancelled",
    "cert-mismatch",
    "cert-revoked",
    "source-denied",
    "too-many-sessions",
    "auth-timeout",
    "resume-invalid",
    "internal-error",
    "network-lost",
)
MAX_FAILURE_DAYS = 31  # the failures page groups at most this long a range
_DONE = {"unlock": "已解除锁定，并已记入审计日志（provision.unlock）。"}

# A login attempt as exports carry it (the list's columns; the time ISO 8601 with
# its offset, never epoch).
LOGIN_COLUMNS: Final = (
    "seq",
    "time",
    "action",
    "account",
    "outcome",
    "reason",
    "source",
    "peer",
    "unit",
    "session_id",
    "certificate",
)
# A row of the failures page's tables: ``grouping`` says which (``account`` or
# ``source``); ``others`` is the sources of an account, the accounts of a source.
FAILURE_COLUMNS: Final = ("grouping", "key", "attempts", "others", "first_at", "last_at")


@dataclass
class Query:
    """A page's query string, as typed (``form``), as read (``filters``) and what was
    wrong with it (``errors``, Chinese, by field)."""

    form: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def filters(self) -> LoginFilters:
        v = self.values
        return LoginFilters(
            kind=v.get("kind"),
            account=v.get("account"),
            source=v.get("source"),
            outcome=v.get("outcome"),
            reason=v.get("reason"),
            since=v.get("since"),
            until=v.get("until"),
        )


def _address(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


# Each field's reader (its value, or None when malformed) and its error message.
_READERS: Mapping[str, tuple[Callable[[str], Any], str]] = {
    "kind": (lambda v: v if v in KINDS else None, "请从列表中选择登录类型"),
    "account": (lambda v: v if _ACCOUNT.fullmatch(v) else None, "账号格式不正确"),
    "source": (_address, "来源地址应为 IPv4 或 IPv6 地址（不含端口）"),
    "outcome": (lambda v: v if v in OUTCOME_CHOICES else None, "请从列表中选择结果"),
    "reason": (lambda v: v if _REASON.fullmatch(v) else None, "原因代码格式不正确"),
    "before": (lambda v: int(v) if _SEQ.fullmatch(v) else None, "翻页位置无效，请从第一页开始"),
}


def read_query(query: Mapping[str, str], names: Sequence[str]) -> Query:
    """The fields *names* of a query string, each checked; a bad one is a field error,
    never passed on."""
    q = Query()
    for name in names:
        value = query.get(name, "").strip()
        if value:
            q.form[name] = value
    for name, (read, message) in _READERS.items():
        if name in q.form:
            value = read(q.form[name])
            if value is None:
                q.errors[name] = message
            else:
                q.values[name] = value
    for name in ("since", "until"):
        if name in q.form:
            try:
                q.values[name] = parse_local(q.form[name])
            except ValueError:
                q.errors[name] = "时间格式应为 2026-01-01T08:00（北京时间）"
    since, until = q.values.get("since"), q.values.get("until")
    if since is not None and until is not None and since >= until:
        q.errors["until"] = "结束时间应晚于开始时间"
    return q


LIST_FIELDS = ("kind", "account", "source", "outcome", "reason", "since", "until", "before")


def parse_login_filters(
    query: Mapping[str, str],
) -> tuple[LoginFilters, int | None, Mapping[str, str]]:
    """The logins list's query string as (filters, before_seq, errors): what an export
    of the same view reads, so that it holds exactly the rows the view shows.  Use
    the filters only when *errors* (Chinese, by field) is empty."""
    q = read_query(query, LIST_FIELDS)
    return q.filters(), q.values.get("before"), q.errors


def link_time(ts: float) -> str:
    """An instant for a link's query string (Beijing time, to the second)."""
    return local_datetime(ts).strftime("%Y-%m-%dT%H:%M:%S")


def _when(ts: float | None) -> str:
    return shown(ts, seconds=True, offset=True)


def login_cells(row: LoginRow) -> dict[str, Any]:
    """*row* by :data:`LOGIN_COLUMNS`, its time in Beijing time with the offset."""
    return {
        "seq": row.seq,
        "time": audit.iso_time(row.at, CHINA_TIME),
        "action": row.action,
        "account": row.account,
        "outcome": row.outcome,
        "reason": row.reason,
        "source": row.source,
        "peer": row.peer,
        "unit": row.unit,
        "session_id": row.session_id,
        "certificate": row.certificate,
    }


def failure_cells(row: tuple[str, FailureGroup]) -> dict[str, Any]:
    """A row of a failures table by :data:`FAILURE_COLUMNS`."""
    grouping, g = row
    return {
        "grouping": grouping,
        "key": g.key,
        "attempts": g.attempts,
        "others": g.others,
        "first_at": audit.iso_time(g.first_at, CHINA_TIME),
        "last_at": audit.iso_time(g.last_at, CHINA_TIME),
    }


def check_reason(reason: str) -> str:
    """The error (Chinese) for an unlock reason, or ``""``."""
    if not reason:
        return "请填写解除锁定的原因"
    return web.note_problem(reason, what="解除锁定的原因", max_chars=MAX_REASON)


# -- store functions (on the database pool) ----------------------------------------------


def _page(conn: Connection, f: LoginFilters, before: int | None) -> tuple[list[LoginRow], bool]:
    rows = login_rows(conn, f, before, PAGE_SIZE + 1)
    return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE


def _export_batch(
    conn: Connection, before: int, *, filters: LoginFilters
) -> tuple[list[LoginRow], int | None]:
    """The next batch below *before*, newest first, and where the next one starts."""
    rows = login_rows(conn, filters, before, EXPORT_BATCH)
    return rows, (rows[-1].seq if len(rows) == EXPORT_BATCH else None)


@dataclass(frozen=True)
class Failures:
    """What the failures page shows: both tables and the range's totals."""

    accounts: Sequence[FailureGroup]
    sources: Sequence[FailureGroup]
    attempts: int
    failed: int


def failure_summary(
    conn: Connection, *, since: float, until: float, kind: str | None = None
) -> Failures:
    """The failures page's reads (blocking, on the database pool): the attempts and
    failures of ``[since, until)`` and the two tables."""
    attempts, failed = failure_totals(conn, since=since, until=until)
    return Failures(
        accounts=failures_by_account(conn, since=since, until=until, kind=kind),
        sources=failures_by_source(conn, since=since, until=until, kind=kind),
        attempts=attempts,
        failed=failed,
    )


def _failure_rows(
    conn: Connection, _cursor: None, *, since: float, until: float, kind: str | None
) -> tuple[list[tuple[str, FailureGroup]], None]:
    """Both tables of the failures page, in one batch (each at most ``MAX_GROUPS``)."""
    return [
        *(("account", g) for g in failures_by_account(conn, since=since, until=until, kind=kind)),
        *(("source", g) for g in failures_by_source(conn, since=since, until=until, kind=kind)),
    ], None


@dataclass(frozen=True)
class FailureRange:
    """The failures page's range as read from its query string (``errors`` by field)."""

    form: dict[str, str]
    errors: dict[str, str]
    since: float
    until: float
    kind: str | None

    @property
    def span(self) -> dict[str, str]:
        """The range as a link carries it, so a later click counts the same range."""
        return {
            "since": link_time(math.floor(self.since)),
            "until": link_time(math.ceil(self.until)),
        }


def read_failure_range(query: Mapping[str, str], now: float) -> FailureRange:
    """The kind and ``[since, until)`` of the failures page (the last 24 hours to
    *now* unless given, at most :data:`MAX_FAILURE_DAYS` days), each checked."""
    q = read_query(query, ("kind", "since", "until"))
    until = q.values.get("until", float(math.ceil(now)))
    since = q.values.get("since", until - DAY)
    if since >= until and "until" not in q.errors:
        q.errors["since"] = "开始时间应早于结束时间"
    elif until - since > MAX_FAILURE_DAYS * DAY:
        q.errors["since"] = f"统计范围最长 {MAX_FAILURE_DAYS} 天，请缩短时间范围"
    return FailureRange(q.form, q.errors, since, until, q.values.get("kind"))


@dataclass(frozen=True)
class Locked:
    accounts: Sequence[auth.CredentialState]
    sources: Sequence[auth.ThrottledSource]


def _locked(conn: Connection, *, now: float, policy: auth.LockoutPolicy) -> Locked:
    return Locked(
        accounts=auth.locked_principals(conn, now=now),
        sources=auth.throttled_sources(conn, now=now, policy=policy),
    )


def _credential(conn: Connection, account: str) -> auth.CredentialState | None:
    state = auth.get_credential_state(conn, account)
    return state if state is not None and state.kind == "account" else None


def lock_cause(state: auth.CredentialState, now: float) -> str:
    """Why *state* is locked, in words with its code."""
    if state.hard_locked:
        return "失败次数达到上限（hard-cap），须人工解除"
    if state.locked_until_at is not None and state.locked_until_at > now:
        return f"连续失败达到阈值（threshold），第 {state.lock_count} 次锁定"
    return "未锁定"


def _reason_words(
    gateway_reasons: Mapping[str, str],
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """(every reason code in words, the codes a login can have for the filter)."""
    texts = {**gateway_reasons, **CONSOLE_REASONS}
    login_codes = {*CHANNEL_LOGIN_CODES, *CONSOLE_REASONS}
    return texts, sorted((k, texts.get(k, k)) for k in login_codes)


# -- exports -----------------------------------------------------------------------------


def list_exporter(fmt: str, listing: web.ConsoleHandler) -> web.ConsoleHandler:
    """The list's export in *fmt*; a bad filter answers as *listing* does."""

    async def export(ctx: StaffCtx) -> Response:
        q = read_query(ctx.query, LIST_FIELDS)
        q.errors.pop("before", None)  # an export holds every page: no cursor
        if q.errors:
            return await listing(ctx)
        filters = q.filters()

        def reader(conn: Connection, before: int) -> tuple[list[LoginRow], int | None]:
            return _export_batch(conn, before, filters=filters)

        # Bounded by the newest record before the export's own audit event: the
        # download holds what the view showed, not what is appended meanwhile.
        upto: int = await ctx.runner.run(audit.last_seq)
        spec = ExportSpec(LOGIN_COLUMNS, login_cells, reader)
        form = {k: v for k, v in q.form.items() if k != "before"}
        return await export_view(ctx, spec, view="logins", fmt=fmt, filters=form, start=upto + 1)

    return export


def failures_exporter(fmt: str, failures: web.ConsoleHandler) -> web.ConsoleHandler:
    """The failures tables' export in *fmt*; a bad range answers as *failures* does."""

    async def export(ctx: StaffCtx) -> Response:
        r = read_failure_range(ctx.query, ctx.now)
        if r.errors:
            return await failures(ctx)

        def reader(conn: Connection, cursor: None) -> tuple[list[tuple[str, FailureGroup]], None]:
            return _failure_rows(conn, cursor, since=r.since, until=r.until, kind=r.kind)

        spec = ExportSpec(FAILURE_COLUMNS, failure_cells, reader)
        filters = {**({"kind": r.kind} if r.kind else {}), **r.span}
        return await export_view(ctx, spec, view="logins-failures", fmt=fmt, filters=filters)

    return export


# -- the section ---------------------------------------------------------------------------


def logins_section(
    unlock: AccountUnlock | None,
    *,
    reasons: Mapping[str, str] | None = None,
    lockout: auth.LockoutPolicy | None = None,
) -> web.ConsoleSection:
    """The officers' login pages (see the module docstring) as a console section.

    *unlock* is the carriers' unlock workflow (None: the pages say it is not
    available here); *reasons* the gateway's reason codes in the words staff read
    (``SessionRegistry.reasons``, ``gateway.REASON_WORDS``); *lockout* the policy the
    authenticator runs with (for the throttled sources' windows).
    """
    reason_texts, reason_choices = _reason_words(reasons or {})
    policy = lockout or auth.LockoutPolicy()

    def reason_text(code: str) -> str:
        if not code:
            return "—"
        words = reason_texts.get(code)
        return f"{words}（{code}）" if words else code

    def page(
        ctx: StaffCtx, template: str, title: str, status: int = 200, **values: Any
    ) -> Response:
        return ctx.page(
            f"logins/{template}",
            status,
            title=title,
            current=LOGINS,
            when=_when,
            reason_text=reason_text,
            action_text=ACTION_TEXT,
            outcome_text=OUTCOME_TEXT,
            kind_text=KIND_TEXT,
            **values,
        )

    async def listing(ctx: StaffCtx) -> Response:
        q = read_query(ctx.query, LIST_FIELDS)
        rows: Sequence[LoginRow] = ()
        more = False
        before = q.values.get("before")
        if not q.errors:
            rows, more = await ctx.runner.run(_page, q.filters(), before)
        form = {k: v for k, v in q.form.items() if k != "before"}
        next_link = ""
        if more and rows:
            next_link = LOGINS + "?" + urlencode({**form, "before": rows[-1].seq})
        return page(
            ctx,
            "list.html",
            "登录审计",
            400 if q.errors else 200,
            rows=rows,
            form=form,
            errors=q.errors,
            reasons=reason_choices,
            first_page=before is not None,
            first_link=LOGINS + ("?" + urlencode(form) if form else ""),
            next_link=next_link,
            export_query=urlencode(form),
            page_size=PAGE_SIZE,
        )

    async def failures(ctx: StaffCtx) -> Response:
        r = read_failure_range(ctx.query, ctx.now)
        found: Failures | None = None
        if not r.errors:
            found = await ctx.runner.run(failure_summary, since=r.since, until=r.until, kind=r.kind)
        span = r.span
        kind = {"kind": r.kind} if r.kind is not None else {}

        def list_link(**more: str) -> str:
            return LOGINS + "?" + urlencode({**kind, **more, "outcome": "not-ok", **span})

        return page(
            ctx,
            "failures.html",
            "登录失败统计",
            400 if r.errors else 200,
            form={**r.form, **{k: v for k, v in span.items() if k not in r.form}},
            errors=r.errors,
            found=found,
            since=r.since,
            until=r.until,
            list_link=list_link,
            export_query=urlencode({**kind, **span}),
        )

    async def locked(ctx: StaffCtx) -> Response:
        found: Locked = await ctx.runner.run(_locked, now=ctx.now, policy=policy)
        return page(
            ctx,
            "locked.html",
            "锁定的账号",
            found=found,
            cause=lambda s: lock_cause(s, ctx.now),
            can_unlock=unlock is not None,
            is_address=lambda text: _address(text) is not None,
            notice=_DONE.get(ctx.query.get("done", ""), ""),
            since_link=link_time(math.floor(ctx.now - DAY)),
        )

    async def confirm(
        ctx: StaffCtx,
        account: str,
        *,
        reason: str = "",
        error: str = "",
        field_error: str = "",
        status: int = 200,
    ) -> Response:
        state = await ctx.runner.run(_credential, account)
        if state is None:
            return page(ctx, "missing.html", "账号不存在", 404, account=account)
        return page(
            ctx,
            "unlock.html",
            f"解除锁定：{account}",
            status,
            account=account,
            state=state,
            cause=lock_cause(state, ctx.now),
            can_unlock=unlock is not None,
            reason=reason,
            error=error,
            field_error=field_error,
            max_reason=MAX_REASON,
        )

    async def unlock_form(ctx: StaffCtx, account: str) -> Response:
        return await confirm(ctx, account)

    async def unlock_account(ctx: StaffCtx, account: str) -> Response:
        reason = ctx.form.get("reason", "").strip()
        if unlock is None:
            return await confirm(
                ctx, account, reason=reason, error="本控制台未配置解除锁定功能。", status=409
            )
        problem = check_reason(reason)
        if problem:
            return await confirm(
                ctx,
                account,
                reason=reason[:MAX_REASON],
                error="请按提示修改后再确认。",
                field_error=problem,
                status=400,
            )
        try:
            await ctx.runner.call(
                unlock,
                account,
                reason=reason,
                actor=ctx.staff.audit_actor,
                session_ref=ctx.session_ref,
            )
        except UnlockRefused as refused:
            message = UNLOCK_REFUSALS.get(refused.reason, "未能解除锁定。")
            return await confirm(ctx, account, reason=reason, error=message, status=409)
        return web.see_other(f"{LOGINS}/locked?done=unlock")

    roles = ("officer",)
    unlock_path = f"{LOGINS}/locked/<login_account:account>/unlock"
    return web.ConsoleSection(
        path=LOGINS,
        title="登录审计",
        roles=roles,
        routes=(
            web.Route("GET", LOGINS, roles, listing),
            web.Route("GET", f"{LOGINS}/failures", roles, failures),
            *(
                web.Route("GET", f"{LOGINS}/export.{fmt}", roles, list_exporter(fmt, listing))
                for fmt in FORMATS
            ),
            *(
                web.Route(
                    "GET",
                    f"{LOGINS}/failures/export.{fmt}",
                    roles,
                    failures_exporter(fmt, failures),
                )
                for fmt in FORMATS
            ),
            web.Route("GET", f"{LOGINS}/locked", roles, locked),
            web.Route("GET", unlock_path, roles, unlock_form),
            web.Route("POST", unlock_path, roles, unlock_account),
        ),
        templates=PackageLoader("oversight", "templates"),
        converters={"login_account": ACCOUNT_PATH},
    )
