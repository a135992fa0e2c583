"""What a logged failure says about its cause, and background failures logged at a
readable rate.

:func:`failure_cause` turns an exception into a type and a short message safe for a
log line: ``sqlalchemy.exc.OperationalError`` / ``(sqlite3.OperationalError) database
or disk is full`` tells a full disk from a stopped server
(``(psycopg.OperationalError) connection failed: … Connection refused``).  Only the
first line of the message is kept — SQLAlchemy puts the statement on the following
ones (the parameters are hidden by the engines ssgate builds, ``hide_parameters``) —
runs of 11 or more digits are masked in case a driver quotes a value (an ID number,
a 个人编号, a phone number), and the whole is bounded.

:class:`RepeatedFailureLog` is for a task that runs every second or so in the
background (the gateway's session poll, the console's session sweep): while the
database is down it would otherwise log a critical traceback every second.  It logs the
first failure in full, then one summary per interval (default one a minute) with the
count and the last cause, at once when the cause changes, and one line when the task
succeeds again.

It lives in ``auth``, the bottom layer beside :class:`auth.Runner`, because the tasks
it serves are runner calls and every package that runs them (``gateway``,
``ssgate``) already imports ``auth``; ``web`` is for the sites only.  Like the rest
of ``auth`` it imports nothing of Twisted at run time: it is given a
``twisted.logger.Logger`` and a clock.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from twisted.logger import Logger
    from twisted.python.failure import Failure

MAX_CAUSE_CHARS = 200
_LONG_DIGITS = re.compile(r"\d{11,}")


@dataclass(frozen=True)
class FailureCause:
    """An exception's qualified type name and a short message safe to log."""

    type: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"type": self.type, "message": self.message}


def failure_cause(error: BaseException | None) -> FailureCause:
    """The type and a safe one-line message of *error* (see the module docstring)."""
    if error is None:
        return FailureCause("unknown", "")
    kind = type(error)
    name = kind.__qualname__
    if kind.__module__ != "builtins":
        name = f"{kind.__module__}.{name}"
    lines = str(error).strip().splitlines()
    message = _LONG_DIGITS.sub("***", lines[0].strip() if lines else "")
    if len(message) > MAX_CAUSE_CHARS:
        message = message[: MAX_CAUSE_CHARS - 1] + "…"
    return FailureCause(name, message)


class RepeatedFailureLog:
    """Failures of one background task on *log*: the first in full, then a summary every
    *every* seconds (or at once when the cause's type changes), and the recovery.

    Call :meth:`failed` from the task's errback and :meth:`succeeded` from its
    callback; both return None, so the failure is consumed.
    """

    def __init__(
        self, log: Logger, task: str, *, clock: Callable[[], float], every: float = 60.0
    ) -> None:
        self._log = log
        self._task = task
        self._clock = clock
        self._every = every
        self._since: float | None = None  # when the current run of failures began
        self._failures = 0  # in the current run
        self._unreported = 0  # since the last line about them
        self._reported_at = 0.0
        self._cause: FailureCause | None = None

    @property
    def failing(self) -> bool:
        return self._since is not None

    def failed(self, failure: Failure) -> None:
        now = self._clock()
        cause = failure_cause(failure.value)
        if self._since is None or self._cause is None or cause.type != self._cause.type:
            first = self._since is None
            if first:
                self._since, self._failures = now, 0
            self._failures += 1
            self._unreported = 0
            self._reported_at, self._cause = now, cause
            self._log.failure(
                "{task} failed ({error_type}: {error_message}); while it keeps failing, "
                "one summary every {every:.0f} s",
                failure,
                task=self._task,
                error=cause.as_dict(),
                error_type=cause.type,
                error_message=cause.message,
                every=self._every,
            )
            return
        self._failures += 1
        self._unreported += 1
        self._cause = cause
        if now - self._reported_at < self._every:
            return
        self._log.error(
            "{task} still failing: {count} failures in the last {seconds:.0f} s, "
            "{total} since {since_seconds:.0f} s ago; last: {error_type}: {error_message}",
            task=self._task,
            count=self._unreported,
            seconds=now - self._reported_at,
            total=self._failures,
            since_seconds=now - self._since,
            error=cause.as_dict(),
            error_type=cause.type,
            error_message=cause.message,
        )
        self._unreported = 0
        self._reported_at = now

    def succeeded(self, result: Any = None) -> None:
        if self._since is None:
            return
        now = self._clock()
        self._log.info(
            "{task} recovered after {total} failures in {seconds:.0f} s",
            task=self._task,
            total=self._failures,
            seconds=now - self._since,
        )
        self._since, self._failures, self._unreported, self._cause = None, 0, 0, None
