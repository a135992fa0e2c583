"""Syslog forwarding over real loopback sockets, on the real reactor and database pool.

* A small Twisted octet-counting receiver in the test is stopped while 1,000 audit
  events happen, then started again on the same port: every event arrives, in order
  on each connection, and after dropping repeated sequence numbers the receiver holds
  exactly the events (issue 12, acceptance 1; the deterministic 60 s version is in
  tests/unit/ssgate/test_syslog.py).
* A real rsyslog (Debian package), started by the test with its own configuration in
  a temporary directory, receives the events over TLS (gtls driver, our CA, a client
  certificate it requires) and writes their structured data to a file the test reads
  (acceptance 2).  rsyslog binds port 0 and writes the port it got to a file
  (imtcp ``listenPortFileName``), so no port is left to chance.
* A collector whose certificate our CA did not sign is refused: nothing is sent.

Every wait is a bounded poll inside the reactor; nothing sleeps to synchronise.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec

import pytest
import pytest_twisted  # type: ignore[import-untyped, unused-ignore]
from sqlalchemy import Connection, Engine
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure

import audit
import certs
from ssgate._config import SyslogCollector, SyslogConfig
from ssgate._db import Database, make_engine
from ssgate._syslog import forwarders, syslog_service

TEST_TIMEOUT = 120.0
WAIT = 60.0  # any one bounded wait on a loaded 2-core machine
SEQ = re.compile(rb' seq="(\d+)"')
RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
GTLS = Path("/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so")
ACCOUNT = "33068212345678@sxlss"  # the client certificate's name (our CA issues these)

P = ParamSpec("P")
AsyncTest = Callable[P, Coroutine[Any, Any, None]]


def reactor_test(test: AsyncTest[P]) -> AsyncTest[P]:
    """Run *test* on the reactor (pytest-twisted), failing it after TEST_TIMEOUT."""

    @functools.wraps(test)
    async def run(*args: P.args, **kwargs: P.kwargs) -> None:
        from twisted.internet import reactor

        await Deferred.fromCoroutine(test(*args, **kwargs)).addTimeout(TEST_TIMEOUT, reactor)

    marked: AsyncTest[P] = pytest_twisted.ensureDeferred(run)
    return marked


async def until(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Poll *condition* every 50 ms until it holds; fail naming *what* at the deadline."""
    from twisted.internet import reactor

    deadline = reactor.seconds() + timeout
    while not condition():
        if reactor.seconds() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await deferLater(reactor, 0.05, lambda: None)


# -- the audit log ----------------------------------------------------------------------


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path}/syslog.db")
    audit.metadata.create_all(engine)
    yield engine
    engine.dispose()


def _record(conn: Connection, first: int, count: int, at: float) -> None:
    for i in range(first, first + count):
        audit.append(
            conn,
            audit.AuditEvent(
                at=at,
                actor=f"channel:{ACCOUNT}",
                action="login",
                subject=ACCOUNT,
                outcome="ok",
                reason="",
                details={"n": i, "note": 'quote " and ] bracket'},
            ),
        )


async def record(db: Database, first: int, count: int) -> None:
    from twisted.internet import reactor

    for start in range(first, first + count, 100):
        await db.run(_record, start, min(100, first + count - start), reactor.seconds())


# -- a receiver in the test -------------------------------------------------------------


@dataclass
class Receiver:
    """Octet-counted messages per connection, in arrival order."""

    connections: list[list[bytes]] = field(default_factory=list)
    open: list[Protocol] = field(default_factory=list)

    def factory(self) -> Factory:
        receiver = self

        class One(Protocol):
            def connectionMade(self) -> None:
                self.decoder = audit.OctetCountingDecoder()
                self.messages: list[bytes] = []
                receiver.connections.append(self.messages)
                receiver.open.append(self)

            def dataReceived(self, data: bytes) -> None:
                self.messages += self.decoder.feed(data)

            def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
                receiver.open.remove(self)

        return Factory.forProtocol(One)

    def seqs(self) -> list[int]:
        return [seq_of(m) for messages in self.connections for m in messages]

    def distinct(self) -> list[int]:
        return list(dict.fromkeys(self.seqs()))


def seq_of(message: bytes) -> int:
    m = SEQ.search(message)
    assert m is not None, message
    return int(m.group(1))


