"""archives: the catalogue of audit archive files (retention, issue 12)

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_archives",
        sa.Column("first_seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.Column("first_at", sa.Float(), nullable=False),
        sa.Column("last_at", sa.Float(), nullable=False),
        sa.Column("file", sa.String(length=128), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("archived_at", sa.Float(), nullable=False),
        sa.Column("node", sa.String(length=255), nullable=False),
        sa.CheckConstraint("first_seq >= 1", name="ck_audit_archives_first_seq"),
        sa.CheckConstraint("last_seq >= first_seq", name="ck_audit_archives_range"),
        sa.CheckConstraint(
            "count = last_seq - first_seq + 1", name="ck_audit_archives_count"
        ),
        sa.PrimaryKeyConstraint("first_seq", name="pk_audit_archives"),
        sa.UniqueConstraint("file", name="uq_audit_archives_file"),
        sa.UniqueConstraint("last_seq", name="uq_audit_archives_last_seq"),
    )


def downgrade() -> None:
    op.drop_table("audit_archives")
