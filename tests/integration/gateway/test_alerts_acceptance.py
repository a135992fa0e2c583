"""Issue 10, acceptance 3, through the real gateway: a scripted attack (30 wrong logins
from one address over 3 accounts) raises a spraying and a brute-force alert naming the
address and the accounts; one account live from two addresses raises one; the demo's
data and a normal login / query flow raise none.

The gateway is the real one (:class:`gateway.testing.ChannelTestbed`: the tunnel, the
twisted.cred checker, argon2 + TOTP, lockout, the session registry, the audit log) on
an SQLite file, with the network, the clock and the database pool in memory.  The
alerts come from the service ``ssgate serve`` runs (:func:`ssgate._alerting.alert_service`,
every 2 s on the clock), so "within 10 s" is checked on that clock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, select
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure

import audit
import declare_app
from declare_app._demo_data import load_demo
from declare_app._schema import metadata as declare_metadata
from declare_app._schema import persons
from declare_app.interfaces import Actor
from gateway._machine import AuthRejected, ClientMachine, Event
from gateway.testing import EMPLOYER_ADDRESS, TESTBED_ACCOUNT, TESTBED_UNIT, ChannelTestbed
from ssgate._alerting import alert_service
from ssgate._config import AlertsConfig

ATTACKER = "198.51.100.66"
OTHERS = ("33068287654321@sxlss", "33068211112222@sxlss")


class GuessingClient(Protocol):
    """Speaks the protocol by hand: *attempts* logins as *account*, then gives up."""

    def __init__(self, account: str, attempts: int, otp: Callable[[], str]) -> None:
        self.machine = ClientMachine()
        self.account = account
        self.left = attempts
        self.otp = otp
        self.rejected = 0
        self.lost = False

    def guess(self) -> None:
        self.left -= 1
        self.machine.authenticate(self.account, "not-the-password-1", self.otp())

    def connectionMade(self) -> None:
        self.guess()
        self.flush()

    def flush(self) -> None:
        assert self.transport is not None
        self.transport.writeSequence(self.machine.data_to_send())

    def dataReceived(self, data: bytes) -> None:
        for event in self.machine.receive(data):
            self.on(event)
        self.flush()

    def on(self, event: Event) -> None:
        if isinstance(event, AuthRejected):
            self.rejected += 1
            if self.left and event.attempts_left:
                self.guess()
            elif self.transport is not None:
                self.transport.loseConnection()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.lost = True


@pytest.fixture
def bed(sqlite_engine: Engine) -> ChannelTestbed:
    return ChannelTestbed(sqlite_engine)


@pytest.fixture
def alerting(bed: ChannelTestbed) -> Any:
    service = alert_service(bed.runner, bed.clock, AlertsConfig())
    service.startService()
    yield service
    service.stopService()


def from_address(bed: ChannelTestbed, host: str, port: int = 40000) -> None:
    bed.gateway_endpoint.client_address = IPv4Address("TCP", host, port)


def alerts(bed: ChannelTestbed) -> list[audit.AlertRow]:
    with bed.engine.begin() as conn:
        return audit.list_alerts(conn, limit=1000)


def guess(bed: ChannelTestbed, account: str, attempts: int) -> GuessingClient:
    client = GuessingClient(account, attempts, bed.otp)
    bed.gateway_endpoint.connect(Factory.forProtocol(lambda: client))
    bed.run()
    return client


def test_thirty_wrong_logins_over_three_accounts_raise_spraying_and_brute_force(
    bed: ChannelTestbed, alerting: Any
) -> None:
    bed.elapse(2)
    assert alerts(bed) == []
    accounts = (TESTBED_ACCOUNT, *OTHERS)
    for account in accounts:
        # 10 each: at most three to a connection, and one once the account is locked
        # (the gateway then hangs up).
        made = 0
        while made < 10:
            from_address(bed, ATTACKER, 40000 + len(bed.gateway_endpoint.connections))
            made += guess(bed, account, min(3, 10 - made)).rejected
    refused = [e for e in bed.audit_events("login") if e.outcome == "refused"]
    assert len(refused) == 30
    bed.elapse(2)  # one tick of the evaluator: well within 10 s of the last attempt

    found = {(a.rule, a.account or a.source): a for a in alerts(bed)}
    spray = found[("spraying", ATTACKER)]
    assert spray.severity == "high" and spray.evidence.accounts == tuple(sorted(accounts))
    assert spray.evidence.sources == (ATTACKER,) and ATTACKER in spray.summary
    for account in accounts:
        brute = found[("brute-force", account)]
        assert brute.source == ATTACKER and account in brute.summary
    assert sorted(found) == sorted(
        [("spraying", ATTACKER), *(("brute-force", a) for a in accounts)]
    )
    bed.elapse(10)  # later ticks judge nothing twice
    assert len(alerts(bed)) == 4


def test_one_account_live_from_two_addresses_raises_one_alert(
    bed: ChannelTestbed, alerting: Any
) -> None:
    from_address(bed, EMPLOYER_ADDRESS.host, 51000)
    first = bed.client()
    first.start()
    bed.run()
    bed.elapse(31)  # a fresh one-time code for the second login
    from_address(bed, "198.51.100.4", 52000)
    second = bed.client()
    second.start()
    bed.run()
    assert len(bed.ctx.live) == 2
    bed.elapse(2)
    [alert] = alerts(bed)
    assert (alert.rule, alert.account, alert.severity) == ("two-addresses", TESTBED_ACCOUNT, "high")
    assert alert.evidence.sources == ("198.51.100.4", EMPLOYER_ADDRESS.host)
    assert set(alert.evidence.session_ids) == set(bed.ctx.live)


def test_the_demo_data_and_a_normal_day_raise_no_alert(bed: ChannelTestbed, alerting: Any) -> None:
    """The demo unit's data (its declarations and their audit trail), then an employer
    who logs in, queries its own staff, quits, and comes back later from the same
    office: nothing to alert on."""
    declare_metadata.create_all(bed.engine)
    now = bed.clock.seconds()
    with bed.engine.begin() as conn:
        declare_app.register_unit(
            conn,
            TESTBED_UNIT,
            name="演示单位",
            region="330682",
            credit_code=None,
            actor="os:t",
            now=now,
        )
        declare_app.approve_unit(conn, TESTBED_UNIT, actor="os:t", now=now)
        load_demo(conn, TESTBED_UNIT, now=now, seed=20261123, account=TESTBED_ACCOUNT)
        own = [row[0] for row in conn.execute(select(persons.c.id_number).limit(5)).all()]
    queries = declare_app.EmployerQueries(declare_app.demo_rate_table())
    for visit in range(2):
        client = bed.client()
        done = client.start()
        bed.run()
        [live] = bed.ctx.live
        actor = Actor("employer", TESTBED_ACCOUNT, unit_code=TESTBED_UNIT, session_id=live)
        with bed.engine.begin() as conn:
            for id_number in own:
                queries.person_payments(conn, actor, id_number=id_number, now=bed.clock.seconds())
        client.quit()
        bed.run()
        assert done.called
        bed.elapse(3600 + visit)
    bed.elapse(2)
    assert [e.outcome for e in bed.audit_events("login")] == ["ok", "ok"]
    assert len(bed.audit_events("declare.query.person-payments")) == 2 * len(own) > 0
    assert alerts(bed) == []
    with bed.engine.begin() as conn:
        assert audit.evaluate_alerts(conn, audit.AlertThresholds(), now=0).records == 0
