"""The alerts: the incremental evaluator, and the officers' handling of an alert.

:func:`evaluate_alerts` is one transaction that locks the cursor row, reads the audit
records after it (at most *batch*) with the look-back the rules need, stores each
finding (a new alert, or a refreshed open one with the same dedupe key) and moves
the cursor.  Any node may run it at any time: the cursor lock serialises them (``FOR
UPDATE`` on PostgreSQL; on SQLite a write first, which takes the database's write
lock), and the second evaluator finds the cursor already past what the first judged,
so no alert is ever raised twice.

Audit records become visible in ``seq`` order (``append`` holds the chain head until
commit), so a cursor never skips a record committed later with a smaller seq.

:func:`change_alert_state` moves an alert new → acknowledged → closed with a note and
records it in the audit log in the same transaction (``alert.acknowledge``,
``alert.close``; a refused change as ``refused`` with its reason code).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection, Row, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from audit._alerts import (
    LOGIN_ACTIONS,
    PREVIEW_ACTION,
    QUERY_PREFIX,
    SESSION_ACTIONS,
    AlertFinding,
    AlertThresholds,
    Evidence,
    find_alerts,
)
from audit._events import AuditEvent, AuditRecord, DetailValue
from audit._log import _COLUMNS, _record, append
from audit._schema import CURSOR_ID, MAX_DEDUPE_KEY, alert_cursor, alerts, audit_events

# When the session registry ended the given sessions (id → epoch seconds), for those it
# ended; ``audit`` cannot read the registry itself (ssgate passes the gateway's).
SessionEnds = Callable[[Connection, Collection[str]], Mapping[str, float]]

EVALUATE_BATCH: Final = 2000  # records per evaluation: keeps the lock short
EARLIER_LOGINS: Final = 1000  # an account's most recent logins the hour rule compares with
_IN_CHUNK = 500

TRANSITIONS: Final[Mapping[str, tuple[str, str]]] = {
    # target state → (audit action, the states it may come from as a string of names)
    "acknowledged": ("alert.acknowledge", "new"),
    "closed": ("alert.close", "new acknowledged"),
}


@dataclass(frozen=True)
class Evaluation:
    """One evaluation: the cursor before and after, and what it did."""

    after_seq: int
    last_seq: int
    records: int
    raised: int
    refreshed: int


@dataclass(frozen=True)
class AlertRow:
    """An alert as stored (times are epoch seconds)."""

    id: int
    rule: str
    severity: str
    summary: str
    account: str
    source: str
    unit: str
    first_seen: float
    last_seen: float
    occurrences: int
    evidence: Evidence
    state: str
    note: str | None
    changed_by: str | None
    changed_at: float | None
    created_at: float


@dataclass(frozen=True)
class StateChange:
    """What :func:`change_alert_state` did: the alert as it now stands (None if there
    is no such alert), and the refusal's reason code (``""`` when it was changed)."""

    alert: AlertRow | None
    refused: str = ""


# -- the evaluator --------------------------------------------------------------------


def evaluate_alerts(
    conn: Connection,
    thresholds: AlertThresholds,
    *,
    now: float,
    batch: int = EVALUATE_BATCH,
    session_ends: SessionEnds | None = None,
) -> Evaluation:
    """Judge the audit records after the cursor (see the module docstring).

    *session_ends* tells which sessions the registry has ended and when, so a session
    whose node died without writing ``session.end`` does not count as live for ever.
    """
    after = _lock_cursor(conn, now)
    new = _records(conn, audit_events.c.seq > after, limit=batch)
    if not new:
        return Evaluation(after, after, 0, 0, 0)
    last = new[-1].seq
    first_at = min(r.event.at for r in new)
    windowed = audit_events.c.action.in_(
        [*sorted(LOGIN_ACTIONS), PREVIEW_ACTION]
    ) | audit_events.c.action.startswith(QUERY_PREFIX, autoescape=True)
    before = _records(
        conn,
        windowed,
        audit_events.c.seq <= after,
        audit_events.c.at > first_at - thresholds.window_seconds,
    )
    live_making = {
        r.event.subject
        for r in new
        if r.event.action in ("login", "login.resume") and r.event.outcome == "ok"
    }
    sessions = _session_events(
        conn, live_making, since=first_at - thresholds.session_lookback_seconds, upto=last
    )
    ended_at: Mapping[str, float] = {}
    if session_ends is not None and sessions:
        ended_at = session_ends(conn, sorted({r.event.session_id for r in sessions}))
    logged_in = {
        r.event.subject for r in new if r.event.action == "login" and r.event.outcome == "ok"
    }
    earlier = {a: _login_times(conn, a, upto=after) for a in sorted(logged_in)}
    findings = find_alerts(
        [*before, *new],
        after_seq=after,
        thresholds=thresholds,
        sessions=sessions,
        ended_at=ended_at,
        earlier_logins=earlier,
    )
    raised = refreshed = 0
    for finding in findings:
        if _store(conn, finding, now):
            raised += 1
        else:
            refreshed += 1
    conn.execute(
        update(alert_cursor)
        .where(alert_cursor.c.id == CURSOR_ID)
        .values(last_seq=last, evaluated_at=now)
    )
    return Evaluation(after, last, len(new), raised, refreshed)


