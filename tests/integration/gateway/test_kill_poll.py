"""The node's every-second kill poll (``KillPoll``) on SQLite and PostgreSQL: it ends
the same sessions for the same reasons as a full look (``ends_due``) while reading
only what changed, never the node's whole live set."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert, text, update

import audit
import certs
from auth._schema import accounts, credentials
from auth._schema import metadata as auth_metadata
from certs._schema import certificates
from certs._schema import metadata as certs_metadata
from gateway import _sessions as s
from gateway._schema import metadata as gateway_metadata

NOW = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def _account(n: int) -> str:
    return f"3306821234{n:04d}@sxlss"


def _serial(n: int) -> str:
    return f"a{n:04x}"


@pytest.fixture
def db(engine: Engine) -> Iterator[Engine]:
    for m in (auth_metadata, certs_metadata, gateway_metadata, audit.metadata):
        m.create_all(engine)
    yield engine


def _open(db: Engine, count: int, *, first: int = 0, node: str = "n1") -> list[str]:
    """*count* live sessions on *node*, each with its own account and certificate."""
    ids = []
    with db.begin() as conn:
        for n in range(first, first + count):
            name = _account(n)
            conn.execute(
                insert(credentials).values(
                    principal=name,
                    kind="account",
                    password_hash="x",
                    totp_secret_sealed="x",
                    password_changed_at=0.0,
                    updated_at=0.0,
                )
            )
            conn.execute(
                insert(accounts).values(
                    name=name,
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
                    serial=_serial(n),
                    kind="client",
                    subject=name,
                    fingerprint_sha256=f"{n:064x}",
                    not_before_at=0.0,
                    not_after_at=1e10,
                    issued_at=0.0,
                    status="valid",
                    pem="-",
                )
            )
            sid = f"s{n:05d}"
            assert s.start_session(
                conn,
                session_id=sid,
                account=name,
                unit_code="12345678",
                peer="127.0.0.1:5000",
                cert_serial=_serial(n),
                node=node,
                now=NOW,
                max_concurrent=3,
            )
            ids.append(sid)
    return ids


def _poll(db: Engine, poll: s.KillPoll, ids: list[str]) -> dict[str, s.SessionEnd]:
    with db.begin() as conn:
        return poll(conn, ids)


def _full(db: Engine, ids: list[str]) -> dict[str, s.SessionEnd]:
    with db.begin() as conn:
        return s.ends_due(conn, ids)


def test_each_change_ends_its_session_as_a_full_look_would(db: Engine) -> None:
    """After the first (full) poll, an officer's kill, a suspension, a cancellation, a
    revocation and an end recorded elsewhere each end their session, with the reason
    and note a full look gives; the untouched session stays."""
    ids = _open(db, 6)
    clock = Clock()
    poll = s.KillPoll(clock)
    assert _poll(db, poll, ids) == {}
    clock.now += 1
    assert _poll(db, poll, ids) == {}
    clock.now += 1
    with db.begin() as conn:
        s.kill_session(conn, ids[0], note="call the office", actor="os:o", now=clock.now)
        conn.execute(
            update(accounts)
            .where(accounts.c.name == _account(1))
            .values(status="suspended", updated_at=clock.now)
        )
        conn.execute(
            update(accounts)
            .where(accounts.c.name == _account(2))
            .values(status="cancelled", updated_at=clock.now)
        )
        assert certs.revoke(
            conn,
            _serial(3),
            reason="key_compromise",
            now=datetime.fromtimestamp(clock.now, UTC),
        )
        s.end_session(conn, ids[4], reason="node-lost", now=clock.now)
    clock.now += 1
    verdict = _poll(db, poll, ids)
    assert verdict == _full(db, ids)
    assert verdict == {
        ids[0]: s.SessionEnd("officer-kill", "call the office"),
        ids[1]: s.SessionEnd("account-suspended"),
        ids[2]: s.SessionEnd("account-cancelled"),
        ids[3]: s.SessionEnd("cert-revoked"),
        ids[4]: s.SessionEnd("gateway-shutdown"),
    }
    # Until the node ends them, they stay due (the look-back reads them again).
    clock.now += 1
    assert _poll(db, poll, ids) == verdict
    assert _poll(db, poll, [ids[5]]) == {}


def test_a_kill_request_is_seen_whatever_its_time_stamp(db: Engine) -> None:
    """A kill not yet acted on is read by its state, not its time: one stamped by a
    clock far behind the node's still ends the session at the next poll."""
    ids = _open(db, 2)
    clock = Clock()
    poll = s.KillPoll(clock)
    _poll(db, poll, ids)
    clock.now += 1
    with db.begin() as conn:
        s.request_kill(conn, ids[1], reason="officer-kill", note="", actor="os:o", now=5.0)
    assert _poll(db, poll, ids) == {ids[1]: s.SessionEnd("officer-kill")}


