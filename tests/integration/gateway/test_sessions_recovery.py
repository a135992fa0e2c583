"""Sessions whose node is gone end with their ``session.end`` event, on SQLite and
PostgreSQL: at a node's start for dead processes of its host, by any node once stale;
and an officer's kill or a carrier's suspension never takes effect without its record."""

from __future__ import annotations

import pytest
from sqlalchemy import Connection, Engine, text, update

import audit
from auth import get_account
from auth._schema import metadata as auth_metadata
from certs._schema import metadata as certs_metadata
from gateway import _sessions as s
from gateway._schema import metadata as gateway_metadata
from gateway._schema import sessions
from provisioning.testing import MemoryUnits, make_provisioner

ACCOUNT = "33068212345678@sxlss"
HOST = "gw1"
BOOT = 10_000.0


@pytest.fixture
def db(engine: Engine) -> Engine:
    for m in (auth_metadata, certs_metadata, gateway_metadata, audit.metadata):
        m.create_all(engine)
    return engine


def _start(db: Engine, sid: str, *, node: str, now: float) -> None:
    login = audit.AuditEvent(
        at=now, actor=f"channel:{ACCOUNT}", action="login", subject=ACCOUNT, outcome="ok"
    )
    with db.begin() as conn:
        assert s.start_session_recorded(
            conn,
            session_id=sid,
            account=ACCOUNT,
            unit_code="12345678",
            peer="203.0.113.7:5000",
            cert_serial="ab",
            node=node,
            now=now,
            max_concurrent=100,
            event=login,
        )


def _ends(db: Engine) -> dict[str, audit.AuditEvent]:
    with db.begin() as conn:
        return {r.event.session_id: r.event for r in audit.query(conn, actions=["session.end"])}


def _status(db: Engine, sid: str) -> tuple[str, str | None]:
    with db.begin() as conn:
        record = s.get_session(conn, sid)
    assert record is not None
    return record.status, record.end_reason


def test_start_up_ends_the_live_sessions_of_dead_processes_of_this_host_with_events(
    db: Engine,
) -> None:
    me = f"{HOST}:100"
    _start(db, "mine-before", node=me, now=BOOT - 5)  # a dead process that had my pid
    _start(db, "mine-now", node=me, now=BOOT + 1)  # this process's own
    _start(db, "dead", node=f"{HOST}:200", now=BOOT - 5)
    _start(db, "alive", node=f"{HOST}:300", now=BOOT - 5)
    _start(db, "other-host", node="gw2:200", now=BOOT - 5)
    _start(db, "detached", node=f"{HOST}:200", now=BOOT - 5)
    with db.begin() as conn:
        conn.execute(update(sessions).where(sessions.c.id == "detached").values(status="detached"))
    with db.begin() as conn:
        ended = s.recover_sessions(
            conn,
            node=me,
            host=HOST,
            process_alive=lambda pid: pid == 300,
            booted_at=BOOT,
            now=BOOT + 2,
        )
    assert ended == 2
    assert _status(db, "mine-before") == ("ended", "node-lost")
    assert _status(db, "dead") == ("ended", "node-lost")
    for kept in ("mine-now", "alive", "other-host"):
        assert _status(db, kept) == ("live", None)
    assert _status(db, "detached") == ("detached", None)  # its client may still resume
    ends = _ends(db)
    assert set(ends) == {"mine-before", "dead"}
    end = ends["dead"]
    assert (end.actor, end.reason, end.subject, end.unit) == (
        f"gateway:{me}",
        "node-lost",
        ACCOUNT,
        "12345678",
    )
    assert end.details["node"] == f"{HOST}:200" and end.details["ended_by"] == "restart"


def test_a_session_resumed_elsewhere_meanwhile_is_not_ended_by_a_recovery_that_read_it_before(
    db: Engine,
) -> None:
    _start(db, "a", node=f"{HOST}:200", now=BOOT - 5)
    with db.begin() as conn:
        [row] = conn.execute(sessions.select()).all()
        s.resume_session(conn, "a", generation=0, node="gw2:7", peer="x:1", now=BOOT)
        assert not s._end_abandoned(
            conn,
            row,
            reason="node-lost",
            now=BOOT,
            actor="gateway:test",
            ended_by="restart",
            still=sessions.c.last_seen_at <= row.last_seen_at,
        )
    assert _status(db, "a") == ("live", None) and _ends(db) == {}


