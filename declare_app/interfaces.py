"""Where the declaration service's parts meet: the declaration workflow, seen by the web.

The workflow (``declare_app/_declarations.py``) implements :class:`DeclarationWorkflow`
as blocking functions on a SQLAlchemy ``Connection``; the employer web application
and the staff console call them through a runner's thread pool, never on the reactor.
In-memory fakes for fast web tests implement the same Protocol and are checked
against it.

Isolation is structural: every employer call takes an :class:`Actor` whose
``unit_code`` came from the gateway's signed identity header, and the workflow scopes
every read and write to that unit.  A declaration id of another unit reads as
"not found" (never "forbidden": that would confirm it exists).

DOMAIN.md §5 (forms), §6 (validation rules V-*) and §7 (states, reason codes R01-R99)
are the rules.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import Connection


class DeclarationType(enum.Enum):
    """The declaration types of the manual; value = the slug in URLs, API and storage."""

    UNIT_CHANGE = "unit-change"  # 单位基本信息变更 (DOMAIN §5.1)
    PERSON_ADD = "person-add"  # 人员增加, types A-D (§5.2)
    INSURANCE_ADD = "insurance-add"  # 人员险种增加 (§5.3)
    INSURANCE_REDUCE = "insurance-reduce"  # 人员险种减少 (§5.3)
    PERSON_REDUCE = "person-reduce"  # 人员减少, reason codes (§5.4)
    ANNUAL_BASE = "annual-base"  # 年度缴费基数申报, batch, clamped (§5.5)
    INJURY_ACCIDENT = "injury-accident"  # 工伤事故申报, 30-day flag (§5.6)
    INJURY_APPRAISAL = "injury-appraisal"  # 工伤鉴定 (§5.7)

    @property
    def chinese(self) -> str:
        return _CHINESE[self]


_CHINESE = {
    DeclarationType.UNIT_CHANGE: "单位基本信息变更",
    DeclarationType.PERSON_ADD: "人员增加",
    DeclarationType.INSURANCE_ADD: "人员险种增加",
    DeclarationType.INSURANCE_REDUCE: "人员险种减少",
    DeclarationType.PERSON_REDUCE: "人员减少",
    DeclarationType.ANNUAL_BASE: "年度缴费基数申报",
    DeclarationType.INJURY_ACCIDENT: "工伤事故申报",
    DeclarationType.INJURY_APPRAISAL: "工伤鉴定",
}


class Status(enum.Enum):
    """DOMAIN §7 states; value = storage and API form."""

    DRAFT = "draft"  # 草稿
    PENDING_REVIEW = "pending-review"  # 待审核 (submitted, automatic checks passed)
    UNDER_REVIEW = "under-review"  # 审核中 (an auditor claimed it)
    RETURNED = "returned"  # 已退回 (reason code + text, the employer sees both)
    WITHDRAWN = "withdrawn"  # 已撤回
    APPLIED = "applied"  # 已办结 (approved and applied to master data, voucher issued)

    @property
    def chinese(self) -> str:
        return {
            Status.DRAFT: "草稿",
            Status.PENDING_REVIEW: "待审核",
            Status.UNDER_REVIEW: "审核中",
            Status.RETURNED: "已退回",
            Status.WITHDRAWN: "已撤回",
            Status.APPLIED: "已办结",
        }[self]


@dataclass(frozen=True)
class Actor:
    """Who acts.  Employers: ``kind="employer"``, unit and session from the gateway.
    Agency staff: ``kind="staff"``, staff name and role from the console login."""

    kind: str  # "employer" | "staff"
    name: str  # channel account or staff name
    unit_code: str | None = None  # employers only
    session_id: str | None = None  # employers only: the gateway session
    role: str | None = None  # staff only: carrier | auditor | officer | admin


@dataclass(frozen=True)
class Finding:
    """One validation result for a form field (``field`` = form field name, or ``""``
    for the whole form); ``message`` is Chinese, shown next to the field."""

    rule: str  # DOMAIN §6 id, e.g. "V-ID-03", "V-BASE-01"
    field: str
    severity: str  # "error" blocks submit; "warning" is shown but does not block
    message: str


@dataclass(frozen=True)
class Declaration:
    id: str  # opaque, unguessable (>= 64 random bits)
    unit_code: str
    type: DeclarationType
    status: Status
    version: int  # 1, then +1 per resubmission
    previous_id: str | None  # the returned version this one resubmits
    payload: Mapping[str, Any]  # the form's values as submitted (normalised)
    findings: tuple[Finding, ...]
    created_at: float
    created_session: str | None
    submitted_at: float | None = None
    claimed_by: str | None = None
    decided_by: str | None = None
    decided_at: float | None = None
    return_code: str | None = None  # R01-R99 (DOMAIN §7)
    return_text: str | None = None
    voucher_no: str | None = None  # 办理凭证 number, unique, once applied
    history: tuple[Mapping[str, Any], ...] = field(default=())  # transitions, oldest first
    # What applying it did (e.g. {"person_number": ...} for a new person); {} before.
    result: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchLine:
    """One line of an uploaded batch file: its number in the file, its cells by form
    field name (text), and why it was refused before validation, if it was."""

    number: int
    values: Mapping[str, str]
    problem: str | None = None


@dataclass(frozen=True)
class LineResult:
    """What became of one batch line: accepted into the draft, or refused (never
    stored); ``findings`` are the line's errors (refused) or warnings (accepted)."""

    number: int  # as in the file
    accepted: bool
    findings: tuple[Finding, ...]
    id_number: str = ""  # as given, to recognise the line
    name: str = ""


