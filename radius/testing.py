"""Test pieces for the dial-in access server: a NAS that builds real packets with pyrad,
and a whole dial-in testbed on a real database.

:class:`NasSimulator` makes Access-Requests as a NAS does (PAP, Message-Authenticator
on by default, optional State, Proxy-State and Calling-Station-Id) and checks replies
with pyrad's ``VerifyReply(enforce_ma=True)``.

:class:`DialInTestbed` is everything real but the clock (``MemoryReactorClock``) and
the pools (:class:`auth.testing.SynchronousRunner`): the authenticator with argon2id
and TOTP, the audit log, one enrolled account (:data:`TESTBED_ACCOUNT`) and one NAS
(:data:`TESTBED_NAS`).  The unit registry is a set (:attr:`DialInTestbed.approved_units`)
so that nothing here imports the declaration service.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pyrad import packet as pyrad_packet
from sqlalchemy import Connection, Engine
from twisted.internet.task import Clock

import audit
import auth
from radius._access import AccessServer
from radius._accounting import AccountingServer, Usage
from radius._client import AccessReply, build_access_request, read_reply
from radius._login import DialInLogin
from radius._nas import NasClient, NasDirectory, parse_networks
from radius._packets import radius_dictionary
from radius._protocol import RadiusAccountingProtocol, RadiusAuthProtocol
from radius._schema import metadata as radius_metadata
from radius._usage_store import DialInSessions, record_usage

TESTBED_NOW = 1_790_000_000.0
TESTBED_UNIT = "12345678"
TESTBED_ACCOUNT = f"330682{TESTBED_UNIT}@sxlss"
TESTBED_NAS = "bras-test"
TESTBED_NAS_ADDRESS = ("127.0.0.1", 40000)
TESTBED_SECRET = b"testing-shared-secret-0123456789"


@dataclass(frozen=True)
class TestPolicy:
    """An account policy as :class:`radius.DialInPolicy` reads it."""

    __test__ = False  # a value, not a pytest class

    allowed_sources: tuple[str, ...] = ()
    idle_timeout_seconds: float = 1800.0
    max_lifetime_seconds: float = 43200.0
    max_sessions: int = 2


@dataclass
class NasSimulator:
    """A NAS that speaks to ssgate: builds requests, reads replies."""

    secret: bytes = field(default=TESTBED_SECRET, repr=False)
    message_authenticator: bool = True

    def request(
        self,
        user_name: str,
        password: str,
        *,
        state: bytes | None = None,
        calling_station: str | None = None,
        proxy_state: Sequence[bytes] = (),
        identifier: int | None = None,
        extra: Sequence[tuple[int, bytes]] = (),
    ) -> tuple[Any, bytes]:
        """(the pyrad request, its bytes)."""
        request, _ = build_access_request(
            secret=self.secret,
            user_name=user_name,
            password=password,
            state=state,
            calling_station=calling_station,
            identifier=identifier,
            message_authenticator=self.message_authenticator,
        )
        for value in proxy_state:
            request.AddAttribute("Proxy-State", value)
        for code, raw in extra:
            request.setdefault(code, []).append(raw)
        return request, request.RequestPacket()

    def chap_request(self, user_name: str) -> tuple[Any, bytes]:
        """An Access-Request with CHAP-Password instead of User-Password."""
        request = pyrad_packet.AuthPacket(
            code=pyrad_packet.AccessRequest,
            id=7,
            secret=self.secret,
            dict=radius_dictionary(),
            message_authenticator=True,
        )
        request.authenticator = request.CreateAuthenticator()
        request.AddAttribute("User-Name", user_name)
        request.AddAttribute("CHAP-Password", b"\x01" + secrets.token_bytes(16))
        return request, request.RequestPacket()

    def accounting(
        self,
        status: int,
        *,
        user_name: str = TESTBED_ACCOUNT,
        session_class: str | None = None,
        acct_session_id: str = "acct-1",
        bytes_in: int = 0,
        bytes_out: int = 0,
        terminate_cause: int | None = None,
        framed_ip: str | None = "10.64.0.7",
    ) -> tuple[Any, bytes]:
        """An Accounting-Request (1 Start, 2 Stop, 3 Interim, 7 On, 8 Off)."""
        request = pyrad_packet.AcctPacket(
            id=secrets.randbelow(256), secret=self.secret, dict=radius_dictionary()
        )
        request.AddAttribute("Acct-Status-Type", status)
        if status in (1, 2, 3):
            request.AddAttribute("User-Name", user_name)
            request.AddAttribute("Acct-Session-Id", acct_session_id)
            request.AddAttribute("NAS-Port", 17)
            request.AddAttribute("Acct-Input-Octets", bytes_in % 2**32)
            request.AddAttribute("Acct-Output-Octets", bytes_out % 2**32)
            if bytes_in >= 2**32:
                request.AddAttribute("Acct-Input-Gigawords", bytes_in // 2**32)
            if framed_ip is not None:
                request.AddAttribute("Framed-IP-Address", framed_ip)
        if session_class is not None:
            request.AddAttribute("Class", session_class.encode())
        if terminate_cause is not None:
            request.AddAttribute("Acct-Terminate-Cause", terminate_cause)
        return request, request.RequestPacket()

    @staticmethod
    def read(request: Any, data: bytes) -> AccessReply | None:
        return read_reply(request, data)

    def decode(self, data: bytes) -> Any:
        """A reply decoded without checks, to look at its attributes."""
        return pyrad_packet.AuthPacket(secret=self.secret, dict=radius_dictionary(), packet=data)


class DatagramRecorder:
    """A UDP transport that keeps what is written (``IUDPTransport.write``)."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []

    def write(self, packet: bytes, addr: Any = None) -> None:
        self.sent.append((packet, addr))

    def getHost(self) -> Any:
        return None


