"""The dial-in access server on a real UDP socket, with Debian's ``radclient``
(freeradius-utils) as the NAS (issue 15, acceptance 1, 2 and 4 in part).

Assembled as ``ssgate serve`` assembles it (:func:`ssgate._radius.start_radius` with
the serve ``Runner``: hashing on the login pool, transactions on the database pool)
from an initialised state directory whose ``ssgate.toml`` names one NAS, listening on
loopback port 0.  Accounts are opened for approved units by the carrier's workflow.
The channel's login is :meth:`auth.Authenticator.authenticate`, which is what the
gateway's twisted.cred checker calls with the same rows.
"""

from __future__ import annotations

import functools
import io
import json
import re
import shutil
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, ParamSpec
from urllib.parse import parse_qs, urlparse

import pytest
import pytest_twisted  # type: ignore[import-untyped, unused-ignore]
from pyrad import packet as pyrad_packet
from twisted.internet.defer import Deferred
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.threads import deferToThread
from twisted.internet.utils import getProcessOutputAndValue

import audit
import auth
import radius
import radius.testing
from ssgate import cli
from ssgate._app import App
from ssgate._db import Database
from ssgate._radius import RadiusListener, start_radius
from ssgate._serve import Runner, make_authenticator

SECRET = "radclient-shared-secret-0123456789"
PASSWORD = "Correct-Horse-9-battery"
UNITS = ("12345678", "12345679", "12345680", "12345681", "12345682", "12345683", "12345684")
TEST_TIMEOUT = 60.0

P = ParamSpec("P")
AsyncTest = Callable[P, Coroutine[Any, Any, None]]

RADCLIENT = shutil.which("radclient")
pytestmark = pytest.mark.skipif(
    RADCLIENT is None, reason="radclient not installed (apt-get install freeradius-utils)"
)


def reactor_test(test: AsyncTest[P]) -> AsyncTest[P]:
    """Run *test* on the reactor (pytest-twisted), failing it after TEST_TIMEOUT seconds."""

    @functools.wraps(test)
    async def run(*args: P.args, **kwargs: P.kwargs) -> None:
        from twisted.internet import reactor

        await Deferred.fromCoroutine(test(*args, **kwargs)).addTimeout(TEST_TIMEOUT, reactor)

    marked: AsyncTest[P] = pytest_twisted.ensureDeferred(run)
    return marked


def ssgate(state: Path, *argv: str) -> int:
    return cli.main(["--state", str(state), *argv], out=io.StringIO())


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """A state directory with one NAS (radclient on 127.0.0.1) and one account per
    approved unit; the accounts' TOTP secrets by account name."""
    path = tmp_path_factory.mktemp("radius") / "state"
    assert ssgate(path, "init", "--hostname", "localhost") == 0
    (path / "radius-radclient.secret").write_text(SECRET + "\n")
    (path / "radius-radclient.secret").chmod(0o600)
    config = path / "ssgate.toml"
    text = (
        config.read_text()
        .replace("auth_port = 1812", "auth_port = 0")
        .replace("accounting_port = 1813", "accounting_port = 0")
    )
    config.write_text(
        text + '\n[[radius.client]]\nname = "radclient"\nsources = ["127.0.0.1/32"]\n'
        'secret_file = "radius-radclient.secret"\n'
    )
    secrets: dict[str, str] = {}
    app = App(app_state(path))
    provisioner = app.provisioner()
    for unit in UNITS:
        assert (
            ssgate(path, "units", "register", unit, "--name", f"单位{unit}", "--region", "330682")
            == 0
        )
        assert ssgate(path, "units", "approve", unit) == 0
        account = f"330682{unit}@sxlss"
        issued = provisioner.open(account, password=PASSWORD)
        assert issued.otp_uri is not None
        secrets[account] = parse_qs(urlparse(issued.otp_uri).query)["secret"][0]
    app.close()
    yield path, secrets


def app_state(path: Path) -> Any:
    from ssgate._state import StateDir

    return StateDir(path)


