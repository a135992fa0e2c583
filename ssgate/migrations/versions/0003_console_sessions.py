"""console_sessions: staff console sessions in the database (shared by every node,
kept across restarts)

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("token_digest", sa.String(length=64), nullable=False),
        sa.Column("staff", sa.String(length=32), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("ref", sa.String(length=32), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("last_seen_at", sa.Float(), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.Column("end_reason", sa.String(length=32), nullable=True),
        sa.CheckConstraint(
            "role IN ('carrier', 'auditor', 'officer', 'admin')", name="ck_console_sessions_role"
        ),
        sa.ForeignKeyConstraint(["staff"], ["staff.name"], name="fk_console_sessions_staff"),
        sa.PrimaryKeyConstraint("token_digest", name="pk_console_sessions"),
        sa.UniqueConstraint("ref", name="uq_console_sessions_ref"),
    )
    with op.batch_alter_table("console_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_console_sessions_last_seen_at", ["last_seen_at"], unique=False)
        batch_op.create_index("ix_console_sessions_staff", ["staff"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("console_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_console_sessions_staff")
        batch_op.drop_index("ix_console_sessions_last_seen_at")

    op.drop_table("console_sessions")
