"""What identifies a certificate: serial and SHA-256 fingerprint text, its public key.

Both are lowercase hex without colons. Serials also drop leading zeros: one canonical
form matters because serials are database keys and CRL entries, and the same
certificate must never be recorded or revoked under two spellings.
"""

from __future__ import annotations

import re

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from certs._errors import CertificateError

# RFC 5280 §4.1.2.2: at most 20 octets, so at most 40 hex digits.
MAX_SERIAL_HEX_DIGITS = 40
_HEX = re.compile(r"[0-9a-f]+")


def serial_hex_of(serial_number: int) -> str:
    return format(serial_number, "x")


def fingerprint_sha256_of(certificate: x509.Certificate) -> str:
    """Lowercase hex SHA-256 of the DER encoding (what ``openssl x509 -fingerprint`` hashes)."""
    return certificate.fingerprint(hashes.SHA256()).hex()


def same_public_key(public_key: PublicKeyTypes, certificate: x509.Certificate) -> bool:
    """Whether *certificate* certifies *public_key* (compared as DER SubjectPublicKeyInfo)."""
    der, spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return public_key.public_bytes(der, spki) == certificate.public_key().public_bytes(der, spki)


def normalize_serial_hex(text: str) -> str:
    """Canonical serial from what an operator pastes (``0A:1B``, ``0a1b``, ``A1B``)."""
    digits = text.strip().replace(":", "").lower()
    if not digits or not _HEX.fullmatch(digits):
        raise CertificateError(f"serial {text[:80]!r} is not a hexadecimal serial number")
    canonical = digits.lstrip("0")
    if not canonical or len(canonical) > MAX_SERIAL_HEX_DIGITS:
        raise CertificateError(
            f"serial {text[:80]!r} is not a valid certificate serial number "
            f"(1 to {MAX_SERIAL_HEX_DIGITS} hex digits, not zero)"
        )
    return canonical


def require_canonical_serial_hex(serial_hex: str) -> str:
    """Refuse any spelling but the canonical one (for values that are stored as given)."""
    if normalize_serial_hex(serial_hex) != serial_hex:
        raise CertificateError(
            f"serial {serial_hex!r} must be lowercase hex without colons or leading zeros"
        )
    return serial_hex
