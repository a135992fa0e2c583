"""``unit_persons``, ``unit_person_counts`` and ``unit_enrolment_counts``: what a
unit's pages need, kept by the database itself.

The roster (单位花名册) lists a unit's persons with their status there (AAC031: ``1``
while an enrolment in the unit is open, else ``3`` if one was terminated, else ``2``)
and their first month in the unit.  Derived from ``enrolments`` on every call, that
meant grouping the unit's whole enrolment set (246,000 rows at a 50,000-person unit)
for the count, the total and each page.  ``unit_persons`` holds the derived row, one
per (unit, person), with the person's name, so a page is one range of
``ix_unit_persons_status_name`` and the counts per status — with or without a name
fragment — one covering scan of the unit's persons (never the whole pool of persons).

``unit_enrolment_counts`` holds the number of enrolments per (unit, insurance,
status), so 单位基本信息 (persons contributing per insurance) reads a handful of rows
instead of counting the unit's enrolments.  ``unit_person_counts`` holds the number
of persons per (unit, status), kept by triggers on ``unit_persons``: the roster's
counts (and total) without a filter are two or three rows, not a range of the unit.

Triggers keep both current in the same transaction as the change, whatever writes the
enrolment (the apply path of every declaration type, an import, a correction by hand),
on every node: the row of each (unit, person) an update or delete touches is
recomputed from that person's few enrolment rows (``ix_enrolments_unit_person``); an
insert, which can only add, is folded into the row by an upsert.  On PostgreSQL the
insert trigger is a statement trigger over the inserted rows (a transition table):
a batch approval's bulk insert costs one grouped upsert per statement, not one per
row.  A person's new name is copied to their rows (``ix_unit_persons_person``).
Nothing in the application writes either table.

:func:`install_triggers` is ``metadata.create_all``'s way to create them (idempotent);
migrations 0017 and 0018 carry their own copies of this text, as migrations must.
"""

# ruff: noqa: S608 - every statement here is constant text; the only pieces put into
# it are the trigger's OLD./NEW. column references below, never a value.
from __future__ import annotations

from typing import Any, Final

from sqlalchemy import Connection, MetaData, event

from . import _unit_totals

# The recomputation of one (unit, person): the AAC031 rule of the roster, the first
# month and the name; no row when the person has no enrolment left in the unit.
_DERIVE: Final = """
    SELECT unit_code, person_number,
           CASE WHEN min(status) = '1' THEN '1' ELSE max(status) END,
           min(start_month),
           (SELECT name FROM persons WHERE persons.person_number = {person})
    FROM enrolments
    WHERE unit_code = {unit} AND person_number = {person}
    GROUP BY unit_code, person_number
"""
_REFRESH: Final = (
    """
    DELETE FROM unit_persons WHERE unit_code = {unit} AND person_number = {person};
    INSERT INTO unit_persons (unit_code, person_number, status, start_month, name)
"""
    + _DERIVE.rstrip()
    + ";"
)

# An insert only adds to the person's enrolments in the unit, so the row folds the new
# enrolment in (one primary-key upsert, no regrouping): open if either is open, else the
# larger status; the earlier first month.  {least} is the dialect's two-value minimum.
_FOLD: Final = """
    ON CONFLICT (unit_code, person_number) DO UPDATE SET
        status = CASE
            WHEN unit_persons.status = '1' OR excluded.status = '1' THEN '1'
            WHEN unit_persons.status > excluded.status THEN unit_persons.status
            ELSE excluded.status
        END,
        start_month = {least}(unit_persons.start_month, excluded.start_month);
"""
_FOLD_IN_ROW: Final = """
    INSERT INTO unit_persons (unit_code, person_number, status, start_month, name)
    VALUES (NEW.unit_code, NEW.person_number, NEW.status, NEW.start_month,
            (SELECT name FROM persons WHERE persons.person_number = NEW.person_number))
""" + _FOLD.format(least="min")
_COUNT_ADD: Final = """
    INSERT INTO unit_enrolment_counts (unit_code, insurance, status, n)
    VALUES ({row}.unit_code, {row}.insurance, {row}.status, 1)
    ON CONFLICT (unit_code, insurance, status) DO UPDATE SET n = unit_enrolment_counts.n + 1;
"""
_COUNT_REMOVE: Final = """
    UPDATE unit_enrolment_counts SET n = n - 1
    WHERE unit_code = {row}.unit_code AND insurance = {row}.insurance
      AND status = {row}.status;
"""
# The columns the derived rows and counts depend on: an update of anything else (a new
# base, the hire date) fires nothing.
_WATCHED: Final = "unit_code, person_number, insurance, status, start_month"
_NAME_COPY: Final = """
    UPDATE unit_persons SET name = NEW.name WHERE person_number = NEW.person_number;
"""

