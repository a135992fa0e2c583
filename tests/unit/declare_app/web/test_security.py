"""Who may do what: identity only from the guard, CSRF, Origin, Host, isolation, escaping.

The employer's unit comes from the gateway's signed header and nothing else; a page
on another site cannot post (no token, foreign Origin) nor read (foreign Host name);
another unit's declarations are "not found" on every route; whatever a declaration
or an identity contains is escaped.
"""

from __future__ import annotations

import re
from dataclasses import replace
from importlib.resources import files
from typing import Any

import pytest
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import LogEvent, globalLogPublisher
from twisted.web.server import Site

from declare_app.interfaces import Status
from declare_app.web.testing import (
    ALICE,
    BOB,
    CSRF_KEY,
    GATEWAY_PEER,
    PERSON,
    GuardedClient,
    MemoryWorkflow,
    Seeder,
    SynchronousRunner,
    csrf_for,
    element_text,
    parse_response,
)

SECURITY_HEADERS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


def assert_security_headers(r: Any) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert r.header(name) == value, (name, r.status)
    csp = r.header("content-security-policy")
    assert csp is not None
    assert "default-src 'none'" in csp
    assert "script-src" not in csp  # none at all: default-src 'none' covers it
    assert "frame-ancestors 'none'" in csp
    assert "'unsafe-inline'" not in csp


@pytest.fixture
def warnings() -> Any:
    events: list[LogEvent] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


def person_fields(**changes: Any) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for name, value in {**PERSON, **changes}.items():
        if isinstance(value, list):
            out.extend((name, v) for v in value)
        else:
            out.append((name, value))
    return out


# -- headers ---------------------------------------------------------------------------------


def test_every_kind_of_answer_has_the_security_headers(
    client: GuardedClient, seed: Seeder, site: Site, clock: MemoryReactorClock
) -> None:
    """Pages, redirects, errors, JSON, the style sheet, the 413 written by the channel
    and the 403 of an unguarded connection: all carry CSP, X-Frame-Options DENY,
    nosniff, Referrer-Policy and Cache-Control no-store."""
    draft = seed.draft()
    answers = [
        client.get("/"),
        client.get("/static/employer.css"),
        client.get("/nowhere"),
        client.get("/api/v1/whoami"),
        client.api("POST", "/api/v1/declarations", {"type": "x"}),
        client.post_form(f"/declarations/{draft.id}/submit", []),
        client.post_form("/declarations/new/person-add", [], csrf="wrong"),
        client.raw(
            b"POST /api/v1/declarations HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
            b"Content-Length: 99999999\r\n\r\n"
        ),
        client.get("/", host=b"evil.example"),
    ]
    unguarded = site.buildProtocol(GATEWAY_PEER)
    transport = StringTransport(peerAddress=GATEWAY_PEER)
    unguarded.makeConnection(transport)
    unguarded.dataReceived(b"GET / HTTP/1.0\r\n\r\n")
    answers.append(parse_response(transport.value()))
    assert sorted({a.status for a in answers}) == [200, 303, 403, 404, 413, 422]
    for answer in answers:
        assert_security_headers(answer)


def test_templates_have_no_script_no_inline_style_no_event_handlers() -> None:
    """The CSP allows no inline script or style; the templates rely on none (both
    sites' templates: the employer's, the review section's and the shared ones)."""
    pending = [files("declare_app.web").joinpath("templates"), files("web").joinpath("templates")]
    entries = []
    while pending:
        for entry in pending.pop().iterdir():
            (pending if entry.is_dir() else entries).append(entry)
    assert len(entries) > 20
    for entry in entries:
        text = entry.read_text(encoding="utf-8")
        assert "<script" not in text.lower(), entry.name
        assert " style=" not in text, entry.name
        assert "<style" not in text, entry.name
        assert not re.search(r"\son[a-z]+=", text), entry.name
        assert "|safe" not in text.replace("' aria-invalid=\"true\"'|safe", ""), entry.name


# -- identity --------------------------------------------------------------------------------


def test_without_an_identity_every_route_is_refused(site: Site, runner: SynchronousRunner) -> None:
    """Served without the guard (no identity on the channel), GET and POST on pages and
    API are 403 and the workflow is never called."""
    for request in (
        b"GET / HTTP/1.0\r\n\r\n",
        b"GET /declarations HTTP/1.0\r\n\r\n",
        b"GET /api/v1/whoami HTTP/1.0\r\n\r\n",
        b"POST /api/v1/declarations HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}",
    ):
        channel = site.buildProtocol(GATEWAY_PEER)
        transport = StringTransport(peerAddress=GATEWAY_PEER)
        channel.makeConnection(transport)
        channel.dataReceived(request)
        r = parse_response(transport.value())
        assert r.status == 403
        assert "未经安全专网接入" in r.body.decode()
    assert runner.calls == []


