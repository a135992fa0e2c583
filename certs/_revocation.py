"""Revocation: the revoked-entry value, reason names, CRL entries and CRL PEM.

Reason names are the words the database and the command line use; they map onto
RFC 5280 CRLReason codes here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certs._errors import CertificateError
from certs._identifiers import require_canonical_serial_hex
from certs._instants import require_utc

REASON_FLAGS: Mapping[str, x509.ReasonFlags] = MappingProxyType(
    {
        "key_compromise": x509.ReasonFlags.key_compromise,
        "cessation_of_operation": x509.ReasonFlags.cessation_of_operation,
        "superseded": x509.ReasonFlags.superseded,
        "affiliation_changed": x509.ReasonFlags.affiliation_changed,
        "unspecified": x509.ReasonFlags.unspecified,
    }
)
REVOCATION_REASONS: frozenset[str] = frozenset(REASON_FLAGS)

# CRLNumber is a non-negative INTEGER of at most 20 octets (RFC 5280 §5.2.3).
MAX_CRL_NUMBER = 2**159 - 1


def require_reason(reason: str) -> str:
    if reason not in REASON_FLAGS:
        known = ", ".join(sorted(REASON_FLAGS))
        raise CertificateError(f"revocation reason {reason!r} is not one of: {known}")
    return reason


@dataclass(frozen=True)
class RevokedEntry:
    """One revoked certificate as it appears on the CRL."""

    serial_hex: str
    revoked_at: datetime
    reason: str

    def __post_init__(self) -> None:
        require_canonical_serial_hex(self.serial_hex)
        require_utc(self.revoked_at, "revoked_at")
        require_reason(self.reason)


def revoked_certificate(entry: RevokedEntry) -> x509.RevokedCertificate:
    """The CRL entry for *entry*."""
    builder = (
        x509.RevokedCertificateBuilder()
        .serial_number(int(entry.serial_hex, 16))
        .revocation_date(require_utc(entry.revoked_at, "revoked_at"))
    )
    flag = REASON_FLAGS[entry.reason]
    # RFC 5280 §5.3.1: leave the reasonCode extension out rather than say "unspecified".
    if flag is not x509.ReasonFlags.unspecified:
        builder = builder.add_extension(x509.CRLReason(flag), critical=False)
    return builder.build()


def reason_of(revoked: x509.RevokedCertificate) -> str:
    """The reason name of a CRL entry (``"unspecified"`` when it carries none)."""
    try:
        flag = revoked.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return "unspecified"
    for name, known in REASON_FLAGS.items():
        if known is flag:
            return name
    return "unspecified"


def crl_pem(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(serialization.Encoding.PEM)
