"""The agency's unit registry on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

import declare_app
from declare_app import UnitError, UnitInputError


@pytest.fixture
def db(engine: Engine) -> Engine:
    declare_app.metadata.create_all(engine)
    return engine


def _register(
    db: Engine, code: str = "12345678", credit: str | None = "91350100M000100Y43"
) -> None:
    with db.begin() as conn:
        declare_app.register_unit(
            conn,
            code,
            name="上虞示范",
            region="330682",
            credit_code=credit,
            actor="os:t",
            now=100.0,
        )


def test_a_unit_is_registered_then_approved(db: Engine) -> None:
    _register(db)
    with db.begin() as conn:
        assert declare_app.get_unit(conn, "12345678").status == "registered"  # type: ignore[union-attr]
        unit = declare_app.approve_unit(conn, "12345678", actor="os:a", now=200.0)
    assert unit.approved and unit.approved_by == "os:a" and unit.approved_at == 200.0
    with db.begin() as conn:
        assert [u.code for u in declare_app.list_units(conn, status="approved")] == ["12345678"]
        assert declare_app.list_units(conn, status="registered") == []


def test_registering_twice_is_refused(db: Engine) -> None:
    _register(db)
    with pytest.raises(UnitError, match="already registered"):
        _register(db)


def test_a_credit_code_belongs_to_one_unit(db: Engine) -> None:
    _register(db)
    with pytest.raises(UnitError, match="already registered to unit 12345678"):
        _register(db, code="87654321")
    # Typed full-width or in lower case it is the same code (issue 14 defect 4).
    with pytest.raises(UnitError, match="already registered to unit 12345678"):
        _register(db, code="87654321", credit="９１３５０１００m０００１００y４３")


def test_approving_an_unknown_or_approved_unit_is_refused(db: Engine) -> None:
    with db.begin() as conn, pytest.raises(UnitError, match="not registered"):
        declare_app.approve_unit(conn, "11111111", actor="a", now=1.0)
    _register(db)
    with db.begin() as conn:
        declare_app.approve_unit(conn, "12345678", actor="a", now=1.0)
    with db.begin() as conn, pytest.raises(UnitError, match="already approved"):
        declare_app.approve_unit(conn, "12345678", actor="a", now=2.0)


@pytest.mark.parametrize(
    ("code", "region", "name", "credit", "message"),
    [
        ("1234567", "330682", "x", None, "exactly 8 ASCII digits"),
        ("１２３４５６７８", "330682", "x", None, "exactly 8 ASCII digits"),
        ("12345678", "33068", "x", None, "6-digit region"),
        ("12345678", "110101", "x", None, "not configured"),
        ("12345678", "330682", "  ", None, "1-200 printable"),
        ("12345678", "330682", "x", "91350100M000100Y44", "USCC-03"),
    ],
)
def test_malformed_registrations_name_the_problem(
    code: str, region: str, name: str, credit: str | None, message: str
) -> None:
    with pytest.raises(UnitInputError, match=message):
        declare_app.validate_registration(
            code, name=name, region=region, credit_code=credit, regions=("330682", "330604")
        )


def test_the_injury_risk_class_given_at_registration_is_on_the_units_profile(db: Engine) -> None:
    from sqlalchemy import select

    from declare_app._schema import unit_profiles

    with db.begin() as conn:
        declare_app.register_unit(
            conn,
            "12345678",
            name="上虞示范",
            region="330682",
            credit_code=None,
            actor="os:t",
            now=100.0,
            injury_risk_class=5,
        )
        got = conn.execute(
            select(unit_profiles.c.injury_risk_class).where(unit_profiles.c.unit_code == "12345678")
        ).scalar_one()
    assert got == 5
    for bad in (0, 9):
        with pytest.raises(UnitInputError, match="1 to 8"), db.begin() as conn:
            declare_app.register_unit(
                conn,
                "87654321",
                name="x",
                region="330682",
                credit_code=None,
                actor="os:t",
                now=1.0,
                injury_risk_class=bad,
            )
    with db.begin() as conn:
        assert declare_app.get_unit(conn, "87654321") is None
