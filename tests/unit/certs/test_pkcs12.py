"""PKCS#12 bundles: round trip, passphrase and content checks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from certs import (
    CertificateAuthority,
    CertificateError,
    IssuedCertificate,
    load_pkcs12,
    make_pkcs12,
)

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
ACCOUNT = "33068212345678@sxlss"
PASSPHRASE = b"correct horse battery staple"


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create("ssgate test CA", now=NOW)


@pytest.fixture(scope="module")
def issued(ca: CertificateAuthority) -> IssuedCertificate:
    return ca.issue_client(ACCOUNT, now=NOW)


def _public_der(key: object) -> bytes:
    assert hasattr(key, "public_key")
    result: bytes = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return result


def test_pkcs12_round_trip_keeps_key_certificate_ca_and_name(
    ca: CertificateAuthority, issued: IssuedCertificate
) -> None:
    """load_pkcs12(make_pkcs12(...)) returns the same key, certificate and CA chain."""
    data = make_pkcs12(issued, ca.certificate, PASSPHRASE, friendly_name=ACCOUNT)
    key, certificate, chain = load_pkcs12(data, PASSPHRASE)
    assert certificate == issued.certificate
    assert _public_der(key) == _public_der(issued.key)
    assert chain == [ca.certificate]
    bundle = pkcs12.load_pkcs12(data, PASSPHRASE)
    assert bundle.cert is not None
    assert bundle.cert.friendly_name == ACCOUNT.encode()


def test_pkcs12_wrong_passphrase_is_a_clear_error(
    ca: CertificateAuthority, issued: IssuedCertificate
) -> None:
    """A wrong passphrase raises CertificateError naming the problem, not the passphrase."""
    data = make_pkcs12(issued, ca.certificate, PASSPHRASE, friendly_name=ACCOUNT)
    with pytest.raises(CertificateError, match="wrong passphrase") as caught:
        load_pkcs12(data, b"wrong guess")
    assert "wrong guess" not in str(caught.value)
    assert PASSPHRASE.decode() not in str(caught.value)


def test_pkcs12_garbage_is_a_clear_error() -> None:
    """Bytes that are not a PKCS#12 file raise CertificateError."""
    with pytest.raises(CertificateError, match="not a PKCS#12 file"):
        load_pkcs12(b"\x30\x03garbage", PASSPHRASE)


def test_pkcs12_without_key_is_refused(issued: IssuedCertificate) -> None:
    """A bundle holding only certificates is not a client bundle."""
    data = pkcs12.serialize_key_and_certificates(
        None, None, None, [issued.certificate], serialization.BestAvailableEncryption(PASSPHRASE)
    )
    with pytest.raises(CertificateError, match="lacks a private key"):
        load_pkcs12(data, PASSPHRASE)


def test_make_pkcs12_refuses_empty_passphrase_and_foreign_ca(
    ca: CertificateAuthority, issued: IssuedCertificate
) -> None:
    """No unprotected bundles; the CA given must be the one that signed the certificate."""
    with pytest.raises(CertificateError, match="non-empty passphrase"):
        make_pkcs12(issued, ca.certificate, b"", friendly_name=ACCOUNT)
    other = CertificateAuthority.create("other CA", now=NOW)
    with pytest.raises(CertificateError, match="not issued by the given CA"):
        make_pkcs12(issued, other.certificate, PASSPHRASE, friendly_name=ACCOUNT)
    stranger = ca.issue_client(ACCOUNT, now=NOW)
    mismatched = IssuedCertificate(key=stranger.key, certificate=issued.certificate)
    with pytest.raises(CertificateError, match="does not match its key"):
        make_pkcs12(mismatched, ca.certificate, PASSPHRASE, friendly_name=ACCOUNT)
