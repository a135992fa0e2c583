"""The shared web layer in memory: route tables, Klein routing through a site's
dispatcher, per-route body caps, and answers never written to a client that left.

A tiny site (:class:`EchoDispatcher`) is served by the real :class:`web.WebSite`
over an :class:`HTTPChannel` on a ``StringTransport``; time is a
``MemoryReactorClock``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

import web

PEER = IPv4Address("TCP", "127.0.0.1", 40000)
CAP = 4096
BIG_CAP = 64 * 1024


async def page(ctx: Echo, **params: str) -> web.Response:
    return web.Response(200, f"page {ctx.route.method} {dict(params)}".encode())


@dataclass
class Echo:
    route: web.Route
    body: web.Body | None = None


@dataclass
class EchoDispatcher:
    """Admits everyone; a write needs the token ``t0k3n``; holds answers on request."""

    held: list[Deferred[None]] = field(default_factory=list)
    hold: bool = False
    seen: list[str] = field(default_factory=list)

    async def handle(
        self, request: web.CappedRequest, route: web.Route, params: Mapping[str, str]
    ) -> web.Response:
        if self.hold:
            d: Deferred[None] = Deferred()
            self.held.append(d)
            await d
        ctx = Echo(route)
        try:
            if route.method != "GET":

                def check(token: str | bytes | None) -> None:
                    if not web.same_token("t0k3n", token):
                        raise web.HttpError(403, "csrf", "表单已失效")

                ctx.body = web.read_body(
                    request,
                    api=route.is_api,
                    multipart=web.MultipartLimits(max_file_bytes=BIG_CAP)
                    if route.multipart
                    else None,
                    check_token=check,
                )
            self.seen.append(f"{route.method} {route.path}")
            return await route.handler(ctx, **params)
        except web.HttpError as e:
            if route.is_api:
                return web.problem(e.status, e.code, e.message, e.findings, e.headers)
            return web.Response(e.status, e.message.encode("utf-8"), headers=e.headers)
        except web.MalformedInput as e:
            return web.Response(400, e.message.encode("utf-8"))

    async def unrouted(
        self, request: web.CappedRequest, status: int, allowed: Sequence[str]
    ) -> web.Response:
        headers = ((b"Allow", ", ".join(allowed).encode()),) if allowed else ()
        return web.Response(status, b"unrouted", headers=headers)


def table(**extra: object) -> web.RouteTable:
    return web.RouteTable(
        site="test",
        roles=frozenset({"anyone", "staff"}),
        max_body=CAP,
        converters={"id": r"[a-z0-9]{1,8}"},
        routes=(
            web.Route("GET", "/", ("anyone",), page),
            web.Route("GET", "/things/<id:id>", ("anyone",), page),
            web.Route("POST", "/things/<id:id>", ("staff",), page),
            web.Route("POST", "/upload", ("staff",), page, max_body=BIG_CAP, multipart=True),
            web.Route("POST", "/api/things", ("staff",), page),
        ),
    )


@dataclass
class Served:
    dispatcher: EchoDispatcher
    site: web.WebSite
    routed: web.RoutedResource

    def connect(self) -> tuple[object, StringTransport]:
        channel = self.site.buildProtocol(PEER)
        transport = StringTransport(peerAddress=PEER)
        channel.makeConnection(transport)
        return channel, transport

    def send(self, data: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
        channel, transport = self.connect()
        channel.dataReceived(data)  # type: ignore[attr-defined]
        return parse(transport.value())


def parse(raw: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.split(b"\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split(b" ")[1]), headers, body


@pytest.fixture
def served() -> Served:
    dispatcher = EchoDispatcher()
    routed = web.RoutedResource(table(), dispatcher, tls=True)
    site = web.WebSite(
        routed.resource(),
        reactor=MemoryReactorClock(),
        body_limit=routed.body_limit,
        too_large=lambda path, limit: web.plain(413, f"too large ({limit})"),
        security_headers=web.security_headers(tls=True),
    )
    return Served(dispatcher, site, routed)


def request(method: str, path: str, body: bytes = b"", **headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    if body or method not in ("GET", "HEAD"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# -- the table -----------------------------------------------------------------------


def test_a_route_without_a_role_cannot_be_declared() -> None:
    with pytest.raises(ValueError, match="no role"):
        web.Route("GET", "/x", (), page)
    with pytest.raises(ValueError, match="no role"):
        web.Route("GET", "/x", ("",), page)


def test_a_route_naming_a_role_the_site_does_not_know_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown roles"):
        web.RouteTable(
            site="t",
            roles=frozenset({"a"}),
            max_body=1,
            routes=(web.Route("GET", "/", ("b",), page),),
        )


def test_the_same_method_and_path_twice_is_refused() -> None:
    route = web.Route("GET", "/", ("a",), page)
    with pytest.raises(ValueError, match="twice"):
        web.RouteTable(site="t", roles=frozenset({"a"}), max_body=1, routes=(route, route))


def test_unknown_methods_and_odd_paths_are_refused() -> None:
    with pytest.raises(ValueError, match="method"):
        web.Route("PATCH", "/", ("a",), page)
    with pytest.raises(ValueError, match="path"):
        web.Route("GET", "no-slash", ("a",), page)


def test_rows_list_every_route_with_head_beside_get() -> None:
    rows = table().rows()
    assert ("GET", "/", "anyone") in rows and ("HEAD", "/", "anyone") in rows
    assert ("POST", "/upload", "staff") in rows
    assert not any(m == "HEAD" and p == "/upload" for m, p, _ in rows)


# -- routing ---------------------------------------------------------------------------


def test_a_route_is_served_with_its_parameters_and_the_security_headers(served: Served) -> None:
    status, headers, body = served.send(request("GET", "/things/ab12"))
    assert status == 200 and body == b"page GET {'id': 'ab12'}"
    assert b"frame-ancestors 'none'" in headers[b"content-security-policy"]
    assert headers[b"x-content-type-options"] == b"nosniff"
    assert headers[b"referrer-policy"] == b"same-origin"
    assert headers[b"strict-transport-security"] == b"max-age=31536000"
    assert headers[b"server"] == b"ssgate"


def test_head_is_answered_as_get_without_a_body(served: Served) -> None:
    status, headers, body = served.send(request("HEAD", "/things/ab12"))
    assert status == 200 and body == b""
    assert headers[b"content-length"] == str(len(b"page GET {'id': 'ab12'}")).encode()


def test_unknown_paths_and_parameters_are_the_sites_404(served: Served) -> None:
    for path in ("/nothing", "/things/TOO-LONG-AND-UPPER", "/things/%ff", "/things/a/b"):
        status, headers, body = served.send(request("GET", path))
        assert (status, body) == (404, b"unrouted"), path
        assert b"content-security-policy" in headers


def test_another_method_is_the_sites_405_with_allow(served: Served) -> None:
    status, headers, _ = served.send(request("DELETE", "/things/ab12"))
    assert status == 405
    assert headers[b"allow"] == b"GET, HEAD, POST"
    status, headers, _ = served.send(request("GET", "/upload"))
    assert status == 405 and headers[b"allow"] == b"POST"


def test_a_host_that_is_not_utf8_goes_to_the_site_not_to_klein(served: Served) -> None:
    status, _, body = served.send(b"GET / HTTP/1.1\r\nHost: \xff\xfe\r\n\r\n")
    assert (status, body) == (404, b"unrouted")


# -- bodies ----------------------------------------------------------------------------


def test_writes_need_the_token_in_the_form_or_the_header(served: Served) -> None:
    form = b"a=1&csrf_token=t0k3n"
    ct = "application/x-www-form-urlencoded"
    assert served.send(request("POST", "/things/ab", form, Content_Type=ct))[0] == 200
    assert served.send(request("POST", "/things/ab", b"a=1", Content_Type=ct))[0] == 403
    api = request("POST", "/api/things", b"{}", Content_Type="application/json")
    status, headers, _ = served.send(api)
    assert status == 403 and headers[b"content-type"].startswith(b"application/problem+json")
    api = request(
        "POST", "/api/things", b"{}", Content_Type="application/json", X_CSRF_Token="t0k3n"
    )
    assert served.send(api)[0] == 200


def test_a_body_of_the_wrong_type_or_charset_is_415(served: Served) -> None:
    for ct in ("text/plain", "application/x-www-form-urlencoded; charset=latin-1"):
        status, _, _ = served.send(request("POST", "/things/ab", b"a=1", Content_Type=ct))
        assert status == 415, ct
    # multipart only where the route takes it
    ct = "multipart/form-data; boundary=x"
    assert served.send(request("POST", "/things/ab", b"--x--\r\n", Content_Type=ct))[0] == 415


def test_a_body_over_the_routes_cap_is_refused_before_it_is_read(served: Served) -> None:
    """Content-Length over the cap: 413 from the headers alone, and not one byte of the
    body is taken in: the rest is dropped as it comes, then the connection closes (so
    that no reset loses the answer; web/_drain.py, tests/unit/web/test_drain.py)."""
    channel, transport = served.connect()
    head = request("POST", "/things/ab", Content_Type="application/x-www-form-urlencoded")
    head = head.replace(b"Content-Length: 0", b"Content-Length: %d" % (CAP + 1))
    channel.dataReceived(head)  # type: ignore[attr-defined]
    status, headers, body = parse(transport.value())
    assert status == 413 and body == b"too large (4096)\n"
    assert headers[b"connection"] == b"close" and b"content-security-policy" in headers
    assert not transport.disconnecting  # the body is still coming
    request_ = channel.requests[-1]  # type: ignore[attr-defined]
    channel.dataReceived(b"x" * (CAP + 1))  # type: ignore[attr-defined]
    assert request_.body_read == 0 and request_.content.getvalue() == b""
    assert transport.disconnecting  # all of it came: closed


def test_a_chunked_body_is_cut_as_soon_as_it_passes_the_cap(served: Served) -> None:
    channel, transport = served.connect()
    channel.dataReceived(  # type: ignore[attr-defined]
        b"POST /things/ab HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n\r\n"
    )
    request_ = channel.requests[-1]  # type: ignore[attr-defined]
    for _ in range(CAP // 1000 + 2):
        channel.dataReceived(b"3e8\r\n" + b"a" * 1000 + b"\r\n")  # type: ignore[attr-defined]
    assert parse(transport.value())[0] == 413
    assert request_.body_read <= CAP + 1000  # stopped at the first chunk over the cap
    assert request_.content.getvalue() == b""


def test_the_upload_route_has_its_own_larger_cap(served: Served) -> None:
    assert served.routed.body_limit(b"/upload") == BIG_CAP
    assert served.routed.body_limit(b"/upload?x=1") == BIG_CAP
    assert served.routed.body_limit(b"/things/ab") == CAP
    assert served.routed.body_limit(b"/nowhere") == CAP
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\nt0k3n\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n'
        f"Content-Type: text/csv\r\n\r\n{'x' * (CAP * 2)}\r\n--{boundary}--\r\n"
    ).encode()
    ct = f"multipart/form-data; boundary={boundary}"
    assert served.send(request("POST", "/upload", body, Content_Type=ct))[0] == 200


# -- clients that leave -----------------------------------------------------------------


def test_nothing_is_written_to_a_client_that_left_and_nothing_fails(served: Served) -> None:
    served.dispatcher.hold = True
    channel, transport = served.connect()
    channel.dataReceived(request("GET", "/"))  # type: ignore[attr-defined]
    channel.connectionLost(Failure(ConnectionError("gone")))  # type: ignore[attr-defined]
    [held] = served.dispatcher.held
    held.callback(None)  # the work finishes after the client left
    assert transport.value() == b""
    assert served.dispatcher.seen == ["GET /"]  # it was done, not cancelled
