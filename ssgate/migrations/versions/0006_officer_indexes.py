"""officer_indexes: audit events by action and time (the login failures view, the
login attempts on a session's timeline, and every other "these actions in this time
range" read), replacing the index on action alone

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        # (action, at) serves every look-up (action) did, and seeks the time range
        # too: the failed logins of the last day read that day's logins, not every
        # login ever logged.  One index for one, so appends cost the same.
        batch_op.drop_index("ix_audit_events_action")
        batch_op.create_index("ix_audit_events_action_at", ["action", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_action_at")
        batch_op.create_index("ix_audit_events_action", ["action"], unique=False)
