"""The CA: its own certificate, server and client issuance, loading from PEM."""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs import (
    ACCOUNT_URI_PREFIX,
    CertificateAuthority,
    CertificateError,
    IssuedCertificate,
    account_of,
    server_subject,
)

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
ACCOUNT = "33068212345678@sxlss"


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create("ssgate test CA", now=NOW)


E = TypeVar("E", bound=x509.ExtensionType)


def _ext(cert: x509.Certificate, kind: type[E]) -> x509.Extension[E]:
    return cert.extensions.get_extension_for_class(kind)


def test_ca_may_sign_leaf_certificates_and_crls_only(ca: CertificateAuthority) -> None:
    """CA: basicConstraints CA:TRUE pathlen:0 and keyUsage keyCertSign+cRLSign, both critical."""
    cert = ca.certificate
    constraints = _ext(cert, x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca
    assert constraints.value.path_length == 0
    usage = _ext(cert, x509.KeyUsage)
    assert usage.critical
    assert usage.value.key_cert_sign
    assert usage.value.crl_sign
    assert not usage.value.digital_signature
    ski = _ext(cert, x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(ca.key.public_key())


def test_ca_is_self_signed_p256_sha256_with_skewed_start(ca: CertificateAuthority) -> None:
    """The CA signs itself with ECDSA P-256/SHA-256, starts 5 minutes early, lasts 3650 days."""
    cert = ca.certificate
    assert cert.issuer == cert.subject
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "ssgate test CA"
    cert.verify_directly_issued_by(cert)
    assert isinstance(ca.key.curve, ec.SECP256R1)
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    assert cert.not_valid_before_utc == NOW - timedelta(minutes=5)
    assert cert.not_valid_after_utc == NOW + timedelta(days=3650)


def test_ca_refuses_naive_now() -> None:
    """A naive datetime is refused: the package never guesses a time zone."""
    with pytest.raises(CertificateError, match="timezone-aware"):
        CertificateAuthority.create("x", now=datetime(2026, 1, 1))


def test_ca_pem_round_trip(ca: CertificateAuthority) -> None:
    """load(cert_pem(), key_pem()) gives back the same CA; the key is unencrypted PKCS#8."""
    assert ca.key_pem().startswith(b"-----BEGIN PRIVATE KEY-----")
    loaded = CertificateAuthority.load(ca.cert_pem(), ca.key_pem())
    assert loaded.certificate == ca.certificate
    assert loaded.fingerprint_sha256() == ca.fingerprint_sha256()
    assert (
        ca.fingerprint_sha256()
        == hashlib.sha256(ca.certificate.public_bytes(serialization.Encoding.DER)).hexdigest()
    )


def test_ca_load_refuses_key_of_another_ca(ca: CertificateAuthority) -> None:
    """A CA certificate with somebody else's key is refused."""
    other = CertificateAuthority.create("other CA", now=NOW)
    with pytest.raises(CertificateError, match="does not match"):
        CertificateAuthority.load(ca.cert_pem(), other.key_pem())


def test_ca_load_refuses_garbage_encrypted_and_non_ca(ca: CertificateAuthority) -> None:
    """Unreadable PEM, an encrypted key and a leaf certificate are each refused by name."""
    with pytest.raises(CertificateError, match="CA certificate is not a readable"):
        CertificateAuthority.load(b"not a pem", ca.key_pem())
    with pytest.raises(CertificateError, match="CA key is not a readable"):
        CertificateAuthority.load(ca.cert_pem(), b"-----BEGIN PRIVATE KEY-----\nAAAA\n")
    encrypted = ca.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret-pass"),
    )
    with pytest.raises(CertificateError, match="encrypted") as caught:
        CertificateAuthority.load(ca.cert_pem(), encrypted)
    assert "secret-pass" not in str(caught.value)
    leaf = ca.issue_client(ACCOUNT, now=NOW)
    with pytest.raises(CertificateError, match="not a CA"):
        CertificateAuthority.load(leaf.cert_pem(), leaf.key_pem())


def test_server_certificate_names_hosts_and_ip_literals_in_san(ca: CertificateAuthority) -> None:
    """DNS names go in as DNSName (lower-cased), IP literals as IPAddress; EKU serverAuth."""
    issued = ca.issue_server(["GW.example.org", "gw2.example.org", "192.0.2.7", "::1"], now=NOW)
    cert = issued.certificate
    san = _ext(cert, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["gw.example.org", "gw2.example.org"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("192.0.2.7"),
        ipaddress.ip_address("::1"),
    ]
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "gw.example.org"
    assert _ext(cert, x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.SERVER_AUTH]
    )
    assert account_of(cert) is None


def test_leaf_certificates_are_end_entities_signed_by_the_ca(ca: CertificateAuthority) -> None:
    """Leaves: CA:FALSE, keyUsage digitalSignature only, AKI = CA's SKI, CA signature, P-256."""
    for issued in (ca.issue_server(["gw.example.org"], now=NOW), ca.issue_client(ACCOUNT, now=NOW)):
        cert = issued.certificate
        cert.verify_directly_issued_by(ca.certificate)
        assert ca.issued(cert)
        assert cert.issuer == ca.certificate.subject
        constraints = _ext(cert, x509.BasicConstraints)
        assert constraints.critical
        assert not constraints.value.ca
        usage = _ext(cert, x509.KeyUsage)
        assert usage.critical
        assert usage.value.digital_signature
        assert not usage.value.key_cert_sign
        aki = _ext(cert, x509.AuthorityKeyIdentifier).value
        ca_ski = _ext(ca.certificate, x509.SubjectKeyIdentifier).value
        assert aki.key_identifier == ca_ski.digest
        assert isinstance(issued.key.curve, ec.SECP256R1)
        assert cert.not_valid_before_utc == NOW - timedelta(minutes=5)


def test_server_validity_is_capped_at_366_days(ca: CertificateAuthority) -> None:
    """366 days is accepted; 367 and 0 are refused with the allowed range."""
    issued = ca.issue_server(["gw.example.org"], now=NOW, validity_days=366)
    assert issued.certificate.not_valid_after_utc == NOW + timedelta(days=366)
    assert ca.issue_server(
        ["gw.example.org"], now=NOW
    ).certificate.not_valid_after_utc == NOW + timedelta(days=365)
    for days in (367, 0):
        with pytest.raises(CertificateError, match="must be 1 to 366"):
            ca.issue_server(["gw.example.org"], now=NOW, validity_days=days)


@pytest.mark.parametrize(
    ("hostnames", "problem"),
    [
        ([], "at least one hostname"),
        (["*.example.org"], "not a DNS name"),
        (["gw example.org"], "not a DNS name"),
        (["gw.example.org."], "not a DNS name"),
        (["-gw.example.org"], "not a DNS name"),
        (["1.2.3"], "not a DNS name"),
        (["网关.example.org"], "xn--"),
        ("gw.example.org", "not one string"),
    ],
)
def test_server_refuses_names_a_client_could_not_match(
    ca: CertificateAuthority, hostnames: list[str], problem: str
) -> None:
    """Wildcards, spaces, odd dots, U-labels and a bare string are refused, naming the issue."""
    with pytest.raises(CertificateError, match=problem):
        ca.issue_server(hostnames, now=NOW)


def test_server_subject_and_san_drop_duplicate_names(ca: CertificateAuthority) -> None:
    """A name given twice (in any case) appears once; server_subject joins names with commas."""
    names = ["gw.example.org", "GW.example.org", "127.0.0.1"]
    san = _ext(ca.issue_server(names, now=NOW).certificate, x509.SubjectAlternativeName).value
    assert len(list(san)) == 2
    assert server_subject(names) == "gw.example.org,127.0.0.1"


def test_client_certificate_is_bound_to_its_account(ca: CertificateAuthority) -> None:
    """CN = account and SAN URI urn:ssgate:account:<account>; account_of reads it back."""
    issued = ca.issue_client(ACCOUNT, now=NOW)
    cert = issued.certificate
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == ACCOUNT
    san = _ext(cert, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        f"urn:ssgate:account:{ACCOUNT}"
    ]
    assert account_of(cert) == ACCOUNT
    assert _ext(cert, x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    assert cert.not_valid_after_utc == NOW + timedelta(days=730)


@pytest.mark.parametrize("account", ["", "a b", "x" * 65, "a\nb", "@sxlss", "a/b", "名@sxlss"])
def test_client_refuses_account_names_unsafe_in_a_certificate(
    ca: CertificateAuthority, account: str
) -> None:
    """Empty, over-long, spaced, control, slash and non-ASCII account names are refused."""
    with pytest.raises(CertificateError, match="cannot go in a certificate"):
        ca.issue_client(account, now=NOW)


def test_client_validity_bounds(ca: CertificateAuthority) -> None:
    """Client certificates last 1 to 1096 days."""
    with pytest.raises(CertificateError, match="must be 1 to 1096"):
        ca.issue_client(ACCOUNT, now=NOW, validity_days=1097)
    with pytest.raises(CertificateError, match="must be 1 to 1096"):
        ca.issue_client(ACCOUNT, now=NOW, validity_days=0)


def _self_signed_with_san(san: Sequence[x509.GeneralName]) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ACCOUNT)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .sign(key, hashes.SHA256())
    )


