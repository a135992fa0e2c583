"""The security officers' pages in the staff console.

:func:`sessions_section` is the session audit: every channel session with filters
and keyset paging, a session's timeline from login to end (with every declaration
action and query it made), the live sessions and their termination.  Sessions are
read, and kills asked for, through :class:`SessionRegistry` (``gateway`` provides
it); the timeline reads the audit log.  :func:`alerts_section` lists the alerts the
audit log's rules raised and lets an officer acknowledge and close them.  ``ssgate``
mounts the sections in the console.
"""

from ._alert_pages import alerts_section
from ._session_pages import sessions_section
from ._timeline import Timeline, TimelineEntry, session_timeline
from .interfaces import SessionRegistry, SessionRow

__all__ = [
    "SessionRegistry",
    "SessionRow",
    "Timeline",
    "TimelineEntry",
    "alerts_section",
    "session_timeline",
    "sessions_section",
]
