"""ledger: contribution plans (filled from the existing enrolments), closed months and
adjustments of closed months (issue 14)

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_INSURANCE_CHECK = "insurance IN ('110', '210', '310', '410', '510')"


def upgrade() -> None:
    op.create_table(
        "contribution_plans",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("person_number", sa.String(length=20), nullable=False),
        sa.Column("unit_code", sa.String(length=8), nullable=False),
        sa.Column("insurance", sa.String(length=3), nullable=False),
        sa.Column("from_month", sa.String(length=7), nullable=False),
        sa.Column("until_month", sa.String(length=7), nullable=True),
        sa.Column("base_fen", sa.BigInteger(), nullable=False),
        sa.Column("declaration_id", sa.String(length=32), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.CheckConstraint(_INSURANCE_CHECK, name="ck_contribution_plans_insurance"),
        sa.CheckConstraint(
            "until_month IS NULL OR until_month >= from_month",
            name="ck_contribution_plans_months",
        ),
        sa.CheckConstraint("base_fen >= 0", name="ck_contribution_plans_base"),
        sa.ForeignKeyConstraint(
            ["person_number"],
            ["persons.person_number"],
            name="fk_contribution_plans_person_number",
        ),
        sa.ForeignKeyConstraint(
            ["unit_code"], ["units.code"], name="fk_contribution_plans_unit_code"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_contribution_plans"),
    )
    with op.batch_alter_table("contribution_plans", schema=None) as batch_op:
        batch_op.create_index(
            "ix_contribution_plans_person", ["person_number", "unit_code", "insurance"]
        )
        batch_op.create_index("ix_contribution_plans_months", ["from_month", "until_month"])

    # Enrolments made before the ledger get the plan they imply (their current base
    # from their start month; no base history was kept), so the close covers them.
    op.execute(
        "INSERT INTO contribution_plans (person_number, unit_code, insurance, from_month, "
        "until_month, base_fen, declaration_id, updated_at) "
        "SELECT person_number, unit_code, insurance, start_month, end_month, base_fen, "
        "NULL, updated_at FROM enrolments WHERE end_month IS NULL OR end_month >= start_month"
    )

    op.create_table(
        "ledger_months",
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("closed_at", sa.Float(), nullable=False),
        sa.Column("closed_by", sa.String(length=128), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("month", name="pk_ledger_months"),
    )

    op.create_table(
        "contribution_adjustments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("person_number", sa.String(length=20), nullable=False),
        sa.Column("unit_code", sa.String(length=8), nullable=False),
        sa.Column("insurance", sa.String(length=3), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("base_fen", sa.BigInteger(), nullable=False),
        sa.Column("employer_fen", sa.BigInteger(), nullable=False),
        sa.Column("employee_fen", sa.BigInteger(), nullable=False),
        sa.Column("to_account_fen", sa.BigInteger(), nullable=False),
        sa.Column("declaration_id", sa.String(length=32), nullable=True),
        sa.Column("booked_at", sa.Float(), nullable=False),
        sa.CheckConstraint(_INSURANCE_CHECK, name="ck_contribution_adjustments_insurance"),
        sa.CheckConstraint(
            "kind IN ('arrears', 'refund')", name="ck_contribution_adjustments_kind"
        ),
        sa.ForeignKeyConstraint(
            ["person_number"],
            ["persons.person_number"],
            name="fk_contribution_adjustments_person_number",
        ),
        sa.ForeignKeyConstraint(
            ["unit_code"], ["units.code"], name="fk_contribution_adjustments_unit_code"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_contribution_adjustments"),
    )
    with op.batch_alter_table("contribution_adjustments", schema=None) as batch_op:
        batch_op.create_index("ix_contribution_adjustments_unit_month", ["unit_code", "month"])
        batch_op.create_index(
            "ix_contribution_adjustments_person", ["person_number", "insurance", "month"]
        )


def downgrade() -> None:
    with op.batch_alter_table("contribution_adjustments", schema=None) as batch_op:
        batch_op.drop_index("ix_contribution_adjustments_person")
        batch_op.drop_index("ix_contribution_adjustments_unit_month")
    op.drop_table("contribution_adjustments")
    op.drop_table("ledger_months")
    with op.batch_alter_table("contribution_plans", schema=None) as batch_op:
        batch_op.drop_index("ix_contribution_plans_months")
        batch_op.drop_index("ix_contribution_plans_person")
    op.drop_table("contribution_plans")
