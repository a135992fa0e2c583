"""The administrator's staff workflows on SQLite and PostgreSQL: each change commits with
its audit event (actor named), each refusal is rolled back and audited, and a disabled
or reset member's console sessions end in the same transaction."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine

import audit
import auth
import staffing
from staffing.testing import make_staff_admin

NOW = 1_767_225_600.0
PASSWORD = "Correct-Horse-9-battery"
POLICY = auth.ConsoleSessionPolicy()
LOCKOUT = auth.LockoutPolicy(threshold=3, hard_cap=10)


@dataclass
class World:
    engine: Engine
    hasher: auth.PasswordHasher
    box: auth.SecretBox
    now: float = NOW

    def clock(self) -> float:
        return self.now

    def admin(self, **kwargs: object) -> staffing.StaffAdministration:
        return make_staff_admin(
            self.engine,
            clock=self.clock,
            hasher=self.hasher,
            box=self.box,
            **kwargs,  # type: ignore[arg-type]
        )

    def login(self, name: str, password: str, secret: str) -> auth.AuthOutcome:
        self.now += 30  # a fresh TOTP step for every login
        return auth.Authenticator(self.engine, self.hasher, self.box, LOCKOUT).authenticate(
            name,
            password,
            auth.current_code(secret, self.now),
            source="192.0.2.1",
            now=self.now,
            kind="staff",
        )

    def events(self, action: str) -> list[audit.AuditEvent]:
        with self.engine.begin() as conn:
            return [r.event for r in audit.query(conn, actions=[action])]

    def open_session(self, name: str) -> str:
        with self.engine.begin() as conn:
            started = auth.create_console_session(conn, name, now=self.now, policy=POLICY)
        assert started is not None
        return started[0]

    def session_why(self, session_id: str) -> str:
        with self.engine.begin() as conn:
            found = auth.lookup_console_session(conn, session_id, now=self.now, policy=POLICY)
        return "live" if found.session is not None else found.why


@pytest.fixture
def world(engine: Engine) -> Iterator[World]:
    auth.metadata.create_all(engine)
    audit.metadata.create_all(engine)
    yield World(
        engine,
        auth.PasswordHasher(auth.Argon2Params()),
        auth.SecretBox(auth.SecretBox.generate_key()),
    )


def _secret(uri: str | None) -> str:
    assert uri is not None
    return urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query)["secret"][0]


def _add(world: World, name: str = "li.na", role: str = "auditor") -> str:
    issued = world.admin().add(name, role, password=PASSWORD, reason="new colleague")
    return _secret(issued.otp_uri)


def test_add_enrols_a_member_who_can_log_in_and_audits_the_actor(
    world: World, tmp_path: Path
) -> None:
    """The generated password and the TOTP come back once, the QR files go to --out, the
    member logs in with them, and staff.add names the OS user and the role."""
    out = tmp_path / "otp"
    issued = world.admin(actor="os:root").add("li.na", "officer", out=out, reason="joins")
    assert issued.password and issued.password not in repr(issued)
    assert sorted(p.name for p in out.iterdir()) == ["otp-qr.png", "otp-qr.svg", "otpauth.txt"]
    assert (out / "otpauth.txt").read_text().strip() == issued.otp_uri
    assert world.login("li.na", issued.password, _secret(issued.otp_uri)).ok
    [event] = world.events("staff.add")
    assert (event.actor, event.subject, event.outcome) == ("os:root", "li.na", "ok")
    assert event.details["role"] == "officer"
    assert event.reason == "joins"
    assert issued.password not in repr(event)
    assert [v.name for v in world.admin().list()] == ["li.na"]


def test_adding_an_existing_name_is_refused_audited_and_writes_no_files(
    world: World, tmp_path: Path
) -> None:
    _add(world)
    out = tmp_path / "otp"
    with pytest.raises(staffing.StaffRefused) as refused:
        world.admin().add("li.na", "admin", out=out)
    assert refused.value.reason == "staff-exists"
    assert not out.exists()
    assert [(e.outcome, e.reason) for e in world.events("staff.add")] == [
        ("ok", "new colleague"),
        ("refused", "staff-exists"),
    ]
    assert world.admin().show("li.na").record.role == "auditor"


@pytest.mark.parametrize(
    ("name", "role"), [("Li Na", "auditor"), ("x", "auditor"), ("li.na", "root")]
)
def test_bad_names_and_roles_are_input_errors(world: World, name: str, role: str) -> None:
    with pytest.raises(staffing.StaffInputError):
        world.admin().add(name, role)
    assert world.events("staff.add") == []


@pytest.mark.parametrize("reason", ["x" * 201, "bell\x07"])
def test_a_reason_too_long_or_with_control_characters_is_an_input_error(
    world: World, reason: str
) -> None:
    _add(world)
    with pytest.raises(staffing.StaffInputError, match="reason"):
        world.admin().disable("li.na", reason=reason)
    assert world.admin().show("li.na").record.status == "active"


def test_an_existing_out_directory_is_refused_before_anything_is_done(
    world: World, tmp_path: Path
) -> None:
    _add(world)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(staffing.StaffInputError, match="not an empty directory"):
        world.admin().reset_otp("li.na", out=tmp_path / "full")
    assert world.events("staff.reset-otp") == []


def test_disable_ends_every_console_session_in_the_same_transaction(world: World) -> None:
    secret = _add(world)
    sessions = [world.open_session("li.na"), world.open_session("li.na")]
    change = world.admin(actor="os:root").disable("li.na", reason="left the office")
    assert (change.record.status, change.sessions_ended) == ("disabled", 2)
    assert [world.session_why(s) for s in sessions] == ["staff-disabled", "staff-disabled"]
    assert world.login("li.na", PASSWORD, secret).reason == "staff-disabled"
    [event] = world.events("staff.disable")
    assert (event.actor, event.outcome, event.details["console_sessions"]) == ("os:root", "ok", 2)


def test_enable_lets_a_disabled_member_in_again_and_twice_is_refused(world: World) -> None:
    secret = _add(world)
    world.admin().disable("li.na")
    assert world.admin().enable("li.na").record.status == "active"
    assert world.login("li.na", PASSWORD, secret).ok
    with pytest.raises(staffing.StaffRefused) as refused:
        world.admin().enable("li.na")
    assert refused.value.reason == "bad-transition"
    assert [e.outcome for e in world.events("staff.enable")] == ["ok", "refused"]


def test_an_administrator_cannot_disable_themselves_from_the_console(world: World) -> None:
    _add(world, "root.a", "admin")
    with pytest.raises(staffing.StaffRefused) as refused:
        world.admin(actor="staff:root.a").disable("root.a")
    assert refused.value.reason == "own-account"
    assert world.admin().show("root.a").record.status == "active"


def test_unknown_members_are_refused_and_audited(world: World) -> None:
    admin = world.admin()
    for change in (admin.disable, admin.enable, admin.reset_password, admin.unlock):
        with pytest.raises(staffing.StaffRefused) as refused:
            change("nobody")
        assert refused.value.reason == "unknown-staff"
    with pytest.raises(staffing.StaffRefused):
        admin.show("nobody")
    assert world.events("staff.unlock")[0].reason == "unknown-staff"


def test_reset_password_clears_the_lockout_and_ends_the_sessions(world: World) -> None:
    secret = _add(world)
    for _ in range(LOCKOUT.threshold):
        assert not world.login("li.na", "wrong-Password-1", secret).ok
    assert world.login("li.na", PASSWORD, secret).reason == "locked"
    issued = world.admin().reset_password("li.na", reason="forgot it")
    assert issued.password and issued.password != PASSWORD
    assert not world.login("li.na", PASSWORD, secret).ok
    assert world.login("li.na", issued.password, secret).ok
    [event] = world.events("staff.reset-password")
    assert issued.password not in repr(event)


def test_reset_password_ends_live_sessions(world: World) -> None:
    _add(world)
    session = world.open_session("li.na")
    issued = world.admin().reset_password("li.na")
    assert issued.sessions_ended == 1
    assert world.session_why(session) == "password-reset"


def test_reset_otp_replaces_the_secret_writes_the_qr_and_ends_sessions(
    world: World, tmp_path: Path
) -> None:
    old = _add(world)
    session = world.open_session("li.na")
    issued = world.admin().reset_otp("li.na", out=tmp_path / "otp", reason="new phone")
    new = _secret(issued.otp_uri)
    assert new != old
    assert (tmp_path / "otp" / "otpauth.txt").read_text().strip() == issued.otp_uri
    assert issued.sessions_ended == 1 and world.session_why(session) == "otp-reset"
    assert world.login("li.na", PASSWORD, old).reason == "bad-otp"
    assert world.login("li.na", PASSWORD, new).ok


def test_unlock_lets_a_locked_out_member_log_in_at_once(world: World) -> None:
    secret = _add(world)
    for _ in range(LOCKOUT.threshold):
        world.login("li.na", "wrong-Password-1", secret)
    assert world.admin().show("li.na").is_locked(world.now)
    after = world.admin(actor="os:root").unlock("li.na", reason="phoned the desk")
    assert (after.consecutive_failures, after.locked_until_at, after.hard_locked) == (
        0,
        None,
        False,
    )
    assert world.login("li.na", PASSWORD, secret).ok
    [event] = world.events("staff.unlock")
    assert (event.actor, event.details["failures"]) == ("os:root", LOCKOUT.threshold)


def test_unlocking_a_member_who_is_not_locked_is_refused(world: World) -> None:
    _add(world)
    with pytest.raises(staffing.StaffRefused) as refused:
        world.admin().unlock("li.na")
    assert refused.value.reason == "not-locked"
    assert [(e.outcome, e.reason) for e in world.events("staff.unlock")] == [
        ("refused", "not-locked")
    ]


def test_with_an_ldap_directory_no_password_is_set_shown_or_reset(world: World) -> None:
    admin = world.admin(passwords_in_directory=True)
    issued = admin.add("li.na", "auditor")
    assert issued.password is None and issued.otp_uri
    with pytest.raises(staffing.StaffInputError, match="LDAP"):
        admin.add("wang.fang", "auditor", password=PASSWORD)
    with pytest.raises(staffing.StaffRefused) as refused:
        admin.reset_password("li.na")
    assert refused.value.reason == "password-in-directory"
    assert world.events("staff.reset-password")[0].outcome == "refused"


def test_a_change_whose_audit_event_fails_is_not_made(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing half-written: the change and its event commit together or not at all."""
    _add(world)
    session = world.open_session("li.na")

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("audit log unavailable")

    monkeypatch.setattr(audit, "append", broken)
    with pytest.raises(RuntimeError):
        world.admin().disable("li.na")
    monkeypatch.undo()
    assert world.admin().show("li.na").record.status == "active"
    assert world.session_why(session) == "live"
