"""The employer application: its route table and its gate, on the shared web layer.

Every request passes the same gate, in this order, before a handler runs:

1. **identity** — only what the identity guard put on the connection
   (:func:`declare_app._guard.identity_of`); none → 403.  The actor is built from it
   alone; no header, parameter, form field or cookie is ever read for it.
2. **Host** — an IP literal or an allowed name (:mod:`web`); else 403.
3. **route** — Klein matches :data:`ROUTES`: unknown path → 404; known path, other
   method → 405 with ``Allow``.
4. for anything but GET/HEAD: **Origin/Referer** absent or this host (403), then the
   body (:func:`web.read_body`): pages take ``application/x-www-form-urlencoded``
   with the ``csrf_token`` field, the API takes ``application/json`` (or nothing)
   with the ``X-CSRF-Token`` header (wrong type 415, unreadable 400, bad or missing
   token 403).  The batch import routes and the evidence upload alone also take
   ``multipart/form-data`` (the token in the header or the ``csrf_token`` part) and a
   body up to ``_imports.IMPORT_MAX_BODY`` / ``_evidence_pages.EVIDENCE_MAX_BODY``.

Bodies over their route's cap are refused with 413 as soon as their length is known
(:class:`web.CappedRequest`).  Handlers run as coroutines; a refusal by the workflow
becomes its status (404/409/422/501), shown as a page or, under ``/api/``, as an RFC
9457 problem document; anything unexpected is logged and answered with a plain 500
that shows no traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.server import Request, Site

import web
from declare_app._guard import identity_of
from declare_app._queries import EmployerQueries
from declare_app._units import get_unit
from declare_app.interfaces import DeclarationWorkflow, InvalidDeclaration
from declare_app.web import (
    _api,
    _evidence_pages,
    _imports,
    _pages,
    _password_page,
    _query_pages,
)
from declare_app.web._app import (
    ChangePassword,
    Ctx,
    EmployerApp,
    HttpError,
    Reader,
    Response,
    Runner,
    UnitNames,
    actor_of,
    status_for,
    workflow_refusal,
)
from declare_app.web._templates import template_environment

DEFAULT_MAX_BODY = 1024 * 1024  # 1 MiB: a 10 000-line annual-base batch fits
DEFAULT_HOST_NAMES = ("localhost",)
DEFAULT_AGENCY_NAME = "社会保险经办机构"
EMPLOYER = "employer"  # the one role: the unit of the gateway session

_INTERNAL_MESSAGE = "服务器内部错误，请稍后重试。如问题持续，请联系经办机构。"


def _r(method: str, path: str, handler: web.Handler, **kw: Any) -> web.Route:
    return web.Route(method, path, (EMPLOYER,), handler, **kw)


_IMPORT = {"max_body": _imports.IMPORT_MAX_BODY, "multipart": True}
_EVIDENCE = {"max_body": _evidence_pages.EVIDENCE_MAX_BODY, "multipart": True}

ROUTES = web.RouteTable(
    site="employer",
    roles=frozenset({EMPLOYER}),
    max_body=DEFAULT_MAX_BODY,
    converters={
        # Not the name of a fixed sibling path, so that GET of a POST-only path such as
        # /api/v1/declarations/preview is that path's 405, not a "no such id" 404.
        "id": r"(?!(?:preview|import)$)[A-Za-z0-9_~-][A-Za-z0-9_.~-]{0,127}",
        "slug": r"[a-z][a-z-]{0,31}",
        "ext": r"xlsx|csv",
        "n": r"[0-9]{1,9}",
    },
    routes=(
        _r("GET", "/", _pages.home),
        _r("GET", "/static/employer.css", _pages.style),
        _r("GET", "/favicon.ico", _pages.no_icon),
        _r("GET", "/declarations", _pages.inbox),
        _r("GET", "/declarations/new", _pages.choose_type),
        _r("GET", "/declarations/new/<slug:type>", _pages.new_form),
        _r("POST", "/declarations/new/<slug:type>", _pages.new_post),
        _r("GET", "/declarations/new/<slug:type>/import", _imports.import_form),
        _r("POST", "/declarations/new/<slug:type>/import", _imports.import_post, **_IMPORT),
        _r("GET", "/declarations/new/<slug:type>/template.<ext:ext>", _imports.template_file),
        _r("GET", "/declarations/<id:id>", _pages.detail),
        _r("GET", "/declarations/<id:id>/edit", _pages.edit_form),
        _r("POST", "/declarations/<id:id>/edit", _pages.edit_post),
        _r("POST", "/declarations/<id:id>/submit", _pages.submit),
        _r("POST", "/declarations/<id:id>/withdraw", _pages.withdraw),
        _r("GET", "/declarations/<id:id>/resubmit", _pages.resubmit_form),
        _r("POST", "/declarations/<id:id>/resubmit", _pages.resubmit_post),
        _r("POST", "/declarations/<id:id>/attachments", _evidence_pages.upload, **_EVIDENCE),
        _r("GET", "/declarations/<id:id>/attachments/<n:n>", _evidence_pages.download),
        _r("POST", "/declarations/<id:id>/attachments/<n:n>/delete", _evidence_pages.remove),
        _r("GET", "/declarations/<id:id>/voucher", _pages.voucher),
        _r("GET", "/declarations/<id:id>/voucher.pdf", _pages.voucher_pdf_download),
        _r("GET", "/password", _password_page.password_form),
        _r("POST", "/password", _password_page.password_post),
        _r("GET", "/queries", _query_pages.index),
        _r("GET", "/queries/<slug:name>", _query_pages.query_page),
        _r("GET", "/queries/<slug:name>.csv", _query_pages.query_csv),
        *(
            _r("GET", f"/api/v1/queries/{name}", _query_pages.api_handler(name))
            for name in _query_pages.SPECS
        ),
        _r("GET", "/api/v1/whoami", _api.whoami),
        _r("GET", "/api/v1/types", _api.types),
        _r("GET", "/api/v1/declarations", _api.list_declarations),
        _r("POST", "/api/v1/declarations", _api.create),
        _r("POST", "/api/v1/declarations/preview", _api.preview),
        _r("POST", "/api/v1/declarations/import", _imports.api_import, **_IMPORT),
        _r("GET", "/api/v1/declarations/<id:id>", _api.get),
        _r("PUT", "/api/v1/declarations/<id:id>", _api.update),
        _r("POST", "/api/v1/declarations/<id:id>/submit", _api.submit),
        _r("POST", "/api/v1/declarations/<id:id>/withdraw", _api.withdraw),
        _r("POST", "/api/v1/declarations/<id:id>/resubmit", _api.resubmit),
    ),
)


class _Early(Exception):
    """A refusal before the request is known to belong to anyone (plain answer)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _plain(status: int, api: bool, code: str, message: str) -> Response:
    """An error answer that needs no template."""
    return web.problem(status, code, message) if api else web.plain(status, message)


