"""pages: the roster's counts and 单位缴费's sums kept by the database; 到龄 by index

- ``unit_person_counts`` (persons per unit and AAC031 status), kept by triggers on
  ``unit_persons``: the roster's counts and total without a filter are a few rows,
  not a range of the unit's 50,000 persons;
- ``unit_ledger_totals`` (sums per unit, 费款所属期, 险种, line status and day paid),
  kept by triggers on ``contributions``: 单位缴费's groups, totals and late fees
  without reading every line of the unit;
- ``ix_persons_birth_date`` and ``ix_persons_retirement_override``: 单位到龄人员查询
  reads the persons born in the months whose statutory month falls in the window
  (and the few with an override), not every person of the unit;
- both tables filled from the data there, then ANALYZE on PostgreSQL.

The trigger text is this revision's own copy (declare_app/_unit_persons.py and
declare_app/_unit_totals.py are the live ones).

Revision ID: 0018
Revises: 0017
"""

# ruff: noqa: E501 - constant SQL text copied from the code of this revision.
from __future__ import annotations

from typing import Final

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

SQLITE_TRIGGERS: Final = (
    """DROP TRIGGER IF EXISTS tr_unit_persons_counts_insert""",
    """DROP TRIGGER IF EXISTS tr_unit_persons_counts_update""",
    """DROP TRIGGER IF EXISTS tr_unit_persons_counts_delete""",
    """CREATE TRIGGER tr_unit_persons_counts_insert AFTER INSERT ON unit_persons BEGIN
    INSERT INTO unit_person_counts (unit_code, status, n)
    VALUES (NEW.unit_code, NEW.status, 1)
    ON CONFLICT (unit_code, status) DO UPDATE SET n = unit_person_counts.n + 1;
 END""",
    """CREATE TRIGGER tr_unit_persons_counts_update AFTER UPDATE OF unit_code, status ON unit_persons BEGIN
    UPDATE unit_person_counts SET n = n - 1
    WHERE unit_code = OLD.unit_code AND status = OLD.status;

    INSERT INTO unit_person_counts (unit_code, status, n)
    VALUES (NEW.unit_code, NEW.status, 1)
    ON CONFLICT (unit_code, status) DO UPDATE SET n = unit_person_counts.n + 1;
 END""",
    """CREATE TRIGGER tr_unit_persons_counts_delete AFTER DELETE ON unit_persons BEGIN
    UPDATE unit_person_counts SET n = n - 1
    WHERE unit_code = OLD.unit_code AND status = OLD.status;
 END""",
    """DROP TRIGGER IF EXISTS tr_contributions_totals_insert""",
    """DROP TRIGGER IF EXISTS tr_contributions_totals_update""",
    """DROP TRIGGER IF EXISTS tr_contributions_totals_delete""",
    """CREATE TRIGGER tr_contributions_totals_insert AFTER INSERT ON contributions BEGIN
    INSERT INTO unit_ledger_totals (unit_code, month, insurance, status, paid_on, lines, base_fen, employer_fen, employee_fen)
    VALUES (NEW.unit_code, NEW.month, NEW.insurance, NEW.status,
            COALESCE(NEW.paid_on, '0001-01-01'),
            1, NEW.base_fen, NEW.employer_fen, NEW.employee_fen)
    ON CONFLICT (unit_code, month, insurance, status, paid_on) DO UPDATE SET
        lines = unit_ledger_totals.lines + 1,
        base_fen = unit_ledger_totals.base_fen + excluded.base_fen,
        employer_fen = unit_ledger_totals.employer_fen + excluded.employer_fen,
        employee_fen = unit_ledger_totals.employee_fen + excluded.employee_fen;
 END""",
    """CREATE TRIGGER tr_contributions_totals_update AFTER UPDATE OF unit_code, month, insurance, status, paid_on, base_fen, employer_fen, employee_fen ON contributions BEGIN
    UPDATE unit_ledger_totals SET
        lines = lines - 1,
        base_fen = base_fen - OLD.base_fen,
        employer_fen = employer_fen - OLD.employer_fen,
        employee_fen = employee_fen - OLD.employee_fen
    WHERE unit_code = OLD.unit_code AND month = OLD.month AND insurance = OLD.insurance
      AND status = OLD.status AND paid_on = COALESCE(OLD.paid_on, '0001-01-01');
    DELETE FROM unit_ledger_totals
    WHERE unit_code = OLD.unit_code AND month = OLD.month AND insurance = OLD.insurance
      AND status = OLD.status AND paid_on = COALESCE(OLD.paid_on, '0001-01-01') AND lines = 0;

    INSERT INTO unit_ledger_totals (unit_code, month, insurance, status, paid_on, lines, base_fen, employer_fen, employee_fen)
    VALUES (NEW.unit_code, NEW.month, NEW.insurance, NEW.status,
            COALESCE(NEW.paid_on, '0001-01-01'),
            1, NEW.base_fen, NEW.employer_fen, NEW.employee_fen)
    ON CONFLICT (unit_code, month, insurance, status, paid_on) DO UPDATE SET
        lines = unit_ledger_totals.lines + 1,
        base_fen = unit_ledger_totals.base_fen + excluded.base_fen,
        employer_fen = unit_ledger_totals.employer_fen + excluded.employer_fen,
        employee_fen = unit_ledger_totals.employee_fen + excluded.employee_fen;
 END""",
    """CREATE TRIGGER tr_contributions_totals_delete AFTER DELETE ON contributions BEGIN
    UPDATE unit_ledger_totals SET
        lines = lines - 1,
        base_fen = base_fen - OLD.base_fen,
        employer_fen = employer_fen - OLD.employer_fen,
        employee_fen = employee_fen - OLD.employee_fen
    WHERE unit_code = OLD.unit_code AND month = OLD.month AND insurance = OLD.insurance
      AND status = OLD.status AND paid_on = COALESCE(OLD.paid_on, '0001-01-01');
    DELETE FROM unit_ledger_totals
    WHERE unit_code = OLD.unit_code AND month = OLD.month AND insurance = OLD.insurance
      AND status = OLD.status AND paid_on = COALESCE(OLD.paid_on, '0001-01-01') AND lines = 0;
 END""",
)

