"""unit_query_indexes: the unit's pages at 50,000 persons without scanning the unit

- ``unit_persons.name`` (a copy of the person's name, kept by the triggers) and
  ``ix_unit_persons_status_name`` in place of ``ix_unit_persons_status``: a search by
  name fragment reads the unit's own range of one covering index, never the pool's
  every person; ``ix_unit_persons_person`` for copying a new name to a person's rows;
- ``unit_enrolment_counts`` (enrolments per unit, insurance and status, kept by the
  triggers): 单位基本信息 reads a handful of rows instead of counting the unit;
- ``ix_enrolments_insurance_unit`` (the first month per insurance, one probe each),
  ``ix_enrolments_stop_unit`` (the unit's retirements) and
  ``ix_contributions_unit_ledger`` (单位缴费 grouped straight from a covering index);
- the triggers replaced: on PostgreSQL, inserts are folded in by a statement trigger
  over the inserted rows (a batch approval's bulk insert costs one grouped upsert per
  statement);
- filled from the data there, then ANALYZE on PostgreSQL so the plans hold at once.

The trigger text is this revision's own copy (declare_app/_unit_persons.py is the
live one); the downgrade puts back 0012's.

Revision ID: 0017
Revises: 0016
"""

# ruff: noqa: E501 - constant SQL text copied from the code of this revision.
from __future__ import annotations

from typing import Final

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

SQLITE_TRIGGERS: Final = (
    "DROP TRIGGER IF EXISTS tr_enrolments_unit_persons_insert",
    "DROP TRIGGER IF EXISTS tr_enrolments_unit_persons_update",
    "DROP TRIGGER IF EXISTS tr_enrolments_unit_persons_delete",
    "DROP TRIGGER IF EXISTS tr_persons_unit_persons_name",
    """
CREATE TRIGGER tr_enrolments_unit_persons_insert AFTER INSERT ON enrolments BEGIN
    INSERT INTO unit_persons (unit_code, person_number, status, start_month, name)
    VALUES (NEW.unit_code, NEW.person_number, NEW.status, NEW.start_month,
            (SELECT name FROM persons WHERE persons.person_number = NEW.person_number))

    ON CONFLICT (unit_code, person_number) DO UPDATE SET
        status = CASE
            WHEN unit_persons.status = '1' OR excluded.status = '1' THEN '1'
            WHEN unit_persons.status > excluded.status THEN unit_persons.status
            ELSE excluded.status
        END,
        start_month = min(unit_persons.start_month, excluded.start_month);

    INSERT INTO unit_enrolment_counts (unit_code, insurance, status, n)
    VALUES (NEW.unit_code, NEW.insurance, NEW.status, 1)
    ON CONFLICT (unit_code, insurance, status) DO UPDATE SET n = unit_enrolment_counts.n + 1;
 END
""",
    """
CREATE TRIGGER tr_enrolments_unit_persons_update AFTER UPDATE OF unit_code, person_number, insurance, status, start_month ON enrolments BEGIN
    DELETE FROM unit_persons WHERE unit_code = OLD.unit_code AND person_number = OLD.person_number;
    INSERT INTO unit_persons (unit_code, person_number, status, start_month, name)

    SELECT unit_code, person_number,
           CASE WHEN min(status) = '1' THEN '1' ELSE max(status) END,
           min(start_month),
           (SELECT name FROM persons WHERE persons.person_number = OLD.person_number)
    FROM enrolments
    WHERE unit_code = OLD.unit_code AND person_number = OLD.person_number
    GROUP BY unit_code, person_number;
    DELETE FROM unit_persons WHERE unit_code = NEW.unit_code AND person_number = NEW.person_number;
    INSERT INTO unit_persons (unit_code, person_number, status, start_month, name)

    SELECT unit_code, person_number,
           CASE WHEN min(status) = '1' THEN '1' ELSE max(status) END,
           min(start_month),
           (SELECT name FROM persons WHERE persons.person_number = NEW.person_number)
    FROM enrolments
    WHERE unit_code = NEW.unit_code AND person_number = NEW.person_number
    GROUP BY unit_code, person_number;
    UPDATE unit_enrolment_counts SET n = n - 1
    WHERE unit_code = OLD.unit_code AND insurance = OLD.insurance
      AND status = OLD.status;

    INSERT INTO unit_enrolment_counts (unit_code, insurance, status, n)
    VALUES (NEW.unit_code, NEW.insurance, NEW.status, 1)
    ON CONFLICT (unit_code, insurance, status) DO UPDATE SET n = unit_enrolment_counts.n + 1;
 END
""",
    """
CREATE TRIGGER tr_enrolments_unit_persons_delete AFTER DELETE ON enrolments BEGIN
    DELETE FROM unit_persons WHERE unit_code = OLD.unit_code AND person_number = OLD.person_number;
    INSERT INTO unit_persons (unit_code, person_number, status, start_month, name)

    SELECT unit_code, person_number,
           CASE WHEN min(status) = '1' THEN '1' ELSE max(status) END,
           min(start_month),
           (SELECT name FROM persons WHERE persons.person_number = OLD.person_number)
    FROM enrolments
    WHERE unit_code = OLD.unit_code AND person_number = OLD.person_number
    GROUP BY unit_code, person_number;
    UPDATE unit_enrolment_counts SET n = n - 1
    WHERE unit_code = OLD.unit_code AND insurance = OLD.insurance
      AND status = OLD.status;
 END
""",
    """
CREATE TRIGGER tr_persons_unit_persons_name AFTER UPDATE OF name ON persons BEGIN
    UPDATE unit_persons SET name = NEW.name WHERE person_number = NEW.person_number;
 END
""",
)


