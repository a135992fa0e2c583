"""The PKI tables: every certificate the CA issued, the CRL counter, the current CRL.

SQLAlchemy Core. Every constraint is named (pk_/ix_/ck_<table>_…) so Alembic can
alter it on SQLite and PostgreSQL alike. Instants are Float epoch seconds UTC, the
project-wide convention.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

metadata = MetaData()

KINDS = ("ca", "server", "client")
STATUSES = ("valid", "revoked")
# Kept in step with certs._revocation.REASON_FLAGS (a unit test pins it).
REASONS = (
    "affiliation_changed",
    "cessation_of_operation",
    "key_compromise",
    "superseded",
    "unspecified",
)


def _sql_in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{value}'" for value in values)


certificates = Table(
    "certificates",
    metadata,
    Column("serial", String(40), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("subject", String(1024), nullable=False),
    Column("fingerprint_sha256", String(64), nullable=False),
    Column("not_before_at", Float, nullable=False),
    Column("not_after_at", Float, nullable=False),
    Column("issued_at", Float, nullable=False),
    Column("status", String(16), nullable=False),
    Column("revoked_at", Float, nullable=True),
    Column("revocation_reason", String(32), nullable=True),
    Column("pem", Text, nullable=False),
    PrimaryKeyConstraint("serial", name="pk_certificates"),
    CheckConstraint(f"kind IN ({_sql_in(KINDS)})", name="ck_certificates_kind"),
    CheckConstraint(f"status IN ({_sql_in(STATUSES)})", name="ck_certificates_status"),
    CheckConstraint(
        f"revocation_reason IS NULL OR revocation_reason IN ({_sql_in(REASONS)})",
        name="ck_certificates_revocation_reason",
    ),
    # A revoked row always says when and why; a valid row never does.
    CheckConstraint(
        "(status = 'valid' AND revoked_at IS NULL AND revocation_reason IS NULL)"
        " OR (status = 'revoked' AND revoked_at IS NOT NULL AND revocation_reason IS NOT NULL)",
        name="ck_certificates_revocation_consistent",
    ),
    CheckConstraint("not_after_at > not_before_at", name="ck_certificates_validity"),
)
Index("ix_certificates_subject", certificates.c.subject)
Index("ix_certificates_status", certificates.c.status)
# The gateway's kill poll: the certificates revoked since its last look (migration 0019).
Index("ix_certificates_revoked_at", certificates.c.revoked_at)
Index("ix_certificates_fingerprint_sha256", certificates.c.fingerprint_sha256, unique=True)

crl_state = Table(
    "crl_state",
    metadata,
    Column("id", Integer, nullable=False, autoincrement=False),
    Column("crl_number", BigInteger, nullable=False),
    Column("issued_at", Float, nullable=True),
    PrimaryKeyConstraint("id", name="pk_crl_state"),
    CheckConstraint("id = 1", name="ck_crl_state_single_row"),
    CheckConstraint("crl_number >= 1", name="ck_crl_state_crl_number"),
)

# The CRL every gateway node checks client certificates against (issue 13): one row,
# replaced whole each time a CRL is signed.  ``crl_number`` doubles as the version
# nodes poll (a cheap primary-key read); a row never goes back to a lower number.
crls = Table(
    "crls",
    metadata,
    Column("id", Integer, nullable=False, autoincrement=False),
    Column("crl_number", BigInteger, nullable=False),
    Column("pem", Text, nullable=False),
    Column("this_update_at", Float, nullable=False),
    Column("next_update_at", Float, nullable=False),
    Column("stored_at", Float, nullable=False),
    PrimaryKeyConstraint("id", name="pk_crls"),
    CheckConstraint("id = 1", name="ck_crls_single_row"),
    CheckConstraint("crl_number >= 1", name="ck_crls_crl_number"),
)
