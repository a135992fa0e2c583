"""The employer application as a ``twisted.web`` Site: routing, checks, writing.

Every request passes the same gate, in this order, before a handler runs:

1. **identity** — only what the identity guard put on the connection
   (:func:`declare_app._guard.identity_of`); none → 403.  The actor is built from it
   alone; no header, parameter, form field or cookie is ever read for it.
2. **Host** — an IP literal or an allowed name (:mod:`._security`); else 403.
3. **route** — unknown path → 404; known path, other method → 405 with ``Allow``.
4. for anything but GET/HEAD: **Origin/Referer** absent or this host (403), then the
   body: pages take ``application/x-www-form-urlencoded`` with the ``csrf_token``
   field, the API takes ``application/json`` (or nothing) with the ``X-CSRF-Token``
   header (wrong type 415, unreadable 400, bad or missing token 403).  The batch
   import routes alone (:mod:`._imports`) also take ``multipart/form-data`` (the
   token in the header or the ``csrf_token`` part) and a body up to
   ``_imports.IMPORT_MAX_BODY``.

Bodies over ``max_body`` are refused with 413 as soon as their length is known (or,
chunked, as soon as they pass it), before any of it is kept.  Handlers run as
coroutines; their Deferred's result is written when it fires (the render returns
``NOT_DONE_YET``), and nothing is written to a client that has gone away.  A refusal
by the workflow becomes its status (404/409/422/501); anything unexpected is logged
and answered with a plain 500 that shows no traceback.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from declare_app._guard import identity_of
from declare_app._queries import EmployerQueries
from declare_app._units import get_unit
from declare_app.interfaces import DeclarationWorkflow, InvalidDeclaration
from declare_app.web import _api, _imports, _pages, _password_page, _query_pages
from declare_app.web._app import (
    JSON,
    ChangePassword,
    Ctx,
    EmployerApp,
    HttpError,
    Response,
    Runner,
    UnitNames,
    actor_of,
    status_for,
    workflow_refusal,
)
from declare_app.web._input import MalformedInput, parse_form_body, parse_json_body, parse_query
from declare_app.web._security import (
    CSRF_FIELD,
    CSRF_HEADER,
    SECURITY_HEADERS,
    CsrfTokens,
    host_allowed,
    origin_allowed,
)
from declare_app.web._templates import template_environment

DEFAULT_MAX_BODY = 1024 * 1024  # 1 MiB: a 10 000-line annual-base batch fits
DEFAULT_HOST_NAMES = ("localhost",)

Handler = Callable[..., Coroutine[Any, Any, Response]]

_ID = r"(?P<id>[A-Za-z0-9_~-][A-Za-z0-9_.~-]{0,127})"
_SLUG = r"(?P<type>[a-z][a-z-]{0,31})"


@dataclass(frozen=True)
class Route:
    pattern: re.Pattern[str]
    methods: dict[str, Handler]


def _route(pattern: str, **methods: Handler) -> Route:
    return Route(re.compile(pattern), methods)


ROUTES: tuple[Route, ...] = (
    _route(r"/", GET=_pages.home),
    _route(r"/static/employer\.css", GET=_pages.style),
    _route(r"/favicon\.ico", GET=_pages.no_icon),
    _route(r"/declarations", GET=_pages.inbox),
    _route(r"/declarations/new", GET=_pages.choose_type),
    _route(rf"/declarations/new/{_SLUG}", GET=_pages.new_form, POST=_pages.new_post),
    _route(
        rf"/declarations/new/{_SLUG}/import", GET=_imports.import_form, POST=_imports.import_post
    ),
    _route(rf"/declarations/new/{_SLUG}/template\.(?P<ext>xlsx|csv)", GET=_imports.template_file),
    _route(rf"/declarations/{_ID}", GET=_pages.detail),
    _route(rf"/declarations/{_ID}/edit", GET=_pages.edit_form, POST=_pages.edit_post),
    _route(rf"/declarations/{_ID}/submit", POST=_pages.submit),
    _route(rf"/declarations/{_ID}/withdraw", POST=_pages.withdraw),
    _route(rf"/declarations/{_ID}/resubmit", GET=_pages.resubmit_form, POST=_pages.resubmit_post),
    _route(rf"/declarations/{_ID}/voucher", GET=_pages.voucher),
    _route(rf"/declarations/{_ID}/voucher\.pdf", GET=_pages.voucher_pdf_download),
    _route(r"/password", GET=_password_page.password_form, POST=_password_page.password_post),
    _route(r"/queries", GET=_query_pages.index),
    _route(r"/queries/(?P<name>[a-z][a-z-]{0,31})", GET=_query_pages.query_page),
    _route(r"/queries/(?P<name>[a-z][a-z-]{0,31})\.csv", GET=_query_pages.query_csv),
    *(
        _route(rf"/api/v1/queries/{name}", GET=_query_pages.api_handler(name))
        for name in _query_pages.SPECS
    ),
    _route(r"/api/v1/whoami", GET=_api.whoami),
    _route(r"/api/v1/types", GET=_api.types),
    _route(r"/api/v1/declarations", GET=_api.list_declarations, POST=_api.create),
    _route(r"/api/v1/declarations/preview", POST=_api.preview),
    _route(r"/api/v1/declarations/import", POST=_imports.api_import),
    _route(rf"/api/v1/declarations/{_ID}", GET=_api.get, PUT=_api.update),
    _route(rf"/api/v1/declarations/{_ID}/submit", POST=_api.submit),
    _route(rf"/api/v1/declarations/{_ID}/withdraw", POST=_api.withdraw),
    _route(rf"/api/v1/declarations/{_ID}/resubmit", POST=_api.resubmit),
)

_TITLES = {
    400: "请求有误",
    403: "拒绝访问",
    404: "页面不存在",
    405: "不支持的请求方法",
    409: "无法办理",
    413: "内容过大",
    415: "不支持的内容类型",
    422: "内容有误",
    501: "暂未开放",
}
_REASONS = {422: b"Unprocessable Content"}  # not in twisted.web.http.RESPONSES
_INTERNAL_MESSAGE = "服务器内部错误，请稍后重试。如问题持续，请联系经办机构。"


def _media_type(value: bytes | None) -> tuple[str, str]:
    """(media type, charset) of a Content-Type header, lower-case; ("", "") if absent."""
    if value is None:
        return "", ""
    text = value.decode("latin-1")
    media, _, params = text.partition(";")
    charset = ""
    for param in params.split(";"):
        key, _, val = param.strip().partition("=")
        if key.lower() == "charset":
            charset = val.strip().strip('"').lower()
    return media.strip().lower(), charset


def _plain(status: int, api: bool, code: str, message: str) -> Response:
    """An error answer that needs no template (before an identity is known, or when
    rendering itself failed)."""
    if api:
        body = _api.json_response(status, _api.error_json(code, message)).body
        return Response(status, body, JSON)
    return Response(status, (message + "\n").encode("utf-8"), b"text/plain; charset=utf-8")


class EmployerResource(Resource):
    """The one resource: routes on the raw path and runs the gate described above."""

    isLeaf = True
    log = Logger()

    def __init__(self, app: EmployerApp) -> None:
        Resource.__init__(self)
        self.app = app

    def render(self, request: Request) -> int:
        for name, value in SECURITY_HEADERS:
            request.setHeader(name, value)
        request.setHeader(b"Server", b"ssgate")
        path = request.path or b"/"
        api = path.startswith(b"/api/")
        ctx: Ctx | None = None
        try:
            ctx = self._identify(request, api)
            handler, params = self._dispatch(request, ctx, path)
            result: Deferred[Response] = Deferred.fromCoroutine(handler(ctx, **params))
        except Exception as e:  # the gate's refusals; bugs become a plain 500 there too
            result = _failed_now(e)
        result.addErrback(self._failed, ctx, api, request)
        result.addCallback(self._write, request)
        result.addErrback(self._write_failed, request)
        return NOT_DONE_YET

    # -- the gate ---------------------------------------------------------------------------

    def _identify(self, request: Request, api: bool) -> Ctx:
        """The request's context, from the guarded connection's identity only."""
        identity = identity_of(request.channel)
        if identity is None:
            raise _Early(403, "no-identity", "未经安全专网接入，拒绝访问")
        if not host_allowed(request.getHeader(b"host"), self.app.allowed_host_names):
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

    def _dispatch(self, request: Request, ctx: Ctx, path: bytes) -> tuple[Handler, dict[str, str]]:
        try:
            text = path.decode("ascii")
        except UnicodeDecodeError:
            raise HttpError(404, "not-found", "页面不存在") from None
        if len(text) > 1 and text.endswith("/"):
            text = text[:-1]
        route, match = self._match(text)
        if route is None or match is None:
            raise HttpError(404, "not-found", "页面不存在")
        method = request.method.decode("ascii", "replace").upper()
        lookup = "GET" if method == "HEAD" else method
        handler = route.methods.get(lookup)
        if handler is None:
            allowed = sorted(set(route.methods) | ({"HEAD"} if "GET" in route.methods else set()))
            raise HttpError(
                405,
                "method-not-allowed",
                "不支持该请求方法",
                headers=((b"Allow", ", ".join(allowed).encode()),),
            )
        ctx.query = parse_query(request.uri)
        if lookup != "GET":
            self._check_write(request, ctx)
        return handler, match.groupdict()

    @staticmethod
    def _match(path: str) -> tuple[Route | None, re.Match[str] | None]:
        for route in ROUTES:
            match = route.pattern.fullmatch(path)
            if match is not None:
                return route, match
        return None, None

    def _check_write(self, request: Request, ctx: Ctx) -> None:
        if not origin_allowed(
            request.getHeader(b"origin"), request.getHeader(b"referer"), request.getHeader(b"host")
        ):
            self.log.warn(
                "refused cross-origin {method} {path} (session {session})",
                method=request.method,
                path=request.path,
                session=ctx.identity.session_id,
            )
            raise HttpError(403, "cross-origin", "请求来源不是本系统的页面，已拒绝")
        body = request.content.read() if request.content is not None else b""
        media, charset = _media_type(request.getHeader(b"content-type"))
        if charset not in ("", "utf-8", "utf8"):
            raise HttpError(415, "unsupported-charset", "请求内容应为 UTF-8 编码")
        if media == "multipart/form-data" and _imports.is_import_path(request.uri):
            self._check_upload(request, ctx, body)
            return
        if ctx.api:
            token = request.getHeader(CSRF_HEADER)
            if not self.app.csrf.valid(ctx.identity.session_id, token):
                self._csrf_refused(request, ctx)
            if body.strip() == b"" and media in ("", "application/json"):
                return
            if media != "application/json":
                raise HttpError(415, "unsupported-media-type", "请求内容类型应为 application/json")
            ctx.json = parse_json_body(body)
            ctx.has_json = True
            return
        if media != "application/x-www-form-urlencoded":
            raise HttpError(
                415, "unsupported-media-type", "表单内容类型应为 application/x-www-form-urlencoded"
            )
        ctx.form = parse_form_body(body)
        presented = [v for k, v in ctx.form if k == CSRF_FIELD]
        if len(presented) != 1 or not self.app.csrf.valid(ctx.identity.session_id, presented[0]):
            self._csrf_refused(request, ctx)

    def _check_upload(self, request: Request, ctx: Ctx, body: bytes) -> None:
        """A batch file (import routes only): the token in the header or the form."""
        content_type = (request.getHeader(b"content-type") or b"").decode("latin-1")
        ctx.upload = _imports.parse_multipart(body, content_type)
        ctx.form = ctx.upload.fields
        header = request.getHeader(CSRF_HEADER) if ctx.api else None
        presented = [v for k, v in ctx.form if k == CSRF_FIELD]
        token = header if header is not None or len(presented) != 1 else presented[0]
        if not self.app.csrf.valid(ctx.identity.session_id, token):
            self._csrf_refused(request, ctx)

    def _csrf_refused(self, request: Request, ctx: Ctx) -> None:
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

    # -- answers ----------------------------------------------------------------------------

    def _failed(self, failure: Failure, ctx: Ctx | None, api: bool, request: Request) -> Response:
        error = failure.value
        try:
            if isinstance(error, _Early):
                return _plain(error.status, api, error.code, error.message)
            if isinstance(error, MalformedInput):
                error = HttpError(400, error.code, error.message)
            if not isinstance(error, HttpError):
                refusal = workflow_refusal(cast(BaseException, error))
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
            failure,
            method=request.method,
            path=request.path,
        )
        return self._internal(ctx, api)

    def _error_response(self, error: HttpError, ctx: Ctx | None, api: bool) -> Response:
        if api or ctx is None:
            if api:
                r = _api.json_response(
                    error.status, _api.error_json(error.code, error.message, error.findings)
                )
                return Response(r.status, r.body, r.content_type, error.headers)
            return _plain(error.status, api, error.code, error.message)
        page = _pages.message_page(
            ctx,
            error.status,
            _TITLES.get(error.status, "出错了"),
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

    def _write(self, response: Response, request: Request) -> None:
        if getattr(request, "gone", False) or request.finished:
            return
        if not isinstance(response, Response):  # a handler bug, not the client's fault
            self.log.error(
                "handler for {path} returned {what!r}", path=request.path, what=type(response)
            )
            response = _plain(500, request.path.startswith(b"/api/"), "internal", _INTERNAL_MESSAGE)
        request.setResponseCode(response.status, _REASONS.get(response.status))
        if response.status != 204:
            request.setHeader(b"Content-Type", response.content_type)
        for name, value in response.headers:
            request.setHeader(name, value)
        request.setHeader(b"Content-Length", b"%d" % len(response.body))
        request.write(response.body)
        request.finish()

    def _write_failed(self, failure: Failure, request: Request) -> None:
        self.log.failure("writing the answer to {path} failed", failure, path=request.path)
        if not getattr(request, "gone", False) and not request.finished:
            try:
                request.loseConnection()
            except Exception:
                self.log.failure("closing the connection failed")


class _Early(Exception):
    """A refusal before the request is known to belong to anyone (plain answer)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _failed_now(error: Exception) -> Deferred[Response]:
    d: Deferred[Response] = Deferred()
    d.errback(Failure(error))
    return d


