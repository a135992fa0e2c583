"""The security audit trail: an append-only, hash-chained log of what happened.

Every login, refusal, provisioning step, declaration action and session end becomes
an :class:`AuditEvent`, appended with :func:`append` inside the same database
transaction as the action it describes.  Each stored :class:`AuditRecord` carries the
SHA-256 of its contents, its sequence number and the previous record's hash, and a
one-row head holds the tip, so :func:`verify` finds an edited, deleted, reordered or
truncated record.  :func:`query` reads records back; :class:`EventFilter` with
:func:`event_batch` and :func:`iter_events` read them by the officers' filters in
bounded keyset batches; :func:`export_jsonl`, :func:`export_csv` and
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
from audit._export import (
    FIELDS,
    export_csv,
    export_jsonl,
    export_syslog,
    record_dict,
    spreadsheet_cell,
)
from audit._log import append, query, verify
from audit._query import (
    VIEW_FIELDS,
    EventFilter,
    event_batch,
    iso_time,
    iter_events,
    last_seq,
    view_row,
)
from audit._schema import metadata

__all__ = [
    "FIELDS",
    "GENESIS_HASH",
    "OUTCOMES",
    "VIEW_FIELDS",
    "AuditChainError",
    "AuditEvent",
    "AuditEventError",
    "AuditRecord",
    "DetailValue",
    "EventFilter",
    "VerifyReport",
    "append",
    "event_batch",
    "export_csv",
    "export_jsonl",
    "export_syslog",
    "iso_time",
    "iter_events",
    "last_seq",
    "metadata",
    "query",
    "record_dict",
    "spreadsheet_cell",
    "verify",
    "view_row",
]
