"""Alembic migrations build exactly the schema the packages declare, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, MetaData, inspect

from ssgate._schema import all_metadata, schema_status, upgrade


def test_upgrade_to_head_matches_the_declared_tables(engine: Engine) -> None:
    upgrade(engine)
    current, head = schema_status(engine)
    assert current == head is not None
    combined = MetaData()
    for metadata in all_metadata():
        for table in metadata.tables.values():
            table.to_metadata(combined)
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), combined
        )
    assert diff == []


def test_upgrade_is_idempotent(engine: Engine) -> None:
    upgrade(engine)
    upgrade(engine)
    assert schema_status(engine)[0] == schema_status(engine)[1]


def test_each_migration_downgrades_and_upgrades_again(engine: Engine) -> None:
    """Every revision's downgrade undoes it (down to nothing) and the upgrade redoes it."""
    from alembic import command

    from ssgate._schema import _alembic_config

    upgrade(engine)
    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0002")
    assert schema_status(engine)[0] == "0002"
    with engine.connect() as conn:
        assert "console_sessions" not in inspect(conn).get_table_names()
        assert "staff" in inspect(conn).get_table_names()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    with engine.connect() as conn:
        assert "staff" not in inspect(conn).get_table_names()
    upgrade(engine)
    test_upgrade_to_head_matches_the_declared_tables(engine)
