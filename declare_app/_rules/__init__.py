"""Declaration rules, type by type: normalise and validate a payload (DOMAIN.md §5, §6),
and apply an approved one to master data (§7).

Each type is a :class:`TypeRules` in its own module.  A type not yet built is absent
from :data:`RULES`, and the workflow refuses to create it ("not-yet") rather than
pretend.

Rule ids are DOMAIN §6's (``V-ID-05``, ``V-BASE-01`` …).  Checks DOMAIN describes
without an id carry ids of ours:

* ``V-FORM-01`` a required field is empty; ``V-FORM-02`` a value is malformed, not
  in its code list, inconsistent with the records, or the field is unknown;
  ``V-FORM-03`` a value is too long or a list too large.
* ``V-STAT-01`` the person's enrolment state does not allow the change: nobody of
  that number in this unit, nothing open to reduce, an enrolment already terminated
  (DOMAIN §8: 终止 is terminal).
* ``V-UNIT-02`` a change of unit name or credit code needs proof (DOMAIN §5.1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from declare_app._rules._annual_base import AnnualBaseRules
from declare_app._rules._context import (
    ApplyConflict,
    Checked,
    RuleContext,
    RuleSettings,
    TypeRules,
)
from declare_app._rules._forms import FieldSpec
from declare_app._rules._injury import InjuryAccidentRules, InjuryAppraisalRules
from declare_app._rules._insurance_change import InsuranceAddRules, InsuranceReduceRules
from declare_app._rules._master import UnitStanding, unit_standing
from declare_app._rules._person_add import PersonAddRules
from declare_app._rules._person_reduce import PersonReduceRules
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


def rules_for(type: DeclarationType) -> TypeRules | None:
    """The rules of *type*, or ``None`` while that type is not yet open."""
    return RULES.get(type)


def form_fields(type: DeclarationType) -> tuple[FieldSpec, ...]:
    """The fields of *type*'s form, in order (``()`` for a type not yet open)."""
    rules = RULES.get(type)
    return () if rules is None else rules.fields


__all__ = [
    "RULES",
    "ApplyConflict",
    "Checked",
    "FieldSpec",
    "RuleContext",
    "RuleSettings",
    "TypeRules",
    "UnitStanding",
    "form_fields",
    "rules_for",
    "unit_standing",
]
