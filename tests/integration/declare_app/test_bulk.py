"""``insert_rows``, the apply path's bulk insert, on SQLite and PostgreSQL (COPY there):
every row stored in order with its types, the triggers fired, and on PostgreSQL a
table that outgrew its statistics ANALYZEd in the same transaction."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine, select, text

from declare_app._bulk import insert_rows
from declare_app._schema import enrolments, persons, unit_persons

from .conftest import REGION, UNIT_A

NOW = 1_741_572_000.0


def _persons(count: int) -> list[dict[str, object]]:
    return [
        {
            "person_number": f"{i + 1:010d}",
            "id_number": f"{REGION}19800101{i:03d}X",
            "id_type": "01",
            "name": f"批量{i}",
            "gender": "1",
            "birth_date": date(1980, 1, 1),
            "staff_kind": "B",
            "first_insured_month": None,
            "created_at": NOW,
            "updated_at": NOW,
        }
        for i in range(count)
    ]


def test_rows_are_stored_in_order_and_the_triggers_fire(decl_db: Engine) -> None:
    """Enrolments get ascending ids in the rows' order; unit_persons follows them."""
    people = _persons(120)
    with decl_db.begin() as conn:
        insert_rows(conn, persons, people)
        insert_rows(
            conn,
            enrolments,
            [
                {
                    "person_number": p["person_number"],
                    "unit_code": UNIT_A,
                    "insurance": "110",
                    "status": "1",
                    "start_month": "2025-01",
                    "end_month": None,
                    "base_fen": 500_000,
                    "hire_date": date(2025, 1, 2),
                    "updated_at": NOW,
                }
                for p in people
            ],
        )
    with decl_db.connect() as conn:
        stored = (
            conn.execute(select(enrolments.c.person_number).order_by(enrolments.c.id))
            .scalars()
            .all()
        )
        named = (
            conn.execute(select(unit_persons.c.name).order_by(unit_persons.c.person_number))
            .scalars()
            .all()
        )
        born = conn.execute(select(persons.c.birth_date).limit(1)).scalar_one()
    assert stored == [p["person_number"] for p in people]
    assert named == [p["name"] for p in people]
    assert born == date(1980, 1, 1)


def test_a_table_that_outgrew_its_statistics_is_analysed(decl_db: Engine) -> None:
    """On PostgreSQL the first large insert leaves statistics the planner can use."""
    with decl_db.begin() as conn:
        insert_rows(conn, persons, _persons(200))
    if decl_db.dialect.name != "postgresql":
        return
    with decl_db.connect() as conn:
        tuples = conn.execute(
            text("SELECT reltuples FROM pg_class WHERE oid = to_regclass('persons')")
        ).scalar_one()
    assert tuples >= 200
