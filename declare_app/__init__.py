"""The declaration service.  For now: the agency's unit registry and identifier rules."""

from declare_app._identifiers import (
    Finding,
    IdentifierError,
    check_uscc,
    uscc_check_char,
    validate_uscc,
)
from declare_app._schema import metadata
from declare_app._units import (
    Unit,
    UnitError,
    UnitInputError,
    approve_unit,
    get_unit,
    list_units,
    register_unit,
    validate_registration,
    validate_unit_code,
)

__all__ = [
    "Finding",
    "IdentifierError",
    "Unit",
    "UnitError",
    "UnitInputError",
    "approve_unit",
    "check_uscc",
    "get_unit",
    "list_units",
    "metadata",
    "register_unit",
    "uscc_check_char",
    "validate_registration",
    "validate_unit_code",
    "validate_uscc",
]
