"""alerts: what the alert rules found, the officers' handling of it, and the
evaluator's cursor (the last audit record judged)

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("dedupe_key", sa.String(length=320), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("account", sa.String(length=255), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("unit", sa.String(length=64), nullable=False),
        sa.Column("first_seen", sa.Float(), nullable=False),
        sa.Column("last_seen", sa.Float(), nullable=False),
        sa.Column("occurrences", sa.Integer(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("changed_by", sa.String(length=255), nullable=True),
        sa.Column("changed_at", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.CheckConstraint(
            "state IN ('new', 'acknowledged', 'closed')", name="ck_alerts_state"
        ),
        sa.CheckConstraint(
            "severity IN ('low', 'medium', 'high')", name="ck_alerts_severity"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
        sa.UniqueConstraint("dedupe_key", name="uq_alerts_dedupe_key"),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index("ix_alerts_rule_id", ["rule", "id"], unique=False)
        batch_op.create_index("ix_alerts_state_id", ["state", "id"], unique=False)

    op.create_table(
        "alert_cursor",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("evaluated_at", sa.Float(), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_alert_cursor_single_row"),
        sa.CheckConstraint("last_seq >= 0", name="ck_alert_cursor_last_seq"),
        sa.PrimaryKeyConstraint("id", name="pk_alert_cursor"),
    )


def downgrade() -> None:
    op.drop_table("alert_cursor")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_alerts_state_id")
        batch_op.drop_index("ix_alerts_rule_id")

    op.drop_table("alerts")
