"""What every type's rules receive and return."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

from sqlalchemy import Connection

from declare_app._contributions import RateTable
from declare_app._rules._master import UnitStanding
from declare_app._rules._spec import FormSpec
from declare_app.interfaces import DeclarationType, Finding


@dataclass(frozen=True)
class RuleSettings:
    """Local practice DOMAIN §10 asks to configure rather than hard-code."""

    # V-DATE-01: how far back a start/stop month may lie (Xianyang's online limit is
    # 3 months; DOMAIN §10 item 7: verify for Shaoxing) and how far ahead.
    backdate_months: int = 3
    forward_months: int = 1
    registration_days: int = 30  # V-DATE-02, 社会保险法 art. 58
    unit_change_days: int = 30  # V-DATE-03, art. 57
    injury_report_days: int = 30  # V-INJ-02, 工伤保险条例 art. 17
    injury_warn_days: int = 7  # warn at T-7
    reappraisal_days: int = 15  # V-APP-01, art. 26
    max_lines: int = 10_000  # 年度缴费基数申报 lines in one declaration (typed or uploaded)
    max_batch_lines: int = 10_000  # 人员增加 lines in one batch declaration (uploaded)
    # V-WIN-01: the monthly acceptance window (first day, last day), e.g. (5, 25) as in
    # Chengdu and Zhuzhou; None: no window (the default until Shaoxing's is verified).
    submission_window: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        window = self.submission_window
        if window is not None and not 1 <= window[0] <= window[1] <= 31:
            raise ValueError(
                "submission_window must be (first, last) with 1 <= first <= last <= 31"
            )


@dataclass(frozen=True)
class RuleContext:
    """One evaluation: the unit, the day the declaration counts as filed, the clock.

    ``filed_on`` bounds the date rules (V-DATE-*, V-INJ-02, V-APP-01): today for a draft
    or a submission, the submission day when an auditor approves later, so a
    declaration filed in time stays in time.  ``declaration_id`` is the declaration
    being checked, left out of V-DUP-03.
    """

    conn: Connection
    unit: UnitStanding
    filed_on: date
    today: date
    now: float
    rates: RateTable
    settings: RuleSettings = field(default_factory=RuleSettings)
    declaration_id: str | None = None
    voucher_no: str | None = None  # set while applying


@dataclass(frozen=True)
class Checked:
    """The normalised payload, its findings, and what it is about (for V-DUP-03)."""

    payload: dict[str, Any]
    findings: tuple[Finding, ...]
    subject: str | None = None

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "error")


class ApplyConflict(Exception):
    """Applying found master data in a state that forbids it (changes nothing)."""

    def __init__(self, findings: Sequence[Finding]) -> None:
        super().__init__("; ".join(f"{f.rule}: {f.message}" for f in findings))
        self.findings = tuple(findings)


class TypeRules(Protocol):
    """The rules of one declaration type."""

    type: DeclarationType
    spec: FormSpec  # the form: what check reads, what the pages and the API show

    def check(self, ctx: RuleContext, payload: Mapping[str, Any]) -> Checked:
        """Normalise and validate (DOMAIN §6); reads master data, writes nothing."""
        ...

    def apply(self, ctx: RuleContext, checked: Checked) -> dict[str, Any]:
        """Write *checked* (free of errors) to master data; return what it did."""
        ...
