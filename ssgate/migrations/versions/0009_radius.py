"""radius: what RADIUS accounting says about dial-in sessions (radius_sessions)

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "radius_sessions",
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("account", sa.String(length=128), nullable=False),
        sa.Column("unit_code", sa.String(length=8), nullable=False),
        sa.Column("nas", sa.String(length=64), nullable=False),
        sa.Column("nas_address", sa.String(length=64), nullable=False),
        sa.Column("nas_port", sa.BigInteger(), nullable=True),
        sa.Column("acct_session_id", sa.String(length=64), nullable=False),
        sa.Column("framed_ip", sa.String(length=45), nullable=True),
        sa.Column("calling_station", sa.String(length=64), nullable=True),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("reported_at", sa.Float(), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.Column("end_reason", sa.String(length=32), nullable=True),
        sa.Column("bytes_in", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("bytes_out", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("session_time", sa.Integer(), nullable=True),
        sa.Column("disconnect_at", sa.Float(), nullable=True),
        sa.Column("disconnect_outcome", sa.String(length=32), nullable=True),
        sa.Column("disconnect_rounds", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("session_id", name="pk_radius_sessions"),
    )
    with op.batch_alter_table("radius_sessions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_radius_sessions_nas_acct_session_id", ["nas", "acct_session_id"], unique=False
        )
        batch_op.create_index("ix_radius_sessions_ended_at", ["ended_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("radius_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_radius_sessions_ended_at")
        batch_op.drop_index("ix_radius_sessions_nas_acct_session_id")
    op.drop_table("radius_sessions")
