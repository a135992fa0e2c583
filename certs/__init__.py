"""The private PKI: CA, server and client certificates, revocation, CRL, PKCS#12.

Built on ``cryptography`` only; no Twisted here. Instants are passed in (``now``,
timezone-aware UTC): nothing in this package reads the clock. Bad input raises
:class:`CertificateError` with a one-line message naming the problem.

The register of issued certificates (``record_certificate``, ``revoke``, …) works on a
SQLAlchemy ``Connection`` inside the caller's transaction; its tables are in
``certs._schema.metadata``.
"""

from certs._authority import (
    ACCOUNT_URI_PREFIX,
    MAX_CLIENT_VALIDITY_DAYS,
    MAX_SERVER_VALIDITY_DAYS,
    CertificateAuthority,
    IssuedCertificate,
    account_of,
    server_subject,
)
from certs._errors import CertificateError
from certs._identifiers import fingerprint_sha256_of, normalize_serial_hex, serial_hex_of
from certs._pkcs12 import load_pkcs12, make_pkcs12
from certs._revocation import REVOCATION_REASONS, RevokedEntry, crl_pem, reason_of
from certs._store import (
    CertificateRecord,
    CrlState,
    StoredCrl,
    current_client_certificate,
    current_crl,
    current_crl_state,
    current_crl_version,
    get_certificate,
    list_certificates,
    next_crl_number,
    record_certificate,
    renew_crl_if_due,
    revoke,
    revoke_subject,
    revoked_entries,
    sign_crl,
    store_crl,
)

__all__ = [
    "ACCOUNT_URI_PREFIX",
    "MAX_CLIENT_VALIDITY_DAYS",
    "MAX_SERVER_VALIDITY_DAYS",
    "REVOCATION_REASONS",
    "CertificateAuthority",
    "CertificateError",
    "CertificateRecord",
    "CrlState",
    "IssuedCertificate",
    "RevokedEntry",
    "StoredCrl",
    "account_of",
    "crl_pem",
    "current_client_certificate",
    "current_crl",
    "current_crl_state",
    "current_crl_version",
    "fingerprint_sha256_of",
    "get_certificate",
    "list_certificates",
    "load_pkcs12",
    "make_pkcs12",
    "next_crl_number",
    "normalize_serial_hex",
    "reason_of",
    "record_certificate",
    "renew_crl_if_due",
    "revoke",
    "revoke_subject",
    "revoked_entries",
    "serial_hex_of",
    "server_subject",
    "sign_crl",
    "store_crl",
]
