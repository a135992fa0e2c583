"""The staff console over HTTP: one twisted.web resource that does the shell's work.

Every request goes: method and size checks → path and query decoding → (login,
logout and the style sheet are the shell's own) → session lookup in the database with
idle and absolute timeouts, and the staff record re-read in the same transaction (a
disabled member or a changed role ends the session) → on POST, the form body and its
CSRF token → the page's role check → the page.  Every answer carries the security headers; any
bug in a page becomes a plain 500 page with nothing of the exception in it.

Blocking work never runs on the reactor: password hashing and TOTP go through
``runner.call`` (the login pool); sessions, staff look-ups and audit events through
``runner.run`` (one transaction on the database pool).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any, Protocol
from urllib.parse import parse_qsl, quote, unquote_to_bytes

from sqlalchemy import Connection
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

import audit
import auth
from auth.console import (
    CSRF_FIELD,
    ConsolePage,
    ConsoleRequest,
    ConsoleResult,
    Download,
    Page,
    Redirect,
    StaffMember,
    check_page,
    may_open,
)

from . import _templates
from ._sessions import LoginFormTokens, SessionPolicy, same_token

MAX_BODY_BYTES = 64 * 1024
MAX_FIELDS = 64
SITE_TITLE = "劳保安全专网 工作人员控制台"

# Login-form limits: longer input is refused without being hashed.
MAX_NAME = 64
MAX_PASSWORD = 1024
MAX_OTP = 16

_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # 256 bits, unpadded base64url

REFUSED_MESSAGE = "登录失败：用户名、密码或动态口令不正确，或账号暂时不能登录。请核对后重试。"

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


class StaffAuthenticator(Protocol):
    """:class:`auth.Authenticator`, as the console uses it (blocking)."""

    def authenticate(
        self,
        principal: str,
        password: str,
        otp: str,
        *,
        source: str,
        now: float,
        kind: str = ...,
    ) -> auth.AuthOutcome: ...


class ConsoleRunner(Protocol):
    """``ssgate._serve.Runner``: ``run`` = one transaction on the database pool,
    ``call`` = a plain call on the login (hashing) pool."""

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]: ...

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]: ...


class BadRequest(Exception):
    """The request cannot be read (bad encoding, repeated field…); answered 400."""


@dataclass
class Response:
    status: int
    body: bytes
    content_type: bytes = b"text/html; charset=utf-8"
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    cookies: list[tuple[str, str, int | None]] = field(default_factory=list)  # name, value, max-age


@dataclass(frozen=True)
class LoggedIn:
    """A request's live session and the staff member as just re-read from the store."""

    session_id: str = field(repr=False)
    session: auth.ConsoleSession
    staff: StaffMember
    source: str


# -- the request: bounded body ---------------------------------------------------------


