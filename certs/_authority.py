"""The certificate authority: CA creation and loading, server and client issuance, CRLs.

Everything is built with ``cryptography`` (pyOpenSSL's PKI parts are gone in v26),
with ECDSA P-256 keys and SHA-256 signatures. A client certificate is bound to one
channel account twice: subject CN and a SAN URI ``urn:ssgate:account:<account>``;
:func:`account_of` reads the binding back from the URI, which is the one the gateway
trusts.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs._errors import CertificateError
from certs._identifiers import fingerprint_sha256_of, same_public_key, serial_hex_of
from certs._instants import CLOCK_SKEW, require_utc
from certs._revocation import MAX_CRL_NUMBER, RevokedEntry, revoked_certificate

ACCOUNT_URI_PREFIX = "urn:ssgate:account:"
MAX_SERVER_VALIDITY_DAYS = 366
MAX_CLIENT_VALIDITY_DAYS = 1096  # three years: long-lived enough, still forces rotation
# X.520 upper bound for commonName.
MAX_COMMON_NAME_LENGTH = 64

# Account names are checked by auth/; here only what is safe inside a CN and a URN.
_ACCOUNT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_MAX_DNS_NAME_LENGTH = 253


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass(frozen=True)
class IssuedCertificate:
    """A freshly issued end-entity certificate and its private key."""

    key: ec.EllipticCurvePrivateKey = field(repr=False)
    certificate: x509.Certificate

    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        """PKCS#8, unencrypted PEM: the caller stores it with owner-only permissions."""
        return _key_pem(self.key)

    @property
    def serial_hex(self) -> str:
        return serial_hex_of(self.certificate.serial_number)

    @property
    def fingerprint_sha256(self) -> str:
        return fingerprint_sha256_of(self.certificate)


