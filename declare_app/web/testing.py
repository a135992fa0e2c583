"""Fakes for testing the employer web application without a database.

:class:`MemoryWorkflow` implements :class:`declare_app.interfaces.DeclarationWorkflow`
in memory (checked against the Protocol by :func:`_conforms`), with the workflow's
behaviour in small: unit scoping (another unit's id is "not found"), the DOMAIN §7
states, versions on resubmission, a voucher on approval, and a few real checks —
required fields, the ID number (GB 11643, via :func:`declare_app.check_person_id`),
medical and maternity together, the base floor.

:class:`SynchronousRunner` (:mod:`auth.testing`'s, re-exported) runs a call at once
and returns a fired Deferred, or holds the calls until the test releases them; while
a call runs it marks it as on the database pool (:data:`auth.testing.runner_pool`), and
a :class:`MemoryWorkflow` with ``require_runner=True`` refuses to be called any other
way — so a test proves the pages never call it on the reactor.

:class:`GuardedClient` drives a site in memory the way the gateway does: each request
on a new :class:`StringTransport` connection through the real
:class:`~declare_app._guard.IdentityGuardFactory`, starting with the signed identity
header (a fresh nonce each time); :class:`Seeder` puts declarations into a
:class:`MemoryWorkflow` in any state.  ``ALICE``/``BOB`` (two units), ``PERSON`` (a
valid 人员增加) and the helpers that read pages are shared test data.
"""

from __future__ import annotations

import builtins
import html
import json
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Connection
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IReactorTime
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web.server import Site

from auth import Identity, encode_assertion
from auth.testing import SynchronousRunner, runner_pool
from declare_app._guard import IdentityGuardFactory
from declare_app._person_id import check_person_id
from declare_app._rules import FORM_SPECS, FieldKind
from declare_app._vocabulary import RETURN_REASONS
from declare_app.interfaces import (
    Actor,
    BatchLine,
    BatchRefused,
    BatchResult,
    Declaration,
    DeclarationError,
    DeclarationType,
    DeclarationWorkflow,
    Finding,
    InvalidDeclaration,
    LineResult,
    NotFound,
    Status,
)
from web import CsrfTokens

BASE_FLOOR = 4812  # Zhejiang 2024 (DOMAIN §2.3), the fake's only limits
BASE_CEILING = 24930