class ConsoleHTTPRequest(Request):
    """A twisted.web request whose body is held in memory up to :data:`MAX_BODY_BYTES`;
    a bigger body gets 413 and the connection is closed while it is still arriving."""

    max_body = MAX_BODY_BYTES
    _body_size = 0
    _too_large = False

    def gotLength(self, length: int | None) -> None:
        self._body = BytesIO()
        self.content = self._body
        if length is not None and length > self.max_body:
            self._refuse_body()

    def handleContentChunk(self, data: bytes) -> None:
        if self._too_large:
            return
        self._body_size += len(data)
        if self._body_size > self.max_body:
            self._refuse_body()
            return
        self._body.write(data)

    def _refuse_body(self) -> None:
        self._too_large = True
        self._body = BytesIO()
        self.content = self._body
        transport = self.channel.transport
        if transport is not None:
            transport.write(
                b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
        self.channel.loseConnection()


class ConsoleSite(Site):
    requestFactory = ConsoleHTTPRequest
    displayTracebacks = False

    def __init__(self, resource: Resource, *, reactor: IReactorTime) -> None:
        Site.__init__(self, resource, reactor=reactor)

    def log(self, request: http.Request) -> None:
        # The access log is debug output; the audit log records what matters.
        pass


# -- the resource ----------------------------------------------------------------------


class ConsoleResource(Resource):
    isLeaf = True
    log = Logger()

    def __init__(
        self,
        *,
        authenticator: StaffAuthenticator,
        runner: ConsoleRunner,
        clock: IReactorTime,
        pages: Sequence[ConsolePage],
        secure: bool,
        policy: SessionPolicy,
        login_forms: LoginFormTokens,
        refusal_delay: float,
        random_bytes: Callable[[int], bytes],
        site_title: str = SITE_TITLE,
    ) -> None:
        Resource.__init__(self)
        self._authenticator = authenticator
        self._runner = runner
        self._clock = clock
        self._secure = secure
        self.policy = policy
        self._login_forms = login_forms
        self._random = random_bytes
        self._refusal_delay = refusal_delay
        self._site_title = site_title
        self._pages: dict[str, ConsolePage] = {}
        for page in pages:
            check_page(page)
            if page.path in self._pages:
                raise ValueError(f"two console pages at /{page.path}")
            self._pages[page.path] = page
        prefix = "__Host-" if secure else ""
        self.session_cookie = prefix + "ssgate-console"
        self.prelogin_cookie = prefix + "ssgate-login"

    # -- twisted.web entry -------------------------------------------------------------

    def render(self, request: Request) -> int:
        lost: list[bool] = []
        request.notifyFinish().addErrback(lambda _: lost.append(True))
        d = Deferred.fromCoroutine(self._respond(request))

        def send(response: Response) -> None:
            if not lost:
                self._send(request, response)

        d.addCallback(send)
        d.addErrback(lambda f: self.log.failure("console response not sent", f))
        return NOT_DONE_YET

    async def _respond(self, request: Request) -> Response:
        try:
            return await self._dispatch(request)
        except BadRequest:
            return self._message(400, "请求无效", "请求格式不正确，请返回后重试。")
        except Exception:
            self.log.failure(
                "console request failed: {method} {path}",
                method=_ascii(request.method),
                path=_ascii(request.path),
            )
            return self._message(500, "系统错误", "系统暂时无法处理该请求，请稍后再试。")

    def _send(self, request: Request, response: Response) -> None:
        request.setResponseCode(response.status)
        headers = request.responseHeaders
        headers.setRawHeaders(b"Server", [b"ssgate"])
        headers.setRawHeaders(b"Content-Type", [response.content_type])
        headers.setRawHeaders(b"Content-Length", [str(len(response.body)).encode()])
        for name, value in _security_headers(self._secure):
            headers.setRawHeaders(name, [value])
        for header, value in response.headers:
            headers.setRawHeaders(header, [value])
        for cookie, content, max_age in response.cookies:
            request.addCookie(
                cookie.encode(),
                content.encode(),
                path=b"/",
                secure=self._secure,
                httpOnly=True,
                sameSite="strict",
                max_age=None if max_age is None else str(max_age).encode(),
            )
        if request.method != b"HEAD":
            request.write(response.body)
        request.finish()

    # -- dispatch ----------------------------------------------------------------------

    async def _dispatch(self, request: Request) -> Response:  # noqa: PLR0911 - a router
        method = request.method
        if method not in (b"GET", b"HEAD", b"POST"):
            return self._message(
                405, "不支持的请求", "不支持该请求方法。", headers=[(b"Allow", b"GET, HEAD, POST")]
            )
        segments = _segments(request.path)
        query = _query(request.uri)
        now = self._clock.seconds()
        head = segments[0] if segments else ""

        if head == "static":
            return self._static(segments, method)
        if head == "login" and len(segments) == 1:
            if method == b"POST":
                return await self._login(request, now)
            return await self._login_form(request, now, query)

        # Everything else needs a live session, and a POST its CSRF token.
        who = await self._logged_in(request, now)
        if isinstance(who, Response):
            return who
        form: Mapping[str, str] = {}
        if method == b"POST":
            form = _form(request)
            if not same_token(who.session.csrf_token, form.get(CSRF_FIELD, "")):
                return await self._csrf_refused(who, segments, now)

        if head == "logout" and len(segments) == 1:
            return await self._logout(who, method, now)
        if not segments:
            if method == b"POST":
                return self._message(
                    405,
                    "不支持的请求",
                    "不支持该请求方法。",
                    who=who,
                    headers=[(b"Allow", b"GET")],
                )
            return self._home(who)
        return await self._page(request, who, segments=segments, query=query, form=form, now=now)

    def _static(self, segments: tuple[str, ...], method: bytes) -> Response:
        if segments == ("static", "console.css") and method != b"POST":
            return Response(200, _templates.STYLESHEET, b"text/css; charset=utf-8")
        return self._message(404, "页面不存在", "您访问的页面不存在。")

    async def _logged_in(self, request: Request, now: float) -> LoggedIn | Response:
        """The live session and its staff member, or where to send the browser instead."""
        session_id = self._cookie(request, self.session_cookie)
        if not session_id:
            return _see_other("/login")
        found, record = await self._find_session(session_id, now)
        session = found.session
        if session is None:
            return _see_other("/login?expired=1" if found.why in ("idle", "max-age") else "/login")
        if record is None or record.status != "active" or record.role != session.role:
            # Disabled, removed or given another role since login, by a path that did not
            # end the sessions itself: every session of this member ends now, not at
            # its timeout.
            disabled = record is None or record.status != "active"
            ended = await self._runner.run(
                _end_member,
                session_id,
                session.staff,
                reason="staff-disabled" if disabled else "role-changed",
                now=now,
            )
            await self._audit(
                now,
                f"staff:{session.staff}",
                "console.session-end",
                session.staff,
                "ok",
                reason="staff-disabled" if disabled else "role-changed",
                session_ref=session.ref,
                details={"sessions": ended},
            )
            return _see_other("/login")
        return LoggedIn(
            session_id=session_id,
            session=session,
            staff=StaffMember(record.name, record.role),
            source=_source(request),
        )

    async def _find_session(
        self, session_id: str, now: float
    ) -> tuple[auth.ConsoleSessionLookup, auth.StaffRecord | None]:
        """The session of *session_id* and its member's record, in one transaction; a
        session someone else ended (member disabled, password reset) is audited here,
        at the one request that learns of it."""
        found: auth.ConsoleSessionLookup
        record: auth.StaffRecord | None
        found, record = await self._runner.run(
            _session_and_staff, session_id, now=now, policy=self.policy
        )
        if found.ended is not None:
            await self._audit(
                now,
                f"staff:{found.ended.staff}",
                "console.session-end",
                found.ended.staff,
                "ok",
                reason=found.why,
                session_ref=found.ended.ref,
            )
        return found, record

    async def _csrf_refused(self, who: LoggedIn, segments: tuple[str, ...], now: float) -> Response:
        await self._audit(
            now,
            who.staff.audit_actor,
            "console.csrf",
            ("/" + "/".join(segments))[:250],
            "refused",
            reason="csrf-token",
            session_ref=who.session.ref,
            details={"source": who.source},
        )
        return self._message(
            403,
            "请求已失效",
            "表单已过期或来源不明，操作未执行。请返回页面刷新后重试。",
            who=who,
        )

    async def _logout(self, who: LoggedIn, method: bytes, now: float) -> Response:
        if method != b"POST":
            return self._message(
                405,
                "不支持的请求",
                "请使用页面上的“退出登录”按钮。",
                who=who,
                headers=[(b"Allow", b"POST")],
            )
        await self._runner.run(auth.end_console_session, who.session_id)
        await self._audit(
            now,
            who.staff.audit_actor,
            "console.logout",
            who.staff.name,
            "ok",
            session_ref=who.session.ref,
            details={"source": who.source},
        )
        response = _see_other("/login")
        response.cookies.append((self.session_cookie, "", 0))
        return response

    async def _page(
        self,
        request: Request,
        who: LoggedIn,
        *,
        segments: tuple[str, ...],
        query: Mapping[str, str],
        form: Mapping[str, str],
        now: float,
    ) -> Response:
        page = self._pages.get(segments[0])
        if page is None:
            return self._message(404, "页面不存在", "您访问的页面不存在。", who=who)
        staff = who.staff
        if not may_open(page, staff.role):
            await self._audit(
                now,
                staff.audit_actor,
                "console.forbidden",
                "/" + page.path,
                "refused",
                reason="role",
                session_ref=who.session.ref,
                details={"role": staff.role, "method": _ascii(request.method)},
            )
            return self._message(403, "无权访问", "您的角色无权访问此页面。", who=who)
        console_request = ConsoleRequest(
            method="POST" if request.method == b"POST" else "GET",
            subpath=segments[1:],
            query=query,
            form={k: v for k, v in form.items() if k != CSRF_FIELD},
            source=who.source,
            now=now,
            session_ref=who.session.ref,
            csrf_token=who.session.csrf_token,
        )
        if request.method == b"POST":
            result = await page.render_post(console_request, staff)
        else:
            result = await page.render_get(console_request, staff)
        return self._result(result, page, who)

    # -- login and logout --------------------------------------------------------------

    async def _login_form(self, request: Request, now: float, query: Mapping[str, str]) -> Response:
        session_id = self._cookie(request, self.session_cookie)
        if session_id:
            found, _ = await self._find_session(session_id, now)
            if found.session is not None:
                return _see_other("/")
        message, cls = "", "notice"
        if query.get("expired") == "1":
            message = "会话已超时，请重新登录。"
        return self._login_page(request, 200, message=message, message_class=cls)

    def _login_page(
        self,
        request: Request,
        status: int,
        *,
        message: str = "",
        message_class: str = "error",
        name: str = "",
    ) -> Response:
        prelogin = self._cookie(request, self.prelogin_cookie)
        cookies: list[tuple[str, str, int | None]] = []
        if not prelogin:
            prelogin = self._login_forms.new_prelogin()
            cookies.append((self.prelogin_cookie, prelogin, None))
        body = _templates.render(
            "login.html",
            title="工作人员登录",
            site_title=self._site_title,
            form_token=self._login_forms.token_for(prelogin),
            message=message,
            message_class=message_class,
            name=name,
        )
        return Response(status, body, cookies=cookies)

    async def _login(self, request: Request, now: float) -> Response:
        form = _form(request)
        source = _source(request)
        name = form.get("name", "").strip()
        password = form.get("password", "")
        otp = form.get("otp", "").strip()
        actor, subject = _login_names(name)
        prelogin = self._cookie(request, self.prelogin_cookie)
        if not self._login_forms.check(prelogin, form.get(CSRF_FIELD, "")):
            await self._audit(
                now,
                actor,
                "console.login",
                subject,
                "refused",
                reason="csrf-token",
                details={"source": source},
            )
            response = self._login_page(request, 403, message="登录页面已过期，请重新输入后登录。")
            return response

        if len(name) > MAX_NAME or len(password) > MAX_PASSWORD or len(otp) > MAX_OTP:
            outcome = auth.AuthOutcome(False, "bad-input", name, None, None)
        else:
            try:
                outcome = await self._runner.call(
                    self._authenticator.authenticate,
                    name,
                    password,
                    otp,
                    source=source,
                    now=now,
                    kind="staff",
                )
            except Exception:
                self.log.failure("console login could not be checked")
                await self._audit(
                    now,
                    actor,
                    "console.login",
                    subject,
                    "failed",
                    reason="server-error",
                    details={"source": source},
                )
                return self._message(500, "系统错误", "暂时无法登录，请联系系统管理员。")
        del password, otp

        if outcome.ok:
            # A new id on every login: an id planted before login is never promoted,
            # and the one the browser held ends.
            created: tuple[str, auth.ConsoleSession] | None = await self._runner.run(
                _record_login,
                name,
                now=now,
                source=source,
                policy=self.policy,
                replaces=self._cookie(request, self.session_cookie),
                random_bytes=self._random,
            )
            if created is not None:
                session_id, session = created
                self.log.info(
                    "console login: {name} ({role}) from {source}",
                    name=session.staff,
                    role=session.role,
                    source=source,
                )
                response = _see_other("/")
                response.cookies.append((self.session_cookie, session_id, None))
                response.cookies.append((self.prelogin_cookie, "", 0))
                return response
        else:
            await self._audit(
                now,
                actor,
                "console.login",
                subject,
                "refused",
                reason=outcome.reason,
                details={"source": source},
            )
        self.log.warn("console login refused for {who} from {source}", who=subject, source=source)
        if self._refusal_delay > 0:
            await deferLater(self._clock, self._refusal_delay, lambda: None)
        return self._login_page(
            request, 403, message=REFUSED_MESSAGE, name=name if actor != _INVALID_ACTOR else ""
        )

    # -- pieces ------------------------------------------------------------------------

    def _cookie(self, request: Request, name: str) -> str:
        raw = request.getCookie(name.encode())
        if raw is None:
            return ""
        value = raw.decode("ascii", "replace")
        return value if _TOKEN_SHAPE.fullmatch(value) else ""

    async def _audit(
        self,
        now: float,
        actor: str,
        action: str,
        subject: str,
        outcome: str,
        *,
        reason: str = "",
        session_ref: str = "",
        details: Mapping[str, audit.DetailValue] | None = None,
    ) -> None:
        event = audit.AuditEvent(
            at=now,
            actor=actor,
            action=action,
            subject=subject,
            outcome=outcome,
            reason=reason,
            session_id=session_ref,
            details=dict(details or {}),
        )
        await self._runner.run(audit.append, event)

    def _nav(self, staff: StaffMember) -> list[tuple[str, str]]:
        return [(p.path, p.title) for p in self._pages.values() if may_open(p, staff.role)]

    def _home(self, who: LoggedIn) -> Response:
        body = _templates.render(
            "home.html",
            title="工作台",
            site_title=self._site_title,
            staff=who.staff,
            nav=self._nav(who.staff),
            csrf_token=who.session.csrf_token,
        )
        return Response(200, body)

    def _message(
        self,
        status: int,
        title: str,
        message: str,
        *,
        who: LoggedIn | None = None,
        headers: Iterable[tuple[bytes, bytes]] = (),
    ) -> Response:
        staff = who.staff if who else None
        csrf_token = who.session.csrf_token if who else ""
        body = _templates.render(
            "message.html",
            title=title,
            site_title=self._site_title,
            staff=staff,
            nav=self._nav(staff) if staff else (),
            csrf_token=csrf_token,
            message=message,
            message_class="error" if status >= 400 else "notice",
            back="/" if staff else "/login",
            back_label="返回工作台" if staff else "前往登录",
        )
        return Response(status, body, headers=list(headers))

    def _result(self, result: ConsoleResult, page: ConsolePage, who: LoggedIn) -> Response:
        if isinstance(result, Redirect):
            return _see_other(result.location)
        if isinstance(result, Download):
            return Response(
                200,
                result.data,
                result.content_type.encode("ascii"),
                headers=[
                    (
                        b"Content-Disposition",
                        b'attachment; filename="' + result.filename.encode("ascii") + b'"',
                    ),
                ],
            )
        if isinstance(result, Page):
            body = _templates.render(
                "layout.html",
                title=result.title,
                site_title=self._site_title,
                staff=who.staff,
                nav=self._nav(who.staff),
                current=page.path,
                csrf_token=who.session.csrf_token,
                body_html=result.body_html,
            )
            return Response(result.status, body)
        raise TypeError(f"console page {page.path} returned {type(result).__name__}")


_INVALID_ACTOR = "staff:(invalid-name)"


def _login_names(name: str) -> tuple[str, str]:
    """(audit actor, audit subject) for a login name as typed.

    A name that cannot be a staff name is not written to the log: it is often a
    password typed into the wrong field.
    """
    try:
        auth.check_staff_name(name)
    except auth.StaffNameError:
        return _INVALID_ACTOR, "(invalid-name)"
    return f"staff:{name}", name


def _record_login(
    conn: Connection,
    name: str,
    *,
    now: float,
    source: str,
    policy: SessionPolicy,
    replaces: str,
    random_bytes: Callable[[int], bytes],
) -> tuple[str, auth.ConsoleSession] | None:
    """After the authenticator said yes: the new session (None if the member is no
    longer active), the end of the one the browser held, and the audit event, in one
    transaction."""
    created = auth.create_console_session(
        conn, name, now=now, policy=policy, replaces=replaces, random_bytes=random_bytes
    )
    record = auth.get_staff(conn, name)
    audit.append(
        conn,
        audit.AuditEvent(
            at=now,
            actor=f"staff:{name}",
            action="console.login",
            subject=name,
            outcome="ok" if created else "refused",
            reason="" if created else "staff-disabled",
            session_id=created[1].ref if created else "",
            details={"source": source, "role": record.role if record else None},
        ),
    )
    return created


def _session_and_staff(
    conn: Connection, session_id: str, *, now: float, policy: SessionPolicy
) -> tuple[auth.ConsoleSessionLookup, auth.StaffRecord | None]:
    found = auth.lookup_console_session(conn, session_id, now=now, policy=policy)
    record = auth.get_staff(conn, found.session.staff) if found.session else None
    return found, record


def _end_member(conn: Connection, session_id: str, name: str, *, reason: str, now: float) -> int:
    """End every session of *name* (how many were live); this request's at once, since
    its end is audited now rather than at its next request."""
    ended = auth.end_staff_console_sessions(conn, name, reason=reason, now=now)
    auth.end_console_session(conn, session_id)
    return ended


def _security_headers(secure: bool) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"Content-Security-Policy", CSP.encode()),
        (b"X-Frame-Options", b"DENY"),
        (b"X-Content-Type-Options", b"nosniff"),
        (b"Cache-Control", b"no-store"),
        (b"Pragma", b"no-cache"),
        (b"Referrer-Policy", b"no-referrer"),
        (b"Cross-Origin-Opener-Policy", b"same-origin"),
        (b"Cross-Origin-Resource-Policy", b"same-origin"),
    ]
    if secure:
        headers.append((b"Strict-Transport-Security", b"max-age=31536000"))
    return headers


