"""The session registry: every channel session, live or ended, in the database.

Everything that must hold across gateway nodes lives here and changes atomically:
the concurrent-session limit (checked and taken under a per-account lock), kill
requests (any node or ``ssgate audit kill`` writes one; the node holding the session
acts on it within seconds), and single-use resume tokens (a generation counter).

A session is ``live`` while its tunnel is up, ``detached`` after the network dropped
(the client may resume it for a short while) and ``ended`` with a reason code.
"""

from __future__ import annotations

import secrets
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    String,
    and_,
    bindparam,
    case,
    func,
    insert,
    literal_column,
    or_,
    select,
    text,
    tuple_,
    update,
)

import audit
from auth._schema import accounts
from certs._schema import certificates
from gateway._reasons import REASON_WORDS, Reason
from gateway._schema import KILL_PENDING, sessions

# A session whose node has not reported for this long is considered gone (node crash).
STALE_AFTER_SECONDS = 120.0


@dataclass(frozen=True)
class SessionRecord:
    id: str
    account: str
    unit_code: str
    peer: str
    cert_serial: str
    node: str
    status: str
    started_at: float
    last_seen_at: float
    ended_at: float | None
    end_reason: str | None
    bytes_in: int
    bytes_out: int
    streams_opened: int
    resume_generation: int
    kill_requested_at: float | None
    kill_reason: str | None
    kill_note: str | None
    kill_actor: str | None


def new_session_id() -> str:
    return secrets.token_hex(16)  # 128 bits


def _record(row: object) -> SessionRecord:
    m = row._mapping  # type: ignore[attr-defined]
    return SessionRecord(**{k: m[k] for k in SessionRecord.__dataclass_fields__})


def _lock_account(conn: Connection, account: str) -> None:
    """Serialise session starts per account: SQLite's BEGIN IMMEDIATE already does."""
    if conn.dialect.name == "postgresql":
        key = zlib.crc32(account.encode()) - 2**31
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


def _open_clause(now: float) -> object:
    return and_(
        sessions.c.status.in_(("live", "detached")),
        sessions.c.last_seen_at > now - STALE_AFTER_SECONDS,
    )


def count_open(conn: Connection, account: str, *, now: float) -> int:
    return int(
        conn.execute(
            select(func.count())
            .select_from(sessions)
            .where(sessions.c.account == account, _open_clause(now))  # type: ignore[arg-type]
        ).scalar_one()
    )


# The login path's two statements, built once (``bindparam`` names apart from the
# columns'): the account's open sessions, and the new session's row.
_COUNT_OPEN = (
    select(func.count())
    .select_from(sessions)
    .where(
        sessions.c.account == bindparam("p_account"),
        sessions.c.status.in_(("live", "detached")),
        sessions.c.last_seen_at > bindparam("p_stale_before"),
    )
)
_INSERT_SESSION = insert(sessions).values(
    id=bindparam("p_id"),
    account=bindparam("p_account"),
    unit_code=bindparam("p_unit_code"),
    peer=bindparam("p_peer"),
    cert_serial=bindparam("p_cert_serial"),
    node=bindparam("p_node"),
    status="live",
    started_at=bindparam("p_now"),
    last_seen_at=bindparam("p_now"),
)


def start_session(
    conn: Connection,
    *,
    session_id: str,
    account: str,
    unit_code: str,
    peer: str,
    cert_serial: str,
    node: str,
    now: float,
    max_concurrent: int,
) -> bool:
    """Record a new live session unless the account already has *max_concurrent* open."""
    _lock_account(conn, account)
    open_now = conn.execute(
        _COUNT_OPEN, {"p_account": account, "p_stale_before": now - STALE_AFTER_SECONDS}
    ).scalar_one()
    if int(open_now) >= max_concurrent:
        return False
    conn.execute(
        _INSERT_SESSION,
        {
            "p_id": session_id,
            "p_account": account,
            "p_unit_code": unit_code,
            "p_peer": peer[:64],
            "p_cert_serial": cert_serial,
            "p_node": node,
            "p_now": now,
        },
    )
    return True


def get_session(conn: Connection, session_id: str) -> SessionRecord | None:
    row = conn.execute(select(sessions).where(sessions.c.id == session_id)).first()
    return None if row is None else _record(row)


