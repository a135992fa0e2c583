"""Revocation: CRL contents and signature, reason names, serial spelling."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from hypothesis import given
from hypothesis import strategies as st

from certs import (
    REVOCATION_REASONS,
    CertificateAuthority,
    CertificateError,
    RevokedEntry,
    crl_pem,
    normalize_serial_hex,
    reason_of,
    serial_hex_of,
)
from certs._schema import REASONS

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create("ssgate test CA", now=NOW)


def _entry(ca: CertificateAuthority, reason: str, at: datetime = NOW) -> RevokedEntry:
    serial = ca.issue_client("33068212345678@sxlss", now=NOW).serial_hex
    return RevokedEntry(serial_hex=serial, revoked_at=at, reason=reason)


def test_crl_lists_revoked_serials_with_their_reasons(ca: CertificateAuthority) -> None:
    """Every entry is on the CRL with its date and reason; other serials are not."""
    entries = [
        _entry(ca, reason, NOW - timedelta(hours=i))
        for i, reason in enumerate(
            ["key_compromise", "cessation_of_operation", "superseded", "affiliation_changed"]
        )
    ]
    crl = ca.build_crl(entries, now=NOW, crl_number=3)
    assert len(crl) == 4
    for entry in entries:
        listed = crl.get_revoked_certificate_by_serial_number(int(entry.serial_hex, 16))
        assert listed is not None
        assert listed.revocation_date_utc == entry.revoked_at
        assert reason_of(listed) == entry.reason
    good = ca.issue_client("33068212345678@sxlss", now=NOW)
    assert crl.get_revoked_certificate_by_serial_number(good.certificate.serial_number) is None


def test_crl_reason_codes_are_rfc5280_values(ca: CertificateAuthority) -> None:
    """key_compromise is CRLReason keyCompromise; 'unspecified' carries no reasonCode (§5.3.1)."""
    compromised, unspecified = _entry(ca, "key_compromise"), _entry(ca, "unspecified")
    crl = ca.build_crl([compromised, unspecified], now=NOW, crl_number=1)
    listed = crl.get_revoked_certificate_by_serial_number(int(compromised.serial_hex, 16))
    assert listed is not None
    reason = listed.extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason is x509.ReasonFlags.key_compromise
    plain = crl.get_revoked_certificate_by_serial_number(int(unspecified.serial_hex, 16))
    assert plain is not None
    with pytest.raises(x509.ExtensionNotFound):
        plain.extensions.get_extension_for_class(x509.CRLReason)
    assert reason_of(plain) == "unspecified"


def test_crl_is_signed_by_the_ca_and_numbered(ca: CertificateAuthority) -> None:
    """The CA's key signs the CRL (another CA's does not verify); CRLNumber and AKI are set."""
    crl = ca.build_crl([_entry(ca, "superseded")], now=NOW, crl_number=42)
    assert crl.is_signature_valid(ca.key.public_key())
    other = CertificateAuthority.create("other CA", now=NOW)
    assert not crl.is_signature_valid(other.key.public_key())
    assert crl.issuer == ca.certificate.subject
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 42
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest


def test_crl_update_window(ca: CertificateAuthority) -> None:
    """thisUpdate is now minus 5 minutes (clock skew); nextUpdate is now + next_update."""
    crl = ca.build_crl([], now=NOW, crl_number=1)
    assert crl.last_update_utc == NOW - timedelta(minutes=5)
    assert crl.next_update_utc == NOW + timedelta(days=7)
    daily = ca.build_crl([], now=NOW, next_update=timedelta(days=1), crl_number=2)
    assert daily.next_update_utc == NOW + timedelta(days=1)
    assert len(daily) == 0


def test_crl_refuses_bad_numbers_windows_and_duplicates(ca: CertificateAuthority) -> None:
    """CRL number below 1, a non-positive window, and a serial listed twice are refused."""
    with pytest.raises(CertificateError, match="out of range"):
        ca.build_crl([], now=NOW, crl_number=0)
    with pytest.raises(CertificateError, match="positive interval"):
        ca.build_crl([], now=NOW, next_update=timedelta(0), crl_number=1)
    entry = _entry(ca, "superseded")
    with pytest.raises(CertificateError, match="listed twice"):
        ca.build_crl([entry, entry], now=NOW, crl_number=1)


def test_crl_pem_round_trips(ca: CertificateAuthority) -> None:
    """crl_pem gives a PEM X509 CRL that loads back to the same list."""
    entry = _entry(ca, "key_compromise")
    crl = ca.build_crl([entry], now=NOW, crl_number=7)
    pem = crl_pem(crl)
    assert pem.startswith(b"-----BEGIN X509 CRL-----")
    assert x509.load_pem_x509_crl(pem) == crl


@pytest.mark.parametrize(
    ("serial_hex", "revoked_at", "reason", "problem"),
    [
        ("a1b", NOW, "stolen", "not one of"),
        ("A1B", NOW, "superseded", "lowercase hex"),
        ("0a1b", NOW, "superseded", "lowercase hex"),
        ("a1b", datetime(2026, 1, 1), "superseded", "timezone-aware"),
    ],
)
def test_revoked_entry_refuses_bad_fields(
    serial_hex: str, revoked_at: datetime, reason: str, problem: str
) -> None:
    """Unknown reasons, non-canonical serials and naive instants never reach a CRL."""
    with pytest.raises(CertificateError, match=problem):
        RevokedEntry(serial_hex=serial_hex, revoked_at=revoked_at, reason=reason)


def test_reason_names_match_the_database_check_constraint() -> None:
    """The schema's allowed reasons are exactly the revocation reasons."""
    assert set(REASONS) == REVOCATION_REASONS
    assert {
        "key_compromise",
        "cessation_of_operation",
        "superseded",
        "affiliation_changed",
        "unspecified",
    } == REVOCATION_REASONS


def test_normalize_serial_hex_accepts_pasted_forms() -> None:
    """Colons, upper case and leading zeros (as openssl prints) all give one spelling."""
    assert normalize_serial_hex("0A:1B") == "a1b"
    assert normalize_serial_hex(" 00A1b ") == "a1b"
    for bad in ("", "xyz", "0", "00:00", "1" * 41, "a-b"):
        with pytest.raises(CertificateError, match="serial"):
            normalize_serial_hex(bad)


@given(st.integers(min_value=1, max_value=2**159 - 1))
def test_normalize_serial_hex_inverts_openssl_spelling(serial: int) -> None:
    """openssl's byte-padded, colon-separated upper-case form normalizes to serial_hex_of."""
    hex_digits = format(serial, "X")
    padded = hex_digits.zfill(len(hex_digits) + len(hex_digits) % 2)
    openssl_form = ":".join(padded[i : i + 2] for i in range(0, len(padded), 2))
    assert normalize_serial_hex(openssl_form) == serial_hex_of(serial)
    assert int(serial_hex_of(serial), 16) == serial
