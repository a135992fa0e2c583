"""Tables owned by the personal portal.  Instants are Float epoch seconds UTC.

* ``person_accounts`` — one portal account per insured person, opened at the agency
  counter: the login principal (``person:<ref>``, whose proofs live in auth's
  ``credentials``), the person's 个人编号 and whether the initial password must
  still be changed.  The ID number is not stored here: it stays in the declaration
  service's ``persons`` row, and the login looks it up there.
* ``portal_sessions`` — live browser sessions, keyed by the SHA-256 of the cookie's
  id (never the id), with the per-session CSRF token and a non-secret ``ref`` for
  audit events.
* ``portal_certificates`` — issued 参保证明: the SHA-256 of the verification code (a
  stolen table does not give codes away), the content as shown by ``/verify`` (ID
  number masked), its SHA-256 and the SHA-256 of the PDF as issued.

Every constraint and index is named so migrations can refer to them.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Float,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

PRINCIPAL_LENGTH = 128
PERSON_NUMBER_LENGTH = 20

person_accounts = Table(
    "person_accounts",
    metadata,
    Column("principal", String(PRINCIPAL_LENGTH), nullable=False),
    Column("person_number", String(PERSON_NUMBER_LENGTH), nullable=False),
    Column("status", String(16), nullable=False),
    Column("must_change_password", Boolean(create_constraint=False), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("updated_at", Float, nullable=False),
    PrimaryKeyConstraint("principal", name="pk_person_accounts"),
    UniqueConstraint("person_number", name="uq_person_accounts_person_number"),
    CheckConstraint("status IN ('active', 'closed')", name="ck_person_accounts_status"),
)

portal_sessions = Table(
    "portal_sessions",
    metadata,
    Column("token_digest", String(64), nullable=False),
    Column("principal", String(PRINCIPAL_LENGTH), nullable=False),
    Column("ref", String(32), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_seen_at", Float, nullable=False),
    PrimaryKeyConstraint("token_digest", name="pk_portal_sessions"),
    UniqueConstraint("ref", name="uq_portal_sessions_ref"),
    Index("ix_portal_sessions_principal", "principal"),
    Index("ix_portal_sessions_last_seen_at", "last_seen_at"),
)

portal_certificates = Table(
    "portal_certificates",
    metadata,
    Column("code_digest", String(64), nullable=False),
    Column("principal", String(PRINCIPAL_LENGTH), nullable=False),
    Column("person_number", String(PERSON_NUMBER_LENGTH), nullable=False),
    Column("issued_at", Float, nullable=False),
    Column("valid_until", Float, nullable=False),
    Column("from_month", String(7), nullable=False),
    Column("to_month", String(7), nullable=False),
    Column("content", Text, nullable=False),
    Column("content_sha256", String(64), nullable=False),
    Column("pdf_sha256", String(64), nullable=False),
    PrimaryKeyConstraint("code_digest", name="pk_portal_certificates"),
    Index("ix_portal_certificates_person_number", "person_number"),
)