def end_session(
    conn: Connection,
    session_id: str,
    *,
    reason: str,
    now: float,
    bytes_in: int = 0,
    bytes_out: int = 0,
    streams_opened: int = 0,
) -> bool:
    result = conn.execute(
        update(sessions)
        .where(sessions.c.id == session_id, sessions.c.status != "ended")
        .values(
            status="ended",
            ended_at=now,
            end_reason=reason,
            last_seen_at=now,
            bytes_in=bytes_in,
            bytes_out=bytes_out,
            streams_opened=streams_opened,
        )
    )
    return result.rowcount == 1


def detach_session(conn: Connection, session_id: str, *, now: float) -> None:
    """The tunnel dropped without a goodbye: keep the session resumable for a while."""
    conn.execute(
        update(sessions)
        .where(sessions.c.id == session_id, sessions.c.status == "live")
        .values(status="detached", last_seen_at=now)
    )


def resume_session(
    conn: Connection, session_id: str, *, generation: int, node: str, peer: str, now: float
) -> SessionRecord | None:
    """Reattach a session, consuming resume token *generation* (single use)."""
    result = conn.execute(
        update(sessions)
        .where(
            sessions.c.id == session_id,
            sessions.c.resume_generation == generation,
            sessions.c.status.in_(("live", "detached")),
            sessions.c.kill_requested_at.is_(None),
        )
        .values(
            resume_generation=generation + 1,
            status="live",
            node=node,
            peer=peer[:64],
            last_seen_at=now,
        )
    )
    if result.rowcount != 1:
        return None
    return get_session(conn, session_id)


def heartbeat(conn: Connection, stats: dict[str, tuple[int, int, int]], *, now: float) -> None:
    """Refresh ``last_seen_at`` and counters (bytes in, bytes out, streams) of live sessions.

    One statement run for all of them (an ``executemany``): with 10,000 sessions a
    statement each cost the gateway a second of CPU every heartbeat."""
    if not stats:
        return
    conn.execute(
        update(sessions)
        .where(sessions.c.id == bindparam("b_id"), sessions.c.status != "ended")
        .values(
            last_seen_at=bindparam("b_now"),
            bytes_in=bindparam("b_in"),
            bytes_out=bindparam("b_out"),
            streams_opened=bindparam("b_streams"),
        ),
        [
            {"b_id": sid, "b_now": now, "b_in": b_in, "b_out": b_out, "b_streams": streams}
            for sid, (b_in, b_out, streams) in stats.items()
        ],
    )


def request_kill(
    conn: Connection, session_id: str, *, reason: str, note: str, actor: str, now: float
) -> SessionRecord | None:
    """Ask the node holding the session to end it; ``None`` if it is not open."""
    result = conn.execute(
        update(sessions)
        .where(
            sessions.c.id == session_id,
            sessions.c.status.in_(("live", "detached")),
            sessions.c.kill_requested_at.is_(None),
        )
        .values(kill_requested_at=now, kill_reason=reason, kill_note=note[:500], kill_actor=actor)
    )
    if result.rowcount != 1:
        return None
    _end_detached(conn, sessions.c.id == session_id, reason=reason, now=now, actor=actor)
    return get_session(conn, session_id)


def kill_session(
    conn: Connection,
    session_id: str,
    *,
    note: str,
    actor: str,
    now: float,
    details: Mapping[str, audit.DetailValue] | None = None,
) -> SessionRecord | None:
    """An officer ends a session: the kill request (the node holding the session acts
    on it at its next poll) and the ``session.kill`` audit event saying who asked and
    why, in the caller's transaction.  ``ssgate audit kill`` and the officers' console
    both come here.  ``None`` (and a ``refused`` event) if the session is not open."""
    record = request_kill(
        conn, session_id, reason=Reason.OFFICER_KILL.slug, note=note, actor=actor, now=now
    )
    audit.append(
        conn,
        audit.AuditEvent(
            at=now,
            actor=actor,
            action="session.kill",
            subject=session_id[:64],
            outcome="ok" if record else "refused",
            reason="" if record else "not-live",
            unit=record.unit_code if record else "",
            session_id=session_id[:64] if record else "",
            details={"note": note, **(details or {})},
        ),
    )
    return record