@dataclass
class MemorySession:
    account: str
    unit_code: str
    peer: str
    node: str
    started_at: float
    last_seen_at: float
    bytes_in: int = 0
    bytes_out: int = 0
    ended_at: float | None = None
    end_reason: str | None = None


class MemorySessions:
    """:class:`radius.DialInSessions` in a dict (the real one is the gateway's table)."""

    def __init__(self) -> None:
        self.sessions: dict[str, MemorySession] = {}
        self.kills: dict[str, str] = {}  # session id -> reason, as an officer's kill sets

    def kill_reason(self, conn: Connection, session_id: str) -> str | None:
        return self.kills.get(session_id)

    def start(
        self,
        conn: Connection,
        *,
        session_id: str,
        account: str,
        unit_code: str,
        peer: str,
        node: str,
        now: float,
    ) -> None:
        self.sessions[session_id] = MemorySession(account, unit_code, peer, node, now, now)

    def update(
        self, conn: Connection, session_id: str, *, bytes_in: int, bytes_out: int, now: float
    ) -> None:
        s = self.sessions[session_id]
        if s.ended_at is None:
            s.bytes_in, s.bytes_out, s.last_seen_at = bytes_in, bytes_out, now

    def end(
        self,
        conn: Connection,
        session_id: str,
        *,
        reason: str,
        bytes_in: int,
        bytes_out: int,
        now: float,
    ) -> bool:
        s = self.sessions[session_id]
        if s.ended_at is not None:
            return False
        s.bytes_in, s.bytes_out, s.ended_at, s.end_reason = bytes_in, bytes_out, now, reason
        return True


_sessions_check: type[DialInSessions] = MemorySessions  # satisfies the Protocol


