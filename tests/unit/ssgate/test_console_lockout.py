"""What the console's login page says about lockouts (issue 11, "staff who lock
themselves out"): for how long, and whom to ask — after every refusal alike, so that the
page never tells whether a staff name exists or is locked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from twisted.internet.testing import MemoryReactorClock

import audit
import auth
import web
from auth.testing import SynchronousRunner
from ssgate._console import console_site
from ssgate._console.testing import ConsoleClient, Reply, enrol_staff
from ssgate._db import make_engine
from web._console import lockout_help

NOW = 1_767_225_600.0
PASSWORD = "Correct-Horse-9-battery"
POLICY = auth.LockoutPolicy(threshold=3, base_lock_seconds=120, max_lock_seconds=600, hard_cap=9)


def _notices(reply: Reply) -> tuple[str, str]:
    alert = re.search(r'role="alert">([^<]*)<', reply.text)
    hint = re.search(r'id="login-lockout">([^<]*)<', reply.text)
    assert alert is not None and hint is not None, reply.text
    return alert.group(1), hint.group(1)


@pytest.fixture
def client(tmp_path: Path) -> ConsoleClient:
    engine = make_engine(f"sqlite:///{tmp_path}/lockout.db")
    auth.metadata.create_all(engine)
    audit.metadata.create_all(engine)
    hasher = auth.PasswordHasher(auth.Argon2Params())
    box = auth.SecretBox(auth.SecretBox.generate_key())
    with engine.begin() as conn:
        enrol_staff(
            conn, [("alice", "auditor")], password=PASSWORD, hasher=hasher, box=box, now=NOW
        )
    clock = MemoryReactorClock()
    clock.advance(NOW)
    site = console_site(
        authenticator=auth.Authenticator(engine, hasher, box, POLICY),
        runner=SynchronousRunner(engine),
        workflow=None,
        lockout=POLICY,
        clock=clock,
        secure=False,
        refusal_delay=0,
        login_form_key=bytes(range(32)),
    )
    return ConsoleClient(site, clock=clock)


def test_the_help_says_how_long_and_whom_to_ask() -> None:
    text = lockout_help(POLICY)
    assert "连续 3 次登录失败" in text and "锁定 2 分钟" in text and "最长 10 分钟" in text
    assert "累计失败 9 次" in text and "系统管理员" in text
    assert "ssgate staff unlock" in text


def test_a_lock_that_does_not_grow_is_not_said_to_double() -> None:
    text = lockout_help(auth.LockoutPolicy(base_lock_seconds=300, max_lock_seconds=300))
    assert "锁定 5 分钟" in text and "加倍" not in text


def test_a_locked_member_and_an_unknown_name_read_the_same_words(client: ConsoleClient) -> None:
    """After the lock the real member reads the lockout rule; so does a name that does
    not exist after as many tries: the page tells an attacker nothing."""
    for _ in range(POLICY.threshold):
        client.login("alice", "wrong-Password-1", "000000")
    locked = client.login("alice", PASSWORD, "000000")
    unknown = client.login("nobody", PASSWORD, "000000")
    assert locked.status == unknown.status == 403
    assert _notices(locked) == _notices(unknown)
    assert _notices(locked) == (web.REFUSED_MESSAGE, lockout_help(POLICY))


def test_the_login_page_itself_carries_no_refusal_text(client: ConsoleClient) -> None:
    page = client.get("/login")
    assert 'id="login-lockout"' not in page.text
