"""Tables owned by the auth package.  Instants are Float epoch seconds UTC (``*_at``).

``credentials`` holds what proves an identity (argon2id hash, sealed TOTP secret, the
last accepted TOTP step) and the lockout counters, one row per principal: a channel
account name (``33068212345678@sxlss``) or a staff name (no ``@``, so the two never
collide).  ``accounts`` and ``staff`` hold who the principal is and whether it may log
in.  ``source_failures`` counts refused logins per source address in a fixed window.
``console_sessions`` holds the staff console's live sessions (see
:mod:`auth._console_sessions`): keyed by the SHA-256 of the cookie's id, never the id.

Every constraint and index is named (pk_/uq_/fk_/ck_/ix_) so Alembic migrations can
refer to them on both SQLite and PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    UniqueConstraint,
    false,
    text,
)

metadata = MetaData()

PRINCIPAL_LENGTH = 128
SOURCE_LENGTH = 64

credentials = Table(
    "credentials",
    metadata,
    Column("principal", String(PRINCIPAL_LENGTH), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("password_hash", String(256), nullable=False),
    Column("totp_secret_sealed", String(256), nullable=False),
    Column("totp_last_step", BigInteger, nullable=True),
    Column("consecutive_failures", Integer, nullable=False, server_default=text("0")),
    Column("total_failures", Integer, nullable=False, server_default=text("0")),
    Column("lock_count", Integer, nullable=False, server_default=text("0")),
    Column("locked_until_at", Float, nullable=True),
    Column("hard_locked", Boolean(create_constraint=False), nullable=False, server_default=false()),
    Column("password_changed_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    PrimaryKeyConstraint("principal", name="pk_credentials"),
    CheckConstraint("kind IN ('account', 'staff', 'person')", name="ck_credentials_kind"),
    CheckConstraint(
        "consecutive_failures >= 0 AND total_failures >= 0 AND lock_count >= 0",
        name="ck_credentials_counters",
    ),
)

accounts = Table(
    "accounts",
    metadata,
    Column("name", String(PRINCIPAL_LENGTH), nullable=False),
    Column("region", String(6), nullable=False),
    Column("unit_code", String(8), nullable=False),
    Column("realm", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("status_reason", String(500), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    PrimaryKeyConstraint("name", name="pk_accounts"),
    ForeignKeyConstraint(["name"], ["credentials.principal"], name="fk_accounts_name"),
    CheckConstraint("status IN ('active', 'suspended', 'cancelled')", name="ck_accounts_status"),
    Index("ix_accounts_unit_code", "unit_code"),
    Index("ix_accounts_updated_at", "updated_at"),  # the gateway's kill poll: what changed
)

staff = Table(
    "staff",
    metadata,
    Column("name", String(32), nullable=False),
    Column("role", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    PrimaryKeyConstraint("name", name="pk_staff"),
    ForeignKeyConstraint(["name"], ["credentials.principal"], name="fk_staff_name"),
    CheckConstraint("role IN ('carrier', 'auditor', 'officer', 'admin')", name="ck_staff_role"),
    CheckConstraint("status IN ('active', 'disabled')", name="ck_staff_status"),
)

source_failures = Table(
    "source_failures",
    metadata,
    Column("source", String(SOURCE_LENGTH), nullable=False),
    Column("window_started_at", Float, nullable=False),
    Column("failures", Integer, nullable=False),
    PrimaryKeyConstraint("source", name="pk_source_failures"),
    CheckConstraint("failures >= 0", name="ck_source_failures_failures"),
    Index("ix_source_failures_window_started_at", "window_started_at"),
)

console_sessions = Table(
    "console_sessions",
    metadata,
    Column("token_digest", String(64), nullable=False),  # hex SHA-256 of the cookie's id
    Column("staff", String(32), nullable=False),
    Column("role", String(16), nullable=False),  # the role at login
    Column("ref", String(32), nullable=False),  # non-secret name for audit events
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_seen_at", Float, nullable=False),
    # Set when someone else ended it (staff disabled, password reset): the row stays
    # until its owner's next request is told why, or until the sweep.
    Column("ended_at", Float, nullable=True),
    Column("end_reason", String(32), nullable=True),
    PrimaryKeyConstraint("token_digest", name="pk_console_sessions"),
    ForeignKeyConstraint(["staff"], ["staff.name"], name="fk_console_sessions_staff"),
    UniqueConstraint("ref", name="uq_console_sessions_ref"),
    CheckConstraint(
        "role IN ('carrier', 'auditor', 'officer', 'admin')", name="ck_console_sessions_role"
    ),
    Index("ix_console_sessions_staff", "staff"),
    Index("ix_console_sessions_last_seen_at", "last_seen_at"),
)