def _lock_cursor(conn: Connection, now: float) -> int:
    values = {"id": CURSOR_ID, "last_seq": 0, "evaluated_at": now}
    stmt: Any
    if conn.dialect.name == "postgresql":
        stmt = postgresql.insert(alert_cursor).values(values).on_conflict_do_nothing()
    else:
        stmt = sqlite.insert(alert_cursor).values(values).on_conflict_do_nothing()
    conn.execute(stmt)
    read = select(alert_cursor.c.last_seq).where(alert_cursor.c.id == CURSOR_ID)
    if conn.dialect.name == "sqlite":
        # A write before the read takes SQLite's write lock now (as audit.append does),
        # even on an engine that begins transactions deferred.
        conn.execute(
            update(alert_cursor)
            .where(alert_cursor.c.id == CURSOR_ID)
            .values(last_seq=alert_cursor.c.last_seq)
        )
    else:
        read = read.with_for_update()
    return int(conn.execute(read).scalar_one())


def _records(conn: Connection, *where: Any, limit: int | None = None) -> list[AuditRecord]:
    stmt = select(*_COLUMNS).where(*where).order_by(audit_events.c.seq)
    if limit is not None:
        stmt = stmt.limit(limit)
    return [_record(row) for row in conn.execute(stmt).all()]


def _session_events(
    conn: Connection, accounts: Collection[str], *, since: float, upto: int
) -> list[AuditRecord]:
    found: list[AuditRecord] = []
    names = sorted(accounts)
    for i in range(0, len(names), _IN_CHUNK):
        found += _records(
            conn,
            audit_events.c.subject.in_(names[i : i + _IN_CHUNK]),
            audit_events.c.action.in_(sorted(SESSION_ACTIONS)),
            audit_events.c.at >= since,
            audit_events.c.seq <= upto,
        )
    return sorted(found, key=lambda r: r.seq)


def _login_times(conn: Connection, account: str, *, upto: int) -> list[float]:
    rows = conn.execute(
        select(audit_events.c.at)
        .where(
            audit_events.c.subject == account,
            audit_events.c.action == "login",
            audit_events.c.outcome == "ok",
            audit_events.c.seq <= upto,
        )
        .order_by(audit_events.c.seq.desc())
        .limit(EARLIER_LOGINS)
    ).all()
    return [float(row[0]) for row in rows]


def _store(conn: Connection, finding: AlertFinding, now: float) -> bool:
    """Insert *finding* as a new alert (True) or refresh the open one with its key."""
    key = _fitted_key(finding)
    open_one = conn.execute(
        select(alerts.c.id, alerts.c.first_seen, alerts.c.last_seen, alerts.c.evidence).where(
            alerts.c.dedupe_key == key
        )
    ).first()
    if open_one is None:
        conn.execute(
            insert(alerts).values(
                rule=finding.rule,
                severity=finding.severity,
                dedupe_key=key,
                summary=finding.summary,
                account=finding.account[:255],
                source=finding.source[:64],
                unit=finding.unit[:64],
                first_seen=finding.first_seen,
                last_seen=finding.last_seen,
                occurrences=1,
                evidence=_json(finding.evidence),
                state="new",
                created_at=now,
            )
        )
        return True
    evidence = Evidence.from_json(json.loads(open_one.evidence)).merged(finding.evidence)
    conn.execute(
        update(alerts)
        .where(alerts.c.id == open_one.id)
        .values(
            summary=finding.summary,
            first_seen=min(float(open_one.first_seen), finding.first_seen),
            last_seen=max(float(open_one.last_seen), finding.last_seen),
            occurrences=alerts.c.occurrences + 1,
            evidence=_json(evidence),
        )
    )
    return False


