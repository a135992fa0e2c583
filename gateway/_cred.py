"""Channel login through twisted.cred: credentials, checker and realm.

The checker verifies the factors: the client certificate must be bound to the account
and still valid in the certificate register, the source address must be allowed by
the account's policy, and then :class:`auth.Authenticator` checks password + TOTP
(lockout, throttle and replay guard included) on the runner's login pool.  The realm
turns a verified account into a session: it takes a slot under the concurrent-session
limit and returns a ``logout`` that ends the session record.

Every refusal is a :class:`LoginRefused` carrying an auth reason code, so the adapter
can log it and tell the employer the matching :class:`~gateway._reasons.Reason`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import IRealm
from twisted.internet.defer import inlineCallbacks
from zope.interface import Attribute, Interface, implementer

import auth
import certs
from gateway import _sessions


class IChannelCredentials(Interface):
    account = Attribute("the account name the client claims")
    password = Attribute("the password (never logged)")
    otp = Attribute("the one-time code (never logged)")
    source = Attribute("the peer address as 'host:port'")
    certificate_account = Attribute("the account the client certificate is bound to, or None")
    certificate_serial = Attribute("the client certificate's serial, lowercase hex")


class IChannelSession(Interface):
    """The avatar: a granted channel session."""


@implementer(IChannelCredentials)
@dataclass(frozen=True)
class ChannelCredentials:
    account: str
    password: str = field(repr=False)
    otp: str = field(repr=False)
    source: str
    certificate_account: str | None
    certificate_serial: str


class LoginRefused(UnauthorizedLogin):
    """A refused login; ``reason`` is the auth reason code (``bad-password``, …)."""

    def __init__(self, reason: str, account: str = "", unit_code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.account = account
        self.unit_code = unit_code


@dataclass(frozen=True)
class AccountPolicyView:
    max_sessions: int
    allowed_sources: tuple[str, ...]
    services: tuple[str, ...]
    idle_timeout_seconds: float
    max_lifetime_seconds: float


def source_allowed(source_host: str, allowed: tuple[str, ...]) -> bool:
    if not allowed:
        return True
    try:
        address = ipaddress.ip_address(source_host)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in allowed)


def _certificate_status(conn: Connection, serial: str, account: str) -> str:
    """``ok``, ``cert-revoked`` or ``cert-mismatch`` for the presented certificate."""
    records = certs.list_certificates(conn, subject=account, kind="client")
    for record in records:
        if record.serial == serial:
            return "ok" if record.status == "valid" else "cert-revoked"
    return "cert-mismatch"


@implementer(IChannelSession)
@dataclass(frozen=True)
class ChannelSession:
    session_id: str
    account: str
    unit_code: str
    policy: AccountPolicyView
    started_at: float


@implementer(ICredentialsChecker)
class ChannelChecker:
    """``ICredentialsChecker`` for :class:`IChannelCredentials`."""

    credentialInterfaces = (IChannelCredentials,)

    def __init__(
        self,
        *,
        authenticator: auth.Authenticator,
        db: auth.Runner,
        policy_for: Callable[[str], AccountPolicyView],
        clock: Callable[[], float],
    ) -> None:
        self._authenticator = authenticator
        self._db = db
        self._policy_for = policy_for
        self._clock = clock

    @inlineCallbacks
    def requestAvatarId(self, credentials: ChannelCredentials) -> Any:
        account = credentials.account
        # The certificate binds the login: a unit's certificate logs in only its account.
        if credentials.certificate_account != account:
            raise LoginRefused("cert-mismatch", account)
        status = yield self._db.run(_certificate_status, credentials.certificate_serial, account)
        if status != "ok":
            raise LoginRefused(status, account)
        host = credentials.source.rsplit(":", 1)[0].strip("[]")
        if not source_allowed(host, self._policy_for(account).allowed_sources):
            raise LoginRefused("source-denied", account)
        outcome: auth.AuthOutcome = yield self._db.call(
            self._authenticator.authenticate,
            account,
            credentials.password,
            credentials.otp,
            source=host,
            now=self._clock(),
        )
        if not outcome.ok:
            raise LoginRefused(outcome.reason, account, outcome.unit_code)
        return (account, outcome.unit_code, credentials.certificate_serial, credentials.source)


@implementer(IRealm)
class ChannelRealm:
    """Grants a session under the account's concurrent-session limit."""

    def __init__(
        self,
        *,
        db: auth.Runner,
        policy_for: Callable[[str], AccountPolicyView],
        clock: Callable[[], float],
        node: str,
        end_session: Callable[[str], None],
    ) -> None:
        self._db = db
        self._policy_for = policy_for
        self._clock = clock
        self._node = node
        self._end_session = end_session

    @inlineCallbacks
    def requestAvatar(self, avatarId: Any, mind: Any, *interfaces: Any) -> Any:
        if IChannelSession not in interfaces:
            raise NotImplementedError("only IChannelSession avatars")
        account, unit_code, serial, peer = avatarId
        policy = self._policy_for(account)
        session_id = _sessions.new_session_id()
        now = self._clock()
        started = yield self._db.run(
            _sessions.start_session,
            session_id=session_id,
            account=account,
            unit_code=unit_code,
            peer=peer,
            cert_serial=serial,
            node=self._node,
            now=now,
            max_concurrent=policy.max_sessions,
        )
        if not started:
            raise LoginRefused("too-many-sessions", account, unit_code)
        session = ChannelSession(session_id, account, unit_code, policy, now)
        return (IChannelSession, session, lambda: self._end_session(session_id))