def _end_detached(conn: Connection, which: Any, *, reason: str, now: float, actor: str) -> None:
    """A detached session has no node to tell: a kill ends it here, with its reason
    (not later by the reaper as ``network-lost``) and its ``session.end`` event; its
    resume token dies with it."""
    rows = conn.execute(select(sessions).where(which, sessions.c.status == "detached")).all()
    for row in rows:
        _end_abandoned(conn, row, reason=reason, now=now, actor=actor, ended_by="request")


def request_kill_account(
    conn: Connection, account: str, *, reason: str, actor: str, now: float
) -> int:
    result = conn.execute(
        update(sessions)
        .where(
            sessions.c.account == account,
            sessions.c.status.in_(("live", "detached")),
            sessions.c.kill_requested_at.is_(None),
        )
        .values(kill_requested_at=now, kill_reason=reason, kill_actor=actor)
    )
    _end_detached(conn, sessions.c.account == account, reason=reason, now=now, actor=actor)
    return int(result.rowcount)


@dataclass(frozen=True)
class SessionEnd:
    """Why a live session must end: the reason code and, for a kill, the note that the
    officer wrote (the client prints it; empty for every other end)."""

    reason: str
    note: str = ""


def sessions_to_end(conn: Connection, session_ids: list[str]) -> dict[str, str]:
    """Which of these sessions must end now, with the reason code (see :func:`ends_due`)."""
    return {sid: end.reason for sid, end in ends_due(conn, session_ids).items()}


def ends_due(conn: Connection, session_ids: list[str]) -> dict[str, SessionEnd]:
    """Which of these sessions must end now, with the reason code and a kill's note.

    A kill request, an account that is no longer active, or a revoked certificate all
    end a session — whichever node or command caused it.
    """
    if not session_ids:
        return {}
    rows = conn.execute(
        select(
            sessions.c.id,
            sessions.c.kill_reason,
            sessions.c.kill_note,
            sessions.c.kill_requested_at,
            accounts.c.status,
            certificates.c.status.label("cert_status"),
        )
        .select_from(
            sessions.outerjoin(accounts, accounts.c.name == sessions.c.account).outerjoin(
                certificates, certificates.c.serial == sessions.c.cert_serial
            )
        )
        .where(sessions.c.id.in_(session_ids))
        .where(
            or_(
                sessions.c.kill_requested_at.is_not(None),
                accounts.c.status.is_(None),
                accounts.c.status != "active",
                certificates.c.status == "revoked",
                sessions.c.status == "ended",
            )
        )
    )
    verdict: dict[str, SessionEnd] = {}
    for row in rows:
        if row.kill_requested_at is not None:
            verdict[row.id] = SessionEnd(row.kill_reason or "officer-kill", row.kill_note or "")
        elif row.status == "suspended":
            verdict[row.id] = SessionEnd("account-suspended")
        elif row.status in ("cancelled", None):
            verdict[row.id] = SessionEnd("account-cancelled")
        elif row.cert_status == "revoked":
            verdict[row.id] = SessionEnd("cert-revoked")
        else:
            verdict[row.id] = SessionEnd("gateway-shutdown")
    return verdict


# The kill poll's look-back: a change stamped up to this long before the previous
# poll began is still read.  It covers a writer's transaction that committed after
# the poll read (its stamp is its start) and clocks of other hosts behind ours.
KILL_POLL_LOOK_BACK_SECONDS = 120.0
# Every this many polls, one reads every live session as :func:`ends_due` does: a
# net for a change stamped further back than the look-back (a clock far behind).
KILL_POLL_FULL_EVERY = 300

_KILLS_PENDING = select(sessions.c.id).where(text(KILL_PENDING))
_ENDED_SINCE = select(sessions.c.id).where(sessions.c.ended_at >= bindparam("p_since"))
_ACCOUNTS_OUT_SINCE = select(accounts.c.name).where(
    accounts.c.updated_at >= bindparam("p_since"), accounts.c.status != "active"
)
_REVOKED_SINCE = select(certificates.c.serial).where(
    certificates.c.revoked_at >= bindparam("p_since")
)