FORGERIES = {
    "X-Forwarded-For": "198.51.100.99",
    "X-Real-IP": "198.51.100.99",
    "X-Unit-Code": BOB.unit_code,
    "X-SSGATE-Unit": BOB.unit_code,
    "X-SSGATE-Account": BOB.account,
    "X-SSGATE-Session": BOB.session_id,
    "Forwarded": "for=198.51.100.99",
    "Cookie": f"unit_code={BOB.unit_code}; session_id={BOB.session_id}; account={BOB.account}",
    "Authorization": "Basic MzMwNjgyODc2NTQzMjE6eA==",
}


def test_forged_headers_fields_parameters_and_cookies_change_nothing(
    client: GuardedClient, workflow: MemoryWorkflow
) -> None:
    """A form post carrying BOB's unit code, account and session as form fields, query
    parameters, headers and cookies is still ALICE's: stored under ALICE's unit and
    session; whoami answers ALICE."""
    fields = [
        *person_fields(),
        ("unit_code", BOB.unit_code),
        ("account", BOB.account),
        ("session_id", BOB.session_id),
        ("action", "save"),
    ]
    query = f"?unit_code={BOB.unit_code}&account={BOB.account}&session_id={BOB.session_id}"
    r = client.post_form("/declarations/new/person-add" + query, fields, headers=FORGERIES)
    assert r.status == 303
    api = client.api(
        "POST",
        "/api/v1/declarations" + query,
        {"type": "person-add", "payload": PERSON},
        headers=FORGERIES,
    )
    assert api.status == 201
    for decl in workflow.declarations.values():
        assert decl.unit_code == ALICE.unit_code
        assert decl.created_session == ALICE.session_id
        assert decl.history[0]["by"] == ALICE.account
    who = client.api("GET", "/api/v1/whoami" + query, headers=FORGERIES).json()
    assert (who["unit_code"], who["account"], who["session_id"]) == (
        ALICE.unit_code,
        ALICE.account,
        ALICE.session_id,
    )
    assert who["source"] == "203.0.113.7:50123"
    page = client.get("/" + query, headers=FORGERIES).text
    assert element_text(page, "unit") == ALICE.unit_code
    assert BOB.unit_code not in page


def test_a_unit_code_inside_the_api_payload_is_refused(client: GuardedClient) -> None:
    """The API refuses fields the form does not have, so a ``unit_code`` in a payload
    is an error, never a way to choose the unit."""
    r = client.api(
        "POST",
        "/api/v1/declarations",
        {"type": "person-add", "payload": {**PERSON, "unit_code": BOB.unit_code}},
    )
    assert r.status == 422
    assert r.json()["findings"][0]["field"] == "unit_code"


# -- isolation -------------------------------------------------------------------------------


def test_another_units_declarations_are_not_found_on_every_route(
    client: GuardedClient, seed: Seeder, workflow: MemoryWorkflow
) -> None:
    """BOB's declarations in every state, tried by ALICE on every page and API route
    that takes an id (reads and writes): 404 each time, the answer never shows BOB's
    data, and nothing of BOB's changes."""
    bobs = [seed.in_state(s, identity=BOB, payload={**PERSON, "name": "鲍勃"}) for s in Status]
    before = dict(workflow.declarations)
    token = csrf_for(ALICE)
    for d in bobs:
        attempts = [
            client.get(f"/declarations/{d.id}"),
            client.get(f"/declarations/{d.id}/edit"),
            client.get(f"/declarations/{d.id}/resubmit"),
            client.get(f"/declarations/{d.id}/voucher"),
            client.post_form(f"/declarations/{d.id}/edit", [*person_fields(), ("action", "save")]),
            client.post_form(
                f"/declarations/{d.id}/edit", [*person_fields(), ("action", "submit")]
            ),
            client.post_form(f"/declarations/{d.id}/submit", []),
            client.post_form(f"/declarations/{d.id}/withdraw", []),
            client.post_form(
                f"/declarations/{d.id}/resubmit", [*person_fields(), ("action", "submit")]
            ),
            client.api("GET", f"/api/v1/declarations/{d.id}"),
            client.api("PUT", f"/api/v1/declarations/{d.id}", {"payload": PERSON}),
            client.api("POST", f"/api/v1/declarations/{d.id}/submit"),
            client.api("POST", f"/api/v1/declarations/{d.id}/withdraw"),
            client.api("POST", f"/api/v1/declarations/{d.id}/resubmit", {"payload": PERSON}),
        ]
        for r in attempts:
            assert r.status == 404, (d.status, r.status, r.text[:200])
            assert "鲍勃" not in r.text and BOB.unit_code not in r.text
            assert token  # the token was valid: refused for the id, not the form
    assert workflow.declarations == before
    listing = client.api("GET", "/api/v1/declarations").json()["declarations"]
    assert listing == []
    assert "鲍勃" not in client.get("/declarations").text


