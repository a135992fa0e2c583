"""session_end_index: sessions by end time (the charts' open-sessions count)

The charts count the sessions open at each hour of the last day: those started
before an instant and not ended by it (``ended_at IS NULL OR ended_at > first``).
``started_at <= last`` holds for nearly every session ever recorded, so without an
index on ``ended_at`` the count reads the whole table; with it, the two sides of the
``OR`` are two seeks (the open sessions, the day's ends).

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.create_index("ix_sessions_ended_at", ["ended_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_sessions_ended_at")