SQLITE_DROP: Final = (
    "DROP TRIGGER IF EXISTS tr_enrolments_unit_persons_insert",
    "DROP TRIGGER IF EXISTS tr_enrolments_unit_persons_update",
    "DROP TRIGGER IF EXISTS tr_enrolments_unit_persons_delete",
    "DROP TRIGGER IF EXISTS tr_persons_unit_persons_name",
)


POSTGRESQL_TRIGGERS: Final = (
    """
CREATE OR REPLACE FUNCTION unit_persons_refresh() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN

    DELETE FROM unit_persons WHERE unit_code = OLD.unit_code AND person_number = OLD.person_number;
    INSERT INTO unit_persons (unit_code, person_number, status, start_month, name)

    SELECT unit_code, person_number,
           CASE WHEN min(status) = '1' THEN '1' ELSE max(status) END,
           min(start_month),
           (SELECT name FROM persons WHERE persons.person_number = OLD.person_number)
    FROM enrolments
    WHERE unit_code = OLD.unit_code AND person_number = OLD.person_number
    GROUP BY unit_code, person_number;
    UPDATE unit_enrolment_counts SET n = n - 1
    WHERE unit_code = OLD.unit_code AND insurance = OLD.insurance
      AND status = OLD.status;

    IF TG_OP = 'UPDATE' THEN

    DELETE FROM unit_persons WHERE unit_code = NEW.unit_code AND person_number = NEW.person_number;
    INSERT INTO unit_persons (unit_code, person_number, status, start_month, name)

    SELECT unit_code, person_number,
           CASE WHEN min(status) = '1' THEN '1' ELSE max(status) END,
           min(start_month),
           (SELECT name FROM persons WHERE persons.person_number = NEW.person_number)
    FROM enrolments
    WHERE unit_code = NEW.unit_code AND person_number = NEW.person_number
    GROUP BY unit_code, person_number;
    INSERT INTO unit_enrolment_counts (unit_code, insurance, status, n)
    VALUES (NEW.unit_code, NEW.insurance, NEW.status, 1)
    ON CONFLICT (unit_code, insurance, status) DO UPDATE SET n = unit_enrolment_counts.n + 1;

    END IF;
    RETURN NULL;
END
$$
""",
    "CREATE OR REPLACE TRIGGER tr_enrolments_unit_persons AFTER DELETE OR UPDATE OF unit_code, person_number, insurance, status, start_month ON enrolments FOR EACH ROW EXECUTE FUNCTION unit_persons_refresh()",
    """
CREATE OR REPLACE FUNCTION unit_persons_added() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO unit_persons (unit_code, person_number, status, start_month, name)
    SELECT a.unit_code, a.person_number,
           CASE WHEN min(a.status) = '1' THEN '1' ELSE max(a.status) END,
           min(a.start_month), min(p.name)
    FROM added a JOIN persons p ON p.person_number = a.person_number
    GROUP BY a.unit_code, a.person_number
    ORDER BY a.unit_code, a.person_number

    ON CONFLICT (unit_code, person_number) DO UPDATE SET
        status = CASE
            WHEN unit_persons.status = '1' OR excluded.status = '1' THEN '1'
            WHEN unit_persons.status > excluded.status THEN unit_persons.status
            ELSE excluded.status
        END,
        start_month = LEAST(unit_persons.start_month, excluded.start_month);

    INSERT INTO unit_enrolment_counts (unit_code, insurance, status, n)
    SELECT unit_code, insurance, status, count(*) FROM added
    GROUP BY unit_code, insurance, status
    ORDER BY unit_code, insurance, status
    ON CONFLICT (unit_code, insurance, status)
        DO UPDATE SET n = unit_enrolment_counts.n + excluded.n;
    RETURN NULL;
END
$$
""",
    "CREATE OR REPLACE TRIGGER tr_enrolments_unit_persons_added AFTER INSERT ON enrolments REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION unit_persons_added()",
    """
CREATE OR REPLACE FUNCTION unit_persons_name() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN

    UPDATE unit_persons SET name = NEW.name WHERE person_number = NEW.person_number;

    RETURN NULL;
END
$$
""",
    "CREATE OR REPLACE TRIGGER tr_persons_unit_persons_name AFTER UPDATE OF name ON persons FOR EACH ROW EXECUTE FUNCTION unit_persons_name()",
)


