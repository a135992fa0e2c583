"""Issue 10, acceptance 3, with real processes: a real ``ssgate serve`` (on SQLite and
on PostgreSQL), real TLS logins, the alerts read from its database.

* A scripted attack, 30 wrong passwords from 127.0.0.1 over 3 accounts (each
  connection with that account's own client certificate, as a stolen bundle would
  be used), raises a ``spraying`` alert naming the address and the three accounts and
  a ``brute-force`` alert for each account, within 10 s of the last attempt.  The
  attack locks the accounts on the way; the refusals ``locked`` count all the same.
* One account logged in from 127.0.0.1 and, while that session is live, from
  127.0.0.2 (Linux routes all of 127/8 to loopback) raises ``two-addresses``.
* The demo's data and its employer's normal traffic (``ssgate connect`` twice, a
  query each time) raise nothing, checked once the evaluator has judged all of it.

The same acceptance runs in memory, on the evaluator's clock, in
``tests/integration/gateway/test_alerts_acceptance.py``.
"""

from __future__ import annotations

import contextlib
import re
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import pyotp
import pytest
from sqlalchemy import Engine, select

import audit
from audit._schema import alert_cursor
from gateway._machine import AuthAccepted, AuthRejected, ClientMachine, SessionClosed
from ssgate._app import App
from ssgate._state import StateDir
from tests.e2e._logins import Login, open_accounts, totp_secret
from tests.e2e.conftest import WAIT, Account, Channel

pytestmark = [pytest.mark.slow]

T = TypeVar("T")

ALERT_WITHIN = 10.0  # seconds from the last event to its alert (the acceptance)
POLL = 0.2  # seconds between two reads of the serving process's database
WRONG_PASSWORD = "Not-The-Password-1"
HOST = "127.0.0.1"  # every client's address: the attacker's, the office's
OTHER_HOST = "127.0.0.2"  # a client socket bound to it; all of 127/8 is loopback
GUESSES_PER_ACCOUNT = 10  # brute_force_failures by default; 30 over 3 accounts in all


class Tunnel:
    """One TLS connection to the gateway as *login*'s client, from *source*, speaking
    the tunnel protocol by script."""

    def __init__(self, port: int, login: Login, *, source: str = HOST) -> None:
        self.login = login
        raw = socket.create_connection(("127.0.0.1", port), WAIT, source_address=(source, 0))
        self.sock = login.wrap(raw)
        self.sock.do_handshake()
        self.machine = ClientMachine(client_name="ssgate-e2e")

    def attempt(self, password: str, otp: str) -> AuthAccepted | AuthRejected | None:
        """One AUTH; the gateway's answer, or None if it hung up without one."""
        self.machine.authenticate(self.login.name, password, otp)
        while True:
            self.sock.sendall(b"".join(self.machine.data_to_send()))
            data = self.sock.recv(65536)
            if not data:
                return None
            for event in self.machine.receive(data):
                if isinstance(event, AuthAccepted | AuthRejected):
                    return event
                if isinstance(event, SessionClosed):
                    return None

    def __enter__(self) -> Tunnel:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


@pytest.fixture
def database(channel_on: Channel) -> Iterator[Engine]:
    """The serving process's database, to read alerts from (the state's own URL)."""
    app = App(StateDir(channel_on.state))
    try:
        yield app.engine
    finally:
        app.close()


def poll(read: Callable[[], T], done: Callable[[T], bool], *, within: float, what: str) -> T:
    """*read*'s value once *done* holds for it, reading again every :data:`POLL` s for at
    most *within* seconds; fails naming *what* and the value last read."""
    deadline = time.monotonic() + within
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {within:.1f} s; last read: {value!r}")
        time.sleep(POLL)  # a bounded poll of another process's database, not a sync


def alerts(engine: Engine) -> list[audit.AlertRow]:
    with engine.begin() as conn:
        return audit.list_alerts(conn, limit=1000)


def wait_alerts(
    engine: Engine, done: Callable[[list[audit.AlertRow]], bool], *, since: float, what: str
) -> list[audit.AlertRow]:
    """The alerts once *done* holds for them, at most :data:`ALERT_WITHIN` seconds after
    *since* (a ``time.monotonic()`` reading taken at the last event)."""
    return poll(
        lambda: alerts(engine),
        done,
        within=since + ALERT_WITHIN - time.monotonic(),
        what=f"{what} within {ALERT_WITHIN} s of the last event",
    )


