"""No input produces a 500 or a traceback; bodies are bounded; the reactor never waits.

The catch-all exists (a bug in a handler or the workflow is logged and answered with
a plain 500 page), and the matrix here proves that no route reaches it with bad input:
every route × method × malformed body × content type answers below 500.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogEvent, globalLogPublisher
from twisted.python.failure import Failure

from declare_app.interfaces import Status
from declare_app.web import DEFAULT_MAX_BODY, employer_site
from declare_app.web.testing import (
    CSRF_KEY,
    PERSON,
    GuardedClient,
    MemoryWorkflow,
    Seeder,
    SynchronousRunner,
    csrf_for,
    parse_response,
)


@pytest.fixture
def logged() -> Any:
    events: list[LogEvent] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


def failures(events: list[LogEvent]) -> list[LogEvent]:
    return [e for e in events if "log_failure" in e]


# -- body limits -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/declarations/new/person-add", "/api/v1/declarations"])
def test_a_declared_oversized_body_is_refused_before_it_is_sent(
    client: GuardedClient, runner: SynchronousRunner, path: str
) -> None:
    """Content-Length over 1 MiB: 413 at once, from the headers alone (no byte of the
    body sent), the connection closing; JSON on the API, Chinese text on pages."""
    guard, transport = client.connect()
    guard.dataReceived(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
        f"Content-Length: {DEFAULT_MAX_BODY + 1}\r\n\r\n".encode()
    )
    r = parse_response(transport.value())
    assert r.status == 413
    assert r.header("connection") == "close"
    if path.startswith("/api/"):
        assert r.json()["error"] == "too-large"
    else:
        assert "请求内容过大" in r.text
    # What was already on its way is dropped unseen; the connection closes once all of
    # it has come, so that no reset loses the 413 (web/_drain.py).
    guard.dataReceived(b"x" * 65536)
    assert not transport.disconnecting
    guard.dataReceived(b"x" * (DEFAULT_MAX_BODY + 1 - 65536))
    assert transport.disconnecting
    assert runner.calls == []


def test_expect_100_continue_with_a_big_body_gets_413_not_continue(client: GuardedClient) -> None:
    guard, transport = client.connect()
    guard.dataReceived(
        b"POST /api/v1/declarations HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
        b"Expect: 100-continue\r\nContent-Length: 50000000\r\n\r\n"
    )
    assert transport.value().startswith(b"HTTP/1.1 413 ")
    assert b"100 Continue" not in transport.value()


def test_a_chunked_body_is_cut_off_when_it_passes_the_limit(
    client: GuardedClient, runner: SynchronousRunner
) -> None:
    """Without a length (chunked), the body is counted as it arrives and refused with
    413 once past the limit; nothing of it reaches the application."""
    guard, transport = client.connect()
    guard.dataReceived(
        b"POST /api/v1/declarations HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
        b"Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
    )
    chunk = b"x" * 65536
    for _ in range(DEFAULT_MAX_BODY // len(chunk) + 1):
        guard.dataReceived(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
    r = parse_response(transport.value())
    assert r.status == 413
    guard.dataReceived(b"0\r\n\r\n")  # dropped too, until the client closes
    assert runner.calls == []


def test_a_body_within_the_limit_is_read(client: GuardedClient) -> None:
    """Just under the limit, a (junk) form body is read and judged: not 413."""
    body = b"remark=" + b"a" * (DEFAULT_MAX_BODY - 200)
    r = client.request(
        "POST",
        "/declarations/new/person-add",
        body=body + b"&csrf_token=" + csrf_for().encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status == 422
    assert "长度不能超过 500 个字符" in r.text


def test_the_limit_is_configurable(
    workflow: MemoryWorkflow, runner: SynchronousRunner, clock: MemoryReactorClock
) -> None:
    site = employer_site(
        workflow=workflow, runner=runner, clock=clock, csrf_key=CSRF_KEY, max_body=4096
    )
    client = GuardedClient(site, clock)
    r = client.api(
        "POST", "/api/v1/declarations", {"type": "person-add", "payload": {"remark": "x" * 5000}}
    )
    assert r.status == 413
    with pytest.raises(ValueError, match="max_body"):
        employer_site(workflow=workflow, runner=runner, clock=clock, csrf_key=CSRF_KEY, max_body=10)


# -- no 500 for any bad input ----------------------------------------------------------------

BAD_BODIES = [
    b"",
    b"\xff\xfe\x00",
    b"{",
    b"[" * 20000,
    b'{"type": "person-add", "payload": {"name": "\\ud800"}}',
    b'{"type": "person-add", "payload": {"insurances": {"a": [1, {"b": null}]}}}',
    b'{"payload": {"lines": "x"}, "type": "annual-base"}',
    b"a=%ff&b=%&c",
    b"action=submit&csrf_token=" + b"%00" * 10,
    b"name=" + "張".encode() * 10 + b"&action=preview&hire_date=9999-99-99&monthly_wage=1e400",
    b"\r\n\r\n--x\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--x--",
    bytes(range(256)),
    b"&".join(b"f%d=1" % i for i in range(2000)),
    b"1" * 10000,
]
CONTENT_TYPES = [
    None,
    "application/x-www-form-urlencoded",
    "application/json",
    "multipart/form-data; boundary=x",
    "text/plain",
    "application/json; charset=utf-16",
    "\u00ff/\u00fe",
]
METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]


def _routes(seed: Seeder) -> list[str]:
    draft = seed.draft()
    returned = seed.in_state(Status.RETURNED)
    applied = seed.in_state(Status.APPLIED)
    return [
        "/",
        "/static/employer.css",
        "/declarations",
        "/declarations?status=%ff%fe",
        "/declarations/new",
        "/declarations/new/person-add",
        "/declarations/new/annual-base",
        f"/declarations/{draft.id}",
        f"/declarations/{draft.id}/edit",
        f"/declarations/{draft.id}/submit",
        f"/declarations/{draft.id}/withdraw",
        f"/declarations/{returned.id}/resubmit",
        f"/declarations/{applied.id}/voucher",
        "/declarations/..%2F..%2Fetc",
        "/%E4%B8%AD",
        "/api/v1/whoami",
        "/api/v1/types",
        "/api/v1/declarations",
        "/api/v1/declarations/preview",
        f"/api/v1/declarations/{draft.id}",
        f"/api/v1/declarations/{draft.id}/submit",
        f"/api/v1/declarations/{draft.id}/withdraw",
        f"/api/v1/declarations/{returned.id}/resubmit",
    ]


def test_no_route_method_body_or_content_type_produces_a_500(
    client: GuardedClient, seed: Seeder, logged: list[LogEvent]
) -> None:
    """Every route × method × malformed body × content type, with a valid CSRF token
    where a write needs one: every answer is below 500, none shows a traceback, and
    nothing is logged as a failure."""
    token = csrf_for()
    seen: set[int] = set()
    for path, method, body, ctype in itertools.product(
        _routes(seed), METHODS, BAD_BODIES, CONTENT_TYPES
    ):
        if method in ("GET", "HEAD", "OPTIONS") and (body or ctype):
            continue  # the same answer as without a body; keeps the matrix small
        headers = {"X-CSRF-Token": token}
        if ctype is not None:
            headers["Content-Type"] = ctype
        sent = body
        if method == "POST" and ctype == "application/x-www-form-urlencoded":
            sent = body + b"&csrf_token=" + token.encode()
        r = client.request(method, path, body=sent, headers=headers)
        seen.add(r.status)
        assert r.status < 500, (method, path, body[:60], ctype, r.status, r.body[:300])
        assert b"Traceback" not in r.body and b'File "' not in r.body
    assert failures(logged) == []
    assert {200, 303, 400, 404, 405, 409, 415, 422} <= seen, seen


@pytest.mark.parametrize(
    "raw",
    [
        b"GET /\xff HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nBad Header Line\r\n\r\n",
        b"POST /api/v1/declarations HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Length: -1\r\n\r\n",
        b"POST /api/v1/declarations HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"POST /api/v1/declarations HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET " + b"/declarations/" + b"A" * 20000 + b" HTTP/1.1\r\n\r\n",
        b"GET * HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n",
        b"GET http://evil.example/ HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n",
        b"GET /?" + b"a=1&" * 3000 + b" HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n",
    ],
    ids=[
        "non-ascii-path",
        "bad-header",
        "negative-length",
        "two-lengths",
        "bad-chunk",
        "huge-path",
        "star",
        "absolute-uri",
        "many-params",
    ],
)
def test_malformed_http_is_a_4xx(client: GuardedClient, raw: bytes, logged: list[LogEvent]) -> None:
    guard, transport = client.connect()
    guard.dataReceived(raw)
    out = transport.value()
    if out:
        status = int(out.split(b" ")[1])
        assert 400 <= status < 500, out[:200]
    assert failures(logged) == []


# -- the catch-all ---------------------------------------------------------------------------


class BrokenWorkflow(MemoryWorkflow):
    def list(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internal detail")

    def get(self, *args: Any, **kwargs: Any) -> Any:
        return object()  # not a Declaration: the page cannot be rendered


@pytest.mark.parametrize(
    ("path", "api"),
    [
        ("/", False),
        ("/declarations", False),
        ("/api/v1/declarations", True),
        ("/declarations/AAAAAAAAAAAA", False),
        ("/api/v1/declarations/AAAAAAAAAAAA", True),
    ],
)
def test_a_bug_is_logged_and_answered_with_a_plain_500(
    runner: SynchronousRunner,
    clock: MemoryReactorClock,
    logged: list[LogEvent],
    path: str,
    api: bool,
) -> None:
    """An exception that is not a workflow refusal: a 500 that says so in Chinese and
    shows nothing of the exception; the failure is in the log."""
    site = employer_site(workflow=BrokenWorkflow(), runner=runner, clock=clock, csrf_key=CSRF_KEY)
    r = GuardedClient(site, clock).get(path)
    assert r.status == 500
    assert b"secret internal detail" not in r.body
    assert b"Traceback" not in r.body and b"RuntimeError" not in r.body
    if api:
        assert r.json() == {
            "type": "about:blank",
            "title": "服务器内部错误",
            "status": 500,
            "detail": "服务器内部错误，请稍后重试。如问题持续，请联系经办机构。",
            "error": "internal",
            "message": "服务器内部错误，请稍后重试。如问题持续，请联系经办机构。",
            "findings": [],
        }
    else:
        assert "服务器内部错误" in r.text
    [failure] = failures(logged)
    assert isinstance(failure["log_failure"], Failure)


# -- the reactor never waits -----------------------------------------------------------------


def test_pages_are_written_when_the_workflow_answers(clock: MemoryReactorClock) -> None:
    """With a slow database (the runner holds calls), the request gets nothing until the
    call completes on the pool; then the page is written."""
    runner = SynchronousRunner()
    runner.hold()
    workflow = MemoryWorkflow(require_runner=True)
    site = employer_site(workflow=workflow, runner=runner, clock=clock, csrf_key=CSRF_KEY)
    client = GuardedClient(site, clock)
    guard, transport = client.connect()
    guard.dataReceived(b"GET /declarations HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n")
    assert transport.value() == b""
    assert [call.fn.__name__ for call in runner.held] == ["recording_refusals"]
    runner.release()
    r = parse_response(transport.value())
    assert r.status == 200 and "申报中心" in r.text


def test_a_client_gone_before_the_answer_gets_nothing_written(
    clock: MemoryReactorClock, logged: list[LogEvent]
) -> None:
    """The browser closes while the workflow call is on the pool: when it completes,
    nothing is written and nothing fails."""
    runner = SynchronousRunner()
    runner.hold()
    site = employer_site(workflow=MemoryWorkflow(), runner=runner, clock=clock, csrf_key=CSRF_KEY)
    client = GuardedClient(site, clock)
    guard, transport = client.connect()
    guard.dataReceived(b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n")
    guard.connectionLost(Failure(ConnectionError("gone")))
    runner.release()
    assert transport.value() == b""
    assert failures(logged) == []


def test_every_workflow_call_goes_through_the_runner(
    client: GuardedClient, seed: Seeder, runner: SynchronousRunner
) -> None:
    """The fake workflow refuses calls made off the runner (``require_runner``); a tour
    of pages and API calls that all succeed proves none is made on the reactor."""
    returned = seed.in_state(Status.RETURNED)
    runner.calls.clear()
    assert client.get("/").status == 200
    assert client.get(f"/declarations/{returned.id}").status == 200
    assert client.get(f"/declarations/{returned.id}/resubmit").status == 200
    assert client.api("GET", "/api/v1/declarations").status == 200
    assert (
        client.api(
            "POST", "/api/v1/declarations/preview", {"type": "person-add", "payload": PERSON}
        ).status
        == 200
    )
    assert set(runner.calls) == {"recording_refusals"}
    assert len(runner.calls) == 5
