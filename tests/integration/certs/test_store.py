"""The certificate register on real SQLite and PostgreSQL (the ``engine`` fixture)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, exc, inspect

from certs import (
    CertificateAuthority,
    CertificateError,
    IssuedCertificate,
    RevokedEntry,
    current_client_certificate,
    current_crl_state,
    get_certificate,
    list_certificates,
    next_crl_number,
    record_certificate,
    revoke,
    revoke_subject,
    revoked_entries,
    server_subject,
)
from certs._schema import certificates, metadata
from ssgate._db import in_transaction

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
ALICE = "33068212345678@sxlss"
BOB = "33068287654321@sxlss"


@pytest.fixture
def db(engine: Engine) -> Iterator[Engine]:
    metadata.create_all(engine)
    yield engine
    metadata.drop_all(engine)


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create("ssgate store CA", now=NOW)


def _client(db: Engine, ca: CertificateAuthority, account: str, at: datetime) -> IssuedCertificate:
    issued = ca.issue_client(account, now=at)
    with db.begin() as conn:
        record_certificate(conn, issued.certificate, kind="client", subject=account, now=at)
    return issued


def test_record_returns_and_lists_plain_values(db: Engine, ca: CertificateAuthority) -> None:
    """A recorded certificate comes back with its serial, fingerprint, validity and PEM."""
    issued = ca.issue_client(ALICE, now=NOW)
    with db.begin() as conn:
        record = record_certificate(conn, issued.certificate, kind="client", subject=ALICE, now=NOW)
    assert record.serial == issued.serial_hex
    assert record.fingerprint_sha256 == issued.fingerprint_sha256
    assert record.status == "valid"
    assert record.revoked_at is None
    assert record.revocation_reason is None
    with db.begin() as conn:
        [listed] = list_certificates(conn)
    assert listed == record
    # Instants come back as the columns hold them: epoch seconds UTC.
    assert listed.issued_at == NOW.timestamp()
    assert listed.not_before_at == issued.certificate.not_valid_before_utc.timestamp()
    assert listed.not_after_at == issued.certificate.not_valid_after_utc.timestamp()
    assert listed.certificate() == issued.certificate
    assert "BEGIN CERTIFICATE" not in repr(listed)


def test_list_filters_by_subject_kind_and_status(db: Engine, ca: CertificateAuthority) -> None:
    """Each filter narrows the list; together they combine with AND; order is issue order."""
    hostnames = ["gw.example.org", "127.0.0.1"]
    server = ca.issue_server(hostnames, now=NOW)
    with db.begin() as conn:
        record_certificate(conn, ca.certificate, kind="ca", subject="ssgate store CA", now=NOW)
        record_certificate(
            conn, server.certificate, kind="server", subject=server_subject(hostnames), now=NOW
        )
    alice_old = _client(db, ca, ALICE, NOW + timedelta(seconds=1))
    alice_new = _client(db, ca, ALICE, NOW + timedelta(seconds=2))
    bob = _client(db, ca, BOB, NOW + timedelta(seconds=3))
    with db.begin() as conn:
        revoke(conn, alice_old.serial_hex, reason="superseded", now=NOW + timedelta(seconds=4))
    with db.begin() as conn:
        assert len(list_certificates(conn)) == 5
        assert [r.serial for r in list_certificates(conn, kind="client")] == [
            alice_old.serial_hex,
            alice_new.serial_hex,
            bob.serial_hex,
        ]
        assert [r.subject for r in list_certificates(conn, kind="server")] == [
            "gw.example.org,127.0.0.1"
        ]
        assert [r.serial for r in list_certificates(conn, subject=ALICE, status="valid")] == [
            alice_new.serial_hex
        ]
        assert [r.serial for r in list_certificates(conn, status="revoked")] == [
            alice_old.serial_hex
        ]
        assert list_certificates(conn, subject="nobody@sxlss") == []
        with pytest.raises(CertificateError, match="kind 'user'"):
            list_certificates(conn, kind="user")
        with pytest.raises(CertificateError, match="status 'expired'"):
            list_certificates(conn, status="expired")


def test_record_refuses_client_certificate_of_another_account(
    db: Engine, ca: CertificateAuthority
) -> None:
    """A certificate is recorded once, under its own account and a kind that matches it."""
    issued = ca.issue_client(ALICE, now=NOW)
    with db.begin() as conn, pytest.raises(CertificateError, match="not bound to account"):
        record_certificate(conn, issued.certificate, kind="client", subject=BOB, now=NOW)
    with db.begin() as conn:
        record_certificate(conn, issued.certificate, kind="client", subject=ALICE, now=NOW)
    with db.begin() as conn, pytest.raises(CertificateError, match="already recorded"):
        record_certificate(conn, issued.certificate, kind="client", subject=ALICE, now=NOW)
    # A leaf recorded as "ca" would become unrevocable; a CA recorded as a leaf, revocable.
    with db.begin() as conn, pytest.raises(CertificateError, match="basicConstraints"):
        record_certificate(conn, issued.certificate, kind="ca", subject=ALICE, now=NOW)
    with db.begin() as conn, pytest.raises(CertificateError, match="basicConstraints"):
        record_certificate(conn, ca.certificate, kind="server", subject="gw", now=NOW)


def test_revoke_is_idempotent(db: Engine, ca: CertificateAuthority) -> None:
    """First revoke is True; again, or for an unknown serial, False; the first reason sticks."""
    issued = _client(db, ca, ALICE, NOW)
    later = NOW + timedelta(hours=1)
    with db.begin() as conn:
        assert revoke(conn, issued.serial_hex, reason="key_compromise", now=later)
    with db.begin() as conn:
        assert not revoke(conn, issued.serial_hex, reason="superseded", now=later + timedelta(1))
        assert not revoke(conn, "abcdef", reason="superseded", now=later)
        [record] = list_certificates(conn)
    assert record.status == "revoked"
    assert record.revoked_at == later.timestamp()
    assert record.revocation_reason == "key_compromise"


def test_revoke_accepts_the_serial_as_openssl_prints_it(
    db: Engine, ca: CertificateAuthority
) -> None:
    """Upper case with colons and a leading zero finds the same certificate."""
    issued = _client(db, ca, ALICE, NOW)
    digits = issued.serial_hex.upper().zfill(len(issued.serial_hex) + 1)
    pasted = ":".join(digits[i : i + 2] for i in range(0, len(digits), 2))
    with db.begin() as conn:
        assert revoke(conn, pasted, reason="superseded", now=NOW)
        assert [e.serial_hex for e in revoked_entries(conn)] == [issued.serial_hex]


def test_revoke_refuses_unknown_reason_and_the_ca(db: Engine, ca: CertificateAuthority) -> None:
    """A reason outside the list and the CA's own certificate are refused with a message."""
    issued = _client(db, ca, ALICE, NOW)
    with db.begin() as conn:
        record_certificate(conn, ca.certificate, kind="ca", subject="ssgate store CA", now=NOW)
    with db.begin() as conn, pytest.raises(CertificateError, match="not one of"):
        revoke(conn, issued.serial_hex, reason="lost", now=NOW)
    ca_serial = format(ca.certificate.serial_number, "x")
    with db.begin() as conn, pytest.raises(CertificateError, match="CA certificate"):
        revoke(conn, ca_serial, reason="key_compromise", now=NOW)
    with db.begin() as conn:
        assert list_certificates(conn, status="revoked") == []


