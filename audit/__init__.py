"""The security audit trail: an append-only, hash-chained log of what happened.

Every login, refusal, provisioning step, declaration action and session end becomes
an :class:`AuditEvent`, appended with :func:`append` inside the same database
transaction as the action it describes.  Each stored :class:`AuditRecord` carries the
SHA-256 of its contents, its sequence number and the previous record's hash, and a
one-row head holds the tip, so :func:`verify` finds an edited, deleted, reordered or
truncated record; :func:`begin_verify` and :func:`verify_batch` do the same walk in
short batches that a background job can spread over many transactions.
:func:`query` reads records back; :class:`EventFilter` with :func:`event_batch` and
:func:`iter_events` read them by the officers' filters in bounded keyset batches;
:func:`export_jsonl`, :func:`export_csv` and
:func:`export_syslog` write them out.

Callers must never put a secret (password, OTP, TOTP secret, key, cookie, token) in
any field of an event: the log is permanent, widely read and exported.

Retention (:mod:`audit._archive`): :func:`archive_batch` moves the oldest records into
compressed JSON Lines archives with manifests, catalogued in ``audit_archives``, and
:func:`verify_with_archives` checks the chain across the archives and into the
database.  Signed checkpoints (:mod:`audit._checkpoint`): :func:`take_checkpoint` signs
the chain head with the Ed25519 audit key, writes it to a file and records it as an
``audit.checkpoint`` event; :func:`verify_checkpoints` finds a consistent rewrite of
the chain made after a checkpoint.

Alert rules (:mod:`audit._alerts`) are pure functions over records and
:class:`AlertThresholds`; :func:`evaluate_alerts` runs them incrementally (once across
every node, behind a cursor row) and stores what they find in the ``alerts`` table,
which :func:`list_alerts`, :func:`get_alert` and :func:`change_alert_state` read and
handle.

Syslog forwarding keeps, per collector, the last record delivered in
``syslog_cursors`` behind a lease (:func:`claim_syslog_lease`,
:func:`syslog_batch`, :func:`advance_syslog_cursor`): the log itself is the durable
queue.  :func:`frame_octet_counted` and :class:`OctetCountingDecoder` are RFC 6587
octet-counting framing; :class:`RelpClient` speaks RELP, the acknowledged transport.

All functions take a SQLAlchemy ``Connection`` and return plain values; tables are
in :data:`metadata`.  Nothing here imports Twisted.
"""

from audit._alert_store import (
    EVALUATE_BATCH,
    AlertRow,
    Evaluation,
    SessionEnds,
    StateChange,
    change_alert_state,
    evaluate_alerts,
    get_alert,
    list_alerts,
)
from audit._alerts import (
    RULES,
    SEVERITIES,
    AlertFinding,
    AlertThresholds,
    Evidence,
    find_alerts,
    host_of,
)
from audit._archive import (
    ARCHIVE_FILE_RECORDS,
    ArchiveError,
    ArchiveManifest,
    ChainReport,
    archive_batch,
    list_archives,
    verify_with_archives,
)
from audit._chain import GENESIS_HASH
from audit._checkpoint import (
    CHECKPOINT_ACTION,
    PUBLIC_KEY_FILE,
    Checkpoint,
    CheckpointError,
    CheckpointReport,
    TakenCheckpoint,
    checkpoint_files,
    key_id,
    load_public_key,
    public_key_pem,
    take_checkpoint,
    verify_checkpoints,
)
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
from audit._log import append, append_event, archived_base, query, verify
from audit._query import (
    VIEW_FIELDS,
    EventFilter,
    event_batch,
    iso_time,
    iter_events,
    last_seq,
    view_row,
)
from audit._relp import DEFAULT_WINDOW as RELP_WINDOW
from audit._relp import Acknowledged as RelpAcknowledged
from audit._relp import Opened as RelpOpened
from audit._relp import RelpClient, RelpError, RelpFrame, RelpFrameParser
from audit._schema import ALERT_STATES, metadata
from audit._syslog_framing import FramingError, OctetCountingDecoder
from audit._syslog_framing import frame as frame_octet_counted
from audit._syslog_store import (
    SYSLOG_BATCH,
    SyslogLease,
    advance_syslog_cursor,
    claim_syslog_lease,
    get_syslog_cursors,
    release_syslog_lease,
    syslog_batch,
    syslog_records,
)
from audit._verify import ChainWalk, RangeCheck, begin_verify, check_range, verify_batch

__all__ = [
    "ALERT_STATES",
    "ARCHIVE_FILE_RECORDS",
    "CHECKPOINT_ACTION",
    "EVALUATE_BATCH",
    "FIELDS",
    "GENESIS_HASH",
    "OUTCOMES",
    "PUBLIC_KEY_FILE",
    "RELP_WINDOW",
    "RULES",
    "SEVERITIES",
    "SYSLOG_BATCH",
    "VIEW_FIELDS",
    "AlertFinding",
    "AlertRow",
    "AlertThresholds",
    "ArchiveError",
    "ArchiveManifest",
    "AuditChainError",
    "AuditEvent",
    "AuditEventError",
    "AuditRecord",
    "ChainReport",
    "ChainWalk",
    "Checkpoint",
    "CheckpointError",
    "CheckpointReport",
    "DetailValue",
    "Evaluation",
    "EventFilter",
    "Evidence",
    "FramingError",
    "OctetCountingDecoder",
    "RangeCheck",
    "RelpAcknowledged",
    "RelpClient",
    "RelpError",
    "RelpFrame",
    "RelpFrameParser",
    "RelpOpened",
    "SessionEnds",
    "StateChange",
    "SyslogLease",
    "TakenCheckpoint",
    "VerifyReport",
    "advance_syslog_cursor",
    "append",
    "append_event",
    "archive_batch",
    "archived_base",
    "begin_verify",
    "change_alert_state",
    "check_range",
    "checkpoint_files",
    "claim_syslog_lease",
    "evaluate_alerts",
    "event_batch",
    "export_csv",
    "export_jsonl",
    "export_syslog",
    "find_alerts",
    "frame_octet_counted",
    "get_alert",
    "get_syslog_cursors",
    "host_of",
    "iso_time",
    "iter_events",
    "key_id",
    "last_seq",
    "list_alerts",
    "list_archives",
    "load_public_key",
    "metadata",
    "public_key_pem",
    "query",
    "record_dict",
    "release_syslog_lease",
    "spreadsheet_cell",
    "syslog_batch",
    "syslog_records",
    "take_checkpoint",
    "verify",
    "verify_batch",
    "verify_checkpoints",
    "verify_with_archives",
    "view_row",
]
