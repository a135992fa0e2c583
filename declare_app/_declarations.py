"""The declaration workflow (DOMAIN.md §7) on the shared database.

:class:`Declarations` implements :class:`~declare_app.interfaces.DeclarationWorkflow`:

    draft ──submit──▶ pending-review ──claim──▶ under-review ──approve──▶ applied
      ▲  │                 │                        │
      │  └──withdraw──▶ withdrawn ◀──withdraw──┘    └──return──▶ returned
      └──────────────── resubmit (a new version) ◀──────────────────┘

Every call is one step inside the caller's transaction and appends one audit event
(two for an approval: ``declare.approve`` and ``declare.apply``), refusals included.
A call's writes go to a savepoint; a refusal rolls the savepoint back, appends its
``refused`` event and raises :class:`DeclarationError` — the caller commits anyway
(:func:`run_recording_refusals` does that for an engine).

Isolation: an employer's calls carry the unit from the gateway's signed header
(``actor.unit_code``) and every query is scoped to it; another unit's declaration
id reads as :class:`NotFound`, exactly like an id that does not exist.

Approving re-checks the declaration against master data as it is now (V-DUP-01 at
apply time, the unit's standing), applies it, assigns a 个人编号 to a new person and
issues a voucher number, all in the same savepoint: a conflict changes nothing.

A batch import (:meth:`Declarations.import_batch`, DOMAIN §7 batch notes) checks every
line of an uploaded file and stores ONE draft holding the acceptable lines; the
refused lines are reported, never stored.  Parsing, checking and storing run in the
caller's one transaction, so an interrupted import stores nothing; approving a batch
applies all its lines in the approval's one savepoint, or none.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from typing import TYPE_CHECKING, Any, Final, TypeVar

from sqlalchemy import Connection, Engine, exc, insert, select, update

import audit
from declare_app import _evidence as evidence
from declare_app import _vocabulary as vocabulary
from declare_app._china_time import CHINA_TIME
from declare_app._contributions import RateTable
from declare_app._ledger import RatesNotInForce, month_text
from declare_app._ledger_store import record_applied
from declare_app._rules import (
    ApplyConflict,
    Checked,
    RuleContext,
    RuleSettings,
    TypeRules,
    UnitStanding,
    rules_for,
    unit_standing,
)
from declare_app._rules._common import REDUCE_EVIDENCE
from declare_app._rules._master import next_number
from declare_app._schema import declaration_events, declarations, vouchers
from declare_app.interfaces import (
    Actor,
    Attachment,
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

MAX_PAYLOAD_BYTES: Final = 256 * 1024
MAX_BATCH_PAYLOAD_BYTES: Final = 24 * 1024 * 1024  # 10 000 normalised person-add lines
BATCH_TYPES: Final = frozenset({DeclarationType.PERSON_ADD, DeclarationType.ANNUAL_BASE})
MAX_LIST: Final = 1000
MAX_RETURN_TEXT: Final = 500
MAX_VERSIONS: Final = 50  # history walks at most this many versions back
REVIEW_ROLES: Final = frozenset({"auditor", "admin"})
READ_ROLES: Final = frozenset({"auditor", "admin", "officer"})

RETURN_REASONS: Final = vocabulary.RETURN_REASONS  # DOMAIN §7; R99 needs text

_ID = re.compile(r"[0-9a-f]{32}")
_LINE_FIELD = re.compile(r"lines\[(\d+)\]\.")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_T = TypeVar("_T")


class ApplyConflictError(DeclarationError):
    """Approval refused: master data changed since submission; nothing was applied."""

    def __init__(self, findings: Sequence[Finding]) -> None:
        detail = "；".join(f.message for f in findings)[:500]
        super().__init__("conflict", f"与现有参保数据冲突，未办结：{detail}")
        self.findings = tuple(findings)


@dataclass(frozen=True)
class _Loaded:
    row: Any

    @property
    def status(self) -> Status:
        return Status(self.row.status)


@dataclass
class _Scope:
    """Per call: the unit a refusal is audited under, once the declaration is known."""

    unit: str | None = None


class Declarations:
    """The workflow over SQLAlchemy Core; rates and rule settings are injected.

    *tz* turns ``now`` into the local date the date rules and voucher numbers use;
    *new_id* makes declaration ids (128 random bits by default).
    """

    def __init__(
        self,
        rates: RateTable,
        *,
        settings: RuleSettings | None = None,
        tz: tzinfo = CHINA_TIME,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] = lambda: secrets.token_hex(16),
    ) -> None:
        self._rates = rates
        self._settings = settings or RuleSettings()
        self._tz = tz
        self._clock = clock  # for get(), the one call without a "now"
        self._new_id = new_id

    # -- employer calls -------------------------------------------------------------

    @property
    def rate_table(self) -> RateTable:
        """The rates the workflow checks with (staff pages mark unverified ones)."""
        return self._rates

    def create_draft(
        self,
        conn: Connection,
        actor: Actor,
        type: DeclarationType,
        payload: Mapping[str, Any],
        *,
        now: float,
    ) -> Declaration:
        subject = getattr(type, "value", "unknown")
        with self._action(conn, actor, "declare.create", subject, now):
            unit = self._employer_unit(conn, actor)
            rules = self._rules(type)
            raw = _payload(payload)
            declaration_id = self._new_id()
            checked = rules.check(self._context(conn, unit, now, declaration_id), raw)
            _insert_draft(
                conn,
                declaration_id,
                unit.code,
                type.value,
                actor,
                subject=checked.subject,
                payload_text=_json(checked.payload),
                findings=checked.findings,
                now=now,
            )
            self._event(
                conn,
                declaration_id,
                actor=actor,
                now=now,
                from_status=None,
                to_status=Status.DRAFT,
                note="创建草稿",
            )
            self._ok(
                conn,
                actor,
                "declare.create",
                declaration_id,
                now,
                unit=unit.code,
                details={"type": type.value, "errors": len(checked.errors)},
            )
            return self._get(conn, declaration_id)

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
        """Every line checked by the type's rules as one declaration; the lines without
        an error finding (and without a ``problem`` from the file) become one draft,
        re-checked as such.  A whole-declaration error (the unit's standing, the
        year) or no acceptable line refuses the import: :class:`BatchRefused`."""
        subject = getattr(type, "value", "unknown")
        with self._action(conn, actor, "declare.import", subject, now):
            unit = self._employer_unit(conn, actor)
            rules = self._rules(type)
            if type not in BATCH_TYPES:
                raise DeclarationError("bad-type", "该业务不支持批量导入")
            usable = [line for line in lines if line.problem is None]
            base = {k: v for k, v in _payload(common).items() if k != "lines"}
            checked = rules.check(
                self._context(conn, unit, now, None),
                {**base, "lines": [dict(line.values) for line in usable]},
            )
            by_line: dict[int, list[Finding]] = {}
            whole: list[Finding] = []
            for f in checked.findings:
                m = _LINE_FIELD.match(f.field)
                if m is None:
                    whole.append(f)
                else:
                    by_line.setdefault(int(m.group(1)), []).append(f)
            whole_errors = [f for f in whole if f.severity == "error"]
            results: list[LineResult] = []
            accepted: list[BatchLine] = []
            position = {id(line): i for i, line in enumerate(usable)}
            for line in lines:
                ident = (str(line.values.get("id_number", "")), str(line.values.get("name", "")))
                found: tuple[Finding, ...]
                if line.problem is not None:
                    found = (Finding("V-FORM-02", "", "error", line.problem),)
                else:
                    found = tuple(by_line.get(position[id(line)], ()))
                ok = line.problem is None and not any(f.severity == "error" for f in found)
                if ok:
                    accepted.append(line)
                results.append(LineResult(line.number, ok and not whole_errors, found, *ident))
            if whole_errors:
                detail = "；".join(f.message for f in whole_errors)[:300]
                raise BatchRefused(f"整批不能导入：{detail}", results)
            if not accepted:
                raise BatchRefused("没有可以接受的行，未保存任何内容", results)
            declaration_id = self._new_id()
            stored = rules.check(
                self._context(conn, unit, now, declaration_id),
                {**base, "lines": [dict(line.values) for line in accepted]},
            )
            payload_text = _json(stored.payload)
            if len(payload_text.encode("utf-8")) > MAX_BATCH_PAYLOAD_BYTES:
                raise DeclarationError("too-large", "申报内容过大，请分成多个文件导入")
            _insert_draft(
                conn,
                declaration_id,
                unit.code,
                type.value,
                actor,
                subject=stored.subject,
                payload_text=payload_text,
                findings=stored.findings,
                now=now,
            )
            refused = len(results) - len(accepted)
            self._event(
                conn,
                declaration_id,
                actor=actor,
                now=now,
                from_status=None,
                to_status=Status.DRAFT,
                note=f"批量导入：接受{len(accepted)}行，拒绝{refused}行",
            )
            self._ok(
                conn,
                actor,
                "declare.import",
                declaration_id,
                now,
                unit=unit.code,
                details={"type": type.value, "accepted": len(accepted), "refused": refused},
            )
            return BatchResult(self._get(conn, declaration_id), tuple(results))

    def update_draft(
        self,
        conn: Connection,
        actor: Actor,
        declaration_id: str,
        payload: Mapping[str, Any],
        *,
        now: float,
    ) -> Declaration:
        with self._action(conn, actor, "declare.update", declaration_id, now):
            unit = self._employer_unit(conn, actor)
            loaded = self._load(conn, declaration_id, unit=unit.code)
            self._require(loaded, Status.DRAFT, "只有草稿可以修改")
            rules = self._rules(DeclarationType(loaded.row.type))
            checked = rules.check(self._context(conn, unit, now, declaration_id), _payload(payload))
            self._store_checked(conn, declaration_id, checked, now)
            self._ok(
                conn,
                actor,
                "declare.update",
                declaration_id,
                now,
                unit=unit.code,
                details={"type": loaded.row.type, "errors": len(checked.errors)},
            )
            return self._get(conn, declaration_id)

    def preview(
        self,
        conn: Connection,
        actor: Actor,
        type: DeclarationType,
        payload: Mapping[str, Any],
        *,
        now: float,
    ) -> tuple[Mapping[str, Any], tuple[Finding, ...]]:
        """Normalise and validate without storing: no audit event (nothing happened)."""
        unit = self._employer_unit(conn, actor)
        rules = self._rules(type)
        checked = rules.check(self._context(conn, unit, now, None), _payload(payload))
        return checked.payload, checked.findings

    def submit(
        self, conn: Connection, actor: Actor, declaration_id: str, *, now: float
    ) -> Declaration:
        with self._action(conn, actor, "declare.submit", declaration_id, now):
            unit = self._employer_unit(conn, actor)
            loaded = self._load(conn, declaration_id, unit=unit.code)
            self._require(loaded, Status.DRAFT, "只有草稿可以提交")
            rules = self._rules(DeclarationType(loaded.row.type))
            checked = rules.check(
                self._context(conn, unit, now, declaration_id), json.loads(loaded.row.payload)
            )
            missing = missing_evidence(conn, declaration_id, loaded.row.type, checked.payload)
            if checked.errors or missing:
                raise InvalidDeclaration((*checked.findings, *missing))
            self._store_checked(conn, declaration_id, checked, now)
            self._transition(
                conn,
                loaded,
                Status.PENDING_REVIEW,
                actor=actor,
                now=now,
                note="提交申报",
                submitted_at=now,
            )
            self._ok(
                conn,
                actor,
                "declare.submit",
                declaration_id,
                now,
                unit=unit.code,
                details={"type": loaded.row.type, "warnings": len(checked.findings)},
            )
            return self._get(conn, declaration_id)

    def withdraw(
        self, conn: Connection, actor: Actor, declaration_id: str, *, now: float
    ) -> Declaration:
        with self._action(conn, actor, "declare.withdraw", declaration_id, now):
            unit = self._employer_unit(conn, actor)
            loaded = self._load(conn, declaration_id, unit=unit.code)
            self._require(
                loaded,
                (Status.DRAFT, Status.PENDING_REVIEW, Status.RETURNED),
                "只有草稿、待审核或已退回的申报可以撤回（审核中的不能撤回）",
            )
            if loaded.status is Status.RETURNED and self._successor(conn, declaration_id):
                raise DeclarationError("resubmitted", "该申报已重新申报，不能撤回")
            self._transition(conn, loaded, Status.WITHDRAWN, actor=actor, now=now, note="撤回申报")
            self._ok(
                conn,
                actor,
                "declare.withdraw",
                declaration_id,
                now,
                unit=unit.code,
                details={"type": loaded.row.type, "from": loaded.status.value},
            )
            return self._get(conn, declaration_id)

    def resubmit(
        self,
        conn: Connection,
        actor: Actor,
        declaration_id: str,
        payload: Mapping[str, Any],
        *,
        now: float,
    ) -> Declaration:
        with self._action(conn, actor, "declare.resubmit", declaration_id, now):
            unit = self._employer_unit(conn, actor)
            loaded = self._load(conn, declaration_id, unit=unit.code)
            self._require(loaded, Status.RETURNED, "只有已退回的申报可以重新申报")
            if self._successor(conn, declaration_id):
                raise DeclarationError("resubmitted", "该申报已经重新申报过")
            rules = self._rules(DeclarationType(loaded.row.type))
            new_id = self._new_id()
            checked = rules.check(self._context(conn, unit, now, new_id), _payload(payload))
            version = int(loaded.row.version) + 1
            _insert_draft(
                conn,
                new_id,
                unit.code,
                loaded.row.type,
                actor,
                subject=checked.subject,
                payload_text=_json(checked.payload),
                findings=checked.findings,
                now=now,
                version=version,
                previous_id=declaration_id,
            )
            kept = evidence.carry_over(conn, declaration_id, new_id)  # issue 14, defect 8
            self._event(
                conn,
                declaration_id,
                actor=actor,
                now=now,
                from_status=Status.RETURNED,
                to_status=Status.RETURNED,
                note=f"已重新申报为第{version}版",
            )
            self._event(
                conn,
                new_id,
                actor=actor,
                now=now,
                from_status=None,
                to_status=Status.DRAFT,
                note=f"重新申报（第{version}版）" + (f"，保留附件{kept}个" if kept else ""),
            )
            self._ok(
                conn,
                actor,
                "declare.resubmit",
                new_id,
                now,
                unit=unit.code,
                details={
                    "type": loaded.row.type,
                    "previous_id": declaration_id,
                    "version": version,
                },
            )
            return self._get(conn, new_id)

    # -- evidence (issue 14, defect 8; _evidence.py) ----------------------------------

    def attach(
        self,
        conn: Connection,
        actor: Actor,
        declaration_id: str,
        *,
        label: str,
        filename: str,
        data: bytes,
        now: float,
    ) -> Attachment:
        """An uploaded file onto the unit's draft, checked by content."""
        with self._action(conn, actor, "declare.attach", declaration_id, now):
            unit = self._employer_unit(conn, actor)
            loaded = self._load(conn, declaration_id, unit=unit.code)
            self._require(loaded, Status.DRAFT, "只有草稿可以上传附件")
            assert actor.name is not None
            added = evidence.store(
                conn,
                declaration_id,
                label=label,
                filename=filename,
                data=data,
                uploaded_by=actor.name,
                session_id=actor.session_id,
                now=now,
            )
            self._event(
                conn,
                declaration_id,
                actor=actor,
                now=now,
                from_status=Status.DRAFT,
                to_status=Status.DRAFT,
                note=f"上传附件：{added.label}（{added.size}字节，SHA-256 {added.sha256[:16]}…）",
            )
            self._ok(
                conn,
                actor,
                "declare.attach",
                declaration_id,
                now,
                unit=unit.code,
                details={
                    "attachment": added.id,
                    "media_type": added.media_type,
                    "size": added.size,
                    "sha256": added.sha256,
                },
            )
            return added

    def detach(
        self, conn: Connection, actor: Actor, declaration_id: str, attachment_id: int, *, now: float
    ) -> Attachment:
        with self._action(conn, actor, "declare.detach", declaration_id, now):
            unit = self._employer_unit(conn, actor)
            loaded = self._load(conn, declaration_id, unit=unit.code)
            self._require(loaded, Status.DRAFT, "只有草稿可以删除附件")
            removed = evidence.remove(conn, declaration_id, attachment_id)
            if removed is None:
                raise NotFound("附件")
            self._event(
                conn,
                declaration_id,
                actor=actor,
                now=now,
                from_status=Status.DRAFT,
                to_status=Status.DRAFT,
                note=f"删除附件：{removed.label}",
            )
            self._ok(
                conn,
                actor,
                "declare.detach",
                declaration_id,
                now,
                unit=unit.code,
                details={"attachment": removed.id, "sha256": removed.sha256},
            )
            return removed

    def attachments(self, conn: Connection, actor: Actor, declaration_id: str) -> list[Attachment]:
        """The files of a declaration version: the unit's own, or any for staff."""
        unit_code = self._reader_scope(conn, actor)
        self._load(conn, declaration_id, unit=unit_code, lock=False)
        return evidence.attachments_of(conn, declaration_id)

    def attachment_file(
        self, conn: Connection, actor: Actor, declaration_id: str, attachment_id: int
    ) -> tuple[Attachment, bytes]:
        """One file's content; reading evidence is reading personal data: audited."""
        now = self._clock()
        with self._action(conn, actor, "declare.evidence-view", declaration_id, now) as scope:
            unit_code = self._reader_scope(conn, actor)
            loaded = self._load(conn, declaration_id, unit=unit_code, lock=False, scope=scope)
            found = evidence.content_of(conn, declaration_id, attachment_id)
            if found is None:
                raise NotFound("附件")
            self._ok(
                conn,
                actor,
                "declare.evidence-view",
                declaration_id,
                now,
                unit=loaded.row.unit_code,
                details={"attachment": attachment_id, "sha256": found[0].sha256},
            )
            return found

    # -- reads ----------------------------------------------------------------------

    def get(self, conn: Connection, actor: Actor, declaration_id: str) -> Declaration:
        """Employers: only their unit's; staff (auditor, admin, officer): any.  A view
        of a declaration is a view of personal data, so it is audited."""
        now = self._clock()
        with self._action(conn, actor, "declare.view", declaration_id, now) as scope:
            unit_code = self._reader_scope(conn, actor)
            loaded = self._load(conn, declaration_id, unit=unit_code, lock=False, scope=scope)
            self._ok(conn, actor, "declare.view", declaration_id, now, unit=loaded.row.unit_code)
            return self._get(conn, declaration_id)

    def list(
        self, conn: Connection, actor: Actor, *, status: Status | None = None, limit: int = 200
    ) -> list[Declaration]:
        """Employers: their unit's, newest first.  Staff: the review queue (pending and
        under review, oldest submission first), or every unit's in *status*.

        Listed declarations carry no ``history`` (``get`` has it); listing is not
        audited, a refused list is."""
        try:
            unit_code = self._reader_scope(conn, actor)
        except DeclarationError as refusal:
            self._refused(
                conn,
                actor,
                action="declare.list",
                subject="-",
                now=self._clock(),
                refusal=refusal,
                unit=None,
            )
            raise
        limit = max(1, min(int(limit), MAX_LIST))
        query = select(declarations)
        if unit_code is not None:
            query = query.where(declarations.c.unit_code == unit_code)
            if status is not None:
                query = query.where(declarations.c.status == status.value)
            query = query.order_by(declarations.c.created_at.desc(), declarations.c.id)
        else:
            wanted = (
                (Status.PENDING_REVIEW.value, Status.UNDER_REVIEW.value)
                if status is None
                else (status.value,)
            )
            query = query.where(declarations.c.status.in_(wanted)).order_by(
                declarations.c.submitted_at, declarations.c.created_at, declarations.c.id
            )
        rows = conn.execute(query.limit(limit)).all()
        return [_declaration(row, ()) for row in rows]

    # -- agency calls ---------------------------------------------------------------

    def claim(
        self, conn: Connection, actor: Actor, declaration_id: str, *, now: float
    ) -> Declaration:
        """Pending → under review by this auditor.  An admin may take over a declaration
        another auditor claimed (recorded in the history)."""
        with self._action(conn, actor, "declare.claim", declaration_id, now) as scope:
            self._staff(actor, REVIEW_ROLES)
            loaded = self._load(conn, declaration_id, unit=None, scope=scope)
            row = loaded.row
            if loaded.status is Status.UNDER_REVIEW and row.claimed_by != actor.name:
                if actor.role != "admin":
                    raise DeclarationError("claimed", f"该申报已由{row.claimed_by}认领审核")
                self._transition(
                    conn,
                    loaded,
                    Status.UNDER_REVIEW,
                    actor=actor,
                    now=now,
                    note=f"由{row.claimed_by}转交{actor.name}审核",
                    claimed_by=actor.name,
                    claimed_at=now,
                )
            else:
                self._require(loaded, Status.PENDING_REVIEW, "只有待审核的申报可以认领")
                self._transition(
                    conn,
                    loaded,
                    Status.UNDER_REVIEW,
                    actor=actor,
                    now=now,
                    note="认领审核",
                    claimed_by=actor.name,
                    claimed_at=now,
                )
            self._ok(
                conn,
                actor,
                "declare.claim",
                declaration_id,
                now,
                unit=row.unit_code,
                details={"type": row.type},
            )
            return self._get(conn, declaration_id)

    def approve(
        self, conn: Connection, actor: Actor, declaration_id: str, *, now: float
    ) -> Declaration:
        with self._action(conn, actor, "declare.approve", declaration_id, now) as scope:
            loaded = self._decidable(conn, actor, declaration_id, scope)
            row = loaded.row
            unit = unit_standing(conn, row.unit_code)
            assert unit is not None  # declarations.unit_code is a foreign key
            rules = self._rules(DeclarationType(row.type))
            filed = datetime.fromtimestamp(row.submitted_at, self._tz).date()
            ctx = self._context(conn, unit, now, declaration_id, filed_on=filed)
            checked = rules.check(ctx, json.loads(row.payload))
            if checked.errors:
                raise ApplyConflictError(checked.errors)
            voucher = self._voucher_number(conn, now)
            try:
                result = rules.apply(
                    RuleContext(**{**ctx.__dict__, "voucher_no": voucher}), checked
                )
            except ApplyConflict as conflict:
                raise ApplyConflictError(conflict.findings) from None
            except exc.IntegrityError:
                # A concurrent approval got there first (uq_enrolments_one_open, ...).
                raise ApplyConflictError(
                    [Finding("V-DUP-01", "", "error", "参保数据已被同时办结的其他申报改变")]
                ) from None
            try:  # the contribution plan, and 补缴/退费 of closed months (issue 14)
                adjusted = record_applied(
                    conn,
                    type=DeclarationType(row.type),
                    declaration_id=declaration_id,
                    unit_code=row.unit_code,
                    payload=checked.payload,
                    rates=self._rates,
                    now=now,
                )
            except RatesNotInForce as missing:
                raise ApplyConflictError(
                    [
                        Finding(
                            "V-RATE-01",
                            "",
                            "error",
                            f"未配置{missing.month.year}年度（{month_text(missing.month)}）"
                            "的缴费费率，请联系经办机构",
                        )
                    ]
                ) from None
            if adjusted:
                result = {**result, "adjustments": adjusted}
            conn.execute(
                insert(vouchers).values(
                    number=voucher,
                    declaration_id=declaration_id,
                    unit_code=row.unit_code,
                    issued_at=now,
                    issued_by=actor.name,
                )
            )
            self._transition(
                conn,
                loaded,
                Status.APPLIED,
                actor=actor,
                now=now,
                note=f"审核通过，已办结，凭证号{voucher}",
                decided_by=actor.name,
                decided_at=now,
                voucher_no=voucher,
                result=_json(result),
            )
            self._ok(
                conn,
                actor,
                "declare.approve",
                declaration_id,
                now,
                unit=row.unit_code,
                details={"type": row.type},
            )
            self._ok(
                conn,
                actor,
                "declare.apply",
                declaration_id,
                now,
                unit=row.unit_code,
                details={"type": row.type, "voucher": voucher, **_scalars(result)},
            )
            return self._get(conn, declaration_id)

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
        with self._action(conn, actor, "declare.return", declaration_id, now) as scope:
            label = RETURN_REASONS.get(code) if isinstance(code, str) else None
            if label is None:
                raise DeclarationError(
                    "bad-reason", "退回原因代码应为R01至R13或R99（见退回原因目录）"
                )
            text = text.strip() if isinstance(text, str) else ""
            if _CONTROL.search(text) or len(text) > MAX_RETURN_TEXT:
                raise DeclarationError(
                    "bad-reason", f"退回说明不能超过{MAX_RETURN_TEXT}个字符，且不能含控制字符"
                )
            if code == "R99" and not text:
                raise DeclarationError("bad-reason", "退回原因为“其他”（R99）时必须填写说明")
            loaded = self._decidable(conn, actor, declaration_id, scope)
            self._transition(
                conn,
                loaded,
                Status.RETURNED,
                actor=actor,
                now=now,
                note=f"退回：{code} {label}" + (f"。{text}" if text else ""),
                decided_by=actor.name,
                decided_at=now,
                return_code=code,
                return_text=text or None,
            )
            self._ok(
                conn,
                actor,
                "declare.return",
                declaration_id,
                now,
                unit=loaded.row.unit_code,
                reason=code,
                details={"type": loaded.row.type},
            )
            return self._get(conn, declaration_id)

    # -- steps ----------------------------------------------------------------------

    @contextmanager
    def _action(
        self, conn: Connection, actor: Actor, action: str, subject: str, now: float
    ) -> Iterator[_Scope]:
        """The call's writes in a savepoint; a refusal rolls them back and is audited."""
        scope = _Scope()
        savepoint = conn.begin_nested()
        try:
            yield scope
        except DeclarationError as refusal:
            savepoint.rollback()
            unit = scope.unit
            if unit is None and actor.kind != "employer" and _ID.fullmatch(subject):
                # Refused before loading (a role problem): still file it under its unit.
                unit = conn.execute(
                    select(declarations.c.unit_code).where(declarations.c.id == subject)
                ).scalar()
            self._refused(
                conn,
                actor,
                action=action,
                subject=subject,
                now=now,
                refusal=refusal,
                unit=unit,
            )
            raise
        except BaseException:
            savepoint.rollback()
            raise
        else:
            savepoint.commit()

    def _employer_unit(self, conn: Connection, actor: Actor) -> UnitStanding:
        if actor.kind != "employer" or not actor.unit_code or not actor.name:
            raise DeclarationError("forbidden", "只有参保单位可以办理申报")
        unit = unit_standing(conn, actor.unit_code)
        if unit is None:
            raise DeclarationError("unit-unknown", "单位未登记网上申报业务")
        return unit

    def _staff(self, actor: Actor, roles: frozenset[str]) -> None:
        if actor.kind != "staff" or not actor.name or actor.role not in roles:
            raise DeclarationError("forbidden", "无权执行该操作")

    def _reader_scope(self, conn: Connection, actor: Actor) -> str | None:
        """The unit an actor may read (``None``: all units, for agency staff)."""
        if actor.kind == "employer":
            return self._employer_unit(conn, actor).code
        self._staff(actor, READ_ROLES)
        return None

    def _rules(self, type: object) -> TypeRules:
        if not isinstance(type, DeclarationType):
            raise DeclarationError("bad-type", "申报业务类型不正确")
        return rules_for(type)

    def _context(
        self,
        conn: Connection,
        unit: UnitStanding,
        now: float,
        declaration_id: str | None,
        *,
        filed_on: date | None = None,
    ) -> RuleContext:
        today = datetime.fromtimestamp(now, self._tz).date()
        return RuleContext(
            conn=conn,
            unit=unit,
            filed_on=filed_on or today,
            today=today,
            now=now,
            rates=self._rates,
            settings=self._settings,
            declaration_id=declaration_id,
        )

    def _load(
        self,
        conn: Connection,
        declaration_id: str,
        *,
        unit: str | None,
        lock: bool = True,
        scope: _Scope | None = None,
    ) -> _Loaded:
        if not isinstance(declaration_id, str) or not _ID.fullmatch(declaration_id):
            raise NotFound()
        query = select(declarations).where(declarations.c.id == declaration_id)
        if unit is not None:
            query = query.where(declarations.c.unit_code == unit)
        if lock and conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            raise NotFound()
        if scope is not None:  # staff refusals are audited under the declaration's unit
            scope.unit = row.unit_code
        return _Loaded(row)

    def _require(self, loaded: _Loaded, wanted: Status | tuple[Status, ...], message: str) -> None:
        allowed = wanted if isinstance(wanted, tuple) else (wanted,)
        if loaded.status not in allowed:
            raise DeclarationError(
                "wrong-status", f"{message}（当前状态：{loaded.status.chinese}）"
            )

    def _decidable(
        self, conn: Connection, actor: Actor, declaration_id: str, scope: _Scope
    ) -> _Loaded:
        self._staff(actor, REVIEW_ROLES)
        loaded = self._load(conn, declaration_id, unit=None, scope=scope)
        self._require(loaded, Status.UNDER_REVIEW, "请先认领，审核中的申报才能审批")
        if loaded.row.claimed_by != actor.name:
            raise DeclarationError(
                "not-claimer", f"该申报由{loaded.row.claimed_by}认领，只有认领人可以审批"
            )
        return loaded

    def _successor(self, conn: Connection, declaration_id: str) -> bool:
        found = conn.execute(
            select(declarations.c.id).where(declarations.c.previous_id == declaration_id)
        ).first()
        return found is not None

    def _store_checked(
        self, conn: Connection, declaration_id: str, checked: Checked, now: float
    ) -> None:
        conn.execute(
            update(declarations)
            .where(declarations.c.id == declaration_id)
            .values(
                payload=_json(checked.payload),
                findings=_findings_json(checked.findings),
                subject=checked.subject,
                updated_at=now,
            )
        )

    def _transition(
        self,
        conn: Connection,
        loaded: _Loaded,
        to: Status,
        *,
        actor: Actor,
        now: float,
        note: str,
        **values: Any,
    ) -> None:
        done = conn.execute(
            update(declarations)
            .where(
                declarations.c.id == loaded.row.id,
                declarations.c.status == loaded.row.status,
            )
            .values(status=to.value, updated_at=now, **values)
        )
        if done.rowcount != 1:  # pragma: no cover - the row is locked (PG) or the db is (SQLite)
            raise DeclarationError("wrong-status", "申报状态已被其他操作改变，请刷新后重试")
        self._event(
            conn,
            loaded.row.id,
            actor=actor,
            now=now,
            from_status=loaded.status,
            to_status=to,
            note=note,
        )

    def _event(
        self,
        conn: Connection,
        declaration_id: str,
        *,
        actor: Actor,
        now: float,
        from_status: Status | None,
        to_status: Status,
        note: str,
    ) -> None:
        conn.execute(
            insert(declaration_events).values(
                declaration_id=declaration_id,
                at=now,
                actor_kind=actor.kind,
                actor_name=actor.name,
                session_id=actor.session_id if actor.kind == "employer" else None,
                from_status=None if from_status is None else from_status.value,
                to_status=to_status.value,
                note=note[:1000],
            )
        )

    def _voucher_number(self, conn: Connection, now: float) -> str:
        day = datetime.fromtimestamp(now, self._tz).strftime("%Y%m%d")
        sequence = next_number(conn, f"voucher:{day}")
        if sequence > 999_999:
            raise DeclarationError("voucher-exhausted", "当日凭证号已用完，请次日再办理")
        return f"SB{day}{sequence:06d}"

    def _get(self, conn: Connection, declaration_id: str) -> Declaration:
        row = conn.execute(select(declarations).where(declarations.c.id == declaration_id)).one()
        return _declaration(row, _history(conn, row))

    # -- audit ----------------------------------------------------------------------

    def _ok(
        self,
        conn: Connection,
        actor: Actor,
        action: str,
        subject: str,
        now: float,
        *,
        unit: str,
        reason: str = "",
        details: Mapping[str, audit.DetailValue] | None = None,
    ) -> None:
        self._append(
            conn,
            actor,
            action,
            subject,
            now,
            outcome="ok",
            reason=reason,
            unit=unit,
            details=details,
        )

    def _refused(
        self,
        conn: Connection,
        actor: Actor,
        *,
        action: str,
        subject: str,
        now: float,
        refusal: DeclarationError,
        unit: str | None,
    ) -> None:
        self._append(
            conn,
            actor,
            action,
            subject,
            now,
            outcome="refused",
            reason=f"{refusal.code}: {refusal.message}",
            unit=actor.unit_code if actor.kind == "employer" else unit,
            details=_refusal_details(refusal),
        )

    def _append(
        self,
        conn: Connection,
        actor: Actor,
        action: str,
        subject: str,
        now: float,
        *,
        outcome: str,
        reason: str,
        unit: str | None,
        details: Mapping[str, audit.DetailValue] | None,
    ) -> None:
        audit.append(
            conn,
            audit.AuditEvent(
                at=now,
                actor=_audit_actor(actor),
                action=action,
                subject=_bounded(subject, 255) or "-",
                outcome=outcome,
                reason=_bounded(reason, 1000),
                unit=_bounded(unit or "", 64),
                session_id=_bounded(
                    (actor.session_id or "") if actor.kind == "employer" else "", 128
                ),
                details=dict(details or {}),
            ),
        )