SQLITE_DROP: Final = (
    """DROP TRIGGER IF EXISTS tr_contributions_totals_insert""",
    """DROP TRIGGER IF EXISTS tr_contributions_totals_update""",
    """DROP TRIGGER IF EXISTS tr_contributions_totals_delete""",
    """DROP TRIGGER IF EXISTS tr_unit_persons_counts_insert""",
    """DROP TRIGGER IF EXISTS tr_unit_persons_counts_update""",
    """DROP TRIGGER IF EXISTS tr_unit_persons_counts_delete""",
)

POSTGRESQL_TRIGGERS: Final = (
    """
CREATE OR REPLACE FUNCTION unit_person_counts_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN

    INSERT INTO unit_person_counts (unit_code, status, n)
    SELECT unit_code, status, sum(d) FROM (SELECT unit_code, status, 1 AS d FROM new_rows) AS delta
    GROUP BY unit_code, status
    HAVING sum(d) <> 0
    ORDER BY unit_code, status
    ON CONFLICT (unit_code, status) DO UPDATE SET n = unit_person_counts.n + excluded.n;

    RETURN NULL;
END
$$
""",
    """
CREATE OR REPLACE FUNCTION unit_person_counts_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN

    INSERT INTO unit_person_counts (unit_code, status, n)
    SELECT unit_code, status, sum(d) FROM (SELECT unit_code, status, 1 AS d FROM new_rows UNION ALL SELECT unit_code, status, -1 FROM old_rows) AS delta
    GROUP BY unit_code, status
    HAVING sum(d) <> 0
    ORDER BY unit_code, status
    ON CONFLICT (unit_code, status) DO UPDATE SET n = unit_person_counts.n + excluded.n;

    RETURN NULL;
END
$$
""",
    """
CREATE OR REPLACE FUNCTION unit_person_counts_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN

    INSERT INTO unit_person_counts (unit_code, status, n)
    SELECT unit_code, status, sum(d) FROM (SELECT unit_code, status, -1 AS d FROM old_rows) AS delta
    GROUP BY unit_code, status
    HAVING sum(d) <> 0
    ORDER BY unit_code, status
    ON CONFLICT (unit_code, status) DO UPDATE SET n = unit_person_counts.n + excluded.n;

    RETURN NULL;
END
$$
""",
    """CREATE OR REPLACE TRIGGER tr_unit_persons_counts_insert AFTER INSERT ON unit_persons REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION unit_person_counts_inserted()""",
    """CREATE OR REPLACE TRIGGER tr_unit_persons_counts_update AFTER UPDATE ON unit_persons REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION unit_person_counts_updated()""",
    """CREATE OR REPLACE TRIGGER tr_unit_persons_counts_delete AFTER DELETE ON unit_persons REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION unit_person_counts_deleted()""",
    """CREATE OR REPLACE FUNCTION unit_ledger_totals_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN

    INSERT INTO unit_ledger_totals (unit_code, month, insurance, status, paid_on, lines, base_fen, employer_fen, employee_fen)
    SELECT unit_code, month, insurance, status, paid_on, sum(dl), sum(db), sum(de), sum(dp) FROM (SELECT unit_code, month, insurance, status, COALESCE(paid_on, '0001-01-01') AS paid_on, 1 AS dl, base_fen AS db, employer_fen AS de, employee_fen AS dp FROM new_rows) AS delta
    GROUP BY unit_code, month, insurance, status, paid_on
    HAVING sum(dl) <> 0 OR sum(db) <> 0 OR sum(de) <> 0 OR sum(dp) <> 0
    ORDER BY unit_code, month, insurance, status, paid_on
    ON CONFLICT (unit_code, month, insurance, status, paid_on) DO UPDATE SET
        lines = unit_ledger_totals.lines + excluded.lines,
        base_fen = unit_ledger_totals.base_fen + excluded.base_fen,
        employer_fen = unit_ledger_totals.employer_fen + excluded.employer_fen,
        employee_fen = unit_ledger_totals.employee_fen + excluded.employee_fen;

    RETURN NULL;
END
$$""",
    """CREATE OR REPLACE FUNCTION unit_ledger_totals_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN

    INSERT INTO unit_ledger_totals (unit_code, month, insurance, status, paid_on, lines, base_fen, employer_fen, employee_fen)
    SELECT unit_code, month, insurance, status, paid_on, sum(dl), sum(db), sum(de), sum(dp) FROM (SELECT unit_code, month, insurance, status, COALESCE(paid_on, '0001-01-01') AS paid_on, 1 AS dl, base_fen AS db, employer_fen AS de, employee_fen AS dp FROM new_rows UNION ALL SELECT unit_code, month, insurance, status, COALESCE(paid_on, '0001-01-01') AS paid_on, -1 AS dl, -base_fen AS db, -employer_fen AS de, -employee_fen AS dp FROM old_rows) AS delta
    GROUP BY unit_code, month, insurance, status, paid_on
    HAVING sum(dl) <> 0 OR sum(db) <> 0 OR sum(de) <> 0 OR sum(dp) <> 0
    ORDER BY unit_code, month, insurance, status, paid_on
    ON CONFLICT (unit_code, month, insurance, status, paid_on) DO UPDATE SET
        lines = unit_ledger_totals.lines + excluded.lines,
        base_fen = unit_ledger_totals.base_fen + excluded.base_fen,
        employer_fen = unit_ledger_totals.employer_fen + excluded.employer_fen,
        employee_fen = unit_ledger_totals.employee_fen + excluded.employee_fen;

    DELETE FROM unit_ledger_totals t
    USING (SELECT DISTINCT unit_code, month, insurance, status,
                  COALESCE(paid_on, '0001-01-01') AS paid_on FROM old_rows) o
    WHERE t.unit_code = o.unit_code AND t.month = o.month AND t.insurance = o.insurance
      AND t.status = o.status AND t.paid_on = o.paid_on AND t.lines = 0;

    RETURN NULL;
END
$$""",
    """CREATE OR REPLACE FUNCTION unit_ledger_totals_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN

    INSERT INTO unit_ledger_totals (unit_code, month, insurance, status, paid_on, lines, base_fen, employer_fen, employee_fen)
    SELECT unit_code, month, insurance, status, paid_on, sum(dl), sum(db), sum(de), sum(dp) FROM (SELECT unit_code, month, insurance, status, COALESCE(paid_on, '0001-01-01') AS paid_on, -1 AS dl, -base_fen AS db, -employer_fen AS de, -employee_fen AS dp FROM old_rows) AS delta
    GROUP BY unit_code, month, insurance, status, paid_on
    HAVING sum(dl) <> 0 OR sum(db) <> 0 OR sum(de) <> 0 OR sum(dp) <> 0
    ORDER BY unit_code, month, insurance, status, paid_on
    ON CONFLICT (unit_code, month, insurance, status, paid_on) DO UPDATE SET
        lines = unit_ledger_totals.lines + excluded.lines,
        base_fen = unit_ledger_totals.base_fen + excluded.base_fen,
        employer_fen = unit_ledger_totals.employer_fen + excluded.employer_fen,
        employee_fen = unit_ledger_totals.employee_fen + excluded.employee_fen;

    DELETE FROM unit_ledger_totals t
    USING (SELECT DISTINCT unit_code, month, insurance, status,
                  COALESCE(paid_on, '0001-01-01') AS paid_on FROM old_rows) o
    WHERE t.unit_code = o.unit_code AND t.month = o.month AND t.insurance = o.insurance
      AND t.status = o.status AND t.paid_on = o.paid_on AND t.lines = 0;

    RETURN NULL;
END
$$""",
    """CREATE OR REPLACE TRIGGER tr_contributions_totals_insert AFTER INSERT ON contributions REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION unit_ledger_totals_inserted()""",
    """CREATE OR REPLACE TRIGGER tr_contributions_totals_update AFTER UPDATE ON contributions REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION unit_ledger_totals_updated()""",
    """CREATE OR REPLACE TRIGGER tr_contributions_totals_delete AFTER DELETE ON contributions REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION unit_ledger_totals_deleted()""",
)