def test_account_of_ignores_cn_and_refuses_ambiguous_bindings() -> None:
    """Only the SAN URI binds: a CN alone, another URN, or two different accounts give None."""
    uri = x509.UniformResourceIdentifier
    assert account_of(_self_signed_with_san([x509.DNSName("example.org")])) is None
    assert account_of(_self_signed_with_san([uri("urn:other:account:" + ACCOUNT)])) is None
    two = [uri(ACCOUNT_URI_PREFIX + ACCOUNT), uri(ACCOUNT_URI_PREFIX + "33068200000000@sxlss")]
    assert account_of(_self_signed_with_san(two)) is None
    same_twice = [uri(ACCOUNT_URI_PREFIX + ACCOUNT), uri(ACCOUNT_URI_PREFIX + ACCOUNT)]
    assert account_of(_self_signed_with_san(same_twice)) == ACCOUNT


def test_issued_certificate_exposes_serial_fingerprint_and_pem(ca: CertificateAuthority) -> None:
    """serial_hex is lowercase hex without colons; fingerprint is SHA-256 of DER; repr hides key."""
    issued = ca.issue_client(ACCOUNT, now=NOW)
    assert issued.serial_hex == format(issued.certificate.serial_number, "x")
    assert issued.serial_hex == issued.serial_hex.lower()
    der = issued.certificate.public_bytes(serialization.Encoding.DER)
    assert issued.fingerprint_sha256 == hashlib.sha256(der).hexdigest()
    assert x509.load_pem_x509_certificate(issued.cert_pem()) == issued.certificate
    key = serialization.load_pem_private_key(issued.key_pem(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.private_numbers() == issued.key.private_numbers()
    assert "key=" not in repr(issued)
    assert isinstance(issued, IssuedCertificate)


def test_serials_are_random(ca: CertificateAuthority) -> None:
    """Two certificates for the same account never share a serial."""
    serials = {ca.issue_client(ACCOUNT, now=NOW).serial_hex for _ in range(20)}
    assert len(serials) == 20


def test_ca_refuses_to_issue_past_its_own_lifetime() -> None:
    """A leaf that would outlive the CA, or issuance by an expired CA, is refused."""
    short = CertificateAuthority.create("short CA", now=NOW, validity_days=30)
    with pytest.raises(CertificateError, match="outlive the CA"):
        short.issue_client(ACCOUNT, now=NOW)
    assert short.issue_client(ACCOUNT, now=NOW, validity_days=30).certificate
    with pytest.raises(CertificateError, match="not valid at"):
        short.issue_server(["gw.example.org"], now=NOW + timedelta(days=31), validity_days=1)
