"""The staff console's shell: staff login, sessions, roles and the console layout.

The console is one site assembled from the features' route tables (the auditors'
review from ``declare_app``, the officers' and carriers' pages from theirs); the
shell adds its own few routes (``/login``, ``/logout``, ``/``, the style sheet) and
runs the gate in front of every handler:

path segments decodable and harmless (else 400) → the session from the cookie
(none, idle or too old → 303 to ``/login``) → the staff record re-read on the
database pool (a disabled member or a changed role ends every session of theirs at
once) → the route: unknown 404, other method 405 → the role (``admin`` may open
everything; others get 403 and an audit event) → on a write, Origin/Referer and the
session's CSRF token (403, audited), the form decoded strictly (no repeated field,
no NUL) → the handler.

Logins go through twisted.cred, as the channel's do: a :class:`StaffChecker` proves
name + password + one-time code on the login pool, a :class:`StaffRealm` re-reads
the member and records the login.  Sessions live in a :class:`StaffSessions` store
(the database, so any node serves any member and a restart logs nobody out).

Blocking work never runs on the reactor: hashing through ``runner.call``, every
look-up and audit event through ``runner.run`` (one transaction on the database
pool).  Audit events go through an injected :class:`AuditTrail`, so this layer
needs nothing of ours but ``auth``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from jinja2 import BaseLoader, ChoiceLoader, Environment, PackageLoader, StrictUndefined
from sqlalchemy import Connection
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import ICredentials
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import IRealm, Portal
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.web.server import Request
from zope.interface import Interface, implementer

import auth
from auth.console import ROLE_TITLES, StaffMember

from ._answers import Cookie, HttpError, Response, see_other
from ._csrf import CSRF_FIELD, same_token
from ._decode import MalformedInput, media_type, parse_form_body, single_values
from ._gate import (
    check_path,
    client_source,
    log_text,
    query_values,
    read_form,
    token_cookie,
    write_refusal,
)
from ._headers import security_headers
from ._origin import origin_allowed
from ._outage import OUTAGE_MESSAGE, OUTAGE_TITLE, is_outage, retry_after_headers
from ._request import WebSite
from ._routes import Route, RoutedResource, RouteTable

PUBLIC = "public"  # no login needed
STAFF = "staff"  # any logged-in member
CONSOLE_ROLES = frozenset({PUBLIC, STAFF, *auth.STAFF_ROLES})

MAX_BODY_BYTES = 64 * 1024
MAX_FIELDS = 64  # a console form has a handful; more is not a person
SITE_TITLE = "劳保安全专网 工作人员控制台"
# Login-form limits: longer input is refused without being hashed.
MAX_NAME = 64
MAX_PASSWORD = 1024
MAX_OTP = 16
REFUSED_MESSAGE = "登录失败：用户名、密码或动态口令不正确，或账号暂时不能登录。请核对后重试。"

_INVALID_ACTOR = "staff:(invalid-name)"
PUBLIC_PATHS = frozenset({"/login", "/static/console.css"})  # another method: 405, no login


# -- what the shell needs from outside -------------------------------------------------


@dataclass(frozen=True)
class ConsoleSession:
    """A live console session as the shell sees it (the cookie id is never kept)."""

    staff: str
    role: str
    ref: str  # non-secret, for audit events
    csrf_token: str = field(repr=False)


@dataclass(frozen=True)
class SessionLookup:
    """What a cookie's id found: the live *session*, or None and *why* not
    (``unknown``, ``idle``, ``max-age``, or the reason someone ended it); *ended* is
    a session someone else ended, reported to the one request that finds it."""

    session: ConsoleSession | None
    why: str = ""
    ended: ConsoleSession | None = None


class StaffSessions(Protocol):
    """Console sessions in a store shared by every node; blocking, each call inside
    the caller's transaction on the database pool."""

    def start(
        self, conn: Connection, staff: str, *, now: float, replaces: str
    ) -> tuple[str, ConsoleSession] | None:
        """A new session for an active member (the id for the cookie, the session),
        ending *replaces* (the id the browser came with); None if not active."""
        ...

    def find(self, conn: Connection, session_id: str, *, now: float) -> SessionLookup:
        """The session of *session_id*; a live one's idle clock restarts."""
        ...

    def end(self, conn: Connection, session_id: str) -> None: ...

    def end_staff(self, conn: Connection, staff: str, *, reason: str, now: float) -> int:
        """End every session of *staff* for *reason*; how many were live."""
        ...


