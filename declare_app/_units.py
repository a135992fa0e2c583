"""The agency's unit registry: units registered, then approved for online service.

A carrier may open a channel account only for a unit in this registry with status
``approved`` (ARCHITECTURE §6).  Store functions take the caller's ``Connection`` and
return plain values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select, update

from declare_app._identifiers import Finding, normalise_uscc, validate_uscc
from declare_app._schema import unit_profiles, units

_UNIT_CODE = re.compile(r"[0-9]{8}")
_REGION = re.compile(r"[1-9][0-9]{5}")


class UnitError(ValueError):
    """A unit operation was refused; the message says why."""


class UnitInputError(UnitError):
    """The input itself is malformed (bad code, name, region or credit code)."""


@dataclass(frozen=True)
class Unit:
    code: str
    region: str
    name: str
    credit_code: str | None
    status: str
    registered_at: float
    registered_by: str
    approved_at: float | None
    approved_by: str | None

    @property
    def approved(self) -> bool:
        return self.status == "approved"


def validate_unit_code(code: str) -> str:
    if not (code.isascii() and _UNIT_CODE.fullmatch(code)):
        raise UnitInputError(f"unit code {code!r} must be exactly 8 ASCII digits")
    return code


def validate_registration(
    code: str, *, name: str, region: str, credit_code: str | None, regions: tuple[str, ...]
) -> list[Finding]:
    """Check registration input; raise :class:`UnitInputError` or return USCC warnings."""
    validate_unit_code(code)
    if not (region.isascii() and _REGION.fullmatch(region)):
        raise UnitInputError(f"region {region!r} must be a 6-digit region code")
    if region not in regions:
        raise UnitInputError(
            f"region {region} is not configured; configured regions: {', '.join(regions)}"
        )
    stripped = name.strip()
    if not stripped or len(stripped) > 200 or any(not c.isprintable() for c in stripped):
        raise UnitInputError("unit name must be 1-200 printable characters")
    if credit_code is None:
        return []
    credit_code = normalise_uscc(credit_code)
    try:
        return validate_uscc(credit_code)
    except ValueError as e:
        raise UnitInputError(f"credit code {credit_code!r}: {e}") from None


def _unit(row: object) -> Unit:
    m = row._mapping  # type: ignore[attr-defined]
    return Unit(**{k: m[k] for k in Unit.__dataclass_fields__})


def get_unit(conn: Connection, code: str) -> Unit | None:
    row = conn.execute(select(units).where(units.c.code == code)).first()
    return None if row is None else _unit(row)


def list_units(conn: Connection, *, status: str | None = None) -> list[Unit]:
    query = select(units).order_by(units.c.code)
    if status is not None:
        query = query.where(units.c.status == status)
    return [_unit(r) for r in conn.execute(query)]


def register_unit(
    conn: Connection,
    code: str,
    *,
    name: str,
    region: str,
    credit_code: str | None,
    actor: str,
    now: float,
    injury_risk_class: int | None = None,
) -> Unit:
    """Register a unit; *injury_risk_class* is the 工伤行业风险类别 (1-8) the agency
    assigned, without which nobody can be enrolled in work injury (V-RATE-02)."""
    if injury_risk_class is not None and not 1 <= injury_risk_class <= 8:
        raise UnitInputError(
            f"injury risk class must be 1 to 8 (工伤行业风险类别), not {injury_risk_class}"
        )
    if get_unit(conn, code) is not None:
        raise UnitError(f"unit {code} is already registered")
    if credit_code is not None:
        credit_code = normalise_uscc(credit_code)  # as validate_registration read it
        clash = conn.execute(
            select(units.c.code).where(units.c.credit_code == credit_code)
        ).scalar()
        if clash is not None:
            raise UnitError(f"credit code {credit_code} is already registered to unit {clash}")
    conn.execute(
        insert(units).values(
            code=code,
            region=region,
            name=name.strip(),
            credit_code=credit_code,
            status="registered",
            registered_at=now,
            registered_by=actor,
        )
    )
    if injury_risk_class is not None:
        conn.execute(
            insert(unit_profiles).values(
                unit_code=code, injury_risk_class=injury_risk_class, updated_at=now
            )
        )
    unit = get_unit(conn, code)
    assert unit is not None
    return unit


def approve_unit(conn: Connection, code: str, *, actor: str, now: float) -> Unit:
    unit = get_unit(conn, code)
    if unit is None:
        raise UnitError(f"unit {code} is not registered; register it first")
    if unit.approved:
        raise UnitError(f"unit {code} is already approved for online service")
    conn.execute(
        update(units)
        .where(units.c.code == code)
        .values(status="approved", approved_at=now, approved_by=actor)
    )
    approved = get_unit(conn, code)
    assert approved is not None
    return approved
