"""The security officers' pages in the staff console.

:func:`sessions_section` is the session audit: every channel session with filters
and keyset paging, a session's timeline from login to end (with every declaration
action and query it made), the live sessions and their termination.  Sessions are
read, and kills asked for, through :class:`SessionRegistry` (``gateway`` provides
it); the timeline reads the audit log.  ``ssgate`` mounts the section in the console.

:func:`logins_section` is the login audit: every login attempt from the audit log
(:func:`login_rows` and :func:`parse_login_filters`, reusable by exports), failures
grouped by account and by source, the locked accounts and their unlock through
:class:`AccountUnlock`.  :func:`charts_section` draws logins, failures, open
sessions and declarations as SVG on the server.  :func:`integrity_section` verifies
the audit chain in the background (:class:`ChainVerification`) and shows its
progress and verdict.
"""

from ._charts import charts_section
from ._integrity import ChainVerification, VerifyState, integrity_section
from ._login_pages import logins_section, parse_login_filters
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
    "AccountUnlock",
    "ChainVerification",
    "DeclarationCounts",
    "DeclarationTally",
    "FailureGroup",
    "LoginFilters",
    "LoginRow",
    "SessionCounts",
    "SessionRegistry",
    "SessionRow",
    "Timeline",
    "TimelineEntry",
    "UnlockRefused",
    "VerifyState",
    "charts_section",
    "failures_by_account",
    "failures_by_source",
    "integrity_section",
    "login_rows",
    "logins_section",
    "parse_login_filters",
    "session_timeline",
    "sessions_section",
]