@dataclass
class MemoryWorkflow:
    """The declaration workflow in memory (see the module docstring)."""

    require_runner: bool = False
    today: Callable[[float], date] = field(
        default=lambda now: datetime.fromtimestamp(now, UTC).date()
    )
    declarations: dict[str, Declaration] = field(default_factory=dict)
    vouchers: int = 0

    # -- helpers ----------------------------------------------------------------------

    def _guard(self, actor: Actor, kind: str) -> None:
        if self.require_runner and runner_pool.get() != "database":
            raise AssertionError("workflow called outside the runner (on the reactor)")
        if actor.kind != kind or (kind == "employer" and not actor.unit_code):
            raise DeclarationError("forbidden", "无权办理")

    def _find(self, actor: Actor, declaration_id: str) -> Declaration:
        decl = self.declarations.get(declaration_id)
        if decl is None or (actor.kind == "employer" and decl.unit_code != actor.unit_code):
            raise NotFound()
        return decl

    def _event(
        self, decl: Declaration, actor: Actor, now: float, action: str, **more: Any
    ) -> Declaration:
        entry = {"at": now, "action": action, "by": actor.name, "to": None, **more}
        return replace(decl, history=(*decl.history, entry))

    def _store(self, decl: Declaration) -> Declaration:
        if decl.history:
            last = dict(decl.history[-1])
            last["to"] = decl.status.value
            decl = replace(decl, history=(*decl.history[:-1], last))
        self.declarations[decl.id] = decl
        return decl

    def check(
        self, type: DeclarationType, payload: Mapping[str, Any], now: float
    ) -> tuple[dict[str, Any], tuple[Finding, ...]]:
        """Normalise and validate (a few real rules, see the module docstring)."""
        spec = FORM_SPECS[type]
        out = dict(payload)
        findings: builtins.list[Finding] = []
        for f in spec.fields:
            value = payload.get(f.name)
            if f.required and value in (None, "", [], ()):
                findings.append(Finding("V-FORM-01", f.name, "error", f"请填写{f.label}"))
            elif f.kind is FieldKind.ID_NUMBER and isinstance(value, str):
                for r in check_person_id(value, today=self.today(now)):
                    findings.append(
                        Finding(f"V-{r.rule}", f.name, r.severity, r.message.split(" / ")[0])
                    )
        insurances = payload.get("insurances")
        if isinstance(insurances, builtins.list) and ("310" in insurances) != ("510" in insurances):
            findings.append(
                Finding("V-INS-01", "insurances", "error", "职工基本医疗保险与生育保险须同时办理")
            )
        wage = payload.get("monthly_wage") or payload.get("base")
        if isinstance(wage, str) and wage:
            amount = float(wage)
            base = min(max(amount, BASE_FLOOR), BASE_CEILING)
            out["base"] = f"{base:.2f}"
            if base != amount:
                findings.append(
                    Finding(
                        "V-BASE-01",
                        "monthly_wage" if "monthly_wage" in payload else "base",
                        "warning",
                        f"缴费工资不在缴费基数上下限（{BASE_FLOOR}–{BASE_CEILING}）之间，"
                        f"按 {base:.2f} 核定",
                    )
                )
        return out, tuple(findings)

    # -- the Protocol ------------------------------------------------------------------

    def create_draft(
        self,
        conn: Connection,
        actor: Actor,
        type: DeclarationType,
        payload: Mapping[str, Any],
        *,
        now: float,
    ) -> Declaration:
        self._guard(actor, "employer")
        assert actor.unit_code is not None
        normalised, findings = self.check(type, payload, now)
        decl = Declaration(
            id=secrets.token_urlsafe(12),
            unit_code=actor.unit_code,
            type=type,
            status=Status.DRAFT,
            version=1,
            previous_id=None,
            payload=normalised,
            findings=findings,
            created_at=now,
            created_session=actor.session_id,
        )
        return self._store(self._event(decl, actor, now, "create", session=actor.session_id))

    def update_draft(
        self,
        conn: Connection,
        actor: Actor,
        declaration_id: str,
        payload: Mapping[str, Any],
        *,
        now: float,
    ) -> Declaration:
        self._guard(actor, "employer")
        decl = self._find(actor, declaration_id)
        if decl.status is not Status.DRAFT:
            raise DeclarationError("wrong-state", "只有草稿可以修改")
        normalised, findings = self.check(decl.type, payload, now)
        decl = replace(decl, payload=normalised, findings=findings)
        return self._store(self._event(decl, actor, now, "update"))

    def preview(
        self,
        conn: Connection,
        actor: Actor,
        type: DeclarationType,
        payload: Mapping[str, Any],
        *,
        now: float,
    ) -> tuple[Mapping[str, Any], tuple[Finding, ...]]:
        self._guard(actor, "employer")
        return self.check(type, payload, now)

    def submit(
        self, conn: Connection, actor: Actor, declaration_id: str, *, now: float
    ) -> Declaration:
        self._guard(actor, "employer")
        decl = self._find(actor, declaration_id)
        if decl.status is not Status.DRAFT:
            raise DeclarationError("wrong-state", f"该申报已{decl.status.chinese}，不能再次提交")
        _, findings = self.check(decl.type, decl.payload, now)
        if any(f.severity == "error" for f in findings):
            raise InvalidDeclaration(findings)
        decl = replace(decl, status=Status.PENDING_REVIEW, submitted_at=now, findings=findings)
        return self._store(self._event(decl, actor, now, "submit", session=actor.session_id))

    def import_batch(
        self,
        conn: Connection,
        actor: Actor,
        type: DeclarationType,
        lines: Sequence[BatchLine],
        *,
        common: Mapping[str, Any],
        now: float,
    ) -> BatchResult:
        """Each line checked as a person-add form (an annual-base line: its required
        columns); the good ones become one draft ``{**common, "lines": [...]}``."""
        self._guard(actor, "employer")
        assert actor.unit_code is not None
        results: builtins.list[LineResult] = []
        kept: builtins.list[dict[str, Any]] = []
        for line in lines:
            if line.problem is not None:
                found: tuple[Finding, ...] = (Finding("V-FORM-02", "", "error", line.problem),)
            elif type is DeclarationType.PERSON_ADD:
                normalised, found = self.check(type, line.values, now)
            else:
                normalised = dict(line.values)
                found = tuple(
                    Finding("V-FORM-01", name, "error", f"请填写{name}")
                    for name in ("person_no", "name", "id_number", "wage")
                    if not line.values.get(name)
                )
            ok = line.problem is None and not any(f.severity == "error" for f in found)
            if ok:
                kept.append(normalised)
            ident = (str(line.values.get("id_number", "")), str(line.values.get("name", "")))
            results.append(LineResult(line.number, ok, found, *ident))
        if not kept:
            raise BatchRefused("没有可以接受的行，未保存任何内容", results)
        decl = Declaration(
            id=secrets.token_urlsafe(12),
            unit_code=actor.unit_code,
            type=type,
            status=Status.DRAFT,
            version=1,
            previous_id=None,
            payload={**common, "lines": kept},
            findings=(),
            created_at=now,
            created_session=actor.session_id,
        )
        decl = self._store(self._event(decl, actor, now, "import", session=actor.session_id))
        return BatchResult(decl, tuple(results))

    def withdraw(
        self, conn: Connection, actor: Actor, declaration_id: str, *, now: float
    ) -> Declaration:
        self._guard(actor, "employer")
        decl = self._find(actor, declaration_id)
        if decl.status is not Status.PENDING_REVIEW:
            raise DeclarationError("wrong-state", "只有待审核的申报可以撤回")
        decl = replace(decl, status=Status.WITHDRAWN)
        return self._store(self._event(decl, actor, now, "withdraw"))

    def resubmit(
        self,
        conn: Connection,
        actor: Actor,
        declaration_id: str,
        payload: Mapping[str, Any],
        *,
        now: float,
    ) -> Declaration:
        self._guard(actor, "employer")
        old = self._find(actor, declaration_id)
        if old.status is not Status.RETURNED:
            raise DeclarationError("wrong-state", "只有已退回的申报可以重新申报")
        if any(h.get("action") == "resubmit" for h in old.history):
            raise DeclarationError("wrong-state", "该申报已重新申报过，请在新版本上办理")
        normalised, findings = self.check(old.type, payload, now)
        new_id = secrets.token_urlsafe(12)
        old = self._store(self._event(old, actor, now, "resubmit", new_id=new_id))
        new = Declaration(
            id=new_id,
            unit_code=old.unit_code,
            type=old.type,
            status=Status.DRAFT,
            version=old.version + 1,
            previous_id=old.id,
            payload=normalised,
            findings=findings,
            created_at=now,
            created_session=actor.session_id,
            history=old.history,
        )
        return self._store(self._event(new, actor, now, "create", version=new.version))

    def get(self, conn: Connection, actor: Actor, declaration_id: str) -> Declaration:
        if self.require_runner and runner_pool.get() != "database":
            raise AssertionError("workflow called outside the runner (on the reactor)")
        return self._find(actor, declaration_id)

    def claim(
        self, conn: Connection, actor: Actor, declaration_id: str, *, now: float
    ) -> Declaration:
        self._guard(actor, "staff")
        decl = self._find(actor, declaration_id)
        if decl.status is not Status.PENDING_REVIEW:
            raise DeclarationError("wrong-state", "只有待审核的申报可以受理")
        decl = replace(decl, status=Status.UNDER_REVIEW, claimed_by=actor.name)
        return self._store(self._event(decl, actor, now, "claim"))

    def approve(
        self, conn: Connection, actor: Actor, declaration_id: str, *, now: float
    ) -> Declaration:
        self._guard(actor, "staff")
        decl = self._find(actor, declaration_id)
        if decl.status is not Status.UNDER_REVIEW:
            raise DeclarationError("wrong-state", "只有审核中的申报可以审核通过")
        self.vouchers += 1
        voucher = f"PZ{datetime.fromtimestamp(now, UTC):%Y%m%d}{self.vouchers:06d}"
        result = (
            {"person_number": f"P{self.vouchers:08d}"}
            if decl.type is DeclarationType.PERSON_ADD
            else {}
        )
        decl = replace(
            decl,
            status=Status.APPLIED,
            decided_by=actor.name,
            decided_at=now,
            voucher_no=voucher,
            result=result,
        )
        return self._store(self._event(decl, actor, now, "approve", voucher_no=voucher))

    def return_(
        self,
        conn: Connection,
        actor: Actor,
        declaration_id: str,
        *,
        code: str,
        text: str,
        now: float,
    ) -> Declaration:
        self._guard(actor, "staff")
        decl = self._find(actor, declaration_id)
        if decl.status is not Status.UNDER_REVIEW:
            raise DeclarationError("wrong-state", "只有审核中的申报可以退回")
        if code not in RETURN_REASONS or (code == "R99" and not text.strip()):
            raise DeclarationError("bad-reason", "退回原因无效")
        decl = replace(
            decl,
            status=Status.RETURNED,
            decided_by=actor.name,
            decided_at=now,
            return_code=code,
            return_text=text,
        )
        return self._store(self._event(decl, actor, now, "return", code=code, text=text))

    def list(
        self, conn: Connection, actor: Actor, *, status: Status | None = None, limit: int = 200
    ) -> builtins.list[Declaration]:
        if self.require_runner and runner_pool.get() != "database":
            raise AssertionError("workflow called outside the runner (on the reactor)")
        if actor.kind == "employer":
            found = [d for d in self.declarations.values() if d.unit_code == actor.unit_code]
        else:
            found = [
                d
                for d in self.declarations.values()
                if d.status in (Status.PENDING_REVIEW, Status.UNDER_REVIEW)
            ]
        if status is not None:
            found = [d for d in found if d.status is status]
        found.sort(key=lambda d: (d.created_at, d.version), reverse=True)
        return found[:limit]


