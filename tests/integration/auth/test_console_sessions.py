"""Staff console sessions in the database, on SQLite and PostgreSQL: hashed ids, timeouts,
the throttled idle clock, logout, ending a member's sessions, caps, sweep, and two
"nodes" (engines) sharing one database."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, Engine, select

from auth import (
    ConsoleSession,
    ConsoleSessionPolicy,
    PasswordHasher,
    SecretBox,
    create_console_session,
    create_staff,
    end_console_session,
    end_staff_console_sessions,
    generate_password,
    lookup_console_session,
    new_totp_secret,
    reset_password,
    reset_totp,
    set_staff_status,
    sweep_console_sessions,
    totp_secret_context,
)
from auth._schema import console_sessions
from ssgate._db import in_transaction, make_engine

NOW = 1_767_225_600.0
POLICY = ConsoleSessionPolicy()  # 15 min idle, 8 h in all, written every 5 s at most


@pytest.fixture
def staffed(db: Engine, hasher: PasswordHasher, box: SecretBox) -> Engine:
    """The auth tables with carol (carrier), alice (auditor) and otto (officer)."""
    password_hash = hasher.hash(generate_password())
    with db.begin() as conn:
        for name, role in [("carol", "carrier"), ("alice", "auditor"), ("otto", "officer")]:
            create_staff(
                conn,
                name,
                role,
                password_hash=password_hash,
                totp_secret_sealed=box.seal(new_totp_secret(), context=totp_secret_context(name)),
                now=NOW,
            )
    return db


def _create(
    db: Engine,
    name: str = "carol",
    *,
    now: float = NOW,
    policy: ConsoleSessionPolicy = POLICY,
    replaces: str = "",
) -> tuple[str, ConsoleSession]:
    with db.begin() as conn:
        created = create_console_session(conn, name, now=now, policy=policy, replaces=replaces)
    assert created is not None
    return created


def _lookup(
    db: Engine, session_id: str, now: float, policy: ConsoleSessionPolicy = POLICY
) -> tuple[ConsoleSession | None, str]:
    with db.begin() as conn:
        found = lookup_console_session(conn, session_id, now=now, policy=policy)
    return found.session, found.why


def _rows(db: Engine) -> list[dict[str, object]]:
    with db.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(console_sessions))]


def test_a_session_is_stored_under_the_ids_digest_never_the_id(staffed: Engine) -> None:
    session_id, session = _create(staffed)
    assert len(session_id) == 43  # 256 bits, unpadded base64url
    [row] = _rows(staffed)
    assert row["token_digest"] == hashlib.sha256(session_id.encode()).hexdigest()
    assert session_id not in repr(row)
    assert (row["staff"], row["role"], row["ref"]) == ("carol", "carrier", session.ref)
    assert session.ref.startswith("cs-") and len(session.ref) == 19
    assert session.csrf_token and session.csrf_token not in repr(session)
    assert session.csrf_token != session_id
    found, why = _lookup(staffed, session_id, NOW + 1)
    assert (found, why) == (session, "")


def test_every_login_gets_a_fresh_id_ref_and_csrf_token(staffed: Engine) -> None:
    a_id, a = _create(staffed)
    b_id, b = _create(staffed)
    assert a_id != b_id and a.ref != b.ref and a.csrf_token != b.csrf_token
    assert _lookup(staffed, a_id, NOW)[0] == a  # two browsers, two live sessions
    assert _lookup(staffed, b_id, NOW)[0] == b


def test_an_unknown_or_made_up_id_finds_nothing(staffed: Engine) -> None:
    _create(staffed)
    for made_up in ["A" * 43, "", "x" * 5000, "\x00\udcff"]:
        assert _lookup(staffed, made_up, NOW) == (None, "unknown")


def test_no_session_for_an_unknown_or_disabled_member(staffed: Engine) -> None:
    with staffed.begin() as conn:
        assert create_console_session(conn, "nobody", now=NOW, policy=POLICY) is None
        set_staff_status(conn, "alice", "disabled", now=NOW)
        assert create_console_session(conn, "alice", now=NOW, policy=POLICY) is None
    assert _rows(staffed) == []


def test_the_role_is_the_members_role_at_login(staffed: Engine) -> None:
    _, session = _create(staffed, "otto")
    assert session.role == "officer"


def test_idle_timeout_restarts_with_each_request(staffed: Engine) -> None:
    session_id, _ = _create(staffed)
    assert _lookup(staffed, session_id, NOW + 14 * 60)[0] is not None
    assert _lookup(staffed, session_id, NOW + 28 * 60)[0] is not None
    assert _lookup(staffed, session_id, NOW + 43 * 60) == (None, "idle")
    assert _rows(staffed) == []  # an expired session is deleted
    assert _lookup(staffed, session_id, NOW + 43 * 60) == (None, "unknown")


def test_max_age_ends_even_an_active_session(staffed: Engine) -> None:
    session_id, _ = _create(staffed)
    t = NOW
    while t + 600 < NOW + 8 * 3600:
        t += 600
        assert _lookup(staffed, session_id, t)[0] is not None
    assert _lookup(staffed, session_id, NOW + 8 * 3600) == (None, "max-age")
    assert _rows(staffed) == []


def test_last_seen_is_written_at_most_every_touch_seconds(staffed: Engine) -> None:
    """A burst of requests costs one write; the clock is still restarted by it."""
    session_id, _ = _create(staffed)
    for dt in (1.0, 2.0, 4.9):
        found, _ = _lookup(staffed, session_id, NOW + dt)
        assert found is not None and found.last_seen_at == NOW
    assert _rows(staffed)[0]["last_seen_at"] == NOW
    found, _ = _lookup(staffed, session_id, NOW + 5.0)
    assert found is not None and found.last_seen_at == NOW + 5.0
    assert _rows(staffed)[0]["last_seen_at"] == NOW + 5.0
    # every request rewrites it when the policy says 0
    eager = ConsoleSessionPolicy(touch_seconds=0)
    found, _ = _lookup(staffed, session_id, NOW + 5.5, eager)
    assert found is not None and _rows(staffed)[0]["last_seen_at"] == NOW + 5.5


def test_last_seen_never_moves_back(staffed: Engine) -> None:
    """A node whose clock is behind does not shorten another node's idle clock."""
    session_id, _ = _create(staffed)
    _lookup(staffed, session_id, NOW + 100)
    found, _ = _lookup(staffed, session_id, NOW + 50)
    assert found is not None and found.last_seen_at == NOW + 100
    assert _rows(staffed)[0]["last_seen_at"] == NOW + 100


