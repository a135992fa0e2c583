"""Route tables: every route of a site declared once, with its method and role.

A :class:`RouteTable` is data: ``ssgate routes`` prints it, the role and isolation
sweeps walk it, and :class:`RoutedResource` serves it through Klein (werkzeug
routing on twisted.web).  A route without a role cannot be built, so a new page
cannot escape the sweeps.

Serving, per request: Klein matches the path (404 for an unknown path, 405 with
``Allow`` for another method, HEAD answered as GET), then the site's
:class:`Dispatcher` runs its gate (who is asking, may they, is the write genuine)
and the handler, and the answer is written here — never to a client that has gone.
A streamed answer (:class:`~web.Streamed`) is written as the client takes it, and the
request is done only when its body has ended.
Klein cancels a handler whose client left; we let the work finish instead (a
database call on the pool cannot be taken back) and only drop the answer.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from klein import Klein
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import BaseConverter

from ._answers import TEXT, Response, Streamed, plain
from ._outage import OUTAGE_MESSAGE, is_outage, retry_after_headers
from ._request import INTERNAL_MESSAGE, CappedRequest, write, write_stream

METHODS = frozenset({"GET", "POST", "PUT", "DELETE"})
_PATH_SHAPE = re.compile(r"^/[A-Za-z0-9_./<>:~-]*$")

Handler = Callable[..., Awaitable[Response]]


@dataclass(frozen=True)
class Route:
    """One method on one path, who may call it, and what it takes.

    *path* is a werkzeug rule (``/declarations/<id:id>``); *roles* the site's role
    names allowed to call it (``public`` for no login); *max_body* its body cap when
    it differs from the site's; *multipart* whether it takes ``multipart/form-data``.
    """

    method: str
    path: str
    roles: tuple[str, ...]
    handler: Handler = field(compare=False, repr=False)
    max_body: int | None = None
    multipart: bool = False

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"route {self.path}: unknown method {self.method!r}")
        if _PATH_SHAPE.fullmatch(self.path) is None:
            raise ValueError(f"route path {self.path!r} is not a plain path rule")
        if not self.roles or any(not r for r in self.roles):
            raise ValueError(f"route {self.method} {self.path} has no role")

    @property
    def role(self) -> str:
        """The roles as one column of ``ssgate routes``."""
        return "|".join(self.roles)

    @property
    def is_api(self) -> bool:
        return self.path.startswith("/api/")


class _Regex(BaseConverter):
    """``<id:…>``-style converters are registered per table from its patterns."""

    part_isolating = True


@dataclass(frozen=True)
class RouteTable:
    """A site's routes.  *roles* are the role names the site knows (a route naming
    another is a bug caught here); *converters* name regular expressions usable in
    paths as ``<name:param>``; *max_body* is the default body cap."""

    site: str
    routes: tuple[Route, ...]
    roles: frozenset[str]
    max_body: int
    converters: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        seen: set[tuple[str, str]] = set()
        for route in self.routes:
            unknown = set(route.roles) - self.roles
            if unknown:
                raise ValueError(f"route {route.method} {route.path}: unknown roles {unknown}")
            key = (route.method, route.path)
            if key in seen:
                raise ValueError(f"route {route.method} {route.path} is declared twice")
            seen.add(key)

    def rows(self) -> list[tuple[str, str, str]]:
        """(method, path, role) of every route, HEAD beside each GET."""
        out: list[tuple[str, str, str]] = []
        for route in self.routes:
            out.append((route.method, route.path, route.role))
            if route.method == "GET":
                out.append(("HEAD", route.path, route.role))
        return out


class Dispatcher(Protocol):
    """A site's gate and error pages, around the handlers of its table."""

    async def handle(
        self, request: CappedRequest, route: Route, params: Mapping[str, str]
    ) -> Response:
        """Admit the request (identity or session, role, write checks) and run the
        route's handler; refusals become the site's error answers."""
        ...

    async def unrouted(
        self, request: CappedRequest, status: int, allowed: Sequence[str]
    ) -> Response:
        """The answer for a path no route has (404) or a method it lacks (405, with
        *allowed*)."""
        ...


