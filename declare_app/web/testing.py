"""Fakes for testing the employer web application without a database.

:class:`MemoryWorkflow` implements :class:`declare_app.interfaces.DeclarationWorkflow`
in memory (checked against the Protocol by :func:`_conforms`), with the workflow's
behaviour in small: unit scoping (another unit's id is "not found"), the DOMAIN §7
states, versions on resubmission, a voucher on approval, and a few real checks —
required fields, the ID number (GB 11643, via :func:`declare_app.check_person_id`),
medical and maternity together, the base floor.  Types in ``not_yet`` are refused
with ``not-yet``, as the real workflow refuses types it has not got.

:class:`SynchronousRunner` runs a call at once and returns a fired Deferred;
:class:`HeldRunner` keeps the calls until the test fires them.  Both mark the call as
"on the pool", and a :class:`MemoryWorkflow` with ``require_runner=True`` refuses to
be called any other way — so a test proves the pages never call it on the reactor.
"""

from __future__ import annotations

import builtins
import contextvars
import secrets
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection
from twisted.internet.defer import Deferred, fail, succeed
from twisted.python.failure import Failure

from declare_app._person_id import check_person_id
from declare_app.interfaces import (
    Actor,
    Declaration,
    DeclarationError,
    DeclarationType,
    DeclarationWorkflow,
    Finding,
    InvalidDeclaration,
    NotFound,
    Status,
)
from declare_app.web._specs import FORM_SPECS, RETURN_REASONS, FieldKind

BASE_FLOOR = 4812  # Zhejiang 2024 (DOMAIN §2.3), the fake's only limits
BASE_CEILING = 24930

_on_pool: contextvars.ContextVar[bool] = contextvars.ContextVar("on_pool", default=False)


@contextmanager
def _pool() -> Iterator[None]:
    token = _on_pool.set(True)
    try:
        yield
    finally:
        _on_pool.reset(token)


class SynchronousRunner:
    """``run(fn, *args)`` → a fired Deferred of ``fn(None, *args)``; records each call."""

    def __init__(self) -> None:
        self.calls: builtins.list[str] = []

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
        self.calls.append(getattr(fn, "__name__", repr(fn)))
        with _pool():
            try:
                result = fn(None, *args, **kwargs)
            except BaseException:
                return fail(Failure())
        return succeed(result)


@dataclass
class _Held:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    deferred: Deferred[Any]


class HeldRunner:
    """Keeps every call until :meth:`fire` (the database is slow)."""

    def __init__(self) -> None:
        self.held: builtins.list[_Held] = []

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.held.append(_Held(fn, args, kwargs, d))
        return d

    def fire(self) -> None:
        """Run the held calls (and any they lead to) in order."""
        while self.held:
            call = self.held.pop(0)
            with _pool():
                try:
                    result = call.fn(None, *call.args, **call.kwargs)
                except BaseException:
                    call.deferred.errback(Failure())
                    continue
            call.deferred.callback(result)


@dataclass
class MemoryWorkflow:
    """The declaration workflow in memory (see the module docstring)."""

    not_yet: frozenset[DeclarationType] = frozenset()
    require_runner: bool = False
    today: Callable[[float], date] = field(
        default=lambda now: datetime.fromtimestamp(now, UTC).date()
    )
    declarations: dict[str, Declaration] = field(default_factory=dict)
    vouchers: int = 0

    # -- helpers ----------------------------------------------------------------------

    def _guard(self, actor: Actor, kind: str) -> None:
        if self.require_runner and not _on_pool.get():
            raise AssertionError("workflow called outside the runner (on the reactor)")
        if actor.kind != kind or (kind == "employer" and not actor.unit_code):
            raise DeclarationError("forbidden", "无权办理")

    def _open(self, type: DeclarationType) -> None:
        if type in self.not_yet:
            raise DeclarationError("not-yet", f"{type.chinese}暂未开放网上办理")

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
        self._open(type)
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
        self._open(type)
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
        self._open(old.type)
        normalised, findings = self.check(old.type, payload, now)
        new = Declaration(
            id=secrets.token_urlsafe(12),
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
        self._store(self._event(old, actor, now, "resubmit", new_id=new.id))
        return self._store(self._event(new, actor, now, "create", version=new.version))

    def get(self, conn: Connection, actor: Actor, declaration_id: str) -> Declaration:
        if self.require_runner and not _on_pool.get():
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
        if self.require_runner and not _on_pool.get():
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