def test_logout_deletes_the_session(staffed: Engine) -> None:
    session_id, _ = _create(staffed)
    other_id, _ = _create(staffed)
    with staffed.begin() as conn:
        assert end_console_session(conn, session_id) is True
        assert end_console_session(conn, session_id) is False
    assert _lookup(staffed, session_id, NOW) == (None, "unknown")
    assert _lookup(staffed, other_id, NOW)[0] is not None


def test_login_ends_the_session_the_browser_held(staffed: Engine) -> None:
    old_id, _ = _create(staffed)
    new_id, _ = _create(staffed, now=NOW + 10, replaces=old_id)
    assert _lookup(staffed, old_id, NOW + 11) == (None, "unknown")
    assert _lookup(staffed, new_id, NOW + 11)[0] is not None


def test_ending_a_members_sessions_tells_each_browser_once(staffed: Engine) -> None:
    a_id, a = _create(staffed)
    b_id, _ = _create(staffed)
    alice_id, _ = _create(staffed, "alice")
    with staffed.begin() as conn:
        assert end_staff_console_sessions(conn, "carol", reason="staff-disabled", now=NOW) == 2
        assert end_staff_console_sessions(conn, "carol", reason="staff-disabled", now=NOW) == 0
    with staffed.begin() as conn:
        found = lookup_console_session(conn, a_id, now=NOW + 1, policy=POLICY)
    assert (found.session, found.why, found.ended) == (None, "staff-disabled", a)
    # told once: the next request with that id finds nothing
    assert _lookup(staffed, a_id, NOW + 2) == (None, "unknown")
    assert _lookup(staffed, b_id, NOW + 2) == (None, "staff-disabled")
    assert _lookup(staffed, alice_id, NOW + 2)[0] is not None  # someone else's


def test_disabling_a_member_ends_their_sessions_in_the_same_transaction(
    staffed: Engine,
) -> None:
    session_id, _ = _create(staffed)
    with pytest.raises(RuntimeError), staffed.begin() as conn:
        set_staff_status(conn, "carol", "disabled", now=NOW + 1)
        raise RuntimeError("the disable rolls back")
    assert _lookup(staffed, session_id, NOW + 2)[0] is not None  # rolled back together
    with staffed.begin() as conn:
        set_staff_status(conn, "carol", "disabled", now=NOW + 3)
    assert _lookup(staffed, session_id, NOW + 4)[1] == "staff-disabled"
    # enabling again does not bring an ended session back
    other_id, _ = _create(staffed, "alice")
    with staffed.begin() as conn:
        set_staff_status(conn, "alice", "disabled", now=NOW + 5)
        set_staff_status(conn, "alice", "active", now=NOW + 6)
    assert _lookup(staffed, other_id, NOW + 7)[1] == "staff-disabled"


@pytest.mark.parametrize("reset", ["password", "otp"])
def test_a_password_or_otp_reset_ends_the_members_sessions(
    staffed: Engine, hasher: PasswordHasher, box: SecretBox, reset: str
) -> None:
    session_id, _ = _create(staffed)
    alice_id, _ = _create(staffed, "alice")
    with staffed.begin() as conn:
        if reset == "password":
            reset_password(conn, "carol", hasher.hash(generate_password()), now=NOW + 1)
        else:
            reset_totp(
                conn,
                "carol",
                box.seal(new_totp_secret(), context=totp_secret_context("carol")),
                now=NOW + 1,
            )
    assert _lookup(staffed, session_id, NOW + 2) == (None, f"{reset}-reset")
    assert _lookup(staffed, alice_id, NOW + 2)[0] is not None


