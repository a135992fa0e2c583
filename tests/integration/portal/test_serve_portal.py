"""``ssgate serve`` with ``[portal] listen``: the portal starts with everything else,
speaks TLS with the state directory's server certificate, and stops with serve; with
the default (empty) setting there is no portal listener at all."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_twisted  # type: ignore[import-untyped, unused-ignore]
from twisted.internet.threads import deferToThread

from ssgate import cli
from ssgate._app import App
from ssgate._serve import start
from ssgate._state import StateDir

from .conftest import Browser


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "state"
    assert (
        cli.main(["--state", str(path), "init", "--hostname", "localhost"], out=io.StringIO()) == 0
    )
    config = path / "ssgate.toml"
    config.write_text(
        config.read_text()
        .replace('listen = "tcp:8443"', 'listen = "tcp:0:interface=127.0.0.1"')
        .replace('listen = "tcp:8444:interface=127.0.0.1"', 'listen = "tcp:0:interface=127.0.0.1"')
        .replace('listen = "tcp:8445:interface=127.0.0.1"', 'listen = "tcp:0:interface=127.0.0.1"')
    )
    yield path


@pytest_twisted.ensureDeferred
async def test_serve_starts_the_portal_over_tls_and_stops_it(state: Path) -> None:
    from twisted.internet import reactor

    config = state / "ssgate.toml"
    head, tail = config.read_text().split("\n[portal]\n")
    tail = tail.replace('listen = ""', 'listen = "tcp:0:interface=127.0.0.1"', 1)
    config.write_text(head + "\n[portal]\n" + tail)
    app = App(StateDir(state))
    serving = start(app, reactor)
    try:
        assert serving.portal is not None
        port = serving.portal.getHost().port  # type: ignore[attr-defined]
        browser = Browser(port, state / "ca.pem")
        status, page = await deferToThread(browser.text, "GET", "/login")
        assert status == 200 and "公民身份号码" in page
        assert any(name.startswith("__Host-") for name in browser.cookies)
        status, page = await deferToThread(browser.text, "GET", "/verify/" + "A" * 26)
        assert status == 404 and "not found" in page
        await deferToThread(browser.close)
    finally:
        await serving.stop()
        app.close()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=5):
        pass


@pytest_twisted.ensureDeferred
async def test_by_default_serve_has_no_portal_listener(state: Path) -> None:
    from twisted.internet import reactor

    app = App(StateDir(state))
    assert app.config.portal.listen == ""
    serving = start(app, reactor)
    try:
        assert serving.portal is None
    finally:
        await serving.stop()
        app.close()