def plain(port: int, **kwargs: Any) -> SyslogConfig:
    collector = SyslogCollector(address=f"127.0.0.1:{port}", host="127.0.0.1", port=port, tls=False)
    return SyslogConfig(hostname="gw1", interval_seconds=0.2, collectors=(collector,), **kwargs)


@reactor_test
async def test_a_receiver_stopped_while_1000_events_happen_gets_every_one_when_back(
    engine: Engine, tmp_path: Path
) -> None:
    from twisted.internet import reactor

    receiver = Receiver()
    listening = reactor.listenTCP(0, receiver.factory(), interface="127.0.0.1")
    port = listening.getHost().port
    db = Database(engine, reactor)
    service = syslog_service(db, reactor, plain(port, batch=200), state_path=tmp_path, node="gw1:1")
    [forwarder] = forwarders(service)
    service.startService()
    try:
        await record(db, 0, 10)
        await until(lambda: receiver.distinct() == list(range(1, 11)), "the first 10")
        await until(lambda: forwarder.delivered == 10, "the first 10 confirmed")

        # The collector goes away: no listener, and its open connection is cut.
        await maybeDeferred(listening.stopListening)
        for protocol in list(receiver.open):
            assert protocol.transport is not None
            protocol.transport.abortConnection()  # type: ignore[attr-defined]
        await until(lambda: not forwarder.connected, "the forwarder to notice")
        await record(db, 10, 1000)
        with engine.begin() as conn:
            assert audit.get_syslog_cursors(conn) == {f"127.0.0.1:{port}": 10}

        # Back on the same port: everything after the cursor arrives.
        listening = reactor.listenTCP(port, receiver.factory(), interface="127.0.0.1")
        await until(lambda: len(receiver.distinct()) == 1010, "all 1,010 events")
        await until(lambda: forwarder.delivered == 1010, "all confirmed")
    finally:
        await maybeDeferred(service.stopService)
        await maybeDeferred(listening.stopListening)
        db.close()
    assert receiver.distinct() == list(range(1, 1011))
    for messages in receiver.connections:  # each connection in order, without a gap
        seqs = [seq_of(m) for m in messages]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))) if seqs else True


# -- a real rsyslog over TLS --------------------------------------------------------------


@dataclass
class Rsyslog:
    """rsyslogd in the foreground, its config, output and pid file in one directory."""

    directory: Path
    process: subprocess.Popen[bytes]

    @property
    def output(self) -> Path:
        return self.directory / "received.log"

    def port(self) -> int | None:
        text = (self.directory / "port").read_text() if (self.directory / "port").exists() else ""
        return int(text) if text.strip().isdigit() else None

    def lines(self) -> list[str]:
        if not self.output.exists():
            return []
        return self.output.read_text(encoding="utf-8").splitlines()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_rsyslog(directory: Path, *, require_client_cert: bool) -> Rsyslog:
    if not os.path.exists(RSYSLOGD) or not GTLS.exists():
        pytest.skip(
            "rsyslog or rsyslog-gnutls not installed (apt-get install rsyslog rsyslog-gnutls)"
        )
    directory.mkdir()
    auth_mode = "x509/certvalid" if require_client_cert else "anon"
    config = f"""\
global(
    workDirectory="{directory}"
    maxMessageSize="64k"
    defaultNetstreamDriver="gtls"
    defaultNetstreamDriverCAFile="{directory.parent}/ca.pem"
    defaultNetstreamDriverCertFile="{directory.parent}/collector.pem"
    defaultNetstreamDriverKeyFile="{directory.parent}/collector-key.pem"
)
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1"
       streamDriver.authMode="{auth_mode}")
input(type="imtcp" address="127.0.0.1" port="0"
      listenPortFileName="{directory}/port")
template(name="sd" type="string" string="%hostname% %app-name% %msgid% %structured-data%\\n")
action(type="omfile" file="{directory}/received.log" template="sd")
"""
    (directory / "rsyslog.conf").write_text(config, encoding="utf-8")
    process = subprocess.Popen(
        [RSYSLOGD, "-n", "-f", str(directory / "rsyslog.conf"), "-i", str(directory / "pid")],
        stdin=subprocess.DEVNULL,
        stdout=(directory / "rsyslogd.out").open("wb"),
        stderr=subprocess.STDOUT,
    )
    return Rsyslog(directory, process)


