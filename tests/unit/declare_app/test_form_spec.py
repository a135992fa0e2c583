"""The declaration forms' one spec (declare_app._rules._spec): a malformed spec fails
when it is built, and every type's rules carry the form the pages list."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from declare_app._rules import DERIVED_LABELS, FORM_SPECS, RULES, form_fields
from declare_app._rules._spec import Choice, FieldKind, FieldSpec, FormSpec, Section, computed
from declare_app.interfaces import DeclarationType

_CHOICE = (Choice("1", "一"),)
_COLUMN = (FieldSpec("a", "甲"),)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: FieldSpec("x", "X", choices=_CHOICE), "choices"),
        (lambda: FieldSpec("x", "X", FieldKind.SELECT), "choices"),
        (lambda: FieldSpec("x", "X", columns=_COLUMN), "columns"),
        (lambda: FieldSpec("x", "X", FieldKind.LINES), "columns"),
        (lambda: FieldSpec("x", "X", computed=(computed("b", "乙"),)), "computed"),
        (lambda: FieldSpec("x", "X", FieldKind.LINES, columns=_COLUMN * 2), "twice"),
        (
            lambda: FormSpec(
                DeclarationType.UNIT_CHANGE, "", (Section("s", _COLUMN),), computed=_COLUMN
            ),
            "twice",
        ),
        (
            lambda: FormSpec(
                DeclarationType.UNIT_CHANGE,
                "",
                (Section("s", _COLUMN),),
                computed=(FieldSpec("b", "乙"),),
            ),
            "input field b",
        ),
        (
            lambda: FormSpec(
                DeclarationType.UNIT_CHANGE, "", (Section("s", (computed("b", "乙"),)),)
            ),
            "computed field b",
        ),
    ],
)
def test_a_malformed_spec_fails_when_built(make: Callable[[], object], message: str) -> None:
    """Choices only on a select or multi field, columns only on a lines field and
    always there, each name once, computed fields apart from the inputs."""
    with pytest.raises(ValueError, match=message):
        make()


def test_every_type_has_its_rules_form_in_the_order_the_pages_list_them() -> None:
    assert list(FORM_SPECS) == list(DeclarationType)
    for type, spec in FORM_SPECS.items():
        assert spec is RULES[type].spec and spec.type is type
        assert [f.name for f in form_fields(type)] == [
            *(f.name for f in spec.fields),
            *(f.name for f in spec.computed),
        ]


def test_a_computed_field_has_one_label_wherever_it_is_computed() -> None:
    """DERIVED_LABELS labels a computed key once: two specs computing the same key must
    call it the same."""
    for spec in FORM_SPECS.values():
        for f in (*spec.computed, *(c for line in spec.fields for c in line.computed)):
            assert DERIVED_LABELS[f.name] == f.label, (spec.type, f.name)
