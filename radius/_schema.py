"""Tables owned by the radius package.  Instants are Float epoch seconds UTC (``*_at``).

``radius_sessions`` holds what RADIUS accounting says about a dial-in session: one row
per session, keyed by the session id that the Access-Accept carried as ``Class`` and
that the session registry (``sessions``, the gateway's table) uses for the same
session.  Every constraint and index is named so migrations can refer to them.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
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

radius_sessions = Table(
    "radius_sessions",
    metadata,
    Column("session_id", String(64), nullable=False),  # = sessions.id = the Accept's Class
    Column("account", String(128), nullable=False),
    Column("unit_code", String(8), nullable=False),
    Column("nas", String(64), nullable=False),  # the configured NAS name
    Column("nas_address", String(64), nullable=False),  # where its packets came from
    Column("nas_port", BigInteger, nullable=True),
    Column("acct_session_id", String(64), nullable=False),
    Column("framed_ip", String(45), nullable=True),
    Column("calling_station", String(64), nullable=True),
    Column("started_at", Float, nullable=False),
    Column("reported_at", Float, nullable=False),  # the last accounting packet
    Column("ended_at", Float, nullable=True),
    Column("end_reason", String(32), nullable=True),
    Column("bytes_in", BigInteger, nullable=False, server_default=text("0")),
    Column("bytes_out", BigInteger, nullable=False, server_default=text("0")),
    Column("session_time", Integer, nullable=True),
    # An officer's kill or a suspension sent to the NAS (RFC 5176): each round claimed
    # by one node, then its outcome (ack, nak:<Error-Cause>, no-answer).
    Column("disconnect_at", Float, nullable=True),
    Column("disconnect_outcome", String(32), nullable=True),
    Column("disconnect_rounds", Integer, nullable=False, server_default=text("0")),
    PrimaryKeyConstraint("session_id", name="pk_radius_sessions"),
    Index("ix_radius_sessions_nas_acct_session_id", "nas", "acct_session_id"),
    Index("ix_radius_sessions_ended_at", "ended_at"),
)