class KillPoll:
    """:func:`ends_due` for one node's every-second poll, at a cost that does not grow
    with the number of idle sessions it holds.

    The first call, and every :data:`KILL_POLL_FULL_EVERY`-th, is :func:`ends_due`
    itself.  The others read only what changed: the kill requests not yet acted on (a
    partial index, whatever their time stamp), the sessions ended, the accounts
    suspended or cancelled and the certificates revoked since the previous poll began
    (less :data:`KILL_POLL_LOOK_BACK_SECONDS`), and match them against the live set
    through each session's account and certificate, read once when the session first
    appears.  The sessions they name go through :func:`ends_due`, so the verdict and
    its reason are the same as a full look's.

    *clock* gives the epoch seconds the writers stamp their changes with (the node's
    reactor clock).  One instance per node; calls must not overlap (the node's poll
    runs one at a time), each on a pool thread with its own connection."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._since: float | None = None
        self._calls = 0
        # session id -> (account, certificate serial), for the live sessions
        self._known: dict[str, tuple[str, str]] = {}

    def __call__(self, conn: Connection, session_ids: list[str]) -> dict[str, SessionEnd]:
        began = self._clock()
        full = self._since is None or self._calls % KILL_POLL_FULL_EVERY == 0
        self._calls += 1
        live = set(session_ids)
        self._learn(conn, live)
        if full:
            verdict = ends_due(conn, session_ids)
        else:
            verdict = ends_due(conn, sorted(self._changed(conn, live, since=self._since)))
        self._since = began - KILL_POLL_LOOK_BACK_SECONDS
        return verdict

    def _learn(self, conn: Connection, live: set[str]) -> None:
        """Forget the sessions gone from the live set; read account and certificate of
        those new in it."""
        for gone in self._known.keys() - live:
            del self._known[gone]
        new = sorted(live - self._known.keys())
        # In slices: a parameter list of tens of thousands is refused by some drivers.
        for at in range(0, len(new), 1000):
            rows = conn.execute(
                select(sessions.c.id, sessions.c.account, sessions.c.cert_serial).where(
                    sessions.c.id.in_(new[at : at + 1000])
                )
            )
            for row in rows:
                self._known[row.id] = (row.account, row.cert_serial)

    def _changed(self, conn: Connection, live: set[str], *, since: float | None) -> set[str]:
        """The live sessions that a change since *since* may end."""
        named = set(conn.execute(_KILLS_PENDING).scalars())
        named.update(conn.execute(_ENDED_SINCE, {"p_since": since}).scalars())
        out = set(conn.execute(_ACCOUNTS_OUT_SINCE, {"p_since": since}).scalars())
        revoked = set(conn.execute(_REVOKED_SINCE, {"p_since": since}).scalars())
        changed = named & live
        if out or revoked:
            changed.update(
                sid
                for sid, (account, serial) in self._known.items()
                if account in out or serial in revoked
            )
        return changed


def list_sessions(
    conn: Connection,
    *,
    open_only: bool = False,
    account: str | None = None,
    unit: str | None = None,
    since: float | None = None,
    until: float | None = None,
    now: float | None = None,
    limit: int = 1000,
) -> list[SessionRecord]:
    query = select(sessions).order_by(sessions.c.started_at.desc()).limit(limit)
    if open_only:
        assert now is not None
        query = query.where(_open_clause(now))  # type: ignore[arg-type]
    if account is not None:
        query = query.where(sessions.c.account == account)
    if unit is not None:
        query = query.where(sessions.c.unit_code == unit)
    if since is not None:
        query = query.where(sessions.c.started_at >= since)
    if until is not None:
        query = query.where(sessions.c.started_at < until)
    return [_record(r) for r in conn.execute(query)]


_PORT_DIGITS = literal_column("'0123456789'", String)


def _host_forms(host: str) -> tuple[str, ...]:
    """*host* and, for IPv4, the IPv4-mapped form a dual-stack listener reports."""
    return (host,) if ":" in host else (host, f"::ffff:{host}")


def peer_is(host: str) -> ColumnElement[bool]:
    """``peer`` is *host* with a port (``host:port``), *host* exactly.

    A prefix alone is not enough: ``2001:db8::1:5:443`` starts with ``2001:db8::1:``
    too.  So the range ``[host:, host;)`` (``:`` is followed by ``;`` in every
    collation we run on) picks the candidates through the ``peer`` index, and what is
    left once the port's digits are trimmed off the end must be ``host:`` itself —
    ``rtrim(text, characters)`` is the same on SQLite and PostgreSQL.  An IPv4 *host*
    also matches its IPv4-mapped form (``::ffff:192.0.2.7``), as the logins view does.
    """
    peer = sessions.c.peer
    return or_(
        *(
            and_(
                peer >= f"{form}:",
                peer < f"{form};",
                func.rtrim(peer, _PORT_DIGITS, type_=String) == f"{form}:",
            )
            for form in _host_forms(host)
        )
    )


def search_sessions(
    conn: Connection,
    *,
    account: str | None = None,
    unit: str | None = None,
    peer_host: str | None = None,
    node: str | None = None,
    end_reason: str | None = None,
    since: float | None = None,
    until: float | None = None,
    open_only: bool = False,
    now: float | None = None,
    before: tuple[float, str] | None = None,
    limit: int = 50,
) -> list[SessionRecord]:
    """One page of sessions, newest first (``started_at``, then ``id``, descending).

    Keyset paging: *before* is the (``started_at``, ``id``) of the last session of the
    previous page, so a page costs the same however deep it is (no OFFSET).  Every
    filter given must match: *peer_host* is the address without the port (``peer`` is
    ``host:port``), matched exactly (:func:`peer_is`); ``since <= started_at < until``.
    The filters have indexes (migration 0004).
    """
    query = (
        select(sessions).order_by(sessions.c.started_at.desc(), sessions.c.id.desc()).limit(limit)
    )
    if open_only:
        assert now is not None
        query = query.where(_open_clause(now))  # type: ignore[arg-type]
    for column, value in (
        (sessions.c.account, account),
        (sessions.c.unit_code, unit),
        (sessions.c.node, node),
        (sessions.c.end_reason, end_reason),
    ):
        if value is not None:
            query = query.where(column == value)
    if peer_host is not None:
        query = query.where(peer_is(peer_host))
    if since is not None:
        query = query.where(sessions.c.started_at >= since)
    if until is not None:
        query = query.where(sessions.c.started_at < until)
    if before is not None:
        query = query.where(tuple_(sessions.c.started_at, sessions.c.id) < tuple_(*before))
    return [_record(r) for r in conn.execute(query)]


def open_session_counts(conn: Connection, instants: Sequence[float]) -> list[int]:
    """How many sessions were open (started, not yet ended) at each of *instants*.

    A conditional count per instant over the sessions not ended before the first of
    them, in two statements: the sessions still open (``ended_at IS NULL``) and those
    that ended after the first instant.  Each is one seek of the ``ended_at`` index
    (migration 0011), so a chart of the last day reads the open sessions and that
    day's ends, not the table.  (One statement with ``started_at <= last AND
    (ended_at IS NULL OR ended_at > first)`` leaves SQLite's planner, without
    statistics, walking the ``started_at`` index through the whole history: that
    condition holds for nearly every session.)
    """
    if not instants:
        return []
    c = sessions.c
    first = min(instants)
    counts = [
        func.sum(
            case((and_(c.started_at <= t, or_(c.ended_at.is_(None), c.ended_at > t)), 1), else_=0)
        )
        for t in instants
    ]
    totals = [0] * len(instants)
    # Only the end time in WHERE (each instant's CASE checks the start): given
    # ``started_at <= last`` as well, SQLite seeks the start index instead.
    for overlapping in (c.ended_at.is_(None), c.ended_at > first):
        row = conn.execute(select(*counts).where(overlapping)).one()
        totals = [total + int(v or 0) for total, v in zip(totals, row, strict=True)]
    return totals


class SessionRegistryView:
    """The session registry as the officers' pages read and act on it
    (``oversight.SessionRegistry``): blocking, each call in the caller's transaction."""

    def search(self, conn: Connection, **filters: Any) -> list[SessionRecord]:
        return search_sessions(conn, **filters)

    def get(self, conn: Connection, session_id: str) -> SessionRecord | None:
        return get_session(conn, session_id)

    def kill(
        self,
        conn: Connection,
        session_id: str,
        *,
        note: str,
        actor: str,
        now: float,
        details: Mapping[str, audit.DetailValue] | None = None,
    ) -> SessionRecord | None:
        return kill_session(conn, session_id, note=note, actor=actor, now=now, details=details)

    def reasons(self) -> dict[str, str]:
        """Every reason code the gateway records (session ends, refused logins and
        streams, stream ends, refused TLS connections) in the words staff read
        (:data:`gateway.REASON_WORDS`), by code."""
        return dict(REASON_WORDS)

    def open_counts(self, conn: Connection, instants: Sequence[float]) -> list[int]:
        return open_session_counts(conn, instants)


