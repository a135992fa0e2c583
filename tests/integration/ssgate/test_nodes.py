"""The node registry and the shared policy (issue 13), on SQLite and PostgreSQL.

A node silent for the lost period is marked lost by another, and its live sessions end
``node-lost`` with their events — not those its clients resumed elsewhere, not a
detached one, not twice.  The policy: the first node stores it; the same policy in
another form passes; a different one is refused naming the keys; a replace is audited.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

import audit
from auth._schema import metadata as auth_metadata
from certs._schema import metadata as certs_metadata
from gateway import _sessions as s
from gateway._schema import metadata as gateway_metadata
from ssgate._config import PolicyConfig, parse_config
from ssgate._nodes import (
    LOST_AFTER_SECONDS,
    PolicyMismatch,
    check_policy,
    list_nodes,
    node_heartbeat,
    node_stopped,
    reap_lost_nodes,
    register_node,
    replace_policy,
    stored_policy,
)
from ssgate._schema import metadata as ssgate_metadata

ACCOUNT = "33068212345678@sxlss"
T0 = 50_000.0


@pytest.fixture
def db(engine: Engine) -> Engine:
    for m in (auth_metadata, certs_metadata, gateway_metadata, audit.metadata, ssgate_metadata):
        m.create_all(engine)
    return engine


def _session(db: Engine, sid: str, node: str) -> None:
    login = audit.AuditEvent(
        at=T0, actor=f"channel:{ACCOUNT}", action="login", subject=ACCOUNT, outcome="ok"
    )
    with db.begin() as conn:
        assert s.start_session_recorded(
            conn,
            session_id=sid,
            account=ACCOUNT,
            unit_code="12345678",
            peer="10.0.0.1:5000",
            cert_serial="01",
            node=node,
            now=T0,
            max_concurrent=10,
            event=login,
        )


def _status(db: Engine, sid: str) -> tuple[str, str | None, str]:
    with db.connect() as conn:
        record = s.get_session(conn, sid)
    assert record is not None
    return record.status, record.end_reason, record.node


def test_a_silent_node_is_marked_lost_and_its_live_sessions_end_node_lost_once(
    db: Engine,
) -> None:
    with db.begin() as conn:
        for name in ("gw-a:1", "gw-b:2"):
            register_node(conn, name=name, host=name[:4], pid=int(name[-1]), version="t", now=T0)
    for sid in ("b-live", "b-resumed", "b-detached"):
        _session(db, sid, "gw-b:2")
    _session(db, "a-live", "gw-a:1")
    with db.begin() as conn:
        # The client of one resumed on A; another dropped and may still resume.
        record = s.get_session(conn, "b-resumed")
        assert record is not None
        s.resume_session(
            conn, "b-resumed", generation=record.resume_generation, node="gw-a:1", peer="p", now=T0
        )
        s.detach_session(conn, "b-detached", now=T0)

    # A keeps beating; B went silent at T0.  Not yet lost just before the period ends.
    early = T0 + LOST_AFTER_SECONDS - 1
    with db.begin() as conn:
        node_heartbeat(conn, name="gw-a:1", now=early)
        assert reap_lost_nodes(conn, me="gw-a:1", now=early) == {}
    late = T0 + LOST_AFTER_SECONDS + 1
    with db.begin() as conn:
        node_heartbeat(conn, name="gw-a:1", now=late)
        assert reap_lost_nodes(conn, me="gw-a:1", now=late) == {"gw-b:2": 1}
    with db.begin() as conn:
        assert reap_lost_nodes(conn, me="gw-a:1", now=late + 5) == {}  # not twice

    assert _status(db, "b-live") == ("ended", "node-lost", "gw-b:2")
    assert _status(db, "b-resumed") == ("live", None, "gw-a:1")
    assert _status(db, "b-detached")[0] == "detached"
    assert _status(db, "a-live") == ("live", None, "gw-a:1")
    with db.connect() as conn:
        by_name = {n.name: n for n in list_nodes(conn)}
        ends = [r.event for r in audit.query(conn, actions=["session.end"], session_id="b-live")]
    assert (by_name["gw-b:2"].stop_reason, by_name["gw-a:1"].stop_reason) == ("lost", None)
    [end] = ends
    assert (end.reason, end.actor) == ("node-lost", "gateway:gw-a:1")
    assert end.details["ended_by"] == "node-lost" and end.details["node"] == "gw-b:2"


def test_a_cleanly_stopped_node_is_not_reaped_and_a_restarted_name_starts_afresh(
    db: Engine,
) -> None:
    with db.begin() as conn:
        register_node(conn, name="gw-b:2", host="gw-b", pid=2, version="t", now=T0)
        node_stopped(conn, name="gw-b:2", now=T0 + 1)
        assert reap_lost_nodes(conn, me="gw-a:1", now=T0 + 100) == {}
        register_node(conn, name="gw-b:2", host="gw-b", pid=2, version="t2", now=T0 + 200)
        [node] = list_nodes(conn)
    assert (node.stop_reason, node.stopped_at, node.version, node.started_at) == (
        None,
        None,
        "t2",
        T0 + 200,
    )
    assert node.draining is False


POLICY = """
[policy]
max_sessions = 2
allowed_sources = ["10.0.0.0/8", "192.168.1.0/24"]

[[policy.account]]
name = "33068212345678@sxlss"
services = []
"""


def _policy(text: str) -> PolicyConfig:
    return parse_config(text, source="ssgate.toml").policy


def test_the_first_node_stores_the_policy_and_the_same_policy_in_another_form_passes(
    db: Engine,
) -> None:
    reordered = POLICY.replace(
        '["10.0.0.0/8", "192.168.1.0/24"]', '["192.168.1.0/24", "10.0.0.0/8"]'
    ).replace("max_sessions = 2", "max_sessions = 2  # the default")
    with db.begin() as conn:
        assert check_policy(conn, _policy(POLICY), now=T0, actor="gateway:a")
    with db.begin() as conn:
        assert not check_policy(conn, _policy(reordered), now=T0, actor="gateway:b")
        stored = stored_policy(conn)
    assert stored is not None and stored["policy.account[33068212345678@sxlss].services"] == []


def test_a_node_with_a_different_policy_is_refused_naming_the_keys_until_replaced(
    db: Engine,
) -> None:
    other = POLICY.replace("max_sessions = 2", "max_sessions = 3").replace(
        "services = []", 'services = ["declare"]'
    )
    with db.begin() as conn:
        check_policy(conn, _policy(POLICY), now=T0, actor="gateway:a")
    with pytest.raises(PolicyMismatch) as refused, db.begin() as conn:
        check_policy(conn, _policy(other), now=T0, actor="gateway:b")
    keys = [
        "policy.account[33068212345678@sxlss].max_sessions",
        "policy.account[33068212345678@sxlss].services",
        "policy.max_sessions",
    ]
    assert refused.value.keys == keys
    assert all(key in str(refused.value) for key in keys)
    assert "ssgate node policy --replace" in str(refused.value)

    with db.begin() as conn:
        assert replace_policy(conn, _policy(other), now=T0 + 1, actor="os:ops") == keys
    with db.begin() as conn:
        assert not check_policy(conn, _policy(other), now=T0 + 2, actor="gateway:b")
        [record] = audit.query(conn, actions=["node.policy-replace"])
        event = record.event
    assert event.actor == "os:ops" and "policy.max_sessions" in event.details["keys"]
    with pytest.raises(PolicyMismatch), db.begin() as conn:
        check_policy(conn, _policy(POLICY), now=T0 + 3, actor="gateway:a")