POSTGRESQL_DROP: Final = (
    """DROP TRIGGER IF EXISTS tr_contributions_totals_insert ON contributions""",
    """DROP TRIGGER IF EXISTS tr_contributions_totals_update ON contributions""",
    """DROP TRIGGER IF EXISTS tr_contributions_totals_delete ON contributions""",
    """DROP FUNCTION IF EXISTS unit_ledger_totals_inserted()""",
    """DROP FUNCTION IF EXISTS unit_ledger_totals_updated()""",
    """DROP FUNCTION IF EXISTS unit_ledger_totals_deleted()""",
    """DROP TRIGGER IF EXISTS tr_unit_persons_counts_insert ON unit_persons""",
    """DROP TRIGGER IF EXISTS tr_unit_persons_counts_update ON unit_persons""",
    """DROP TRIGGER IF EXISTS tr_unit_persons_counts_delete ON unit_persons""",
    """DROP FUNCTION IF EXISTS unit_person_counts_inserted()""",
    """DROP FUNCTION IF EXISTS unit_person_counts_updated()""",
    """DROP FUNCTION IF EXISTS unit_person_counts_deleted()""",
)

FILL_LEDGER: Final = """
    INSERT INTO unit_ledger_totals (unit_code, month, insurance, status, paid_on, lines, base_fen, employer_fen, employee_fen)
    SELECT unit_code, month, insurance, status, COALESCE(paid_on, '0001-01-01'),
           count(*), sum(base_fen), sum(employer_fen), sum(employee_fen)
    FROM contributions
    GROUP BY unit_code, month, insurance, status, COALESCE(paid_on, '0001-01-01')
"""

