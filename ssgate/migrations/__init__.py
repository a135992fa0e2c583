"""Alembic migrations of the ssgate schema (run through ssgate._schema)."""