class EmployerDispatcher:
    """The gate described in the module docstring, and the site's error answers."""

    log = Logger()

    def __init__(self, app: EmployerApp) -> None:
        self.app = app

    async def handle(
        self, request: web.CappedRequest, route: web.Route, params: Mapping[str, str]
    ) -> Response:
        ctx: Ctx | None = None
        try:
            ctx = self._identify(request, route.is_api)
            ctx.query = web.parse_query(request.uri)
            if route.method != "GET":
                self._check_write(request, ctx, route)
            return await route.handler(ctx, **params)
        except Exception as e:  # the gate's refusals and the workflow's; bugs too
            return self._failed(e, ctx, route.is_api, request)

    async def unrouted(
        self, request: web.CappedRequest, status: int, allowed: Sequence[str]
    ) -> Response:
        api = (request.path or b"").startswith(b"/api/")
        ctx: Ctx | None = None
        try:
            ctx = self._identify(request, api)
            if status == 405:
                raise HttpError(
                    405,
                    "method-not-allowed",
                    "不支持该请求方法",
                    headers=((b"Allow", ", ".join(allowed).encode("ascii")),),
                )
            raise HttpError(404, "not-found", "页面不存在")
        except Exception as e:
            return self._failed(e, ctx, api, request)

    # -- the gate ---------------------------------------------------------------------------

    def _identify(self, request: Request, api: bool) -> Ctx:
        """The request's context, from the guarded connection's identity only."""
        identity = identity_of(request.channel)
        if identity is None:
            raise _Early(403, "no-identity", "未经安全专网接入，拒绝访问")
        if not web.host_allowed(request.getHeader(b"host"), self.app.allowed_host_names):
            raise _Early(
                403, "bad-host", "请求的主机名不被允许，请通过安全专网客户端的本机地址访问"
            )
        return Ctx(
            app=self.app,
            request=request,
            identity=identity,
            actor=actor_of(identity),
            api=api,
            query={},
        )

    def _check_write(self, request: web.CappedRequest, ctx: Ctx, route: web.Route) -> None:
        if not web.origin_allowed(
            request.getHeader(b"origin"), request.getHeader(b"referer"), request.getHeader(b"host")
        ):
            self.log.warn(
                "refused cross-origin {method} {path} (session {session})",
                method=request.method,
                path=request.path,
                session=ctx.identity.session_id,
            )
            raise HttpError(403, "cross-origin", "请求来源不是本系统的页面，已拒绝")

        def check_token(token: str | bytes | None) -> None:
            if self.app.csrf.valid(ctx.identity.session_id, token):
                return
            self.log.warn(
                "refused {method} {path} without a valid CSRF token (session {session})",
                method=request.method,
                path=request.path,
                session=ctx.identity.session_id,
            )
            raise HttpError(
                403,
                "csrf",
                "页面已失效或请求来源不明（例如安全专网已重新连接），请返回并刷新页面后重试",
            )

        body = web.read_body(
            request,
            api=ctx.api,
            multipart=_multipart_limits(route),
            check_token=check_token,
        )
        ctx.form, ctx.json, ctx.has_json = body.form, body.json, body.has_json
        ctx.upload = body.upload

    # -- answers ----------------------------------------------------------------------------

    def _failed(self, error: Exception, ctx: Ctx | None, api: bool, request: Request) -> Response:
        try:
            if isinstance(error, _Early):
                return _plain(error.status, api, error.code, error.message)
            if isinstance(error, web.MalformedInput):
                error = HttpError(400, error.code, error.message)
            if not isinstance(error, HttpError):
                refusal = workflow_refusal(error)
                if refusal is not None:
                    findings = refusal.findings if isinstance(refusal, InvalidDeclaration) else ()
                    error = HttpError(status_for(refusal), refusal.code, refusal.message, findings)
            if isinstance(error, HttpError):
                return self._error_response(error, ctx, api)
        except Exception:
            self.log.failure("rendering an error answer failed")
            return _plain(500, api, "internal", _INTERNAL_MESSAGE)
        self.log.failure(
            "employer request {method} {path} failed",
            method=request.method,
            path=request.path,
        )
        return self._internal(ctx, api)

    def _error_response(self, error: HttpError, ctx: Ctx | None, api: bool) -> Response:
        if api:
            return web.problem(
                error.status, error.code, error.message, error.findings, error.headers
            )
        if ctx is None:
            return web.plain(error.status, error.message)
        page = _pages.message_page(
            ctx,
            error.status,
            web.TITLES.get(error.status, "出错了"),
            error.message,
            details=[f.message for f in error.findings],
        )
        return Response(page.status, page.body, page.content_type, error.headers)

    def _internal(self, ctx: Ctx | None, api: bool) -> Response:
        if api or ctx is None:
            return _plain(500, api, "internal", _INTERNAL_MESSAGE)
        try:
            return _pages.message_page(
                ctx, 500, "服务器内部错误", _INTERNAL_MESSAGE, back="/", back_label="返回首页"
            )
        except Exception:
            self.log.failure("rendering the 500 page failed")
            return _plain(500, api, "internal", _INTERNAL_MESSAGE)


