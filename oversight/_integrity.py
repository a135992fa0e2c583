"""The audit log's integrity page: the chain verified in the background, with progress.

* ``GET /integrity`` — the verification of this console process: running (records
  checked of how many; the page reloads itself every few seconds through the HTTP
  ``Refresh`` header, no script), or its result (intact, or the first bad record and
  what is wrong with it), when it ran and who started it;
* ``POST /integrity`` — start one (the shell has checked the CSRF token).  Starting
  is audited (``audit.verify``, ``started``), as is the result (``audit.verify`` by
  ``system``: ``chain-intact`` or ``chain-broken`` with the first bad record), so the
  log itself says when it was last proven whole.

With ``verify_at_start`` the section starts one itself, as ``system``, at the
reactor's first turn once the console is built (``ssgate serve`` passes it), so a
restarted console shows a verdict without anyone asking.

:class:`ChainVerification` is the per-process job: :func:`audit.begin_verify`, then
:func:`audit.verify_batch` one batch per transaction on the database pool, the
reactor free between batches.  One job at a time per process; a second start while
one runs is refused (and audited).  A verification is read-only, so running it on
several nodes at once is harmless, only wasteful.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from jinja2 import PackageLoader
from sqlalchemy import Connection
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger

import audit
import auth
import web
from web import Response, StaffCtx
from web._time import shown

INTEGRITY = "/integrity"
BATCH = 5000  # records per transaction: a few tens of milliseconds of hashing
REFRESH_SECONDS = 3
SUBJECT = "audit-log"


@dataclass(frozen=True)
class VerifyState:
    """What the page shows of the job: nothing yet, running, or finished."""

    job: int = 0  # 0: none has run in this process
    started_at: float | None = None
    started_by: str = ""
    finished_at: float | None = None
    checked: int = 0
    total: int = 0
    report: audit.VerifyReport | None = None
    error: str = ""  # the job stopped without a verdict (the database failed)

    @property
    def running(self) -> bool:
        return self.job > 0 and self.finished_at is None

    @property
    def percent(self) -> int:
        if self.report is not None or self.total == 0:
            return 100
        return min(99, self.checked * 100 // self.total)


def _record(
    conn: Connection, /, *, at: float, actor: str, outcome: str, reason: str, **details: Any
) -> None:
    audit.append(
        conn,
        audit.AuditEvent(
            at=at,
            actor=actor,
            action="audit.verify",
            subject=SUBJECT,
            outcome=outcome,
            reason=reason,
            details=details,
        ),
    )


class ChainVerification:
    """The per-process verification job (see the module docstring)."""

    log = Logger()

    def __init__(
        self, runner: auth.Runner, clock: IReactorTime, *, batch: int = BATCH, pause: float = 0.0
    ) -> None:
        self._runner = runner
        self._clock = clock
        self._batch = batch
        self._pause = pause
        self.state = VerifyState()

    def start(self, actor: str) -> bool:
        """Start a verification as *actor*; False if one is running already."""
        if self.state.running:
            return False
        self.state = VerifyState(
            job=self.state.job + 1, started_at=self._clock.seconds(), started_by=actor
        )
        Deferred.fromCoroutine(self._run(self.state.job))
        return True

    async def _run(self, job: int) -> None:
        try:
            walk: audit.ChainWalk = await self._runner.run(audit.begin_verify)
            self.state = replace(self.state, total=walk.total)
            while not walk.done:
                # The reactor serves pages between batches; a pause spreads the work.
                await deferLater(self._clock, self._pause, lambda: None)
                walk = await self._runner.run(audit.verify_batch, walk, limit=self._batch)
                self.state = replace(self.state, checked=walk.checked)
        except auth.RunnerClosed:
            self.log.info(
                "audit chain verification {job} cut short: the process is stopping", job=job
            )
            self.state = replace(
                self.state, finished_at=self._clock.seconds(), error="校验中断：服务正在停止。"
            )
            return
        except Exception:
            self.log.failure("audit chain verification {job} stopped", job=job)
            self.state = replace(
                self.state,
                finished_at=self._clock.seconds(),
                error="校验中断：读取审计日志时数据库出错，请稍后重试或使用 ssgate audit verify。",
            )
            return
        report = walk.report
        assert report is not None
        now = self._clock.seconds()
        self.state = replace(self.state, finished_at=now, checked=report.checked, report=report)
        try:
            await self._runner.run(
                _record,
                at=now,
                actor="system",
                outcome="ok" if report.ok else "failed",
                reason="chain-intact" if report.ok else "chain-broken",
                job=job,
                checked=report.checked,
                first_bad_seq=report.first_bad_seq,
            )
        except Exception:
            # A broken chain may refuse appends (a missing head): the page still shows it.
            self.log.failure("cannot record the result of verification {job}", job=job)


def integrity_section(
    runner: auth.Runner, clock: IReactorTime, *, verify_at_start: bool = False
) -> web.ConsoleSection:
    """The integrity page (see the module docstring) as a console section; its job
    lives as long as the console process.  *verify_at_start*: start a verification
    at the reactor's next turn (see the module docstring)."""
    verification: ChainVerification | None = None

    def job() -> ChainVerification:
        # Built at first use: listing the routes (``ssgate routes``) touches nothing.
        nonlocal verification
        if verification is None:
            verification = ChainVerification(runner, clock)
        return verification

    def at_start() -> None:
        verifying = job()
        if verifying.state.running:
            return  # an officer was quicker
        # Recorded first, as a POST's start is: the verification covers its own start.
        d = runner.run(
            _record,
            at=clock.seconds(),
            actor="system",
            outcome="ok",
            reason="started",
            job=verifying.state.job + 1,
            trigger="console-start",
        )
        d.addCallback(lambda _: verifying.start("system"))
        d.addErrback(lambda f: ChainVerification.log.failure("cannot start verification", f))

    if verify_at_start:
        clock.callLater(0, at_start)

    def page(ctx: StaffCtx, status: int = 200, *, error: str = "") -> Response:
        state = job().state
        answer = ctx.page(
            "integrity/page.html",
            status,
            title="日志完整性",
            current=INTEGRITY,
            when=lambda ts: shown(ts, seconds=True, offset=True),
            state=state,
            refresh=REFRESH_SECONDS,
            error=error or state.error,
        )
        if not state.running:
            return answer
        # Reload while running: the header needs no script and no <meta> in the head.
        refresh = ((b"refresh", str(REFRESH_SECONDS).encode()),)
        return Response(answer.status, answer.body, answer.content_type, refresh)

    async def show(ctx: StaffCtx) -> Response:
        return page(ctx)

    async def start(ctx: StaffCtx) -> Response:
        verifying = job()
        if verifying.state.running:
            await ctx.audit(
                "audit.verify",
                SUBJECT,
                "refused",
                reason="already-running",
                details={"job": verifying.state.job},
            )
            return page(ctx, 409, error="已有一次校验正在进行，请等待它完成。")
        # Recorded first: the verification that follows covers its own start.
        await ctx.audit(
            "audit.verify",
            SUBJECT,
            "ok",
            reason="started",
            details={"job": verifying.state.job + 1},
        )
        verifying.start(ctx.staff.audit_actor)
        return web.see_other(INTEGRITY)

    roles = ("officer",)
    return web.ConsoleSection(
        path=INTEGRITY,
        title="日志完整性",
        roles=roles,
        routes=(
            web.Route("GET", INTEGRITY, roles, show),
            web.Route("POST", INTEGRITY, roles, start),
        ),
        templates=PackageLoader("oversight", "templates"),
    )