class CertificateAuthority:
    """A CA certificate with its key; issues server and client certificates and CRLs.

    The constructor refuses a key that does not belong to the certificate and a
    certificate that is not a CA, so every instance can sign.
    """

    def __init__(self, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        if not same_public_key(key.public_key(), certificate):
            raise CertificateError("CA key does not match the CA certificate")
        try:
            constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
        except x509.ExtensionNotFound:
            raise CertificateError("CA certificate has no basicConstraints extension") from None
        if not constraints.value.ca:
            raise CertificateError("CA certificate is not a CA (basicConstraints ca=FALSE)")
        self.certificate = certificate
        self.key = key

    def __repr__(self) -> str:
        return f"<CertificateAuthority {self.certificate.subject.rfc4514_string()}>"

    @classmethod
    def create(
        cls, common_name: str, *, now: datetime, validity_days: int = 3650
    ) -> CertificateAuthority:
        """A new self-signed CA that may sign end-entity certificates only."""
        now = require_utc(now)
        _require_common_name(common_name, "CA common name")
        if validity_days < 1:
            raise CertificateError(f"CA validity of {validity_days} days: must be at least 1")
        key = _new_key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + timedelta(days=validity_days))
            # path_length=0: this CA issues leaf certificates, never another CA.
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        return cls(certificate, key)

    @classmethod
    def load(cls, cert_pem: bytes, key_pem: bytes) -> CertificateAuthority:
        """The CA from its PEM files; refuses unreadable, mismatched or non-CA input."""
        try:
            certificate = x509.load_pem_x509_certificate(cert_pem)
        except ValueError:
            raise CertificateError("CA certificate is not a readable PEM certificate") from None
        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
        except TypeError:
            # Raised when the PEM is encrypted; the message must not echo anything.
            raise CertificateError("CA key is encrypted; an unencrypted key is expected") from None
        except (ValueError, UnsupportedAlgorithm):
            raise CertificateError("CA key is not a readable PEM private key") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise CertificateError("CA key is not an ECDSA key")
        return cls(certificate, key)

    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        """PKCS#8, unencrypted PEM: the caller stores it with owner-only permissions."""
        return _key_pem(self.key)

    def fingerprint_sha256(self) -> str:
        return fingerprint_sha256_of(self.certificate)

    def issue_server(
        self, hostnames: Sequence[str], *, now: datetime, validity_days: int = 365
    ) -> IssuedCertificate:
        """A TLS server certificate for *hostnames* (DNS names or IP literals)."""
        now = require_utc(now)
        if not 1 <= validity_days <= MAX_SERVER_VALIDITY_DAYS:
            raise CertificateError(
                f"server certificate validity of {validity_days} days: "
                f"must be 1 to {MAX_SERVER_VALIDITY_DAYS}"
            )
        if isinstance(hostnames, str):
            # A bare string is a sequence of one-letter "hostnames"; refuse the slip.
            raise CertificateError("hostnames must be a list of names, not one string")
        names = _server_names(hostnames)
        first = names[0]
        first_text = first.value if isinstance(first, x509.DNSName) else str(first.value)
        # Clients match on the SAN; CN only helps humans, and must fit its 64-char bound.
        if len(first_text) <= MAX_COMMON_NAME_LENGTH:
            subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, first_text)])
        else:
            subject = x509.Name([])
        key = _new_key()
        builder = (
            self._leaf_builder(subject, key, now=now, validity_days=validity_days)
            # RFC 5280 §4.2.1.6: an empty subject makes the SAN critical.
            .add_extension(x509.SubjectAlternativeName(names), critical=not subject)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        )
        return IssuedCertificate(key=key, certificate=builder.sign(self.key, hashes.SHA256()))

    def issue_client(
        self, account: str, *, now: datetime, validity_days: int = 730
    ) -> IssuedCertificate:
        """A TLS client certificate bound to *account* (CN and SAN URI)."""
        now = require_utc(now)
        _require_account(account)
        if not 1 <= validity_days <= MAX_CLIENT_VALIDITY_DAYS:
            raise CertificateError(
                f"client certificate validity of {validity_days} days: "
                f"must be 1 to {MAX_CLIENT_VALIDITY_DAYS}"
            )
        key = _new_key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, account)])
        builder = (
            self._leaf_builder(subject, key, now=now, validity_days=validity_days)
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.UniformResourceIdentifier(ACCOUNT_URI_PREFIX + account)]
                ),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        )
        return IssuedCertificate(key=key, certificate=builder.sign(self.key, hashes.SHA256()))

    def build_crl(
        self,
        revoked: Iterable[RevokedEntry],
        *,
        now: datetime,
        next_update: timedelta = timedelta(days=7),
        crl_number: int,
    ) -> x509.CertificateRevocationList:
        """A CRL listing *revoked*, signed by this CA.

        A relying party that checks CRLs refuses every certificate once ``next_update``
        has passed, so the caller re-signs well before then.
        """
        now = require_utc(now)
        if next_update <= timedelta(0):
            raise CertificateError("CRL next_update must be a positive interval")
        if not 1 <= crl_number <= MAX_CRL_NUMBER:
            raise CertificateError(f"CRL number {crl_number} is out of range (1 to 2**159-1)")
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.certificate.subject)
            .last_update(now - CLOCK_SKEW)
            .next_update(now + next_update)
            .add_extension(x509.CRLNumber(crl_number), critical=False)
            .add_extension(self._authority_key_identifier(), critical=False)
        )
        seen: set[str] = set()
        for entry in revoked:
            if entry.serial_hex in seen:
                raise CertificateError(f"serial {entry.serial_hex} is listed twice for the CRL")
            seen.add(entry.serial_hex)
            builder = builder.add_revoked_certificate(revoked_certificate(entry))
        return builder.sign(self.key, hashes.SHA256())

    def issued(self, certificate: x509.Certificate) -> bool:
        """Whether *certificate* carries this CA's valid signature."""
        try:
            certificate.verify_directly_issued_by(self.certificate)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return True

    def _authority_key_identifier(self) -> x509.AuthorityKeyIdentifier:
        # Reuse the CA's own SKI when it has one so chain building matches byte for byte.
        try:
            ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        except x509.ExtensionNotFound:
            return x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key())
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value)

    def _leaf_builder(
        self,
        subject: x509.Name,
        key: ec.EllipticCurvePrivateKey,
        *,
        now: datetime,
        validity_days: int,
    ) -> x509.CertificateBuilder:
        not_after = now + timedelta(days=validity_days)
        ca_not_before = self.certificate.not_valid_before_utc
        ca_not_after = self.certificate.not_valid_after_utc
        if not ca_not_before <= now < ca_not_after:
            raise CertificateError(
                f"CA certificate is not valid at {now.isoformat()} "
                f"(valid {ca_not_before.isoformat()} to {ca_not_after.isoformat()})"
            )
        if not_after > ca_not_after:
            raise CertificateError(
                f"a {validity_days}-day certificate would outlive the CA, "
                f"which expires {ca_not_after.isoformat()}; issue a shorter one or renew the CA"
            )
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(self._authority_key_identifier(), critical=False)
        )


