"""Master data as the rules read and write it: units' standing, persons, enrolments.

Functions on the caller's ``Connection``, plain dataclasses out.  Reads that a rule
makes on behalf of an employer are scoped to that employer's unit, except the few
pool-wide facts DOMAIN §6 needs (is this ID number insured anywhere, is one of its
enrolments open anywhere); those answer yes/no and never say where.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from sqlalchemy import Connection, and_, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from declare_app._bulk import insert_rows
from declare_app._contributions import Insurance
from declare_app._schema import (
    declarations,
    enrolments,
    number_sequences,
    persons,
    unit_profiles,
    units,
)

PENDING = ("pending-review", "under-review")


@dataclass(frozen=True)
class UnitStanding:
    """A unit as the rules see it: registry entry plus the agency's standing (V-UNIT-01)."""

    code: str
    region: str
    name: str
    credit_code: str | None
    registry_status: str  # registered | approved
    standing: str  # normal | suspended | cancelled
    arrears: bool
    injury_risk_class: int | None


def unit_standing(conn: Connection, unit_code: str) -> UnitStanding | None:
    row = conn.execute(
        select(
            units.c.code,
            units.c.region,
            units.c.name,
            units.c.credit_code,
            units.c.status,
            unit_profiles.c.standing,
            unit_profiles.c.arrears,
            unit_profiles.c.injury_risk_class,
        )
        .select_from(units.outerjoin(unit_profiles, unit_profiles.c.unit_code == units.c.code))
        .where(units.c.code == unit_code)
    ).first()
    if row is None:
        return None
    return UnitStanding(
        code=row.code,
        region=row.region,
        name=row.name,
        credit_code=row.credit_code,
        registry_status=row.status,
        standing=row.standing or "normal",
        arrears=bool(row.arrears),
        injury_risk_class=row.injury_risk_class,
    )


def unit_profile(conn: Connection, unit_code: str) -> dict[str, Any]:
    """The §5.1 details on record (``{}`` columns absent when the unit has no row)."""
    row = conn.execute(select(unit_profiles).where(unit_profiles.c.unit_code == unit_code)).first()
    return {} if row is None else dict(row._mapping)


@dataclass(frozen=True)
class Person:
    person_number: str
    id_number: str
    id_type: str  # 01 居民身份证, 02 港澳台居民居住证, 03 外国人永久居留身份证
    name: str
    gender: str  # "1" 男, "2" 女
    birth_date: date
    staff_kind: str  # "A" 干部, "B" 工人
    nation: str | None  # GB 3304 code
    hukou_type: str | None
    phone: str | None
    retirement_override_month: str | None
    receiving_pension: bool
    terminal_reason: str | None
    first_insured_month: str | None


@dataclass(frozen=True)
class Enrolment:
    id: int
    person_number: str
    unit_code: str
    insurance: Insurance
    status: str  # AAC031
    start_month: str
    end_month: str | None
    base_fen: int
    base_year: int | None
    stop_reason: str | None
    hire_date: date | None

    @property
    def open(self) -> bool:
        return self.status == "1"


def _person(row: Any) -> Person:
    m = row._mapping
    return Person(
        **{k: m[k] for k in Person.__dataclass_fields__ if k != "receiving_pension"},
        receiving_pension=bool(m["receiving_pension"]),
    )


def _enrolment(row: Any) -> Enrolment:
    m = row._mapping
    return Enrolment(
        **{k: m[k] for k in Enrolment.__dataclass_fields__ if k != "insurance"},
        insurance=Insurance(m["insurance"]),
    )


def person_by_id_number(conn: Connection, id_number: str) -> Person | None:
    """Pool-wide: only for the rules' own use, never returned to an employer as is."""
    row = conn.execute(select(persons).where(persons.c.id_number == id_number)).first()
    return None if row is None else _person(row)


def person_by_number(conn: Connection, person_number: str) -> Person | None:
    row = conn.execute(select(persons).where(persons.c.person_number == person_number)).first()
    return None if row is None else _person(row)


def enrolments_of(
    conn: Connection, person_number: str, *, unit_code: str | None = None
) -> list[Enrolment]:
    """The person's enrolments, oldest first; in one unit when *unit_code* is given."""
    query = select(enrolments).where(enrolments.c.person_number == person_number)
    if unit_code is not None:
        query = query.where(enrolments.c.unit_code == unit_code)
    return [_enrolment(r) for r in conn.execute(query.order_by(enrolments.c.id))]


def person_in_unit(
    conn: Connection, unit_code: str, *, person_number: str | None, id_number: str | None
) -> tuple[Person, list[Enrolment]] | None:
    """A person with at least one enrolment (any status) in *unit_code*, found by
    个人编号 or ID number, with that unit's enrolments; ``None`` for anyone else, so
    a person of another unit is indistinguishable from a person who does not exist."""
    person = None
    if person_number:
        person = person_by_number(conn, person_number)
    elif id_number:
        person = person_by_id_number(conn, id_number)
    if person is None:
        return None
    here = enrolments_of(conn, person.person_number, unit_code=unit_code)
    if not here:
        return None
    return person, here


_IN_CHUNK: Final = 500  # values per IN (...) list: well inside every driver's limits


