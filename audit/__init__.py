"""The security audit trail: an append-only, hash-chained log of what happened.

Every login, refusal, provisioning step, declaration action and session end becomes
an :class:`AuditEvent`, appended with :func:`append` inside the same database
transaction as the action it describes.  Each stored :class:`AuditRecord` carries the
SHA-256 of its contents, its sequence number and the previous record's hash, and a
one-row head holds the tip, so :func:`verify` finds an edited, deleted, reordered or
truncated record.  :func:`query` reads records back; :func:`export_jsonl`,
:func:`export_csv` and :func:`export_syslog` write them out.

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
from audit._export import export_csv, export_jsonl, export_syslog
from audit._log import append, query, verify
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

__all__ = [
    "ALERT_STATES",
    "EVALUATE_BATCH",
    "GENESIS_HASH",
    "OUTCOMES",
    "RELP_WINDOW",
    "RULES",
    "SEVERITIES",
    "SYSLOG_BATCH",
    "AlertFinding",
    "AlertRow",
    "AlertThresholds",
    "AuditChainError",
    "AuditEvent",
    "AuditEventError",
    "AuditRecord",
    "DetailValue",
    "Evaluation",
    "Evidence",
    "FramingError",
    "OctetCountingDecoder",
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
    "change_alert_state",
    "claim_syslog_lease",
    "evaluate_alerts",
    "export_csv",
    "export_jsonl",
    "export_syslog",
    "find_alerts",
    "frame_octet_counted",
    "get_alert",
    "get_syslog_cursors",
    "host_of",
    "list_alerts",
    "metadata",
    "query",
    "release_syslog_lease",
    "syslog_batch",
    "syslog_records",
    "verify",
]
