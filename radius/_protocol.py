"""The UDP adapter: datagrams to :class:`~radius._access.AccessServer`, steps to the
network, evaluations to :class:`~radius._login.DialInLogin`.

Nothing here decides anything: it reads the clock, writes what the server says, and
logs drops through :class:`~radius._reports.DropReports` (once per source per minute).
A failed evaluation (the database is down…) sends nothing, so that the NAS retries or
fails over to another server, and is logged as a bug would be.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from radius._access import QUIET_DROPS, AccessServer, Attempt, Drop, Evaluate, Send
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
