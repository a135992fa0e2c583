"""The one database schema, as the union of the tables each package owns, and the
tables ``ssgate`` itself owns: the node registry and the stored ``[policy]``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    text,
)

MIGRATIONS = Path(__file__).parent / "migrations"

metadata = MetaData()

# Every gateway process sharing the database, by its node name (``host:pid``): each
# refreshes ``last_heartbeat_at``; the others end the live sessions of one that stopped
# reporting (ssgate._nodes).  ``draining`` is set while a node hands its clients over.
nodes = Table(
    "nodes",
    metadata,
    Column("name", String(128), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("last_heartbeat_at", Float, nullable=False),
    Column("version", String(32), nullable=False),
    Column("draining", Boolean, nullable=False, server_default=text("false")),
    Column("stopped_at", Float, nullable=True),
    Column("stop_reason", String(16), nullable=True),  # stopped | lost
    PrimaryKeyConstraint("name", name="pk_nodes"),
    CheckConstraint(
        "stop_reason IS NULL OR stop_reason IN ('stopped', 'lost')", name="ck_nodes_stop_reason"
    ),
    Index("ix_nodes_last_heartbeat_at", "last_heartbeat_at"),
)

# The one copy of ``[policy]`` every node must run with (ssgate._nodes.check_policy):
# canonical JSON of the parsed section and its SHA-256.
policies = Table(
    "policies",
    metadata,
    Column("id", Integer, nullable=False, autoincrement=False),
    Column("document", Text, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("stored_at", Float, nullable=False),
    Column("stored_by", String(255), nullable=False),
    PrimaryKeyConstraint("id", name="pk_policies"),
    CheckConstraint("id = 1", name="ck_policies_single_row"),
)


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
        metadata,
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
