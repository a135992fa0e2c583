"""V-DATE-04: a 参保开始月 after the hire month is warned about, naming the months left
undeclared, since the employer owes contributions from hiring (社会保险法 Arts. 58,
60; issue 14, defect 6).  Pure: :func:`late_start_findings` over a FormReader."""

from __future__ import annotations

from declare_app._retirement import YearMonth
from declare_app._rules._forms import FormReader
from declare_app._rules._person_add import late_start_findings
from declare_app.interfaces import Finding


def _late(hire: YearMonth, start: YearMonth) -> list[Finding]:
    reader = FormReader({}, ())
    late_start_findings(reader, hire=hire, start=start)
    return reader.findings


def test_a_start_three_months_after_hiring_names_the_three_undeclared_months() -> None:
    """Hired 2025-01, declared from 2025-04: 2025-01 to 2025-03 are owed (Arts. 58, 60)."""
    findings = _late(YearMonth(2025, 1), YearMonth(2025, 4))
    assert [(f.rule, f.field, f.severity) for f in findings] == [
        ("V-DATE-04", "start_month", "warning")
    ]
    assert "2025-01至2025-03共3个月" in findings[0].message
    assert "第五十八条、第六十条" in findings[0].message


def test_one_undeclared_month_is_named_alone_across_a_year_end() -> None:
    findings = _late(YearMonth(2024, 12), YearMonth(2025, 1))
    assert "2024-12共1个月" in findings[0].message


def test_a_start_in_the_hire_month_is_not_warned_about() -> None:
    assert _late(YearMonth(2025, 3), YearMonth(2025, 3)) == []
