"""A worker of ``serve --workers N`` started again after a crash runs the gateway's
start-up recovery (:func:`gateway._sessions.recover_sessions`, as ``GatewayNode``
calls it): it ends what its dead predecessor left live and never a live sibling
worker's sessions — with named workers (``gw-0``, ``gw-1``) and with ``host:pid``
ones — even a sibling's session last seen before the new worker booted."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

import audit
from auth._schema import metadata as auth_metadata
from certs._schema import metadata as certs_metadata
from gateway import _sessions as s
from gateway._schema import metadata as gateway_metadata
from ssgate._workers import worker_node_name

ACCOUNT = "33068212345678@sxlss"
BOOT = 10_000.0  # when the restarted worker booted


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


def _recover_as(db: Engine, node: str, *, alive: set[int]) -> int:
    """The recovery exactly as ``GatewayNode._recover`` derives its arguments."""
    host, _, pid = node.rpartition(":")
    with db.begin() as conn:
        return s.recover_sessions(
            conn,
            node=node,
            host=host if pid.isdigit() else "",
            process_alive=lambda p: p in alive,
            booted_at=BOOT,
            now=BOOT + 1,
        )


def _status(db: Engine, sid: str) -> str:
    with db.begin() as conn:
        record = s.get_session(conn, sid)
    assert record is not None
    return record.status


def test_a_restarted_named_worker_ends_its_predecessors_sessions_and_not_its_siblings(
    db: Engine,
) -> None:
    me = worker_node_name("gw", 1, lambda: "unused")
    sibling = worker_node_name("gw", 0, lambda: "unused")
    _start(db, "predecessor", node=me, now=BOOT - 5)  # gw-1 before its kill -9
    _start(db, "sibling-old", node=sibling, now=BOOT - 50)  # live on gw-0, seen before BOOT
    _start(db, "sibling-new", node=sibling, now=BOOT + 0.5)
    assert _recover_as(db, me, alive=set()) == 1
    assert _status(db, "predecessor") == "ended"
    assert _status(db, "sibling-old") == "live"
    assert _status(db, "sibling-new") == "live"


def test_a_restarted_host_pid_worker_never_ends_a_live_siblings_sessions(db: Engine) -> None:
    _start(db, "dead-worker", node="vm:200", now=BOOT - 5)  # killed; its pid is gone
    _start(db, "sibling", node="vm:100", now=BOOT - 50)  # the sibling worker, alive
    _start(db, "parent-pid", node="vm:99", now=BOOT - 50)  # pid alive (not a worker's)
    assert _recover_as(db, "vm:300", alive={99, 100, 300}) == 1
    assert _status(db, "dead-worker") == "ended"
    assert _status(db, "sibling") == "live"
    assert _status(db, "parent-pid") == "live"
