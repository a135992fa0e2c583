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
    "EVALUATE_BATCH",
    "FIELDS",
    "GENESIS_HASH",
    "OUTCOMES",
    "RELP_WINDOW",
    "RULES",
    "SEVERITIES",
    "SYSLOG_BATCH",
    "VIEW_FIELDS",
    "AlertFinding",
    "AlertRow",
    "AlertThresholds",
    "AuditChainError",
    "AuditEvent",
    "AuditEventError",
    "AuditRecord",
    "ChainWalk",
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
    "VerifyReport",
    "advance_syslog_cursor",
    "append",
    "begin_verify",
    "change_alert_state",
    "check_range",
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
    "last_seq",
    "list_alerts",
    "metadata",
    "query",
    "record_dict",
    "release_syslog_lease",
    "spreadsheet_cell",
    "syslog_batch",
    "syslog_records",
    "verify",
    "verify_batch",
    "view_row",
]