@pytest.fixture
def pki(tmp_path: Path) -> certs.CertificateAuthority:
    now = datetime.now(UTC)
    ca = certs.CertificateAuthority.create("syslog test CA", now=now)
    collector = ca.issue_server(["localhost"], now=now, validity_days=30)
    client = ca.issue_client(ACCOUNT, now=now, validity_days=30)
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem())
    (tmp_path / "collector.pem").write_bytes(collector.cert_pem())
    (tmp_path / "collector-key.pem").write_bytes(collector.key_pem())
    (tmp_path / "client.pem").write_bytes(client.cert_pem())
    (tmp_path / "client-key.pem").write_bytes(client.key_pem())
    return ca


@pytest.fixture
def rsyslog(tmp_path: Path, pki: certs.CertificateAuthority) -> Iterator[Rsyslog]:
    server = start_rsyslog(tmp_path / "rsyslog", require_client_cert=True)
    yield server
    server.stop()


def tls_config(port: int, *, ca_file: str = "ca.pem") -> SyslogConfig:
    collector = SyslogCollector(
        address=f"localhost:{port}",
        host="127.0.0.1",  # connect by address; check the certificate's name below
        port=port,
        tls=True,
        ca_file=ca_file,
        server_name="localhost",
        cert_file="client.pem",
        key_file="client-key.pem",
    )
    return SyslogConfig(hostname="gw1", interval_seconds=0.2, collectors=(collector,))


@reactor_test
async def test_rsyslog_receives_the_events_over_tls_with_the_seq_in_structured_data(
    engine: Engine, tmp_path: Path, rsyslog: Rsyslog
) -> None:
    from twisted.internet import reactor

    await until(lambda: rsyslog.port() is not None or rsyslog.process.poll() is not None, "rsyslog")
    port = rsyslog.port()
    assert port is not None, (rsyslog.directory / "rsyslogd.out").read_text()
    db = Database(engine, reactor)
    service = syslog_service(db, reactor, tls_config(port), state_path=tmp_path, node="gw1:1")
    [forwarder] = forwarders(service)
    service.startService()
    try:
        await record(db, 0, 50)
        await until(lambda: len(rsyslog.lines()) >= 50, "rsyslog to write 50 lines")
        await until(lambda: forwarder.delivered == 50, "delivery confirmed")
    finally:
        await maybeDeferred(service.stopService)
        db.close()
    lines = rsyslog.lines()
    seqs = [int(m.group(1)) for m in (re.search(r' seq="(\d+)"', line) for line in lines) if m]
    assert list(dict.fromkeys(seqs)) == list(range(1, 51))
    first = lines[0]
    assert first.startswith('gw1 ssgate login [ssgate@32473 seq="1" at="')
    assert f'subject="{ACCOUNT}"' in first and 'outcome="ok"' in first
    # The escapes of RFC 5424 6.3.3 survived the trip and rsyslog's parser.
    assert '\\"n\\":0' in first and 'quote \\\\\\" and \\] bracket' in first


@reactor_test
async def test_a_collector_whose_certificate_our_ca_did_not_sign_gets_nothing(
    engine: Engine, tmp_path: Path, rsyslog: Rsyslog
) -> None:
    from twisted.internet import reactor

    other = certs.CertificateAuthority.create("someone else", now=datetime.now(UTC))
    (tmp_path / "other-ca.pem").write_bytes(other.cert_pem())
    await until(lambda: rsyslog.port() is not None or rsyslog.process.poll() is not None, "rsyslog")
    port = rsyslog.port()
    assert port is not None
    warnings: list[dict[str, Any]] = []
    recovered: list[dict[str, Any]] = []

    def keep(event: dict[str, Any]) -> None:
        if "unreachable (" in str(event.get("log_format", "")):
            warnings.append(event)
        if "reachable again" in str(event.get("log_format", "")):
            recovered.append(event)

    globalLogPublisher.addObserver(keep)
    db = Database(engine, reactor)
    service = syslog_service(
        db, reactor, tls_config(port, ca_file="other-ca.pem"), state_path=tmp_path, node="gw1:1"
    )
    service.startService()
    try:
        [forwarder] = forwarders(service)
        await record(db, 0, 3)
        await until(lambda: bool(warnings), "the refusal to be logged")
        outage = forwarder._outage
        assert outage is not None
        await until(lambda: outage.attempts >= 1, "a second attempt, refused as well")
    finally:
        await maybeDeferred(service.stopService)
        globalLogPublisher.removeObserver(keep)
        db.close()
    assert rsyslog.lines() == []
    assert len(warnings) == 1 and recovered == []  # logged once, never "back"
    assert warnings[0]["reason"] == "TLS: certificate verify failed"
    with engine.begin() as conn:
        assert audit.get_syslog_cursors(conn)[f"localhost:{port}"] == 0


