"""Audited changes: one transaction per change with its audit event, refusals recorded.

:class:`AuditedWorkflows` is the base of the carrier's :class:`~provisioning.Provisioner`
and the administrator's ``staffing.StaffAdministration``: both make each change in one
database transaction that also appends its audit event (so a change and its record
commit together), remove the bundle directories a change wrote if it does not commit,
and record a refusal (:class:`WorkflowRefused`) as a ``refused`` event in a transaction
of its own after the rollback.  :meth:`~AuditedWorkflows.acting_as` names who acts
(``os:<user>`` on the command line, ``staff:<name>`` with the console session's
reference).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn, Self

from sqlalchemy import Connection, Engine

import audit
from provisioning._bundle import remove_bundle, write_bundle


class WorkflowRefused(Exception):
    """The change is not allowed in the current state; ``reason`` is the audit code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class BundleTransaction:
    """An open transaction plus the bundle directories written during it."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.bundles: list[Path] = []

    def write_bundle(self, path: Path, files: Mapping[str, bytes]) -> None:
        write_bundle(path, files)
        self.bundles.append(path)


class AuditedWorkflows:
    """Who acts, and the audited transaction every change of a workflow runs in."""

    def __init__(
        self,
        *,
        engine: Engine,
        clock: Callable[[], float],
        actor: str,
        session_ref: str = "",
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._actor = actor
        self._session_ref = session_ref

    def acting_as(self, actor: str, *, session_ref: str = "") -> Self:
        """The same workflows with *actor* (and the console *session_ref*) on every
        audit event (and kill request) they make."""
        other = copy.copy(self)
        other._actor = actor
        other._session_ref = session_ref
        return other

    def _event(
        self,
        conn: Connection,
        action: str,
        subject: str,
        *,
        outcome: str = "ok",
        reason: str = "",
        unit: str = "",
        **details: str | int | None,
    ) -> None:
        audit.append(
            conn,
            audit.AuditEvent(
                at=self._clock(),
                actor=self._actor,
                action=action,
                subject=subject,
                outcome=outcome,
                reason=reason,
                unit=unit,
                session_id=self._session_ref,
                details=details,
            ),
        )

    @contextmanager
    def _action(self, action: str, subject: str, unit: str = "") -> Iterator[BundleTransaction]:
        """One transaction for a change.

        Bundles written inside it are removed again if it does not commit, and a
        refusal is recorded as an audit event after the rollback.
        """
        tx: BundleTransaction | None = None
        try:
            with self._engine.begin() as conn:
                tx = BundleTransaction(conn)
                yield tx
        except BaseException as failure:
            if tx is not None:
                for path in tx.bundles:
                    remove_bundle(path)
            if isinstance(failure, WorkflowRefused):
                self._record_refusal(action, subject, failure, unit=unit)
            raise

    def _refuse(self, action: str, subject: str, refusal: WorkflowRefused) -> NoReturn:
        """Record *refusal* (outside any change's transaction) and raise it."""
        self._record_refusal(action, subject, refusal)
        raise refusal

    def _record_refusal(
        self, action: str, subject: str, refusal: WorkflowRefused, *, unit: str = ""
    ) -> None:
        with self._engine.begin() as conn:
            self._event(conn, action, subject, outcome="refused", reason=refusal.reason, unit=unit)