POSTGRESQL_DROP: Final = (
    "DROP TRIGGER IF EXISTS tr_enrolments_unit_persons ON enrolments",
    "DROP TRIGGER IF EXISTS tr_enrolments_unit_persons_added ON enrolments",
    "DROP TRIGGER IF EXISTS tr_persons_unit_persons_name ON persons",
    "DROP FUNCTION IF EXISTS unit_persons_refresh()",
    "DROP FUNCTION IF EXISTS unit_persons_added()",
    "DROP FUNCTION IF EXISTS unit_persons_name()",
)


SQLITE_TRIGGERS_0012: Final = (
    """
CREATE TRIGGER IF NOT EXISTS tr_enrolments_unit_persons_insert AFTER INSERT ON enrolments BEGIN
    INSERT INTO unit_persons (unit_code, person_number, status, start_month)
    VALUES (NEW.unit_code, NEW.person_number, NEW.status, NEW.start_month)
    ON CONFLICT (unit_code, person_number) DO UPDATE SET
        status = CASE
            WHEN unit_persons.status = '1' OR excluded.status = '1' THEN '1'
            WHEN unit_persons.status > excluded.status THEN unit_persons.status
            ELSE excluded.status
        END,
        start_month = min(unit_persons.start_month, excluded.start_month);
 END
""",
    """
CREATE TRIGGER IF NOT EXISTS tr_enrolments_unit_persons_update AFTER UPDATE OF unit_code, person_number, status, start_month ON enrolments BEGIN
    DELETE FROM unit_persons WHERE unit_code = OLD.unit_code AND person_number = OLD.person_number;
    INSERT INTO unit_persons (unit_code, person_number, status, start_month)

    SELECT unit_code, person_number,
           CASE WHEN min(status) = '1' THEN '1' ELSE max(status) END,
           min(start_month)
    FROM enrolments
    WHERE unit_code = OLD.unit_code AND person_number = OLD.person_number
    GROUP BY unit_code, person_number;
    DELETE FROM unit_persons WHERE unit_code = NEW.unit_code AND person_number = NEW.person_number;
    INSERT INTO unit_persons (unit_code, person_number, status, start_month)

    SELECT unit_code, person_number,
           CASE WHEN min(status) = '1' THEN '1' ELSE max(status) END,
           min(start_month)
    FROM enrolments
    WHERE unit_code = NEW.unit_code AND person_number = NEW.person_number
    GROUP BY unit_code, person_number; END
""",
    """
CREATE TRIGGER IF NOT EXISTS tr_enrolments_unit_persons_delete AFTER DELETE ON enrolments BEGIN
    DELETE FROM unit_persons WHERE unit_code = OLD.unit_code AND person_number = OLD.person_number;
    INSERT INTO unit_persons (unit_code, person_number, status, start_month)

    SELECT unit_code, person_number,
           CASE WHEN min(status) = '1' THEN '1' ELSE max(status) END,
           min(start_month)
    FROM enrolments
    WHERE unit_code = OLD.unit_code AND person_number = OLD.person_number
    GROUP BY unit_code, person_number; END
""",
)