def _see_other(location: str) -> Response:
    return Response(
        303,
        b"",
        b"text/plain; charset=utf-8",
        headers=[(b"Location", quote(location, safe="/?=&-_.~%").encode("ascii"))],
    )


def _ascii(value: bytes | None) -> str:
    return (value or b"").decode("ascii", "replace")[:200]


def _source(request: Request) -> str:
    address = request.getClientAddress()
    host = getattr(address, "host", None)
    return str(host) if host else "local"


def _clean(text: str) -> str:
    if "\x00" in text:
        raise BadRequest("NUL in a field")
    return text


def _decode_pairs(pairs: list[tuple[bytes, bytes]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw_key, raw_value in pairs:
        try:
            key, value = raw_key.decode("utf-8"), raw_value.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("field not UTF-8") from None
        if key in out:
            raise BadRequest("repeated field")
        out[_clean(key)] = _clean(value)
    return out


def _parse_pairs(data: bytes) -> dict[str, str]:
    # Latin-1 both ways keeps every byte as it came, so that UTF-8 is checked once,
    # strictly, in _decode_pairs.
    try:
        pairs = parse_qsl(
            data.decode("latin-1"),
            keep_blank_values=True,
            max_num_fields=MAX_FIELDS,
            encoding="latin-1",
        )
    except ValueError:
        raise BadRequest("too many fields") from None
    return _decode_pairs([(k.encode("latin-1"), v.encode("latin-1")) for k, v in pairs])


def _query(uri: bytes) -> dict[str, str]:
    _, _, qs = uri.partition(b"?")
    return _parse_pairs(qs) if qs else {}


def _form(request: Request) -> dict[str, str]:
    ctype = (request.getHeader(b"Content-Type") or b"").split(b";")[0].strip().lower()
    if ctype != b"application/x-www-form-urlencoded":
        raise BadRequest("not a form")
    content = request.content
    if content is None:
        return {}
    content.seek(0)
    return _parse_pairs(content.read(MAX_BODY_BYTES + 1))


def _segments(path: bytes) -> tuple[str, ...]:
    out: list[str] = []
    for raw in path.split(b"/"):
        if not raw:
            continue
        try:
            segment = unquote_to_bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("path not UTF-8") from None
        if any(c < " " or c in "/\\\x7f" for c in segment) or segment in (".", ".."):
            raise BadRequest("bad path segment")
        out.append(segment)
    return tuple(out)


def console_resource(
    *,
    authenticator: StaffAuthenticator,
    runner: ConsoleRunner,
    clock: IReactorTime,
    pages: Sequence[ConsolePage],
    secure: bool,
    login_form_key: bytes,
    policy: SessionPolicy | None = None,
    refusal_delay: float = 1.0,
    random_bytes: Callable[[int], bytes] = os.urandom,
) -> ConsoleResource:
    return ConsoleResource(
        authenticator=authenticator,
        runner=runner,
        clock=clock,
        pages=pages,
        secure=secure,
        policy=policy or SessionPolicy(),
        login_forms=LoginFormTokens(login_form_key, random_bytes=random_bytes),
        refusal_delay=refusal_delay,
        random_bytes=random_bytes,
    )