# -- RELP to a real rsyslog -----------------------------------------------------------


def listening_port_of(pid: int) -> int | None:
    """The TCP port process *pid* listens on (Linux /proc): imrelp binds port 0 but,
    unlike imtcp, cannot write the port it got to a file."""
    try:
        inodes = {
            target[8:-1]
            for fd in os.listdir(f"/proc/{pid}/fd")
            if (target := _readlink(f"/proc/{pid}/fd/{fd}")).startswith("socket:[")
        }
        table = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return None
    for line in table:
        fields = line.split()
        if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
            return int(fields[1].rsplit(":", 1)[1], 16)
    return None


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


@pytest.fixture
def relp_rsyslog(tmp_path: Path) -> Iterator[Rsyslog]:
    if not os.path.exists(RSYSLOGD) or not RELP.exists():
        pytest.skip("rsyslog-relp not installed (apt-get install rsyslog-relp)")
    if not Path("/proc/net/tcp").exists():
        pytest.skip("no /proc/net/tcp to find rsyslog's RELP port")
    directory = tmp_path / "relp"
    directory.mkdir()
    (directory / "rsyslog.conf").write_text(
        f"""\
global(workDirectory="{directory}" maxMessageSize="64k")
module(load="imrelp")
input(type="imrelp" address="127.0.0.1" port="0")
template(name="sd" type="string" string="%msgid% %structured-data%\\n")
action(type="omfile" file="{directory}/received.log" template="sd")
""",
        encoding="utf-8",
    )
    process = subprocess.Popen(
        [RSYSLOGD, "-n", "-f", str(directory / "rsyslog.conf"), "-i", str(directory / "pid")],
        stdin=subprocess.DEVNULL,
        stdout=(directory / "rsyslogd.out").open("wb"),
        stderr=subprocess.STDOUT,
    )
    server = Rsyslog(directory, process)
    yield server
    server.stop()


RELP = Path("/usr/lib/x86_64-linux-gnu/rsyslog/imrelp.so")


@reactor_test
async def test_rsyslog_acknowledges_each_event_over_relp_and_the_cursor_follows(
    engine: Engine, tmp_path: Path, relp_rsyslog: Rsyslog
) -> None:
    from twisted.internet import reactor

    pid = relp_rsyslog.process.pid
    await until(lambda: listening_port_of(pid) is not None, "rsyslog's RELP listener")
    port = listening_port_of(pid)
    assert port is not None
    collector = SyslogCollector(
        address=f"127.0.0.1:{port}", host="127.0.0.1", port=port, tls=False, protocol="relp"
    )
    config = SyslogConfig(hostname="gw1", interval_seconds=0.2, collectors=(collector,))
    db = Database(engine, reactor)
    service = syslog_service(db, reactor, config, state_path=tmp_path, node="gw1:1")
    [forwarder] = forwarders(service)
    service.startService()
    try:
        await record(db, 0, 1000)  # more than the RELP window of 128
        # Acknowledged, so the cursor follows without the plain-TCP grace period.
        await until(lambda: forwarder.delivered == 1000, "all 1,000 acknowledged")
        await until(lambda: len(relp_rsyslog.lines()) >= 1000, "rsyslog to write them")
    finally:
        await maybeDeferred(service.stopService)
        db.close()
    seqs = [
        int(m.group(1)) for line in relp_rsyslog.lines() if (m := re.search(r' seq="(\d+)"', line))
    ]
    assert seqs == list(range(1, 1001))  # exactly once: no connection broke
