"""A dial-in login decided with the channel's own checks, and audited.

:class:`DialInLogin` takes an :class:`~radius._access.Attempt` and returns a
:class:`Verdict`.  The checks are the channel's, through the same code and the same
rows: the account's source policy (``allowed_sources``, applied to the
``Calling-Station-Id`` when the NAS sends one), then :meth:`auth.Authenticator.
authenticate` on the runner's login pool (account active, lockout and per-source
throttle, password, TOTP and its replay guard — one ``last used step`` per account,
so a code used on the channel is refused here and the reverse), then the unit's
approval for online service in the database pool, then ``max_sessions`` over the
account's open sessions and its Access-Accepts still waiting for their accounting
Start (:func:`~radius._usage_store.awaiting_start`).

Every verdict is one ``login`` audit event, as the channel writes, so the officers'
pages, the brute-force and spraying rules and ``ssgate audit logins`` see dial-in
logins with channel ones: actor ``radius:<nas>`` (the NAS is who asked us), subject the
account, the reason code, the session id on success (the ``Class`` of the
Access-Accept), and in details the NAS, its address, the Calling-Station-Id and
``source`` (the calling station when it is an address, for the alert rules).
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Connection
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

import audit
import auth
from radius._access import Attempt
from radius._usage_store import awaiting_start

SOURCE_DENIED = "source-denied"
UNIT_UNAPPROVED = "unit-unapproved"
TOO_MANY_SESSIONS = "too-many-sessions"
_SOURCE_LENGTH = 64  # the key column of auth's per-source failure counts


class DialInPolicy(Protocol):
    """What a dial-in login reads of the account's policy (``ssgate._config.AccountPolicy``
    and ``gateway.AccountPolicyView`` both fit)."""

    @property
    def allowed_sources(self) -> tuple[str, ...]: ...

    @property
    def idle_timeout_seconds(self) -> float: ...

    @property
    def max_lifetime_seconds(self) -> float: ...

    @property
    def max_sessions(self) -> int: ...


Authenticate = Callable[..., auth.AuthOutcome]


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str
    session_id: str = ""
    unit_code: str = ""
    session_timeout: int = 0
    idle_timeout: int = 0


def source_allowed(calling_station: str | None, allowed: tuple[str, ...]) -> bool:
    """The channel's rule on the Calling-Station-Id: anything when the policy names no
    networks or the NAS sends no Calling-Station-Id; else it must be an address in one
    of them (a phone number or MAC address cannot prove it is)."""
    if not allowed or calling_station is None:
        return True
    try:
        address = ipaddress.ip_address(calling_station)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in allowed)


class DialInLogin:
    """Decides dial-in logins (see the module docstring).

    With *authenticator* (what ``ssgate serve`` passes) a login is two transactions on
    the database pool around the hash on the login pool: the reservation
    (:meth:`auth.Authenticator.reserve`), then :meth:`~auth.Authenticator.check` on
    the login pool (argon2id and the code; it waits for no database), then one
    transaction that settles the attempt, checks the unit's approval and
    ``max_sessions`` and appends the ``login`` event.  Every outcome is audited in the
    transaction that decides it: if that transaction fails nothing of it stays (the
    code is not used, no Accept is sent, the NAS retries), so no dial-in session is
    ever granted without its event.

    With *authenticate* (any blocking ``authenticate(account, password, otp, source=,
    now=)``) the whole authentication is one call on the login pool, then the unit,
    the sessions in use and the event each in a transaction of their own; a failure to
    write the event is logged and the answer still sent.
    """

    log = Logger()

    def __init__(
        self,
        *,
        authenticate: Authenticate | None = None,
        authenticator: auth.Authenticator | None = None,
        runner: auth.Runner,
        policy_for: Callable[[str], DialInPolicy],
        unit_admitted: Callable[[Connection, str], bool],
        open_sessions: Callable[[Connection, str, float], int] | None = None,
        clock: IReactorTime,
        new_session_id: Callable[[], str] = lambda: secrets.token_hex(16),
    ) -> None:
        if (authenticate is None) == (authenticator is None):
            raise TypeError("DialInLogin needs exactly one of authenticate and authenticator")
        self._authenticate = authenticate
        self._authenticator = authenticator
        self._runner = runner
        self._policy_for = policy_for
        self._unit_admitted = unit_admitted
        self._open_sessions = open_sessions
        self._clock = clock
        self._new_session_id = new_session_id

    def decide(self, attempt: Attempt) -> Deferred[Verdict]:
        if self._authenticator is not None:
            return Deferred.fromCoroutine(self._decide_in_two(attempt, self._authenticator))
        return Deferred.fromCoroutine(self._decide(attempt))

    # -- two transactions around the hash (with an authenticator) -------------------------

    async def _decide_in_two(self, attempt: Attempt, authenticator: auth.Authenticator) -> Verdict:
        early = self._refused_early(attempt)
        if early is not None:
            await self._record(attempt, early)
            return early
        now = self._clock.seconds()
        reserved: auth.Reserved = await self._runner.run(
            authenticator.reserve,
            attempt.account,
            attempt.password,
            source=throttle_source(attempt),
            now=now,
        )
        checked: auth.Checked = await self._runner.call(
            authenticator.check, reserved, attempt.password, attempt.otp, now=now
        )
        verdict: Verdict = await self._runner.run(
            self._settled, attempt, checked, authenticator, now=self._clock.seconds()
        )
        return verdict

    def _settled(
        self,
        conn: Connection,
        attempt: Attempt,
        checked: auth.Checked,
        authenticator: auth.Authenticator,
        *,
        now: float,
    ) -> Verdict:
        """The second transaction: the attempt settled, the unit, ``max_sessions``, and
        the ``login`` event of whatever came of it."""
        outcome = authenticator.settle(conn, checked, now=now)
        verdict = self._granted(conn, attempt, outcome, now)
        audit.append(conn, login_event(attempt, verdict, at=now))
        return verdict

    def _granted(
        self, conn: Connection, attempt: Attempt, outcome: auth.AuthOutcome, now: float
    ) -> Verdict:
        unit = outcome.unit_code or ""
        if not outcome.ok:
            return Verdict(False, outcome.reason, unit_code=unit)
        if not self._unit_admitted(conn, unit):
            return Verdict(False, UNIT_UNAPPROVED, unit_code=unit)
        policy = self._policy_for(attempt.account)
        in_use = (
            0 if self._open_sessions is None else self._sessions_in_use(conn, attempt.account, now)
        )
        if self._open_sessions is not None and in_use >= policy.max_sessions:
            return Verdict(False, TOO_MANY_SESSIONS, unit_code=unit)
        return self._accepted(unit, policy)

    # -- one call on the login pool (with an authenticate callable) -----------------------

    async def _decide(self, attempt: Attempt) -> Verdict:
        verdict = await self._check(attempt)
        await self._record(attempt, verdict)
        return verdict

    def _refused_early(self, attempt: Attempt) -> Verdict | None:
        """A refusal before any account work: the request's own, or the source policy."""
        if attempt.refusal is not None:
            return Verdict(False, attempt.refusal)
        policy = self._policy_for(attempt.account)
        if not source_allowed(attempt.calling_station, policy.allowed_sources):
            return Verdict(False, SOURCE_DENIED)
        return None

    async def _check(self, attempt: Attempt) -> Verdict:
        early = self._refused_early(attempt)
        if early is not None:
            return early
        assert self._authenticate is not None
        policy = self._policy_for(attempt.account)
        outcome: auth.AuthOutcome = await self._runner.call(
            self._authenticate,
            attempt.account,
            attempt.password,
            attempt.otp,
            source=throttle_source(attempt),
            now=self._clock.seconds(),
        )
        unit = outcome.unit_code or ""
        if not outcome.ok:
            return Verdict(False, outcome.reason, unit_code=unit)
        admitted: bool = await self._runner.run(self._unit_admitted, unit)
        if not admitted:
            return Verdict(False, UNIT_UNAPPROVED, unit_code=unit)
        if self._open_sessions is not None:
            count: int = await self._runner.run(
                self._sessions_in_use, attempt.account, self._clock.seconds()
            )
            if count >= policy.max_sessions:
                return Verdict(False, TOO_MANY_SESSIONS, unit_code=unit)
        return self._accepted(unit, policy)

    def _accepted(self, unit: str, policy: DialInPolicy) -> Verdict:
        return Verdict(
            True,
            "ok",
            session_id=self._new_session_id(),
            unit_code=unit,
            session_timeout=int(policy.max_lifetime_seconds),
            idle_timeout=int(policy.idle_timeout_seconds),
        )

    def _sessions_in_use(self, conn: Connection, account: str, now: float) -> int:
        """The account's open sessions (channel and dial-in, from the registry) and its
        Access-Accepts still waiting for their accounting Start, in one transaction."""
        assert self._open_sessions is not None
        return self._open_sessions(conn, account, now) + awaiting_start(conn, account, now=now)

    async def _record(self, attempt: Attempt, verdict: Verdict) -> None:
        try:
            event = login_event(attempt, verdict, at=self._clock.seconds())
            await self._runner.run(audit.append, event)
        except Exception:
            self.log.failure(
                "cannot record the dial-in login of {account} from NAS {nas}",
                account=attempt.account,
                nas=attempt.nas.name,
            )


