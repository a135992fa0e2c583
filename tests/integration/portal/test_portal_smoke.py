"""The portal over TLS: enrolment, first login, the forced password change, the pages."""

from __future__ import annotations

from twisted.internet.threads import deferToThread

from .conftest import NEW_PASSWORD, Served, reactor_test


@reactor_test
async def test_first_login_forces_a_password_change_then_shows_the_pages(served: Served) -> None:
    a = served.world.people["a"]
    browser = served.browser()
    status, headers, _ = await deferToThread(
        browser.log_in, a.id_number, a.password, served.code(a)
    )
    assert status == 303, _
    assert headers["location"] == ["/password"]
    status, _ = await deferToThread(browser.text, "GET", "/contributions")
    assert status == 303
    served.next_step()
    token = await deferToThread(browser.csrf, "/password")
    status, page = await deferToThread(
        browser.text,
        "POST",
        "/password",
        {
            "csrf_token": token,
            "password": a.password,
            "new_password": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD,
            "otp": served.code(a),
        },
    )
    assert status == 303, page
    for path in ("/", "/enrolments", "/contributions", "/account", "/retirement", "/declarations"):
        status, page = await deferToThread(browser.text, "GET", path)
        assert status == 200, (path, page)
    status, page = await deferToThread(browser.text, "GET", "/contributions")
    assert "2025-03" in page and "上虞示范机械厂" in page
