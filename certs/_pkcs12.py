"""PKCS#12 bundles: the client key, its certificate and the CA, under a passphrase.

Written with ``BestAvailableEncryption`` (PBES2, PBKDF2, AES-256-CBC, SHA-256 MAC),
which OpenSSL 3 and current operating-system key stores open.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12

from certs._authority import IssuedCertificate
from certs._errors import CertificateError
from certs._identifiers import same_public_key


def make_pkcs12(
    issued: IssuedCertificate,
    ca_certificate: x509.Certificate,
    passphrase: bytes,
    *,
    friendly_name: str,
) -> bytes:
    """The bundle for *issued*, with *ca_certificate* as its chain."""
    if not passphrase:
        raise CertificateError("a PKCS#12 bundle needs a non-empty passphrase")
    if not friendly_name:
        raise CertificateError("a PKCS#12 bundle needs a friendly name")
    if not same_public_key(issued.key.public_key(), issued.certificate):
        raise CertificateError("certificate in the bundle does not match its key")
    try:
        issued.certificate.verify_directly_issued_by(ca_certificate)
    except (ValueError, TypeError, InvalidSignature):
        raise CertificateError("certificate in the bundle was not issued by the given CA") from None
    return pkcs12.serialize_key_and_certificates(
        friendly_name.encode("utf-8"),
        issued.key,
        issued.certificate,
        [ca_certificate],
        serialization.BestAvailableEncryption(passphrase),
    )


def load_pkcs12(
    data: bytes, passphrase: bytes
) -> tuple[PrivateKeyTypes, x509.Certificate, list[x509.Certificate]]:
    """Key, certificate and the other certificates (the CA) of a bundle."""
    try:
        key, certificate, others = pkcs12.load_key_and_certificates(data, passphrase)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # cryptography cannot tell a wrong passphrase from a damaged file.
        raise CertificateError(
            "PKCS#12 bundle cannot be opened: wrong passphrase or not a PKCS#12 file"
        ) from None
    if key is None or certificate is None:
        raise CertificateError("PKCS#12 bundle lacks a private key or its certificate")
    if not same_public_key(key.public_key(), certificate):
        raise CertificateError("PKCS#12 bundle's key does not match its certificate")
    return key, certificate, list(others)