def _conforms(workflow: MemoryWorkflow) -> DeclarationWorkflow:
    """mypy checks here that :class:`MemoryWorkflow` satisfies the Protocol."""
    return workflow


# -- shared test data ----------------------------------------------------------------------

IDENTITY_KEY = bytes(range(32, 80))  # the gateway/service identity header key (48 bytes)
CSRF_KEY = bytes(range(100, 132))
NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
GATEWAY_PEER = IPv4Address("TCP", "10.0.0.2", 40000)  # the gateway, as the service sees it
LOCAL_HOST = b"127.0.0.1:8080"  # what the browser sends to ``ssgate connect``

ALICE = Identity(
    account="33068212345678@sxlss",
    unit_code="12345678",
    session_id="s-7f3a9c0e11d24b6f",
    issued_at=NOW,
    source_host="203.0.113.7",
    source_port=50123,
    dest_host="198.51.100.1",
    dest_port=8443,
    nonce="0",
)
BOB = replace(
    ALICE,
    account="33068287654321@sxlss",
    unit_code="87654321",
    session_id="s-b0b0b0b0b0b0b0b0",
)
AUDITOR = Actor(kind="staff", name="auditor-li", role="auditor")

VALID_ID = "33068219900307123X"  # Shangyu, born 1990-03-07, check character X
OTHER_ID = "330682199506150028"
BAD_CHECK_ID = "330682199003071230"  # check character 0 where X is due (ID-05)