class Served:
    def __init__(self, path: Path) -> None:
        from twisted.internet import reactor

        self.app = App(app_state(path))
        self.runner = Runner(Database(self.app.engine, reactor), reactor)
        self.authenticator = make_authenticator(self.app)
        listener = start_radius(
            self.app, reactor, authenticator=self.authenticator, runner=self.runner
        )
        assert isinstance(listener, RadiusListener)
        self.listener = listener
        self.port = listener.port.getHost().port  # type: ignore[attr-defined]

    async def stop(self) -> None:
        for port in self.listener.ports():
            await port.stopListening()  # type: ignore[misc]
        self.runner.close()
        self.app.close()

    def logins(self, account: str) -> list[audit.AuditRecord]:
        with self.app.engine.begin() as conn:
            return audit.query(conn, actions=["login"], subject=account)


@pytest.fixture
def served(state: tuple[Path, dict[str, str]]) -> Iterator[Served]:
    served = Served(state[0])
    yield served
    pytest_twisted.blockon(Deferred.fromCoroutine(served.stop()))


def code(secret: str, step_offset: int = 0) -> str:
    return auth.current_code(secret, time.time() + 30 * step_offset)


async def radclient(
    port: int,
    tmp: Path,
    attributes: dict[str, str],
    *,
    retries: int = 1,
    timeout: float = 3,
    command: str = "auth",
) -> str:
    """Run radclient once (one Access-Request); its output, with the exit status."""
    request = tmp / f"request-{time.monotonic_ns()}.txt"
    request.write_text("".join(f"{k} = {v}\n" for k, v in attributes.items()))
    out, err, status = await getProcessOutputAndValue(
        RADCLIENT,  # type: ignore[arg-type]
        [
            "-x",
            "-r",
            str(retries),
            "-t",
            str(timeout),
            "-f",
            str(request),
            f"127.0.0.1:{port}",
            command,
            SECRET,
        ],
    )
    return f"{out.decode()}\n{err.decode()}\nexit {status}"


def pap(account: str, password: str, *, signed: bool = True, **more: str) -> dict[str, str]:
    attributes = {"User-Name": f'"{account}"', "User-Password": f'"{password}"', **more}
    if signed:
        attributes["Message-Authenticator"] = "0x00"
    return attributes


