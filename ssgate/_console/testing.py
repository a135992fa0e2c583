"""Driving the staff console in memory, for its tests and for the tests of every page.

:class:`ConsoleClient` speaks real HTTP/1.1 to the console ``Site`` — its own
protocol (an ``HTTPChannel``) over a :class:`StringTransport` — keeps cookies as a
browser would, and parses the answers.  With :class:`auth.testing.SynchronousRunner`
on a SQLAlchemy engine (answering at once, a fired ``Deferred``) a whole login and
page view happens inside one call, and time moves only with ``clock.advance``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from html import unescape
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Connection
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web.server import Site

import auth

_CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


#: The console tests' name for auth's one fake runner.


@dataclass
class Reply:
    """One HTTP response: status, headers (lower-case names), body."""

    status: int
    headers: dict[str, list[str]]
    body: bytes
    raw: bytes = field(repr=False)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None

    @property
    def location(self) -> str | None:
        return self.header("location")

    @property
    def set_cookies(self) -> list[str]:
        return self.headers.get("set-cookie", [])

    def csrf_token(self) -> str:
        """The CSRF token of the (first) form on the page."""
        match = _CSRF.search(self.text)
        if match is None:
            raise AssertionError(f"no csrf_token in the page:\n{self.text[:2000]}")
        return unescape(match.group(1))


def parse_response(data: bytes) -> Reply:
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        raise AssertionError(f"no complete HTTP response: {data[:500]!r}")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    length = headers.get("content-length")
    if length is not None:
        body = rest[: int(length[0])]
    elif headers.get("transfer-encoding") == ["chunked"]:
        body = _dechunk(rest)
    else:
        body = rest
    return Reply(status, headers, body, data)


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return out


class ConsoleClient:
    """A browser for the console ``Site``, in memory: one connection per request.

    *clock* is the site's ``MemoryReactorClock``: when an answer is delayed (the
    pause after a refused login), :meth:`request` advances it by *settle* seconds
    at a time, up to *max_settle* in all.
    """

    def __init__(
        self,
        site: Site,
        *,
        clock: Any,
        peer: IPv4Address | None = None,
        settle: float = 0.5,
        max_settle: float = 10.0,
    ) -> None:
        self.site = site
        self.clock = clock
        self.peer = peer or IPv4Address("TCP", "127.0.0.1", 50000)
        self.cookies: dict[str, str] = {}
        self.settle = settle
        self.max_settle = max_settle

    # -- raw -----------------------------------------------------------------------------

    def send_raw(self, data: bytes) -> bytes:
        """Write *data* on a fresh connection; return what the console wrote back."""
        protocol = self.site.buildProtocol(self.peer)
        assert protocol is not None
        transport = StringTransport(
            hostAddress=IPv4Address("TCP", "127.0.0.1", 8444), peerAddress=self.peer
        )
        protocol.makeConnection(transport)
        protocol.dataReceived(data)
        waited = 0.0
        while not _complete(transport.value()) and waited < self.max_settle:
            if transport.disconnecting:
                break
            self.clock.advance(self.settle)
            waited += self.settle
        out: bytes = transport.value()
        protocol.connectionLost(Failure(ConnectionDone()))
        return out

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        headers: Iterable[tuple[str, str]] = (),
        cookies: bool = True,
    ) -> Reply:
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1:8444"]
        if cookies and self.cookies:
            lines.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        lines += [f"{k}: {v}" for k, v in headers]
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body
        reply = parse_response(self.send_raw(raw))
        if cookies:
            self._remember(reply)
        return reply

    def _remember(self, reply: Reply) -> None:
        for line in reply.set_cookies:
            pair, *attributes = [p.strip() for p in line.split(";")]
            name, _, value = pair.partition("=")
            gone = any(a.lower() == "max-age=0" for a in attributes)
            if gone or not value:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value

    # -- as a browser --------------------------------------------------------------------

    def get(self, path: str) -> Reply:
        return self.request("GET", path)

    def post(
        self,
        path: str,
        form: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        *,
        content_type: str = "application/x-www-form-urlencoded",
    ) -> Reply:
        pairs = list(form.items()) if isinstance(form, Mapping) else list(form)
        return self.request(
            "POST",
            path,
            body=urlencode(pairs).encode("ascii"),
            headers=[("Content-Type", content_type)],
        )

    def login(self, name: str, password: str, otp: str) -> Reply:
        """Open the login page and submit it, as a person would."""
        token = self.get("/login").csrf_token()
        return self.post(
            "/login", {"csrf_token": token, "name": name, "password": password, "otp": otp}
        )

    def submit(self, page_path: str, action: str, fields: Mapping[str, str] | None = None) -> Reply:
        """Load *page_path* for its CSRF token, then POST *fields* to *action*."""
        token = self.get(page_path).csrf_token()
        return self.post(action, {"csrf_token": token, **(fields or {})})


def _complete(data: bytes) -> bool:
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    match = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
    if match is not None:
        return len(rest) >= int(match.group(1))
    return rest.endswith(b"0\r\n\r\n")


def enrol_staff(
    conn: Connection,
    members: Iterable[tuple[str, str]],
    *,
    password: str,
    hasher: auth.PasswordHasher,
    box: auth.SecretBox,
    now: float,
) -> dict[str, str]:
    """Enrol each (name, role) with *password* and a fresh TOTP secret, as
    ``ssgate staff add`` does; returns each member's secret (for their codes)."""
    secrets: dict[str, str] = {}
    for name, role in members:
        secrets[name] = auth.new_totp_secret()
        auth.create_staff(
            conn,
            name,
            role,
            password_hash=hasher.hash(password),
            totp_secret_sealed=box.seal(secrets[name], context=auth.totp_secret_context(name)),
            now=now,
        )
    return secrets
