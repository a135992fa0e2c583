"""Staff console sessions as the console uses them: the policy, the store behind the
shell (:class:`DatabaseSessions`), the login-form key, and the periodic sweep.

The sessions themselves live in the database (:mod:`auth._console_sessions`: hashed
ids, per-session CSRF tokens, idle and absolute timeouts), so every node sharing it
serves every staff member and a restart logs nobody out.

Before login there is no server state: the login form's token is an HMAC, under a
key every node derives from the state directory's ``identity.key``
(:func:`login_form_key`), of a random pre-login cookie.  A flood of login-page
requests costs no storage, a cross-site POST cannot carry a valid pair, and a form
loaded from one node can be sent to another, or after a restart.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection
from twisted.application.internet import TimerService
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

import auth
import web

SessionPolicy = auth.ConsoleSessionPolicy

SWEEP_SECONDS = 60.0
_LOGIN_FORM_LABEL = b"ssgate console login-form v1"


def login_form_key(identity_key: bytes) -> bytes:
    """The login-form token key, the same on every node holding *identity_key*
    (a label of its own keeps it apart from every other use of that key)."""
    return hmac.digest(identity_key, _LOGIN_FORM_LABEL, "sha256")


class DatabaseSessions:
    """:class:`web.StaffSessions` on the database store (:mod:`auth._console_sessions`),
    under *policy*; every call runs in the caller's transaction."""

    def __init__(
        self, policy: SessionPolicy, *, random_bytes: Callable[[int], bytes] = secrets.token_bytes
    ) -> None:
        self.policy = policy
        self._random = random_bytes

    def __repr__(self) -> str:
        return f"DatabaseSessions({self.policy!r})"

    @staticmethod
    def _view(session: auth.ConsoleSession) -> web.ConsoleSession:
        return web.ConsoleSession(session.staff, session.role, session.ref, session.csrf_token)

    def start(
        self, conn: Connection, staff: str, *, now: float, replaces: str
    ) -> tuple[str, web.ConsoleSession] | None:
        made = auth.create_console_session(
            conn, staff, now=now, policy=self.policy, replaces=replaces, random_bytes=self._random
        )
        return None if made is None else (made[0], self._view(made[1]))

    def find(self, conn: Connection, session_id: str, *, now: float) -> web.SessionLookup:
        found = auth.lookup_console_session(conn, session_id, now=now, policy=self.policy)
        return web.SessionLookup(
            None if found.session is None else self._view(found.session),
            found.why,
            None if found.ended is None else self._view(found.ended),
        )

    def end(self, conn: Connection, session_id: str) -> None:
        auth.end_console_session(conn, session_id)

    def end_staff(self, conn: Connection, staff: str, *, reason: str, now: float) -> int:
        return auth.end_staff_console_sessions(conn, staff, reason=reason, now=now)


def session_sweeper(
    runner: auth.Runner,
    clock: IReactorTime,
    policy: SessionPolicy,
    *,
    interval: float = SWEEP_SECONDS,
) -> TimerService:
    """A service deleting expired and ended console sessions every *interval* seconds.

    Each node may run one: the deletes are idempotent.  A failed sweep is logged (the
    first in full, then a summary a minute while it keeps failing, and the recovery)
    and the next one runs as planned.
    """
    failures = auth.RepeatedFailureLog(
        Logger(namespace="ssgate.console"), "console session sweep", clock=clock.seconds
    )

    def sweep() -> Deferred[Any]:
        d = runner.run(auth.sweep_console_sessions, now=clock.seconds(), policy=policy)
        return d.addCallbacks(failures.succeeded, failures.failed)

    service = TimerService(interval, sweep)
    service.clock = clock
    return service