def account_of(cert: x509.Certificate) -> str | None:
    """The account a client certificate is bound to, from its SAN URI.

    ``None`` when there is no such URI, when there are several different ones, or when
    the extension cannot be parsed: an unclear binding is no binding.
    """
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return None
    accounts = {
        uri.removeprefix(ACCOUNT_URI_PREFIX)
        for uri in san.get_values_for_type(x509.UniformResourceIdentifier)
        if uri.startswith(ACCOUNT_URI_PREFIX)
    }
    if len(accounts) != 1:
        return None
    account = accounts.pop()
    return account if _ACCOUNT.fullmatch(account) else None


def server_subject(hostnames: Sequence[str]) -> str:
    """The ``subject`` the store records for a server certificate: its names, comma-joined."""
    return ",".join(str(name.value) for name in _server_names(hostnames))


def _require_common_name(value: str, what: str) -> None:
    if not value.strip() or len(value) > MAX_COMMON_NAME_LENGTH:
        raise CertificateError(f"{what} must be 1 to {MAX_COMMON_NAME_LENGTH} characters")
    if any(not ch.isprintable() for ch in value):
        raise CertificateError(f"{what} contains control characters")


def _require_account(account: str) -> None:
    if not _ACCOUNT.fullmatch(account):
        raise CertificateError(
            f"account {account[:80]!r} cannot go in a certificate: use 1 to 64 of "
            "letters, digits and . _ @ - (starting with a letter or digit)"
        )


def _server_names(hostnames: Sequence[str]) -> list[x509.GeneralName]:
    """SAN entries for *hostnames*, in order, without duplicates."""
    names: list[x509.GeneralName] = []
    for hostname in hostnames:
        name = _server_name(hostname)
        if name not in names:
            names.append(name)
    if not names:
        raise CertificateError("a server certificate needs at least one hostname")
    return names


def _server_name(hostname: str) -> x509.GeneralName:
    try:
        address = ipaddress.ip_address(hostname)
    except ValueError:
        return x509.DNSName(_dns_name(hostname))
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        raise CertificateError(f"hostname {hostname!r}: a scoped IPv6 address cannot be certified")
    return x509.IPAddress(address)


def _dns_name(hostname: str) -> str:
    name = hostname.lower()
    if not name.isascii():
        raise CertificateError(f"hostname {hostname[:80]!r}: write it in its xn-- (A-label) form")
    labels = name.split(".")
    if (
        len(name) > _MAX_DNS_NAME_LENGTH
        or not all(_DNS_LABEL.fullmatch(label) for label in labels)
        # An all-digit last label is an IPv4-looking typo, never a real top-level domain.
        or labels[-1].isdigit()
    ):
        raise CertificateError(
            f"hostname {hostname[:80]!r} is not a DNS name or IP address "
            "(no wildcards, spaces or trailing dot)"
        )
    return name