@dataclass(frozen=True)
class BatchResult:
    """A batch import: the one draft holding every accepted line, and every line's
    result in file order."""

    declaration: Declaration
    lines: tuple[LineResult, ...]

    @property
    def accepted(self) -> int:
        return sum(1 for r in self.lines if r.accepted)

    @property
    def refused(self) -> int:
        return len(self.lines) - self.accepted


class DeclarationError(Exception):
    """A refused workflow action; ``code`` is stable (for the API), ``message`` Chinese."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class NotFound(DeclarationError):
    def __init__(self, what: str = "申报") -> None:
        super().__init__("not-found", f"{what}不存在")


class InvalidDeclaration(DeclarationError):
    """Submit refused: the findings say which fields and why."""

    def __init__(self, findings: Sequence[Finding]) -> None:
        super().__init__("invalid", "申报内容有误，请按提示修改")
        self.findings = tuple(findings)


class BatchRefused(DeclarationError):
    """A batch import with no acceptable line (or a whole-batch error): nothing stored;
    ``lines`` says why for each line."""

    def __init__(self, message: str, lines: Sequence[LineResult]) -> None:
        super().__init__("batch-refused", message)
        self.lines = tuple(lines)


class DeclarationWorkflow(Protocol):
    """Blocking workflow calls; each runs inside the caller's transaction (*conn*).

    A refused call raises :class:`DeclarationError` after undoing its own writes (to a
    savepoint) and appending its ``refused`` audit event to *conn*: commit *conn* even
    then, or the refusal goes unrecorded.
    """

    def create_draft(
        self,
        conn: Connection,
        actor: Actor,
        type: DeclarationType,
        payload: Mapping[str, Any],
        *,
        now: float,
    ) -> Declaration:
        """Store a draft (findings computed; errors allowed in a draft)."""
        ...

    def update_draft(
        self,
        conn: Connection,
        actor: Actor,
        declaration_id: str,
        payload: Mapping[str, Any],
        *,
        now: float,
    ) -> Declaration: ...

    def preview(
        self,
        conn: Connection,
        actor: Actor,
        type: DeclarationType,
        payload: Mapping[str, Any],
        *,
        now: float,
    ) -> tuple[Mapping[str, Any], tuple[Finding, ...]]:
        """Normalise and validate without storing: what submit would record."""
        ...

    def submit(
        self, conn: Connection, actor: Actor, declaration_id: str, *, now: float
    ) -> Declaration:
        """Draft → pending-review; raises :class:`InvalidDeclaration` on any error finding."""
        ...

    def withdraw(
        self, conn: Connection, actor: Actor, declaration_id: str, *, now: float
    ) -> Declaration: ...

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
        """A batch file's lines (person-add, annual-base) → ONE draft holding every line
        without an error finding, plus *common* (annual-base: ``{"year": ...}``); the
        refused lines are in the result only.  No acceptable line: raises
        :class:`BatchRefused` (nothing stored)."""
        ...

    def resubmit(
        self,
        conn: Connection,
        actor: Actor,
        declaration_id: str,
        payload: Mapping[str, Any],
        *,
        now: float,
    ) -> Declaration:
        """A returned declaration → a new draft version linked to it (history kept)."""
        ...

    def get(self, conn: Connection, actor: Actor, declaration_id: str) -> Declaration:
        """Employers: only their unit's (else :class:`NotFound`); staff: any."""
        ...

    def list(
        self, conn: Connection, actor: Actor, *, status: Status | None = None, limit: int = 200
    ) -> list[Declaration]:
        """Employers: their unit's, newest first; staff (auditor): the review queue."""
        ...

    def claim(
        self, conn: Connection, actor: Actor, declaration_id: str, *, now: float
    ) -> Declaration: ...

    def approve(
        self, conn: Connection, actor: Actor, declaration_id: str, *, now: float
    ) -> Declaration:
        """Under-review → applied in one transaction: re-check conflicts, apply to master
        data, issue the voucher.  A conflict raises :class:`DeclarationError` and changes
        nothing."""
        ...

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
        """Under-review → returned with a reason code R01-R99 and text (R99 needs text)."""
        ...


@dataclass(frozen=True)
class Attachment:
    """One uploaded evidence file of a declaration version (DOMAIN §5, V-RED-01,
    工伤保险条例 Art. 18).  ``media_type`` comes from the content, never the client;
    ``filename`` is what the client sent, shown only.  ``carried_from``: the
    attachment of the earlier version a resubmission kept."""

    id: int
    declaration_id: str
    label: str
    filename: str
    media_type: str
    size: int
    sha256: str
    uploaded_at: float
    uploaded_by: str
    carried_from: int | None = None

    @property
    def extension(self) -> str:
        return {"application/pdf": "pdf", "image/jpeg": "jpg", "image/png": "png"}.get(
            self.media_type, "bin"
        )


@runtime_checkable
class EvidenceWorkflow(Protocol):
    """The evidence calls of a workflow (:class:`declare_app.Declarations` has them);
    the pages offer uploads only when their workflow is one.  Same transaction and
    refusal contract as :class:`DeclarationWorkflow`."""

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
        """A file onto the unit's draft; refused unless PDF/JPEG/PNG by content."""
        ...

    def detach(
        self, conn: Connection, actor: Actor, declaration_id: str, attachment_id: int, *, now: float
    ) -> Attachment: ...

    def attachments(
        self, conn: Connection, actor: Actor, declaration_id: str
    ) -> list[Attachment]: ...

    def attachment_file(
        self, conn: Connection, actor: Actor, declaration_id: str, attachment_id: int
    ) -> tuple[Attachment, bytes]: ...