def test_the_per_member_cap_evicts_the_least_recently_used(staffed: Engine) -> None:
    policy = ConsoleSessionPolicy(max_sessions_per_staff=3)
    ids = [_create(staffed, now=NOW + i, policy=policy)[0] for i in range(3)]
    _lookup(staffed, ids[0], NOW + 10, policy)  # the first is used again: now the third is older
    alice_id, _ = _create(staffed, "alice", now=NOW + 11, policy=policy)
    newest, _ = _create(staffed, now=NOW + 12, policy=policy)
    assert _lookup(staffed, ids[1], NOW + 13, policy) == (None, "unknown")
    for kept in (ids[0], ids[2], newest, alice_id):
        assert _lookup(staffed, kept, NOW + 13, policy)[0] is not None
    assert len(_rows(staffed)) == 4


def test_the_cap_for_everyone_evicts_the_least_recently_used(staffed: Engine) -> None:
    policy = ConsoleSessionPolicy(max_sessions=2)
    first, _ = _create(staffed, "carol", now=NOW, policy=policy)
    second, _ = _create(staffed, "alice", now=NOW + 1, policy=policy)
    third, _ = _create(staffed, "otto", now=NOW + 2, policy=policy)
    assert _lookup(staffed, first, NOW + 3, policy) == (None, "unknown")
    assert _lookup(staffed, second, NOW + 3, policy)[0] is not None
    assert _lookup(staffed, third, NOW + 3, policy)[0] is not None


def test_sweep_deletes_expired_and_forgotten_ended_sessions(staffed: Engine) -> None:
    idle_id, _ = _create(staffed, "carol", now=NOW)
    ended_id, _ = _create(staffed, "alice", now=NOW)
    live_id, _ = _create(staffed, "otto", now=NOW)
    with staffed.begin() as conn:
        end_staff_console_sessions(conn, "alice", reason="staff-disabled", now=NOW + 1)
    _lookup(staffed, live_id, NOW + 14 * 60)
    with staffed.begin() as conn:
        assert sweep_console_sessions(conn, now=NOW + 14 * 60, policy=POLICY) == 0
        assert sweep_console_sessions(conn, now=NOW + 15 * 60, policy=POLICY) == 2
    assert [r["staff"] for r in _rows(staffed)] == ["otto"]
    with staffed.begin() as conn:
        assert sweep_console_sessions(conn, now=NOW + 8 * 3600, policy=POLICY) == 1
    assert _rows(staffed) == []
    del idle_id, ended_id


def test_policy_is_checked() -> None:
    with pytest.raises(ValueError, match="idle"):
        ConsoleSessionPolicy(idle_seconds=600, max_age_seconds=60)
    with pytest.raises(ValueError, match="at least 1"):
        ConsoleSessionPolicy(max_sessions_per_staff=0)
    with pytest.raises(ValueError, match="touch_seconds"):
        ConsoleSessionPolicy(idle_seconds=60, touch_seconds=60)
    with pytest.raises(ValueError, match="end reason"):
        end_staff_console_sessions(None, "carol", reason="", now=NOW)  # type: ignore[arg-type]


# -- several nodes on one database ---------------------------------------------------------


@pytest.fixture
def second_node(staffed: Engine) -> Iterator[Engine]:
    """Another engine (another process, as far as the database can tell) on the same data."""
    other = make_engine(staffed.url.render_as_string(hide_password=False))
    yield other
    other.dispose()


def test_a_session_made_on_one_node_works_and_ends_on_another(
    staffed: Engine, second_node: Engine
) -> None:
    session_id, session = _create(staffed)
    assert _lookup(second_node, session_id, NOW + 60)[0] == ConsoleSession(
        session.staff, session.role, session.ref, session.csrf_token, NOW, NOW + 60
    )
    with second_node.begin() as conn:
        set_staff_status(conn, "carol", "disabled", now=NOW + 61)
    assert _lookup(staffed, session_id, NOW + 62)[1] == "staff-disabled"


def test_concurrent_logins_of_one_member_keep_to_the_cap(
    staffed: Engine, second_node: Engine
) -> None:
    """Twelve logins at once on two nodes, cap 3: exactly 3 sessions remain, and every
    login got its own session."""
    policy = ConsoleSessionPolicy(max_sessions_per_staff=3)
    made: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(12)

    def log_in(engine: Engine, i: int) -> None:
        def create(conn: Connection) -> tuple[str, ConsoleSession] | None:
            return create_console_session(conn, "carol", now=NOW + i, policy=policy)

        try:
            start.wait()
            created = in_transaction(engine, create)
            assert created is not None
            made.append(created[0])
        except BaseException as e:
            errors.append(e)

    threads = [
        threading.Thread(target=log_in, args=(staffed if i % 2 else second_node, i))
        for i in range(12)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(set(made)) == 12
    assert len(_rows(staffed)) == 3
