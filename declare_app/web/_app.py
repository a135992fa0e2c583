"""What every employer request handler gets: the application and the request context.

Handlers are coroutines ``async def handler(ctx, **params) -> Response``: they read
the already-checked request (:class:`Ctx`: the actor from the gateway identity, the
parsed form or JSON body, the query), call the workflow through the runner — always
``await ctx.run(fn, ...)``, so the blocking call runs on the database pool — and
return a :class:`Response` that the site writes once the Deferred fires.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeAlias, TypeVar

from jinja2 import Environment
from sqlalchemy import Connection
from twisted.internet.interfaces import IReactorTime
from twisted.web.server import Request

import audit
import auth
import web
from auth import AuthOutcome, Identity
from declare_app._queries import EmployerQueries, append_events
from declare_app.interfaces import (
    Actor,
    DeclarationError,
    DeclarationWorkflow,
    InvalidDeclaration,
    NotFound,
    Status,
)

# auth's one runner (``ssgate._serve.Runner`` in production): ``run`` is one transaction
# on the database pool, ``call`` a login call (argon2) on the login pool.
Runner: TypeAlias = auth.Runner
LoginRunner: TypeAlias = auth.Runner


if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

P = ParamSpec("P")
T = TypeVar("T")


class RowStream(Protocol):
    """Items read a batch at a time in one open read-only transaction
    (:class:`ssgate._db.ReadStream`)."""

    def next(self, count: int) -> Deferred[list[Any]]:
        """Up to *count* more items; none when there are no more."""
        ...

    def close(self) -> Deferred[None]: ...


class Reader(Protocol):
    """The read path (``ssgate._serve.Runner``): ``read`` runs ``fn(conn, ...)`` in one
    read-only transaction on the database's read pool, never behind the write lock;
    ``stream`` reads the items of ``fn(conn, ...)`` as they are asked for."""

    def read(
        self, fn: Callable[Concatenate[Connection, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> Deferred[T]: ...

    def stream(
        self,
        fn: Callable[Concatenate[Connection, P], Iterable[Any]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> RowStream: ...


# (conn, unit code) -> the unit's registered name, for the home page and the voucher.
UnitNames = Callable[[Connection, str], str | None]


class ChangePassword(Protocol):
    """:meth:`auth.Authenticator.change_password`: blocking, for the login pool."""

    def __call__(
        self,
        principal: str,
        old_password: str,
        otp: str,
        new_password: str,
        *,
        source: str,
        now: float,
    ) -> AuthOutcome: ...


HTML = web.HTML
JSON = web.JSON
Response = web.Response


@dataclass
class EmployerApp:
    """The collaborators every handler shares."""

    workflow: DeclarationWorkflow
    runner: Runner
    clock: IReactorTime
    csrf: web.CsrfTokens
    templates: Environment
    allowed_host_names: frozenset[str]
    max_body: int
    unit_names: UnitNames | None = None
    queries: EmployerQueries | None = None
    change_password: ChangePassword | None = None
    reader: Reader | None = None  # without it, queries read on the write path
    agency_name: str = "社会保险经办机构"  # the 经办机构 on vouchers ([agency] name)

    def login_runner(self) -> LoginRunner:
        """The runner's login pool (checked by ``employer_site`` when a password
        change is configured)."""
        return self.runner


@dataclass
class Ctx:
    """One admitted request: who (from the gateway only), what they sent."""

    app: EmployerApp
    request: Request
    identity: Identity
    actor: Actor
    api: bool
    query: dict[str, list[str]]
    form: list[tuple[str, str]] = field(default_factory=list)
    json: Any = None
    has_json: bool = False
    upload: web.Upload | None = None  # a multipart batch file (import routes only)

    @property
    def csrf_token(self) -> str:
        return self.app.csrf.token(self.identity.session_id)

    def now(self) -> float:
        return self.app.clock.seconds()

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(conn, *args, **kwargs)`` in one transaction on the runner's pool, awaited;
        committed even when the workflow refuses (then the refusal is raised here)."""
        result = await self.app.runner.run(recording_refusals, fn, *args, **kwargs)
        if isinstance(result, DeclarationError):
            raise result
        return result

    async def read_query(self, method: str, /, *args: Any, **kwargs: Any) -> Any:
        """``app.queries.<method>(conn, *args, **kwargs)`` on the read path, awaited: a
        read-only transaction for the query, then its audit event (refusals too)
        appended in a short write transaction before the answer or refusal is given."""
        queries = self.app.queries
        if queries is None:
            raise LookupError("no queries configured")
        reader = self.app.reader
        if reader is None:
            return await self.run(getattr(queries, method), *args, **kwargs)
        events: list[audit.AuditEvent] = []
        call = getattr(queries.reading(events), method)
        try:
            result = await reader.read(recording_refusals, call, *args, **kwargs)
        finally:
            if events:
                await self.app.runner.run(append_events, events)
        if isinstance(result, DeclarationError):
            raise result
        return result

    def form_value(self, name: str) -> str:
        for key, value in self.form:
            if key == name:
                return value
        return ""

    def query_value(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def page(self, template: str, status: int = 200, **values: Any) -> Response:
        """Render *template* with the common values (who, token, nav) added."""
        body = self.app.templates.get_template(template).render(
            who=self.identity,
            csrf_token=self.csrf_token,
            **values,
        )
        return Response(status, body.encode("utf-8"))


def recording_refusals(
    conn: Connection, call: Callable[..., Any], *args: Any, **kwargs: Any
) -> Any:
    """``call(conn, ...)`` with a refusal returned, not raised: the workflow has undone
    its writes and appended its ``refused`` audit event to *conn*, and the transaction
    must commit to keep that event (the DeclarationWorkflow contract)."""
    try:
        return call(conn, *args, **kwargs)
    except DeclarationError as refusal:
        return refusal


def actor_of(identity: Identity) -> Actor:
    """The employer actor: every part of it from the gateway's signed identity."""
    return Actor(
        kind="employer",
        name=identity.account,
        unit_code=identity.unit_code,
        session_id=identity.session_id,
    )


def redirect(location: str) -> Response:
    """303 See Other: after a form POST the browser GETs *location*."""
    body = f'<!doctype html><meta charset="utf-8"><a href="{escape(location)}">继续</a>\n'
    return Response(303, body.encode("utf-8"), headers=((b"Location", location.encode()),))


def plain_json(value: Any) -> Any:
    """*value* with only JSON types (mappings, sequences, str, finite numbers, None)."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_json(v) for v in value]
    return str(value)


HttpError = web.HttpError


def workflow_refusal(error: BaseException) -> DeclarationError | None:
    """The workflow's refusal in *error*, if it is one."""
    return error if isinstance(error, DeclarationError) else None


# The workflow's refusal codes that are not about the declaration's state.
_STATUS_OF_CODE = {
    "not-found": 404,
    "invalid": 422,
    "bad-payload": 422,
    "bad-type": 422,
    "bad-reason": 422,
    "forbidden": 403,
    "unit-unknown": 403,  # the unit is not registered for online declaration
    "too-large": 413,
    # a batch file (declare_app._batch) refused whole, or no line of it acceptable
    "bad-file": 422,
    "bad-header": 422,
    "no-lines": 422,
    "too-many-lines": 413,
    "batch-refused": 422,
    # evidence (declare_app._evidence): not PDF/JPEG/PNG by content, or too many files
    "bad-evidence": 422,
    "too-many-files": 422,
}


def status_for(error: DeclarationError) -> int:
    """The HTTP status of a workflow refusal: 404 not found (also another unit's), 422
    invalid, 403 not allowed, 413 too large, else 409 (the
    declaration's state does not allow it: wrong-status, resubmitted, …)."""
    if isinstance(error, NotFound):
        return 404
    if isinstance(error, InvalidDeclaration):
        return 422
    return _STATUS_OF_CODE.get(error.code, 409)


def status_param(ctx: Ctx) -> Status | None:
    """The ``status`` query parameter as a :class:`Status` (400 if it is not one)."""
    value = ctx.query_value("status")
    if value in (None, ""):
        return None
    for s in Status:
        if s.value == value:
            return s
    raise HttpError(400, "bad-status", "状态参数无效")