if TYPE_CHECKING:

    def _conforms(workflow: Declarations) -> DeclarationWorkflow:
        return workflow  # mypy checks Declarations against the Protocol here


def run_recording_refusals(engine: Engine, call: Callable[[Connection], _T]) -> _T:
    """``call(conn)`` in its own transaction, committed even when it raises
    :class:`DeclarationError` (so the refusal's audit event is kept), then re-raised."""
    refusal: DeclarationError | None = None
    with engine.begin() as conn:
        try:
            return call(conn)
        except DeclarationError as e:
            refusal = e
    assert refusal is not None
    raise refusal


# -- rows to values -----------------------------------------------------------------


def _declaration(row: Any, history: tuple[Mapping[str, Any], ...]) -> Declaration:
    return Declaration(
        id=row.id,
        unit_code=row.unit_code,
        type=DeclarationType(row.type),
        status=Status(row.status),
        version=int(row.version),
        previous_id=row.previous_id,
        payload=json.loads(row.payload),
        findings=tuple(Finding(**f) for f in json.loads(row.findings)),
        created_at=float(row.created_at),
        created_session=row.created_session,
        submitted_at=row.submitted_at,
        claimed_by=row.claimed_by,
        decided_by=row.decided_by,
        decided_at=row.decided_at,
        return_code=row.return_code,
        return_text=row.return_text,
        voucher_no=row.voucher_no,
        history=history,
        result=json.loads(row.result) if row.result else {},
    )


