"""A legacy 15-digit ID number (GB 11643-1989) is upgraded with the V-ID-01 warning
wherever a form names a person, not only on 人员增加 (DOMAIN §1.1, R02; issue 14,
defect 5).  Pure: :func:`upgraded_id_number` over a :class:`FormReader`."""

from __future__ import annotations

from declare_app import upgrade_legacy_id
from declare_app._rules._common import upgraded_id_number
from declare_app._rules._forms import FormReader

LEGACY = "330682900115123"  # born 1990-01-15


def test_a_15_digit_number_is_upgraded_with_a_warning() -> None:
    reader = FormReader({}, ())
    assert upgraded_id_number(reader, "id_number", LEGACY) == upgrade_legacy_id(LEGACY)
    assert upgrade_legacy_id(LEGACY).startswith("33068219900115123")
    assert [(f.rule, f.field, f.severity) for f in reader.findings] == [
        ("V-ID-01", "id_number", "warning")
    ]
    assert LEGACY not in reader.findings[0].message  # no personal data in messages


def test_other_numbers_are_only_tidied_and_never_upgraded() -> None:
    """Spaces go and ``x`` becomes ``X``; 15 characters that are not all digits stay as
    typed for the length check to refuse."""
    reader = FormReader({}, ())
    assert upgraded_id_number(reader, "id_number", "11010519491231002x") == "11010519491231002X"
    assert upgraded_id_number(reader, "id_number", "110105 19491231 002X") == "11010519491231002X"
    assert upgraded_id_number(reader, "id_number", "33068290011512X") == "33068290011512X"
    assert reader.findings == []
