"""``ssgate serve`` with ``[radius]``: the access server starts with everything else
and answers; bad RADIUS settings stop the start with one line and leave no port open."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_twisted  # type: ignore[import-untyped, unused-ignore]
from twisted.internet.threads import deferToThread

from ssgate import cli
from ssgate._app import App
from ssgate._serve import ServeError, start
from ssgate._state import StateDir

SECRET = "serve-wiring-shared-secret-0123"


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "state"
    assert cli.main(["--state", str(path), "init"], out=io.StringIO()) == 0
    config = path / "ssgate.toml"
    text = (
        config.read_text()
        .replace('listen = "tcp:8443"', 'listen = "tcp:0:interface=127.0.0.1"')
        .replace('listen = "tcp:8444:interface=127.0.0.1"', 'listen = "tcp:0:interface=127.0.0.1"')
        .replace("auth_port = 1812", "auth_port = 0")
        .replace("accounting_port = 1813", "accounting_port = 0")
    )
    config.write_text(
        text + '\n[[radius.client]]\nname = "local"\nsources = ["127.0.0.1/32"]\n'
        'secret_file = "local.secret"\n'
    )
    (path / "local.secret").write_text(SECRET)
    (path / "local.secret").chmod(0o600)
    yield path


@pytest_twisted.ensureDeferred
async def test_serve_starts_the_access_server_which_answers(state: Path) -> None:
    from twisted.internet import reactor

    app = App(StateDir(state))
    serving = start(app, reactor)
    try:
        assert serving.dial_in is not None
        port = serving.dial_in.port.getHost().port  # type: ignore[attr-defined]
        password = state / "password"
        password.write_text("Not-the-password-1")
        out = io.StringIO()
        status = await deferToThread(
            cli.main,
            [
                "--state",
                str(state),
                "radius",
                "test",
                "33068212345678@sxlss",
                "--server",
                f"127.0.0.1:{port}",
                "--password-file",
                str(password),
                "--otp",
                "123456",
            ],
            out,
        )
        assert (status, out.getvalue()) == (1, "Access-Reject: 登录失败 / Login failed\n")
    finally:
        await serving.stop()
        app.close()


def test_a_missing_secret_file_stops_serve_naming_the_key_and_leaves_no_port_open(
    state: Path,
) -> None:
    from twisted.internet import reactor

    (state / "local.secret").unlink()
    app = App(StateDir(state))
    before = set(reactor.getReaders())  # type: ignore[attr-defined]
    with pytest.raises(ServeError) as info:
        start(app, reactor)
    app.close()
    assert str(info.value) == (
        f"RADIUS: [[radius.client]] local: radius.client.secret_file {state / 'local.secret'}: "
        "no such file"
    )
    assert set(reactor.getReaders()) <= before  # type: ignore[attr-defined]


@pytest_twisted.ensureDeferred
async def test_without_clients_serve_runs_without_the_access_server(state: Path) -> None:
    from twisted.internet import reactor

    text = (state / "ssgate.toml").read_text().split("\n[[radius.client]]")[0]
    (state / "ssgate.toml").write_text(text)
    app = App(StateDir(state))
    serving = start(app, reactor)
    try:
        assert serving.dial_in is None
    finally:
        await serving.stop()
        app.close()