# -- each change of a session committed with its audit event (issue 12) ------------------
#
# A session row never exists without its ``login`` event, and no session changes state
# without the event that says so: each function below writes both in the caller's one
# transaction, so a crash, a full disk or a lost database leaves neither or both.  The
# event comes from the caller (who knows the peer, the certificate, the TLS facts) and
# is completed here with what only the registry knows: the session id and the unit.


def start_session_recorded(
    conn: Connection,
    *,
    session_id: str,
    account: str,
    unit_code: str,
    peer: str,
    cert_serial: str,
    node: str,
    now: float,
    max_concurrent: int,
    event: audit.AuditEvent,
) -> bool:
    """:func:`start_session` and, if the session started, its ``login`` *event*."""
    started = start_session(
        conn,
        session_id=session_id,
        account=account,
        unit_code=unit_code,
        peer=peer,
        cert_serial=cert_serial,
        node=node,
        now=now,
        max_concurrent=max_concurrent,
    )
    if started:
        audit.append(conn, replace(event, at=now, unit=unit_code, session_id=session_id))
    return started


def resume_session_recorded(
    conn: Connection,
    session_id: str,
    *,
    generation: int,
    account: str | None,
    node: str,
    peer: str,
    now: float,
    event: audit.AuditEvent,
) -> SessionRecord | None:
    """:func:`resume_session` for *account*'s session and its ``login.resume`` *event*.

    ``None`` (nothing written, the token not consumed) unless the session is
    *account*'s and resumable with token *generation*."""
    found = get_session(conn, session_id)
    if found is None or found.account != account:
        return None
    record = resume_session(conn, session_id, generation=generation, node=node, peer=peer, now=now)
    if record is not None:
        audit.append(conn, replace(event, at=now, unit=record.unit_code, session_id=record.id))
    return record


