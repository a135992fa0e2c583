"""密码修改 through the employer site with the real :class:`auth.Authenticator`, on
SQLite and PostgreSQL: the old password and a fresh code change the password (the
new one logs in, the old one no longer does), a code already used is refused like a
wrong password, the same message whichever factor was wrong, failures count towards
the lockout, and each post is a ``declare.password-change`` audit event with the
gateway session and no secret in it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

import pytest
from sqlalchemy import Engine
from twisted.internet.testing import MemoryReactorClock

import audit
from auth import (
    AccountName,
    Argon2Params,
    Authenticator,
    LockoutPolicy,
    PasswordHasher,
    SecretBox,
    create_account,
    current_code,
    get_credential_state,
    new_totp_secret,
    totp_secret_context,
)
from auth.testing import SynchronousRunner
from declare_app._declarations import CHINA_TIME, Declarations
from declare_app.web import employer_site
from declare_app.web._password_page import REFUSED_MESSAGE
from declare_app.web.testing import ALICE, CSRF_KEY, GuardedClient, element_text

UNIT_A, REGION = "12345678", "330682"
NOW = datetime(2025, 3, 10, 10, 0, 15, tzinfo=CHINA_TIME).timestamp()  # 15 s into a step
ACCOUNT = f"{REGION}{UNIT_A}@sxlss"
EMPLOYER = replace(ALICE, account=ACCOUNT, unit_code=UNIT_A, issued_at=NOW)
OLD = "Old-Passw0rd!"
NEW = "New-Passw0rd!2"


@dataclass
class Setup:
    authenticator: Authenticator
    secret: str
    client: GuardedClient
    runner: SynchronousRunner


@pytest.fixture(scope="module")
def hasher() -> PasswordHasher:
    return PasswordHasher(Argon2Params())


@pytest.fixture
def setup(decl_db: Engine, hasher: PasswordHasher, workflow: Declarations) -> Setup:
    box = SecretBox(SecretBox.generate_key())
    secret = new_totp_secret()
    with decl_db.begin() as conn:
        create_account(
            conn,
            AccountName(region=REGION, unit_code=UNIT_A, realm="sxlss"),
            password_hash=hasher.hash(OLD),
            totp_secret_sealed=box.seal(secret, context=totp_secret_context(ACCOUNT)),
            now=0.0,
        )
    authenticator = Authenticator(
        decl_db, hasher, box, LockoutPolicy(threshold=3, source_max_failures=100_000)
    )
    clock = MemoryReactorClock()
    clock.advance(NOW)
    runner = SynchronousRunner(decl_db)
    site = employer_site(
        workflow=workflow,
        runner=runner,
        clock=clock,
        csrf_key=CSRF_KEY,
        change_password=authenticator.change_password,
    )
    return Setup(authenticator, secret, GuardedClient(site, clock, identity=EMPLOYER), runner)


def _form(secret: str, at: float, old: str = OLD, new: str = NEW) -> dict[str, str]:
    return {
        "old_password": old,
        "otp": current_code(secret, at),
        "new_password": new,
        "new_password_again": new,
    }


def _events(engine: Engine) -> list[audit.AuditEvent]:
    with engine.begin() as conn:
        return [r.event for r in audit.query(conn) if r.event.action == "declare.password-change"]


def test_the_password_changes_with_the_old_one_and_a_fresh_code(
    setup: Setup,
    decl_db: Engine,
) -> None:
    authenticator = setup.authenticator
    secret = setup.secret
    client = setup.client
    runner = setup.runner
    r = client.post_form("/password", _form(secret, NOW))
    assert r.status == 200, r.text
    assert "密码已修改" in element_text(r.text, "password-done")
    assert "call:change_password" in runner.calls  # on the login pool
    later = NOW + 60
    assert authenticator.authenticate(
        ACCOUNT, NEW, current_code(secret, later), source="x", now=later
    ).ok
    assert not authenticator.authenticate(
        ACCOUNT, OLD, current_code(secret, later + 30), source="x", now=later + 30
    ).ok
    [event] = _events(decl_db)
    assert (event.outcome, event.unit, event.session_id) == ("ok", UNIT_A, EMPLOYER.session_id)
    assert event.actor == f"channel:{ACCOUNT}" and event.subject == ACCOUNT
    text = repr(event)
    assert OLD not in text and NEW not in text and current_code(secret, NOW) not in text


def test_wrong_password_wrong_code_and_a_reused_code_read_the_same(
    setup: Setup,
    decl_db: Engine,
) -> None:
    secret = setup.secret
    client = setup.client
    wrong_password = client.post_form("/password", _form(secret, NOW, old="Wrong-Passw0rd!"))
    code = current_code(secret, NOW)
    wrong_code = client.post_form(
        "/password", {**_form(secret, NOW), "otp": f"{(int(code) + 1) % 1_000_000:06d}"}
    )
    assert wrong_password.status == wrong_code.status == 422
    for r in (wrong_password, wrong_code):
        assert element_text(r.text, "password-refused") == REFUSED_MESSAGE
    # the code is accepted once: a success, then the same code again is refused
    assert client.post_form("/password", _form(secret, NOW)).status == 200
    replay = client.post_form("/password", _form(secret, NOW, old=NEW, new="Third-Passw0rd!3"))
    assert replay.status == 422
    assert element_text(replay.text, "password-refused") == REFUSED_MESSAGE
    reasons = [(e.outcome, e.reason) for e in _events(decl_db)]
    assert reasons == [
        ("refused", "bad-password"),
        ("refused", "bad-otp"),
        ("ok", "ok"),
        ("refused", "otp-reused"),
    ]


def test_failures_lock_the_account_and_the_page_still_says_nothing_more(
    setup: Setup,
    decl_db: Engine,
) -> None:
    secret = setup.secret
    client = setup.client
    for _ in range(3):
        client.post_form("/password", _form(secret, NOW, old="Wrong-Passw0rd!"))
    with decl_db.begin() as conn:
        state = get_credential_state(conn, ACCOUNT)
    assert state is not None and state.locked_until_at is not None
    locked = client.post_form("/password", _form(secret, NOW))  # right password, but locked
    assert locked.status == 422
    assert element_text(locked.text, "password-refused") == REFUSED_MESSAGE
    assert _events(decl_db)[-1].reason == "locked"


def test_form_errors_are_audited_without_a_login_attempt(
    setup: Setup,
    decl_db: Engine,
) -> None:
    secret = setup.secret
    client = setup.client
    runner = setup.runner
    r = client.post_form("/password", _form(secret, NOW, new="weak", old=OLD))
    assert r.status == 422
    assert "call:change_password" not in runner.calls
    with decl_db.begin() as conn:
        state = get_credential_state(conn, ACCOUNT)
    assert state is not None and state.consecutive_failures == 0
    [event] = _events(decl_db)
    assert event.outcome == "refused" and event.reason.startswith("invalid:")
