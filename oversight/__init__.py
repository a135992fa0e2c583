"""The security officers' pages in the staff console.

:func:`sessions_section` is the session audit: every channel session with filters
and keyset paging, a session's timeline from login to end (with every declaration
action and query it made), the live sessions and their termination.  Sessions are
read, and kills asked for, through :class:`SessionRegistry` (``gateway`` provides
it); the timeline reads the audit log.  :func:`alerts_section` lists the alerts the
audit log's rules raised and lets an officer acknowledge and close them.
:func:`events_section` is the actions view of the audit log with the filters
``ssgate audit actions`` has.  Every list exports what it shows as CSV or JSON
Lines, streamed and audited, through :func:`export_view` (reusable by any view:
columns, cells and a batch reader).  ``ssgate`` mounts the sections in the console.

:func:`logins_section` is the login audit: every login attempt from the audit log
(:func:`login_rows` and :func:`parse_login_filters`, reusable by exports), failures
grouped by account and by source, the locked accounts and their unlock through
:class:`AccountUnlock`.  :func:`charts_section` draws logins, failures, open
sessions and declarations as SVG on the server.  :func:`integrity_section` verifies
the audit chain in the background (:class:`ChainVerification`) and shows its
progress and verdict.
"""

from ._alert_pages import alerts_section
from ._charts import charts_section
from ._event_pages import events_section, read_event_filters
from ._export import FORMATS, ExportSpec, csv_header, csv_rows, export_view, jsonl_rows
from ._integrity import ChainVerification, VerifyState, integrity_section
from ._login_pages import Failures, failure_summary, logins_section, parse_login_filters
from ._logins import (
    FailureGroup,
    LoginFilters,
    LoginRow,
    failures_by_account,
    failures_by_source,
    login_rows,
)
from ._session_pages import SESSION_COLUMNS, session_cells, sessions_section
from ._timeline import Timeline, TimelineEntry, session_timeline
from .interfaces import (
    AccountUnlock,
    DeclarationCounts,
    DeclarationTally,
    SessionCounts,
    SessionRegistry,
    SessionRow,
    UnlockRefused,
)

__all__ = [
    "FORMATS",
    "SESSION_COLUMNS",
    "AccountUnlock",
    "ChainVerification",
    "DeclarationCounts",
    "DeclarationTally",
    "ExportSpec",
    "FailureGroup",
    "Failures",
    "LoginFilters",
    "LoginRow",
    "SessionCounts",
    "SessionRegistry",
    "SessionRow",
    "Timeline",
    "TimelineEntry",
    "UnlockRefused",
    "VerifyState",
    "alerts_section",
    "charts_section",
    "csv_header",
    "csv_rows",
    "events_section",
    "export_view",
    "failure_summary",
    "failures_by_account",
    "failures_by_source",
    "integrity_section",
    "jsonl_rows",
    "login_rows",
    "logins_section",
    "parse_login_filters",
    "read_event_filters",
    "session_cells",
    "session_timeline",
    "sessions_section",
]
