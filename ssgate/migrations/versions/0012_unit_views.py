"""unit_views: enrolments by (unit, person), and unit_persons (each person's roster
status per unit, kept by triggers on enrolments) so the roster, its counts and the
searches read one index range instead of grouping the unit's whole enrolment set;
filled from the enrolments, then ANALYZE on PostgreSQL so the plans hold on a fresh
install

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from typing import Final

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Connection

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# ruff: noqa: S608 - constant SQL text; only OLD./NEW. column references are put in.
# The triggers as this revision made them, copied here so that the migration does not
# depend on live code (0017 replaces them: declare_app/_unit_persons.py is the current
# text).

# The recomputation of one (unit, person): the AAC031 rule of the roster and the
# first month; no row when the person has no enrolment left in the unit.
_DERIVE: Final = """
    SELECT unit_code, person_number,
           CASE WHEN min(status) = '1' THEN '1' ELSE max(status) END,
           min(start_month)
    FROM enrolments
    WHERE unit_code = {unit} AND person_number = {person}
    GROUP BY unit_code, person_number
"""
_REFRESH_SQLITE: Final = (
    """
    DELETE FROM unit_persons WHERE unit_code = {unit} AND person_number = {person};
    INSERT INTO unit_persons (unit_code, person_number, status, start_month)
"""
    + _DERIVE.rstrip()
    + ";"
)

# An insert only adds to the person's enrolments in the unit, so the row folds the new
# enrolment in (one primary-key upsert, no regrouping): open if either is open, else the
# larger status; the earlier first month.  {least} is the dialect's two-value minimum.
_FOLD_IN: Final = """
    INSERT INTO unit_persons (unit_code, person_number, status, start_month)
    VALUES (NEW.unit_code, NEW.person_number, NEW.status, NEW.start_month)
    ON CONFLICT (unit_code, person_number) DO UPDATE SET
        status = CASE
            WHEN unit_persons.status = '1' OR excluded.status = '1' THEN '1'
            WHEN unit_persons.status > excluded.status THEN unit_persons.status
            ELSE excluded.status
        END,
        start_month = {least}(unit_persons.start_month, excluded.start_month);
"""

SQLITE_TRIGGERS: Final = (
    "CREATE TRIGGER IF NOT EXISTS tr_enrolments_unit_persons_insert"
    " AFTER INSERT ON enrolments BEGIN" + _FOLD_IN.format(least="min") + " END",
    "CREATE TRIGGER IF NOT EXISTS tr_enrolments_unit_persons_update"
    " AFTER UPDATE OF unit_code, person_number, status, start_month ON enrolments BEGIN"
    + _REFRESH_SQLITE.format(unit="OLD.unit_code", person="OLD.person_number")
    + _REFRESH_SQLITE.format(unit="NEW.unit_code", person="NEW.person_number")
    + " END",
    "CREATE TRIGGER IF NOT EXISTS tr_enrolments_unit_persons_delete"
    " AFTER DELETE ON enrolments BEGIN"
    + _REFRESH_SQLITE.format(unit="OLD.unit_code", person="OLD.person_number")
    + " END",
)
SQLITE_DROP: Final = tuple(
    f"DROP TRIGGER IF EXISTS tr_enrolments_unit_persons_{kind}"
    for kind in ("insert", "update", "delete")
)

POSTGRESQL_TRIGGERS: Final = (
    """
CREATE OR REPLACE FUNCTION unit_persons_refresh() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM unit_persons
        WHERE unit_code = OLD.unit_code AND person_number = OLD.person_number;
        INSERT INTO unit_persons (unit_code, person_number, status, start_month)
    """
    + _DERIVE.format(unit="OLD.unit_code", person="OLD.person_number")
    + """;
    END IF;
    IF TG_OP = 'INSERT' THEN
    """
    + _FOLD_IN.format(least="LEAST")
    + """
    END IF;
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM unit_persons
        WHERE unit_code = NEW.unit_code AND person_number = NEW.person_number;
        INSERT INTO unit_persons (unit_code, person_number, status, start_month)
    """
    + _DERIVE.format(unit="NEW.unit_code", person="NEW.person_number")
    + """;
    END IF;
    RETURN NULL;
END
$$
""",
    "CREATE OR REPLACE TRIGGER tr_enrolments_unit_persons"
    " AFTER INSERT OR DELETE OR UPDATE OF unit_code, person_number, status, start_month"
    " ON enrolments FOR EACH ROW EXECUTE FUNCTION unit_persons_refresh()",
)
POSTGRESQL_DROP: Final = (
    "DROP TRIGGER IF EXISTS tr_enrolments_unit_persons ON enrolments",
    "DROP FUNCTION IF EXISTS unit_persons_refresh()",
)

# Fills the table from the enrolments already there (the migration, once).
BACKFILL: Final = """
    INSERT INTO unit_persons (unit_code, person_number, status, start_month)
    SELECT unit_code, person_number,
           CASE WHEN min(status) = '1' THEN '1' ELSE max(status) END,
           min(start_month)
    FROM enrolments
    GROUP BY unit_code, person_number
"""


def install_triggers(conn: Connection) -> None:
    """Create (or replace) the triggers of this revision."""
    statements = POSTGRESQL_TRIGGERS if conn.dialect.name == "postgresql" else SQLITE_TRIGGERS
    for sql in statements:
        conn.exec_driver_sql(sql)


def drop_triggers(conn: Connection) -> None:
    statements = POSTGRESQL_DROP if conn.dialect.name == "postgresql" else SQLITE_DROP
    for sql in statements:
        conn.exec_driver_sql(sql)


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