class AuditTrail(Protocol):
    """Appends one audit event in the caller's transaction (``audit.append``)."""

    def __call__(
        self,
        conn: Connection,
        *,
        at: float,
        actor: str,
        action: str,
        subject: str,
        outcome: str,
        reason: str = "",
        session_ref: str = "",
        details: Mapping[str, Any] | None = None,
    ) -> None: ...


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


@dataclass(frozen=True)
class ConsoleSection:
    """A feature's part of the console: its navigation entry and its routes.

    *path* is the entry's link (``/review``), shown to *roles* (admin sees all);
    *routes* are served under the console's gate; *templates* loads the section's
    Jinja templates, which extend ``console/_layout.html``.
    """

    path: str
    title: str
    roles: tuple[str, ...]
    routes: tuple[Route, ...]
    templates: BaseLoader | None = None
    converters: Mapping[str, str] = field(default_factory=dict)


# -- what a handler gets ---------------------------------------------------------------


@dataclass
class StaffCtx:
    """One admitted console request: who (from the session), what they sent."""

    shell: ConsoleShell
    request: Request
    staff: StaffMember
    session_ref: str
    csrf_token: str = field(repr=False)
    source: str
    now: float
    query: Mapping[str, str]
    form: Mapping[str, str] = field(default_factory=dict)

    @property
    def runner(self) -> auth.Runner:
        return self.shell.runner

    def page(self, template: str, status: int = 200, **values: Any) -> Response:
        """*template* rendered in the console layout, with who, token and navigation."""
        return self.shell.render(template, status, who=self, **values)

    async def audit(
        self,
        action: str,
        subject: str,
        outcome: str,
        *,
        reason: str = "",
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """An audit event by this member in this session, in its own transaction."""
        await self.shell.audit(
            self.now,
            self.staff.audit_actor,
            action,
            subject,
            outcome,
            reason=reason,
            session_ref=self.session_ref,
            details=details,
        )


# -- twisted.cred: one portal pattern with the channel's -------------------------------


class IStaffCredentials(ICredentials):
    """Name, password and one-time code typed into the console's login form."""


@implementer(IStaffCredentials)
@dataclass(frozen=True)
class StaffCredentials:
    name: str
    password: str = field(repr=False)
    otp: str = field(repr=False)
    source: str
    now: float


class IStaffMember(Interface):
    """The avatar: a :class:`StaffAvatar` (the member and their new session)."""


class StaffRefused(UnauthorizedLogin):
    """A refused staff login, with the reason code the audit log keeps."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@implementer(ICredentialsChecker)
class StaffChecker:
    """Password + TOTP (with replay guard and lockout) on the login pool."""

    credentialInterfaces = (IStaffCredentials,)

    def __init__(self, authenticator: StaffAuthenticator, runner: auth.Runner) -> None:
        self._authenticator = authenticator
        self._runner = runner

    async def _check(self, credentials: StaffCredentials) -> bytes | tuple[()]:
        name, password, otp = credentials.name, credentials.password, credentials.otp
        if len(name) > MAX_NAME or len(password) > MAX_PASSWORD or len(otp) > MAX_OTP:
            raise StaffRefused("bad-input")
        outcome: auth.AuthOutcome = await self._runner.call(
            self._authenticator.authenticate,
            name,
            password,
            otp,
            source=credentials.source,
            now=credentials.now,
            kind="staff",
        )
        if not outcome.ok:
            raise StaffRefused(outcome.reason)
        return name.encode("utf-8")  # twisted.cred's avatar ids are bytes

    def requestAvatarId(self, credentials: StaffCredentials) -> Deferred[bytes | tuple[()]]:
        return Deferred.fromCoroutine(self._check(credentials))


@dataclass(frozen=True)
class LoginMind:
    """What the shell tells the realm about a login: where and when, and the session
    id the browser came with (it ends: an id held before login is never kept)."""

    source: str
    now: float
    replaces: str = field(repr=False)


@dataclass(frozen=True)
class StaffAvatar:
    """A logged-in member and the console session their login opened."""

    member: StaffMember
    session_id: str = field(repr=False)
    session: ConsoleSession


@implementer(IRealm)
class StaffRealm:
    """Opens the console session of a proven member and records the login, in one
    transaction: the member is re-read (still active?) under the store's lock."""

    def __init__(
        self, runner: auth.Runner, sessions: StaffSessions, audit_trail: AuditTrail
    ) -> None:
        self._runner = runner
        self._sessions = sessions
        self._audit = audit_trail

    async def _avatar(self, name: str, mind: LoginMind) -> StaffAvatar:
        avatar: StaffAvatar | None = await self._runner.run(
            _open_session, self._sessions, self._audit, name, mind
        )
        if avatar is None:
            raise StaffRefused("staff-disabled")
        return avatar

    def requestAvatar(
        self, avatarId: Any, mind: Any, *interfaces: Any
    ) -> Deferred[tuple[type[Interface], object, Callable[[], None]]]:
        if IStaffMember not in interfaces:
            raise NotImplementedError("the console realm only makes staff members")

        async def build() -> tuple[type[Interface], object, Callable[[], None]]:
            avatar = await self._avatar(avatarId.decode("utf-8"), mind)
            return IStaffMember, avatar, _no_logout

        return Deferred.fromCoroutine(build())


def new_token(random_bytes: Callable[[int], bytes]) -> str:
    """32 random bytes as unpadded URL-safe base64 (a cookie value: 43 characters)."""
    return base64.urlsafe_b64encode(random_bytes(32)).rstrip(b"=").decode("ascii")


def _no_logout() -> None:
    """Console sessions end by logout, timeout or disable, each recorded by the shell."""


def _open_session(
    conn: Connection,
    sessions: StaffSessions,
    audit_trail: AuditTrail,
    name: str,
    mind: LoginMind,
) -> StaffAvatar | None:
    """After the checker said yes: the new session (None if the member is no longer
    active) and the login's audit event, in one transaction."""
    started = sessions.start(conn, name, now=mind.now, replaces=mind.replaces)
    record = auth.get_staff(conn, name)
    audit_trail(
        conn,
        at=mind.now,
        actor=f"staff:{name}",
        action="console.login",
        subject=name,
        outcome="ok" if started else "refused",
        reason="" if started else "staff-disabled",
        session_ref=started[1].ref if started else "",
        details={"source": mind.source, "role": record.role if record else None},
    )
    if started is None or record is None:
        return None
    session_id, session = started
    return StaffAvatar(StaffMember(record.name, session.role), session_id, session)


# -- the shell -------------------------------------------------------------------------


class ConsoleShell:
    """The console's gate and error pages (a :class:`web.Dispatcher`), its own
    routes, and the layout every section renders into."""

    log = Logger()

    def __init__(
        self,
        *,
        authenticator: StaffAuthenticator,
        runner: auth.Runner,
        sessions: StaffSessions,
        audit_trail: AuditTrail,
        clock: IReactorTime,
        sections: Sequence[ConsoleSection],
        secure: bool,
        form_key: bytes,
        new_token: Callable[[], str],
        refusal_delay: float = 1.0,
        site_title: str = SITE_TITLE,
        lockout: auth.LockoutPolicy | None = None,
    ) -> None:
        if len(form_key) < 16:
            raise ValueError("the login form key must be at least 16 bytes")
        self.runner = runner
        self.sessions = sessions
        self._audit_trail = audit_trail
        self._clock = clock
        self._secure = secure
        self._form_key = form_key
        self._new_token = new_token
        self._refusal_delay = refusal_delay
        self.site_title = site_title
        self.lockout_help = lockout_help(lockout or auth.LockoutPolicy())
        self.portal = Portal(
            StaffRealm(runner, sessions, audit_trail), [StaffChecker(authenticator, runner)]
        )
        self.sections = tuple(sections)
        prefix = "__Host-" if secure else ""
        self.session_cookie = prefix + "ssgate-console"
        self.prelogin_cookie = prefix + "ssgate-login"
        loaders: list[BaseLoader] = [PackageLoader("web", "templates")]
        loaders += [s.templates for s in self.sections if s.templates is not None]
        self.templates = Environment(
            loader=ChoiceLoader(loaders),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        # The audit log names a refused section by its entry, not by the route's rule.
        self._owners = {r: s.path for s in self.sections for r in s.routes}
        self.table = RouteTable(
            site="console",
            roles=CONSOLE_ROLES,
            max_body=MAX_BODY_BYTES,
            converters={
                "seg": r"[^/]{1,200}",
                **{k: v for s in self.sections for k, v in s.converters.items()},
            },
            routes=(*self._own_routes(), *(r for s in self.sections for r in s.routes)),
        )

    def _own_routes(self) -> tuple[Route, ...]:
        return (
            Route("GET", "/login", (PUBLIC,), self._login_form),
            Route("POST", "/login", (PUBLIC,), self._login),
            Route("POST", "/logout", (STAFF,), self._logout),
            Route("GET", "/", (STAFF,), self._home),
            Route("GET", "/static/console.css", (PUBLIC,), self._style),
        )

    # -- the dispatcher -----------------------------------------------------------------

    async def handle(  # noqa: PLR0911 - the gate, in order
        self, request: Any, route: Route, params: Mapping[str, str]
    ) -> Response:
        known: StaffCtx | None = None  # who asks, once the gate knows: the outage page's nav
        try:
            check_path(request.path)
            if PUBLIC in route.roles:
                return await route.handler(self._public(request), **params)
            who = await self._logged_in(request)
            if isinstance(who, Response):
                return who
            known = who
            if not may_call(route, who.staff.role):
                await who.audit(
                    "console.forbidden",
                    self._owners.get(route, route.path)[:250],
                    "refused",
                    reason="role",
                    details={"role": who.staff.role, "method": route.method},
                )
                return self.message(403, "无权访问", "您的角色无权访问此页面。", who=who)
            if route.method != "GET":
                refused = await self._check_write(request, who)
                if refused is not None:
                    return refused
            return await route.handler(who, **params)
        except MalformedInput:
            return self.message(400, "请求无效", "请求格式不正确，请返回后重试。")
        except Exception as e:
            if is_outage(e):
                return self.outage(request, known)
            if isinstance(e, HttpError):
                return self.message(e.status, "无法办理", e.message, who=None, headers=e.headers)
            self.log.failure(
                "console request failed: {method} {path}",
                method=log_text(request.method),
                path=log_text(request.path),
            )
            return self.message(500, "系统错误", "系统暂时无法处理该请求，请稍后再试。")

    async def unrouted(self, request: Any, status: int, allowed: Sequence[str]) -> Response:
        try:
            check_path(request.path)
            found = await self._logged_in(request)
        except MalformedInput:
            return self.message(400, "请求无效", "请求格式不正确，请返回后重试。")
        except Exception as e:
            if is_outage(e):
                return self.outage(request, None)
            self.log.failure("console request failed: {path}", path=log_text(request.path))
            return self.message(500, "系统错误", "系统暂时无法处理该请求，请稍后再试。")
        who = found if isinstance(found, StaffCtx) else None
        if isinstance(found, Response) and log_text(request.path) not in PUBLIC_PATHS:
            return found  # no session: to the login page, whatever the path
        if status == 405:
            return self.message(
                405,
                "不支持的请求",
                "不支持该请求方法。",
                who=who,
                headers=((b"Allow", ", ".join(allowed).encode("ascii")),),
            )
        return self.message(404, "页面不存在", "您访问的页面不存在。", who=who)

    # -- the gate -----------------------------------------------------------------------

    def _public(self, request: Any) -> StaffCtx:
        return StaffCtx(
            shell=self,
            request=request,
            staff=StaffMember("", ""),
            session_ref="",
            csrf_token="",
            source=client_source(request),
            now=self._clock.seconds(),
            query=query_values(request.uri, max_fields=MAX_FIELDS),
        )

    async def _logged_in(self, request: Any) -> StaffCtx | Response:
        """The request's context from its live session, or where to send the browser."""
        now = self._clock.seconds()
        query = query_values(request.uri, max_fields=MAX_FIELDS)
        session_id = self._cookie(request, self.session_cookie)
        if not session_id:
            return see_other("/login")
        found, record = await self._find(session_id, now)
        session = found.session
        if session is None:
            expired = found.why in ("idle", "max-age")
            return see_other("/login?expired=1" if expired else "/login")
        if record is None or record.status != "active" or record.role != session.role:
            # Disabled, removed or given another role by a path that did not end the
            # sessions itself: every session of this member ends now, not at timeout.
            disabled = record is None or record.status != "active"
            ended = await self.runner.run(
                _end_member,
                self.sessions,
                session_id,
                session.staff,
                reason="staff-disabled" if disabled else "role-changed",
                now=now,
            )
            await self.audit(
                now,
                f"staff:{session.staff}",
                "console.session-end",
                session.staff,
                "ok",
                reason="staff-disabled" if disabled else "role-changed",
                session_ref=session.ref,
                details={"sessions": ended},
            )
            return see_other("/login")
        return StaffCtx(
            shell=self,
            request=request,
            staff=StaffMember(record.name, record.role),
            session_ref=session.ref,
            csrf_token=session.csrf_token,
            source=client_source(request),
            now=now,
            query=query,
        )

    async def _find(
        self, session_id: str, now: float
    ) -> tuple[SessionLookup, auth.StaffRecord | None]:
        """The session of *session_id* and its member's record, in one transaction; a
        session someone else ended (member disabled, password reset) is audited here,
        at the one request that learns of it."""
        found: SessionLookup
        record: auth.StaffRecord | None
        found, record = await self.runner.run(_session_and_staff, self.sessions, session_id, now)
        if found.ended is not None:
            await self.audit(
                now,
                f"staff:{found.ended.staff}",
                "console.session-end",
                found.ended.staff,
                "ok",
                reason=found.why,
                session_ref=found.ended.ref,
            )
        return found, record

    async def _check_write(self, request: Any, who: StaffCtx) -> Response | None:
        """Origin and the session's CSRF token; the form decoded into ``who.form``."""
        form = read_form(request, max_body=MAX_BODY_BYTES, max_fields=MAX_FIELDS)
        refusal = write_refusal(request, who.csrf_token, form)
        if refusal is not None:
            await who.audit(
                "console.csrf",
                log_text(request.path)[:250],
                "refused",
                reason=refusal,
                details={"source": who.source},
            )
            return self.message(
                403,
                "请求已失效",
                "表单已过期或来源不明，操作未执行。请返回页面刷新后重试。",
                who=who,
            )
        who.form = {k: v for k, v in form.items() if k != CSRF_FIELD}
        return None

    # -- the shell's own pages ----------------------------------------------------------

    async def _style(self, ctx: StaffCtx) -> Response:
        from importlib.resources import files

        css = files("web").joinpath("static/console.css").read_bytes()
        return Response(200, css, b"text/css; charset=utf-8")

    async def _home(self, who: StaffCtx) -> Response:
        return who.page("console/home.html", title="工作台")

    async def _login_form(self, ctx: StaffCtx) -> Response:
        session_id = self._cookie(ctx.request, self.session_cookie)
        if session_id:
            found, _ = await self._find(session_id, ctx.now)
            if found.session is not None:
                return see_other("/")
        message = "会话已超时，请重新登录。" if ctx.query.get("expired") == "1" else ""
        return self._login_page(ctx, 200, message=message, message_class="notice")

    def _login_page(
        self,
        ctx: StaffCtx,
        status: int,
        *,
        message: str = "",
        message_class: str = "error",
        name: str = "",
        refused: bool = False,
    ) -> Response:
        prelogin = self._cookie(ctx.request, self.prelogin_cookie)
        cookies: tuple[Cookie, ...] = ()
        if not prelogin:
            prelogin = self._new_token()
            cookies = (Cookie(self.prelogin_cookie, prelogin),)
        page = self.render(
            "console/login.html",
            status,
            who=None,
            title="工作人员登录",
            form_token=self.login_form_token(prelogin),
            message=message,
            message_class=message_class,
            name=name,
            lockout_help=self.lockout_help if refused else "",
        )
        return Response(page.status, page.body, page.content_type, cookies=cookies)

    async def _login(self, ctx: StaffCtx) -> Response:
        request, now, source = ctx.request, ctx.now, ctx.source
        media, _ = media_type(request.getHeader(b"content-type"))
        if media != "application/x-www-form-urlencoded":
            raise MalformedInput("not-a-form", "not a form")
        content = request.content
        body = content.read() if content is not None else b""
        form = single_values(parse_form_body(body), max_fields=MAX_FIELDS)
        name = form.get("name", "").strip()
        actor, subject = _login_names(name)
        prelogin = self._cookie(request, self.prelogin_cookie)
        cross = not origin_allowed(
            request.getHeader(b"origin"), request.getHeader(b"referer"), request.getHeader(b"host")
        )
        if cross or not self.check_login_form_token(prelogin, form.get(CSRF_FIELD, "")):
            await self.audit(
                now,
                actor,
                "console.login",
                subject,
                "refused",
                reason="cross-origin" if cross else "csrf-token",
                details={"source": source},
            )
            return self._login_page(ctx, 403, message="登录页面已过期，请重新输入后登录。")
        credentials = StaffCredentials(
            name=name,
            password=form.get("password", ""),
            otp=form.get("otp", "").strip(),
            source=source,
            now=now,
        )
        del form
        # A new id on every login: an id planted before login is never promoted.
        mind = LoginMind(source, now, replaces=self._cookie(request, self.session_cookie))
        try:
            _, avatar, _ = await self.portal.login(credentials, mind, IStaffMember)
            opened = cast(StaffAvatar, avatar)
        except StaffRefused as refused:
            if refused.reason != "staff-disabled":  # the realm has recorded that one
                await self.audit(
                    now,
                    actor,
                    "console.login",
                    subject,
                    "refused",
                    reason=refused.reason,
                    details={"source": source},
                )
            self.log.warn(
                "console login refused for {who} from {source}", who=subject, source=source
            )
            if self._refusal_delay > 0:
                await deferLater(self._clock, self._refusal_delay, lambda: None)
            return self._login_page(
                ctx,
                403,
                message=REFUSED_MESSAGE,
                name=name if actor != _INVALID_ACTOR else "",
                refused=True,
            )
        except Exception as e:
            if is_outage(e):  # nothing to audit into: the log is in that database
                return self.outage(request, None)
            self.log.failure("console login could not be checked")
            await self.audit(
                now,
                actor,
                "console.login",
                subject,
                "failed",
                reason="server-error",
                details={"source": source},
            )
            return self.message(500, "系统错误", "暂时无法登录，请联系系统管理员。")
        self.log.info(
            "console login: {name} ({role}) from {source}",
            name=opened.member.name,
            role=opened.member.role,
            source=source,
        )
        return see_other(
            "/",
            cookies=(
                Cookie(self.session_cookie, opened.session_id),
                Cookie(self.prelogin_cookie, "", 0),
            ),
        )

    async def _logout(self, who: StaffCtx) -> Response:
        session_id = self._cookie(who.request, self.session_cookie)
        await self.runner.run(self.sessions.end, session_id)
        await who.audit("console.logout", who.staff.name, "ok", details={"source": who.source})
        return see_other("/login", cookies=(Cookie(self.session_cookie, "", 0),))

    # -- pieces -------------------------------------------------------------------------

    def login_form_token(self, prelogin: str) -> str:
        """The login form's token for the pre-login cookie *prelogin*: an HMAC under a
        key every node shares, so a login page from one node posts to another, a flood
        of login pages costs no memory, and a cross-site POST has no valid pair."""
        mac = hmac.new(
            self._form_key, b"login-form\x00" + prelogin.encode("ascii", "replace"), hashlib.sha256
        ).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")

    def check_login_form_token(self, prelogin: str, form_token: str) -> bool:
        if not prelogin or not form_token:
            return False
        return same_token(self.login_form_token(prelogin), form_token)

    def _cookie(self, request: Any, name: str) -> str:
        return token_cookie(request, name)

    async def audit(
        self,
        now: float,
        actor: str,
        action: str,
        subject: str,
        outcome: str,
        *,
        reason: str = "",
        session_ref: str = "",
        details: Mapping[str, Any] | None = None,
    ) -> None:
        await self.runner.run(
            _append,
            self._audit_trail,
            at=now,
            actor=actor,
            action=action,
            subject=subject,
            outcome=outcome,
            reason=reason,
            session_ref=session_ref,
            details=details,
        )

    def seconds(self) -> float:
        """The console's clock, for what ends after the request's moment (a streamed
        export's closing audit event)."""
        return self._clock.seconds()

    def nav(self, role: str) -> list[tuple[str, str]]:
        return [(s.path, s.title) for s in self.sections if role == "admin" or role in s.roles]

    def render(
        self, template: str, status: int = 200, *, who: StaffCtx | None, **values: Any
    ) -> Response:
        staff = who.staff if who is not None and who.staff.name else None
        body = self.templates.get_template(template).render(
            site_title=self.site_title,
            staff=staff,
            role_title=ROLE_TITLES.get(staff.role, staff.role) if staff else "",
            nav=self.nav(staff.role) if staff else (),
            csrf_token=who.csrf_token if who is not None else "",
            **values,
        )
        return Response(status, body.encode("utf-8"))

    def message(
        self,
        status: int,
        title: str,
        message: str,
        *,
        who: StaffCtx | None = None,
        headers: Iterable[tuple[bytes, bytes]] = (),
    ) -> Response:
        logged_in = who is not None and bool(who.staff.name)
        page = self.render(
            "console/message.html",
            status,
            who=who,
            title=title,
            message=message,
            message_class="error" if status >= 400 else "notice",
            back="/" if logged_in else "/login",
            back_label="返回工作台" if logged_in else "前往登录",
        )
        return Response(page.status, page.body, page.content_type, tuple(headers))

    def outage(self, request: Any, who: StaffCtx | None) -> Response:
        """503 with ``Retry-After`` in the console's layout: the database is down.

        With *who* known (the gate passed before the database went away) the page
        keeps the member's navigation; when the session itself could not be looked
        up, nobody is known and the page offers to try again.
        """
        method = log_text(request.method)
        again = log_text(request.uri) if method in ("GET", "HEAD") else "/"
        if not again.startswith("/") or again.startswith("//"):
            again = "/"
        page = self.render(
            "console/message.html",
            503,
            who=who,
            title=OUTAGE_TITLE,
            message=OUTAGE_MESSAGE,
            message_class="error",
            back=again,
            back_label="重试",
        )
        return Response(page.status, page.body, page.content_type, retry_after_headers())

    def site(self, *, access_log: Callable[[str], None] | None = None) -> WebSite:
        """The console as a site; *access_log* gets one masked line per request."""
        routed = RoutedResource(self.table, self, tls=self._secure)
        return WebSite(
            routed.resource(),
            reactor=self._clock,
            body_limit=routed.body_limit,
            too_large=lambda path, limit: Response(413, b"", b"text/plain; charset=utf-8"),
            security_headers=security_headers(tls=self._secure),
            access_log=access_log,
        )


def lockout_help(policy: auth.LockoutPolicy) -> str:
    """What a refused login page says about lockouts: for how long, and whom to ask.

    The same words follow every refusal, whatever its reason: a page that said
    "locked" only for a real lock would tell anyone who tries a name five times
    whether that staff member exists.  A member who is locked out reads the rule
    here and the administrator, who sees the actual lock on the member's page
    (``ssgate staff show``), lifts it.
    """
    first, longest = _minutes(policy.lock_seconds(0)), _minutes(policy.max_lock_seconds)
    growth = f"，再次锁定时加倍，最长 {longest} 分钟" if longest > first else ""
    return (
        f"连续 {policy.threshold} 次登录失败后，该用户名将被锁定 {first} 分钟{growth}，"
        "锁定期间输入正确也不能登录；"
        f"累计失败 {policy.hard_cap} 次后，须由系统管理员解除锁定。"
        "如已被锁定，请等锁定时间过后再试，或请系统管理员解除锁定"
        "（控制台“工作人员”页面，或命令 ssgate staff unlock 您的用户名）。"
    )


def _minutes(seconds: float) -> int:
    return max(1, math.ceil(seconds / 60))


def _session_and_staff(
    conn: Connection, sessions: StaffSessions, session_id: str, now: float
) -> tuple[SessionLookup, auth.StaffRecord | None]:
    found = sessions.find(conn, session_id, now=now)
    record = auth.get_staff(conn, found.session.staff) if found.session else None
    return found, record


def _end_member(
    conn: Connection,
    sessions: StaffSessions,
    session_id: str,
    name: str,
    *,
    reason: str,
    now: float,
) -> int:
    """End every session of *name* (how many were live); this request's at once, since
    its end is audited now rather than at its next request."""
    ended = sessions.end_staff(conn, name, reason=reason, now=now)
    sessions.end(conn, session_id)
    return ended


def may_call(route: Route, role: str) -> bool:
    """Whether staff with *role* may call *route* (admin may call every route)."""
    return role == "admin" or STAFF in route.roles or role in route.roles


def _append(conn: Connection, /, audit_trail: AuditTrail, **event: Any) -> None:
    audit_trail(conn, **event)


def _login_names(name: str) -> tuple[str, str]:
    """(audit actor, audit subject) for a login name as typed.  A name that cannot be
    a staff name is not written to the log: it is often a password typed into the
    wrong field."""
    try:
        auth.check_staff_name(name)
    except auth.StaffNameError:
        return _INVALID_ACTOR, "(invalid-name)"
    return f"staff:{name}", name


ConsoleHandler = Callable[..., Awaitable[Response]]
