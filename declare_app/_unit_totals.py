"""``unit_ledger_totals``: 单位缴费's sums, kept by the database itself.

单位缴费 lists a unit's ledger per 费款所属期 × 险种 (persons, base, the two parts, paid
or due, the day paid, 滞纳金).  Summed from ``contributions`` on every request, that
meant reading every line of the unit: 50,000 more each month at a 50,000-person
unit.  ``unit_ledger_totals`` holds the sums per (unit, month, insurance, line status,
day paid): a few rows per month, from which the page's groups, its totals and the
late fees (which depend on the day paid) are read.  ``paid_on`` is never NULL here:
a line not paid is kept under :data:`NOT_PAID` (a key column cannot be NULL).

Triggers on ``contributions`` keep it current in the same transaction as the change,
whatever writes the line (the monthly generation, a payment, a correction): on SQLite
a row at a time (an upsert, or a subtraction and the removal of an emptied row); on
PostgreSQL a statement at a time over the transition tables, one grouped upsert per
statement.  Nothing in the application writes the table.

Migration 0018 carries its own copy of this text, as migrations must.
"""

# ruff: noqa: S608 - every statement here is constant text (trigger column references).
from __future__ import annotations

from datetime import date
from typing import Final

NOT_PAID: Final = date(1, 1, 1)
_NOT_PAID_SQL: Final = "'0001-01-01'"
_KEY: Final = "unit_code, month, insurance, status, paid_on"
_SUMS: Final = "lines, base_fen, employer_fen, employee_fen"

_ADD: Final = f"""
    INSERT INTO unit_ledger_totals ({_KEY}, {_SUMS})
    VALUES ({{row}}.unit_code, {{row}}.month, {{row}}.insurance, {{row}}.status,
            COALESCE({{row}}.paid_on, {_NOT_PAID_SQL}),
            1, {{row}}.base_fen, {{row}}.employer_fen, {{row}}.employee_fen)
    ON CONFLICT ({_KEY}) DO UPDATE SET
        lines = unit_ledger_totals.lines + 1,
        base_fen = unit_ledger_totals.base_fen + excluded.base_fen,
        employer_fen = unit_ledger_totals.employer_fen + excluded.employer_fen,
        employee_fen = unit_ledger_totals.employee_fen + excluded.employee_fen;
"""
_WHERE_OLD: Final = f"""
    WHERE unit_code = OLD.unit_code AND month = OLD.month AND insurance = OLD.insurance
      AND status = OLD.status AND paid_on = COALESCE(OLD.paid_on, {_NOT_PAID_SQL})"""
_REMOVE: Final = (
    """
    UPDATE unit_ledger_totals SET
        lines = lines - 1,
        base_fen = base_fen - OLD.base_fen,
        employer_fen = employer_fen - OLD.employer_fen,
        employee_fen = employee_fen - OLD.employee_fen"""
    + _WHERE_OLD
    + ";\n    DELETE FROM unit_ledger_totals"
    + _WHERE_OLD
    + " AND lines = 0;\n"
)
_WATCHED: Final = (
    "unit_code, month, insurance, status, paid_on, base_fen, employer_fen, employee_fen"
)

SQLITE_DROP: Final = tuple(
    f"DROP TRIGGER IF EXISTS tr_contributions_totals_{kind}"
    for kind in ("insert", "update", "delete")
)
SQLITE_TRIGGERS: Final = (
    "CREATE TRIGGER tr_contributions_totals_insert AFTER INSERT ON contributions BEGIN"
    + _ADD.format(row="NEW")
    + " END",
    f"CREATE TRIGGER tr_contributions_totals_update AFTER UPDATE OF {_WATCHED}"
    " ON contributions BEGIN" + _REMOVE + _ADD.format(row="NEW") + " END",
    "CREATE TRIGGER tr_contributions_totals_delete AFTER DELETE ON contributions BEGIN"
    + _REMOVE
    + " END",
)

