"""Tables owned by the audit log.  Instants are Float epoch seconds UTC.

``audit_events`` holds the chain; ``seq`` is assigned by :func:`audit.append` (previous
plus one, never autoincrement) so a gap always means a deleted record.
``audit_head`` holds exactly one row, the tip of the chain, updated in the same
transaction as each insert: without it, deleting the newest records would leave a
shorter chain that still verifies.
"""

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
    Text,
)

from audit._events import (
    MAX_ACTION,
    MAX_ACTOR,
    MAX_SESSION_ID,
    MAX_SUBJECT,
    MAX_UNIT,
)

metadata = MetaData()

HASH_LENGTH = 64  # SHA-256, hex

audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", BigInteger, nullable=False, autoincrement=False),
    Column("at", Float, nullable=False),
    Column("actor", String(MAX_ACTOR), nullable=False),
    Column("action", String(MAX_ACTION), nullable=False),
    Column("subject", String(MAX_SUBJECT), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("unit", String(MAX_UNIT), nullable=False),
    Column("session_id", String(MAX_SESSION_ID), nullable=False),
    Column("details", Text, nullable=False),  # canonical JSON, exactly as hashed
    Column("prev_hash", String(HASH_LENGTH), nullable=False),
    Column("hash", String(HASH_LENGTH), nullable=False),
    PrimaryKeyConstraint("seq", name="pk_audit_events"),
    CheckConstraint("seq >= 1", name="ck_audit_events_seq_positive"),
    CheckConstraint("outcome IN ('ok', 'refused', 'failed')", name="ck_audit_events_outcome"),
    Index("ix_audit_events_at", "at"),
    Index("ix_audit_events_actor", "actor"),
    # By action within a time range (the officers' login views, alerts): the range is
    # sought, not filtered (migration 0007).
    Index("ix_audit_events_action_at", "action", "at"),
    Index("ix_audit_events_subject", "subject"),
    Index("ix_audit_events_unit", "unit"),
    Index("ix_audit_events_session_id", "session_id"),
)

HEAD_ID = 1

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, nullable=False, autoincrement=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("last_hash", String(HASH_LENGTH), nullable=False),
    PrimaryKeyConstraint("id", name="pk_audit_head"),
    CheckConstraint(f"id = {HEAD_ID}", name="ck_audit_head_single_row"),
    CheckConstraint("last_seq >= 0", name="ck_audit_head_last_seq"),
)
