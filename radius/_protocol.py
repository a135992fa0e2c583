"""The UDP adapters around the sans-IO pieces, and the disconnect round.

* :class:`RadiusAuthProtocol`: datagrams to :class:`~radius._access.AccessServer`,
  evaluations to :class:`~radius._login.DialInLogin`, replies back;
* :class:`RadiusAccountingProtocol`: reports to
  :class:`~radius._accounting.AccountingServer`, stored, then acknowledged;
* :class:`DisconnectSender` and :class:`DisconnectPoller`: RFC 5176 requests to NAS.

Nothing here decides anything: the adapters read the clock, write what the servers
say, and log drops through :class:`~radius._reports.DropReports` (once per source per
minute).  A failed evaluation or store (the database is down…) sends nothing, so that
the NAS retries or fails over to another server, and is logged as a bug would be.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

import auth
from radius._access import QUIET_DROPS, AccessServer, Attempt, Drop, Evaluate, Send
from radius._accounting import AccountingServer, Record, Usage
from radius._disconnect import disconnect_outcome, disconnect_request
from radius._login import DialInLogin
from radius._nas import NasClient, NasDirectory
from radius._reports import DropReports
from radius._usage_store import (
    DialInSessions,
    DisconnectTarget,
    claim_disconnects,
    finish_disconnect,
)


class RadiusAuthProtocol(DatagramProtocol):
    log = Logger()

    def __init__(
        self,
        server: AccessServer,
        login: DialInLogin,
        clock: IReactorTime,
        *,
        reports: DropReports | None = None,
    ) -> None:
        self.server = server
        self._login = login
        self._clock = clock
        self._reports = reports or DropReports()
        self.evaluating: set[Deferred[None]] = set()

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        host, port = addr[0], addr[1]
        now = self._clock.seconds()
        step = self.server.receive(datagram, (host, port), now)
        if isinstance(step, Drop):
            self._dropped(step, now)
        elif isinstance(step, Send):
            self._send(step.data, addr)
        elif isinstance(step, Evaluate):
            d = Deferred.fromCoroutine(self._evaluate(step.attempt, addr))
            self.evaluating.add(d)
            d.addBoth(self._evaluated, d)

    def _evaluated(self, result: object, d: Deferred[None]) -> None:
        self.evaluating.discard(d)

    async def _evaluate(self, attempt: Attempt, addr: Any) -> None:
        try:
            verdict = await self._login.decide(attempt)
        except Exception:
            self.server.abandon(attempt)
            self.log.failure(
                "dial-in login of {account} from NAS {nas} failed; no answer sent",
                account=attempt.account,
                nas=attempt.nas.name,
            )
            return
        if verdict.ok:
            reply = self.server.accept(
                attempt,
                session_id=verdict.session_id,
                session_timeout=verdict.session_timeout,
                idle_timeout=verdict.idle_timeout,
            )
        else:
            reply = self.server.reject(attempt)
        self._send(reply, addr)

    def _send(self, data: bytes, addr: Any) -> None:
        if self.transport is not None:
            self.transport.write(data, addr)

    def _dropped(self, drop: Drop, now: float) -> None:
        if drop.reason in QUIET_DROPS:
            return
        report = self._reports.note(drop.host, drop.reason, now, drop.nas)
        if report is not None:
            self.log.warn(
                "RADIUS: dropped {count} packet(s) from {host} (NAS {nas}): {reasons}",
                count=report.count,
                host=report.host,
                nas=report.nas or "unknown",
                reasons=", ".join(f"{r} ×{n}" for r, n in sorted(report.reasons.items())),
            )


class RadiusAccountingProtocol(DatagramProtocol):
    """Accounting-Requests to :class:`~radius._accounting.AccountingServer`; each
    report stored by *store* (a transaction on the database pool) before the
    Accounting-Response goes back."""

    log = Logger()

    def __init__(
        self,
        server: AccountingServer,
        store: Callable[[Usage], Deferred[str]],
        clock: IReactorTime,
        *,
        reports: DropReports | None = None,
    ) -> None:
        self.server = server
        self._store = store
        self._clock = clock
        self._reports = reports or DropReports()
        self.storing: set[Deferred[None]] = set()

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        now = self._clock.seconds()
        step = self.server.receive(datagram, (addr[0], addr[1]), now)
        if isinstance(step, Drop):
            if step.reason in QUIET_DROPS:
                return
            report = self._reports.note(step.host, step.reason, now, step.nas)
            if report is not None:
                self.log.warn(
                    "RADIUS accounting: dropped {count} packet(s) from {host} (NAS {nas}): "
                    "{reasons}",
                    count=report.count,
                    host=report.host,
                    nas=report.nas or "unknown",
                    reasons=", ".join(f"{r} ×{n}" for r, n in sorted(report.reasons.items())),
                )
        elif isinstance(step, Send):
            self._send(step.data, addr)
        elif isinstance(step, Record):
            d = Deferred.fromCoroutine(self._record(step.usage, addr))
            self.storing.add(d)
            d.addBoth(lambda _: self.storing.discard(d))

    async def _record(self, usage: Usage, addr: Any) -> None:
        try:
            outcome = await self._store(usage)
        except Exception:
            self.server.abandon(usage)
            self.log.failure(
                "accounting {status} from NAS {nas} not stored; no response sent",
                status=usage.status,
                nas=usage.nas.name,
            )
            return
        if outcome not in ("started", "updated", "ended", "nas-restarted"):
            self.log.warn(
                "accounting {status} for {account} from NAS {nas}: {outcome}",
                status=usage.status,
                account=usage.account,
                nas=usage.nas.name,
                outcome=outcome,
            )
        self._send(self.server.acknowledge(usage), addr)

    def _send(self, data: bytes, addr: Any) -> None:
        if self.transport is not None:
            self.transport.write(data, addr)


@dataclass
class _Outstanding:
    request: Any = field(repr=False)
    data: bytes = field(repr=False)
    addr: tuple[str, int]
    done: Deferred[str]
    tries_left: int
    timer: IDelayedCall | None = None


class DisconnectSender(DatagramProtocol):
    """Sends Disconnect-Requests (RFC 5176) from one UDP port, resends each up to
    *tries* times *timeout* seconds apart, and matches answers by identifier and
    address; each :meth:`send` fires with ``ack``, ``nak:<cause>``, ``no-answer`` or
    ``busy`` (256 already outstanding)."""

    def __init__(self, clock: IReactorTime, *, tries: int = 3, timeout: float = 2.0) -> None:
        self._clock = clock
        self._tries = tries
        self._timeout = timeout
        self._outstanding: dict[int, _Outstanding] = {}
        self._next = 0

    def send(self, target: DisconnectTarget, nas: NasClient) -> Deferred[str]:
        free = [i for i in range(256) if (self._next + i) % 256 not in self._outstanding]
        if not free or self.transport is None:
            return succeed("busy")
        identifier = (self._next + free[0]) % 256
        self._next = identifier + 1
        request, data = disconnect_request(
            secret=nas.secret,
            identifier=identifier,
            account=target.account,
            acct_session_id=target.acct_session_id,
            framed_ip=target.framed_ip,
            now=self._clock.seconds(),
        )
        done: Deferred[str] = Deferred()
        self._outstanding[identifier] = _Outstanding(
            request, data, (target.nas_host, nas.disconnect_port), done, self._tries
        )
        self._transmit(identifier)
        return done

    def _transmit(self, identifier: int) -> None:
        out = self._outstanding[identifier]
        out.tries_left -= 1
        assert self.transport is not None
        self.transport.write(out.data, out.addr)
        out.timer = self._clock.callLater(self._timeout, self._expired, identifier)

    def _expired(self, identifier: int) -> None:
        out = self._outstanding[identifier]
        if out.tries_left > 0:
            self._transmit(identifier)
            return
        del self._outstanding[identifier]
        out.done.callback("no-answer")

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        if len(datagram) < 2:
            return
        out = self._outstanding.get(datagram[1])
        if out is None or addr[0] != out.addr[0]:
            return
        outcome = disconnect_outcome(out.request, datagram)
        if outcome is None:
            return  # not an authentic answer: keep waiting
        del self._outstanding[datagram[1]]
        if out.timer is not None and out.timer.active():
            out.timer.cancel()
        out.done.callback(outcome)


class DisconnectPoller:
    """Each :meth:`tick` claims the dial-in sessions the registry says must end (an
    officer's kill, a suspended or cancelled account) and sends each NAS its
    Disconnect-Request, then records the answer (:func:`finish_disconnect`)."""

    log = Logger()

    def __init__(
        self,
        runner: auth.Runner,
        sessions: DialInSessions,
        sender: DisconnectSender,
        nas: NasDirectory,
        clock: IReactorTime,
    ) -> None:
        self._runner = runner
        self._sessions = sessions
        self._sender = sender
        self._nas = nas
        self._clock = clock

    def tick(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._tick())

    async def _tick(self) -> None:
        try:
            targets: list[DisconnectTarget] = await self._runner.run(
                claim_disconnects, sessions=self._sessions, now=self._clock.seconds()
            )
            await gatherResults([self._one(t) for t in targets], consumeErrors=True)
        except Exception:
            self.log.failure("dial-in disconnects failed this round")

    def _one(self, target: DisconnectTarget) -> Deferred[None]:
        return Deferred.fromCoroutine(self._disconnect(target))

    async def _disconnect(self, target: DisconnectTarget) -> None:
        nas = self._nas.by_name(target.nas)
        outcome = "unknown-nas" if nas is None else await self._sender.send(target, nas)
        await self._runner.run(
            finish_disconnect,
            target,
            outcome,
            sessions=self._sessions,
            now=self._clock.seconds(),
        )
