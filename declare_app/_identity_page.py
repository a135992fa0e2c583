"""The minimal built-in ``declare`` service: shows the identity the gateway asserted.

It stands in for the declaration service until that exists, and shows the way every
service reads identity: only from the guarded connection, never from the request.
``/`` is an HTML page, ``/api/v1/whoami`` the same as JSON; any other path is 404, and
a connection without an identity gets 403.
"""

from __future__ import annotations

import html
import json

from twisted.internet.interfaces import IReactorTime
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from declare_app._guard import identity_of

PAGE_PATH = b"/"
WHOAMI_PATH = b"/api/v1/whoami"


def _plain(request: Request, code: int, text: bytes) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
    return text


class IdentityPage(Resource):
    isLeaf = True

    def __init__(self) -> None:
        Resource.__init__(self)

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"Cache-Control", b"no-store")
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        identity = identity_of(request.channel)
        if identity is None:  # unreachable behind the guard; refuse rather than guess
            return _plain(request, 403, b"no identity\n")
        if request.path == WHOAMI_PATH:
            request.setHeader(b"Content-Type", b"application/json")
            return json.dumps(
                {
                    "account": identity.account,
                    "unit_code": identity.unit_code,
                    "session_id": identity.session_id,
                    "source": f"{identity.source_host}:{identity.source_port}",
                }
            ).encode()
        if request.path != PAGE_PATH:
            return _plain(request, 404, b"not found\n")
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        e = html.escape
        return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>社会保险网上申报 ssgate</title></head>
<body>
<h1>社会保险网上申报 / Online declaration</h1>
<p>已通过安全专网接入 / Connected through the secure channel.</p>
<table>
<tr><th>单位编号 / Unit code</th><td id="unit">{e(identity.unit_code)}</td></tr>
<tr><th>专网账号 / Account</th><td id="account">{e(identity.account)}</td></tr>
<tr><th>会话 / Session</th><td id="session">{e(identity.session_id)}</td></tr>
<tr><th>来源地址 / Source</th><td>{e(identity.source_host)}:{identity.source_port}</td></tr>
</table>
<p>申报功能即将上线 / The declaration forms are not there yet.</p>
</body></html>
""".encode()


class _IdentitySite(Site):
    # Site's default protocol is a proxy that wraps the HTTPChannel (so it can switch
    # to HTTP/2 after TLS ALPN).  The guard labels the protocol the factory builds, but
    # request.channel is the channel inside the proxy, which would never see the
    # identity.  A guarded connection is plain TCP or UNIX, never h2: build the
    # channel itself.
    protocol = HTTPChannel  # type: ignore[assignment]  # typed as the proxy's factory

    def __init__(self, resource: Resource, *, reactor: IReactorTime | None) -> None:
        Site.__init__(self, resource, reactor=reactor)


def identity_site(*, reactor: IReactorTime | None = None) -> Site:
    """The identity page as a Site, to be served behind :class:`IdentityGuardFactory`.

    *reactor* runs the HTTP idle timeouts (the global reactor when None).
    """
    return _IdentitySite(IdentityPage(), reactor=reactor)
