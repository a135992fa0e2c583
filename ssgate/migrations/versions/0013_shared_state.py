"""shared_state: the current CRL (crls), the node registry (nodes) and the one stored
copy of the [policy] section (policies), so that gateway nodes sharing a database
agree on them (issue 13)

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "crls",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("crl_number", sa.BigInteger(), nullable=False),
        sa.Column("pem", sa.Text(), nullable=False),
        sa.Column("this_update_at", sa.Float(), nullable=False),
        sa.Column("next_update_at", sa.Float(), nullable=False),
        sa.Column("stored_at", sa.Float(), nullable=False),
        sa.CheckConstraint("crl_number >= 1", name="ck_crls_crl_number"),
        sa.CheckConstraint("id = 1", name="ck_crls_single_row"),
        sa.PrimaryKeyConstraint("id", name="pk_crls"),
    )
    op.create_table(
        "nodes",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("last_heartbeat_at", sa.Float(), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("draining", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("stopped_at", sa.Float(), nullable=True),
        sa.Column("stop_reason", sa.String(length=16), nullable=True),
        sa.CheckConstraint(
            "stop_reason IS NULL OR stop_reason IN ('stopped', 'lost')",
            name="ck_nodes_stop_reason",
        ),
        sa.PrimaryKeyConstraint("name", name="pk_nodes"),
    )
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        batch_op.create_index("ix_nodes_last_heartbeat_at", ["last_heartbeat_at"], unique=False)
    op.create_table(
        "policies",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("stored_at", sa.Float(), nullable=False),
        sa.Column("stored_by", sa.String(length=255), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_policies_single_row"),
        sa.PrimaryKeyConstraint("id", name="pk_policies"),
    )


def downgrade() -> None:
    op.drop_table("policies")
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        batch_op.drop_index("ix_nodes_last_heartbeat_at")
    op.drop_table("nodes")
    op.drop_table("crls")
