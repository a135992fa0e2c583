"""The UDP adapter: datagrams to :class:`~radius._access.AccessServer`, steps to the
network, evaluations to :class:`~radius._login.DialInLogin`.

Nothing here decides anything: it reads the clock, writes what the server says, and
logs drops through :class:`~radius._reports.DropReports` (once per source per minute).
A failed evaluation (the database is down…) sends nothing, so that the NAS retries or
fails over to another server, and is logged as a bug would be.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from radius._access import QUIET_DROPS, AccessServer, Attempt, Drop, Evaluate, Send
from radius._accounting import AccountingServer, Record, Usage
from radius._login import DialInLogin
from radius._reports import DropReports


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
