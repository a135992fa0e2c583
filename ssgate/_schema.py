"""The one database schema, as the union of the tables each package owns."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, MetaData

MIGRATIONS = Path(__file__).parent / "migrations"


def all_metadata() -> list[MetaData]:
    from audit._schema import metadata as audit_metadata
    from auth._schema import metadata as auth_metadata
    from certs._schema import metadata as certs_metadata
    from declare_app._schema import metadata as declare_metadata
    from gateway import metadata as gateway_metadata
    from portal._schema import metadata as portal_metadata
    from radius import metadata as radius_metadata

    return [
        auth_metadata,
        certs_metadata,
        audit_metadata,
        declare_metadata,
        gateway_metadata,
        radius_metadata,
        portal_metadata,
    ]


def _alembic_config() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def upgrade(engine: Engine) -> None:
    """Migrate the database to the newest schema, in one transaction."""
    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def schema_status(engine: Engine) -> tuple[str | None, str | None]:
    """(current revision, newest revision) — equal when the database is up to date."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return current, head