def end_session_recorded(
    conn: Connection,
    session_id: str,
    *,
    reason: str,
    now: float,
    bytes_in: int = 0,
    bytes_out: int = 0,
    streams_opened: int = 0,
    event: audit.AuditEvent,
) -> bool:
    """:func:`end_session` and its ``session.end`` *event*; ``False`` (and no event) if
    the session had already ended (a kill of a detached session, the reaper)."""
    ended = end_session(
        conn,
        session_id,
        reason=reason,
        now=now,
        bytes_in=bytes_in,
        bytes_out=bytes_out,
        streams_opened=streams_opened,
    )
    if ended:
        audit.append(conn, event)
    return ended


def detach_session_recorded(
    conn: Connection,
    session_id: str,
    *,
    node: str,
    now: float,
    bytes_in: int,
    bytes_out: int,
    streams_opened: int,
    event: audit.AuditEvent,
) -> bool:
    """A session live on *node* whose tunnel dropped becomes ``detached`` (resumable for
    a while), with its counters and its ``session.detach`` *event*; ``False`` (and no
    event) if it is no longer live there (ended, or resumed on another node)."""
    result = conn.execute(
        update(sessions)
        .where(sessions.c.id == session_id, sessions.c.status == "live", sessions.c.node == node)
        .values(
            status="detached",
            last_seen_at=now,
            bytes_in=bytes_in,
            bytes_out=bytes_out,
            streams_opened=streams_opened,
        )
    )
    if result.rowcount != 1:
        return False
    audit.append(conn, event)
    return True


# -- sessions whose node is gone ---------------------------------------------------------

# One transaction ends at most this many abandoned sessions (the audit chain's lock is
# held meanwhile); the rest are ended by the next call.
ABANDONED_BATCH = 500


def _end_abandoned(
    conn: Connection,
    row: Any,
    *,
    reason: str,
    now: float,
    actor: str,
    ended_by: str,
    still: Any = None,
) -> bool:
    """End one session that no tunnel holds (*row* as read) with its ``session.end``
    event, unless it changed since it was read (*still*: a further condition it must
    still meet).  *ended_by* says what found it: ``restart``, ``stale`` or ``request``."""
    unchanged = update(sessions).where(
        sessions.c.id == row.id,
        sessions.c.status == row.status,
        sessions.c.node == row.node,
        sessions.c.resume_generation == row.resume_generation,
    )
    if still is not None:
        unchanged = unchanged.where(still)
    result = conn.execute(unchanged.values(status="ended", ended_at=now, end_reason=reason))
    if result.rowcount != 1:
        return False  # resumed, ended or reaped meanwhile: not ours to end
    audit.append(
        conn,
        audit.AuditEvent(
            at=now,
            actor=actor[:255],
            action="session.end",
            subject=row.account,
            outcome="ok",
            reason=reason,
            unit=row.unit_code,
            session_id=row.id,
            details={
                "node": row.node,
                "ended_by": ended_by,
                "last_seen_at": row.last_seen_at,
                "peer": row.peer,
                "certificate": row.cert_serial,
            },
        ),
    )
    return True