def test_revoke_subject_revokes_every_valid_certificate_of_one_account(
    db: Engine, ca: CertificateAuthority
) -> None:
    """All of Alice's valid client certificates are revoked; Bob's are untouched; then none."""
    first = _client(db, ca, ALICE, NOW)
    second = _client(db, ca, ALICE, NOW + timedelta(seconds=1))
    already = _client(db, ca, ALICE, NOW + timedelta(seconds=2))
    bob = _client(db, ca, BOB, NOW)
    with db.begin() as conn:
        revoke(conn, already.serial_hex, reason="superseded", now=NOW)
    with db.begin() as conn:
        serials = revoke_subject(conn, ALICE, reason="cessation_of_operation", now=NOW)
    assert serials == sorted([first.serial_hex, second.serial_hex])
    with db.begin() as conn:
        assert revoke_subject(conn, ALICE, reason="cessation_of_operation", now=NOW) == []
        assert revoke_subject(conn, ALICE, kind="server", reason="superseded", now=NOW) == []
        assert [r.serial for r in list_certificates(conn, subject=BOB, status="valid")] == [
            bob.serial_hex
        ]
        reasons = {e.serial_hex: e.reason for e in revoked_entries(conn)}
    assert reasons == {
        first.serial_hex: "cessation_of_operation",
        second.serial_hex: "cessation_of_operation",
        already.serial_hex: "superseded",
    }


def test_current_client_certificate_is_the_newest_valid_one(
    db: Engine, ca: CertificateAuthority
) -> None:
    """Newest unrevoked wins; revoking it falls back; with `now` past expiry there is none."""
    old = _client(db, ca, ALICE, NOW)
    new = _client(db, ca, ALICE, NOW + timedelta(days=1))
    _client(db, ca, BOB, NOW + timedelta(days=2))
    with db.begin() as conn:
        current = current_client_certificate(conn, ALICE)
        assert current is not None
        assert current.serial == new.serial_hex
        revoke(conn, new.serial_hex, reason="superseded", now=NOW + timedelta(days=2))
        current = current_client_certificate(conn, ALICE)
        assert current is not None
        assert current.serial == old.serial_hex
        after_expiry = old.certificate.not_valid_after_utc + timedelta(seconds=1)
        assert current_client_certificate(conn, ALICE, now=after_expiry) is None
        revoke(conn, old.serial_hex, reason="superseded", now=NOW + timedelta(days=2))
        assert current_client_certificate(conn, ALICE) is None
        assert current_client_certificate(conn, "nobody@sxlss") is None