def _fitted_key(finding: AlertFinding) -> str:
    """The dedupe key, or the rule and its SHA-256 when it is longer than the column
    (a key holds names and a certificate serial a client chose)."""
    key = finding.dedupe_key
    if len(key) <= MAX_DEDUPE_KEY:
        return key
    return f"{finding.rule}:sha256:{hashlib.sha256(key.encode('utf-8')).hexdigest()}"


def _json(evidence: Evidence) -> str:
    return json.dumps(evidence.as_json(), ensure_ascii=False, sort_keys=True, separators=(",", ":"))


# -- reading and handling -------------------------------------------------------------


def list_alerts(
    conn: Connection,
    *,
    state: str | None = None,
    severity: str | None = None,
    rule: str | None = None,
    before: int | None = None,
    limit: int = 50,
) -> list[AlertRow]:
    """Alerts newest first (by id), each filter given matching; *before* is the last
    id of the previous page (keyset paging)."""
    stmt = select(alerts).order_by(alerts.c.id.desc()).limit(max(0, limit))
    for column, value in (
        (alerts.c.state, state),
        (alerts.c.severity, severity),
        (alerts.c.rule, rule),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if before is not None:
        stmt = stmt.where(alerts.c.id < before)
    return [_alert(row) for row in conn.execute(stmt).all()]


def get_alert(conn: Connection, alert_id: int) -> AlertRow | None:
    row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).first()
    return None if row is None else _alert(row)


def change_alert_state(
    conn: Connection,
    alert_id: int,
    to_state: str,
    *,
    note: str,
    actor: str,
    now: float,
    session_ref: str = "",
    details: Mapping[str, DetailValue] | None = None,
) -> StateChange:
    """Acknowledge or close an alert with *note*, audited in this transaction.

    A change that cannot be made is recorded as refused with its reason code
    (``no-such-alert``, ``already-acknowledged``, ``already-closed``,
    ``bad-transition``) and returned, not raised, so the caller's transaction keeps
    the record.
    """
    if to_state not in TRANSITIONS:
        raise ValueError(f"an alert can be moved to acknowledged or closed, not {to_state!r}")
    action, sources = TRANSITIONS[to_state]
    current = get_alert(conn, alert_id)
    extra: dict[str, DetailValue] = dict(details or {})
    subject = f"alert:{alert_id}"
    problem = ""
    if current is None:
        problem = "no-such-alert"
    elif current.state == to_state:
        problem = f"already-{to_state}"
    elif current.state not in sources.split():
        problem = "bad-transition"
    if problem or current is None:
        append(
            conn,
            AuditEvent(
                at=now,
                actor=actor,
                action=action,
                subject=subject,
                outcome="refused",
                reason=problem,
                session_id=session_ref,
                details=extra,
            ),
        )
        return StateChange(current, problem)
    values: dict[str, Any] = {
        "state": to_state,
        "note": note,
        "changed_by": actor,
        "changed_at": now,
    }
    if to_state == "closed":
        values["dedupe_key"] = None  # a later episode is a new alert
    conn.execute(update(alerts).where(alerts.c.id == alert_id).values(**values))
    append(
        conn,
        AuditEvent(
            at=now,
            actor=actor,
            action=action,
            subject=subject,
            outcome="ok",
            session_id=session_ref,
            details={
                **extra,
                "rule": current.rule,
                "from": current.state,
                "to": to_state,
                "note": note,
            },
        ),
    )
    return StateChange(get_alert(conn, alert_id))


def _alert(row: Row[Any]) -> AlertRow:
    try:
        evidence = Evidence.from_json(json.loads(row.evidence))
    except ValueError:
        evidence = Evidence()
    return AlertRow(
        id=int(row.id),
        rule=str(row.rule),
        severity=str(row.severity),
        summary=str(row.summary),
        account=str(row.account),
        source=str(row.source),
        unit=str(row.unit),
        first_seen=float(row.first_seen),
        last_seen=float(row.last_seen),
        occurrences=int(row.occurrences),
        evidence=evidence,
        state=str(row.state),
        note=row.note,
        changed_by=row.changed_by,
        changed_at=None if row.changed_at is None else float(row.changed_at),
        created_at=float(row.created_at),
    )