PERSON: dict[str, Any] = {
    "name": "张三",
    "gender": "1",
    "birth_month": "1990-03",
    "id_type": "01",
    "id_number": VALID_ID,
    "nation": "01",
    "hukou_type": "A",
    "staff_kind": "B",
    "employment_form": "1",
    "hire_date": "2025-12-15",
    "insurances": ["110", "210", "310", "410", "510"],
    "add_type": "A",
    "start_month": "2026-01",
    "monthly_wage": "6000",
}


def employer(identity: Identity) -> Actor:
    return Actor(
        kind="employer",
        name=identity.account,
        unit_code=identity.unit_code,
        session_id=identity.session_id,
    )


def csrf_for(identity: Identity = ALICE, key: bytes = CSRF_KEY) -> str:
    return CsrfTokens(key).token(identity.session_id)


# -- a client through the guard ------------------------------------------------------------


@dataclass
class HttpResponse:
    status: int
    headers: dict[bytes, bytes]
    body: bytes
    raw: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        content_type = self.headers.get(b"content-type", b"")
        # Answers are application/json; refusals RFC 9457 application/problem+json.
        if not content_type.startswith((b"application/json", b"application/problem+json")):
            raise AssertionError(f"not JSON: {content_type!r}")
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        value = self.headers.get(name.lower().encode())
        return None if value is None else value.decode("latin-1")


