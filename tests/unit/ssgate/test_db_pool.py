"""The database's worker pools at shutdown."""

from __future__ import annotations

from twisted.internet import reactor

import auth
from ssgate._db import Database, make_engine


def test_work_given_to_a_closed_database_fails_with_runner_closed() -> None:
    """After :meth:`Database.close` (the process is stopping) new work is refused with
    :class:`auth.RunnerClosed`, which background jobs treat as the end, not Twisted's
    bare ``AlreadyQuit``; nothing runs."""
    db = Database(make_engine("sqlite://"), reactor)
    db.close()
    ran: list[int] = []
    failures: list[BaseException] = []
    db.run(lambda conn: ran.append(1)).addErrback(lambda f: failures.append(f.value))
    assert ran == []
    [failure] = failures
    assert isinstance(failure, auth.RunnerClosed)
    assert "stopping" in str(failure)