class EmployerRequest(Request):
    """A request whose body is limited and never parsed by Twisted itself (the
    application parses it strictly), and that knows when its client has gone."""

    log = Logger()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self._parsePOSTFormSubmission = False
        self.gone = False
        self.too_large = False
        self._received = 0

    def _limit(self) -> int:
        site = getattr(self.channel, "site", None)
        limit = int(getattr(site, "max_body", DEFAULT_MAX_BODY))
        path = getattr(self.channel, "_path", b"") or b""
        if _imports.is_import_path(path):  # a batch file: this route only
            return max(limit, _imports.IMPORT_MAX_BODY)
        return limit

    def refuse_too_large(self) -> None:
        """Answer 413 at once and close: the rest of the body is never read into memory."""
        self.too_large = True
        self.content = io.BytesIO()
        channel = self.channel
        if channel is None or channel.transport is None:
            return
        path = getattr(channel, "_path", b"") or b""
        limit = self._limit()
        message = f"请求内容过大，不能超过 {limit // 1024} KiB"
        answer = _plain(413, path.startswith(b"/api/"), "too-large", message)
        head = [b"HTTP/1.1 413 Payload Too Large"]
        head += [name + b": " + value for name, value in SECURITY_HEADERS]
        head += [
            b"Content-Type: " + answer.content_type,
            b"Content-Length: %d" % len(answer.body),
            b"Connection: close",
        ]
        channel.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + answer.body)
        channel.loseConnection()

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self._limit():
            self.refuse_too_large()
            return
        super().gotLength(length)  # type: ignore[no-untyped-call]

    def handleContentChunk(self, data: bytes) -> None:
        if self.too_large:
            return
        self._received += len(data)
        if self._received > self._limit():
            self.refuse_too_large()
            return
        super().handleContentChunk(data)  # type: ignore[no-untyped-call]

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self.too_large:
            return
        super().requestReceived(command, path, version)  # type: ignore[no-untyped-call]

    def connectionLost(self, reason: Failure) -> None:
        self.gone = True
        super().connectionLost(reason)  # type: ignore[no-untyped-call]

    def processingFailed(self, reason: Failure) -> None:
        """A failure outside the resource's own handling: log it, answer a plain 500."""
        self.log.failure("employer request {path} failed", reason, path=self.path)
        if self.gone or self.finished:
            return
        body = (_INTERNAL_MESSAGE + "\n").encode("utf-8")
        request: Request = self  # Twisted's own (untyped) methods, called as Request's
        request.setResponseCode(500)
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        request.setHeader(b"Content-Length", b"%d" % len(body))
        request.write(body)
        request.finish()


