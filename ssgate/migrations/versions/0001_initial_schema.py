"""initial schema

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "credentials",
        sa.Column("principal", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=256), nullable=False),
        sa.Column("totp_secret_sealed", sa.String(length=256), nullable=False),
        sa.Column("totp_last_step", sa.BigInteger(), nullable=True),
        sa.Column(
            "consecutive_failures", sa.Integer(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("total_failures", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("lock_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("locked_until_at", sa.Float(), nullable=True),
        sa.Column("hard_locked", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("password_changed_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.CheckConstraint("kind IN ('account', 'staff')", name="ck_credentials_kind"),
        sa.CheckConstraint(
            "consecutive_failures >= 0 AND total_failures >= 0 AND lock_count >= 0",
            name="ck_credentials_counters",
        ),
        sa.PrimaryKeyConstraint("principal", name="pk_credentials"),
    )
    op.create_table(
        "source_failures",
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("window_started_at", sa.Float(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.CheckConstraint("failures >= 0", name="ck_source_failures_failures"),
        sa.PrimaryKeyConstraint("source", name="pk_source_failures"),
    )
    with op.batch_alter_table("source_failures", schema=None) as batch_op:
        batch_op.create_index(
            "ix_source_failures_window_started_at", ["window_started_at"], unique=False
        )

    op.create_table(
        "accounts",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("region", sa.String(length=6), nullable=False),
        sa.Column("unit_code", sa.String(length=8), nullable=False),
        sa.Column("realm", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_reason", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.CheckConstraint(
            "status IN ('active', 'suspended', 'cancelled')", name="ck_accounts_status"
        ),
        sa.ForeignKeyConstraint(["name"], ["credentials.principal"], name="fk_accounts_name"),
        sa.PrimaryKeyConstraint("name", name="pk_accounts"),
    )
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.create_index("ix_accounts_unit_code", ["unit_code"], unique=False)

    op.create_table(
        "staff",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.CheckConstraint(
            "role IN ('carrier', 'auditor', 'officer', 'admin')", name="ck_staff_role"
        ),
        sa.CheckConstraint("status IN ('active', 'disabled')", name="ck_staff_status"),
        sa.ForeignKeyConstraint(["name"], ["credentials.principal"], name="fk_staff_name"),
        sa.PrimaryKeyConstraint("name", name="pk_staff"),
    )
    op.create_table(
        "certificates",
        sa.Column("serial", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=1024), nullable=False),
        sa.Column("fingerprint_sha256", sa.String(length=64), nullable=False),
        sa.Column("not_before_at", sa.Float(), nullable=False),
        sa.Column("not_after_at", sa.Float(), nullable=False),
        sa.Column("issued_at", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.Column("revocation_reason", sa.String(length=32), nullable=True),
        sa.Column("pem", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "(status = 'valid' AND revoked_at IS NULL AND revocation_reason IS NULL) OR (status = 'revoked' AND revoked_at IS NOT NULL AND revocation_reason IS NOT NULL)",
            name="ck_certificates_revocation_consistent",
        ),
        sa.CheckConstraint("kind IN ('ca', 'server', 'client')", name="ck_certificates_kind"),
        sa.CheckConstraint(
            "revocation_reason IS NULL OR revocation_reason IN ('affiliation_changed', 'cessation_of_operation', 'key_compromise', 'superseded', 'unspecified')",
            name="ck_certificates_revocation_reason",
        ),
        sa.CheckConstraint("status IN ('valid', 'revoked')", name="ck_certificates_status"),
        sa.CheckConstraint("not_after_at > not_before_at", name="ck_certificates_validity"),
        sa.PrimaryKeyConstraint("serial", name="pk_certificates"),
    )
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.create_index(
            "ix_certificates_fingerprint_sha256", ["fingerprint_sha256"], unique=True
        )
        batch_op.create_index("ix_certificates_status", ["status"], unique=False)
        batch_op.create_index("ix_certificates_subject", ["subject"], unique=False)

    op.create_table(
        "crl_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("crl_number", sa.BigInteger(), nullable=False),
        sa.Column("issued_at", sa.Float(), nullable=True),
        sa.CheckConstraint("crl_number >= 1", name="ck_crl_state_crl_number"),
        sa.CheckConstraint("id = 1", name="ck_crl_state_single_row"),
        sa.PrimaryKeyConstraint("id", name="pk_crl_state"),
    )
    op.create_table(
        "audit_events",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("unit", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.String(length=128), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.CheckConstraint(
            "outcome IN ('ok', 'refused', 'failed')", name="ck_audit_events_outcome"
        ),
        sa.CheckConstraint("seq >= 1", name="ck_audit_events_seq_positive"),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_events"),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index("ix_audit_events_action", ["action"], unique=False)
        batch_op.create_index("ix_audit_events_actor", ["actor"], unique=False)
        batch_op.create_index("ix_audit_events_at", ["at"], unique=False)
        batch_op.create_index("ix_audit_events_session_id", ["session_id"], unique=False)
        batch_op.create_index("ix_audit_events_subject", ["subject"], unique=False)
        batch_op.create_index("ix_audit_events_unit", ["unit"], unique=False)

    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_audit_head_single_row"),
        sa.CheckConstraint("last_seq >= 0", name="ck_audit_head_last_seq"),
        sa.PrimaryKeyConstraint("id", name="pk_audit_head"),
    )
    op.create_table(
        "units",
        sa.Column("code", sa.String(length=8), nullable=False),
        sa.Column("region", sa.String(length=6), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("credit_code", sa.String(length=18), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("registered_at", sa.Float(), nullable=False),
        sa.Column("registered_by", sa.String(length=128), nullable=False),
        sa.Column("approved_at", sa.Float(), nullable=True),
        sa.Column("approved_by", sa.String(length=128), nullable=True),
        sa.CheckConstraint("status IN ('registered', 'approved')", name="ck_units_status"),
        sa.PrimaryKeyConstraint("code", name="pk_units"),
        sa.UniqueConstraint("credit_code", name="uq_units_credit_code"),
    )
    with op.batch_alter_table("units", schema=None) as batch_op:
        batch_op.create_index("ix_units_region", ["region"], unique=False)

    op.create_table(
        "sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("account", sa.String(length=128), nullable=False),
        sa.Column("unit_code", sa.String(length=8), nullable=False),
        sa.Column("peer", sa.String(length=64), nullable=False),
        sa.Column("cert_serial", sa.String(length=40), nullable=False),
        sa.Column("node", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("last_seen_at", sa.Float(), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.Column("end_reason", sa.String(length=32), nullable=True),
        sa.Column("bytes_in", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("bytes_out", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("streams_opened", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("resume_generation", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("kill_requested_at", sa.Float(), nullable=True),
        sa.Column("kill_reason", sa.String(length=32), nullable=True),
        sa.Column("kill_note", sa.String(length=500), nullable=True),
        sa.Column("kill_actor", sa.String(length=128), nullable=True),
        sa.CheckConstraint("status IN ('live', 'detached', 'ended')", name="ck_sessions_status"),
        sa.PrimaryKeyConstraint("id", name="pk_sessions"),
    )
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.create_index("ix_sessions_account", ["account"], unique=False)
        batch_op.create_index("ix_sessions_started_at", ["started_at"], unique=False)
        batch_op.create_index("ix_sessions_status", ["status"], unique=False)
        batch_op.create_index("ix_sessions_unit_code", ["unit_code"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_sessions_unit_code")
        batch_op.drop_index("ix_sessions_status")
        batch_op.drop_index("ix_sessions_started_at")
        batch_op.drop_index("ix_sessions_account")

    op.drop_table("sessions")
    with op.batch_alter_table("units", schema=None) as batch_op:
        batch_op.drop_index("ix_units_region")

    op.drop_table("units")
    op.drop_table("audit_head")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_unit")
        batch_op.drop_index("ix_audit_events_subject")
        batch_op.drop_index("ix_audit_events_session_id")
        batch_op.drop_index("ix_audit_events_at")
        batch_op.drop_index("ix_audit_events_actor")
        batch_op.drop_index("ix_audit_events_action")

    op.drop_table("audit_events")
    op.drop_table("crl_state")
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.drop_index("ix_certificates_subject")
        batch_op.drop_index("ix_certificates_status")
        batch_op.drop_index("ix_certificates_fingerprint_sha256")

    op.drop_table("certificates")
    op.drop_table("staff")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_index("ix_accounts_unit_code")

    op.drop_table("accounts")
    with op.batch_alter_table("source_failures", schema=None) as batch_op:
        batch_op.drop_index("ix_source_failures_window_started_at")

    op.drop_table("source_failures")
    op.drop_table("credentials")
