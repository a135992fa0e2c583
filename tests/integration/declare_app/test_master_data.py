"""Master-data helpers the rules use (declare_app._rules._master), on SQLite and
PostgreSQL: numbering blocks and the batch's pool snapshot agree with the one-row
queries they stand in for."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import Engine

from declare_app._rules._master import (
    PoolSnapshot,
    enrolments_of,
    insert_persons,
    next_number,
    open_enrolments,
    person_by_id_number,
)
from tests.integration.declare_app.conftest import UNIT_A, UNIT_B
from tests.integration.declare_app.test_batch_import import make_id


def test_a_block_of_numbers_follows_the_single_ones_without_overlap(decl_db: Engine) -> None:
    with decl_db.begin() as conn:
        assert next_number(conn, "t:block", 5) == 1  # the first use creates the counter
        assert next_number(conn, "t:block") == 6
        assert next_number(conn, "t:block", 1000) == 7
        assert next_number(conn, "t:block") == 1007
        with pytest.raises(ValueError):
            next_number(conn, "t:block", 0)


def _person(n: int) -> dict[str, object]:
    return {
        "person_number": f"3306820000{n:04d}",
        "id_number": make_id(n),
        "id_type": "01",
        "name": f"人员{n}",
        "gender": "1",
        "birth_date": date(1985, 1, 1),
        "staff_kind": "B",
        "created_at": 1.0,
        "updated_at": 1.0,
    }


def test_the_pool_snapshot_answers_like_the_single_queries(decl_db: Engine) -> None:
    """Over the IN-list chunk size, for known and unknown numbers, and for a number
    it was not built with (read on demand)."""
    rows = [_person(n) for n in range(1200)]
    with decl_db.begin() as conn:
        insert_persons(conn, rows)
        open_enrolments(
            conn,
            [
                {
                    "person_number": r["person_number"],
                    "unit_code": unit,
                    "insurance": code,
                    "start_month": "2024-01",
                    "base_fen": 500_000,
                    "add_type": "A",
                    "hire_date": date(2024, 1, 1),
                    "opened_by": "d" * 32,
                    "updated_at": 1.0,
                }
                for r in rows[::3]
                for unit, code in ((UNIT_A, "110"), (UNIT_B, "410"))
            ],
        )
    asked = [make_id(n) for n in range(0, 1300, 7)]  # 1200..1299 are nobody
    with decl_db.begin() as conn:
        pool = PoolSnapshot(conn, asked)
        for id_number in [*asked, make_id(5)]:
            expected = person_by_id_number(conn, id_number)
            assert pool.person(id_number) == expected
            if expected is not None:
                got = pool.enrolments(expected.person_number)
                assert got == enrolments_of(conn, expected.person_number)
        first = pool.enrolments(str(rows[0]["person_number"]))
        assert [(e.unit_code, e.insurance.value) for e in first] == [
            (UNIT_A, "110"),
            (UNIT_B, "410"),
        ]
