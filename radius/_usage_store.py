"""Accounting reports stored: the session registry, ``radius_sessions`` and the audit log.

:func:`record_usage` runs in one transaction on the database pool.  A Start is
recorded only for a session this server granted: its ``Class`` must be the session id
of an ``ok`` ``login`` event for the same account through the same NAS (so a NAS, or
anyone with its secret, cannot invent sessions for others).  Then the session enters
the registry (through :class:`DialInSessions`, the gateway's session table in
``ssgate``) with the NAS as its node (``radius:<nas>``), and its details enter
``radius_sessions``.  Interim updates refresh the counters; a Stop ends the session
with the Acct-Terminate-Cause as its end reason; Accounting-On/Off (the NAS restarted)
ends every open session of that NAS.  Start and end are audited (``session.start``,
``session.end``) with the session id; Interim is not (it would flood the log).

Every report is idempotent: a Start for a session already recorded, or a Stop for one
already ended, changes nothing and is acknowledged, as RFC 2866 wants.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Connection, Float, Row, bindparam, insert, select, update

import audit
from radius._accounting import Usage
from radius._schema import radius_sessions

# Outcomes (for the log and the tests).
STARTED = "started"
UPDATED = "updated"
ENDED = "ended"
ALREADY = "already-recorded"
UNKNOWN_SESSION = "unknown-session"
NAS_RESTARTED = "nas-restarted"

NAS_RESTART_REASON = "nas-reboot"

# How long an Access-Accept counts towards the account's ``max_sessions`` while its
# accounting Start has not come: a NAS sends the Start as soon as the link is up (a
# few seconds of PPP negotiation); one that never sends it holds the place this long.
AWAITING_START_SECONDS = 60.0


class DialInSessions(Protocol):
    """The session registry as dial-in accounting writes it (``ssgate`` backs it with
    the gateway's ``sessions`` table)."""

    def start(
        self,
        conn: Connection,
        *,
        session_id: str,
        account: str,
        unit_code: str,
        peer: str,
        node: str,
        now: float,
    ) -> None: ...

    def update(
        self, conn: Connection, session_id: str, *, bytes_in: int, bytes_out: int, now: float
    ) -> None: ...

    def end(
        self,
        conn: Connection,
        session_id: str,
        *,
        reason: str,
        bytes_in: int,
        bytes_out: int,
        now: float,
    ) -> bool: ...

    def kill_reason(self, conn: Connection, session_id: str) -> str | None:
        """Why the session must end (an officer's kill, a suspended account…), or None."""
        ...


def record_usage(conn: Connection, usage: Usage, *, sessions: DialInSessions, now: float) -> str:
    """Store one accounting report; the outcome code."""
    if usage.status in ("accounting-on", "accounting-off"):
        return _nas_restarted(conn, usage, sessions, now)
    row = _find(conn, usage)
    if usage.status == "start":
        return ALREADY if row is not None else _start(conn, usage, sessions, now)
    if row is None:
        return UNKNOWN_SESSION
    if row.ended_at is not None:
        return ALREADY
    counters = {"bytes_in": usage.bytes_in, "bytes_out": usage.bytes_out}
    conn.execute(
        update(radius_sessions)
        .where(radius_sessions.c.session_id == row.session_id)
        .values(reported_at=now, session_time=usage.session_time, **counters)
    )
    if usage.status == "interim":
        sessions.update(conn, row.session_id, now=now, **counters)
        return UPDATED
    row = _find(conn, usage)
    assert row is not None
    _end(conn, row, usage.end_reason or "nas-other", usage, sessions=sessions, now=now)
    return ENDED


_events = audit.metadata.tables["audit_events"]
_RECENT_GRANTS = select(_events.c.actor, _events.c.session_id).where(
    _events.c.action == "login",
    _events.c.subject == bindparam("p_subject"),
    _events.c.outcome == "ok",
    _events.c.at >= bindparam("p_since", type_=Float),
)

_STARTED = select(radius_sessions.c.session_id).where(
    radius_sessions.c.session_id.in_(bindparam("p_ids", expanding=True))
)


def awaiting_start(
    conn: Connection, account: str, *, now: float, window: float = AWAITING_START_SECONDS
) -> int:
    """The dial-in sessions granted to *account* within *window* seconds (``ok``
    ``login`` events of a NAS, ``radius:<nas>``) whose accounting Start has not been
    recorded yet: the registry does not hold them, but the user is (or is about to be)
    connected, so they count towards ``max_sessions`` with the open ones."""
    # Two columns of the NAS grants, by a statement built once (audit.query would
    # build one and read back every column of every event, per login).
    granted = {
        session_id
        for actor, session_id in conn.execute(
            _RECENT_GRANTS, {"p_subject": account, "p_since": now - window}
        )
        if actor.startswith("radius:") and session_id
    }
    if not granted:
        return 0
    started = set(conn.execute(_STARTED, {"p_ids": sorted(granted)}).scalars())
    return len(granted - started)


def _find(conn: Connection, usage: Usage) -> Row[Any] | None:
    c = radius_sessions.c
    if usage.session_id:
        which = c.session_id == usage.session_id
    else:  # a NAS that does not echo Class: its own session id names the session
        which = c.acct_session_id == usage.acct_session_id
    # Only the NAS that started a session reports on it (a Class is no secret to NAS).
    return conn.execute(select(radius_sessions).where(which, c.nas == usage.nas.name)).first()


def _start(conn: Connection, usage: Usage, sessions: DialInSessions, now: float) -> str:
    granted = (
        audit.query(
            conn,
            actions=["login"],
            session_id=usage.session_id,
            outcome="ok",
            actor=usage.nas.actor,
            subject=usage.account,
            limit=1,
        )
        if usage.session_id and usage.account
        else []
    )
    if not granted:
        _audit(conn, usage, "session.start", "refused", UNKNOWN_SESSION, unit="", now=now)
        return UNKNOWN_SESSION
    unit = granted[0].event.unit
    peer = usage.framed_ip or usage.calling_station or usage.source[0]
    sessions.start(
        conn,
        session_id=usage.session_id,
        account=usage.account,
        unit_code=unit,
        peer=peer[:64],
        node=usage.nas.actor,
        now=now,
    )
    conn.execute(
        insert(radius_sessions).values(
            session_id=usage.session_id,
            account=usage.account,
            unit_code=unit,
            nas=usage.nas.name,
            nas_address=f"{usage.source[0]}:{usage.source[1]}"[:64],
            nas_port=usage.nas_port,
            acct_session_id=usage.acct_session_id,
            framed_ip=usage.framed_ip,
            calling_station=usage.calling_station,
            started_at=now,
            reported_at=now,
            bytes_in=usage.bytes_in,
            bytes_out=usage.bytes_out,
        )
    )
    _audit(conn, usage, "session.start", "ok", "", unit=unit, now=now)
    return STARTED


def _end(
    conn: Connection,
    row: Row[Any],
    reason: str,
    usage: Usage,
    *,
    sessions: DialInSessions,
    now: float,
) -> None:
    conn.execute(
        update(radius_sessions)
        .where(radius_sessions.c.session_id == row.session_id)
        .values(ended_at=now, end_reason=reason[:32])
    )
    sessions.end(
        conn,
        row.session_id,
        reason=reason[:32],
        bytes_in=row.bytes_in,
        bytes_out=row.bytes_out,
        now=now,
    )
    _audit(
        conn,
        usage,
        "session.end",
        "ok",
        reason,
        unit=row.unit_code,
        now=now,
        session_id=row.session_id,
        account=row.account,
    )


def _nas_restarted(conn: Connection, usage: Usage, sessions: DialInSessions, now: float) -> str:
    """Accounting-On/Off: the NAS lost every session it had (RFC 2866 §5.1)."""
    c = radius_sessions.c
    rows = conn.execute(
        select(radius_sessions).where(c.nas == usage.nas.name, c.ended_at.is_(None))
    ).all()
    for row in rows:
        _end(conn, row, NAS_RESTART_REASON, usage, sessions=sessions, now=now)
    return NAS_RESTARTED


def _audit(
    conn: Connection,
    usage: Usage,
    action: str,
    outcome: str,
    reason: str,
    *,
    unit: str,
    now: float,
    session_id: str | None = None,
    account: str | None = None,
) -> None:
    details: dict[str, audit.DetailValue] = {
        "via": "radius",
        "nas": usage.nas.name,
        "acct_session_id": usage.acct_session_id,
        "bytes_in": usage.bytes_in,
        "bytes_out": usage.bytes_out,
    }
    if usage.nas_port is not None:
        details["nas_port"] = usage.nas_port
    if usage.framed_ip:
        details["framed_ip"] = usage.framed_ip
    if usage.calling_station:
        details["calling_station"] = usage.calling_station
    subject = (account if account is not None else usage.account) or "-"
    audit.append(
        conn,
        audit.AuditEvent(
            at=now,
            actor=usage.nas.actor[:255],
            action=action,
            subject=subject[:255],
            outcome=outcome,
            reason=reason,
            unit=unit,
            session_id=(session_id if session_id is not None else usage.session_id)
            if outcome == "ok"
            else "",
            details=details,
        ),
    )


# A NAS reports each open session at least this often (Interim-Update); a session not
# reported for longer is no longer kept alive, and the registry's reaper ends it.
REPORT_TIMEOUT_SECONDS = 7200.0


def keep_alive(
    conn: Connection,
    *,
    sessions: DialInSessions,
    now: float,
    report_timeout: float = REPORT_TIMEOUT_SECONDS,
) -> int:
    """Tell the registry the open dial-in sessions still run (its reaper ends sessions
    nobody reported for two minutes); how many were refreshed."""
    c = radius_sessions.c
    rows = conn.execute(
        select(c.session_id, c.bytes_in, c.bytes_out).where(
            c.ended_at.is_(None), c.reported_at > now - report_timeout
        )
    ).all()
    for row in rows:
        sessions.update(
            conn, row.session_id, bytes_in=row.bytes_in, bytes_out=row.bytes_out, now=now
        )
    return len(rows)


# -- disconnect (RFC 5176) -------------------------------------------------------------

# Session-Context-Not-Found (RFC 5176 §3.5): the NAS no longer has it, so it has ended.
NOT_FOUND = "nak:503"
# Rounds (each a request sent up to three times) before a disconnect is given up.
DISCONNECT_ROUNDS = 3


@dataclass(frozen=True)
class DisconnectTarget:
    """A dial-in session to end at its NAS, and why."""

    session_id: str
    account: str
    unit_code: str
    nas: str
    nas_host: str
    acct_session_id: str
    framed_ip: str | None
    reason: str


def claim_disconnects(
    conn: Connection, *, sessions: DialInSessions, now: float, limit: int = 100
) -> list[DisconnectTarget]:
    """The open dial-in sessions the registry says must end, each claimed once (by one
    node of many: a conditional UPDATE) so that one Disconnect-Request goes out."""
    c = radius_sessions.c
    rows = conn.execute(
        select(radius_sessions)
        .where(c.ended_at.is_(None), c.disconnect_at.is_(None))
        .order_by(c.started_at)
        .limit(limit * 10)
    ).all()
    targets: list[DisconnectTarget] = []
    for row in rows:
        reason = sessions.kill_reason(conn, row.session_id)
        if reason is None:
            continue
        claimed = conn.execute(
            update(radius_sessions)
            .where(c.session_id == row.session_id, c.disconnect_at.is_(None))
            .values(disconnect_at=now, disconnect_rounds=c.disconnect_rounds + 1)
        )
        if claimed.rowcount != 1:
            continue
        targets.append(
            DisconnectTarget(
                session_id=row.session_id,
                account=row.account,
                unit_code=row.unit_code,
                nas=row.nas,
                nas_host=row.nas_address.rpartition(":")[0].strip("[]"),
                acct_session_id=row.acct_session_id,
                framed_ip=row.framed_ip,
                reason=reason,
            )
        )
        if len(targets) == limit:
            break
    return targets


def finish_disconnect(
    conn: Connection,
    target: DisconnectTarget,
    outcome: str,
    *,
    sessions: DialInSessions,
    now: float,
) -> bool:
    """Record what the NAS answered (``ack``, ``nak:<cause>``, ``no-answer``); the
    session ends on an ACK or when the NAS no longer has it.  Otherwise the next round
    claims it again, up to :data:`DISCONNECT_ROUNDS` rounds.  Each round is audited as
    ``session.disconnect`` with the session id.  True if the session ended."""
    c = radius_sessions.c
    ends = outcome in ("ack", NOT_FOUND)
    rounds = conn.execute(
        select(c.disconnect_rounds).where(c.session_id == target.session_id)
    ).scalar_one()
    final = ends or rounds >= DISCONNECT_ROUNDS
    values: dict[str, Any] = {"disconnect_outcome": outcome[:32]}
    if ends:
        values.update(ended_at=now, end_reason=target.reason[:32])
    elif not final:
        values.update(disconnect_at=None)  # the next round tries again
    conn.execute(update(radius_sessions).where(c.session_id == target.session_id).values(**values))
    if ends:
        row = conn.execute(select(radius_sessions).where(c.session_id == target.session_id)).one()
        sessions.end(
            conn,
            target.session_id,
            reason=target.reason[:32],
            bytes_in=row.bytes_in,
            bytes_out=row.bytes_out,
            now=now,
        )
    audit.append(
        conn,
        audit.AuditEvent(
            at=now,
            actor=f"radius:{target.nas}"[:255],
            action="session.disconnect",
            subject=target.account[:255],
            outcome="ok" if ends else "failed",
            reason=target.reason if ends else outcome,
            unit=target.unit_code,
            session_id=target.session_id,
            details={
                "via": "radius",
                "nas": target.nas,
                "nas_host": target.nas_host,
                "acct_session_id": target.acct_session_id,
                "answer": outcome,
                "kill_reason": target.reason,
                "round": rounds,
                "final": final,
            },
        ),
    )
    return ends