POSTGRESQL_TRIGGERS_0012: Final = (
    """
CREATE OR REPLACE FUNCTION unit_persons_refresh() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM unit_persons
        WHERE unit_code = OLD.unit_code AND person_number = OLD.person_number;
        INSERT INTO unit_persons (unit_code, person_number, status, start_month)

    SELECT unit_code, person_number,
           CASE WHEN min(status) = '1' THEN '1' ELSE max(status) END,
           min(start_month)
    FROM enrolments
    WHERE unit_code = OLD.unit_code AND person_number = OLD.person_number
    GROUP BY unit_code, person_number
;
    END IF;
    IF TG_OP = 'INSERT' THEN

    INSERT INTO unit_persons (unit_code, person_number, status, start_month)
    VALUES (NEW.unit_code, NEW.person_number, NEW.status, NEW.start_month)
    ON CONFLICT (unit_code, person_number) DO UPDATE SET
        status = CASE
            WHEN unit_persons.status = '1' OR excluded.status = '1' THEN '1'
            WHEN unit_persons.status > excluded.status THEN unit_persons.status
            ELSE excluded.status
        END,
        start_month = LEAST(unit_persons.start_month, excluded.start_month);

    END IF;
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM unit_persons
        WHERE unit_code = NEW.unit_code AND person_number = NEW.person_number;
        INSERT INTO unit_persons (unit_code, person_number, status, start_month)

    SELECT unit_code, person_number,
           CASE WHEN min(status) = '1' THEN '1' ELSE max(status) END,
           min(start_month)
    FROM enrolments
    WHERE unit_code = NEW.unit_code AND person_number = NEW.person_number
    GROUP BY unit_code, person_number
;
    END IF;
    RETURN NULL;
END
$$
""",
    "CREATE OR REPLACE TRIGGER tr_enrolments_unit_persons AFTER INSERT OR DELETE OR UPDATE OF unit_code, person_number, status, start_month ON enrolments FOR EACH ROW EXECUTE FUNCTION unit_persons_refresh()",
)


def _run(statements: tuple[str, ...]) -> None:
    conn = op.get_bind()
    for sql in statements:
        conn.exec_driver_sql(sql)


def upgrade() -> None:
    conn = op.get_bind()
    postgresql = conn.dialect.name == "postgresql"
    _run(POSTGRESQL_DROP if postgresql else SQLITE_DROP)  # 0012's triggers too
    with op.batch_alter_table("unit_persons", schema=None) as batch_op:
        batch_op.add_column(sa.Column("name", sa.String(length=100), nullable=True))
        batch_op.drop_index("ix_unit_persons_status")
        batch_op.create_index(
            "ix_unit_persons_status_name",
            ["unit_code", "status", "person_number", "name"],
            unique=False,
        )
        batch_op.create_index("ix_unit_persons_person", ["person_number"], unique=False)
    op.create_table(
        "unit_enrolment_counts",
        sa.Column("unit_code", sa.String(length=8), nullable=False),
        sa.Column("insurance", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=1), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["unit_code"], ["units.code"], name="fk_unit_enrolment_counts_unit_code"
        ),
        sa.PrimaryKeyConstraint(
            "unit_code", "insurance", "status", name="pk_unit_enrolment_counts"
        ),
    )
    with op.batch_alter_table("enrolments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_enrolments_insurance_unit", ["insurance", "unit_code", "start_month"], unique=False
        )
        batch_op.create_index(
            "ix_enrolments_stop_unit",
            ["stop_reason", "unit_code", "status", "person_number", "end_month"],
            unique=False,
        )
    with op.batch_alter_table("contributions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_contributions_unit_ledger",
            [
                "unit_code",
                "month",
                "insurance",
                "status",
                "base_fen",
                "employer_fen",
                "employee_fen",
                "paid_on",
            ],
            unique=False,
        )
    conn.exec_driver_sql(
        "UPDATE unit_persons SET name ="
        " (SELECT name FROM persons WHERE persons.person_number = unit_persons.person_number)"
    )
    conn.exec_driver_sql(
        "INSERT INTO unit_enrolment_counts (unit_code, insurance, status, n)"
        " SELECT unit_code, insurance, status, count(*) FROM enrolments"
        " GROUP BY unit_code, insurance, status"
    )
    _run(POSTGRESQL_TRIGGERS if postgresql else SQLITE_TRIGGERS)
    if postgresql:
        for table in (
            "unit_persons",
            "unit_enrolment_counts",
            "enrolments",
            "persons",
            "contributions",
        ):
            conn.exec_driver_sql(f"ANALYZE {table}")


def downgrade() -> None:
    conn = op.get_bind()
    postgresql = conn.dialect.name == "postgresql"
    _run(POSTGRESQL_DROP if postgresql else SQLITE_DROP)
    with op.batch_alter_table("contributions", schema=None) as batch_op:
        batch_op.drop_index("ix_contributions_unit_ledger")
    with op.batch_alter_table("enrolments", schema=None) as batch_op:
        batch_op.drop_index("ix_enrolments_stop_unit")
        batch_op.drop_index("ix_enrolments_insurance_unit")
    op.drop_table("unit_enrolment_counts")
    with op.batch_alter_table("unit_persons", schema=None) as batch_op:
        batch_op.drop_index("ix_unit_persons_person")
        batch_op.drop_index("ix_unit_persons_status_name")
        batch_op.create_index(
            "ix_unit_persons_status", ["unit_code", "status", "person_number"], unique=False
        )
        batch_op.drop_column("name")
    _run(POSTGRESQL_TRIGGERS_0012 if postgresql else SQLITE_TRIGGERS_0012)
