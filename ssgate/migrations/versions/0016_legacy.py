"""legacy opening data: the pension account balance at a year end and the 视同缴费
months imported from the old system (issue 14, ``ssgate declare import-legacy``)

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "legacy_accounts",
        sa.Column("person_number", sa.String(length=20), nullable=False),
        sa.Column("balance_date", sa.Date(), nullable=True),
        sa.Column("balance_fen", sa.BigInteger(), nullable=True),
        sa.Column("deemed_months", sa.Integer(), nullable=True),
        sa.Column("import_id", sa.String(length=32), nullable=False),
        sa.Column("imported_at", sa.Float(), nullable=False),
        sa.Column("imported_by", sa.String(length=128), nullable=False),
        sa.CheckConstraint(
            "(balance_date IS NULL) = (balance_fen IS NULL)", name="ck_legacy_accounts_balance"
        ),
        sa.CheckConstraint(
            "balance_fen IS NULL OR balance_fen >= 0", name="ck_legacy_accounts_amount"
        ),
        sa.CheckConstraint(
            "deemed_months IS NULL OR deemed_months BETWEEN 0 AND 1200",
            name="ck_legacy_accounts_deemed_months",
        ),
        sa.ForeignKeyConstraint(
            ["person_number"],
            ["persons.person_number"],
            name="fk_legacy_accounts_person_number",
        ),
        sa.PrimaryKeyConstraint("person_number", name="pk_legacy_accounts"),
    )


def downgrade() -> None:
    op.drop_table("legacy_accounts")