# -- CSRF ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [None, "", "wrong", csrf_for(BOB), csrf_for(ALICE)[:-1], csrf_for(ALICE) + "x", "令牌"],
    ids=["missing", "empty", "wrong", "other-session", "short", "long", "non-ascii"],
)
def test_a_form_post_without_the_sessions_token_is_refused(
    client: GuardedClient,
    workflow: MemoryWorkflow,
    runner: SynchronousRunner,
    warnings: list[LogEvent],
    token: str | None,
) -> None:
    """No token, a wrong one, another session's: 403 with a Chinese explanation, the
    workflow not called, a warning logged with the session (never the token)."""
    r = client.post_form(
        "/declarations/new/person-add", [*person_fields(), ("action", "save")], csrf=token
    )
    assert r.status == 403
    assert "页面已失效或请求来源不明" in r.text
    assert workflow.declarations == {}
    assert runner.calls == []
    [event] = [e for e in warnings if "CSRF" in e.get("log_format", "")]
    assert event["session"] == ALICE.session_id
    assert csrf_for(ALICE) not in repr(event)


def test_two_csrf_fields_are_refused(client: GuardedClient, workflow: MemoryWorkflow) -> None:
    r = client.post_form(
        "/declarations/new/person-add",
        [*person_fields(), ("action", "save"), ("csrf_token", "x")],
    )
    assert r.status == 403
    assert workflow.declarations == {}


@pytest.mark.parametrize("token", [None, "wrong", csrf_for(BOB)], ids=["missing", "wrong", "other"])
def test_an_api_write_without_the_csrf_header_is_refused(
    client: GuardedClient, seed: Seeder, workflow: MemoryWorkflow, token: str | None
) -> None:
    """API writes need ``X-CSRF-Token``: without it 403 ``csrf`` as JSON, and nothing
    changes (create, submit, withdraw alike)."""
    draft = seed.draft()
    pending = seed.in_state(Status.PENDING_REVIEW)
    before = dict(workflow.declarations)
    for method, path, body in (
        ("POST", "/api/v1/declarations", {"type": "person-add", "payload": PERSON}),
        ("POST", f"/api/v1/declarations/{draft.id}/submit", None),
        ("POST", f"/api/v1/declarations/{pending.id}/withdraw", None),
        ("PUT", f"/api/v1/declarations/{draft.id}", {"payload": PERSON}),
    ):
        r = client.api(method, path, body, csrf=token)
        assert r.status == 403
        assert r.json()["error"] == "csrf"
    assert workflow.declarations == before


def test_the_csrf_token_comes_with_whoami_and_changes_with_the_session(
    client: GuardedClient,
) -> None:
    """whoami gives the API client its token; another gateway session has another."""
    alice = client.api("GET", "/api/v1/whoami").json()["csrf_token"]
    bob = client.api("GET", "/api/v1/whoami", identity=BOB).json()["csrf_token"]
    assert alice == csrf_for(ALICE) and bob == csrf_for(BOB) and alice != bob
    assert len(alice) >= 43  # 256 bits


