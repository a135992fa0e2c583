"""V-WIN-01, the monthly acceptance window (DOMAIN §6; Chengdu and Zhuzhou forms: 5th to
25th, later filings roll to the next month), configurable and off by default; and the
社会保障卡号 the 工伤 forms carry (DOMAIN §5.6: 社会保险号) — issue 14, defect 8."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import Engine

import declare_app
from declare_app._declarations import CHINA_TIME, Declarations
from declare_app._rules import RuleSettings
from declare_app.interfaces import Actor, DeclarationType

LATE_IN_MONTH = datetime(2025, 3, 27, 10, 0, tzinfo=CHINA_TIME).timestamp()
MID_MONTH = datetime(2025, 3, 10, 10, 0, tzinfo=CHINA_TIME).timestamp()
FORM = {"field": "postcode", "new_value": "312300", "effective_date": "2025-03-01"}


def window_findings(db: Engine, wf: Declarations, actor: Actor, now: float) -> list[str]:
    with db.begin() as conn:
        _, findings = wf.preview(conn, actor, DeclarationType.UNIT_CHANGE, FORM, now=now)
    return [f.message for f in findings if f.rule == "V-WIN-01"]


def test_no_window_is_checked_unless_configured(
    decl_db: Engine, workflow: Declarations, employer_a: Actor
) -> None:
    assert window_findings(decl_db, workflow, employer_a, LATE_IN_MONTH) == []


def test_a_filing_outside_the_window_is_accepted_with_a_warning(
    decl_db: Engine, employer_a: Actor
) -> None:
    wf = Declarations(
        declare_app.demo_rate_table(), settings=RuleSettings(submission_window=(5, 25))
    )
    assert window_findings(decl_db, wf, employer_a, MID_MONTH) == []
    (message,) = window_findings(decl_db, wf, employer_a, LATE_IN_MONTH)
    assert "5日至25日" in message and "下月" in message
    with pytest.raises(ValueError):
        RuleSettings(submission_window=(26, 5))


def test_the_card_number_is_optional_and_checked(
    decl_db: Engine, workflow: Declarations, employer_a: Actor
) -> None:
    def card(value: str) -> tuple[object, set[str]]:
        with decl_db.begin() as conn:
            out, findings = workflow.preview(
                conn,
                employer_a,
                DeclarationType.INJURY_ACCIDENT,
                {"ss_card_no": value},
                now=MID_MONTH,
            )
        return out.get("ss_card_no"), {f.rule for f in findings if f.field == "ss_card_no"}

    assert card("") == (None, set())
    assert card("ａ１２３４５６７８") == ("A12345678", set())  # full-width, lower case
    assert card("12-34")[1] == {"V-FORM-02"}