class EmployerChannel(HTTPChannel):
    """The site's own HTTP/1.1 channel (so the guard's identity is on
    ``request.channel``) that refuses an over-long body before ``100 Continue``."""

    def allHeadersReceived(self) -> None:
        length = self.length
        request = self.requests[-1] if self.requests else None
        if isinstance(request, EmployerRequest):
            limit = request._limit()
        else:
            limit = int(getattr(getattr(self, "site", None), "max_body", DEFAULT_MAX_BODY))
        if length is not None and length > limit and isinstance(request, EmployerRequest):
            request.refuse_too_large()
            return
        super().allHeadersReceived()  # type: ignore[no-untyped-call]


class EmployerSite(Site):
    # Built directly (not Site's HTTP/2-capable proxy): see declare_app._identity_page.
    protocol = EmployerChannel  # type: ignore[assignment]
    requestFactory = EmployerRequest
    displayTracebacks = False

    def __init__(self, resource: Resource, *, reactor: IReactorTime, max_body: int) -> None:
        Site.__init__(self, resource, reactor=reactor)
        self.max_body = max_body


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
    """
    if max_body < 1024:
        raise ValueError("max_body must be at least 1 KiB")
    if change_password is not None and not callable(getattr(runner, "call", None)):
        raise ValueError("change_password needs a runner with a login pool (runner.call)")
    app = EmployerApp(
        workflow=workflow,
        runner=runner,
        clock=clock,
        csrf=CsrfTokens(csrf_key),
        templates=template_environment(),
        allowed_host_names=frozenset(n.lower() for n in allowed_host_names),
        max_body=max_body,
        unit_names=unit_names,
        queries=queries,
        change_password=change_password,
    )
    return EmployerSite(EmployerResource(app), reactor=clock, max_body=max_body)


def registry_unit_name(conn: Connection, unit_code: str) -> str | None:
    """The name the agency registered for *unit_code* (``units`` table), or None."""
    unit = get_unit(conn, unit_code)
    return None if unit is None else unit.name
