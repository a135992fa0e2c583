"""Tables owned by the declaration service.  Instants are Float epoch seconds UTC."""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    Float,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    UniqueConstraint,
)

metadata = MetaData()

units = Table(
    "units",
    metadata,
    Column("code", String(8), nullable=False),  # 8-digit unit social-insurance code
    Column("region", String(6), nullable=False),
    Column("name", String(200), nullable=False),
    Column("credit_code", String(18), nullable=True),  # unified social credit code
    Column("status", String(16), nullable=False),
    Column("registered_at", Float, nullable=False),
    Column("registered_by", String(128), nullable=False),
    Column("approved_at", Float, nullable=True),
    Column("approved_by", String(128), nullable=True),
    PrimaryKeyConstraint("code", name="pk_units"),
    UniqueConstraint("credit_code", name="uq_units_credit_code"),
    CheckConstraint("status IN ('registered', 'approved')", name="ck_units_status"),
    Index("ix_units_region", "region"),
)