def test_revoked_entries_feed_a_crl_the_ca_signs(db: Engine, ca: CertificateAuthority) -> None:
    """What the store lists as revoked is exactly what the CRL then lists."""
    good = _client(db, ca, ALICE, NOW)
    bad = _client(db, ca, BOB, NOW)
    with db.begin() as conn:
        revoke(conn, bad.serial_hex, reason="key_compromise", now=NOW + timedelta(minutes=1))
        entries = revoked_entries(conn)
        number = next_crl_number(conn, now=NOW + timedelta(minutes=1))
    assert entries == [
        RevokedEntry(
            serial_hex=bad.serial_hex,
            revoked_at=NOW + timedelta(minutes=1),
            reason="key_compromise",
        )
    ]
    crl = ca.build_crl(entries, now=NOW + timedelta(minutes=1), crl_number=number)
    assert crl.get_revoked_certificate_by_serial_number(bad.certificate.serial_number)
    assert crl.get_revoked_certificate_by_serial_number(good.certificate.serial_number) is None


def test_next_crl_number_starts_at_one_and_increments(db: Engine) -> None:
    """1, 2, 3 across transactions; the state remembers the last number and its issue time."""
    with db.begin() as conn:
        assert current_crl_state(conn) is None
        assert next_crl_number(conn) == 1
    with db.begin() as conn:
        assert next_crl_number(conn, now=NOW) == 2
    with db.begin() as conn:
        assert next_crl_number(conn) == 3
        state = current_crl_state(conn)
    assert state is not None
    assert state.crl_number == 3
    assert state.issued_at == NOW.timestamp()


def test_next_crl_number_is_unique_under_concurrent_transactions(db: Engine) -> None:
    """Four threads taking ten numbers each get 1..40 with no duplicates."""
    taken: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def take() -> None:
        try:
            for _ in range(10):
                number = in_transaction(db, next_crl_number)
                with lock:
                    taken.append(number)
        except BaseException as e:  # collected and re-raised in the test thread
            errors.append(e)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert sorted(taken) == list(range(1, 41))


def test_schema_constraints_are_named_and_enforced(db: Engine) -> None:
    """Constraints carry their pk_/ix_/ck_ names, and the database refuses inconsistent rows."""
    inspector = inspect(db)
    assert inspector.get_pk_constraint("certificates")["name"] == "pk_certificates"
    assert inspector.get_pk_constraint("crl_state")["name"] == "pk_crl_state"
    checks = {c["name"] for c in inspector.get_check_constraints("certificates")}
    assert {
        "ck_certificates_kind",
        "ck_certificates_status",
        "ck_certificates_revocation_reason",
        "ck_certificates_revocation_consistent",
        "ck_certificates_validity",
    } <= checks
    indexes = {i["name"] for i in inspector.get_indexes("certificates")}
    assert {
        "ix_certificates_subject",
        "ix_certificates_status",
        "ix_certificates_fingerprint_sha256",
    } <= indexes
    row = {
        "serial": "abc",
        "kind": "client",
        "subject": ALICE,
        "fingerprint_sha256": "0" * 64,
        "not_before_at": 0.0,
        "not_after_at": 1.0,
        "issued_at": 0.0,
        "status": "revoked",  # revoked without a time or reason
        "revoked_at": None,
        "revocation_reason": None,
        "pem": "",
    }
    with pytest.raises(exc.IntegrityError), db.begin() as conn:
        conn.execute(certificates.insert().values(row))


def test_get_certificate_reads_one_certificate_by_serial(
    db: Engine, ca: CertificateAuthority
) -> None:
    """One certificate by its serial, however it is spelled, whoever its subject; its
    revocation shows; an unknown serial is ``None`` and a non-serial a clear error."""
    alice = _client(db, ca, ALICE, NOW)
    bob = _client(db, ca, BOB, NOW + timedelta(seconds=1))
    with db.begin() as conn:
        revoke(conn, bob.serial_hex, reason="key_compromise", now=NOW + timedelta(seconds=2))
    with db.begin() as conn:
        found = get_certificate(conn, alice.serial_hex)
        assert found is not None
        assert (found.subject, found.kind, found.status) == (ALICE, "client", "valid")
        assert get_certificate(conn, "00:" + alice.serial_hex.upper()) == found
        revoked = get_certificate(conn, bob.serial_hex)
        assert revoked is not None
        assert (revoked.subject, revoked.status) == (BOB, "revoked")
        assert get_certificate(conn, "abcdef") is None
        with pytest.raises(CertificateError, match="not a hexadecimal serial"):
            get_certificate(conn, "not-a-serial")
