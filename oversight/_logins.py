"""Login attempts read from the audit log: the rows of the logins view and the
failures grouped by account and by source.

Every attempt is an audit event: the channel's ``login`` and ``login.resume`` (the
gateway records ``peer`` = ``host:port`` in the details) and the console's
``console.login`` (``source`` = host).  The functions here are blocking, run on the
database pool, and return plain values:

* :func:`login_rows` — ``(conn, filters, before_seq, limit) -> rows``, newest first
  by ``seq`` (keyset: the next page is ``seq < before_seq``).  The export machinery
  calls it page by page with the same :class:`LoginFilters` the view used, so an
  export holds exactly the rows the view shows;
* :func:`failures_by_account`, :func:`failures_by_source` — one ``GROUP BY`` each
  over the refused and failed attempts in a time range.

Where the source address lives: inside ``details`` (canonical JSON text, sorted keys,
no spaces, every ``"`` inside a value escaped), so ``"peer":"`` can only ever be that
key.  The address is cut out with plain string functions (``instr``/``strpos``,
``substr``, ``rtrim``) rather than JSON functions: the same result on SQLite and
PostgreSQL, no JSON parsing per row, and a tampered row that is not JSON any more
cannot make the page fail.  The port is cut off the end (``rtrim`` of the digits,
then the one ``:``), which keeps an IPv6 host whole (``2001:db8::1:50123`` →
``2001:db8::1``); a ``LIKE 'host:%'`` prefix would also match ``2001:db8::1:5``'s
peers.  Matching by source is exact on that expression; no index can serve it (the
row query's index is on ``action``/``at``/``subject``), so it filters the rows the
other conditions select — bound the time range for large logs.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    String,
    case,
    distinct,
    func,
    literal_column,
    select,
    type_coerce,
)

import audit

CHANNEL_ACTIONS = ("login", "login.resume")
CONSOLE_ACTIONS = ("console.login",)
KINDS: Mapping[str, tuple[str, ...]] = {
    "channel": CHANNEL_ACTIONS,
    "console": CONSOLE_ACTIONS,
}
ALL_ACTIONS = CHANNEL_ACTIONS + CONSOLE_ACTIONS
FAILED = ("refused", "failed")
# The outcome filter: one outcome, or "not-ok" for every refused or failed attempt.
OUTCOME_CHOICES: Mapping[str, tuple[str, ...]] = {
    "ok": ("ok",),
    "refused": ("refused",),
    "failed": ("failed",),
    "not-ok": FAILED,
}

audit_events = audit.metadata.tables["audit_events"]

MAX_GROUPS = 50  # rows per table on the failures page


@dataclass(frozen=True)
class LoginFilters:
    """What the logins view and its export filter on; None is "any".

    *kind* is ``channel`` (the secure channel's logins and resumes), ``console``
    (staff logins) or None (both); *source* a host address, normalised
    (``ipaddress``'s text); *outcome* a key of :data:`OUTCOME_CHOICES`;
    ``since <= at < until``.
    """

    kind: str | None = None
    account: str | None = None
    source: str | None = None
    outcome: str | None = None
    reason: str | None = None
    since: float | None = None
    until: float | None = None

    @property
    def actions(self) -> tuple[str, ...]:
        return KINDS[self.kind] if self.kind is not None else ALL_ACTIONS


@dataclass(frozen=True)
class LoginRow:
    """One login attempt as the view shows it."""

    seq: int
    at: float
    action: str
    account: str
    outcome: str
    reason: str
    source: str  # the host address, without a port
    peer: str  # host:port for the channel; the host for the console
    unit: str
    session_id: str
    certificate: str


@dataclass(frozen=True)
class FailureGroup:
    """Refused or failed attempts sharing an account (or a source) in a time range."""

    key: str
    attempts: int
    others: int  # distinct sources of an account, distinct accounts of a source
    first_at: float
    last_at: float


# -- the source address, in SQL ----------------------------------------------------------


def _position(conn: Connection, text: ColumnElement[Any], needle: str) -> ColumnElement[int]:
    """1-based position of *needle* (a constant) in *text*, 0 when absent."""
    quoted = literal_column("'" + needle.replace("'", "''") + "'", String)
    name = "strpos" if conn.dialect.name == "postgresql" else "instr"
    return getattr(func, name)(text, quoted, type_=Integer)  # type: ignore[no-any-return]


def _detail_text(conn: Connection, key: str) -> ColumnElement[str]:
    """The string value of ``details[key]`` as stored (NULL without one)."""
    details = audit_events.c.details
    marker = f'"{key}":"'
    start = _position(conn, details, marker) + len(marker)
    rest = func.substr(details, start, type_=String)
    return case(
        (
            _position(conn, details, marker) > 0,
            func.substr(rest, 1, _position(conn, rest, '"') - 1),
        ),
        else_=None,
    )


def source_host(conn: Connection) -> ColumnElement[str]:
    """The attempt's source host: the console's ``source``, else the channel's
    ``peer`` without its port (see the module docstring)."""
    peer = _detail_text(conn, "peer")
    digits = literal_column("'0123456789'", String)
    stripped = func.rtrim(peer, digits, type_=String)
    host = case(
        (
            (func.length(stripped) < func.length(peer)) & stripped.like("%:"),
            func.substr(stripped, 1, func.length(stripped) - 1),
        ),
        else_=peer,
    )
    return case(
        (audit_events.c.action.in_(CONSOLE_ACTIONS), _detail_text(conn, "source")),
        else_=host,
    )


def _source_forms(host: str) -> tuple[str, ...]:
    """*host* and, for IPv4, the IPv4-mapped form a dual-stack listener reports."""
    return (host,) if ":" in host else (host, f"::ffff:{host}")


def _where(conn: Connection, f: LoginFilters, actions: Collection[str]) -> list[Any]:
    e = audit_events.c
    clauses: list[Any] = [e.action.in_(sorted(actions))]
    for column, value in ((e.subject, f.account), (e.reason, f.reason)):
        if value is not None:
            clauses.append(column == value)
    if f.outcome is not None:
        clauses.append(e.outcome.in_(OUTCOME_CHOICES[f.outcome]))
    if f.since is not None:
        clauses.append(e.at >= float(f.since))
    if f.until is not None:
        clauses.append(e.at < float(f.until))
    if f.source is not None:
        clauses.append(source_host(conn).in_(_source_forms(f.source)))
    return clauses


# -- the rows ------------------------------------------------------------------------------


def login_rows(
    conn: Connection, filters: LoginFilters, before_seq: int | None, limit: int
) -> list[LoginRow]:
    """Up to *limit* login attempts matching *filters*, newest first, all older than
    *before_seq* when given (the last row of the previous page)."""
    e = audit_events.c
    clauses = _where(conn, filters, filters.actions)
    if before_seq is not None:
        clauses.append(e.seq < before_seq)
    stmt = (
        select(
            e.seq,
            e.at,
            e.action,
            e.subject,
            e.outcome,
            e.reason,
            e.unit,
            e.session_id,
            e.details,
        )
        .where(*clauses)
        .order_by(e.seq.desc())
        .limit(limit)
    )
    return [_row(r) for r in conn.execute(stmt)]


def _row(r: Any) -> LoginRow:
    details = _details(r.details)
    if r.action in CONSOLE_ACTIONS:
        peer = _text(details.get("source"))
        host = peer
    else:
        peer = _text(details.get("peer"))
        host = _host_of(peer)
    return LoginRow(
        seq=int(r.seq),
        at=float(r.at),
        action=str(r.action),
        account=str(r.subject),
        outcome=str(r.outcome),
        reason=str(r.reason),
        source=host,
        peer=peer,
        unit=str(r.unit),
        session_id=str(r.session_id),
        certificate=_text(details.get("certificate")),
    )


def _details(text: object) -> Mapping[str, object]:
    # A row that is not JSON any more was tampered with; the integrity page says so.
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _host_of(peer: str) -> str:
    """``host:port`` → host, as :func:`source_host` does in SQL."""
    host, colon, port = peer.rpartition(":")
    return host if colon and port.isdigit() and host else peer


# -- failures, grouped ---------------------------------------------------------------------


def _failed(conn: Connection, since: float, until: float, kind: str | None) -> list[Any]:
    f = LoginFilters(kind=kind, since=since, until=until)
    return [*_where(conn, f, f.actions), audit_events.c.outcome.in_(FAILED)]


def failures_by_account(
    conn: Connection,
    *,
    since: float,
    until: float,
    kind: str | None = None,
    limit: int = MAX_GROUPS,
) -> list[FailureGroup]:
    """The accounts with the most refused or failed attempts in ``[since, until)``,
    each with how many sources tried it."""
    e = audit_events.c
    inner = (
        select(e.subject.label("key"), e.at, source_host(conn).label("other"))
        .where(*_failed(conn, since, until, kind))
        .subquery()
    )
    return _grouped(conn, inner, limit)


def failures_by_source(
    conn: Connection,
    *,
    since: float,
    until: float,
    kind: str | None = None,
    limit: int = MAX_GROUPS,
) -> list[FailureGroup]:
    """The sources with the most refused or failed attempts in ``[since, until)``,
    each with how many accounts it tried (spraying shows as many)."""
    e = audit_events.c
    inner = (
        select(type_coerce(source_host(conn), String).label("key"), e.at, e.subject.label("other"))
        .where(*_failed(conn, since, until, kind))
        .subquery()
    )
    return _grouped(conn, inner, limit)


def _grouped(conn: Connection, inner: Any, limit: int) -> list[FailureGroup]:
    attempts = func.count().label("attempts")
    stmt = (
        select(
            inner.c.key,
            attempts,
            func.count(distinct(inner.c.other)).label("others"),
            func.min(inner.c.at).label("first_at"),
            func.max(inner.c.at).label("last_at"),
        )
        .group_by(inner.c.key)
        .order_by(attempts.desc(), inner.c.key)
        .limit(limit)
    )
    return [
        FailureGroup(
            key=str(r.key) if r.key is not None else "",
            attempts=int(r.attempts),
            others=int(r.others),
            first_at=float(r.first_at),
            last_at=float(r.last_at),
        )
        for r in conn.execute(stmt)
    ]


def failure_totals(conn: Connection, *, since: float, until: float) -> Sequence[int]:
    """(attempts, refused or failed) of every kind in ``[since, until)``."""
    e = audit_events.c
    failed = func.sum(case((e.outcome.in_(FAILED), 1), else_=0))
    row = conn.execute(
        select(func.count(), failed).where(e.action.in_(ALL_ACTIONS), e.at >= since, e.at < until)
    ).one()
    return int(row[0]), int(row[1] or 0)
