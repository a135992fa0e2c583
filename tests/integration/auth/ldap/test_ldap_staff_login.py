"""Staff logins with passwords in a real OpenLDAP slapd (ldap3 simple bind).

Each test runs on SQLite and PostgreSQL (the ``db`` fixture) against its own slapd
(``conftest.py``).  TOTP, lockout and throttling stay in ssgate's database; only the
password check goes to the directory.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import Engine
from twisted.internet.testing import MemoryReactorClock

import audit
import auth
from auth import (
    DIRECTORY_UNAVAILABLE,
    Authenticator,
    AuthOutcome,
    LdapPasswords,
    LdapSettings,
    LockoutPolicy,
    PasswordCheck,
    PasswordHasher,
    SecretBox,
    current_code,
    get_credential_state,
)
from auth._store import LoginRecord
from auth.testing import SynchronousRunner
from ssgate._console import console_site
from ssgate._console.testing import ConsoleClient
from web import REFUSED_MESSAGE

from .conftest import STAFF_PASSWORDS, USER_DN, Slapd

LOGIN_FORM_KEY = bytes(range(32))  # any 32 bytes: the login-form token key

NOW = 1_767_225_615.0
NAME = "zhang.wei"
PASSWORD = STAFF_PASSWORDS[NAME]
SOURCE = "203.0.113.7"
POLICY = LockoutPolicy(threshold=3, source_max_failures=100_000)


class Staff:
    """zhang.wei, enrolled in the database (role, TOTP) with the directory's password."""

    def __init__(self, db: Engine, hasher: PasswordHasher, box: SecretBox, ldap: LdapPasswords):
        self.db = db
        self.secret = auth.new_totp_secret()
        with db.begin() as conn:
            auth.create_staff(
                conn,
                NAME,
                "auditor",
                # As 'ssgate staff add' does with a directory: a hash nobody knows.
                password_hash=hasher.hash(auth.generate_password()),
                totp_secret_sealed=box.seal(self.secret, context=auth.totp_secret_context(NAME)),
                now=0.0,
            )
        self.ldap = ldap
        self.authenticator = Authenticator(db, hasher, box, POLICY, staff_passwords=ldap)

    def attempt(self, password: str, *, name: str = NAME, now: float = NOW) -> AuthOutcome:
        return self.authenticator.authenticate(
            name, password, current_code(self.secret, now), source=SOURCE, now=now, kind="staff"
        )

    def counters(self) -> tuple[int, int, int, float | None, bool]:
        with self.db.begin() as conn:
            state = get_credential_state(conn, NAME)
        assert state is not None
        return (
            state.consecutive_failures,
            state.total_failures,
            state.lock_count,
            state.locked_until_at,
            state.hard_locked,
        )


def settings_for(server: Slapd, **changes: object) -> LdapSettings:
    return replace(LdapSettings(url=server.url, user_dn=USER_DN, timeout_seconds=5), **changes)  # type: ignore[arg-type]


@pytest.fixture
def staff(db: Engine, hasher: PasswordHasher, box: SecretBox, slapd: Slapd) -> Staff:
    return Staff(db, hasher, box, LdapPasswords(settings_for(slapd)))


def test_the_directory_password_and_a_code_log_staff_in(staff: Staff) -> None:
    outcome = staff.attempt(PASSWORD)
    assert (outcome.ok, outcome.reason, outcome.principal) == (True, "ok", NAME)
    assert staff.counters()[:2] == (0, 0)


def test_a_wrong_password_is_bad_password_and_counts_toward_lockout(staff: Staff) -> None:
    for _ in range(3):
        assert staff.attempt("Wrong-Pass-9").reason == "bad-password"
    assert staff.counters()[:3] == (3, 3, 1)
    # Locked: not even the right password is tried now.
    assert staff.attempt(PASSWORD).reason == "locked"


def test_another_entrys_password_does_not_log_in(staff: Staff) -> None:
    """li.na is in the directory with her own password: it does not bind as zhang.wei."""
    assert staff.attempt(STAFF_PASSWORDS["li.na"]).reason == "bad-password"


@pytest.mark.parametrize(
    "name",
    ["*)(uid=*", "zhang.wei)(|(uid=*", "uid=zhang.wei,ou=staff", "zhang.wei,ou=staff", "*"],
)
def test_an_injection_looking_name_is_refused_without_a_bind(staff: Staff, name: str) -> None:
    """Not a staff name in the database: unknown-account, and the directory is not asked.
    Asked directly, the verifier refuses the name before binding."""
    assert staff.attempt(PASSWORD, name=name).reason == "unknown-account"
    record = LoginRecord(name, "staff", "active", None, "x", "y")
    assert staff.ldap.check(record, PASSWORD) is PasswordCheck.WRONG


def test_an_escaped_dn_binds_only_as_that_entry(slapd: Slapd) -> None:
    """The name goes into the DN as one escaped RDN value: 'zhang.wei,ou=staff' would be
    uid=zhang.wei\\,ou\\=staff,…, which is no entry, so the bind is refused (49)."""
    ldap = LdapPasswords(settings_for(slapd))
    assert ldap._bind(auth.user_dn_for(USER_DN, "zhang.wei,ou=staff"), PASSWORD) is (
        PasswordCheck.WRONG
    )
    assert ldap._bind(auth.user_dn_for(USER_DN, NAME), PASSWORD) is PasswordCheck.RIGHT