def test_thirty_wrong_logins_over_three_accounts_raise_spraying_and_brute_force(
    channel_on: Channel, database: Engine, tmp_path: Path
) -> None:
    ch = channel_on
    logins = open_accounts(ch.state, tmp_path, 30000001, 3)
    ch.start()
    refusals: list[str] = []
    for login in logins:
        guessed = 0
        while guessed < GUESSES_PER_ACCOUNT:  # at most three to a connection
            with Tunnel(ch.port, login) as tunnel:
                for _ in range(min(3, GUESSES_PER_ACCOUNT - guessed)):
                    answer = tunnel.attempt(WRONG_PASSWORD, login.code())
                    assert isinstance(answer, AuthRejected), (login.name, guessed, answer)
                    guessed += 1
                    refusals.append(answer.reason.slug)
                    if not answer.attempts_left:
                        break  # locked (or out of attempts): the gateway hangs up
    last_attempt = time.monotonic()
    assert len(refusals) == 30 and "locked" in refusals, refusals

    names = tuple(sorted(login.name for login in logins))
    wanted = {("spraying", ""), *(("brute-force", name) for name in names)}
    found = wait_alerts(
        database,
        lambda rows: wanted <= {(a.rule, a.account) for a in rows},
        since=last_attempt,
        what="spraying and brute-force alerts",
    )
    assert sorted((a.rule, a.account) for a in found) == sorted(wanted)
    [spray] = [a for a in found if a.rule == "spraying"]
    assert (spray.source, spray.severity) == (HOST, "high")
    assert spray.evidence.accounts == names and spray.evidence.sources == (HOST,)
    assert HOST in spray.summary
    for brute in (a for a in found if a.rule == "brute-force"):
        assert (brute.source, brute.severity) == (HOST, "high")
        assert brute.account in brute.summary and brute.evidence.sources == (HOST,)


def test_one_account_live_from_two_addresses_raises_an_alert(
    channel_on: Channel, database: Engine, tmp_path: Path
) -> None:
    ch = channel_on
    [login] = open_accounts(ch.state, tmp_path, 30000011, 1)
    # Two sessions at once (the default, made explicit: a third login would be refused).
    ch.configure(f'\n[[policy.account]]\nname = "{login.name}"\nmax_sessions = 2\n')
    ch.start()
    # The second login takes the next step's code: the gateway accepts each step once.
    with (
        Tunnel(ch.port, login, source=HOST) as first,
        Tunnel(ch.port, login, source=OTHER_HOST) as second,
    ):
        one = first.attempt(login.password, login.code())
        assert isinstance(one, AuthAccepted), one
        two = second.attempt(login.password, login.code(1))
        assert isinstance(two, AuthAccepted), two
        found = wait_alerts(  # both sessions live while it is judged
            database,
            lambda rows: any(a.rule == "two-addresses" for a in rows),
            since=time.monotonic(),
            what="two-addresses alert",
        )
    [alert] = found
    assert (alert.rule, alert.account, alert.severity) == ("two-addresses", login.name, "high")
    assert alert.evidence.sources == (HOST, OTHER_HOST)
    assert set(alert.evidence.session_ids) == {one.session_id, two.session_id}


def demo_employer(ch: Channel) -> Account:
    """The account ``ssgate demo`` opened, from the files it wrote to the state."""
    logins = (ch.state / "demo-logins.txt").read_text(encoding="utf-8")

    def field(label: str) -> str:
        m = re.search(rf"^{label}:\s+(\S+)$", logins, re.MULTILINE)
        assert m is not None, f"no {label!r} in demo-logins.txt"
        return m.group(1)

    return Account(
        field("channel account"),
        Path(field("enrolment bundle")),
        ch.state / "demo-password.txt",
        ch.state / "demo-p12-password.txt",
        pyotp.TOTP(totp_secret(field("TOTP URI"))),
    )


def events(engine: Engine, action: str) -> list[audit.AuditEvent]:
    with engine.begin() as conn:
        return [r.event for r in audit.query(conn, actions=[action])]


def judged_up_to(engine: Engine) -> int:
    """The last audit record the alert evaluator has judged (0 before its first run)."""
    with engine.begin() as conn:
        seq = conn.execute(select(alert_cursor.c.last_seq)).scalar()
    return int(seq or 0)


def test_the_demo_and_its_normal_traffic_raise_no_alert(
    channel_on: Channel, database: Engine
) -> None:
    """The demo's data (units, persons, declarations in every state, with their audit
    trail), then its employer: ``ssgate connect``, a query, quit; again a while later
    from the same office.  No alert: checked once the evaluator has judged every record
    of it, which is sooner and surer than two intervals by the clock (an evaluation
    stores its alerts in the transaction that moves its cursor past their records)."""
    ch = channel_on
    ch.run("demo", "--no-serve", check_rc=0)
    ch.start("demo")
    employer = demo_employer(ch)
    for visit in range(2):  # the second login takes the next step's code
        client = ch.connect(employer, otp=employer.code(visit))
        _, port = ch.connected(client)
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/api/v1/queries/unit-info", timeout=WAIT
        ) as answer:
            assert answer.status == 200
        client.stop()
        poll(
            lambda: events(database, "session.end"),
            lambda ends: len(ends) == visit + 1,  # noqa: B023 (called in this iteration)
            within=WAIT,
            what=f"end of visit {visit + 1}",
        )
    assert [e.outcome for e in events(database, "login")] == ["ok", "ok"]
    assert [e.outcome for e in events(database, "declare.query.unit-info")] == ["ok", "ok"]
    with database.begin() as conn:
        head = audit.last_seq(conn)
    poll(
        lambda: judged_up_to(database),
        lambda seq: seq >= head,
        within=2 * ALERT_WITHIN,
        what=f"evaluation of audit records up to {head}",
    )
    assert alerts(database) == []