def reap_stale_recorded(conn: Connection, *, now: float, actor: str) -> int:
    """End, each with its ``session.end`` event, the sessions nobody resumed in time
    (``network-lost``) and those whose node stopped reporting (``node-lost``) — whichever
    node they were on.  At most :data:`ABANDONED_BATCH` per call."""
    cutoff = now - STALE_AFTER_SECONDS
    rows = conn.execute(
        select(sessions)
        .where(sessions.c.status.in_(("live", "detached")), sessions.c.last_seen_at <= cutoff)
        .order_by(sessions.c.last_seen_at)
        .limit(ABANDONED_BATCH)
    ).all()
    ended = 0
    for row in rows:
        reason = "network-lost" if row.status == "detached" else "node-lost"
        ended += _end_abandoned(
            conn,
            row,
            reason=reason,
            now=now,
            actor=actor,
            ended_by="stale",
            still=sessions.c.last_seen_at <= cutoff,
        )
    return ended


def node_pid(node: str, host: str) -> int | None:
    """The process id in node name *node* (``host:pid``, :func:`default_node_name`) if
    the node runs on *host*, else ``None``."""
    prefix, _, pid = node.rpartition(":")
    if prefix != host or not pid.isdigit():
        return None
    return int(pid)


def recover_sessions(
    conn: Connection,
    *,
    node: str,
    host: str,
    process_alive: Callable[[int], bool],
    booted_at: float,
    now: float,
) -> int:
    """At a node's start: end, each with its ``session.end`` event (``node-lost``), the
    sessions that a dead gateway process on this host left ``live`` — a ``kill -9``, a
    crash or a power cut ended it before it could record their ends.

    Dead means: named *node* itself (the process id was reused, as a container's is at
    every restart) and not seen since this process booted at *booted_at*; or named
    ``host:pid`` for another pid of which *process_alive* says it is gone.  Sessions of
    other hosts wait for :func:`reap_stale_recorded`, which needs no such knowledge.
    Detached sessions stay: their client may still resume them on any node."""
    rows = conn.execute(
        select(sessions)
        .where(
            sessions.c.status == "live",
            or_(sessions.c.node == node, sessions.c.node.startswith(f"{host}:", autoescape=True)),
        )
        .order_by(sessions.c.started_at)
        .limit(ABANDONED_BATCH)
    ).all()
    ended = 0
    for row in rows:
        if row.node == node:
            if row.last_seen_at >= booted_at:
                continue  # this process's own
            still: Any = sessions.c.last_seen_at < booted_at
        else:
            pid = node_pid(row.node, host)
            if pid is None or process_alive(pid):
                continue
            still = sessions.c.last_seen_at <= row.last_seen_at  # no heartbeat since
        ended += _end_abandoned(
            conn,
            row,
            reason="node-lost",
            now=now,
            actor=f"gateway:{node}",
            ended_by="restart",
            still=still,
        )
    return ended


def end_lost_node_sessions_recorded(conn: Connection, *, node: str, now: float, actor: str) -> int:
    """End, each with its ``session.end`` event (``node-lost``), the sessions still
    ``live`` on *node*, which the node registry found gone (no heartbeat: a ``kill
    -9``, a crash, a lost host) — sooner than :func:`reap_stale_recorded`.  A session
    its client resumed on another node meanwhile is no longer *node*'s and stays.  At
    most :data:`ABANDONED_BATCH` per call; how many were ended."""
    rows = conn.execute(
        select(sessions)
        .where(sessions.c.status == "live", sessions.c.node == node)
        .order_by(sessions.c.started_at)
        .limit(ABANDONED_BATCH)
    ).all()
    return sum(
        _end_abandoned(conn, row, reason="node-lost", now=now, actor=actor, ended_by="node-lost")
        for row in rows
    )
