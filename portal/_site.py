"""The personal portal's site: routes, the gate in front of them, and the pages.

One route table (``portal``) with two roles: ``public`` (the login page, the style
sheet and ``/verify/CODE``) and ``person`` (everything else).  The gate, per request:
path segments harmless (else 400) → the session from the ``__Host-`` cookie (none or
expired → 303 to ``/login``) → while the initial password is unchanged, only
``/password`` and ``/logout`` → on a write, Origin/Referer and the session's CSRF
token (403, audited) → the handler.

Whose data a page shows comes only from the session row (principal → 个人编号 of the
account opened at the counter); no route takes a person, an ID number or a 个人编号
from the request, so another person's data cannot be named.  Every view is an audit
event (``portal.view``) in the same transaction as its read; the actor is the
account's principal ``person:<ref>``, never the ID number.

Logins: ID number + password + one-time code through :class:`auth.Authenticator`
with ``kind="person"`` — the same lockout, TOTP replay guard and per-source throttle
as the channel and the console.  An ID number without an account is checked as an
unknown principal (the authenticator burns the same argon2 cost).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from importlib.resources import files
from typing import Any, Protocol

from jinja2 import Environment, PackageLoader, StrictUndefined
from sqlalchemy import Connection
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger

import audit
import auth
import web
from declare_app._china_time import CHINA_TIME
from declare_app._contributions import Insurance
from declare_app.interfaces import Status
from web._routes import Route, RoutedResource, RouteTable

from ._accounts import normalise_id_number, principal_of
from ._certificates import (
    INSURANCE_NAMES,
    certificate_content,
    certificate_pdf,
    count_verify_failure,
    find_certificate,
    new_code,
    normalise_code,
    store_certificate,
    verify_throttled,
)
from ._records import LedgerRecords, LineFilters, csv_heading
from ._sessions import (
    PortalSession,
    SessionPolicy,
    end_session,
    find_session,
    password_changed,
    start_session,
)

PUBLIC = "public"
PERSON = "person"
ROLES = frozenset({PUBLIC, PERSON})
MAX_BODY = 16 * 1024
MAX_FIELDS = 32
MAX_PASSWORD = 1024
MAX_OTP = 16
UNKNOWN_PRINCIPAL = "person:(unknown)"
SITE_TITLE = "社会保险个人服务"
REFUSED = (
    "登录失败：身份证号、密码或动态口令不正确，或账户暂时不能登录。"
    "请核对后重试；如多次失败，请携带身份证件到经办窗口办理。"
)
_MONTH = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")
_UNIT = re.compile(r"^[0-9]{8}$")
_YEAR = re.compile(r"^(19|20)[0-9]{2}$")
# Pages a person may open while the initial password is unchanged.
_BEFORE_CHANGE = frozenset({"/password", "/logout"})


class PersonAuthenticator(Protocol):
    """:class:`auth.Authenticator` as the portal uses it (blocking)."""

    def authenticate(
        self, principal: str, password: str, otp: str, *, source: str, now: float, kind: str = ...
    ) -> auth.AuthOutcome: ...

    def change_password(
        self,
        principal: str,
        old_password: str,
        otp: str,
        new_password: str,
        *,
        source: str,
        now: float,
        kind: str = ...,
    ) -> auth.AuthOutcome: ...


@dataclass
class PersonCtx:
    """One admitted request: the session (whose data), what was sent, when, from where."""

    request: Any
    session: PortalSession | None
    source: str
    now: float
    query: Mapping[str, str]
    form: Mapping[str, str] = field(default_factory=dict)

    @property
    def principal(self) -> str:
        assert self.session is not None
        return self.session.principal

    @property
    def person_number(self) -> str:
        assert self.session is not None
        return self.session.person_number


class PortalShell:
    """The portal's dispatcher (:class:`web.Dispatcher`) and its pages."""

    log = Logger()

    def __init__(
        self,
        *,
        authenticator: PersonAuthenticator,
        runner: auth.Runner,
        clock: IReactorTime,
        form_key: bytes,
        random_bytes: Callable[[int], bytes],
        records: LedgerRecords | None = None,
        policy: SessionPolicy | None = None,
        secure: bool = True,
        refusal_delay: float = 1.0,
    ) -> None:
        if len(form_key) < 16:
            raise ValueError("the login form key must be at least 16 bytes")
        self._authenticator = authenticator
        self.runner = runner
        self._clock = clock
        self._form_key = form_key
        self._random = random_bytes
        self.records = records or LedgerRecords()
        self.policy = policy or SessionPolicy()
        self._secure = secure
        self._refusal_delay = refusal_delay
        prefix = "__Host-" if secure else ""
        self.session_cookie = prefix + "ssgate-portal"
        self.prelogin_cookie = prefix + "ssgate-portal-login"
        self.templates = Environment(
            loader=PackageLoader("portal", "templates"),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        self.templates.filters["yuan"] = lambda v: f"{v:,.2f}"
        self.table = RouteTable(
            site="portal",
            roles=ROLES,
            max_body=MAX_BODY,
            converters={"code": r"[A-Za-z0-9]{1,64}"},
            routes=(
                Route("GET", "/login", (PUBLIC,), self._login_form),
                Route("POST", "/login", (PUBLIC,), self._login),
                Route("GET", "/static/portal.css", (PUBLIC,), self._style),
                Route("GET", "/verify/<code:code>", (PUBLIC,), self._verify),
                Route("POST", "/logout", (PERSON,), self._logout),
                Route("GET", "/password", (PERSON,), self._password_form),
                Route("POST", "/password", (PERSON,), self._password),
                Route("GET", "/", (PERSON,), self._home),
                Route("GET", "/enrolments", (PERSON,), self._enrolments),
                Route("GET", "/contributions", (PERSON,), self._contributions),
                Route("GET", "/contributions.csv", (PERSON,), self._contributions_csv),
                Route("GET", "/account", (PERSON,), self._account),
                Route("GET", "/retirement", (PERSON,), self._retirement),
                Route("GET", "/declarations", (PERSON,), self._declarations),
                Route("GET", "/certificate", (PERSON,), self._certificate_form),
                Route("POST", "/certificate", (PERSON,), self._certificate),
            ),
        )

    # -- the dispatcher -------------------------------------------------------------------

    async def handle(  # noqa: PLR0911 - the gate, in order
        self, request: Any, route: Route, params: Mapping[str, str]
    ) -> web.Response:
        try:
            web.check_path(request.path)
            ctx = PersonCtx(
                request,
                None,
                web.client_source(request),
                self._clock.seconds(),
                web.query_values(request.uri, max_fields=MAX_FIELDS),
            )
            if PUBLIC in route.roles:
                return await route.handler(ctx, **params)
            found = await self._session(request, ctx.now)
            if found is None:
                return web.see_other("/login")
            ctx.session = found
            if found.must_change_password and route.path not in _BEFORE_CHANGE:
                return web.see_other("/password")
            if route.method != "GET":
                refused = await self._check_write(request, ctx)
                if refused is not None:
                    return refused
            return await route.handler(ctx, **params)
        except web.MalformedInput:
            return self.message(400, "请求无效", "请求格式不正确，请返回后重试。")
        except Exception as e:
            if web.is_outage(e):
                return self.message(
                    503, "暂停服务", web.OUTAGE_MESSAGE, headers=web.retry_after_headers()
                )
            self.log.failure("portal request failed: {path}", path=web.log_text(request.path))
            return self.message(500, "系统错误", "系统暂时无法处理该请求，请稍后再试。")

    async def unrouted(self, request: Any, status: int, allowed: Any) -> web.Response:
        if status == 405:
            return self.message(
                405,
                "不支持的请求",
                "不支持该请求方法。",
                headers=((b"Allow", ", ".join(allowed).encode("ascii")),),
            )
        return self.message(404, "页面不存在", "您访问的页面不存在。")

    def site(self, *, access_log: Callable[[str], None] | None = None) -> web.WebSite:
        routed = RoutedResource(self.table, self, tls=self._secure)
        return web.WebSite(
            routed.resource(),
            reactor=self._clock,
            body_limit=routed.body_limit,
            too_large=lambda path, limit: web.Response(413, b"", b"text/plain; charset=utf-8"),
            security_headers=web.security_headers(tls=self._secure),
            access_log=access_log,
        )

    # -- the gate ---------------------------------------------------------------------------

    async def _session(self, request: Any, now: float) -> PortalSession | None:
        session_id = self._cookie(request, self.session_cookie)
        if not session_id:
            return None
        found: PortalSession | None = await self.runner.run(
            find_session, session_id, now=now, policy=self.policy
        )
        return found

    async def _check_write(self, request: Any, ctx: PersonCtx) -> web.Response | None:
        form = _form(request)
        assert ctx.session is not None
        refusal = web.write_refusal(request, ctx.session.csrf_token, form)
        if refusal is not None:
            await self.audit(
                ctx,
                "portal.csrf",
                "refused",
                reason=refusal,
                details={"path": web.log_text(request.path)[:100]},
            )
            return self.message(
                403, "请求已失效", "表单已过期或来源不明，操作未执行。请刷新页面后重试。"
            )
        ctx.form = {k: v for k, v in form.items() if k != web.CSRF_FIELD}
        return None

    # -- login, logout, password -------------------------------------------------------------

    async def _login_form(self, ctx: PersonCtx) -> web.Response:
        if await self._session(ctx.request, ctx.now) is not None:
            return web.see_other("/")
        return self._login_page(ctx, 200)

    def _login_page(self, ctx: PersonCtx, status: int, message: str = "") -> web.Response:
        prelogin = self._cookie(ctx.request, self.prelogin_cookie)
        cookies: tuple[web.Cookie, ...] = ()
        if not prelogin:
            prelogin = web.new_token(self._random)
            cookies = (web.Cookie(self.prelogin_cookie, prelogin),)
        page = self.render(
            "login.html",
            status,
            None,
            title="登录",
            form_token=self._form_token(prelogin),
            message=message,
        )
        return web.Response(page.status, page.body, page.content_type, cookies=cookies)

    async def _login(self, ctx: PersonCtx) -> web.Response:
        request, now, source = ctx.request, ctx.now, ctx.source
        form = _form(request)
        prelogin = self._cookie(request, self.prelogin_cookie)
        cross = not web.origin_allowed(
            request.getHeader(b"origin"), request.getHeader(b"referer"), request.getHeader(b"host")
        )
        token_ok = bool(prelogin) and web.same_token(
            self._form_token(prelogin), form.get(web.CSRF_FIELD, "")
        )
        if cross or not token_ok:
            await self._audit_at(
                now,
                UNKNOWN_PRINCIPAL,
                "portal.login",
                "refused",
                reason="cross-origin" if cross else "csrf-token",
                details={"source": source},
            )
            return self._login_page(ctx, 403, "登录页面已过期，请重新输入后登录。")
        number = normalise_id_number(form.get("id_number", ""))
        password, otp = form.get("password", ""), form.get("otp", "").strip()
        found = None if number is None else await self.runner.run(principal_of, number)
        principal = found[0] if found else UNKNOWN_PRINCIPAL
        if len(password) > MAX_PASSWORD or len(otp) > MAX_OTP:
            outcome_reason: str | None = "bad-input"
        else:
            outcome: auth.AuthOutcome = await self.runner.call(
                self._authenticator.authenticate,
                principal,
                password,
                otp,
                source=source,
                now=now,
                kind="person",
            )
            outcome_reason = None if outcome.ok else outcome.reason
        del password, otp
        if outcome_reason is not None or found is None:
            await self._audit_at(
                now,
                principal,
                "portal.login",
                "refused",
                reason=outcome_reason or "unknown-account",
                details={"source": source},
            )
            self.log.warn("portal login refused from {source}", source=source)
            if self._refusal_delay > 0:
                await deferLater(self._clock, self._refusal_delay, lambda: None)
            return self._login_page(ctx, 403, REFUSED)
        session_id = web.new_token(self._random)
        replaces = self._cookie(request, self.session_cookie)
        session = await self.runner.run(
            _open, principal, session_id, now=now, replaces=replaces, source=source
        )
        if session is None:
            return self._login_page(ctx, 403, REFUSED)
        self.log.info("portal login: {who} from {source}", who=principal, source=source)
        return web.see_other(
            "/password" if session.must_change_password else "/",
            cookies=(
                web.Cookie(self.session_cookie, session_id),
                web.Cookie(self.prelogin_cookie, "", 0),
            ),
        )

    async def _logout(self, ctx: PersonCtx) -> web.Response:
        session_id = self._cookie(ctx.request, self.session_cookie)
        await self.runner.run(end_session, session_id)
        await self.audit(ctx, "portal.logout", "ok")
        return web.see_other("/login", cookies=(web.Cookie(self.session_cookie, "", 0),))

    async def _password_form(self, ctx: PersonCtx) -> web.Response:
        return self.page(ctx, "password.html", title="修改密码", message="")

    async def _password(self, ctx: PersonCtx) -> web.Response:
        form = ctx.form
        new = form.get("new_password", "")
        if new != form.get("new_password2", ""):
            return self.page(
                ctx, "password.html", 400, title="修改密码", message="两次输入的新密码不一致。"
            )
        old, otp = form.get("password", ""), form.get("otp", "").strip()
        if len(old) > MAX_PASSWORD or len(new) > MAX_PASSWORD or len(otp) > MAX_OTP:
            return self.page(ctx, "password.html", 400, title="修改密码", message="输入过长。")
        try:
            outcome: auth.AuthOutcome = await self.runner.call(
                self._authenticator.change_password,
                ctx.principal,
                old,
                otp,
                new,
                source=ctx.source,
                now=ctx.now,
                kind="person",
            )
        except auth.WeakPasswordError as e:
            await self.audit(ctx, "portal.password", "refused", reason="weak-password")
            return self.page(
                ctx, "password.html", 400, title="修改密码", message=f"新密码不符合要求：{e}"
            )
        if not outcome.ok:
            await self.audit(ctx, "portal.password", "refused", reason=outcome.reason)
            return self.page(
                ctx,
                "password.html",
                403,
                title="修改密码",
                message="当前密码或动态口令不正确（同一动态口令只能使用一次，请等待下一个）。",
            )
        await self.runner.run(_changed, ctx.principal, ctx.session, now=ctx.now)
        return web.see_other("/")

    # -- pages ------------------------------------------------------------------------------

    async def _home(self, ctx: PersonCtx) -> web.Response:
        summary = await self._view(
            ctx, "home", lambda conn: self.records.summary(conn, ctx.person_number)
        )
        return self.page(ctx, "home.html", title="首页", person=summary)

    async def _enrolments(self, ctx: PersonCtx) -> web.Response:
        rows = await self._view(
            ctx, "enrolments", lambda conn: self.records.enrolments(conn, ctx.person_number)
        )
        return self.page(ctx, "enrolments.html", title="参保记录", rows=rows, names=INSURANCE_NAMES)

    def _filters(self, ctx: PersonCtx) -> dict[str, str | None] | None:
        q = ctx.query
        out: dict[str, str | None] = {}
        for key, shape in (("from", _MONTH), ("to", _MONTH), ("unit", _UNIT)):
            value = q.get(key, "").strip()
            if value and not shape.fullmatch(value):
                return None
            out[key] = value or None
        insurance = q.get("insurance", "").strip()
        if insurance and insurance not in INSURANCE_NAMES:
            return None
        out["insurance"] = insurance or None
        return out

    async def _ledger(self, ctx: PersonCtx) -> Any:
        filters = self._filters(ctx)
        if filters is None:
            raise web.MalformedInput("bad-filter", "bad filter")
        wanted = ctx.query.get("year", "").strip()
        if wanted and not _YEAR.fullmatch(wanted):
            raise web.MalformedInput("bad-year", "bad year")
        details: dict[str, Any] = {k: v for k, v in filters.items() if v is not None}
        details["year"] = wanted or "latest"
        result = await self._view(
            ctx,
            "contributions",
            lambda conn: self.records.contributions(
                conn,
                ctx.person_number,
                from_month=filters["from"],
                to_month=filters["to"],
                insurance=filters["insurance"],
                unit_code=filters["unit"],
                year=int(wanted) if wanted else None,
            ),
            details,
        )
        return filters, result

    async def _contributions(self, ctx: PersonCtx) -> web.Response:
        filters, result = await self._ledger(ctx)
        query = _query_text(filters)
        return self.page(
            ctx,
            "contributions.html",
            title="缴费记录",
            result=result,
            filters=filters,
            names=INSURANCE_NAMES,
            csv_query=query,
            year_query=query + "&" if query else "",
        )

    async def _contributions_csv(self, ctx: PersonCtx) -> web.Response:
        """Every line of the filter as CSV, streamed in spans of years (oldest first,
        up to ``CSV_PIECE_LINES`` lines a piece): each piece one bounded read and its
        rows written on the database's thread,
        asked for only when the client's connection wants more, so the download has
        no line cap and holds one piece in memory.  One audit event, before the first
        byte."""
        given = self._filters(ctx)
        if given is None:
            raise web.MalformedInput("bad-filter", "bad filter")
        filters = LineFilters(given["from"], given["to"], given["insurance"], given["unit"])
        person_number = ctx.person_number
        spans = list(
            await self._view(
                ctx,
                "contributions.csv",
                lambda conn: self.records.csv_years(conn, person_number, filters),
                {k: v for k, v in given.items() if v is not None},
            )
        )
        head = [csv_heading()]

        async def chunks() -> bytes:
            if head:
                return head.pop()
            if not spans:
                return b""
            piece: bytes = await self.runner.run(
                self.records.csv_piece, person_number, filters, spans.pop(0)
            )
            return piece

        return web.download("text/csv; charset=utf-8", "contributions.csv", chunks)

    async def _account(self, ctx: PersonCtx) -> web.Response:
        wanted = ctx.query.get("year", "").strip()
        if wanted and not _YEAR.fullmatch(wanted):
            raise web.MalformedInput("bad-year", "bad year")
        today = datetime.fromtimestamp(ctx.now, CHINA_TIME)

        def read(conn: Connection) -> tuple[tuple[int, ...], Any]:
            years = self.records.statement_years(conn, ctx.person_number)
            year = int(wanted) if wanted else (years[-1] if years else today.year)
            return years, self.records.statement(conn, ctx.person_number, year)

        years, statement = await self._view(ctx, "account", read, {"year": wanted or "latest"})
        return self.page(
            ctx,
            "account.html",
            title="养老个人帐户对帐单",
            years=years,
            statement=statement,
            provisional=statement is not None and statement.year >= today.year,
        )

    async def _retirement(self, ctx: PersonCtx) -> web.Response:
        summary = await self._view(
            ctx, "retirement", lambda conn: self.records.summary(conn, ctx.person_number)
        )
        info = self.records.retirement(summary) if summary is not None else None
        return self.page(ctx, "retirement.html", title="退休年龄", info=info)

    async def _declarations(self, ctx: PersonCtx) -> web.Response:
        def read(conn: Connection) -> Any:
            id_number = self.records.id_number(conn, ctx.person_number) or ""
            return self.records.declarations(conn, ctx.person_number, id_number)

        rows = await self._view(ctx, "declarations", read)
        return self.page(
            ctx,
            "declarations.html",
            title="与我有关的申报",
            rows=rows,
            applied=Status.APPLIED.chinese,
            when=lambda at: (
                ""
                if at is None
                else datetime.fromtimestamp(at, CHINA_TIME).strftime("%Y-%m-%d %H:%M")
            ),
        )

    async def _certificate_form(self, ctx: PersonCtx) -> web.Response:
        today = datetime.fromtimestamp(ctx.now, CHINA_TIME)
        return self.page(
            ctx,
            "certificate.html",
            title="开具参保证明",
            message="",
            default_from=f"{today.year - 1:04d}-01",
            default_to=f"{today.year:04d}-{today.month:02d}",
        )

    async def _certificate(self, ctx: PersonCtx) -> web.Response:
        start, end = ctx.form.get("from", "").strip(), ctx.form.get("to", "").strip()
        if not (_MONTH.fullmatch(start) and _MONTH.fullmatch(end)) or start > end:
            return self.page(
                ctx,
                "certificate.html",
                400,
                title="开具参保证明",
                message="请填写正确的起止年月（YYYY-MM，起不晚于止）。",
                default_from=start,
                default_to=end,
            )
        code = new_code(self._random)
        host = web.log_text(ctx.request.getHeader(b"host")) or "localhost"
        verify_url = f"https://{host}/verify/{code}"

        def issue(conn: Connection) -> bytes | None:
            summary = self.records.summary(conn, ctx.person_number)
            if summary is None:
                return None
            enrolments = [
                {
                    "unit_name": e.unit_name,
                    "insurance_name": INSURANCE_NAMES[e.insurance.value],
                    "start_month": e.start_month,
                    "end_month": e.end_month,
                    "status": e.status_text,
                }
                for e in self.records.enrolments(conn, ctx.person_number)
                if e.start_month <= end and (e.end_month is None or e.end_month >= start)
            ]
            content = certificate_content(
                name=summary.name,
                masked_id=summary.masked_id,
                from_month=start,
                to_month=end,
                enrolments=enrolments,
                paid_months=self.records.paid_months(conn, ctx.person_number, start, end),
                issued_at=ctx.now,
            )
            pdf = certificate_pdf(content, code=code, verify_url=verify_url)
            store_certificate(
                conn,
                code=code,
                principal=ctx.principal,
                person_number=ctx.person_number,
                content=content,
                pdf=pdf,
                issued_at=ctx.now,
            )
            audit.append_event(
                conn,
                at=ctx.now,
                actor=ctx.principal,
                action="portal.certificate",
                subject=ctx.principal,
                outcome="ok",
                session_ref=ctx.session.ref if ctx.session else "",
                details={
                    "from": start,
                    "to": end,
                    "code_sha256": hashlib.sha256(code.encode()).hexdigest()[:16],
                },
            )
            return pdf

        pdf = await self.runner.run(issue)
        if pdf is None:
            return self.message(404, "无记录", "未找到您的参保记录。")
        return web.attachment("application/pdf", f"canbao-zhengming-{code}.pdf", pdf)

    async def _verify(self, ctx: PersonCtx, code: str) -> web.Response:
        normal = normalise_code(code)
        subject = "certificate:" + (
            hashlib.sha256(normal.encode()).hexdigest()[:16] if normal else "(malformed)"
        )

        def look(conn: Connection) -> tuple[str, Any]:
            if verify_throttled(conn, ctx.source, now=ctx.now):
                outcome = "throttled"
                record = None
            else:
                record = find_certificate(conn, normal) if normal else None
                if record is None:
                    count_verify_failure(conn, ctx.source, now=ctx.now)
                outcome = "found" if record is not None else "not-found"
            audit.append_event(
                conn,
                at=ctx.now,
                actor="public",
                action="portal.verify",
                subject=subject,
                outcome="ok" if outcome == "found" else "refused",
                reason="" if outcome == "found" else outcome,
                details={"source": ctx.source},
            )
            return outcome, record

        outcome, record = await self.runner.run(look)
        if outcome == "throttled":
            return self.message(
                429, "请求过多", "验证请求过多，请稍后再试。", headers=((b"Retry-After", b"3600"),)
            )
        if record is None:
            return self.message(
                404, "未找到", "未找到该验证码对应的参保证明（not found）。请核对验证码。"
            )
        return self.render(
            "verify.html",
            200,
            None,
            title="参保证明验证",
            record=record,
            valid=record.valid(ctx.now),
            names=INSURANCE_NAMES,
            issued=record.content.get("issued", ""),
        )

    async def _style(self, ctx: PersonCtx) -> web.Response:
        css = files("portal").joinpath("static/portal.css").read_bytes()
        return web.Response(200, css, b"text/css; charset=utf-8")

    # -- pieces ------------------------------------------------------------------------------

    async def _view(
        self,
        ctx: PersonCtx,
        page: str,
        read: Callable[[Connection], Any],
        details: Mapping[str, Any] | None = None,
    ) -> Any:
        """*read*'s result and its ``portal.view`` audit event, in one transaction."""
        session_ref = ctx.session.ref if ctx.session else ""

        def body(conn: Connection) -> Any:
            result = read(conn)
            audit.append_event(
                conn,
                at=ctx.now,
                actor=ctx.principal,
                action="portal.view",
                subject=page,
                outcome="ok",
                session_ref=session_ref,
                details={"source": ctx.source, **(details or {})},
            )
            return result

        return await self.runner.run(body)

    async def audit(
        self,
        ctx: PersonCtx,
        action: str,
        outcome: str,
        *,
        reason: str = "",
        details: Mapping[str, Any] | None = None,
    ) -> None:
        actor = ctx.principal if ctx.session else UNKNOWN_PRINCIPAL
        await self.runner.run(
            audit.append_event,
            at=ctx.now,
            actor=actor,
            action=action,
            subject=actor,
            outcome=outcome,
            reason=reason,
            session_ref=ctx.session.ref if ctx.session else "",
            details={"source": ctx.source, **(details or {})},
        )

    async def _audit_at(
        self,
        now: float,
        actor: str,
        action: str,
        outcome: str,
        *,
        reason: str = "",
        details: Mapping[str, Any] | None = None,
    ) -> None:
        await self.runner.run(
            audit.append_event,
            at=now,
            actor=actor,
            action=action,
            subject=actor,
            outcome=outcome,
            reason=reason,
            details=details,
        )

    def _form_token(self, prelogin: str) -> str:
        mac = hmac.new(
            self._form_key,
            b"portal-login\x00" + prelogin.encode("ascii", "replace"),
            hashlib.sha256,
        ).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")

    def _cookie(self, request: Any, name: str) -> str:
        return web.token_cookie(request, name)

    def render(
        self, template: str, status: int, ctx: PersonCtx | None, **values: Any
    ) -> web.Response:
        session = ctx.session if ctx is not None else None
        body = self.templates.get_template(template).render(
            site_title=SITE_TITLE,
            logged_in=session is not None and not session.must_change_password,
            csrf_token=session.csrf_token if session else "",
            **values,
        )
        return web.Response(status, body.encode("utf-8"))

    def page(self, ctx: PersonCtx, template: str, status: int = 200, **values: Any) -> web.Response:
        return self.render(template, status, ctx, **values)

    def message(
        self,
        status: int,
        title: str,
        message: str,
        *,
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> web.Response:
        page = self.render("message.html", status, None, title=title, message=message)
        return web.Response(page.status, page.body, page.content_type, headers)


def _open(
    conn: Connection, principal: str, session_id: str, *, now: float, replaces: str, source: str
) -> PortalSession | None:
    session = start_session(conn, principal, session_id, now=now, replaces=replaces)
    audit.append_event(
        conn,
        at=now,
        actor=principal,
        action="portal.login",
        subject=principal,
        outcome="ok" if session else "refused",
        reason="" if session else "account-closed",
        session_ref=session.ref if session else "",
        details={"source": source},
    )
    return session


def _changed(
    conn: Connection, principal: str, session: PortalSession | None, *, now: float
) -> None:
    password_changed(conn, principal, now=now)
    audit.append_event(
        conn,
        at=now,
        actor=principal,
        action="portal.password",
        subject=principal,
        outcome="ok",
        session_ref=session.ref if session else "",
    )


def _form(request: Any) -> Mapping[str, str]:
    return web.read_form(request, max_body=MAX_BODY, max_fields=MAX_FIELDS)


def _query_text(filters: Mapping[str, str | None]) -> str:
    from urllib.parse import urlencode

    return urlencode({k: v for k, v in filters.items() if v})


__all__ = ["PERSON", "PUBLIC", "Insurance", "PersonCtx", "PortalShell"]