def parse_response(raw: bytes) -> HttpResponse:
    """The first response in *raw* (a body without Content-Length runs to the end)."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        raise AssertionError(f"no complete response head in {raw[:200]!r}")
    status_line, *lines = head.split(b"\r\n")
    headers: dict[bytes, bytes] = {}
    for line in lines:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    length = headers.get(b"content-length")
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        body = _dechunk(rest)
    else:
        body = rest[: int(length)] if length is not None else rest
    return HttpResponse(int(status_line.split(b" ")[1]), headers, body, raw)


def _dechunk(data: bytes) -> bytes:
    """A chunked body (a streamed download) as its bytes; raises if it did not end."""
    out = bytearray()
    while True:
        size_line, sep, data = data.partition(b"\r\n")
        if not sep:
            raise AssertionError("a chunked body that never ended")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        out += data[:size]
        data = data[size + 2 :]


@dataclass
class GuardedClient:
    """Talks to *site* as the employer of *identity*, through the identity guard."""

    site: Site
    clock: IReactorTime
    identity: Identity = ALICE
    key: bytes = IDENTITY_KEY
    csrf_key: bytes = CSRF_KEY
    transports: builtins.list[StringTransport] = field(default_factory=builtins.list)

    def connect(self, identity: Identity | None = None) -> tuple[Any, StringTransport]:
        """A new admitted connection: (the guard protocol, its transport)."""
        who = replace(identity or self.identity, nonce=secrets.token_hex(16))
        factory = IdentityGuardFactory(self.site, key=self.key, clock=self.clock)
        guard: Any = factory.buildProtocol(GATEWAY_PEER)
        transport = StringTransport(peerAddress=GATEWAY_PEER)
        guard.makeConnection(transport)
        guard.dataReceived(encode_assertion(who, key=self.key))
        self.transports.append(transport)
        return guard, transport

    def raw(self, data: bytes, identity: Identity | None = None) -> HttpResponse:
        guard, transport = self.connect(identity)
        guard.dataReceived(data)
        return parse_response(transport.value())

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        identity: Identity | None = None,
        host: bytes | None = LOCAL_HOST,
    ) -> HttpResponse:
        lines = [f"{method} {path} HTTP/1.1".encode()]
        if host is not None:
            lines.append(b"Host: " + host)
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}".encode())
        if body or method not in ("GET", "HEAD"):
            lines.append(b"Content-Length: %d" % len(body))
        lines.append(b"Connection: close")
        return self.raw(b"\r\n".join(lines) + b"\r\n\r\n" + body, identity)

    def get(self, path: str, **kw: Any) -> HttpResponse:
        return self.request("GET", path, **kw)

    def post_form(
        self,
        path: str,
        fields: Mapping[str, Any] | builtins.list[tuple[str, str]],
        *,
        csrf: str | None = "auto",
        headers: Mapping[str, str] | None = None,
        identity: Identity | None = None,
    ) -> HttpResponse:
        """POST *fields* form-encoded (list values repeat the name), with the session's
        CSRF token unless *csrf* says otherwise (None: no token)."""
        pairs = builtins.list(fields.items()) if isinstance(fields, Mapping) else fields
        flat: builtins.list[tuple[str, str]] = []
        for name, value in pairs:
            if isinstance(value, builtins.list | tuple):
                flat.extend((name, v) for v in value)
            else:
                flat.append((name, value))
        if csrf == "auto":
            csrf = csrf_for(identity or self.identity, self.csrf_key)
        if csrf is not None:
            flat.append(("csrf_token", csrf))
        all_headers = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
        return self.request(
            "POST", path, body=urlencode(flat).encode(), headers=all_headers, identity=identity
        )

    def api(
        self,
        method: str,
        path: str,
        value: Any = None,
        *,
        csrf: str | None = "auto",
        headers: Mapping[str, str] | None = None,
        identity: Identity | None = None,
    ) -> HttpResponse:
        """An API call with *value* as its JSON body and the CSRF header on writes."""
        all_headers: dict[str, str] = {}
        body = b""
        if value is not None:
            text = json.dumps(value, ensure_ascii=False)
            try:
                body = text.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate: only \u escapes can carry it
                body = json.dumps(value).encode("ascii")
            all_headers["Content-Type"] = "application/json"
        if method not in ("GET", "HEAD"):
            if csrf == "auto":
                csrf = csrf_for(identity or self.identity, self.csrf_key)
            if csrf is not None:
                all_headers["X-CSRF-Token"] = csrf
        all_headers.update(headers or {})
        return self.request(method, path, body=body, headers=all_headers, identity=identity)


# -- reading pages -------------------------------------------------------------------------


class _ElementFinder(HTMLParser):
    """The text and the tags inside the element with a given id."""

    VOID = frozenset({"input", "br", "meta", "link", "img", "hr"})

    def __init__(self, element_id: str) -> None:
        super().__init__(convert_charrefs=True)
        self.element_id = element_id
        self.depth = 0
        self.found = False
        self.text: builtins.list[str] = []
        self.tags: builtins.list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: builtins.list[tuple[str, str | None]]) -> None:
        if self.depth:
            self.tags.append({"tag": tag, **dict(attrs)})
            if tag not in self.VOID:
                self.depth += 1
        elif not self.found and dict(attrs).get("id") == self.element_id:
            self.found = True
            self.tags.append({"tag": tag, **dict(attrs)})
            self.depth = 0 if tag in self.VOID else 1

    def handle_endtag(self, tag: str) -> None:
        if self.depth and tag not in self.VOID:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth:
            self.text.append(data)


def _find(page: str, element_id: str) -> _ElementFinder:
    finder = _ElementFinder(element_id)
    finder.feed(page)
    if not finder.found:
        raise AssertionError(f"no element #{element_id} on the page")
    return finder


def element_text(page: str, element_id: str) -> str:
    """The text inside ``#element_id``, whitespace collapsed."""
    return " ".join("".join(_find(page, element_id).text).split())


