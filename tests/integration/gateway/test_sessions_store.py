"""The session registry on SQLite and PostgreSQL: limits, kills, resume tokens."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine, insert

import audit
from auth._schema import accounts, credentials
from auth._schema import metadata as auth_metadata
from certs._schema import certificates
from certs._schema import metadata as certs_metadata
from gateway import _sessions as s
from gateway._schema import metadata as gateway_metadata

ACCOUNT = "33068212345678@sxlss"


@pytest.fixture
def db(engine: Engine) -> Engine:
    for m in (auth_metadata, certs_metadata, gateway_metadata, audit.metadata):
        m.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(credentials).values(
                principal=ACCOUNT,
                kind="account",
                password_hash="x",
                totp_secret_sealed="x",
                password_changed_at=0.0,
                updated_at=0.0,
            )
        )
        conn.execute(
            insert(accounts).values(
                name=ACCOUNT,
                region="330682",
                unit_code="12345678",
                realm="sxlss",
                status="active",
                created_at=0.0,
                updated_at=0.0,
            )
        )
        conn.execute(
            insert(certificates).values(
                serial="ab",
                kind="client",
                subject=ACCOUNT,
                fingerprint_sha256="f" * 64,
                not_before_at=0.0,
                not_after_at=1e10,
                issued_at=0.0,
                status="valid",
                pem="-",
            )
        )
    return engine


def _start(db: Engine, sid: str, now: float = 1000.0, limit: int = 2) -> bool:
    with db.begin() as conn:
        return s.start_session(
            conn,
            session_id=sid,
            account=ACCOUNT,
            unit_code="12345678",
            peer="127.0.0.1:5000",
            cert_serial="ab",
            node="n1",
            now=now,
            max_concurrent=limit,
        )


def test_the_concurrent_session_limit_rejects_the_new_session(db: Engine) -> None:
    assert _start(db, "a") and _start(db, "b")
    assert not _start(db, "c")
    with db.begin() as conn:
        s.end_session(conn, "a", reason="client-quit", now=1001.0)
    assert _start(db, "c", now=1002.0)


def test_the_limit_holds_when_many_threads_start_sessions_at_once(db: Engine) -> None:
    barrier = threading.Barrier(8)

    def attempt(i: int) -> bool:
        barrier.wait()
        return _start(db, f"s{i}")

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(attempt, range(8)))
    assert results.count(True) == 2


def test_sessions_of_a_crashed_node_stop_counting_after_the_stale_period(db: Engine) -> None:
    assert _start(db, "a") and _start(db, "b")
    later = 1000.0 + s.STALE_AFTER_SECONDS + 1
    assert _start(db, "c", now=later)
    with db.begin() as conn:
        assert s.reap_stale_recorded(conn, now=later, actor="gateway:gw2:9") == 2
        assert s.get_session(conn, "a").end_reason == "node-lost"  # type: ignore[union-attr]


def test_kill_requests_suspension_and_revocation_each_end_a_session(db: Engine) -> None:
    _start(db, "a")
    with db.begin() as conn:
        assert s.sessions_to_end(conn, ["a"]) == {}
        assert s.request_kill(conn, "a", reason="officer-kill", note="check", actor="os:o", now=1.0)
        assert (
            s.request_kill(conn, "a", reason="officer-kill", note="", actor="os:o", now=2.0) is None
        )
        assert s.sessions_to_end(conn, ["a"]) == {"a": "officer-kill"}
    _start(db, "b")
    with db.begin() as conn:
        conn.execute(accounts.update().values(status="suspended"))
        assert s.sessions_to_end(conn, ["b"]) == {"b": "account-suspended"}
        conn.execute(accounts.update().values(status="active"))
        conn.execute(
            certificates.update().values(
                status="revoked", revoked_at=1.0, revocation_reason="superseded"
            )
        )
        assert s.sessions_to_end(conn, ["b"]) == {"b": "cert-revoked"}


def test_a_resume_generation_is_accepted_once(db: Engine) -> None:
    _start(db, "a")
    with db.begin() as conn:
        s.detach_session(conn, "a", now=1010.0)
        assert s.get_session(conn, "a").status == "detached"  # type: ignore[union-attr]
        resumed = s.resume_session(
            conn, "a", generation=0, node="n2", peer="127.0.0.1:6000", now=1020.0
        )
        assert resumed is not None and resumed.status == "live" and resumed.node == "n2"
        assert s.resume_session(conn, "a", generation=0, node="n2", peer="x", now=1021.0) is None
        assert (
            s.resume_session(conn, "a", generation=1, node="n2", peer="x", now=1022.0) is not None
        )


def test_an_ended_or_killed_session_cannot_be_resumed(db: Engine) -> None:
    _start(db, "a")
    _start(db, "b")
    with db.begin() as conn:
        s.end_session(conn, "a", reason="client-quit", now=1.0)
        assert s.resume_session(conn, "a", generation=0, node="n", peer="p", now=2.0) is None
        s.request_kill(conn, "b", reason="officer-kill", note="", actor="o", now=2.0)
        assert s.resume_session(conn, "b", generation=0, node="n", peer="p", now=3.0) is None


def test_killing_a_detached_session_ends_it_at_once_with_the_kill_reason(db: Engine) -> None:
    """No node holds a detached session to be told: the kill itself ends it, so the
    record says officer-kill (not the reaper's network-lost later) and it cannot resume."""
    _start(db, "a")
    _start(db, "b")
    with db.begin() as conn:
        s.detach_session(conn, "a", now=5.0)
        s.detach_session(conn, "b", now=5.0)
        assert s.request_kill(conn, "a", reason="officer-kill", note="", actor="o", now=6.0)
        assert s.request_kill_account(conn, ACCOUNT, reason="account-suspended", actor="c", now=7.0)
        a, b = s.get_session(conn, "a"), s.get_session(conn, "b")
        assert a is not None and b is not None
        assert (a.status, a.end_reason, a.ended_at) == ("ended", "officer-kill", 6.0)
        assert (b.status, b.end_reason, b.ended_at) == ("ended", "account-suspended", 7.0)
        assert s.resume_session(conn, "b", generation=0, node="n", peer="p", now=8.0) is None


def test_live_listing_and_counters(db: Engine) -> None:
    _start(db, "a")
    with db.begin() as conn:
        s.heartbeat(conn, {"a": (10, 20, 3)}, now=1005.0)
        [rec] = s.list_sessions(conn, open_only=True, now=1006.0)
        assert (rec.bytes_in, rec.bytes_out, rec.streams_opened) == (10, 20, 3)
        assert (
            s.request_kill_account(conn, ACCOUNT, reason="account-suspended", actor="os:c", now=1.0)
            == 1
        )


PEERS = {
    "1": "2001:db8::1:50123",
    "2": "2001:db8::1:5:443",  # its text begins with "2001:db8::1:" too
    "3": "192.0.2.7:40001",
    "4": "::ffff:192.0.2.7:40002",  # 192.0.2.7 through a dual-stack listener
    "5": "192.0.2.70:40003",
}


def _sessions_from_peers(db: Engine) -> None:
    with db.begin() as conn:
        for n, peer in PEERS.items():
            assert s.start_session(
                conn,
                session_id=n,
                account=ACCOUNT,
                unit_code="12345678",
                peer=peer,
                cert_serial="ab",
                node="n1",
                now=1000.0 + int(n),
                max_concurrent=100,
            )


@pytest.mark.parametrize(
    ("host", "wanted"),
    [
        ("2001:db8::1", ["1"]),
        ("2001:db8::1:5", ["2"]),
        ("192.0.2.7", ["4", "3"]),
        ("192.0.2.70", ["5"]),
        ("2001:db8::", []),
    ],
)
def test_the_source_filter_matches_the_host_exactly_not_a_longer_one(
    db: Engine, host: str, wanted: list[str]
) -> None:
    _sessions_from_peers(db)
    with db.begin() as conn:
        found = s.search_sessions(conn, peer_host=host)
    assert [r.id for r in found] == wanted


def test_the_source_filter_is_served_by_the_peer_index(db: Engine) -> None:
    """The exact-host check filters the rows the ``peer`` range seeks; it does not
    turn the search into a walk of the table."""
    _sessions_from_peers(db)
    from sqlalchemy import select
    from sqlalchemy.dialects import postgresql, sqlite

    from gateway._schema import sessions

    stmt = select(sessions.c.id).where(s.peer_is("2001:db8::1"))
    with db.begin() as conn:
        if db.dialect.name == "sqlite":
            sql = str(
                stmt.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True})
            )
            plan = [str(r[3]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)]
            assert any("USING" in line and "ix_sessions_peer" in line for line in plan), plan
            assert not any(line.startswith("SCAN sessions") for line in plan), plan
        else:
            sql = str(
                stmt.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
            )
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + sql))
            assert "ix_sessions_peer" in plan and "Seq Scan" not in plan, plan