# -- Origin, Referer, Host -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        ({}, True),
        ({"Origin": "http://127.0.0.1:8080"}, True),
        ({"Origin": "https://127.0.0.1:8080"}, True),
        ({"Referer": "http://127.0.0.1:8080/declarations/new/person-add"}, True),
        ({"Origin": "http://evil.example"}, False),
        ({"Origin": "http://127.0.0.1:9999"}, False),
        ({"Origin": "http://127.0.0.1"}, False),
        ({"Origin": "null"}, False),
        ({"Origin": "http://127.0.0.1:8080.evil.example"}, False),
        ({"Origin": "ftp://127.0.0.1:8080"}, False),
        ({"Origin": "http://127.0.0.1:notaport"}, False),
        ({"Referer": "http://evil.example/page"}, False),
        ({"Origin": "http://evil.example", "Referer": "http://127.0.0.1:8080/"}, False),
    ],
)
def test_writes_must_come_from_this_origin(
    client: GuardedClient, workflow: MemoryWorkflow, headers: dict[str, str], allowed: bool
) -> None:
    """A state-changing request whose Origin (else Referer) names another site, another
    port or ``null`` is refused (403) even with the right token; none or this host is
    fine."""
    r = client.post_form(
        "/declarations/new/person-add", [*person_fields(), ("action", "save")], headers=headers
    )
    api = client.api(
        "POST", "/api/v1/declarations", {"type": "person-add", "payload": PERSON}, headers=headers
    )
    if allowed:
        assert (r.status, api.status) == (303, 201)
        assert len(workflow.declarations) == 2
    else:
        assert (r.status, api.status) == (403, 403)
        assert "请求来源不是本系统的页面" in r.text
        assert api.json()["error"] == "cross-origin"
        assert workflow.declarations == {}


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        (b"127.0.0.1:8080", True),
        (b"127.0.0.1", True),
        (b"localhost:8080", True),
        (b"LOCALHOST:8080", True),
        (b"[::1]:8080", True),
        (b"10.1.2.3:8080", True),
        (None, True),
        (b"evil.example", False),
        (b"evil.example:8080", False),
        (b"127.0.0.1.nip.io:8080", False),
        (b"localhost:80a", False),
        (b"\xff\xfe", False),
    ],
)
def test_only_ip_literals_and_localhost_may_be_the_host(
    client: GuardedClient, host: bytes | None, allowed: bool
) -> None:
    """A page of another site whose name was re-bound to 127.0.0.1 (DNS rebinding)
    sends its own name as Host: refused (403) before anything is read, so it can read
    neither data nor a CSRF token."""
    r = client.get("/api/v1/whoami", host=host)
    if allowed:
        assert r.status == 200
    else:
        assert r.status == 403
        assert r.json()["error"] == "bad-host"
        assert "csrf_token" not in r.text


def test_more_host_names_can_be_allowed(
    workflow: MemoryWorkflow, runner: SynchronousRunner, clock: MemoryReactorClock
) -> None:
    from declare_app.web import employer_site

    site = employer_site(
        workflow=workflow,
        runner=runner,
        clock=clock,
        csrf_key=CSRF_KEY,
        allowed_host_names=["hr-pc.example"],
    )
    client = GuardedClient(site, clock)
    assert client.get("/", host=b"hr-pc.example:8080").status == 200
    assert client.get("/", host=b"localhost:8080").status == 403


def test_a_short_csrf_key_is_refused_at_start(
    workflow: MemoryWorkflow, runner: SynchronousRunner, clock: MemoryReactorClock
) -> None:
    from declare_app.web import employer_site

    with pytest.raises(ValueError, match="csrf_key"):
        employer_site(workflow=workflow, runner=runner, clock=clock, csrf_key=b"short")


# -- escaping --------------------------------------------------------------------------------

HOSTILE = '<script>alert("x")</script>&\'"><img src=x onerror=alert(1)>'


def test_declaration_content_is_escaped_everywhere(client: GuardedClient, seed: Seeder) -> None:
    """Text a declaration holds (name, remark, a return reason) shows escaped on the
    list, detail, edit form, preview (visible and hidden) and voucher pages."""
    draft = seed.draft(payload={**PERSON, "name": HOSTILE[:50], "remark": HOSTILE})
    applied = seed.in_state(Status.APPLIED, payload={**PERSON, "remark": HOSTILE})
    returned = seed.in_state(Status.RETURNED, payload={**PERSON, "remark": HOSTILE})
    preview = client.post_form(
        "/declarations/new/person-add",
        [*person_fields(remark=HOSTILE), ("action", "preview")],
    )
    pages = [
        client.get("/declarations").text,
        client.get(f"/declarations/{draft.id}").text,
        client.get(f"/declarations/{draft.id}/edit").text,
        client.get(f"/declarations/{applied.id}/voucher").text,
        client.get(f"/declarations/{returned.id}/resubmit").text,
        preview.text,
    ]
    for page in pages:
        assert "<script>" not in page
        assert "<img src=x" not in page
        assert "&lt;script&gt;" in page or "&lt;img" in page
    assert (
        'value="&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&amp;&#39;&#34;&gt;&lt;img src=x onerror=alert(1)&gt;"'
        in preview.text
    )


def test_a_hostile_identity_is_escaped(client: GuardedClient) -> None:
    """The identity header allows ``<``, ``>``, ``&`` and quotes in its text fields:
    the pages escape them and the JSON carries them unchanged."""
    hostile = replace(
        ALICE,
        account='<script>alert("x")</script>@sxlss',
        unit_code="<b>",
        session_id='"><img/src=x/onerror=alert(1)>',
    )
    page = client.get("/", identity=hostile).text
    assert "<script>" not in page and "<b>" not in page and "<img" not in page
    assert element_text(page, "unit") == "<b>"
    assert element_text(page, "session") == hostile.session_id
    who = client.api("GET", "/api/v1/whoami", identity=hostile).json()
    assert who["account"] == hostile.account