FILL_COUNTS: Final = """
    INSERT INTO unit_person_counts (unit_code, status, n)
    SELECT unit_code, status, count(*) FROM unit_persons GROUP BY unit_code, status
"""


def _run(statements: tuple[str, ...]) -> None:
    conn = op.get_bind()
    for sql in statements:
        conn.exec_driver_sql(sql)


def upgrade() -> None:
    conn = op.get_bind()
    postgresql = conn.dialect.name == "postgresql"
    op.create_table(
        "unit_person_counts",
        sa.Column("unit_code", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=1), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["unit_code"], ["units.code"], name="fk_unit_person_counts_unit_code"
        ),
        sa.PrimaryKeyConstraint("unit_code", "status", name="pk_unit_person_counts"),
    )
    op.create_table(
        "unit_ledger_totals",
        sa.Column("unit_code", sa.String(length=8), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("insurance", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("paid_on", sa.Date(), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("base_fen", sa.BigInteger(), nullable=False),
        sa.Column("employer_fen", sa.BigInteger(), nullable=False),
        sa.Column("employee_fen", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["unit_code"], ["units.code"], name="fk_unit_ledger_totals_unit_code"
        ),
        sa.PrimaryKeyConstraint(
            "unit_code", "month", "insurance", "status", "paid_on", name="pk_unit_ledger_totals"
        ),
    )
    with op.batch_alter_table("persons", schema=None) as batch_op:
        batch_op.create_index(
            "ix_persons_birth_date", ["birth_date", "gender", "staff_kind"], unique=False
        )
        batch_op.create_index(
            "ix_persons_retirement_override", ["retirement_override_month"], unique=False
        )
    conn.exec_driver_sql(FILL_COUNTS)
    conn.exec_driver_sql(FILL_LEDGER)
    _run(POSTGRESQL_TRIGGERS if postgresql else SQLITE_TRIGGERS)
    if postgresql:
        for table in ("unit_person_counts", "unit_ledger_totals", "persons"):
            conn.exec_driver_sql(f"ANALYZE {table}")


def downgrade() -> None:
    conn = op.get_bind()
    _run(POSTGRESQL_DROP if conn.dialect.name == "postgresql" else SQLITE_DROP)
    with op.batch_alter_table("persons", schema=None) as batch_op:
        batch_op.drop_index("ix_persons_retirement_override")
        batch_op.drop_index("ix_persons_birth_date")
    op.drop_table("unit_ledger_totals")
    op.drop_table("unit_person_counts")