def _history(conn: Connection, row: Any) -> tuple[Mapping[str, Any], ...]:
    """Transitions of this declaration and every earlier version, oldest first."""
    chain = [(row.id, int(row.version))]
    previous = row.previous_id
    while previous is not None and len(chain) < MAX_VERSIONS:
        earlier = conn.execute(
            select(declarations.c.id, declarations.c.version, declarations.c.previous_id).where(
                declarations.c.id == previous
            )
        ).one()
        chain.append((earlier.id, int(earlier.version)))
        previous = earlier.previous_id
    versions = dict(chain)
    events = conn.execute(
        select(declaration_events)
        .where(declaration_events.c.declaration_id.in_(list(versions)))
        .order_by(declaration_events.c.id)
    ).all()
    return tuple(
        {
            "at": float(e.at),
            "declaration_id": e.declaration_id,
            "version": versions[e.declaration_id],
            "actor_kind": e.actor_kind,
            "actor": e.actor_name,
            "session_id": e.session_id,
            "from": e.from_status,
            "to": e.to_status,
            "note": e.note,
        }
        for e in events
    )


def _payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-shaped copy of *payload*, bounded in size; refuses anything else."""
    if not isinstance(payload, Mapping) or not all(isinstance(k, str) for k in payload):
        raise DeclarationError("bad-payload", "申报内容格式不正确")
    try:
        text = json.dumps(dict(payload), ensure_ascii=False, allow_nan=False)
        size = len(text.encode("utf-8"))  # a lone surrogate cannot be stored: refused here
    except (TypeError, ValueError, RecursionError):  # UnicodeEncodeError is a ValueError
        raise DeclarationError("bad-payload", "申报内容格式不正确") from None
    if size > MAX_PAYLOAD_BYTES:
        raise DeclarationError("too-large", "申报内容过大")
    copied = json.loads(text)
    assert isinstance(copied, dict)
    return copied


def _insert_draft(
    conn: Connection,
    declaration_id: str,
    unit_code: str,
    type_slug: str,
    actor: Actor,
    *,
    subject: str | None,
    payload_text: str,
    findings: Sequence[Finding],
    now: float,
    version: int = 1,
    previous_id: str | None = None,
) -> None:
    """A new draft row: created, imported, or a resubmission's next version."""
    conn.execute(
        insert(declarations).values(
            id=declaration_id,
            unit_code=unit_code,
            type=type_slug,
            status=Status.DRAFT.value,
            version=version,
            previous_id=previous_id,
            subject=subject,
            payload=payload_text,
            findings=_findings_json(findings),
            created_at=now,
            created_by=actor.name,
            created_session=actor.session_id,
            updated_at=now,
        )
    )


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _findings_json(findings: Sequence[Finding]) -> str:
    return _json(
        [
            {"rule": f.rule, "field": f.field, "severity": f.severity, "message": f.message}
            for f in findings
        ]
    )


