"""``unit_persons``: each person's standing in each unit, kept by the database itself.

The roster (单位花名册) lists a unit's persons with their status there (AAC031: ``1``
while an enrolment in the unit is open, else ``3`` if one was terminated, else ``2``)
and their first month in the unit.  Derived from ``enrolments`` on every call, that
meant grouping the unit's whole enrolment set (246,000 rows at a 50,000-person unit)
for the count, the total and each page.  ``unit_persons`` holds the derived row, one
per (unit, person), so a page is one range of ``ix_unit_persons_status`` and the
counts per status one covering scan of the unit's persons.

Triggers on ``enrolments`` keep it current in the same transaction as the change,
whatever writes the enrolment (the apply path of every declaration type, an import,
a correction by hand), on every node: the row of each (unit, person) an insert,
update or delete touches is recomputed from that person's few enrolment rows
(``ix_enrolments_unit_person``); an insert, which can only add, is folded into the
row by one upsert (batch approvals insert tens of thousands).  Nothing in the
application writes the table.

:func:`install_triggers` is both the migration's and ``metadata.create_all``'s way
to create them (idempotent: ``IF NOT EXISTS`` / ``OR REPLACE``).
"""

# ruff: noqa: S608 - every statement here is constant text; the only pieces put into
# it are the trigger's OLD./NEW. column references below, never a value.
from __future__ import annotations

from typing import Any, Final

from sqlalchemy import Connection, MetaData, event

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
    """Create (or replace) the triggers that keep ``unit_persons`` current."""
    statements = POSTGRESQL_TRIGGERS if conn.dialect.name == "postgresql" else SQLITE_TRIGGERS
    for sql in statements:
        conn.exec_driver_sql(sql)


def drop_triggers(conn: Connection) -> None:
    statements = POSTGRESQL_DROP if conn.dialect.name == "postgresql" else SQLITE_DROP
    for sql in statements:
        conn.exec_driver_sql(sql)


def keep_current_on_create(metadata: MetaData) -> None:
    """``metadata.create_all`` also installs the triggers (after every table exists)."""

    @event.listens_for(metadata, "after_create")
    def _after_create(_target: Any, connection: Connection, **_kw: Any) -> None:
        install_triggers(connection)
