"""The channel's lockout and replay tests, rerun against the portal's login (issue 18,
acceptance 4): the same authenticator, with ``kind="person"``, behind the portal's
login form over TLS.  A refusal never says which factor was wrong, and its audit
event names the account's reference, never the ID number typed."""

from __future__ import annotations

import pytest
from twisted.internet.threads import deferToThread

import audit
import auth
import portal
from portal._site import REFUSED

from .conftest import ID_C, NOW, Served, reactor_test


def _login_events(served: Served) -> list[audit.AuditEvent]:
    with served.world.engine.begin() as conn:
        return [r.event for r in audit.query(conn, actions=["portal.login"])]


@reactor_test
async def test_the_same_code_logs_in_once_only(served: Served) -> None:
    a = served.world.people["a"]
    code = served.code(a)
    first, second = served.browser(), served.browser()
    status, _, _ = await deferToThread(first.log_in, a.id_number, a.password, code)
    assert status == 303
    status, _, body = await deferToThread(second.log_in, a.id_number, a.password, code)
    assert status == 403 and REFUSED in body.decode()
    served.next_step()
    status, _, _ = await deferToThread(second.log_in, a.id_number, a.password, served.code(a))
    assert status == 303
    reasons = [(e.outcome, e.reason) for e in _login_events(served)]
    assert reasons == [("ok", ""), ("refused", "otp-reused"), ("ok", "")]


@reactor_test
async def test_an_older_code_is_refused_after_a_newer_one_was_used(served: Served) -> None:
    a = served.world.people["a"]
    old = served.code(a)
    served.next_step()
    status, _, _ = await deferToThread(
        served.browser().log_in, a.id_number, a.password, served.code(a)
    )
    assert status == 303
    status, _, _ = await deferToThread(served.browser().log_in, a.id_number, a.password, old)
    assert status == 403
    assert _login_events(served)[-1].reason == "otp-reused"


@reactor_test
async def test_five_wrong_passwords_lock_the_account_until_the_lock_ends(served: Served) -> None:
    a = served.world.people["a"]
    browser = served.browser()
    for _ in range(5):
        status, _, body = await deferToThread(
            browser.log_in, a.id_number, "wrong-" + a.password, served.code(a)
        )
        assert status == 403 and REFUSED in body.decode()
    served.next_step()
    status, _, body = await deferToThread(browser.log_in, a.id_number, a.password, served.code(a))
    assert status == 403 and REFUSED in body.decode()  # the same words: locked or not
    assert _login_events(served)[-1].reason == "locked"
    served.clock.now += 61
    status, _, _ = await deferToThread(browser.log_in, a.id_number, a.password, served.code(a))
    assert status == 303
    reasons = [e.reason for e in _login_events(served)]
    assert reasons == ["bad-password"] * 5 + ["locked", ""]
    assert all(e.actor == a.principal and e.subject == a.principal for e in _login_events(served))


@reactor_test
async def test_the_counter_reset_clears_the_lock_ends_sessions_and_forces_a_new_change(
    served: Served,
) -> None:
    a = served.world.people["a"]
    browser = served.browser()
    status, _, _ = await deferToThread(browser.log_in, a.id_number, a.password, served.code(a))
    assert status == 303
    for _ in range(5):
        await deferToThread(
            served.browser().log_in, a.id_number, "nope-" + a.password, served.code(a)
        )
    counter = portal.PersonCounter(
        engine=served.world.engine, box=served.world.box, hasher=served.world.hasher,
        totp_issuer="t", clock=lambda: NOW, actor="os:counter",
    )  # fmt: skip
    issued = await deferToThread(counter.reset_password, a.id_number)
    assert issued.sessions_ended == 1
    status, _ = await deferToThread(browser.text, "GET", "/password")
    assert status == 303  # the session ended with the reset
    served.next_step()
    status, _, _ = await deferToThread(
        served.browser().log_in, a.id_number, a.password, served.code(a)
    )
    assert status == 403  # the old password is gone
    served.next_step()
    status, headers, _ = await deferToThread(
        browser.log_in, a.id_number, issued.password, served.code(a)
    )
    assert status == 303 and headers["location"] == ["/password"]


@reactor_test
async def test_unknown_and_unenrolled_id_numbers_are_refused_like_a_wrong_password(
    served: Served,
) -> None:
    a = served.world.people["a"]
    for id_number in (ID_C, "110105194912310021", "not-an-id"):
        status, _, body = await deferToThread(
            served.browser().log_in, id_number, a.password, served.code(a)
        )
        assert status == 403 and REFUSED in body.decode()
    events = _login_events(served)
    assert [(e.actor, e.reason) for e in events] == [("person:(unknown)", "unknown-account")] * 3
    assert not any(ID_C in repr(e) or "110105194912310021" in repr(e) for e in events)


@pytest.mark.parametrize(
    "lockout_policy", [auth.LockoutPolicy(source_max_failures=3)], indirect=True
)
@reactor_test
async def test_a_source_is_throttled_after_its_failures_even_with_the_right_proofs(
    served: Served,
) -> None:
    a, b = served.world.people["a"], served.world.people["b"]
    for _ in range(3):
        await deferToThread(served.browser().log_in, b.id_number, "wrong", served.code(b))
    status, _, _ = await deferToThread(
        served.browser().log_in, a.id_number, a.password, served.code(a)
    )
    assert status == 403
    assert _login_events(served)[-1].reason == "throttled"


@reactor_test
async def test_a_cross_site_login_post_is_refused_and_audited(served: Served) -> None:
    a = served.world.people["a"]
    browser = served.browser()
    token = await deferToThread(browser.csrf, "/login")
    status, _, _ = await deferToThread(
        browser.request,
        "POST",
        "/login",
        {
            "csrf_token": token,
            "id_number": a.id_number,
            "password": a.password,
            "otp": served.code(a),
        },
        {"Origin": "https://evil.example"},
    )
    assert status == 403
    assert _login_events(served)[-1].reason == "cross-origin"
