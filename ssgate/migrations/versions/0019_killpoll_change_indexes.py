"""killpoll_change_indexes: the gateway's kill poll reads what changed, not every session

Every second each gateway node asks which of its live sessions must end (a kill
request, an account no longer active, a revoked certificate, a session ended
elsewhere).  It asked about every live session id; now it reads only what changed
since its last look and matches it against its live set in Python:

- ``ix_sessions_kill_pending``: a partial index of the kill requests not yet acted
  on (``kill_requested_at IS NOT NULL AND status <> 'ended'``), a few rows however
  many sessions are open;
- ``ix_certificates_revoked_at``: the certificates revoked since the last look;
- ``ix_accounts_updated_at``: the accounts changed since the last look.

(The sessions ended since then are read through ``ix_sessions_ended_at``, 0011.)

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

# This revision's own copy of gateway._schema.KILL_PENDING.
KILL_PENDING = "kill_requested_at IS NOT NULL AND status <> 'ended'"


def upgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sessions_kill_pending",
            ["id"],
            unique=False,
            sqlite_where=sa.text(KILL_PENDING),
            postgresql_where=sa.text(KILL_PENDING),
        )
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.create_index("ix_certificates_revoked_at", ["revoked_at"], unique=False)
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.create_index("ix_accounts_updated_at", ["updated_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_index("ix_accounts_updated_at")
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.drop_index("ix_certificates_revoked_at")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_sessions_kill_pending")
