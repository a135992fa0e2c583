"""Tables owned by the audit log.  Instants are Float epoch seconds UTC.

``audit_events`` holds the chain; ``seq`` is assigned by :func:`audit.append` (previous
plus one, never autoincrement) so a gap always means a deleted record.
``audit_head`` holds exactly one row, the tip of the chain, updated in the same
transaction as each insert: without it, deleting the newest records would leave a
shorter chain that still verifies.
``audit_archives`` catalogues the archive files that retention moved the oldest
records into (:mod:`audit._archive`): one row per file, written in the transaction that
deletes those records, so the database always says where its part of the chain starts
(after the newest archived record) and which files hold the part before it.
``alerts`` holds what the alert rules found and the officers' handling of it;
``alert_cursor`` (one row) the last audit record the evaluator judged.
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
    UniqueConstraint,
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

MAX_ARCHIVE_NAME = 128
MAX_NODE = 255

audit_archives = Table(
    "audit_archives",
    metadata,
    Column("first_seq", BigInteger, nullable=False, autoincrement=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("prev_hash", String(HASH_LENGTH), nullable=False),  # the hash before first_seq
    Column("last_hash", String(HASH_LENGTH), nullable=False),
    Column("first_at", Float, nullable=False),
    Column("last_at", Float, nullable=False),
    Column("file", String(MAX_ARCHIVE_NAME), nullable=False),  # a name in the archive dir
    Column("sha256", String(HASH_LENGTH), nullable=False),  # of the compressed file
    Column("archived_at", Float, nullable=False),
    Column("node", String(MAX_NODE), nullable=False),  # the host whose directory holds it
    PrimaryKeyConstraint("first_seq", name="pk_audit_archives"),
    UniqueConstraint("last_seq", name="uq_audit_archives_last_seq"),
    UniqueConstraint("file", name="uq_audit_archives_file"),
    CheckConstraint("first_seq >= 1", name="ck_audit_archives_first_seq"),
    CheckConstraint("last_seq >= first_seq", name="ck_audit_archives_range"),
    CheckConstraint("count = last_seq - first_seq + 1", name="ck_audit_archives_count"),
)

# -- alerts (audit._alert_store) ------------------------------------------------------

ALERT_STATES = ("new", "acknowledged", "closed")
MAX_DEDUPE_KEY = 320  # rule + account (255) + a little

alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, nullable=False, autoincrement=True),
    Column("rule", String(32), nullable=False),
    Column("severity", String(16), nullable=False),
    # Unique while the alert is open; cleared on close, so a later episode of the same
    # thing raises a new alert (NULLs never collide, on SQLite and PostgreSQL alike).
    Column("dedupe_key", String(MAX_DEDUPE_KEY), nullable=True),
    Column("summary", Text, nullable=False),
    Column("account", String(MAX_SUBJECT), nullable=False),
    Column("source", String(64), nullable=False),
    Column("unit", String(MAX_UNIT), nullable=False),
    Column("first_seen", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("occurrences", Integer, nullable=False),
    Column("evidence", Text, nullable=False),  # JSON: seqs, session_ids, accounts, sources
    Column("state", String(16), nullable=False),
    Column("note", Text, nullable=True),
    Column("changed_by", String(MAX_ACTOR), nullable=True),
    Column("changed_at", Float, nullable=True),
    Column("created_at", Float, nullable=False),
    PrimaryKeyConstraint("id", name="pk_alerts"),
    UniqueConstraint("dedupe_key", name="uq_alerts_dedupe_key"),
    CheckConstraint("state IN ('new', 'acknowledged', 'closed')", name="ck_alerts_state"),
    CheckConstraint("severity IN ('low', 'medium', 'high')", name="ck_alerts_severity"),
    Index("ix_alerts_state_id", "state", "id"),
    Index("ix_alerts_rule_id", "rule", "id"),
)

CURSOR_ID = 1

# The last audit seq the evaluator has judged; its row is the lock that makes one
# evaluation at a time across every node.
alert_cursor = Table(
    "alert_cursor",
    metadata,
    Column("id", Integer, nullable=False, autoincrement=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("evaluated_at", Float, nullable=False),
    PrimaryKeyConstraint("id", name="pk_alert_cursor"),
    CheckConstraint(f"id = {CURSOR_ID}", name="ck_alert_cursor_single_row"),
    CheckConstraint("last_seq >= 0", name="ck_alert_cursor_last_seq"),
)
