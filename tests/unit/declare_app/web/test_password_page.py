"""密码修改 on the employer site with a fake authenticator: the form's checks cost no
login attempt, the change runs on the login pool (never on the reactor) for the
gateway identity's account and source, every refusal reads the same whichever factor
was wrong, passwords are never echoed, CSRF is required, and without a configured
change the page says so (501 on post)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure

from auth import AuthOutcome, WeakPasswordError
from declare_app.web import employer_site
from declare_app.web._password_page import REFUSED_MESSAGE
from declare_app.web.testing import (
    ALICE,
    CSRF_KEY,
    NOW,
    GuardedClient,
    MemoryWorkflow,
    SynchronousRunner,
    element_text,
)

OLD = "Old-Passw0rd!"
NEW = "New-Passw0rd!2"
GOOD = {"old_password": OLD, "otp": "975310", "new_password": NEW, "new_password_again": NEW}


class LoginPoolRunner(SynchronousRunner):
    """A SynchronousRunner with a login pool: ``call`` marks calls as off the reactor."""

    def __init__(self) -> None:
        super().__init__()
        self.login_calls: list[str] = []
        self.on_login_pool = False

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
        self.login_calls.append(getattr(fn, "__name__", repr(fn)))
        self.on_login_pool = True
        try:
            return succeed(fn(*args, **kwargs))
        except BaseException:
            return fail(Failure())
        finally:
            self.on_login_pool = False


@dataclass
class FakeChange:
    runner: LoginPoolRunner
    reason: str = "ok"
    calls: list[tuple[Any, ...]] = field(default_factory=list)

    def __call__(
        self,
        principal: str,
        old_password: str,
        otp: str,
        new_password: str,
        *,
        source: str,
        now: float,
    ) -> AuthOutcome:
        assert self.runner.on_login_pool, "change_password called outside the login pool"
        self.calls.append((principal, old_password, otp, new_password, source, now))
        if self.reason == "weak":
            raise WeakPasswordError("too weak")
        return AuthOutcome(self.reason == "ok", self.reason, principal, ALICE.unit_code, None)


@pytest.fixture
def login_runner() -> LoginPoolRunner:
    return LoginPoolRunner()


@pytest.fixture
def change(login_runner: LoginPoolRunner) -> FakeChange:
    return FakeChange(login_runner)


@pytest.fixture
def pw_client(
    login_runner: LoginPoolRunner, change: FakeChange, clock: MemoryReactorClock
) -> GuardedClient:
    site = employer_site(
        workflow=MemoryWorkflow(require_runner=True),
        runner=login_runner,
        clock=clock,
        csrf_key=CSRF_KEY,
        change_password=change,
    )
    return GuardedClient(site, clock)


def test_the_form_is_in_the_menu_and_asks_for_four_fields(pw_client: GuardedClient) -> None:
    page = pw_client.get("/password")
    assert page.status == 200
    assert 'href="/password" aria-current="page">密码修改' in page.text
    assert 'href="/queries"' in page.text
    for name in ("old_password", "otp", "new_password", "new_password_again"):
        assert f'name="{name}"' in page.text
    assert 'autocomplete="one-time-code"' in page.text


def test_a_good_change_runs_on_the_login_pool_for_the_gateway_account(
    pw_client: GuardedClient, change: FakeChange, login_runner: LoginPoolRunner
) -> None:
    r = pw_client.post_form("/password", {**GOOD, "otp": " 975 310 "})
    assert r.status == 200, r.text
    assert "密码已修改" in element_text(r.text, "password-done")
    [(principal, old, otp, new, source, now)] = change.calls
    assert (principal, old, otp, new) == (ALICE.account, OLD, "975310", NEW)
    assert source == ALICE.source_host and now == NOW
    assert len(login_runner.login_calls) == 1
    assert "record_password_change" in login_runner.calls  # audited on the database pool


def test_the_account_comes_from_the_gateway_only(
    pw_client: GuardedClient, change: FakeChange
) -> None:
    """An account or unit field in the form changes nothing."""
    r = pw_client.post_form("/password", {**GOOD, "account": "evil@sxlss", "unit_code": "1"})
    assert r.status == 200
    assert change.calls[0][0] == ALICE.account


@pytest.mark.parametrize("reason", ["bad-password", "bad-otp", "otp-reused", "locked", "throttled"])
def test_every_refusal_reads_the_same(
    pw_client: GuardedClient, change: FakeChange, reason: str
) -> None:
    change.reason = reason
    r = pw_client.post_form("/password", GOOD)
    assert r.status == 422
    assert element_text(r.text, "password-refused") == REFUSED_MESSAGE
    for word in ("原密码不正确", "动态口令不正确。", "锁定中", reason):
        assert word not in r.text.replace(REFUSED_MESSAGE, "")
    assert OLD not in r.text and NEW not in r.text and "975310" not in r.text


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"old_password": ""}, "old_password", "请输入原密码"),
        ({"otp": ""}, "otp", "请输入动态口令"),
        ({"otp": "12345"}, "otp", "动态口令应为6位数字"),
        ({"otp": "１２３４５６"}, "otp", "动态口令应为6位数字"),
        ({"otp": "12a456"}, "otp", "动态口令应为6位数字"),
        ({"new_password": "short", "new_password_again": "short"}, "new_password", "至少10位"),
        (
            {"new_password": "alllowercase", "new_password_again": "alllowercase"},
            "new_password",
            "至少三类",
        ),
        ({"new_password": OLD, "new_password_again": OLD}, "new_password", "不能与原密码相同"),
        ({"new_password_again": NEW + "x"}, "new_password_again", "不一致"),
        ({"new_password_again": ""}, "new_password_again", "请再次输入新密码"),
        ({"old_password": "x" * 300}, "old_password", "过长"),
        ({"new_password": "\x00" * 12, "new_password_again": "\x00" * 12}, "new_password", "至少"),
    ],
)
def test_form_errors_are_beside_their_field_and_cost_no_login(
    pw_client: GuardedClient, change: FakeChange, changes: dict[str, str], field: str, message: str
) -> None:
    r = pw_client.post_form("/password", {**GOOD, **changes})
    assert r.status == 422, r.text
    assert message in element_text(r.text, f"field-{field}")
    assert change.calls == []
    assert OLD not in r.text and NEW not in r.text


def test_a_weak_password_refused_by_auth_is_a_field_error(
    pw_client: GuardedClient, change: FakeChange
) -> None:
    change.reason = "weak"
    r = pw_client.post_form("/password", GOOD)
    assert r.status == 422
    assert "至少10位" in element_text(r.text, "field-new_password")


def test_a_post_needs_the_csrf_token(pw_client: GuardedClient, change: FakeChange) -> None:
    assert pw_client.post_form("/password", GOOD, csrf=None).status == 403
    assert pw_client.post_form("/password", GOOD, csrf="forged").status == 403
    assert change.calls == []


def test_without_a_configured_change_the_page_says_so(client: GuardedClient) -> None:
    page = client.get("/password")
    assert page.status == 200 and "暂未开放" in page.text
    assert client.post_form("/password", GOOD).status == 501


def test_a_change_needs_a_runner_with_a_login_pool(clock: MemoryReactorClock) -> None:
    database_pool_only = SimpleNamespace(run=SynchronousRunner().run)  # no ``call``
    with pytest.raises(ValueError, match="login pool"):
        employer_site(
            workflow=MemoryWorkflow(),
            runner=database_pool_only,  # type: ignore[arg-type]
            clock=clock,
            csrf_key=CSRF_KEY,
            change_password=FakeChange(LoginPoolRunner()),
        )
