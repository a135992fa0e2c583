"""The security audit trail: an append-only, hash-chained log of what happened.

Every login, refusal, provisioning step, declaration action and session end becomes
an :class:`AuditEvent`, appended with :func:`append` inside the same database
transaction as the action it describes.  Each stored :class:`AuditRecord` carries the
SHA-256 of its contents, its sequence number and the previous record's hash, and a
one-row head holds the tip, so :func:`verify` finds an edited, deleted, reordered or
truncated record; :func:`begin_verify` and :func:`verify_batch` do the same walk in
short batches that a background job can spread over many transactions.
:func:`query` reads records back; :func:`export_jsonl`, :func:`export_csv` and
:func:`export_syslog` write them out.

Callers must never put a secret (password, OTP, TOTP secret, key, cookie, token) in
any field of an event: the log is permanent, widely read and exported.

All functions take a SQLAlchemy ``Connection`` and return plain values; tables are
in :data:`metadata`.  Nothing here imports Twisted.
"""

from audit._chain import GENESIS_HASH
from audit._events import (
    OUTCOMES,
    AuditChainError,
    AuditEvent,
    AuditEventError,
    AuditRecord,
    DetailValue,
    VerifyReport,
)
from audit._export import export_csv, export_jsonl, export_syslog
from audit._log import append, query, verify
from audit._schema import metadata
from audit._verify import ChainWalk, RangeCheck, begin_verify, check_range, verify_batch

__all__ = [
    "GENESIS_HASH",
    "OUTCOMES",
    "AuditChainError",
    "AuditEvent",
    "AuditEventError",
    "AuditRecord",
    "ChainWalk",
    "DetailValue",
    "RangeCheck",
    "VerifyReport",
    "append",
    "begin_verify",
    "check_range",
    "export_csv",
    "export_jsonl",
    "export_syslog",
    "metadata",
    "query",
    "verify",
    "verify_batch",
]