def element_tags(page: str, element_id: str) -> builtins.list[dict[str, str | None]]:
    """``#element_id`` and the tags inside it, each as {"tag": name, attribute: value}."""
    return _find(page, element_id).tags


def hidden_fields_of(page: str) -> builtins.list[tuple[str, str]]:
    """The hidden inputs of *page*, in order (what a preview page carries)."""
    return [
        (html.unescape(n), html.unescape(v))
        for n, v in re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)">', page)
    ]


# -- declarations in any state -------------------------------------------------------------


@dataclass
class Seeder:
    """Puts declarations into *workflow* in a given state, through *runner*."""

    workflow: MemoryWorkflow
    runner: SynchronousRunner

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        results: builtins.list[Any] = []
        self.runner.run(fn, *args, **kwargs).addBoth(results.append)
        [result] = results
        if isinstance(result, Failure):
            result.raiseException()
        return result

    def draft(
        self,
        type: DeclarationType = DeclarationType.PERSON_ADD,
        payload: Mapping[str, Any] | None = None,
        identity: Identity = ALICE,
    ) -> Declaration:
        d: Declaration = self.call(
            self.workflow.create_draft,
            employer(identity),
            type,
            dict(PERSON if payload is None else payload),
            now=NOW,
        )
        return d

    def in_state(self, status: Status, identity: Identity = ALICE, **kw: Any) -> Declaration:
        """A declaration brought to *status* the way it gets there (R01 when returned)."""
        wf, me = self.workflow, employer(identity)
        d = self.draft(identity=identity, **kw)
        if status is not Status.DRAFT:
            d = self.call(wf.submit, me, d.id, now=NOW + 10)
        if status is Status.WITHDRAWN:
            d = self.call(wf.withdraw, me, d.id, now=NOW + 20)
        if status in (Status.UNDER_REVIEW, Status.APPLIED, Status.RETURNED):
            d = self.call(wf.claim, AUDITOR, d.id, now=NOW + 30)
        if status is Status.APPLIED:
            d = self.call(wf.approve, AUDITOR, d.id, now=NOW + 40)
        if status is Status.RETURNED:
            d = self.call(
                wf.return_, AUDITOR, d.id, code="R01", text="姓名与身份证不符", now=NOW + 40
            )
        return d
