"""The audit log's daily run in ``ssgate serve``: retention, then a signed checkpoint.

Once a day (the first run :data:`FIRST_RUN_DELAY` after start, so a restart loop does
not archive on every start) records older than ``[audit] retention_days`` move into
the archives (:func:`audit.archive_batch`, one file per transaction until nothing is
old enough) and the chain head is signed into ``checkpoints/``
(:func:`audit.take_checkpoint`, also recorded as an ``audit.checkpoint`` event).  Both
run on the database pool through the runner, files included; the reactor only
schedules.

The timer looks every :data:`CHECK_EVERY` seconds whether the run is due; a part that
failed (database down, disk full, damaged chain) is tried again at the next look — the
other part goes on as due — and failures are logged at most once an hour with the
number of failures since the last report, as the alert evaluator does
(:mod:`ssgate._alerting`).  ``ssgate audit archive`` and ``ssgate audit checkpoint`` do
the same on demand (:func:`archive_old_records`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine
from twisted.application.internet import TimerService
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

import audit
import auth
from ssgate._config import AuditConfig

DAY = 86400.0
FIRST_RUN_DELAY = 600.0  # seconds after start before the first run
CHECK_EVERY = 600.0  # seconds between two looks at whether the run is due
REPORT_EVERY = 3600.0  # seconds between two log lines about failing runs
SYSTEM_ACTOR = "system"


def retention_cutoff(now: float, config: AuditConfig) -> float:
    """Records with ``at`` before this are old enough to archive."""
    return now - config.retention_days * DAY


def archive_old_records(
    engine: Engine,
    directory: Path,
    *,
    config: AuditConfig,
    clock: Callable[[], float],
    node: str,
) -> list[audit.ArchiveManifest]:
    """``ssgate audit archive``: every archive file this run wrote, one transaction
    each (blocking: the command line's engine, not the reactor's pool)."""
    moved: list[audit.ArchiveManifest] = []
    now = clock()
    while True:
        with engine.begin() as conn:
            manifest = audit.archive_batch(
                conn, directory, before=retention_cutoff(now, config), now=now, node=node
            )
        if manifest is None:
            return moved
        moved.append(manifest)


@dataclass(frozen=True)
class DailyPaths:
    archive_dir: Path
    checkpoints_dir: Path


class DailyAuditRun:
    """Archive, then checkpoint, each when due (:meth:`tick`); failures reported at most
    every :data:`REPORT_EVERY` seconds."""

    log = Logger()

    def __init__(
        self,
        runner: auth.Runner,
        clock: IReactorTime,
        config: AuditConfig,
        paths: DailyPaths,
        signing_key: Ed25519PrivateKey,
        *,
        node: str,
        first_run_delay: float = FIRST_RUN_DELAY,
    ) -> None:
        self._runner = runner
        self._clock = clock
        self._config = config
        self._paths = paths
        self._key = signing_key
        self._node = node
        self._first_run_delay = first_run_delay
        # When each part is next due; each moves a day on only when it succeeded, so a
        # failing archive (a full archive disk) does not hold up the checkpoint.
        self._archive_due: float | None = None
        self._checkpoint_due: float | None = None
        self._failures = auth.RepeatedFailureLog(
            self.log,
            f"the daily audit run (archive, checkpoint; retried every {CHECK_EVERY:g} s)",
            clock=clock.seconds,
            every=REPORT_EVERY,
        )

    async def tick(self) -> None:
        now = self._clock.seconds()
        if self._archive_due is None or self._checkpoint_due is None:
            self._archive_due = self._checkpoint_due = now + self._first_run_delay
        failed = False
        if now >= self._archive_due:
            try:
                await self._archive(now)
            except Exception:
                self._failures.failed(Failure())
                failed = True
            else:
                self._archive_due = now + DAY
        if now >= self._checkpoint_due:
            try:
                await self._checkpoint(now)
            except Exception:
                self._failures.failed(Failure())
                failed = True
            else:
                self._checkpoint_due = now + DAY
        if not failed:
            self._failures.succeeded()

    async def _checkpoint(self, now: float) -> None:
        taken: audit.TakenCheckpoint = await self._runner.run(
            audit.take_checkpoint,
            self._key,
            self._paths.checkpoints_dir,
            now=now,
            actor=SYSTEM_ACTOR,
        )
        self.log.info(
            "audit checkpoint of record {seq} signed with key {key_id}: {file}",
            seq=taken.checkpoint.seq,
            key_id=taken.checkpoint.key_id,
            file=taken.path.name,
        )

    async def _archive(self, now: float) -> None:
        before = retention_cutoff(now, self._config)
        while True:
            manifest: audit.ArchiveManifest | None = await self._runner.run(
                audit.archive_batch,
                self._paths.archive_dir,
                before=before,
                now=now,
                node=self._node,
            )
            if manifest is None:
                return
            self.log.info(
                "archived audit records {first} to {last} ({count}) to {file}",
                first=manifest.first_seq,
                last=manifest.last_seq,
                count=manifest.count,
                file=manifest.file,
            )

    def deferred_tick(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self.tick())


def audit_daily_service(
    runner: auth.Runner,
    clock: IReactorTime,
    config: AuditConfig,
    paths: DailyPaths,
    signing_key: Ed25519PrivateKey,
    *,
    node: str,
    first_run_delay: float = FIRST_RUN_DELAY,
) -> TimerService:
    """The daily run, looked at every :data:`CHECK_EVERY` seconds."""
    job = DailyAuditRun(
        runner, clock, config, paths, signing_key, node=node, first_run_delay=first_run_delay
    )
    service = TimerService(CHECK_EVERY, job.deferred_tick)
    service.clock = clock
    return service