class RoutedResource:
    """A :class:`RouteTable` served by Klein through a :class:`Dispatcher`."""

    log = Logger()

    def __init__(self, table: RouteTable, dispatcher: Dispatcher, *, tls: bool) -> None:
        self.table = table
        self._dispatcher = dispatcher
        self._tls = tls
        self.app = Klein()
        for name, pattern in table.converters.items():
            self.app.url_map.converters[name] = type(
                f"{name.title()}Converter", (_Regex,), {"regex": pattern}
            )
        self._limits: list[tuple[Any, int]] = []
        by_path: dict[str, list[Route]] = {}
        for route in table.routes:
            by_path.setdefault(route.path, []).append(route)
        for path, routes in by_path.items():
            for route in routes:
                self.app.route(
                    path,
                    methods=[route.method],
                    endpoint=f"{route.method} {path}",
                    strict_slashes=False,
                )(self._endpoint(route))
        self._adapter = self.app.url_map.bind("localhost")

    def resource(self) -> Resource:
        return _Front(self)

    def body_limit(self, uri: bytes) -> int:
        """The body cap of the route *uri* names (the table's default if none)."""
        path = uri.split(b"?", 1)[0].decode("latin-1")
        limit = self.table.max_body
        for method in ("POST", "PUT"):
            try:
                endpoint, _ = self._adapter.match(path, method=method)
            except HTTPException:
                continue
            for route in self.table.routes:
                if f"{route.method} {route.path}" == endpoint and route.max_body:
                    limit = max(limit, route.max_body)
        return limit

    def unrouted(self, request: CappedRequest, status: int, allowed: Sequence[str]) -> Any:
        """Answer a request no route takes (see :class:`_Front`)."""
        d = Deferred.fromCoroutine(self._dispatcher.unrouted(request, status, allowed))
        self._answer(request, d)
        return NOT_DONE_YET

    def _endpoint(self, route: Route) -> Callable[..., Deferred[None]]:
        def endpoint(request: CappedRequest, **params: str) -> Deferred[None]:
            d = Deferred.fromCoroutine(self._dispatcher.handle(request, route, params))
            return self._answer(request, d)

        return endpoint

    def _answer(self, request: CappedRequest, d: Deferred[Response]) -> Deferred[None]:
        done: Deferred[None] = Deferred()

        def send(response: Response) -> Deferred[None] | None:
            if not isinstance(response, Response):  # a handler bug, not the client's
                self.log.error("{path} answered {what!r}", path=request.path, what=response)
                response = plain(500, INTERNAL_MESSAGE)
            if isinstance(response, Streamed):
                return write_stream(request, response, tls=self._tls)
            write(request, response, tls=self._tls)
            return None

        def failed(failure: Failure) -> None:
            answer = plain(500, INTERNAL_MESSAGE)
            if is_outage(failure.value):  # an outage, not a bug: 503, no traceback
                self.log.warn("request {path} failed: database unavailable", path=request.path)
                answer = Response(503, plain(503, OUTAGE_MESSAGE).body, TEXT, retry_after_headers())
            else:
                self.log.failure("request {path} failed", failure, path=request.path)
            if not request.gone and not request.finished:
                request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")  # type: ignore[no-untyped-call]
                write(request, answer, tls=self._tls)

        d.addCallback(send)
        d.addErrback(failed)
        # Klein cancels what an endpoint returns when the client goes: hand it a
        # Deferred of its own, so that the work itself is never cancelled.
        d.addBoth(lambda _: None if done.called else done.callback(None))
        return done


class _Front(Resource):
    """Answers, through the site's dispatcher, what Klein would answer by itself: a
    Host or path that is not UTF-8, a path no route has (404) and a method the path
    lacks (405 with ``Allow``); everything else goes to Klein."""

    isLeaf = True

    def __init__(self, routed: RoutedResource) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._routed = routed
        self._klein = routed.app.resource()
        self._adapter = routed.app.url_map.bind("localhost")

    def render(self, request: Any) -> Any:
        try:
            request.getRequestHostname().decode("utf-8")
            path = "/" + b"/".join(request.postpath).decode("utf-8")
        except UnicodeDecodeError:
            return self._routed.unrouted(request, 404, ())
        try:
            self._adapter.match(path, method=request.method.decode("ascii", "replace"))
        except MethodNotAllowed as e:
            return self._routed.unrouted(request, 405, sorted(e.valid_methods or ()))
        except HTTPException:
            return self._routed.unrouted(request, 404, ())
        return self._klein.render(request)