SQLITE_DROP: Final = (
    *(
        f"DROP TRIGGER IF EXISTS tr_enrolments_unit_persons_{kind}"
        for kind in ("insert", "update", "delete")
    ),
    "DROP TRIGGER IF EXISTS tr_persons_unit_persons_name",
)
SQLITE_TRIGGERS: Final = (
    "CREATE TRIGGER tr_enrolments_unit_persons_insert AFTER INSERT ON enrolments BEGIN"
    + _FOLD_IN_ROW
    + _COUNT_ADD.format(row="NEW")
    + " END",
    f"CREATE TRIGGER tr_enrolments_unit_persons_update AFTER UPDATE OF {_WATCHED}"
    " ON enrolments BEGIN"
    + _REFRESH.format(unit="OLD.unit_code", person="OLD.person_number")
    + _REFRESH.format(unit="NEW.unit_code", person="NEW.person_number")
    + _COUNT_REMOVE.format(row="OLD")
    + _COUNT_ADD.format(row="NEW")
    + " END",
    "CREATE TRIGGER tr_enrolments_unit_persons_delete AFTER DELETE ON enrolments BEGIN"
    + _REFRESH.format(unit="OLD.unit_code", person="OLD.person_number")
    + _COUNT_REMOVE.format(row="OLD")
    + " END",
    "CREATE TRIGGER tr_persons_unit_persons_name AFTER UPDATE OF name ON persons BEGIN"
    + _NAME_COPY
    + " END",
)

POSTGRESQL_TRIGGERS: Final = (
    # Updates and deletes, a row at a time (a reduce closes a person's few rows).
    """
CREATE OR REPLACE FUNCTION unit_persons_refresh() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    """
    + _REFRESH.format(unit="OLD.unit_code", person="OLD.person_number")
    + _COUNT_REMOVE.format(row="OLD")
    + """
    IF TG_OP = 'UPDATE' THEN
    """
    + _REFRESH.format(unit="NEW.unit_code", person="NEW.person_number")
    + _COUNT_ADD.format(row="NEW")
    + """
    END IF;
    RETURN NULL;
END
$$
""",
    "CREATE OR REPLACE TRIGGER tr_enrolments_unit_persons"
    f" AFTER DELETE OR UPDATE OF {_WATCHED}"
    " ON enrolments FOR EACH ROW EXECUTE FUNCTION unit_persons_refresh()",
    # Inserts, a statement at a time: the rows grouped by key first (an upsert may
    # touch a row once per statement), in key order (the same lock order in every
    # transaction).
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
    """
    + _FOLD.format(least="LEAST")
    + """
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
    "CREATE OR REPLACE TRIGGER tr_enrolments_unit_persons_added AFTER INSERT ON enrolments"
    " REFERENCING NEW TABLE AS added"
    " FOR EACH STATEMENT EXECUTE FUNCTION unit_persons_added()",
    """
CREATE OR REPLACE FUNCTION unit_persons_name() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
"""
    + _NAME_COPY
    + """
    RETURN NULL;
END
$$
""",
    "CREATE OR REPLACE TRIGGER tr_persons_unit_persons_name AFTER UPDATE OF name ON persons"
    " FOR EACH ROW EXECUTE FUNCTION unit_persons_name()",
)
POSTGRESQL_DROP: Final = (
    "DROP TRIGGER IF EXISTS tr_enrolments_unit_persons ON enrolments",
    "DROP TRIGGER IF EXISTS tr_enrolments_unit_persons_added ON enrolments",
    "DROP TRIGGER IF EXISTS tr_persons_unit_persons_name ON persons",
    "DROP FUNCTION IF EXISTS unit_persons_refresh()",
    "DROP FUNCTION IF EXISTS unit_persons_added()",
    "DROP FUNCTION IF EXISTS unit_persons_name()",
)