class PoolSnapshot:
    """The persons of a batch's ID numbers and their enrolments, read in a few queries
    instead of two per line; a number it was not built with is read on demand, so it
    answers exactly like :func:`person_by_id_number` and :func:`enrolments_of`.
    Only for one check or apply, inside one transaction."""

    def __init__(self, conn: Connection, id_numbers: Iterable[str]) -> None:
        self._conn = conn
        self._asked = set(id_numbers)
        self._persons: dict[str, Person] = {}
        self._enrolments: dict[str, list[Enrolment]] = {}
        wanted = sorted(self._asked)
        for i in range(0, len(wanted), _IN_CHUNK):
            query = select(persons).where(persons.c.id_number.in_(wanted[i : i + _IN_CHUNK]))
            for row in conn.execute(query):
                person = _person(row)
                self._persons[person.id_number] = person
        numbers = sorted(p.person_number for p in self._persons.values())
        for number in numbers:
            self._enrolments[number] = []
        for i in range(0, len(numbers), _IN_CHUNK):
            query = (
                select(enrolments)
                .where(enrolments.c.person_number.in_(numbers[i : i + _IN_CHUNK]))
                .order_by(enrolments.c.id)
            )
            for row in conn.execute(query):
                self._enrolments[row.person_number].append(_enrolment(row))

    def person(self, id_number: str) -> Person | None:
        if id_number not in self._asked:
            return person_by_id_number(self._conn, id_number)
        return self._persons.get(id_number)

    def enrolments(self, person_number: str) -> list[Enrolment]:
        cached = self._enrolments.get(person_number)
        return list(cached) if cached is not None else enrolments_of(self._conn, person_number)


def insert_person(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(insert(persons).values(**values))


def update_person(conn: Connection, person_number: str, values: dict[str, Any]) -> None:
    conn.execute(update(persons).where(persons.c.person_number == person_number).values(**values))


def insert_persons(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Many new persons at once (each row with the same keys; COPY on PostgreSQL)."""
    insert_rows(conn, persons, rows)


def open_enrolment(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(insert(enrolments).values(status="1", end_month=None, **values))


def open_enrolments(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Many enrolments opened at once, in order (each row with the same keys; COPY on
    PostgreSQL)."""
    insert_rows(conn, enrolments, [{"status": "1", "end_month": None, **r} for r in rows])


def close_enrolment(
    conn: Connection,
    enrolment_id: int,
    *,
    status: str,
    end_month: str,
    reason: str,
    declaration_id: str,
    now: float,
) -> None:
    conn.execute(
        update(enrolments)
        .where(and_(enrolments.c.id == enrolment_id, enrolments.c.status == "1"))
        .values(
            status=status,
            end_month=end_month,
            stop_reason=reason,
            closed_by=declaration_id,
            updated_at=now,
        )
    )


def set_base(
    conn: Connection, enrolment_ids: Sequence[int], *, base_fen: int, year: int, now: float
) -> None:
    conn.execute(
        update(enrolments)
        .where(enrolments.c.id.in_(list(enrolment_ids)))
        .values(base_fen=base_fen, base_year=year, updated_at=now)
    )


def pending_payloads(
    conn: Connection,
    unit_code: str,
    type_slug: str,
    *,
    subject: str | None = None,
    exclude: str | None = None,
    batches: bool = False,
) -> list[dict[str, Any]]:
    """Payloads of this unit's declarations of *type_slug* waiting for review (V-DUP-03);
    with *batches*, only those about no single subject (batch declarations)."""
    query = select(declarations.c.id, declarations.c.payload).where(
        declarations.c.unit_code == unit_code,
        declarations.c.type == type_slug,
        declarations.c.status.in_(PENDING),
    )
    if subject is not None:
        query = query.where(declarations.c.subject == subject)
    if batches:
        query = query.where(declarations.c.subject.is_(None))
    if exclude is not None:
        query = query.where(declarations.c.id != exclude)
    result = []
    for row in conn.execute(query):
        payload = json.loads(row.payload)
        if isinstance(payload, dict):
            result.append(payload)
    return result


def next_number(conn: Connection, name: str, count: int = 1) -> int:
    """The next value of the named counter, inside the caller's transaction; with
    *count*, the first of that many consecutive values (a batch takes its numbers in
    one step).

    The UPDATE locks the counter's row until the transaction ends, so two approvals on
    two nodes get different numbers; the first use creates the row (ON CONFLICT DO
    NOTHING waits for a concurrent creator instead of failing).
    """
    if count < 1:
        raise ValueError("count must be at least 1")
    bump = (
        update(number_sequences)
        .where(number_sequences.c.name == name)
        .values(last_value=number_sequences.c.last_value + count)
        .returning(number_sequences.c.last_value)
    )
    value = conn.execute(bump).scalar()
    if value is not None:
        return int(value) - count + 1
    values = {"name": name, "last_value": count}
    stmt: Any
    if conn.dialect.name == "postgresql":
        stmt = postgresql.insert(number_sequences).values(values).on_conflict_do_nothing()
    else:
        stmt = sqlite.insert(number_sequences).values(values).on_conflict_do_nothing()
    if conn.execute(stmt.returning(number_sequences.c.name)).first() is not None:
        return 1
    value = conn.execute(bump).scalar()
    assert value is not None
    return int(value) - count + 1


def open_insurances(items: Iterable[Enrolment]) -> set[Insurance]:
    return {e.insurance for e in items if e.open}