def throttle_source(attempt: Attempt) -> str:
    """Whom the per-source throttle counts against: the calling station when the NAS
    names it, else the NAS itself (all its callers share one budget then)."""
    if attempt.calling_station:
        return attempt.calling_station[:_SOURCE_LENGTH]
    return attempt.nas.actor[:_SOURCE_LENGTH]


def login_event(attempt: Attempt, verdict: Verdict, *, at: float) -> audit.AuditEvent:
    """The ``login`` audit event of a dial-in verdict (see the module docstring)."""
    subject = attempt.account.replace("\x00", "\\x00") or "-"
    calling = attempt.calling_station or ""
    details: dict[str, audit.DetailValue] = {
        "via": "radius",
        "nas": attempt.nas.name,
        "nas_address": f"{attempt.source[0]}:{attempt.source[1]}",
        "calling_station": calling,
        "source": calling if _is_address(calling) else "",
        "challenged": attempt.challenged,
    }
    if attempt.nas_port is not None:
        details["nas_port"] = attempt.nas_port
    return audit.AuditEvent(
        at=at,
        actor=attempt.nas.actor[:255],
        action="login",
        subject=subject[:255],
        outcome="ok" if verdict.ok else "refused",
        reason="" if verdict.ok else verdict.reason,
        unit=verdict.unit_code,
        session_id=verdict.session_id,
        details=details,
    )


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
