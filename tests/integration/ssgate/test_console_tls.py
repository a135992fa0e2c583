"""The staff console on a real loopback socket, over TLS, with the real pools.

Wired as ``ssgate serve`` wires it: :func:`check_console_listen`, server-only TLS from
the state directory's files (:func:`gateway._tls.load_state_server_tls` with
``require_client_cert=False``), :func:`console_factory`, and the serve ``Runner``
(database pool + login pool).  A blocking HTTPS client (the standard library,
trusting only our CA) runs on a thread and logs in with password and TOTP.
"""

from __future__ import annotations

import functools
import http.client
import re
import ssl
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec
from urllib.parse import urlencode

import pytest_twisted  # type: ignore[import-untyped, unused-ignore]
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.threads import deferToThread

import audit
import auth
import certs
from gateway import load_state_server_tls
from ssgate._console import check_console_listen, console_factory, console_site
from ssgate._db import Database, make_engine
from ssgate._serve import Runner

LOGIN_FORM_KEY = bytes(range(32))  # any 32 bytes: the login-form token key

PASSWORD = "Correct-Horse-9-battery"
TEST_TIMEOUT = 60.0

P = ParamSpec("P")
AsyncTest = Callable[P, Coroutine[Any, Any, None]]


def reactor_test(test: AsyncTest[P]) -> AsyncTest[P]:
    """Run *test* on the reactor (pytest-twisted), failing it after TEST_TIMEOUT seconds."""

    @functools.wraps(test)
    async def run(*args: P.args, **kwargs: P.kwargs) -> None:
        from twisted.internet import reactor

        await Deferred.fromCoroutine(test(*args, **kwargs)).addTimeout(TEST_TIMEOUT, reactor)

    marked: AsyncTest[P] = pytest_twisted.ensureDeferred(run)
    return marked


class Browser:
    """A blocking HTTPS client with a cookie jar (call it on a thread)."""

    def __init__(self, port: int, ca_file: Path) -> None:
        self.port = port
        self.context = ssl.create_default_context(cafile=str(ca_file))
        self.cookies: dict[str, str] = {}
        self.tls_version = ""

    def request(
        self, method: str, path: str, form: dict[str, str] | None = None
    ) -> tuple[int, dict[str, list[str]], str]:
        conn = http.client.HTTPSConnection("localhost", self.port, context=self.context, timeout=20)
        headers = {}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            sock = conn.sock
            self.tls_version = (sock.version() if isinstance(sock, ssl.SSLSocket) else "") or ""
            text = response.read().decode("utf-8")
            got: dict[str, list[str]] = {}
            for name, value in response.getheaders():
                got.setdefault(name.lower(), []).append(value)
        finally:
            conn.close()
        for line in got.get("set-cookie", []):
            pair, *attrs = [p.strip() for p in line.split(";")]
            name, _, value = pair.partition("=")
            if not value or "max-age=0" in (a.lower() for a in attrs):
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return response.status, got, text

    def log_in(self, name: str, code: str) -> tuple[int, dict[str, list[str]], str]:
        _, _, page = self.request("GET", "/login")
        match = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert match is not None
        return self.request(
            "POST",
            "/login",
            {"csrf_token": match.group(1), "name": name, "password": PASSWORD, "otp": code},
        )


@reactor_test
async def test_staff_log_in_over_tls_with_host_cookies(tmp_path: Path) -> None:
    from twisted.internet import reactor

    # The state directory's TLS files, as 'ssgate init' writes them.
    now = datetime.now(UTC)
    ca = certs.CertificateAuthority.create("ssgate CA test", now=now)
    server = ca.issue_server(["localhost", "127.0.0.1"], now=now, validity_days=30)
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem())
    (tmp_path / "server.pem").write_bytes(server.cert_pem())
    (tmp_path / "server-key.pem").write_bytes(server.key_pem())
    tls = load_state_server_tls(tmp_path, require_client_cert=False).options

    engine = make_engine(f"sqlite:///{tmp_path}/console.db")
    auth.metadata.create_all(engine)
    audit.metadata.create_all(engine)
    hasher = auth.PasswordHasher(auth.Argon2Params())
    box = auth.SecretBox(auth.SecretBox.generate_key())
    secret = auth.new_totp_secret()
    with engine.begin() as conn:
        auth.create_staff(
            conn,
            "alice",
            "auditor",
            password_hash=hasher.hash(PASSWORD),
            totp_secret_sealed=box.seal(secret, context=auth.totp_secret_context("alice")),
            now=reactor.seconds(),
        )
    runner = Runner(Database(engine, reactor), reactor)
    spec = "tcp:0:interface=127.0.0.1"
    check_console_listen(spec, tls=True)
    site = console_site(
        login_form_key=LOGIN_FORM_KEY,
        authenticator=auth.Authenticator(engine, hasher, box),
        runner=runner,
        workflow=None,
        clock=reactor,
        sections=[],
        secure=True,
    )
    port = reactor.listenTCP(0, console_factory(site, tls), interface="127.0.0.1")
    try:
        browser = Browser(port.getHost().port, tmp_path / "ca.pem")  # type: ignore[attr-defined]
        code = auth.current_code(secret, reactor.seconds())
        status, headers, _ = await deferToThread(browser.log_in, "alice", code)
        assert status == 303
        assert browser.tls_version in ("TLSv1.2", "TLSv1.3")
        [cookie] = [c for c in headers["set-cookie"] if c.startswith("__Host-ssgate-console=")]
        attrs = {a.strip().lower() for a in cookie.split(";")[1:]}
        assert {"secure", "httponly", "samesite=strict", "path=/"} <= attrs
        assert headers["strict-transport-security"] == ["max-age=31536000"]
        status, _, home = await deferToThread(browser.request, "GET", "/")
        assert status == 200
        assert "alice" in home and "经办审核员" in home
        with engine.begin() as conn:
            [login] = [r.event for r in audit.query(conn) if r.event.action == "console.login"]
        assert (login.actor, login.outcome, login.details["source"]) == (
            "staff:alice",
            "ok",
            "127.0.0.1",
        )
    finally:
        await maybeDeferred(port.stopListening)
        runner.close()
        engine.dispose()
