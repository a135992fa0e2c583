"""The HTTP request and channel both sites use: bounded bodies, no parsing by Twisted.

A body's cap is the route's (:meth:`WebSite.body_limit`, from the route table: the
batch import routes take 8 MiB, everything else the site's default).  A body over
its cap is answered 413 as soon as its length is known — from ``Content-Length``
before ``100 Continue`` is sent, or, chunked, as soon as it passes the cap — and the
connection is then closed the lingering way (:mod:`._drain`): the rest of the body is
read and dropped, never held, so that the answer is not lost in a reset.  Twisted
never parses a form body itself (the sites decode strictly).

Every answer, the early ones included, carries the site's security headers; a bug
that escapes the site's own handling is logged and answered with a plain 500 that
shows nothing of it.

A :class:`~web.Streamed` answer (an export) is written by :func:`write_stream`: a
push producer registered on the request asks for the next piece only while the
transport takes data (TCP's buffer full pauses it, drained resumes it), and stops
for good when the client goes, so an export holds one piece at a time and no work
is done for a reader that left.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IPushProducer, IReactorTime
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import Request, Site
from zope.interface import implementer

from ._access import request_line
from ._answers import REASONS, Response, Streamed, plain
from ._drain import RefusedBodyDrain

INTERNAL_MESSAGE = "服务器内部错误，请稍后重试。如问题持续，请联系系统管理员。"


class CappedRequest(Request):
    """A request whose body is limited by its route and that knows when its client
    has gone (:attr:`gone`): nothing is written to a connection that was lost."""

    log = Logger()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self._parsePOSTFormSubmission = False
        self.gone = False
        self.too_large = False
        self.body_read = 0  # bytes of body received (the tests read it)

    @property
    def web_site(self) -> WebSite | None:
        site = getattr(self.channel, "site", None)
        return site if isinstance(site, WebSite) else None

    def _path(self) -> bytes:
        return getattr(self.channel, "_path", b"") or b""

    def body_limit(self) -> int:
        site = self.web_site
        return site.body_limit(self._path()) if site is not None else 0

    def refuse_too_large(self) -> None:
        """Answer 413 at once, then close once the rest of the body is dropped."""
        self.too_large = True
        self.content = io.BytesIO()
        channel = self.channel
        site = self.web_site
        if channel is None or channel.transport is None or site is None:
            return
        limit = self.body_limit()
        answer = site.too_large(self._path(), limit)
        head = [b"HTTP/1.1 413 Payload Too Large", b"Server: ssgate"]
        head += [name + b": " + value for name, value in site.security_headers]
        head += [
            b"Content-Type: " + answer.content_type,
            b"Content-Length: %d" % len(answer.body),
            b"Connection: close",
        ]
        channel.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + answer.body)
        method = getattr(channel, "_command", b"") or b""
        site.log_request(method, self._path(), 413, len(answer.body))
        if isinstance(channel, CappedChannel):
            declared = channel.length  # None when chunked
            channel.drain_refused_body(
                site.reactor, None if declared is None else declared - self.body_read
            )
        else:
            channel.loseConnection()

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self.body_limit():
            self.refuse_too_large()
            return
        super().gotLength(length)  # type: ignore[no-untyped-call]

    def handleContentChunk(self, data: bytes) -> None:
        if self.too_large:
            return
        self.body_read += len(data)
        if self.body_read > self.body_limit():
            self.refuse_too_large()
            return
        super().handleContentChunk(data)  # type: ignore[no-untyped-call]

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self.too_large:
            return
        super().requestReceived(command, path, version)  # type: ignore[no-untyped-call]

    def process(self) -> None:
        # Before routing, so that even the router's own answers carry them.
        site = self.web_site
        if site is not None:
            for name, value in site.security_headers:
                self.setHeader(name, value)  # type: ignore[no-untyped-call]
        super().process()  # type: ignore[no-untyped-call]

    def setResponseCode(self, code: int, message: bytes | None = None) -> None:
        super().setResponseCode(code, message or REASONS.get(code))

    def connectionLost(self, reason: Failure) -> None:
        self.gone = True
        producer = self.producer
        super().connectionLost(reason)  # type: ignore[no-untyped-call]
        # The channel tells only its transport's producer; a streamed answer's
        # producer must stop too, whichever way the connection went.
        if producer is not None:
            producer.stopProducing()

    def processingFailed(self, reason: Failure) -> None:
        """A failure outside the site's own handling: log it, answer a plain 500."""
        self.log.failure("request {path} failed", reason, path=self.path)
        if self.gone or self.finished:
            return
        write(self, plain(500, INTERNAL_MESSAGE))


def write(request: Request, response: Response, *, tls: bool = False) -> None:
    """Write *response* on *request* and finish it (nothing if the client has gone)."""
    if getattr(request, "gone", False) or request.finished:
        return
    _write_head(request, response, tls=tls)
    request.setHeader(b"Content-Length", b"%d" % len(response.body))
    if request.method != b"HEAD":
        request.write(response.body)
    request.finish()


def write_stream(request: Request, response: Streamed, *, tls: bool = False) -> Deferred[None]:
    """Write *response* on *request* piece by piece (chunked, no length known) and
    finish it; the Deferred fires when the body has ended, however it ended."""
    producer = _StreamProducer(request, response)
    if getattr(request, "gone", False) or request.finished:
        producer.stopProducing()
        return producer.done
    _write_head(request, response, tls=tls)
    if request.method == b"HEAD":
        request.finish()
        producer.stopProducing()
        return producer.done
    producer.start()
    return producer.done


