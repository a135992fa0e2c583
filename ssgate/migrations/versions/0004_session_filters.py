"""session_filters: indexes for the officers' session list (account, unit, node and
end reason each with the start time; the peer address)

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        # The (column, started_at) indexes serve every look-up the single-column
        # ones did, so those go.
        batch_op.drop_index("ix_sessions_account")
        batch_op.drop_index("ix_sessions_unit_code")
        batch_op.create_index(
            "ix_sessions_account_started_at", ["account", "started_at"], unique=False
        )
        batch_op.create_index(
            "ix_sessions_unit_code_started_at", ["unit_code", "started_at"], unique=False
        )
        batch_op.create_index("ix_sessions_node_started_at", ["node", "started_at"], unique=False)
        batch_op.create_index(
            "ix_sessions_end_reason_started_at", ["end_reason", "started_at"], unique=False
        )
        batch_op.create_index("ix_sessions_peer", ["peer"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_sessions_peer")
        batch_op.drop_index("ix_sessions_end_reason_started_at")
        batch_op.drop_index("ix_sessions_node_started_at")
        batch_op.drop_index("ix_sessions_unit_code_started_at")
        batch_op.drop_index("ix_sessions_account_started_at")
        batch_op.create_index("ix_sessions_unit_code", ["unit_code"], unique=False)
        batch_op.create_index("ix_sessions_account", ["account"], unique=False)
