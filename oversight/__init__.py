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
"""

from ._alert_pages import alerts_section
from ._event_pages import events_section, read_event_filters
from ._export import FORMATS, ExportSpec, csv_header, csv_rows, export_view, jsonl_rows
from ._session_pages import SESSION_COLUMNS, session_cells, sessions_section
from ._timeline import Timeline, TimelineEntry, session_timeline
from .interfaces import SessionRegistry, SessionRow

__all__ = [
    "FORMATS",
    "SESSION_COLUMNS",
    "ExportSpec",
    "SessionRegistry",
    "SessionRow",
    "Timeline",
    "TimelineEntry",
    "alerts_section",
    "csv_header",
    "csv_rows",
    "events_section",
    "export_view",
    "jsonl_rows",
    "read_event_filters",
    "session_cells",
    "session_timeline",
    "sessions_section",
]