def _scalars(result: Mapping[str, Any]) -> dict[str, audit.DetailValue]:
    return {
        k: v
        for k, v in result.items()
        if isinstance(v, str | int | float | bool) and (not isinstance(v, str) or len(v) < 200)
    }


def _refusal_details(refusal: DeclarationError) -> dict[str, audit.DetailValue]:
    findings = getattr(refusal, "findings", ())
    if isinstance(refusal, BatchRefused):
        return {"code": refusal.code, "lines": len(refusal.lines)}
    rules = sorted({f.rule for f in findings if f.severity == "error"})
    return (
        {"code": refusal.code, "rules": ",".join(rules)[:500]} if rules else {"code": refusal.code}
    )


def _audit_actor(actor: Actor) -> str:
    prefix = "channel" if actor.kind == "employer" else "staff" if actor.kind == "staff" else "?"
    return _bounded(f"{prefix}:{actor.name or '?'}", 255)


def _bounded(text: str, limit: int) -> str:
    """Fit *text* into an audit field: no NUL, valid UTF-8, at most *limit* characters."""
    clean = text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    return clean[:limit]


def missing_evidence(
    conn: Connection, declaration_id: str, type_value: str, payload: Mapping[str, Any]
) -> tuple[Finding, ...]:
    """V-RED-01 (DOMAIN §6): a 人员减少 whose reason needs evidence (解除劳动合同证明,
    退休审批表, 死亡证明) is submitted only with a file uploaded onto the draft; a typed
    description is not evidence (issue 14, defect 8)."""
    if type_value != DeclarationType.PERSON_REDUCE.value:
        return ()
    needed = REDUCE_EVIDENCE.get(str(payload.get("reason", "")))
    if needed is None or evidence.attachments_of(conn, declaration_id):
        return ()
    return (
        Finding(
            "V-RED-01",
            "evidence",
            "error",
            f"减员原因须上传{needed}（PDF、JPEG 或 PNG），请在草稿页上传后再提交",
        ),
    )
