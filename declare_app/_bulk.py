"""Bulk inserts for the apply path: many rows of one table in a few round trips.

A batch approval inserts tens of thousands of rows (persons, enrolments, contribution
plans).  ``conn.execute(insert(table), rows)`` is an ``executemany``: on SQLite that is
one C loop over a prepared statement, fast; on PostgreSQL (psycopg 3) it is one
statement per row sent through the pipeline, each parsed, bound and executed by the
server — twice SQLite's time for the same approval.  :func:`insert_rows` uses ``COPY
… FROM STDIN`` there instead: the rows stream to the server in the connection's own
transaction (and savepoint), a round trip per buffer of rows rather than per row.
Triggers, constraints and defaults apply to copied rows exactly as to inserted ones.

PostgreSQL plans by its statistics.  When a bulk insert brings more rows than the
table held at its last ANALYZE (a fresh install's first large batch: the planner
would take the tables for empty and scan them), the table is ANALYZEd in the same
transaction (ANALYZE counts the transaction's own rows); later batches, a small part
of the table, leave that to autovacuum.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table, insert, text

# Tables the triggers fill from another's rows (``_unit_persons.py``): analysed with it.
_FILLED_BY_TRIGGERS: dict[str, tuple[str, ...]] = {"enrolments": ("unit_persons",)}

# Below this a COPY's setup costs more than the statements it saves.
COPY_FROM: int = 50


def insert_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert *rows* (each with the same keys) into *table*, in order."""
    if not rows:
        return
    if conn.dialect.name != "postgresql" or len(rows) < COPY_FROM:
        conn.execute(insert(table), list(rows))
        return
    columns = list(rows[0])
    for name in columns:  # names come from code, but never put an unknown one into SQL
        if name not in table.c:
            raise ValueError(f"{table.name} has no column {name!r}")
    quote = conn.dialect.identifier_preparer.quote
    sql = f"COPY {quote(table.name)} ({', '.join(quote(c) for c in columns)}) FROM STDIN"
    driver: Any = conn.connection.driver_connection  # psycopg.Connection, in our transaction
    with driver.cursor() as cursor, cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row([row[c] for c in columns])
    _analyze_if_outgrown(conn, table, len(rows))


def _analyze_if_outgrown(conn: Connection, table: Table, added: int) -> None:
    estimated = conn.execute(
        text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:name)"),
        {"name": table.name},
    ).scalar()
    if estimated is None or added > float(estimated):  # -1: never analysed
        for name in (table.name, *_FILLED_BY_TRIGGERS.get(table.name, ())):
            conn.exec_driver_sql(f"ANALYZE {conn.dialect.identifier_preparer.quote(name)}")