def test_a_change_stamped_within_the_look_back_is_still_read(db: Engine) -> None:
    """A suspension committed late, or stamped by a clock behind the node's, up to
    the look-back before the previous poll began, still ends the session."""
    ids = _open(db, 2)
    clock = Clock()
    poll = s.KillPoll(clock)
    _poll(db, poll, ids)
    clock.now += 1
    _poll(db, poll, ids)
    with db.begin() as conn:
        conn.execute(
            update(accounts)
            .where(accounts.c.name == _account(0))
            .values(status="suspended", updated_at=clock.now - s.KILL_POLL_LOOK_BACK_SECONDS)
        )
    clock.now += 1
    assert _poll(db, poll, ids) == {ids[0]: s.SessionEnd("account-suspended")}


def test_a_session_new_to_the_live_set_is_matched_by_its_account_and_certificate(
    db: Engine,
) -> None:
    """A session that appears between polls is matched too: its certificate revoked
    just after its login ends it."""
    ids = _open(db, 1)
    clock = Clock()
    poll = s.KillPoll(clock)
    _poll(db, poll, ids)
    clock.now += 1
    ids += _open(db, 1, first=1)
    with db.begin() as conn:
        certs.revoke(
            conn, _serial(1), reason="superseded", now=datetime.fromtimestamp(clock.now, UTC)
        )
    assert _poll(db, poll, ids) == {ids[1]: s.SessionEnd("cert-revoked")}


def test_an_idle_poll_does_not_read_the_live_set(db: Engine) -> None:
    """Between full looks, a poll with nothing changed runs the same statements with
    the same parameters for 10 live sessions as for 200: none names a live session."""

    def statements(count: int) -> list[tuple[str, int]]:
        ids = _open(db, count, first=1000 * count, node=f"n{count}")
        clock = Clock()
        poll = s.KillPoll(clock)
        _poll(db, poll, ids)  # full, and learns each session's account and certificate
        clock.now += 1
        seen: list[tuple[str, int]] = []

        def record(*args: Any) -> None:  # conn, cursor, statement, parameters, ...
            statement, parameters = args[2], args[3]
            values = list(parameters.values() if isinstance(parameters, dict) else parameters)
            seen.append((statement, len(values)))
            assert not any(v in ids for v in values)

        event.listen(db, "before_cursor_execute", record)
        try:
            assert _poll(db, poll, ids) == {}
        finally:
            event.remove(db, "before_cursor_execute", record)
        return seen

    assert statements(10) == statements(200)


def test_a_full_look_comes_round_again(db: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ``KILL_POLL_FULL_EVERY``-th poll reads every live session: an account
    stamped far behind the look-back (a clock badly off) still ends its session."""
    monkeypatch.setattr(s, "KILL_POLL_FULL_EVERY", 3)
    ids = _open(db, 2)
    clock = Clock()
    poll = s.KillPoll(clock)
    _poll(db, poll, ids)
    with db.begin() as conn:
        conn.execute(
            update(accounts).where(accounts.c.name == _account(1)).values(status="suspended")
        )
    clock.now += 1
    assert _poll(db, poll, ids) == {}
    clock.now += 1
    assert _poll(db, poll, ids) == {}
    clock.now += 1
    assert _poll(db, poll, ids) == {ids[1]: s.SessionEnd("account-suspended")}


def test_sqlite_reads_the_pending_kills_through_their_partial_index(
    sqlite_engine: Engine,
) -> None:
    """The pending kills are read through ``ix_sessions_kill_pending`` (migration
    0019), not by walking the sessions.  (SQLite only: PostgreSQL picks its plan by
    the table's statistics, and a small test table is read whole.)"""
    db = sqlite_engine
    for m in (auth_metadata, certs_metadata, gateway_metadata, audit.metadata):
        m.create_all(db)
    with db.begin() as conn:
        compiled = s._KILLS_PENDING.compile(conn)
        plan = " ".join(
            str(row[-1]) for row in conn.execute(text(f"EXPLAIN QUERY PLAN {compiled}"))
        )
    assert "ix_sessions_kill_pending" in plan
