"""syslog: per collector, the last audit record delivered and which node forwards

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "syslog_cursors",
        sa.Column("collector", sa.String(length=255), nullable=False),
        sa.Column("delivered_seq", sa.BigInteger(), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("lease_until", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.CheckConstraint("delivered_seq >= 0", name="ck_syslog_cursors_delivered_seq"),
        sa.PrimaryKeyConstraint("collector", name="pk_syslog_cursors"),
    )


def downgrade() -> None:
    op.drop_table("syslog_cursors")
