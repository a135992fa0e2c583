"""The certificate register: what the CA issued, what is revoked, the CRL counter, and
the current CRL every gateway node checks against (``crls``, issue 13).

Each function takes a ``Connection`` inside the caller's transaction and returns
plain frozen values, never rows. State changes are single conditional statements
(``UPDATE … WHERE status = 'valid'``, an upsert for the CRL number), so two gateway
nodes sharing PostgreSQL cannot revoke twice or hand out one CRL number twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from certs._authority import CertificateAuthority, account_of
from certs._errors import CertificateError
from certs._identifiers import fingerprint_sha256_of, normalize_serial_hex, serial_hex_of
from certs._instants import from_epoch, to_epoch
from certs._revocation import RevokedEntry, crl_pem, require_reason
from certs._schema import KINDS, STATUSES, certificates, crl_state, crls

_MAX_SUBJECT_LENGTH = 1024


@dataclass(frozen=True)
class CertificateRecord:
    """One row of ``certificates``; fields are the columns, instants epoch seconds UTC."""

    serial: str
    kind: str
    subject: str
    fingerprint_sha256: str
    not_before_at: float
    not_after_at: float
    issued_at: float
    status: str
    revoked_at: float | None
    revocation_reason: str | None
    pem: str = field(repr=False)

    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.pem.encode("ascii"))


@dataclass(frozen=True)
class CrlState:
    """The last CRL number handed out, and when (epoch seconds UTC, if the caller said)."""

    crl_number: int
    issued_at: float | None


def record_certificate(
    conn: Connection, cert: x509.Certificate, *, kind: str, subject: str, now: datetime
) -> CertificateRecord:
    """Register a certificate the CA just issued, as valid.

    For a client certificate *subject* must be the account the certificate is bound
    to, so that looking an account up can never return someone else's certificate.
    """
    _require_kind(kind)
    if not subject or len(subject) > _MAX_SUBJECT_LENGTH:
        raise CertificateError(f"certificate subject must be 1 to {_MAX_SUBJECT_LENGTH} characters")
    if kind == "client" and account_of(cert) != subject:
        raise CertificateError(
            f"client certificate is not bound to account {subject[:80]!r}; refusing to record it"
        )
    if (kind == "ca") != _is_ca(cert):
        raise CertificateError(f"certificate kind {kind!r} does not match its basicConstraints")
    serial = serial_hex_of(cert.serial_number)
    if conn.execute(select(certificates.c.serial).where(certificates.c.serial == serial)).first():
        raise CertificateError(f"certificate serial {serial} is already recorded")
    values: dict[str, Any] = {
        "serial": serial,
        "kind": kind,
        "subject": subject,
        "fingerprint_sha256": fingerprint_sha256_of(cert),
        "not_before_at": cert.not_valid_before_utc.timestamp(),
        "not_after_at": cert.not_valid_after_utc.timestamp(),
        "issued_at": to_epoch(now),
        "status": "valid",
        "revoked_at": None,
        "revocation_reason": None,
        "pem": cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
    }
    conn.execute(certificates.insert().values(values))
    return _record(values)


def revoke(conn: Connection, serial_hex: str, *, reason: str, now: datetime) -> bool:
    """Revoke one certificate; False if the serial is unknown or already revoked.

    Accepts the serial as operators paste it (colons, upper case, leading zeros).
    The CA's own certificate is refused: its CRL cannot revoke it.
    """
    serial = normalize_serial_hex(serial_hex)
    require_reason(reason)
    revoked_at = to_epoch(now)
    result = conn.execute(
        update(certificates)
        .where(
            certificates.c.serial == serial,
            certificates.c.status == "valid",
            certificates.c.kind != "ca",
        )
        .values(status="revoked", revoked_at=revoked_at, revocation_reason=reason)
    )
    if result.rowcount == 1:
        return True
    kind = conn.execute(
        select(certificates.c.kind).where(certificates.c.serial == serial)
    ).scalar_one_or_none()
    if kind == "ca":
        raise CertificateError(
            f"serial {serial} is the CA certificate, which its own CRL cannot revoke; "
            "replace the CA instead"
        )
    return False


def revoke_subject(
    conn: Connection, subject: str, *, kind: str = "client", reason: str, now: datetime
) -> list[str]:
    """Revoke every valid certificate of *subject*; the serials revoked, sorted."""
    _require_kind(kind)
    if kind == "ca":
        raise CertificateError("the CA certificate cannot be revoked by its own CRL")
    require_reason(reason)
    revoked_at = to_epoch(now)
    serials = conn.execute(
        update(certificates)
        .where(
            certificates.c.subject == subject,
            certificates.c.kind == kind,
            certificates.c.status == "valid",
        )
        .values(status="revoked", revoked_at=revoked_at, revocation_reason=reason)
        .returning(certificates.c.serial)
    ).scalars()
    return sorted(serials)


def list_certificates(
    conn: Connection,
    *,
    subject: str | None = None,
    kind: str | None = None,
    status: str | None = None,
) -> list[CertificateRecord]:
    """Certificates matching every filter given, oldest issue first."""
    query = select(certificates).order_by(certificates.c.issued_at, certificates.c.serial)
    if subject is not None:
        query = query.where(certificates.c.subject == subject)
    if kind is not None:
        _require_kind(kind)
        query = query.where(certificates.c.kind == kind)
    if status is not None:
        _require_status(status)
        query = query.where(certificates.c.status == status)
    return [_record(row._asdict()) for row in conn.execute(query)]


_BY_SERIAL = select(certificates).where(certificates.c.serial == bindparam("p_serial"))


def get_certificate(conn: Connection, serial_hex: str) -> CertificateRecord | None:
    """The certificate with serial *serial_hex* (as operators paste it: colons, upper
    case, leading zeros), or ``None``: one primary-key read, whoever its subject."""
    row = conn.execute(_BY_SERIAL, {"p_serial": normalize_serial_hex(serial_hex)}).first()
    return None if row is None else _record(row._asdict())


def current_client_certificate(
    conn: Connection, subject: str, *, now: datetime | None = None
) -> CertificateRecord | None:
    """The newest valid (unrevoked) client certificate of account *subject*.

    With *now*, certificates already expired at that instant are skipped.
    """
    query = (
        select(certificates)
        .where(
            certificates.c.subject == subject,
            certificates.c.kind == "client",
            certificates.c.status == "valid",
        )
        .order_by(
            certificates.c.issued_at.desc(),
            certificates.c.not_before_at.desc(),
            certificates.c.serial.desc(),
        )
        .limit(1)
    )
    if now is not None:
        query = query.where(certificates.c.not_after_at > to_epoch(now))
    row = conn.execute(query).first()
    return None if row is None else _record(row._asdict())


def revoked_entries(conn: Connection) -> list[RevokedEntry]:
    """Every revoked certificate, for the CRL, in revocation order.

    Expired ones stay listed: a CRL that forgets them costs a few bytes less and
    gains nothing here.
    """
    rows = conn.execute(
        select(certificates.c.serial, certificates.c.revoked_at, certificates.c.revocation_reason)
        .where(certificates.c.status == "revoked")
        .order_by(certificates.c.revoked_at, certificates.c.serial)
    )
    return [
        RevokedEntry(serial_hex=serial, revoked_at=from_epoch(revoked_at), reason=reason)
        for serial, revoked_at, reason in rows
    ]


def next_crl_number(conn: Connection, *, now: datetime | None = None) -> int:
    """The next CRL number (1, 2, …), taken atomically; with *now*, records the issue time."""
    dialect = conn.dialect.name
    values: dict[str, Any] = {"id": 1, "crl_number": 1}
    on_conflict: dict[str, Any] = {"crl_number": crl_state.c.crl_number + 1}
    if now is not None:
        values["issued_at"] = on_conflict["issued_at"] = to_epoch(now)
    # One upsert statement: the row lock (PostgreSQL) or the write lock (SQLite)
    # serialises concurrent callers, and the first call needs no separate setup.
    if dialect == "postgresql":
        statement: Any = postgresql.insert(crl_state)
    elif dialect == "sqlite":
        statement = sqlite.insert(crl_state)
    else:
        raise NotImplementedError(f"next_crl_number has no upsert for the {dialect} dialect")
    statement = (
        statement.values(values)
        .on_conflict_do_update(index_elements=[crl_state.c.id], set_=on_conflict)
        .returning(crl_state.c.crl_number)
    )
    return int(conn.execute(statement).scalar_one())


def current_crl_state(conn: Connection) -> CrlState | None:
    """The last CRL number handed out, or None before the first CRL."""
    row = conn.execute(
        select(crl_state.c.crl_number, crl_state.c.issued_at).where(crl_state.c.id == 1)
    ).first()
    if row is None:
        return None
    return CrlState(crl_number=int(row.crl_number), issued_at=row.issued_at)


@dataclass(frozen=True)
class StoredCrl:
    """The current CRL as stored: its number, PEM and validity (epoch seconds UTC)."""

    crl_number: int
    pem: bytes = field(repr=False)
    this_update_at: float
    next_update_at: float

    def crl(self) -> x509.CertificateRevocationList:
        return x509.load_pem_x509_crl(self.pem)


def _crl_number_of(crl: x509.CertificateRevocationList) -> int:
    try:
        return int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    except x509.ExtensionNotFound:
        raise CertificateError("the CRL carries no CRL number; refusing to store it") from None


def store_crl(conn: Connection, crl: x509.CertificateRevocationList, *, now: datetime) -> bool:
    """Make *crl* the current CRL unless a CRL with a number at least as high is stored.

    One conditional upsert: two nodes storing at once leave the higher number, never
    an older CRL over a newer one.  True if *crl* is now the current one.
    """
    next_update = crl.next_update_utc
    if next_update is None:
        raise CertificateError("the CRL has no nextUpdate; refusing to store it")
    number = _crl_number_of(crl)
    values = {
        "id": 1,
        "crl_number": number,
        "pem": crl_pem(crl).decode("ascii"),
        "this_update_at": crl.last_update_utc.timestamp(),
        "next_update_at": next_update.timestamp(),
        "stored_at": to_epoch(now),
    }
    statement = _upsert(conn, crls).values(values)
    statement = statement.on_conflict_do_update(
        index_elements=[crls.c.id],
        set_={k: statement.excluded[k] for k in values if k != "id"},
        where=crls.c.crl_number < statement.excluded.crl_number,
    )
    # RETURNING, not rowcount: psycopg does not count an upsert's insert reliably.
    return conn.execute(statement.returning(crls.c.crl_number)).first() is not None


def current_crl(conn: Connection) -> StoredCrl | None:
    """The current CRL, or None before one was stored."""
    row = conn.execute(select(crls).where(crls.c.id == 1)).first()
    if row is None:
        return None
    return StoredCrl(
        crl_number=int(row.crl_number),
        pem=row.pem.encode("ascii"),
        this_update_at=float(row.this_update_at),
        next_update_at=float(row.next_update_at),
    )


def current_crl_version(conn: Connection) -> tuple[int, float] | None:
    """(number, nextUpdate) of the current CRL: the cheap read nodes poll."""
    row = conn.execute(
        select(crls.c.crl_number, crls.c.next_update_at).where(crls.c.id == 1)
    ).first()
    return None if row is None else (int(row.crl_number), float(row.next_update_at))


def sign_crl(
    conn: Connection, ca: CertificateAuthority, *, now: datetime, next_update: timedelta
) -> x509.CertificateRevocationList:
    """Sign a CRL of every revoked certificate with the next number and store it as the
    current one, in the caller's transaction; the CRL signed comes back."""
    crl = ca.build_crl(
        revoked_entries(conn),
        now=now,
        next_update=next_update,
        crl_number=next_crl_number(conn, now=now),
    )
    store_crl(conn, crl, now=now)
    return crl


