"""The employer's first page in a real browser, through the real gateway and client.

``ssgate serve`` and ``ssgate connect`` run as processes (the ``channel`` fixture);
headless Debian Chromium opens the client's local port.  This proves the browser
infrastructure on the page that exists today; the declaration pages are tested the
same way.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # conftest is not importable under --import-mode=importlib
    from conftest import Channel, Screenshots
    from playwright.sync_api import Page

pytestmark = [pytest.mark.slow]

CJK = re.compile(r"[\u4e00-\u9fff]")


def test_the_page_behind_the_tunnel_shows_unit_and_session_in_chinese(
    channel: Channel, page: Page, screenshots: Screenshots
) -> None:
    """Chromium, through ``ssgate connect``, sees the account's unit code and the
    gateway session id on a Chinese page (declared UTF-8, so the text arrives intact);
    the screenshots are kept under test-artifacts/."""
    channel.start()
    account = channel.open_account("12345678")
    client = channel.connect(account)
    session_id, port = channel.connected(client)

    response = page.goto(f"http://127.0.0.1:{port}/")
    assert response is not None and response.ok, response and response.status
    screenshots.take(page, "connected")

    body = page.locator("body").inner_text()
    assert "12345678" in body
    assert session_id in body
    assert CJK.search(body), f"no Chinese text on the page:\n{body}"
    assert page.get_by_text(session_id, exact=True).is_visible()
    assert "utf-8" in page.evaluate("document.characterSet").lower()

    # A path that is not there: the service answers it, the tunnel stays usable.
    missing = page.goto(f"http://127.0.0.1:{port}/no-such-page")
    assert missing is not None and missing.status == 404
    page.goto(f"http://127.0.0.1:{port}/")
    assert session_id in page.locator("body").inner_text()
    screenshots.take(page, "after-404")
    assert [p.name for p in screenshots.taken] == ["01-connected.png", "02-after-404.png"]