# PostgreSQL: the change of a statement as signed rows, grouped by key, upserted in key
# order (the same lock order in every transaction), then the emptied rows removed.
_SIGNED_NEW: Final = (
    f"SELECT unit_code, month, insurance, status, COALESCE(paid_on, {_NOT_PAID_SQL}) AS paid_on,"
    " 1 AS dl, base_fen AS db, employer_fen AS de, employee_fen AS dp FROM new_rows"
)
_SIGNED_OLD: Final = (
    f"SELECT unit_code, month, insurance, status, COALESCE(paid_on, {_NOT_PAID_SQL}) AS paid_on,"
    " -1 AS dl, -base_fen AS db, -employer_fen AS de, -employee_fen AS dp FROM old_rows"
)
_PG_APPLY: Final = f"""
    INSERT INTO unit_ledger_totals ({_KEY}, {_SUMS})
    SELECT {_KEY}, sum(dl), sum(db), sum(de), sum(dp) FROM ({{rows}}) AS delta
    GROUP BY {_KEY}
    HAVING sum(dl) <> 0 OR sum(db) <> 0 OR sum(de) <> 0 OR sum(dp) <> 0
    ORDER BY {_KEY}
    ON CONFLICT ({_KEY}) DO UPDATE SET
        lines = unit_ledger_totals.lines + excluded.lines,
        base_fen = unit_ledger_totals.base_fen + excluded.base_fen,
        employer_fen = unit_ledger_totals.employer_fen + excluded.employer_fen,
        employee_fen = unit_ledger_totals.employee_fen + excluded.employee_fen;
"""
_PG_PRUNE: Final = f"""
    DELETE FROM unit_ledger_totals t
    USING (SELECT DISTINCT unit_code, month, insurance, status,
                  COALESCE(paid_on, {_NOT_PAID_SQL}) AS paid_on FROM old_rows) o
    WHERE t.unit_code = o.unit_code AND t.month = o.month AND t.insurance = o.insurance
      AND t.status = o.status AND t.paid_on = o.paid_on AND t.lines = 0;
"""


def _pg_function(name: str, body: str) -> str:
    return (
        f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        f"BEGIN\n{body}\n    RETURN NULL;\nEND\n$$"
    )


POSTGRESQL_TRIGGERS: Final = (
    _pg_function("unit_ledger_totals_inserted", _PG_APPLY.format(rows=_SIGNED_NEW)),
    _pg_function(
        "unit_ledger_totals_updated",
        _PG_APPLY.format(rows=_SIGNED_NEW + " UNION ALL " + _SIGNED_OLD) + _PG_PRUNE,
    ),
    _pg_function("unit_ledger_totals_deleted", _PG_APPLY.format(rows=_SIGNED_OLD) + _PG_PRUNE),
    "CREATE OR REPLACE TRIGGER tr_contributions_totals_insert AFTER INSERT ON contributions"
    " REFERENCING NEW TABLE AS new_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION unit_ledger_totals_inserted()",
    "CREATE OR REPLACE TRIGGER tr_contributions_totals_update AFTER UPDATE ON contributions"
    " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION unit_ledger_totals_updated()",
    "CREATE OR REPLACE TRIGGER tr_contributions_totals_delete AFTER DELETE ON contributions"
    " REFERENCING OLD TABLE AS old_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION unit_ledger_totals_deleted()",
)
POSTGRESQL_DROP: Final = (
    *(
        f"DROP TRIGGER IF EXISTS tr_contributions_totals_{kind} ON contributions"
        for kind in ("insert", "update", "delete")
    ),
    *(
        f"DROP FUNCTION IF EXISTS unit_ledger_totals_{kind}()"
        for kind in ("inserted", "updated", "deleted")
    ),
)

# Filling the table from the lines there (migration 0018; a repair by hand).
FILL: Final = f"""
    INSERT INTO unit_ledger_totals ({_KEY}, {_SUMS})
    SELECT unit_code, month, insurance, status, COALESCE(paid_on, {_NOT_PAID_SQL}),
           count(*), sum(base_fen), sum(employer_fen), sum(employee_fen)
    FROM contributions
    GROUP BY unit_code, month, insurance, status, COALESCE(paid_on, {_NOT_PAID_SQL})
"""
