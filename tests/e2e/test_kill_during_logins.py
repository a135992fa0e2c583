"""Issue 12, acceptance 6: ``kill -9`` of ``serve`` in the middle of 20 parallel logins.

Each round: 20 real clients (TLS with their own client certificate, HELLO, AUTH with
password and the current one-time code, over the sans-IO client machine as the
benchmarks log in) start together against a real ``ssgate serve``; once some of them
are logged in, and the rest still in flight, the gateway process gets SIGKILL.  Then
``serve`` starts again on the same state and socket.  After each round:

* every client that was told AUTH_OK has its session row (it was recorded first);
* every session row has its ``login`` event (the two commit together, or neither);
* every session the kill left ``live`` is ended, reason ``node-lost``, with its
  ``session.end`` event — by the restarted process, without waiting for the stale
  period.

Rounds run on SQLite and on PostgreSQL.  The issue asks ten rounds on each; CI runs
:data:`CI_ROUNDS` to stay within about a minute.  The full run::

    SSGATE_KILL_ROUNDS=10 .venv/bin/python -m pytest tests/e2e/test_kill_during_logins.py
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

import audit
import gateway
from gateway._machine import AuthAccepted, AuthRejected, ClientMachine, SessionClosed
from ssgate._app import App
from ssgate._state import StateDir
from tests.e2e._logins import Login, open_accounts
from tests.e2e.conftest import WAIT, Channel

pytestmark = [pytest.mark.slow]

CI_ROUNDS = 2
ROUNDS = int(os.environ.get("SSGATE_KILL_ROUNDS", CI_ROUNDS))
LOGINS = 20
KILL_AFTER = 8  # AUTH_OKs seen before the kill: the rest are still being checked


class Logins:
    """*LOGINS* clients logging in at once; each keeps its tunnel open once accepted."""

    def __init__(self, port: int, logins: list[Login]) -> None:
        self.port = port
        self.logins = logins
        self.accepted: list[str] = []  # session ids, in the order AUTH_OK came
        self.refused: list[str] = []
        self.changed = threading.Condition()
        self.sockets: list[ssl.SSLSocket] = []
        self.pool = ThreadPoolExecutor(max_workers=len(logins))
        self.futures = [self.pool.submit(self._login, login) for login in logins]

    def _login(self, login: Login) -> None:
        try:
            raw = socket.create_connection(("127.0.0.1", self.port), timeout=WAIT)
            sock = login.wrap(raw)
            with self.changed:
                self.sockets.append(sock)
            sock.do_handshake()
        except OSError:
            return  # the gateway was killed before the handshake completed
        machine = ClientMachine(client_name="ssgate-e2e")
        machine.authenticate(login.name, login.password, login.code())
        try:
            while True:
                out = machine.data_to_send()
                if out:
                    sock.sendall(b"".join(out))
                data = sock.recv(65536)
                if not data:
                    return  # the gateway went away
                for event in machine.receive(data):
                    with self.changed:
                        if isinstance(event, AuthAccepted):
                            self.accepted.append(event.session_id)
                        elif isinstance(event, AuthRejected | SessionClosed):
                            self.refused.append(event.reason.slug)
                        self.changed.notify_all()
        except OSError:
            return  # reset by the kill

    def wait_accepted(self, count: int) -> None:
        deadline = time.monotonic() + WAIT
        with self.changed:
            while len(self.accepted) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"only {len(self.accepted)} logins accepted: {self.refused}"
                self.changed.wait(left)

    def cut(self) -> None:
        """The clients' network goes too: a connection the killed gateway never
        accepted (still in the listening socket's backlog) must not log in later."""
        with self.changed:
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the fd, not TLS

    def finish(self) -> None:
        """Wait until every client has seen the gateway go away, then close."""
        for future in self.futures:
            future.result(timeout=WAIT)
        self.pool.shutdown()
        for sock in self.sockets:
            sock.close()


def kill_9(ch: Channel) -> str:
    """SIGKILL the running ``serve``, collect it (no zombie), return its node name."""
    assert ch.serve is not None
    popen = ch.serve.popen
    os.kill(popen.pid, signal.SIGKILL)
    popen.wait(WAIT)
    assert popen.stdout is not None
    popen.stdout.close()
    ch.serve = None
    # The socket-activation shim execs serve: serve kept the shim's pid.
    return f"{socket.gethostname()}:{popen.pid}"


@dataclass(frozen=True)
class Books:
    sessions: dict[str, gateway.SessionRecord]
    logins: set[str]  # session ids with a successful login event
    ends: dict[str, audit.AuditEvent]  # session.end events by session id


def read_books(state: Path) -> Books:
    app = App(StateDir(state))
    try:
        with app.engine.begin() as conn:
            records = gateway.list_sessions(conn, limit=100_000)
            events = audit.query(conn, actions=["login", "session.end"])
    finally:
        app.close()
    return Books(
        sessions={r.id: r for r in records},
        logins={
            r.event.session_id
            for r in events
            if r.event.action == "login" and r.event.outcome == "ok"
        },
        ends={r.event.session_id: r.event for r in events if r.event.action == "session.end"},
    )


def wait_books(state: Path, node: str) -> Books:
    """The books once no session of the killed *node* is live any more (bounded)."""
    deadline = time.monotonic() + WAIT
    while True:
        books = read_books(state)
        left = [r.id for r in books.sessions.values() if r.node == node and r.status == "live"]
        if not left:
            return books
        assert time.monotonic() < deadline, f"still live after the restart: {left}"
        time.sleep(0.2)  # a bounded poll of another process's database, not a sync


def test_kill_9_in_the_middle_of_parallel_logins_leaves_no_session_without_its_records(
    channel_on: Channel, tmp_path: Path
) -> None:
    ch = channel_on
    accounts = open_accounts(ch.state, tmp_path, 20000001, LOGINS * ROUNDS)
    ch.start()
    for round_ in range(ROUNDS):
        before = read_books(ch.state)
        logins = Logins(ch.port, accounts[round_ * LOGINS : (round_ + 1) * LOGINS])
        logins.wait_accepted(KILL_AFTER)
        node = kill_9(ch)
        logins.cut()
        logins.finish()
        ch.start()  # the same state, the same gateway socket

        books = wait_books(ch.state, node)
        new = {sid: r for sid, r in books.sessions.items() if sid not in before.sessions}
        # Told "logged in" means recorded: the session row and its login event.
        assert set(logins.accepted) <= set(new), "AUTH_OK for a session with no row"
        assert len(logins.accepted) >= KILL_AFTER
        # No session row without its login event, ever.
        missing = sorted(set(books.sessions) - books.logins)
        assert not missing, f"round {round_}: sessions without a login event: {missing}"
        # Everything the kill left live is ended, with its event.
        for sid, record in new.items():
            assert record.node == node
            assert (record.status, record.end_reason) == ("ended", "node-lost"), record
            end = books.ends.get(sid)
            assert end is not None, f"round {round_}: session {sid} ended without an event"
            assert (end.reason, end.details["ended_by"]) == ("node-lost", "restart")