@reactor_test
async def test_radclient_pap_password_and_code_is_accepted_with_class_and_a_replay_rejected(
    served: Served, state: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    account = f"330682{UNITS[0]}@sxlss"
    now_code = code(state[1][account])
    first = await radclient(served.port, tmp_path, pap(account, PASSWORD + now_code))
    assert "Received Access-Accept" in first, first
    session = re.search(r"Class = 0x([0-9a-f]+)", first)
    assert session is not None
    assert re.search(r"Session-Timeout = 43200", first) and re.search(r"Idle-Timeout = 1800", first)
    assert "Message-Authenticator" in first.split("Received Access-Accept", 1)[1]

    again = await radclient(served.port, tmp_path, pap(account, PASSWORD + now_code))
    assert "Received Access-Reject" in again, again

    [ok, replay] = served.logins(account)
    assert (ok.event.actor, ok.event.outcome) == ("radius:radclient", "ok")
    assert ok.event.session_id == bytes.fromhex(session.group(1)).decode()
    assert (replay.event.outcome, replay.event.reason) == ("refused", "otp-reused")


@reactor_test
async def test_a_code_the_channel_used_is_rejected_over_radius(
    served: Served, state: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    account = f"330682{UNITS[1]}@sxlss"
    used = code(state[1][account])
    channel = await served.runner.call(
        served.authenticator.authenticate,
        account,
        PASSWORD,
        used,
        source="192.0.2.7",
        now=time.time(),
    )
    assert channel.ok
    out = await radclient(served.port, tmp_path, pap(account, PASSWORD + used))
    assert "Received Access-Reject" in out, out
    assert served.logins(account)[-1].event.reason == "otp-reused"


@reactor_test
async def test_the_challenge_flow_with_radclient(
    served: Served, state: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    account = f"330682{UNITS[2]}@sxlss"
    first = await radclient(served.port, tmp_path, pap(account, PASSWORD))
    assert "Received Access-Challenge" in first, first
    match = re.search(r"State = (0x[0-9a-f]+)", first)
    assert match is not None
    second = await radclient(
        served.port, tmp_path, pap(account, code(state[1][account]), State=match.group(1))
    )
    assert "Received Access-Accept" in second, second


@reactor_test
async def test_a_request_without_message_authenticator_is_dropped_and_counted(
    served: Served, state: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    account = f"330682{UNITS[3]}@sxlss"
    unsigned = await radclient(
        served.port, tmp_path, pap(account, PASSWORD + "000000", signed=False), retries=1, timeout=1
    )
    assert "Received" not in unsigned and "No reply" in unsigned, unsigned
    assert served.listener.protocol.server.drops["no-message-authenticator"] >= 1
    assert served.logins(account) == []

    wrong = await radclient(served.port, tmp_path, pap(account, PASSWORD + "000000"))
    assert "Received Access-Reject" in wrong  # signed: answered (a wrong code)


def ssgate_radius_test(state: Path, *argv: str) -> tuple[int, str]:
    """``ssgate radius test`` in process (its blocking client runs on a thread)."""
    out = io.StringIO()
    return cli.main(["--state", str(state), "radius", "test", *argv], out=out), out.getvalue()


@reactor_test
async def test_ssgate_radius_test_logs_in_as_the_configured_nas(
    served: Served, state: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    path, secrets = state
    account = f"330682{UNITS[4]}@sxlss"
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    server = f"127.0.0.1:{served.port}"
    status, out = await deferToThread(
        ssgate_radius_test,
        path,
        account,
        "--server",
        server,
        "--password-file",
        str(password_file),
        "--otp",
        code(secrets[account]),
    )
    assert status == 0, out
    assert out.startswith("Access-Accept\n") and "Class (session id)" in out
    assert "Session-Timeout 43200 s, Idle-Timeout 1800 s" in out

    # The same code again: refused (exit 1), and through the challenge.
    status, out = await deferToThread(
        ssgate_radius_test,
        path,
        account,
        "--server",
        server,
        "--password-file",
        str(password_file),
        "--otp",
        code(secrets[account]),
        "--challenge",
    )
    assert status == 1
    assert out.splitlines()[0].startswith("Access-Challenge: ")
    assert out.splitlines()[1].startswith("Access-Reject")
    assert [r.event.reason for r in served.logins(account)] == ["", "otp-reused"]


@reactor_test
async def test_accounting_start_stop_from_radclient_appear_in_ssgate_audit_sessions(
    served: Served, state: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    path, secrets = state
    account = f"330682{UNITS[5]}@sxlss"
    accept = await radclient(served.port, tmp_path, pap(account, PASSWORD + code(secrets[account])))
    match = re.search(r"Class = 0x([0-9a-f]+)", accept)
    assert match is not None, accept
    session_id = bytes.fromhex(match.group(1)).decode()
    acct_port = served.listener.accounting_port.getHost().port  # type: ignore[attr-defined]
    common = {
        "User-Name": f'"{account}"',
        "Acct-Session-Id": '"radclient-1"',
        "Class": f"0x{match.group(1)}",
        "NAS-Port": "5",
        "Framed-IP-Address": "10.64.0.9",
    }
    start = await radclient(
        acct_port, tmp_path, {**common, "Acct-Status-Type": "Start"}, command="acct"
    )
    assert "Received Accounting-Response" in start, start
    stop = await radclient(
        acct_port,
        tmp_path,
        {
            **common,
            "Acct-Status-Type": "Stop",
            "Acct-Input-Octets": "123456",
            "Acct-Output-Octets": "654321",
            "Acct-Session-Time": "60",
            "Acct-Terminate-Cause": "User-Request",
        },
        command="acct",
    )
    assert "Received Accounting-Response" in stop, stop

    out = io.StringIO()
    status = await deferToThread(
        cli.main,
        ["--state", str(path), "audit", "sessions", "--account", account, "--format", "json"],
        out,
    )
    assert status == 0
    [row] = [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]
    assert row["id"] == session_id and row["node"] == "radius:radclient"
    assert (row["bytes_in"], row["bytes_out"]) == (123456, 654321)
    assert row["end_reason"] == "nas-user-request" and row["peer"] == "10.64.0.9"
    actions = [(r.event.action, r.event.session_id) for r in served.logins(account)]
    assert actions == [("login", session_id)]
    with served.app.engine.begin() as conn:
        ends = audit.query(conn, actions=["session.start", "session.end"], session_id=session_id)
    assert [e.event.action for e in ends] == ["session.start", "session.end"]


class TestNas(DatagramProtocol):
    """A NAS's dynamic-authorization server: keeps each Disconnect-Request and ACKs it."""

    __test__ = False

    def __init__(self) -> None:
        self.requests: list[Any] = []
        self.received: Deferred[None] = Deferred()

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        request = pyrad_packet.CoAPacket(
            secret=SECRET.encode(), dict=radius.radius_dictionary(), packet=datagram
        )
        self.requests.append(request)
        assert self.transport is not None
        self.transport.write(request.CreateReply().ReplyPacket(), addr)
        if not self.received.called:
            self.received.callback(None)


@reactor_test
async def test_ssgate_audit_kill_of_a_dial_in_session_reaches_the_nas_as_a_disconnect_request(
    state: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    from twisted.internet import reactor

    path, secrets = state
    nas = TestNas()
    nas_port = reactor.listenUDP(0, nas, interface="127.0.0.1")  # type: ignore[attr-defined]
    config = path / "ssgate.toml"
    original = config.read_text()
    config.write_text(original + f"disconnect_port = {nas_port.getHost().port}\n")
    served = Served(path)
    try:
        account = f"330682{UNITS[6]}@sxlss"
        accept = await radclient(
            served.port, tmp_path, pap(account, PASSWORD + code(secrets[account]))
        )
        match = re.search(r"Class = 0x([0-9a-f]+)", accept)
        assert match is not None, accept
        session_id = bytes.fromhex(match.group(1)).decode()
        acct_port = served.listener.accounting_port.getHost().port  # type: ignore[attr-defined]
        start = await radclient(
            acct_port,
            tmp_path,
            {
                "User-Name": f'"{account}"',
                "Acct-Status-Type": "Start",
                "Acct-Session-Id": '"radclient-kill"',
                "Class": f"0x{match.group(1)}",
            },
            command="acct",
        )
        assert "Received Accounting-Response" in start, start

        out = io.StringIO()
        status = await deferToThread(
            cli.main,
            ["--state", str(path), "audit", "kill", session_id, "--reason", "test"],
            out,
        )
        assert status == 0, out.getvalue()
        await served.listener.disconnects.tick()  # the 2-second poll, now
        await nas.received
        [request] = nas.requests
        assert request.code == pyrad_packet.DisconnectRequest
        assert request.VerifyCoARequest() and request.verify_message_authenticator()
        assert request["User-Name"] == [account]
        assert request["Acct-Session-Id"] == ["radclient-kill"]

        with served.app.engine.begin() as conn:
            ended = audit.query(conn, actions=["session.disconnect"], session_id=session_id)
        assert [(e.event.outcome, e.event.reason) for e in ended] == [("ok", "officer-kill")]
        out = io.StringIO()
        await deferToThread(
            cli.main,
            ["--state", str(path), "audit", "sessions", "--account", account, "--format", "json"],
            out,
        )
        [row] = [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]
        assert row["end_reason"] == "officer-kill" and row["ended_at"]
    finally:
        await served.stop()
        await nas_port.stopListening()
        config.write_text(original)


def _junk(port: int, packets: list[bytes]) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for packet in packets:
            sock.sendto(packet, ("127.0.0.1", port))


@reactor_test
async def test_ten_thousand_random_and_mutated_datagrams_leave_the_server_answering(
    served: Served, state: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    import random

    rng = random.Random(4)
    nas = radius.testing.NasSimulator(secret=SECRET.encode())
    seeds = [nas.request(f"330682{UNITS[0]}@sxlss", f"Guess-{i}123456")[1] for i in range(16)]
    packets: list[bytes] = []
    for _ in range(10_000):
        packet = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 6)):
            packet[rng.randrange(len(packet))] = rng.randrange(256)
        packets.append(bytes(packet) if rng.random() > 0.2 else rng.randbytes(rng.randrange(300)))
    await deferToThread(_junk, served.port, packets)

    account = f"330682{UNITS[3]}@sxlss"
    out = await radclient(served.port, tmp_path, pap(account, PASSWORD + code(state[1][account])))
    assert "Received Access-Accept" in out, out
    server = served.listener.protocol.server
    assert server.tracked <= 16384 and server.pending_challenges <= 4096
    assert sum(server.drops.values()) > 0
