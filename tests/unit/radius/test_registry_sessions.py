"""Dial-in sessions in the gateway's session registry (``ssgate._radius.RegistrySessions``):
started by accounting, kept alive against the registry's reaper, marked for ending by
an officer's kill or a suspension like channel sessions."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

import gateway
from gateway import _sessions
from radius import keep_alive
from ssgate._radius import RegistrySessions
from ssgate._schema import all_metadata

SID = "ab" * 16
ACCOUNT = "33068212345678@sxlss"
NOW = 1_790_000_000.0


@pytest.fixture
def registry(sqlite_engine: Engine) -> Engine:
    for m in all_metadata():
        m.create_all(sqlite_engine)
    with sqlite_engine.begin() as conn:
        RegistrySessions().start(
            conn,
            session_id=SID,
            account=ACCOUNT,
            unit_code="12345678",
            peer="10.64.0.7",
            node="radius:bras-1",
            now=NOW,
        )
        from radius._schema import radius_sessions

        conn.execute(
            radius_sessions.insert().values(
                session_id=SID,
                account=ACCOUNT,
                unit_code="12345678",
                nas="bras-1",
                nas_address="127.0.0.1:1813",
                acct_session_id="S-1",
                started_at=NOW,
                reported_at=NOW,
                bytes_in=10,
                bytes_out=20,
            )
        )
    return sqlite_engine


def test_a_dial_in_session_is_a_live_registry_session_held_by_its_nas(registry: Engine) -> None:
    with registry.begin() as conn:
        [record] = gateway.list_sessions(conn, account=ACCOUNT)
    assert (record.id, record.status, record.node, record.peer, record.cert_serial) == (
        SID,
        "live",
        "radius:bras-1",
        "10.64.0.7",
        "",
    )


def test_keep_alive_saves_open_dial_in_sessions_from_the_reaper(registry: Engine) -> None:
    later = NOW + 600
    with registry.begin() as conn:
        assert keep_alive(conn, sessions=RegistrySessions(), now=later) == 1
        assert _sessions.reap_stale_recorded(conn, now=later + 60, actor="gateway:gw:1") == 0
        assert gateway.list_sessions(conn, account=ACCOUNT)[0].bytes_out == 20
    # Not reported for longer than the report timeout: no longer kept alive.
    much_later = NOW + 7200 + 1
    with registry.begin() as conn:
        assert keep_alive(conn, sessions=RegistrySessions(), now=much_later) == 0
        assert _sessions.reap_stale_recorded(conn, now=much_later + 200, actor="gateway:gw:1") == 1


@pytest.mark.parametrize(
    ("mark", "reason"),
    [
        (
            lambda conn: gateway.kill_session(conn, SID, note="n", actor="staff:olga", now=NOW + 1),
            "officer-kill",
        ),
        (
            lambda conn: gateway.request_kill_account(
                conn, ACCOUNT, reason="account-suspended", actor="staff:carl", now=NOW + 1
            ),
            "account-suspended",
        ),
    ],
)
def test_a_kill_or_a_suspension_marks_the_session_for_disconnect(
    registry: Engine, mark: object, reason: str
) -> None:
    sessions = RegistrySessions()
    with registry.begin() as conn:
        assert sessions.kill_reason(conn, SID) is None
        mark(conn)  # type: ignore[operator]
        assert sessions.kill_reason(conn, SID) == reason
        assert sessions.end(conn, SID, reason=reason, bytes_in=1, bytes_out=2, now=NOW + 2)
        assert sessions.kill_reason(conn, SID) is None