def test_a_stopped_directory_is_unavailable_and_not_a_failure(staff: Staff, slapd: Slapd) -> None:
    staff.attempt("Wrong-Pass-9")
    before = staff.counters()
    slapd.stop()
    for _ in range(4):  # more than the threshold
        assert staff.attempt(PASSWORD).reason == DIRECTORY_UNAVAILABLE
    assert staff.counters() == before
    slapd.start()  # the directory is back (on new ports: none is released and reused)
    staff.ldap.settings = settings_for(slapd)
    assert staff.attempt(PASSWORD).ok  # the same code: the outage did not spend it


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A port that accepts TCP connections (the kernel's backlog) and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield f"ldap://127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.parametrize("how", ["ldap", "ldaps", "start_tls"])
def test_a_silent_directory_gives_up_after_the_timeout(
    db: Engine, hasher: PasswordHasher, box: SecretBox, silent_server: str, how: str
) -> None:
    """The bind's reply never comes: the receive timeout ends the login as
    directory-unavailable; so does a TLS handshake that never comes.  (Run in a thread with a generous guard, so a hang fails the
    test instead of stalling the run; no timing is asserted.)"""
    url = silent_server.replace("ldap://", "ldaps://") if how == "ldaps" else silent_server
    settings = LdapSettings(
        url=url, user_dn=USER_DN, start_tls=how == "start_tls", timeout_seconds=1
    )
    ldap = LdapPasswords(settings)
    staff = Staff(db, hasher, box, ldap)
    before = staff.counters()
    result: list[AuthOutcome] = []
    worker = threading.Thread(target=lambda: result.append(staff.attempt(PASSWORD)), daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "the login hung past its timeout"
    assert result[0].reason == DIRECTORY_UNAVAILABLE
    assert staff.counters() == before


def test_start_tls_with_the_ca_file(staff: Staff, slapd: Slapd) -> None:
    staff.ldap.settings = settings_for(slapd, start_tls=True, ca_file=slapd.ca)
    assert staff.attempt(PASSWORD).ok


def test_ldaps_with_the_ca_file(staff: Staff, slapd: Slapd) -> None:
    staff.ldap.settings = settings_for(slapd, url=slapd.ldaps_url, ca_file=slapd.ca)
    assert staff.attempt(PASSWORD).ok


@pytest.mark.parametrize("how", ["ldaps", "start_tls"])
def test_an_untrusted_certificate_is_unavailable_not_a_wrong_password(
    staff: Staff, slapd: Slapd, tmp_path: Path, how: str
) -> None:
    """Without the directory's CA (here: the system CAs) TLS fails: no password is sent,
    and nothing is counted."""
    changes: dict[str, object] = (
        {"url": slapd.ldaps_url} if how == "ldaps" else {"start_tls": True, "ca_file": None}
    )
    staff.ldap.settings = settings_for(slapd, **changes)
    before = staff.counters()
    assert staff.attempt(PASSWORD).reason == DIRECTORY_UNAVAILABLE
    assert staff.counters() == before


def test_the_staff_console_logs_in_with_the_directory_password(staff: Staff, slapd: Slapd) -> None:
    """The real console over HTTP: a wrong password, and the right one while the directory
    is down, get the same neutral page, the audit event says which; the directory's
    password and a code open a session."""
    audit.metadata.create_all(staff.db)
    clock = MemoryReactorClock()
    clock.advance(NOW)
    site = console_site(
        login_form_key=LOGIN_FORM_KEY,
        authenticator=staff.authenticator,
        runner=SynchronousRunner(staff.db),
        workflow=None,
        clock=clock,
        secure=False,
    )
    client = ConsoleClient(site, clock=clock)
    refused = client.login(NAME, "Wrong-Pass-9", current_code(staff.secret, NOW))
    assert refused.status == 403
    assert REFUSED_MESSAGE in refused.text
    slapd.stop()
    down = client.login(NAME, PASSWORD, current_code(staff.secret, NOW))
    assert down.status == 403
    assert REFUSED_MESSAGE in down.text
    slapd.start()  # back, on new ports (none is released and reused)
    staff.ldap.settings = settings_for(slapd)
    reply = client.login(NAME, PASSWORD, current_code(staff.secret, NOW))
    assert reply.status == 303, reply.text
    assert reply.location == "/"
    with staff.db.begin() as conn:
        events = [r.event for r in audit.query(conn) if r.event.action == "console.login"]
    assert [(e.outcome, e.reason) for e in events] == [
        ("refused", "bad-password"),
        ("refused", DIRECTORY_UNAVAILABLE),
        ("ok", ""),
    ]


def test_a_disabled_staff_member_is_refused_whatever_the_directory_says(staff: Staff) -> None:
    """The staff record stays in ssgate: disabled is refused before any bind."""
    with staff.db.begin() as conn:
        auth.set_staff_status(conn, NAME, "disabled", now=NOW)
    assert staff.attempt(PASSWORD).reason == "staff-disabled"
