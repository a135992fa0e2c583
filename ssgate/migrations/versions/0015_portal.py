"""portal: insured persons' portal accounts, sessions and 参保证明 certificates; the
credentials table accepts the ``person`` principal kind

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("credentials", schema=None) as batch_op:
        batch_op.drop_constraint("ck_credentials_kind", type_="check")
        batch_op.create_check_constraint(
            "ck_credentials_kind", "kind IN ('account', 'staff', 'person')"
        )
    op.create_table(
        "person_accounts",
        sa.Column("principal", sa.String(length=128), nullable=False),
        sa.Column("person_number", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("must_change_password", sa.Boolean(create_constraint=False), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.CheckConstraint("status IN ('active', 'closed')", name="ck_person_accounts_status"),
        sa.PrimaryKeyConstraint("principal", name="pk_person_accounts"),
        sa.UniqueConstraint("person_number", name="uq_person_accounts_person_number"),
    )
    op.create_table(
        "portal_sessions",
        sa.Column("token_digest", sa.String(length=64), nullable=False),
        sa.Column("principal", sa.String(length=128), nullable=False),
        sa.Column("ref", sa.String(length=32), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("last_seen_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("token_digest", name="pk_portal_sessions"),
        sa.UniqueConstraint("ref", name="uq_portal_sessions_ref"),
    )
    with op.batch_alter_table("portal_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_portal_sessions_principal", ["principal"], unique=False)
        batch_op.create_index("ix_portal_sessions_last_seen_at", ["last_seen_at"], unique=False)
    op.create_table(
        "portal_certificates",
        sa.Column("code_digest", sa.String(length=64), nullable=False),
        sa.Column("principal", sa.String(length=128), nullable=False),
        sa.Column("person_number", sa.String(length=20), nullable=False),
        sa.Column("issued_at", sa.Float(), nullable=False),
        sa.Column("valid_until", sa.Float(), nullable=False),
        sa.Column("from_month", sa.String(length=7), nullable=False),
        sa.Column("to_month", sa.String(length=7), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("pdf_sha256", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("code_digest", name="pk_portal_certificates"),
    )
    with op.batch_alter_table("portal_certificates", schema=None) as batch_op:
        batch_op.create_index(
            "ix_portal_certificates_person_number", ["person_number"], unique=False
        )


def downgrade() -> None:
    op.drop_table("portal_certificates")
    op.drop_table("portal_sessions")
    op.drop_table("person_accounts")
    with op.batch_alter_table("credentials", schema=None) as batch_op:
        batch_op.drop_constraint("ck_credentials_kind", type_="check")
        batch_op.create_check_constraint("ck_credentials_kind", "kind IN ('account', 'staff')")