def _write_head(request: Request, response: Response, *, tls: bool) -> None:
    request.setResponseCode(response.status, REASONS.get(response.status))
    request.setHeader(b"Server", b"ssgate")  # not Twisted's name and version
    if response.status not in (204, 304):
        request.setHeader(b"Content-Type", response.content_type)
    for name, value in response.headers:
        request.setHeader(name, value)
    for cookie in response.cookies:
        request.addCookie(
            cookie.name.encode("ascii"),
            cookie.value.encode("ascii"),
            path=b"/",
            secure=tls,
            httpOnly=True,
            sameSite="strict",
            max_age=None if cookie.max_age is None else str(cookie.max_age).encode("ascii"),
        )


@implementer(IPushProducer)
class _StreamProducer:
    """Pulls a :class:`Streamed` body's pieces while the transport wants them.

    One pump at a time: it awaits the next piece (a database batch, say), writes it,
    and goes on unless the transport paused it meanwhile; ``resumeProducing`` starts
    it again.  A piece that fails cuts the connection, so the client sees a broken
    download rather than a short file that looks whole.
    """

    log = Logger()

    def __init__(self, request: Request, response: Streamed) -> None:
        self._request = request
        self._response = response
        self._paused = False
        self._pumping = False
        self._over = False
        self.done: Deferred[None] = Deferred()

    def start(self) -> None:
        self._request.registerProducer(self, True)
        # A channel already waiting for its transport will not pause a producer
        # registered after that moment: start paused, its resume will come.
        self._paused = bool(getattr(self._request.channel, "_waitingForTransport", False))
        self._pump()

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._pump()

    def stopProducing(self) -> None:
        # The connection is gone or going: nothing more is read or written, and the
        # request is over (unless the route layer already gave up on it).
        self._end(complete=False)
        if not self.done.called:
            self.done.callback(None)

    def _pump(self) -> None:
        if self._pumping or self._paused or self._over:
            return
        self._pumping = True
        Deferred.fromCoroutine(self._run()).addErrback(self._failed)

    async def _run(self) -> None:
        try:
            while not self._paused and not self._over:
                chunk = await self._response.chunks()
                if self._over:  # the client left while the piece was read
                    return
                if not chunk:
                    self._request.unregisterProducer()
                    self._request.finish()
                    self._end(complete=True)
                    self.done.callback(None)
                    return
                self._request.write(chunk)
        finally:
            self._pumping = False

    def _failed(self, failure: Failure) -> None:
        # The request is left unfinished (finishing would write the chunked body's
        # end, making a short file look whole); it ends when the connection does.
        self.log.failure("streamed answer to {path} failed", failure, path=self._request.path)
        self._end(complete=False)
        transport = getattr(self._request.channel, "transport", None)
        if transport is not None:
            getattr(transport, "abortConnection", transport.loseConnection)()

    def _end(self, *, complete: bool) -> None:
        if self._over:
            return
        self._over = True
        ended = self._response.ended
        if ended is not None:
            d = maybeDeferred(ended, complete)
            d.addErrback(lambda f: self.log.failure("after the stream ended", f))


class CappedChannel(HTTPChannel):
    """HTTP/1.1 only, built directly by the site (so a wrapping protocol's attributes,
    such as the gateway identity, are on ``request.channel``), refusing an over-long
    body before ``100 Continue``."""

    _drain: RefusedBodyDrain | None = None

    def drain_refused_body(self, clock: IReactorTime, expected: int | None) -> None:
        """The answer is written: drop the *expected* rest of the body, then close."""
        self._drain = RefusedBodyDrain(self.transport, clock, expected=expected)
        self._drain.start()

    def rawDataReceived(self, data: bytes) -> None:
        # The body (raw mode) after a refusal, from the rest of the read that carried
        # the headers on: counted and dropped.
        if self._drain is not None:
            self._drain.received(data)
            return
        super().rawDataReceived(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._drain is not None:
            self._drain.stop()
        super().connectionLost(reason)  # type: ignore[no-untyped-call]

    def allHeadersReceived(self) -> None:
        length = self.length
        request = self.requests[-1] if self.requests else None
        if (
            isinstance(request, CappedRequest)
            and length is not None
            and length > request.body_limit()
        ):
            request.refuse_too_large()
            return
        super().allHeadersReceived()  # type: ignore[no-untyped-call]


class WebSite(Site):
    """A twisted.web Site with per-route body caps and the site's security headers.

    *body_limit* maps a request path (bytes, query included) to its body cap;
    *too_large* renders the 413 for a path and its cap; *access_log* receives one
    short line per request, or None to keep no access log.
    """

    # Built directly, not Site's HTTP/2-capable proxy, so that a wrapping protocol's
    # attributes (the gateway identity) are on request.channel.
    protocol = CappedChannel  # type: ignore[assignment]
    requestFactory = CappedRequest
    displayTracebacks = False

    def __init__(
        self,
        resource: Resource,
        *,
        reactor: IReactorTime,
        body_limit: Callable[[bytes], int],
        too_large: Callable[[bytes, int], Response],
        security_headers: tuple[tuple[bytes, bytes], ...],
        access_log: Callable[[str], None] | None = None,
    ) -> None:
        Site.__init__(self, resource, reactor=reactor)
        self.body_limit = body_limit
        self.too_large = too_large
        self.security_headers = security_headers
        self._access_log = access_log

    def log(self, request: http.Request) -> None:
        self.log_request(request.method, request.uri, request.code, request.sentLength)

    def log_request(self, method: bytes, uri: bytes, status: int, size: int) -> None:
        """One access line; also for the answers written before a request is whole."""
        # Targets can name persons (a query's search terms): web._access masks them.
        if self._access_log is not None:
            self._access_log(request_line(method, uri, status, size))
