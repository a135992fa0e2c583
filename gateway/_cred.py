"""Channel login through twisted.cred: credentials, checker and realm.

The checker verifies the factors: the client certificate must be bound to the account
and still valid in the certificate register, the source address must be allowed by
the account's policy, and then :class:`auth.Authenticator` checks password + TOTP
(lockout, throttle and replay guard included) on the runner's login pool.  The realm
turns a verified account into a session: it takes a slot under the concurrent-session
limit and returns a ``logout`` that ends the session record.

Every refusal is a :class:`LoginRefused` carrying an auth reason code, so the adapter
can log it and tell the employer the matching :class:`~gateway._reasons.Reason`; a
``locked`` refusal also carries how long the lock lasts (AUTH_FAIL's ``retry_after``).
:func:`factor_outcomes` spells out, for the officer's log only, what each factor's
check said — the employer is never told.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import IRealm
from twisted.internet.defer import inlineCallbacks
from zope.interface import Attribute, Interface, implementer

import audit
import auth
import certs
from gateway import _sessions
from gateway._frames import RETRY_AFTER_CALL_CARRIER, RETRY_AFTER_UNKNOWN


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
    """A refused login; ``reason`` is the auth reason code (``bad-password``, …).

    ``retry_after``: seconds until a ``locked`` account may try again,
    ``RETRY_AFTER_CALL_CARRIER`` at its hard cap, else ``RETRY_AFTER_UNKNOWN`` (0)."""

    def __init__(
        self,
        reason: str,
        account: str = "",
        unit_code: str | None = None,
        *,
        retry_after: int = RETRY_AFTER_UNKNOWN,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.account = account
        self.unit_code = unit_code
        self.retry_after = retry_after


def lock_wait(state: auth.CredentialState | None, now: float) -> int:
    """AUTH_FAIL's ``retry_after`` for a locked principal in *state* at *now*."""
    if state is None:
        return RETRY_AFTER_UNKNOWN
    if state.hard_locked:
        return RETRY_AFTER_CALL_CARRIER
    if state.locked_until_at is not None and state.locked_until_at > now:
        return min(math.ceil(state.locked_until_at - now), RETRY_AFTER_CALL_CARRIER - 1)
    return RETRY_AFTER_UNKNOWN


def throttle_wait(seconds: float | None) -> int:
    """AUTH_FAIL's ``retry_after`` for a throttled source *seconds* before its window ends."""
    if seconds is None or seconds <= 0:
        return RETRY_AFTER_UNKNOWN
    return min(math.ceil(seconds), RETRY_AFTER_CALL_CARRIER - 1)


def _source_wait(
    conn: Connection, source: str, now: float, policy: auth.LockoutPolicy
) -> float | None:
    return auth.source_throttle_wait(conn, source, now=now, policy=policy)


# What each login factor's check said, by the login's outcome code, in the order the
# checker looks (certificate, then source and account state, then password, then
# code).  "not-checked": the login stopped before that factor; a wrong password's
# code is "not-checked" too, because the authenticator reports one reason only.
FACTORS = ("certificate", "password", "code")
_FACTOR_OUTCOMES: Mapping[str, tuple[str, str, str]] = {
    "ok": ("ok", "ok", "ok"),
    "too-many-sessions": ("ok", "ok", "ok"),  # every factor passed; the limit refused
    "cert-mismatch": ("wrong", "not-checked", "not-checked"),
    "cert-revoked": ("revoked", "not-checked", "not-checked"),
    "empty-password": ("ok", "empty", "not-checked"),
    "bad-password": ("ok", "wrong", "not-checked"),
    "bad-otp": ("ok", "ok", "wrong"),
    "otp-reused": ("ok", "ok", "reused"),
    "internal-error": ("not-checked", "not-checked", "not-checked"),
}


