"""The security officers' pages in the staff console.

:func:`sessions_section` is the session audit: every channel session with filters
and keyset paging, a session's timeline from login to end (with every declaration
action and query it made), the live sessions and their termination.  Sessions are
read, and kills asked for, through :class:`SessionRegistry` (``gateway`` provides
it); the timeline reads the audit log.  ``ssgate`` mounts the section in the console.
"""

from ._logins import (
    FailureGroup,
    LoginFilters,
    LoginRow,
    failures_by_account,
    failures_by_source,
    login_rows,
)
from ._session_pages import sessions_section
from ._timeline import Timeline, TimelineEntry, session_timeline
from .interfaces import SessionRegistry, SessionRow

__all__ = [
    "FailureGroup",
    "LoginFilters",
    "LoginRow",
    "SessionRegistry",
    "SessionRow",
    "Timeline",
    "TimelineEntry",
    "failures_by_account",
    "failures_by_source",
    "login_rows",
    "session_timeline",
    "sessions_section",
]
