"""unit_views: enrolments by (unit, person), and unit_persons (each person's roster status per unit, kept by triggers on
enrolments) so the roster, its counts and the searches read one index range instead
of grouping the unit's whole enrolment set; filled from the enrolments, then ANALYZE
on PostgreSQL so the plans hold on a fresh install

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from declare_app._unit_persons import BACKFILL, drop_triggers, install_triggers

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "unit_persons",
        sa.Column("unit_code", sa.String(length=8), nullable=False),
        sa.Column("person_number", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=1), nullable=False),
        sa.Column("start_month", sa.String(length=7), nullable=False),
        sa.CheckConstraint("status IN ('1', '2', '3')", name="ck_unit_persons_status"),
        sa.ForeignKeyConstraint(
            ["person_number"], ["persons.person_number"], name="fk_unit_persons_person_number"
        ),
        sa.ForeignKeyConstraint(["unit_code"], ["units.code"], name="fk_unit_persons_unit_code"),
        sa.PrimaryKeyConstraint("unit_code", "person_number", name="pk_unit_persons"),
    )
    with op.batch_alter_table("unit_persons", schema=None) as batch_op:
        batch_op.create_index(
            "ix_unit_persons_status", ["unit_code", "status", "person_number"], unique=False
        )
    with op.batch_alter_table("enrolments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_enrolments_unit_person", ["unit_code", "person_number"], unique=False
        )
    conn = op.get_bind()
    conn.exec_driver_sql(BACKFILL)
    install_triggers(conn)
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("ANALYZE unit_persons")
        conn.exec_driver_sql("ANALYZE enrolments")
        conn.exec_driver_sql("ANALYZE persons")


def downgrade() -> None:
    drop_triggers(op.get_bind())
    with op.batch_alter_table("enrolments", schema=None) as batch_op:
        batch_op.drop_index("ix_enrolments_unit_person")
    with op.batch_alter_table("unit_persons", schema=None) as batch_op:
        batch_op.drop_index("ix_unit_persons_status")
    op.drop_table("unit_persons")