def test_any_node_ends_stale_sessions_with_events_and_only_once(db: Engine) -> None:
    _start(db, "live-stale", node="gone:1", now=BOOT)
    _start(db, "detached-stale", node="gone:1", now=BOOT)
    _start(db, "fresh", node="gone:1", now=BOOT + s.STALE_AFTER_SECONDS)
    with db.begin() as conn:
        s.detach_session(conn, "detached-stale", now=BOOT)
    later = BOOT + s.STALE_AFTER_SECONDS + 1
    with db.begin() as conn:
        assert s.reap_stale_recorded(conn, now=later, actor="gateway:gw2:9") == 2
    with db.begin() as conn:
        assert s.reap_stale_recorded(conn, now=later, actor="gateway:gw3:9") == 0
    assert _status(db, "live-stale") == ("ended", "node-lost")
    assert _status(db, "detached-stale") == ("ended", "network-lost")
    assert _status(db, "fresh") == ("live", None)
    ends = _ends(db)
    assert {sid: e.reason for sid, e in ends.items()} == {
        "live-stale": "node-lost",
        "detached-stale": "network-lost",
    }
    assert {e.actor for e in ends.values()} == {"gateway:gw2:9"}


def test_every_session_row_has_its_login_event(db: Engine) -> None:
    for i in range(5):
        _start(db, f"s{i}", node="gw:1", now=BOOT + i)
    with db.begin() as conn:
        logins = {r.event.session_id for r in audit.query(conn, actions=["login"])}
        rows = {r.id for r in s.list_sessions(conn)}
    assert rows == logins


def test_an_officers_kill_that_cannot_be_recorded_does_not_take_effect(db: Engine) -> None:
    _start(db, "a", node="gw:1", now=BOOT)
    with db.begin() as conn:
        _fail_audit_inserts(conn)
    with pytest.raises(Exception), db.begin() as conn:  # noqa: B017 - any database error
        s.kill_session(conn, "a", note="stop", actor="staff:officer", now=BOOT + 1)
    with db.begin() as conn:
        record = s.get_session(conn, "a")
        assert record is not None and record.kill_requested_at is None


def _fail_audit_inserts(conn: object) -> None:
    """Every insert into audit_events fails from now on, as on a full disk."""
    execute = conn.execute  # type: ignore[attr-defined]
    if conn.dialect.name == "postgresql":  # type: ignore[attr-defined]
        execute(
            text(
                "CREATE FUNCTION disk_full() RETURNS trigger AS $$ BEGIN "
                "RAISE EXCEPTION 'could not extend file: No space left on device'; END $$ "
                "LANGUAGE plpgsql"
            )
        )
        execute(
            text(
                "CREATE TRIGGER disk_full BEFORE INSERT ON audit_events "
                "FOR EACH ROW EXECUTE FUNCTION disk_full()"
            )
        )
    else:
        execute(
            text(
                "CREATE TRIGGER disk_full BEFORE INSERT ON audit_events "
                "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
            )
        )


def test_a_kill_of_a_detached_session_ends_it_with_its_event_in_the_kills_transaction(
    db: Engine,
) -> None:
    _start(db, "a", node="gw:1", now=BOOT)
    with db.begin() as conn:
        s.detach_session(conn, "a", now=BOOT)
        s.kill_session(conn, "a", note="stop", actor="staff:officer", now=BOOT + 1)
    assert _status(db, "a") == ("ended", "officer-kill")
    end = _ends(db)["a"]
    assert (end.actor, end.reason, end.details["ended_by"]) == (
        "staff:officer",
        "officer-kill",
        "request",
    )


class _Registry:
    """The gateway's session registry behind provisioning's interfaces, as ``ssgate``
    wires it (``ssgate._app``)."""

    def end_sessions(
        self, conn: Connection, account: str, *, reason: str, now: float, actor: str
    ) -> int:
        return s.request_kill_account(conn, account, reason=reason, actor=actor, now=now)

    def recent_sessions(self, conn: Connection, account: str, *, limit: int) -> list[object]:
        return []


def test_a_suspension_that_cannot_be_recorded_neither_suspends_nor_ends_sessions(
    db: Engine,
) -> None:
    clock = [BOOT]
    provisioner = make_provisioner(
        db,
        clock=lambda: clock[0],
        units=MemoryUnits({"12345678": ("approved", "330682")}),
        sessions=_Registry(),  # type: ignore[arg-type]  # the real one, not the recorder
    )
    provisioner.open(ACCOUNT)
    _start(db, "a", node="gw:1", now=BOOT)
    with db.begin() as conn:
        _fail_audit_inserts(conn)
    with pytest.raises(Exception):  # noqa: B017 - the database's error, whichever it is
        provisioner.suspend(ACCOUNT, reason="unpaid")
    with db.begin() as conn:
        account = get_account(conn, ACCOUNT)
        record = s.get_session(conn, "a")
    assert account is not None and account.status == "active"
    assert record is not None and record.kill_requested_at is None