# ``unit_person_counts``: persons per (unit, AAC031 status), kept by triggers on
# ``unit_persons`` itself (which only the triggers above write), so the roster's
# counts without a filter are a few rows, not a range of the unit's persons.
_PERSON_COUNT_ADD: Final = """
    INSERT INTO unit_person_counts (unit_code, status, n)
    VALUES ({row}.unit_code, {row}.status, 1)
    ON CONFLICT (unit_code, status) DO UPDATE SET n = unit_person_counts.n + 1;
"""
_PERSON_COUNT_REMOVE: Final = """
    UPDATE unit_person_counts SET n = n - 1
    WHERE unit_code = {row}.unit_code AND status = {row}.status;
"""
SQLITE_COUNT_DROP: Final = tuple(
    f"DROP TRIGGER IF EXISTS tr_unit_persons_counts_{kind}"
    for kind in ("insert", "update", "delete")
)
SQLITE_COUNT_TRIGGERS: Final = (
    "CREATE TRIGGER tr_unit_persons_counts_insert AFTER INSERT ON unit_persons BEGIN"
    + _PERSON_COUNT_ADD.format(row="NEW")
    + " END",
    "CREATE TRIGGER tr_unit_persons_counts_update AFTER UPDATE OF unit_code, status"
    " ON unit_persons BEGIN"
    + _PERSON_COUNT_REMOVE.format(row="OLD")
    + _PERSON_COUNT_ADD.format(row="NEW")
    + " END",
    "CREATE TRIGGER tr_unit_persons_counts_delete AFTER DELETE ON unit_persons BEGIN"
    + _PERSON_COUNT_REMOVE.format(row="OLD")
    + " END",
)
# PostgreSQL: statement triggers over the transition tables (an upsert fires the
# insert trigger with the rows it inserted and the update trigger with those it
# updated), each one grouped change per statement, in key order.
_PG_DELTA: Final = """
    INSERT INTO unit_person_counts (unit_code, status, n)
    SELECT unit_code, status, sum(d) FROM ({rows}) AS delta
    GROUP BY unit_code, status
    HAVING sum(d) <> 0
    ORDER BY unit_code, status
    ON CONFLICT (unit_code, status) DO UPDATE SET n = unit_person_counts.n + excluded.n;
"""
POSTGRESQL_COUNT_TRIGGERS: Final = (
    """
CREATE OR REPLACE FUNCTION unit_person_counts_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
"""
    + _PG_DELTA.format(rows="SELECT unit_code, status, 1 AS d FROM new_rows")
    + """
    RETURN NULL;
END
$$
""",
    """
CREATE OR REPLACE FUNCTION unit_person_counts_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
"""
    + _PG_DELTA.format(
        rows="SELECT unit_code, status, 1 AS d FROM new_rows"
        " UNION ALL SELECT unit_code, status, -1 FROM old_rows"
    )
    + """
    RETURN NULL;
END
$$
""",
    """
CREATE OR REPLACE FUNCTION unit_person_counts_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
"""
    + _PG_DELTA.format(rows="SELECT unit_code, status, -1 AS d FROM old_rows")
    + """
    RETURN NULL;
END
$$
""",
    "CREATE OR REPLACE TRIGGER tr_unit_persons_counts_insert AFTER INSERT ON unit_persons"
    " REFERENCING NEW TABLE AS new_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION unit_person_counts_inserted()",
    "CREATE OR REPLACE TRIGGER tr_unit_persons_counts_update AFTER UPDATE ON unit_persons"
    " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION unit_person_counts_updated()",
    "CREATE OR REPLACE TRIGGER tr_unit_persons_counts_delete AFTER DELETE ON unit_persons"
    " REFERENCING OLD TABLE AS old_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION unit_person_counts_deleted()",
)
POSTGRESQL_COUNT_DROP: Final = (
    *(
        f"DROP TRIGGER IF EXISTS tr_unit_persons_counts_{kind} ON unit_persons"
        for kind in ("insert", "update", "delete")
    ),
    *(
        f"DROP FUNCTION IF EXISTS unit_person_counts_{kind}()"
        for kind in ("inserted", "updated", "deleted")
    ),
)


def install_triggers(conn: Connection) -> None:
    """Create (or replace) the triggers that keep both tables current."""
    if conn.dialect.name == "postgresql":
        statements: tuple[str, ...] = (
            POSTGRESQL_TRIGGERS + POSTGRESQL_COUNT_TRIGGERS + _unit_totals.POSTGRESQL_TRIGGERS
        )
    else:
        statements = (
            SQLITE_DROP
            + SQLITE_TRIGGERS
            + SQLITE_COUNT_DROP
            + SQLITE_COUNT_TRIGGERS
            + _unit_totals.SQLITE_DROP
            + _unit_totals.SQLITE_TRIGGERS
        )
    for sql in statements:
        conn.exec_driver_sql(sql)


def drop_triggers(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        statements = _unit_totals.POSTGRESQL_DROP + POSTGRESQL_COUNT_DROP + POSTGRESQL_DROP
    else:
        statements = _unit_totals.SQLITE_DROP + SQLITE_COUNT_DROP + SQLITE_DROP
    for sql in statements:
        conn.exec_driver_sql(sql)


def keep_current_on_create(metadata: MetaData) -> None:
    """``metadata.create_all`` also installs the triggers (after every table exists)."""

    @event.listens_for(metadata, "after_create")
    def _after_create(_target: Any, connection: Connection, **_kw: Any) -> None:
        install_triggers(connection)
