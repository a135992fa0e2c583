"""A database that is down or unreachable is an outage, not a bug.

Both sites answer it with ``503 Service Unavailable`` and ``Retry-After`` — a page in
the site's layout, or under ``/api/`` a problem document with the code
``database-unavailable`` — instead of the 500 "internal error" a bug gets, and the
log says "unavailable" once a minute rather than a traceback per request.  Nothing is
to be restarted: the next request that reaches the database works again.

What counts (:func:`is_outage`): the connection could not be made or was lost
(SQLAlchemy's ``connection_invalidated``, a pool that gave no connection in time,
psycopg's ``OperationalError`` and ``InterfaceError``), and SQLite's own words for a
file it cannot use ("unable to open database file", "disk I/O error", "database or
disk is full", "database is locked" after the busy timeout, a read-only file).
SQLite's other ``OperationalError`` messages ("no such table", a syntax error) are
bugs or a missing migration, and stay 500.

:class:`OutageRunner` wraps the :class:`auth.Runner` a site is given, so that every
handler's database call raises :class:`DatabaseUnavailable` (an :class:`HttpError`)
on an outage and every site's existing refusal path renders it; the route layer and
the console shell also recognise the raw exceptions, for a call that bypassed it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import Connection
from sqlalchemy import exc as sa_exc
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

import auth

from ._answers import HttpError

P = ParamSpec("P")
T = TypeVar("T")

RETRY_AFTER_SECONDS = 30
OUTAGE_CODE = "database-unavailable"
OUTAGE_TITLE = "服务暂不可用"
# After a failed submission the outcome may be unknown (the database can fail after a
# commit): check before submitting again, rather than declare twice.
OUTAGE_MESSAGE = (
    "数据库暂时无法访问，请稍后重试。如刚才在提交，请稍后先查看是否已办理，再决定是否重新提交。"
)
REPORT_EVERY = 60.0  # seconds between two log lines about an outage

_RETRY_AFTER = ((b"Retry-After", b"%d" % RETRY_AFTER_SECONDS),)

_SQLITE_OUTAGES = (
    "unable to open database",
    "disk i/o error",
    "database or disk is full",
    "database is locked",
    "readonly database",
)


class DatabaseUnavailable(HttpError):
    """The database could not be reached: 503 with ``Retry-After``."""

    def __init__(self, message: str = OUTAGE_MESSAGE) -> None:
        super().__init__(503, OUTAGE_CODE, message, headers=_RETRY_AFTER)


def retry_after_headers() -> tuple[tuple[bytes, bytes], ...]:
    return _RETRY_AFTER


def is_outage(error: BaseException | None) -> bool:
    """Whether *error* (or what caused it) says the database is down or unreachable."""
    seen = 0
    while error is not None and seen < 8:
        if _is_outage_itself(error):
            return True
        orig = getattr(error, "orig", None)
        if isinstance(orig, BaseException) and _is_outage_itself(orig):
            return True
        error = error.__cause__ or error.__context__
        seen += 1
    return False


def _is_outage_itself(error: BaseException) -> bool:
    if isinstance(error, DatabaseUnavailable | sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return True
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, sqlite3.OperationalError):
        text = str(error).lower()
        return any(words in text for words in _SQLITE_OUTAGES)
    # psycopg 3, without importing it (the PostgreSQL extra is optional).
    return any(
        cls.__module__.partition(".")[0] == "psycopg"
        and cls.__name__ in ("OperationalError", "InterfaceError")
        for cls in type(error).__mro__
    )


class OutageRunner:
    """:class:`auth.Runner` whose outages are :class:`DatabaseUnavailable`.

    *inner* does the work; a failure that :func:`is_outage` recognises becomes a
    :class:`DatabaseUnavailable` (its cause chained), and is logged as a warning at
    most every :data:`REPORT_EVERY` seconds with the number seen since.
    """

    log = Logger()

    def __init__(self, inner: auth.Runner, *, clock: Callable[[], float]) -> None:
        self._inner = inner
        self._clock = clock
        self._unreported = 0
        self._reported_at: float | None = None

    def run(
        self, fn: Callable[Concatenate[Connection, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> Deferred[T]:
        d: Deferred[T] = self._inner.run(fn, *args, **kwargs)
        return d.addErrback(self._translate)

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Deferred[T]:
        d: Deferred[T] = self._inner.call(fn, *args, **kwargs)
        return d.addErrback(self._translate)

    def _translate(self, failure: Failure) -> Any:
        error = failure.value
        if error is None or isinstance(error, DatabaseUnavailable) or not is_outage(error):
            return failure
        self._note(error)
        raise DatabaseUnavailable() from error

    def _note(self, error: BaseException) -> None:
        self._unreported += 1
        now = self._clock()
        if self._reported_at is not None and now - self._reported_at < REPORT_EVERY:
            return
        self.log.warn(
            "database unavailable; answering 503 ({count} request(s) since the last "
            "report): {error}",
            count=self._unreported,
            error=_first_line(error),
        )
        self._unreported = 0
        self._reported_at = now


def _first_line(error: BaseException) -> str:
    orig = getattr(error, "orig", None)
    text = str(orig if orig is not None else error).strip()
    return (text.splitlines() or [type(error).__name__])[0][:300]
