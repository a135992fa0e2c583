"""Tables owned by the gateway.  Instants are Float epoch seconds UTC (``*_at``)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    text,
)

metadata = MetaData()

# The kill requests no node has acted on yet: the condition of the partial index
# ``ix_sessions_kill_pending`` (migration 0019), written once so that the kill poll's
# query repeats it word for word (SQLite and PostgreSQL use a partial index only
# for a query whose WHERE implies the index's, and a bound parameter implies nothing).
KILL_PENDING = "kill_requested_at IS NOT NULL AND status <> 'ended'"

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(64), nullable=False),  # 128-bit random, hex
    Column("account", String(128), nullable=False),
    Column("unit_code", String(8), nullable=False),
    Column("peer", String(64), nullable=False),  # host:port the employer connected from
    Column("cert_serial", String(40), nullable=False),
    Column("node", String(128), nullable=False),  # which gateway process holds it
    Column("status", String(16), nullable=False),  # live | detached | ended
    Column("started_at", Float, nullable=False),
    Column("last_seen_at", Float, nullable=False),
    Column("ended_at", Float, nullable=True),
    Column("end_reason", String(32), nullable=True),
    Column("bytes_in", BigInteger, nullable=False, server_default=text("0")),
    Column("bytes_out", BigInteger, nullable=False, server_default=text("0")),
    Column("streams_opened", Integer, nullable=False, server_default=text("0")),
    Column("resume_generation", Integer, nullable=False, server_default=text("0")),
    Column("kill_requested_at", Float, nullable=True),
    Column("kill_reason", String(32), nullable=True),
    Column("kill_note", String(500), nullable=True),
    Column("kill_actor", String(128), nullable=True),
    PrimaryKeyConstraint("id", name="pk_sessions"),
    CheckConstraint("status IN ('live', 'detached', 'ended')", name="ck_sessions_status"),
    Index("ix_sessions_status", "status"),
    Index("ix_sessions_started_at", "started_at"),
    # The officers' filters, each ending in the list's order so that a filtered page
    # reads the index in order and stops at the page size (migration 0004).
    Index("ix_sessions_account_started_at", "account", "started_at"),
    Index("ix_sessions_unit_code_started_at", "unit_code", "started_at"),
    Index("ix_sessions_node_started_at", "node", "started_at"),
    Index("ix_sessions_end_reason_started_at", "end_reason", "started_at"),
    Index("ix_sessions_peer", "peer"),
    # The charts' open-sessions count: the open ones and the day's ends (migration 0011).
    Index("ix_sessions_ended_at", "ended_at"),
    # The kill poll's pending kill requests: a few rows whoever many sessions are
    # open (migration 0019).
    Index(
        "ix_sessions_kill_pending",
        "id",
        sqlite_where=text(KILL_PENDING),
        postgresql_where=text(KILL_PENDING),
    ),
)