def _multipart_limits(route: web.Route) -> web.MultipartLimits | None:
    """The part caps of a route that takes a file: evidence (5 MB) or a batch."""
    if not route.multipart:
        return None
    if route.path.endswith("/attachments"):
        return _evidence_pages.MULTIPART_LIMITS
    return _imports.MULTIPART_LIMITS


def _too_large(path: bytes, limit: int) -> Response:
    message = f"请求内容过大，不能超过 {limit // 1024} KiB"
    return _plain(413, path.startswith(b"/api/"), "too-large", message)


def employer_site(
    *,
    workflow: DeclarationWorkflow,
    runner: Runner,
    clock: IReactorTime,
    csrf_key: bytes,
    allowed_host_names: Iterable[str] = DEFAULT_HOST_NAMES,
    max_body: int = DEFAULT_MAX_BODY,
    unit_names: UnitNames | None = None,
    queries: EmployerQueries | None = None,
    change_password: ChangePassword | None = None,
    access_log: Callable[[str], None] | None = None,
    reader: Reader | None = None,
    agency_name: str = DEFAULT_AGENCY_NAME,
) -> Site:
    """The employer web application and JSON API, to serve behind
    :class:`declare_app._guard.IdentityGuardFactory`.

    *runner* runs every workflow call in a transaction off the reactor; *clock* gives
    ``now`` for the workflow and runs the HTTP timeouts; *csrf_key* (≥ 16 bytes, kept
    across restarts so open forms stay valid) keys the CSRF tokens;
    *allowed_host_names* are the host names (besides IP literals) a browser may use to
    reach the local client; *unit_names* (e.g. :func:`registry_unit_name`) gives the
    unit's name for the home page and the PDF voucher (without it they show the code
    only).  *queries* answers the §5.8 queries (without it those pages answer 501);
    *change_password* (:meth:`auth.Authenticator.change_password`) enables 密码修改
    and runs on the runner's login pool, so *runner* must then also have ``call``.
    *access_log* (:meth:`web.AccessLog.writer`) gets one line per request, its query
    values and anything in its path that could name a person masked.  *reader*
    (``ssgate._serve.Runner``) runs the queries' reads in read-only transactions on
    the database's read pool; without it they run on *runner*.  *agency_name* is the
    经办机构 the vouchers name (``[agency] name``).
    """
    if max_body < 1024:
        raise ValueError("max_body must be at least 1 KiB")
    if change_password is not None and not callable(getattr(runner, "call", None)):
        raise ValueError("change_password needs a runner with a login pool (runner.call)")
    app = EmployerApp(
        workflow=workflow,
        runner=runner,
        clock=clock,
        csrf=web.CsrfTokens(csrf_key),
        templates=template_environment(),
        allowed_host_names=frozenset(n.lower() for n in allowed_host_names),
        max_body=max_body,
        unit_names=unit_names,
        queries=queries,
        change_password=change_password,
        reader=reader,
        agency_name=agency_name,
    )
    table = ROUTES if max_body == ROUTES.max_body else _with_max_body(ROUTES, max_body)
    routed = web.RoutedResource(table, EmployerDispatcher(app), tls=False)
    return web.WebSite(
        routed.resource(),
        reactor=clock,
        body_limit=routed.body_limit,
        too_large=_too_large,
        security_headers=web.security_headers(tls=False),
        access_log=access_log,
    )


def _with_max_body(table: web.RouteTable, max_body: int) -> web.RouteTable:
    return web.RouteTable(
        site=table.site,
        routes=table.routes,
        roles=table.roles,
        max_body=max_body,
        converters=table.converters,
    )


def registry_unit_name(conn: Connection, unit_code: str) -> str | None:
    """The name the agency registered for *unit_code* (``units`` table), or None."""
    unit = get_unit(conn, unit_code)
    return None if unit is None else unit.name