def renew_crl_if_due(
    conn: Connection,
    ca: CertificateAuthority,
    *,
    now: datetime,
    next_update: timedelta,
    renew_before: timedelta,
) -> x509.CertificateRevocationList | None:
    """Re-sign the current CRL if less than *renew_before* is left before its nextUpdate.

    Whichever node gets there first renews it: the current row is read ``FOR UPDATE``
    (PostgreSQL; SQLite's write transaction is exclusive already), so a second node
    waits, then sees the renewed CRL and does nothing.  The new CRL, or None.
    """
    row = conn.execute(
        select(crls.c.next_update_at).where(crls.c.id == 1).with_for_update()
    ).first()
    if row is not None and float(row.next_update_at) - to_epoch(now) > renew_before.total_seconds():
        return None
    return sign_crl(conn, ca, now=now, next_update=next_update)


def _upsert(conn: Connection, table: Any) -> Any:
    dialect = conn.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"no upsert for the {dialect} dialect")


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _require_kind(kind: str) -> None:
    if kind not in KINDS:
        raise CertificateError(f"certificate kind {kind!r} is not one of: {', '.join(KINDS)}")


def _require_status(status: str) -> None:
    if status not in STATUSES:
        raise CertificateError(
            f"certificate status {status!r} is not one of: {', '.join(STATUSES)}"
        )


def _record(row: dict[str, Any]) -> CertificateRecord:
    revoked_at = row["revoked_at"]
    return CertificateRecord(
        serial=row["serial"],
        kind=row["kind"],
        subject=row["subject"],
        fingerprint_sha256=row["fingerprint_sha256"],
        not_before_at=float(row["not_before_at"]),
        not_after_at=float(row["not_after_at"]),
        issued_at=float(row["issued_at"]),
        status=row["status"],
        revoked_at=None if revoked_at is None else float(revoked_at),
        revocation_reason=row["revocation_reason"],
        pem=row["pem"],
    )
