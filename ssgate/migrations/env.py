"""Alembic environment: always run programmatically on a connection ssgate opened."""

from __future__ import annotations

from alembic import context

from ssgate._schema import all_metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=all_metadata(),
    render_as_batch=True,  # SQLite ALTERs are "move and copy"
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