def factor_outcomes(code: str) -> dict[str, str]:
    """``{"factor_certificate": …, "factor_password": …, "factor_code": …}`` for a
    login that ended with auth outcome *code* (details of the ``login`` audit event)."""
    outcomes = _FACTOR_OUTCOMES.get(code, ("ok", "not-checked", "not-checked"))
    return {f"factor_{name}": value for name, value in zip(FACTORS, outcomes, strict=True)}


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
    try:
        record = certs.get_certificate(conn, serial)
    except certs.CertificateError:  # not a serial at all
        return "cert-mismatch"
    if record is None or (record.serial, record.subject, record.kind) != (
        serial,
        account,
        "client",
    ):
        return "cert-mismatch"
    return "ok" if record.status == "valid" else "cert-revoked"


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
        """Two transactions on the database pool around the hash on the login pool:
        the certificate, the source policy and the reserved attempt
        (:meth:`auth.Authenticator.reserve`) in the first; the password and code
        (:meth:`~auth.Authenticator.check`) on the login pool, which waits for no
        database; the time-step or the failure (:meth:`~auth.Authenticator.settle`) in
        the second."""
        account = credentials.account
        # The certificate binds the login: a unit's certificate logs in only its account.
        if credentials.certificate_account != account:
            raise LoginRefused("cert-mismatch", account)
        host = credentials.source.rsplit(":", 1)[0].strip("[]")
        allowed = self._policy_for(account).allowed_sources
        now = self._clock()
        first: _FirstStep = yield self._db.run(
            self._reserve,
            credentials.certificate_serial,
            account,
            credentials.password,
            host=host,
            allowed=allowed,
            now=now,
        )
        if first.refusal is not None:
            raise LoginRefused(first.refusal, account)
        assert first.reserved is not None
        checked: auth.Checked = yield self._db.call(
            self._authenticator.check,
            first.reserved,
            credentials.password,
            credentials.otp,
            now=now,
        )
        outcome = checked.settled
        if outcome is None:
            outcome = yield self._db.run(self._authenticator.settle, checked, now=self._clock())
        assert outcome is not None
        if not outcome.ok:
            raise LoginRefused(
                outcome.reason, account, outcome.unit_code, retry_after=first.retry_after
            )
        return (account, outcome.unit_code, credentials.certificate_serial, credentials.source)

    def _reserve(
        self,
        conn: Connection,
        serial: str,
        account: str,
        password: str,
        *,
        host: str,
        allowed: tuple[str, ...],
        now: float,
    ) -> _FirstStep:
        """The certificate's status, the source policy, then the authenticator's
        reservation, in the order the login has always checked them; for a ``locked``
        or ``throttled`` refusal, how long it lasts (AUTH_FAIL's ``retry_after``)."""
        status = _certificate_status(conn, serial, account)
        if status != "ok":
            return _FirstStep(status)
        if not source_allowed(host, allowed):
            return _FirstStep("source-denied")
        reserved = self._authenticator.reserve(conn, account, password, source=host, now=now)
        retry_after = RETRY_AFTER_UNKNOWN
        if reserved.refusal == "locked":
            retry_after = lock_wait(auth.get_credential_state(conn, account), now)
        elif reserved.refusal == "throttled":
            retry_after = throttle_wait(_source_wait(conn, host, now, self._authenticator.policy))
        return _FirstStep(None, reserved, retry_after)


@dataclass(frozen=True)
class _FirstStep:
    """The first transaction's answer: a refusal of the certificate or the source, or
    the authenticator's reservation (which may itself be a refusal)."""

    refusal: str | None
    reserved: auth.Reserved | None = None
    retry_after: int = RETRY_AFTER_UNKNOWN


@implementer(IRealm)
class ChannelRealm:
    """Grants a session under the account's concurrent-session limit.

    The *mind* of the login is its ``login`` :class:`audit.AuditEvent` as the tunnel
    saw it (peer, certificate, TLS facts, factors): the realm writes it, completed with
    the session id and unit, in the transaction that records the session.
    """

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
        # The login's audit event commits with the session row, before the client can
        # be told it is logged in: neither exists without the other (issue 12).
        if isinstance(mind, audit.AuditEvent):
            event = mind
        else:
            event = audit.AuditEvent(
                at=now, actor=f"channel:{account}", action="login", subject=account, outcome="ok"
            )
        started = yield self._db.run(
            _sessions.start_session_recorded,
            session_id=session_id,
            account=account,
            unit_code=unit_code,
            peer=peer,
            cert_serial=serial,
            node=self._node,
            now=now,
            max_concurrent=policy.max_sessions,
            event=event,
        )
        if not started:
            raise LoginRefused("too-many-sessions", account, unit_code)
        session = ChannelSession(session_id, account, unit_code, policy, now)
        return (IChannelSession, session, lambda: self._end_session(session_id))