class DialInTestbed:
    """The dial-in access server on a real database with one enrolled account."""

    def __init__(
        self,
        engine: Engine,
        *,
        policy: TestPolicy | None = None,
        require_message_authenticator: bool = True,
        lockout: auth.LockoutPolicy | None = None,
        two_transactions: bool = False,
    ) -> None:
        for metadata in (auth.metadata, audit.metadata, radius_metadata):
            metadata.create_all(engine)
        from auth.testing import SynchronousRunner

        self.engine = engine
        self.clock = Clock()
        self.clock.advance(TESTBED_NOW)
        self.runner = SynchronousRunner(engine)
        self.policy = policy or TestPolicy()
        self.approved_units = {TESTBED_UNIT}
        self.password = auth.generate_password()
        self.totp_secret = auth.new_totp_secret()
        hasher = auth.PasswordHasher(auth.Argon2Params())
        box = auth.SecretBox(auth.SecretBox.generate_key())
        name = auth.AccountName(region="330682", unit_code=TESTBED_UNIT, realm="sxlss")
        with engine.begin() as conn:
            auth.create_account(
                conn,
                name,
                password_hash=hasher.hash(self.password),
                totp_secret_sealed=box.seal(
                    self.totp_secret, context=auth.totp_secret_context(TESTBED_ACCOUNT)
                ),
                now=TESTBED_NOW,
            )
        #: The one authenticator of both "channels": the gateway's checker calls this
        #: same method with the same rows, so tests use it as the channel's login.
        self.authenticator = auth.Authenticator(
            engine, hasher, box, lockout or auth.LockoutPolicy(source_max_failures=1000)
        )
        self.nas_client = NasClient(
            name=TESTBED_NAS,
            networks=parse_networks(["127.0.0.0/8"]),
            secret=TESTBED_SECRET,
            require_message_authenticator=require_message_authenticator,
        )
        self.nas_directory = NasDirectory([self.nas_client])
        self.server = AccessServer(self.nas_directory, random=secrets.token_bytes)
        # two_transactions: as ``ssgate serve`` runs it (the reservation and the
        # settlement on the database pool, only the hash on the login pool); else the
        # whole authentication as one login-pool call.
        self.login = DialInLogin(
            authenticate=None if two_transactions else self.authenticator.authenticate,
            authenticator=self.authenticator if two_transactions else None,
            runner=self.runner,
            policy_for=lambda account: self.policy,
            unit_admitted=self._unit_admitted,
            open_sessions=self._open_sessions,
            clock=self.clock,
        )
        self.protocol = RadiusAuthProtocol(self.server, self.login, self.clock)
        self.transport = DatagramRecorder()
        self.protocol.makeConnection(self.transport)  # type: ignore[arg-type]
        self.nas = NasSimulator()
        self.sessions = MemorySessions()
        self.accounting_server = AccountingServer(self.nas_directory)
        self.accounting = RadiusAccountingProtocol(self.accounting_server, self._store, self.clock)
        self.accounting_transport = DatagramRecorder()
        self.accounting.makeConnection(self.accounting_transport)  # type: ignore[arg-type]

    def _store(self, usage: Usage) -> Any:
        return self.runner.run(
            record_usage, usage, sessions=self.sessions, now=self.clock.seconds()
        )

    def report(self, data: bytes, source: tuple[str, int] = TESTBED_NAS_ADDRESS) -> list[bytes]:
        """Deliver one Accounting-Request; the datagrams sent back."""
        before = len(self.accounting_transport.sent)
        self.accounting.datagramReceived(data, source)
        return [packet for packet, _ in self.accounting_transport.sent[before:]]

    def _unit_admitted(self, conn: Connection, unit_code: str) -> bool:
        return unit_code in self.approved_units

    def _open_sessions(self, conn: Connection, account: str, now: float) -> int:
        return sum(
            1
            for s in self.sessions.sessions.values()
            if s.account == account and s.ended_at is None
        )

    def otp(self, offset_steps: int = 0) -> str:
        return auth.current_code(self.totp_secret, self.clock.seconds() + 30 * offset_steps)

    def exchange(self, data: bytes, source: tuple[str, int] = TESTBED_NAS_ADDRESS) -> list[bytes]:
        """Deliver one datagram; the datagrams sent back."""
        before = len(self.transport.sent)
        self.protocol.datagramReceived(data, source)
        return [packet for packet, _ in self.transport.sent[before:]]

    def ask(self, password: str, **kwargs: Any) -> AccessReply | None:
        """One Access-Request for the testbed account; its verified reply, if any."""
        request, data = self.nas.request(
            kwargs.pop("user_name", TESTBED_ACCOUNT), password, **kwargs
        )
        replies = self.exchange(data)
        assert len(replies) <= 1
        return read_reply(request, replies[0]) if replies else None

    def channel_login(self, password: str, otp: str) -> auth.AuthOutcome:
        """A login as the channel makes it (``gateway``'s checker calls exactly this)."""
        return self.authenticator.authenticate(
            TESTBED_ACCOUNT, password, otp, source="192.0.2.10", now=self.clock.seconds()
        )

    def logins(self) -> list[audit.AuditRecord]:
        return self.events("login")

    def events(self, *actions: str) -> list[audit.AuditRecord]:
        with self.engine.begin() as conn:
            return audit.query(conn, actions=list(actions))
