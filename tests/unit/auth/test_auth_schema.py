"""The auth tables: every constraint and index carries an explicit conventional name."""

from __future__ import annotations

import re

from sqlalchemy import (
    CheckConstraint,
    ForeignKeyConstraint,
    PrimaryKeyConstraint,
    UniqueConstraint,
    create_engine,
    inspect,
)

from auth._schema import metadata

_PATTERNS = {
    PrimaryKeyConstraint: r"pk_{table}",
    UniqueConstraint: r"uq_{table}_\w+",
    ForeignKeyConstraint: r"fk_{table}_\w+",
    CheckConstraint: r"ck_{table}_\w+",
}


def test_the_package_owns_exactly_its_five_tables() -> None:
    assert set(metadata.tables) == {
        "credentials",
        "accounts",
        "staff",
        "source_failures",
        "console_sessions",
    }


def test_every_constraint_and_index_is_named_by_the_convention() -> None:
    for table in metadata.tables.values():
        for constraint in table.constraints:
            pattern = _PATTERNS[type(constraint)].format(table=table.name)
            assert isinstance(constraint.name, str), (table.name, constraint)
            assert re.fullmatch(pattern, constraint.name), constraint.name
        for index in table.indexes:
            assert isinstance(index.name, str)
            assert re.fullmatch(rf"ix_{table.name}_\w+", index.name), index.name


def test_instants_are_float_columns_named_at() -> None:
    for table in metadata.tables.values():
        for column in table.columns:
            if column.name.endswith("_at"):
                assert column.type.python_type is float, (table.name, column.name)


def test_the_schema_creates_on_sqlite_with_its_named_indexes() -> None:
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    inspector = inspect(engine)
    assert {i["name"] for i in inspector.get_indexes("accounts")} == {
        "ix_accounts_unit_code",
        "ix_accounts_updated_at",  # the gateway's kill poll (migration 0019)
    }
    assert inspector.get_pk_constraint("credentials")["name"] == "pk_credentials"
    engine.dispose()
