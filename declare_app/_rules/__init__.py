"""Declaration rules, type by type: normalise and validate a payload (DOMAIN.md §5, §6),
and apply an approved one to master data (§7).

Each type is a :class:`TypeRules` in its own module, with its form, a
:class:`FormSpec`: the one spec of that form, which the rules read a payload against
and the employer pages, the JSON API and the staff console render (:data:`FORM_SPECS`).
Every type has its rules: :data:`FORM_SPECS` is built from :data:`RULES` at import,
so a type left out fails there, not at a user's request.

Rule ids are DOMAIN §6's (``V-ID-05``, ``V-BASE-01`` …).  Checks DOMAIN describes
without an id carry ids of ours:

* ``V-FORM-01`` a required field is empty; ``V-FORM-02`` a value is malformed, not
  in its code list, inconsistent with the records, or the field is unknown;
  ``V-FORM-03`` a value is too long or a list too large.
* ``V-STAT-01`` the person's enrolment state does not allow the change: nobody of
  that number in this unit, nothing open to reduce, an enrolment already terminated
  (DOMAIN §8: 终止 is terminal).
* ``V-UNIT-02`` a change of unit name or credit code needs proof (DOMAIN §5.1).
* ``V-DATE-04`` (warning) the 参保开始月 is after the hire month: the months between
  are undeclared (社会保险法 Arts. 58, 60).
* ``V-USCC-06`` the new credit code is already registered to another unit (which is
  never named); ``V-USCC-03`` stays the check-character rule.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Final

from declare_app._rules._annual_base import AnnualBaseRules
from declare_app._rules._context import (
    ApplyConflict,
    Checked,
    RuleContext,
    RuleSettings,
    TypeRules,
)
from declare_app._rules._injury import InjuryAccidentRules, InjuryAppraisalRules
from declare_app._rules._insurance_change import InsuranceAddRules, InsuranceReduceRules
from declare_app._rules._master import UnitStanding, unit_standing
from declare_app._rules._person_add import PersonAddRules
from declare_app._rules._person_reduce import PersonReduceRules
from declare_app._rules._spec import Choice, FieldKind, FieldSpec, FormSpec, Section, choices_of
from declare_app._rules._unit_change import UnitChangeRules
from declare_app.interfaces import DeclarationType

RULES: Final[Mapping[DeclarationType, TypeRules]] = {
    DeclarationType.PERSON_ADD: PersonAddRules(),
    DeclarationType.PERSON_REDUCE: PersonReduceRules(),
    DeclarationType.INSURANCE_ADD: InsuranceAddRules(),
    DeclarationType.INSURANCE_REDUCE: InsuranceReduceRules(),
    DeclarationType.ANNUAL_BASE: AnnualBaseRules(),
    DeclarationType.UNIT_CHANGE: UnitChangeRules(),
    DeclarationType.INJURY_ACCIDENT: InjuryAccidentRules(),
    DeclarationType.INJURY_APPRAISAL: InjuryAppraisalRules(),
}


# Every type's form, in the order the pages list the types: the only form spec, which
# the rules read payloads against and the pages, the API and the console render.
FORM_SPECS: Final[Mapping[DeclarationType, FormSpec]] = {t: RULES[t].spec for t in DeclarationType}


def _computed(spec: FormSpec) -> Iterator[FieldSpec]:
    yield from spec.computed
    for f in spec.fields:
        yield from f.computed


# Labels of keys a payload or a result carries beyond a form's inputs: the fields the
# rules compute (from the specs), then keys that no spec declares.
DERIVED_LABELS: Final[Mapping[str, str]] = {
    **{f.name: f.label for spec in FORM_SPECS.values() for f in _computed(spec)},
    "clamped_base": "核定缴费基数",
    "gender": "性别",
    "person_number": "个人编号",
    "person_no": "个人编号",
    "voucher_no": "凭证编号",
}


def rules_for(type: DeclarationType) -> TypeRules:
    """The rules of *type*."""
    return RULES[type]


def form_fields(type: DeclarationType) -> tuple[FieldSpec, ...]:
    """The keys of *type*'s payload: its form's inputs in order, then what the rules
    compute."""
    rules = RULES[type]
    return (*rules.spec.fields, *rules.spec.computed)


__all__ = [
    "DERIVED_LABELS",
    "FORM_SPECS",
    "RULES",
    "ApplyConflict",
    "Checked",
    "Choice",
    "FieldKind",
    "FieldSpec",
    "FormSpec",
    "RuleContext",
    "RuleSettings",
    "Section",
    "TypeRules",
    "UnitStanding",
    "choices_of",
    "form_fields",
    "rules_for",
    "unit_standing",
]
